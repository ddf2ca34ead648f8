"""Workload C: safe crosstab (counts + mean with threshold, N-K, p %, negatives, missing masks)
against ACRO 1.0.2 (own virtualenv, timed in a subprocess), pandas.crosstab, DuckDB, Polars.

Every peer produces the same output as ours: the count and mean per cell plus the five masks,
from the per-cell aggregations it computes its own way (count, non-missing count, sum of |x|,
the two largest |x|, negatives, missing); the masks come from the same pure rules.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.harness import (
    Disagreement,
    check_close,
    check_equal,
    goal,
    interleave,
    repeats_for,
    row,
    time_once,
    timed_row,
)

ID = "C"
TITLE = "Safe crosstab: region x age band x sex, counts + mean with SDC masks"
ROWS = {"ci": 1_000_000, "full": 10_000_000}
SHAPE = (12, 20, 2)
ACRO_VENV_ENV = "LNDS_ACRO_VENV"
ACRO_REPEATS = 5
MASKS = ("threshold", "nk-rule", "p-ratio", "negative", "missing")
# Ours with the missing-values check on, so it computes every mask the peers compute.
OUR_CONFIG = {"check_missing_values": True}

# Runs inside the ACRO virtualenv: the crosstab ACRO users would write, timed, masks returned.
_ACRO_SCRIPT = r"""
import json, logging, statistics, sys, time
import pandas as pd
logging.disable(logging.CRITICAL)
from acro import ACRO
data = pd.read_parquet(sys.argv[1]); repeats = int(sys.argv[2])
session = ACRO(suppress=False)
times = []
for _ in range(repeats + 1):
    start = time.perf_counter()
    session.crosstab([data.region, data.age], data.sex, values=data.income, aggfunc="mean")
    times.append(time.perf_counter() - start)
# ACRO 1.0.2 misplaces its dominance flags once any value is negative: masks on |income|.
session.crosstab([data.region, data.age], data.sex, values=data.income.abs(), aggfunc="mean")
record = list(session.results.results.values())[-1]
cells = record.output[0]
flagged = {}
for j, col in enumerate(record.outcome.columns):
    for i, idx in enumerate(record.outcome.index):
        text = record.outcome.iloc[i, j]
        if text != "ok":
            flagged[json.dumps([list(map(int, idx)), int(col)])] = text
print(json.dumps({"cold": times[0], "warm": statistics.median(times[1:]), "flagged": flagged,
                  "shape": list(cells.shape)}))
"""

ACRO_CHECK_NAMES = {"MinimumThresholdCheck": "threshold", "NKCheck": "nk-rule",
                    "PPercentCheck": "p-ratio"}


def make_data(n: int, seed: int = 5) -> dict[str, np.ndarray]:
    """Zipf-skewed keys, lognormal income, dominant contributors, some negatives and missing.

    The last age band is rare (1..30 units per region and sex) so that some cells fall under
    the threshold and some are dominated by one or two units; negatives occur in region 0 and
    missing incomes in region 1 only, so the other regions stay comparable with ACRO.
    """
    rng = np.random.default_rng(seed)

    def zipf_codes(size: int, exponent: float) -> np.ndarray:
        weights = 1.0 / np.arange(1, size + 1) ** exponent
        return rng.choice(size, n, p=weights / weights.sum()).astype(np.int8)

    region = zipf_codes(SHAPE[0], 1.1)
    age = zipf_codes(SHAPE[1] - 1, 1.6)
    sex = rng.integers(0, SHAPE[2], n).astype(np.int8)
    income = rng.lognormal(10.0, 1.0, n)
    rare_sizes = rng.integers(1, 31, SHAPE[0] * SHAPE[2])
    rare_rows = rng.choice(n, int(rare_sizes.sum()), replace=False)
    start = 0
    for cell, size in enumerate(rare_sizes):
        rows = rare_rows[start:start + size]
        start += size
        region[rows], age[rows], sex[rows] = cell // SHAPE[2], SHAPE[1] - 1, cell % SHAPE[2]
        dominance = rng.integers(0, 3)  # none, one dominant unit, two dominant units
        income[rows[:dominance]] *= 2000.0 / dominance if dominance else 1.0
    income[rng.choice(n, 40, replace=False)] *= 2000.0
    income[(region == 0) & (rng.random(n) < 0.002)] *= -1.0
    income[(region == 1) & (rng.random(n) < 0.002)] = np.nan
    return {"region": region, "age": age, "sex": sex, "income": income}


def masks_from_stats(stats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The masks of our default profile (missing check on) from per-cell statistics."""
    from lnds_spe.sdc import rules
    from lnds_spe.sdc.config import SDCConfig

    c = SDCConfig()
    top1, top2, abs_total = stats["top1"], stats["top2"], stats["abs_total"]
    return {
        "threshold": rules.threshold_mask(stats["n_values"], c.safe_threshold, True),
        "nk-rule": rules.nk_dominance_mask(abs_total, top1 + top2, c.safe_nk_k),
        "p-ratio": rules.p_percent_mask(abs_total, top1, top2, c.safe_pratio_p),
        "negative": rules.negatives_mask(stats["negatives"]),
        "missing": rules.missing_mask(stats["missing"]),
    }


