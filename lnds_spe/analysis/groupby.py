"""Group-by reductions on int-coded keys and time buckets, and a fast string-key factoriser."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from lnds_spe.analysis._inputs import AnalysisInputError, column, thread_count, to_numpy

REDUCTIONS = ("sum", "mean", "min", "max", "count")
BUCKET_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


@numba.njit(parallel=True, cache=True, nogil=True)
def _reduce_kernel(keys, values, n_groups, threads, want_minmax):
    """Per-thread partial sums/counts/min/max over row chunks, merged afterwards; NaN skipped."""
    n = keys.shape[0]
    sums = np.zeros((threads, n_groups), dtype=np.float64)
    counts = np.zeros((threads, n_groups), dtype=np.int64)
    rows = np.zeros((threads, n_groups), dtype=np.int64)
    width = 1 if want_minmax else 0
    mins = np.full((threads, n_groups * width), np.inf)
    maxs = np.full((threads, n_groups * width), -np.inf)
    bad = np.zeros(threads, dtype=np.int64)
    chunk = (n + threads - 1) // threads
    for t in numba.prange(threads):
        lo = t * chunk
        hi = min(n, lo + chunk)
        for i in range(lo, hi):
            g = keys[i]
            if g < 0 or g >= n_groups:
                bad[t] += 1
                continue
            rows[t, g] += 1
            v = values[i]
            if v == v:
                sums[t, g] += v
                counts[t, g] += 1
                if want_minmax:
                    if v < mins[t, g]:
                        mins[t, g] = v
                    if v > maxs[t, g]:
                        maxs[t, g] = v
    out_sum = np.zeros(n_groups)
    out_count = np.zeros(n_groups, dtype=np.int64)
    out_rows = np.zeros(n_groups, dtype=np.int64)
    out_min = np.full(n_groups * width, np.inf)
    out_max = np.full(n_groups * width, -np.inf)
    for g in numba.prange(n_groups):
        for t in range(threads):
            out_sum[g] += sums[t, g]
            out_count[g] += counts[t, g]
            out_rows[g] += rows[t, g]
            if want_minmax:
                out_min[g] = min(out_min[g], mins[t, g])
                out_max[g] = max(out_max[g], maxs[t, g])
    return out_sum, out_count, out_rows, out_min, out_max, bad.sum()


def _check_ops(ops: tuple[str, ...] | list[str] | str) -> tuple[str, ...]:
    """The requested reductions, validated against REDUCTIONS."""
    ops = (ops,) if isinstance(ops, str) else tuple(ops)
    unknown = [op for op in ops if op not in REDUCTIONS]
    if unknown or not ops:
        raise AnalysisInputError(f"ops: unknown reduction(s) {unknown or ops}; "
                                 f"choose from {REDUCTIONS}")
    return ops


def groupby_reduce(keys: Any, values: Any, n_groups: int | None = None,
                   ops: tuple[str, ...] | list[str] | str = REDUCTIONS,
                   threads: int | None = None) -> dict[str, np.ndarray]:
    """Reduce `values` by int-coded `keys` in [0, n_groups); NaN values are skipped.

    Returns one dense array per requested op plus "rows" (rows per group, NaN included);
    an empty group has sum 0, count 0 and NaN mean/min/max.
    """
    ops = _check_ops(ops)
    keys_arr = column(keys, "keys", "i")
    vals = column(values, "values", "n", length=keys_arr.shape[0])
    if vals.dtype.kind in "ib" or vals.dtype.itemsize < 4:
        vals = vals.astype(np.float64)
    if n_groups is None:
        n_groups = int(keys_arr.max()) + 1 if keys_arr.size else 0
    if isinstance(n_groups, bool) or not isinstance(n_groups, int | np.integer) or n_groups < 0:
        raise AnalysisInputError(f"n_groups: expected a non-negative integer, got {n_groups!r}")
    threads = thread_count(threads)
    numba.set_num_threads(threads)
    want_minmax = "min" in ops or "max" in ops
    total, count, rows, mins, maxs, bad = _reduce_kernel(keys_arr, vals, int(n_groups), threads,
                                                         want_minmax)
    if bad:
        raise AnalysisInputError(f"keys: {bad} key(s) outside [0, {n_groups}); "
                                 "factorise the keys or pass a larger n_groups")
    empty = count == 0
    out: dict[str, np.ndarray] = {"rows": rows}
    for op in ops:
        if op == "sum":
            out["sum"] = total
        elif op == "count":
            out["count"] = count
        elif op == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                out["mean"] = np.where(empty, np.nan, total / np.maximum(count, 1))
        elif op == "min":
            out["min"] = np.where(empty, np.nan, mins)
        else:
            out["max"] = np.where(empty, np.nan, maxs)
    return out


@numba.njit(parallel=True, cache=True, nogil=True)
def _bucket_codes(times, keys, origin, width, n_buckets, threads):
    """Group code key * n_buckets + (time - origin) // width for every row."""
    n = times.shape[0]
    out = np.empty(n, dtype=np.int64)
    chunk = (n + threads - 1) // threads
    for t in numba.prange(threads):
        for i in range(t * chunk, min(n, (t + 1) * chunk)):
            out[i] = keys[i] * n_buckets + (times[i] - origin) // width
    return out


