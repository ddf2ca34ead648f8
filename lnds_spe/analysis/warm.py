"""Compile the analysis kernels a workspace most often needs into numba's on-disk cache.

Run at image build (`python -m lnds_spe.analysis.warm`, NUMBA_CACHE_DIR set to the seed
folder): each kernel is compiled once for the dtypes researchers' data and our own helpers
produce, so a workspace's first call loads it (a fraction of a second) where it would compile
it (several seconds each). A kernel is compiled per argument types and per group-by layout, so
calls with other dtypes or layouts still compile on first use. The cache is valid only on a CPU
like the one that built it; elsewhere numba compiles as if it were empty.
"""

from __future__ import annotations

import time

import numpy as np


def _factorize_calls(n: int) -> list[tuple[str, object]]:
    """Factorize's Arrow string paths and groupby_keys' one pass over many distinct strings,
    where pyarrow is installed (the workspace image has none)."""
    try:
        import pyarrow as pa
    except ImportError:
        return []
    from lnds_spe.analysis import factorize, groupby_keys

    labels = pa.array([f"label-{i % 37}" for i in range(n)])
    many = pa.array([f"label-{i}" for i in range(4 * n)])
    return [("factorize strings", lambda: factorize(labels)),
            ("factorize large strings", lambda: factorize(labels.cast(pa.large_string()))),
            ("groupby_keys many strings",
             lambda: groupby_keys(many, np.ones(len(many)), ops="mean", threads=2))]


def warm_calls() -> list[tuple[str, object]]:
    """(name, zero-argument call) for every kernel variant warmed, on tiny inputs; factorize's
    own kernels only where pyarrow is installed (they code Arrow strings, nothing else)."""
    from lnds_spe.analysis import (
        TimeSeriesStore,
        dice_candidates,
        dice_similarity,
        groupby_reduce,
        idw_grid,
        knn,
        knn_idw,
        time_bucket,
        window_scan,
    )
    from lnds_spe.analysis.groupby import REDUCTIONS

    rng = np.random.default_rng(0)
    n = 5_000
    times = np.sort(rng.integers(1_600_000_000, 1_600_000_000 + 30 * 86400, n))
    values = {dtype: rng.normal(size=n).astype(dtype) for dtype in (np.float64, np.float32)}
    keys = {dtype: rng.integers(0, 20, n).astype(dtype) for dtype in (np.int64, np.int32)}
    lon, lat = rng.uniform(5.7, 6.5, 40), rng.uniform(49.4, 50.2, 40)
    filters = rng.integers(0, 2**63, (200, 16), dtype=np.uint64)
    calls: list[tuple[str, object]] = []
    for key_type, k in keys.items():
        calls.append((f"time_bucket {key_type.__name__} keys",
                      lambda k=k: time_bucket(times, values[np.float64], "hour", keys=k,
                                              n_keys=20, ops=("mean", "min", "max"))))
        for value_type, v in values.items():
            for ops in ("mean", REDUCTIONS):  # no min or max kept, and both (compiled apart)
                calls.append((f"groupby_reduce {key_type.__name__} keys, "
                              f"{value_type.__name__} values, {ops}",
                              lambda k=k, v=v, ops=ops: groupby_reduce(k, v, 20, ops=ops)))
            calls.append((f"window_scan {key_type.__name__} ids, {value_type.__name__} values",
                          lambda k=k, v=v: window_scan(times, k, v, int(times[100]),
                                                       int(times[-100]), time_sorted=True)))
            calls.append((f"TimeSeriesStore {key_type.__name__} ids, {value_type.__name__}",
                          lambda k=k, v=v: TimeSeriesStore.build(
                              times, k, v, rollups=("hour", "day")).window(
                                  int(times[100]), int(times[-100]))))
    calls += _factorize_calls(n)
    calls += [
        ("knn", lambda: knn(lon, lat, lon[:10], lat[:10], k=5)),
        ("knn_idw", lambda: knn_idw(lon, lat, lon * 0.0 + 1.0, lon[:10], lat[:10], k=5)),
        ("idw_grid", lambda: idw_grid(lon, lat, lat, (5.7, 6.5), (49.4, 50.2), 20, 20, k=5)),
        ("dice_similarity", lambda: dice_similarity(filters[:50], filters)),
        ("dice_candidates", lambda: dice_candidates(filters[:50], filters, 0.5)),
    ]
    return calls


def main() -> None:
    """Make every warm call, reporting each one's seconds."""
    from lnds_spe.analysis import NUMBA_CACHE_DIR

    started = time.perf_counter()
    calls = warm_calls()
    for name, call in calls:
        begun = time.perf_counter()
        call()
        print(f"[warm] {name}: {time.perf_counter() - begun:.1f} s", flush=True)
    print(f"[warm] {len(calls)} calls compiled into {NUMBA_CACHE_DIR} in "
          f"{time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