def dense_output(region: np.ndarray, age: np.ndarray, sex: np.ndarray,
                 stats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A peer's per-group statistics as (region x age) x sex tables: count, mean and masks."""
    cell = (np.asarray(region, dtype=np.int64) * SHAPE[1] + age) * SHAPE[2] + sex

    def place(values: np.ndarray) -> np.ndarray:
        out = np.zeros(SHAPE[0] * SHAPE[1] * SHAPE[2])
        out[cell] = np.asarray(values, dtype=np.float64)
        return out.reshape(SHAPE[0] * SHAPE[1], SHAPE[2])

    grids = {name: place(values) for name, values in stats.items()}
    output = {"count": grids["count"], "mean": np.where(grids["n_values"] > 0, grids["mean"],
                                                          np.nan)}
    output.update(masks_from_stats(grids))
    return output


def run(scale: str, threads: int) -> dict:
    """Generate once, check every peer's output against ours, then time each."""
    import duckdb
    import polars as pl
    import pyarrow as pa

    from lnds_spe.sdc import ACRO

    n = ROWS[scale]
    data = make_data(n)
    frame = pd.DataFrame(data)
    arrow = pa.table(data)
    session = ACRO(config=OUR_CONFIG, suppress=False)

    def ours() -> pd.DataFrame:
        return session.crosstab([frame.region, frame.age], frame.sex, values=frame.income,
                                aggfunc="mean")

    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.register("arrow_data", arrow)
    con.execute("CREATE TABLE native AS SELECT * FROM arrow_data")
    sql = """SELECT region, age, sex, count(*) AS count,
                    count(*) FILTER (WHERE NOT isnan(income)) AS n_values,
                    avg(income) FILTER (WHERE NOT isnan(income)) AS mean,
                    sum(abs(income)) FILTER (WHERE NOT isnan(income)) AS abs_total,
                    max(abs(income)) FILTER (WHERE NOT isnan(income)) AS top1,
                    coalesce(list_extract(max(abs(income), 2) FILTER (WHERE NOT isnan(income)),
                                          2), 0) AS top2,
                    count(*) FILTER (WHERE income < 0) AS negatives,
                    count(*) FILTER (WHERE isnan(income)) AS missing
             FROM {src} GROUP BY ALL"""

    def duck(src: str) -> dict[str, np.ndarray]:
        got = con.execute(sql.format(src=src)).fetchnumpy()
        stats = {k: np.ma.filled(got[k], 0.0) for k in got if k not in ("region", "age", "sex")}
        return dense_output(got["region"], got["age"], got["sex"], stats)

    polars_frame = pl.from_arrow(arrow)

    def polars_query() -> dict[str, np.ndarray]:
        income, magnitude = pl.col("income"), pl.col("abs")
        got = (
            polars_frame.lazy()
            .with_columns(income.fill_nan(None))
            .with_columns(income.abs().alias("abs"), (income < 0).alias("negative"))
            .group_by(["region", "age", "sex"]).agg(
                pl.len().alias("count"), income.count().alias("n_values"),
                income.mean().alias("mean"), magnitude.sum().alias("abs_total"),
                magnitude.top_k(2).alias("top"), pl.col("negative").sum().alias("negatives"),
                income.null_count().alias("missing"))
            .with_columns(pl.col("top").list.get(0, null_on_oob=True).fill_null(0.0)
                          .alias("top1"),
                          pl.col("top").list.get(1, null_on_oob=True).fill_null(0.0)
                          .alias("top2"))
            .drop("top").collect()
        )
        stats = {k: got[k].fill_null(0).to_numpy() for k in got.columns
                 if k not in ("region", "age", "sex")}
        return dense_output(got["region"].to_numpy(), got["age"].to_numpy(),
                            got["sex"].to_numpy(), stats)

    def pandas_same_output() -> dict[str, np.ndarray]:
        """One pandas group-by on a cell code; the second largest |x| from one sort."""
        cell = ((frame.region.to_numpy(np.int64) * SHAPE[1] + frame.age.to_numpy(np.int64))
                * SHAPE[2] + frame.sex.to_numpy(np.int64))
        income = frame.income
        magnitude = income.abs()
        stats = pd.DataFrame({"cell": cell, "income": income, "abs": magnitude,
                              "negative": income < 0, "missing": income.isna()}).groupby(
            "cell", sort=True).agg(count=("income", "size"), n_values=("income", "count"),
                                   mean=("income", "mean"), abs_total=("abs", "sum"),
                                   top1=("abs", "max"), negatives=("negative", "sum"),
                                   missing=("missing", "sum"))
        by_size = np.lexsort((-magnitude.to_numpy(), cell))  # per cell, largest |x| first
        first = np.searchsorted(cell[by_size], stats.index.to_numpy())
        second = np.minimum(first + 1, len(by_size) - 1)
        top2 = np.where(stats["n_values"].to_numpy() >= 2,
                        magnitude.to_numpy()[by_size[second]], 0.0)
        stats["top2"] = top2
        stats["top1"] = stats["top1"].fillna(0.0)
        codes = stats.index.to_numpy()
        region, rest = np.divmod(codes, SHAPE[1] * SHAPE[2])
        age, sex = np.divmod(rest, SHAPE[2])
        return dense_output(region, age, sex, {k: stats[k].to_numpy() for k in stats.columns})

    def pandas_mean_only() -> pd.DataFrame:
        return pd.crosstab([frame.region, frame.age], frame.sex, values=frame.income,
                           aggfunc="mean")

    # ---- first calls (cold) and agreement before any warm timing -----------------------------
    our_cold, our_table = time_once(ours)
    our_flags = session.results.get("output_0").flags
    our_counts = ACRO(config=OUR_CONFIG).crosstab([frame.region, frame.age], frame.sex)
    ours_dense = _ours_dense(our_table, our_counts, our_flags)
    observed = ours_dense["count"] > 0
    peers: dict[str, tuple[Callable[[], object], float, object]] = {}
    for impl, fn in (("pandas, one groupby on a cell code (same output)", pandas_same_output),
                     ("pandas.crosstab (mean table only, no checks)", pandas_mean_only),
                     ("duckdb native table", lambda: duck("native")),
                     ("duckdb on arrow", lambda: duck("arrow_data")),
                     ("polars (lazy group_by)", polars_query)):
        cold, result = time_once(fn)
        peers[impl] = (fn, cold, result)
        if isinstance(result, pd.DataFrame):
            mean_table = np.full(observed.shape, np.nan)
            for i, (region, age) in enumerate(result.index):
                mean_table[region * SHAPE[1] + age, result.columns] = result.iloc[i].to_numpy()
            check_close(f"workload C: {impl} mean table", ours_dense["mean"][observed],
                        mean_table[observed])
            continue
        check_equal(f"workload C: {impl} count table", ours_dense["count"], result["count"])
        check_close(f"workload C: {impl} mean table", ours_dense["mean"][observed],
                    result["mean"][observed])
        for name in MASKS:
            check_equal(f"workload C: {impl} {name} mask", ours_dense[name][observed],
                        result[name][observed])
    acro = _run_acro(frame)
    # ACRO counts rows with missing income, and misplaces its dominance flags once any value
    # is negative: its masks come from the same data with |income| (untimed call).
    abs_session = ACRO(config=OUR_CONFIG)
    abs_table = abs_session.crosstab([frame.region, frame.age], frame.sex,
                                     values=frame.income.abs(), aggfunc="mean")
    ours_abs = _ours_dense(abs_table, our_counts, abs_session.results.get("output_0").flags)
    where_right = observed & ~ours_dense["missing"]
    acro_flagged: dict[str, int] = {}
    mismatches = 0
    for name in ("threshold", "nk-rule", "p-ratio"):
        theirs = np.zeros(observed.shape, dtype=bool)
        for key, text in acro["flagged"].items():
            (region, age), sex = json.loads(key)
            if any(ACRO_CHECK_NAMES.get(c.strip()) == name for c in text.split(";")):
                theirs[region * SHAPE[1] + age, sex] = True
        acro_flagged[name] = int(theirs[where_right].sum())
        mismatches += int((ours_abs[name][where_right] != theirs[where_right]).sum())
        check_equal(f"workload C: ACRO 1.0.2 {name} mask", ours_abs[name][where_right],
                    theirs[where_right])
    compared = 3 * int(where_right.sum())

    # ---- warm timing ----------------------------------------------------------------------
    case = f"{n:.0e} rows, {int(observed.sum())} cells"
    records_before = len(session.results.results)
    ours_name = "lnds_spe.sdc.ACRO.crosstab"
    timing = interleave({ours_name: ours, **{impl: fn for impl, (fn, _, _) in peers.items()}},
                        repeats_for(scale))
    warm_ours = timing[ours_name]["median_s"]
    flagged = {name: int(ours_dense[name][observed].sum()) for name in MASKS}
    rows = [timed_row(case, ours_name, timing[ours_name], threads, flagged=flagged,
                      outputs_recorded=len(session.results.results) - records_before,
                      first_call_s=round(our_cold, 4))]
    timings = {}
    for impl, (_, cold, _) in peers.items():
        timings[impl] = timing[impl]["median_s"]
        rows.append(timed_row(case, impl, timing[impl], 1 if impl.startswith("pandas")
                              else threads, first_call_s=round(cold, 4),
                              ours_faster_by=round(timings[impl] / warm_ours, 2)))
    rows.append(row(case, "ACRO 1.0.2 crosstab (subprocess, own venv)", acro["cold"],
                    acro["warm"], threads=1, repeats=ACRO_REPEATS,
                    ours_faster_by=round(acro["warm"] / warm_ours, 1)))
    goals = [
        goal(f"masks equal to ACRO's default rules where ACRO is right: {mismatches} mismatches "
             f"over {compared} (cell, rule) pairs ({int(where_right.sum())} cells without "
             f"missing values, on |income|; flagged by ACRO: {acro_flagged}); ratio = share "
             "equal", (compared - mismatches) / max(compared, 1), 1.0),
        goal(">= 50x ACRO", acro["warm"] / warm_ours, 50.0),
        goal(">= 5x pandas (same output: one groupby on a cell code)",
             timings["pandas, one groupby on a cell code (same output)"] / warm_ours, 5.0),
        goal(">= 1.5x DuckDB (native table)", timings["duckdb native table"] / warm_ours, 1.5),
    ]
    return {"workload": ID, "title": TITLE, "scale": scale, "rows": rows, "goals": goals}


def _ours_dense(table: pd.DataFrame, counts: pd.DataFrame,
                flags: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Our mean table, count table and masks laid out on the full (region x age) x sex grid."""
    check_equal("workload C: our count and mean tables' labels", counts.index.to_list(),
                table.index.to_list())
    shape = (SHAPE[0] * SHAPE[1], SHAPE[2])
    rows = np.array([region * SHAPE[1] + age for region, age in table.index])
    cols = np.asarray(table.columns, dtype=np.int64)
    pick = np.ix_(rows, cols)
    dense: dict[str, np.ndarray] = {"mean": np.full(shape, np.nan), "count": np.zeros(shape)}
    dense["mean"][pick] = table.to_numpy(dtype=float)
    dense["count"][pick] = counts.to_numpy(dtype=float)
    for name in MASKS:
        dense[name] = np.zeros(shape, dtype=bool)
        dense[name][pick] = flags[name]
    return dense


def acro_python() -> Path:
    """Interpreter of the ACRO virtualenv (LNDS_ACRO_VENV or .venv-acro at the repo root)."""
    root = Path(__file__).resolve().parent.parent
    venv = Path(os.environ.get(ACRO_VENV_ENV, root / ".venv-acro"))
    return venv / "bin" / "python"


def _run_acro(frame: pd.DataFrame) -> dict:
    """Time ACRO 1.0.2 in its own virtualenv; raise if that virtualenv is missing."""
    python = acro_python()
    if not python.exists():
        raise Disagreement(
            f"workload C: the ACRO peer virtualenv is missing ({python}): "
            "run scripts/setup-acro-peer.sh"
        )
    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / "data.parquet"
        frame.to_parquet(data_path)
        done = subprocess.run(
            [str(python), "-c", _ACRO_SCRIPT, str(data_path), str(ACRO_REPEATS)],
            capture_output=True, text=True, check=False,
        )
    if done.returncode != 0:
        raise Disagreement(f"workload C: ACRO peer failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1] if len(sys.argv) > 1 else "ci", 2), indent=1))