def time_bucket(times: Any, values: Any, bucket: str | int = "hour", keys: Any = None,
                n_keys: int | None = None, ops: tuple[str, ...] | list[str] | str = REDUCTIONS,
                threads: int | None = None) -> dict[str, np.ndarray]:
    """Reduce values by (key, time bucket); times are int64 epoch seconds or datetime64.

    Buckets are aligned to the epoch (like date_trunc in UTC). Only (key, bucket) pairs that
    have at least one row are returned, ordered by key then bucket start.
    """
    raw = to_numpy(times, "times")
    if raw.dtype.kind == "M":
        raw = raw.astype("datetime64[s]").view(np.int64)
    t = column(raw, "times", "i", dtype=np.int64)
    width = BUCKET_SECONDS.get(bucket) if isinstance(bucket, str) else bucket
    if width is None or isinstance(width, bool) or int(width) < 1:
        raise AnalysisInputError(f"bucket: expected one of {tuple(BUCKET_SECONDS)} or a positive "
                                 f"number of seconds, got {bucket!r}")
    width = int(width)
    if keys is None:
        k = np.zeros(t.shape[0], dtype=np.int64)
        n_keys = 1
    else:
        k = column(keys, "keys", "i", length=t.shape[0])
        if k.size and k.min() < 0:
            raise AnalysisInputError("keys: negative codes; factorise the keys first")
        n_keys = int(k.max()) + 1 if n_keys is None and k.size else (n_keys or 0)
    if t.size == 0:
        return {"key": np.empty(0, np.int64), "bucket_start": np.empty(0, np.int64),
                **{op: np.empty(0) for op in _check_ops(ops)}}
    origin = (int(t.min()) // width) * width
    n_buckets = (int(t.max()) - origin) // width + 1
    threads = thread_count(threads)
    numba.set_num_threads(threads)
    codes = _bucket_codes(t, k, origin, width, n_buckets, threads)
    reduced = groupby_reduce(codes, values, n_groups=n_keys * n_buckets, ops=ops,
                             threads=threads)
    present = np.flatnonzero(reduced.pop("rows"))
    out = {"key": present // n_buckets, "bucket_start": origin + (present % n_buckets) * width}
    out.update({op: arr[present] for op, arr in reduced.items()})
    return out


@numba.njit(cache=True, nogil=True)
def _hash_bytes(data, start, stop):
    """FNV-1a hash of data[start:stop]."""
    h = np.uint64(14695981039346656037)
    for i in range(start, stop):
        h = (h ^ np.uint64(data[i])) * np.uint64(1099511628211)
    return h


@numba.njit(cache=True, nogil=True)
def _same_bytes(data, a0, a1, b0, b1):
    """Whether data[a0:a1] equals data[b0:b1]."""
    if a1 - a0 != b1 - b0:
        return False
    i = 0
    while i < a1 - a0 and data[a0 + i] == data[b0 + i]:
        i += 1
    return i == a1 - a0


@numba.njit(cache=True, nogil=True)
def _factorize_offsets(offsets, data, lo, hi):
    """Codes in first-seen order for strings lo..hi-1 given Arrow-style offsets and bytes."""
    n = hi - lo
    size = 64
    while size < 2 * n and size < (1 << 30):
        size *= 2
    table = np.full(size, -1, dtype=np.int64)  # slot -> code
    firsts = np.empty(min(n, size), dtype=np.int64)  # code -> row of its first occurrence
    codes = np.empty(n, dtype=np.int32)
    mask = np.uint64(size - 1)
    n_codes = 0
    for r in range(lo, hi):
        s0 = offsets[r]
        s1 = offsets[r + 1]
        slot = _hash_bytes(data, s0, s1) & mask
        while True:
            c = table[slot]
            if c == -1:
                table[slot] = n_codes
                firsts[n_codes] = r
                codes[r - lo] = n_codes
                n_codes += 1
                break
            f = firsts[c]
            if _same_bytes(data, offsets[f], offsets[f + 1], s0, s1):
                codes[r - lo] = c
                break
            slot = (slot + np.uint64(1)) & mask
    return codes, firsts[:n_codes]


@numba.njit(parallel=True, cache=True, nogil=True)
def _factorize_parallel(offsets, data, threads):
    """Factorise chunks in parallel, then merge the chunk dictionaries into first-seen order."""
    n = offsets.shape[0] - 1
    chunk = (n + threads - 1) // threads
    codes = np.empty(n, dtype=np.int32)
    local_firsts = []
    for _ in range(threads):
        local_firsts.append(np.empty(0, dtype=np.int64))
    for t in numba.prange(threads):
        lo = min(n, t * chunk)
        hi = min(n, lo + chunk)
        c, f = _factorize_offsets(offsets, data, lo, hi)
        codes[lo:hi] = c
        local_firsts[t] = f
    # merge: the chunk-local first rows, in chunk order, factorised again give global codes
    total = 0
    for t in range(threads):
        total += local_firsts[t].shape[0]
    rows = np.empty(total, dtype=np.int64)
    pos = 0
    for t in range(threads):
        f = local_firsts[t]
        rows[pos:pos + f.shape[0]] = f
        pos += f.shape[0]
    sub_offsets = np.empty(total + 1, dtype=np.int64)
    sub_offsets[0] = 0
    for j in range(total):
        sub_offsets[j + 1] = sub_offsets[j] + offsets[rows[j] + 1] - offsets[rows[j]]
    sub_data = np.empty(sub_offsets[total], dtype=np.uint8)
    for j in range(total):
        sub_data[sub_offsets[j]:sub_offsets[j + 1]] = data[offsets[rows[j]]:offsets[rows[j] + 1]]
    merged, firsts = _factorize_offsets(sub_offsets, sub_data, 0, total)
    global_rows = rows[firsts]
    base = 0
    for t in range(threads):
        m = local_firsts[t].shape[0]
        lo = min(n, t * chunk)
        hi = min(n, lo + chunk)
        remap = merged[base:base + m]
        for i in numba.prange(hi - lo):
            codes[lo + i] = remap[codes[lo + i]]
        base += m
    return codes, global_rows


def _arrow_string_buffers(arr: Any) -> tuple[np.ndarray, np.ndarray, Any] | None:
    """Offsets and bytes of an Arrow (large_)string array without copying, else None."""
    module = type(arr).__module__
    if not module.startswith("pyarrow"):
        return None
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_string_view(arr.type):
        arr = arr.cast(pa.large_string())
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return None
    if arr.null_count:
        raise AnalysisInputError(f"keys: {arr.null_count} null string(s); fill them first")
    _, off_buf, data_buf = arr.buffers()
    off_type = np.int32 if pa.types.is_string(arr.type) else np.int64
    offsets = np.frombuffer(off_buf, dtype=off_type)[arr.offset:arr.offset + len(arr) + 1]
    data = (np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None
            else np.empty(0, np.uint8))
    return offsets, data, arr


def factorize(keys: Any, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Int32 codes (first-seen order) and the unique values of string or other keys.

    Arrow string arrays (and pandas Series backed by them) are hashed in parallel straight from
    their buffers; other inputs fall back to pandas.factorize.
    """
    source = keys
    if type(keys).__module__.startswith("pandas") and hasattr(keys, "array"):
        try:
            import pyarrow as pa

            source = pa.array(keys.array)
        except (ImportError, TypeError, ValueError, AttributeError):
            source = keys
    buffers = _arrow_string_buffers(source)
    if buffers is None:
        import pandas as pd

        arr = to_numpy(keys, "keys")
        if arr.ndim != 1:
            raise AnalysisInputError(f"keys: expected a 1-D array, got shape {arr.shape}")
        codes, uniques = pd.factorize(arr, use_na_sentinel=False)
        return codes.astype(np.int32), np.asarray(uniques)
    offsets, data, arrow_arr = buffers
    threads = thread_count(threads)
    numba.set_num_threads(threads)
    if offsets.shape[0] <= 1:
        return np.empty(0, np.int32), np.empty(0, dtype=object)
    codes, first_rows = _factorize_parallel(offsets, data, threads)
    uniques = arrow_arr.take(first_rows).to_numpy(zero_copy_only=False)
    return codes, uniques
