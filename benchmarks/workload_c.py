"""Workload C: safe crosstab (counts + mean with threshold, N-K, p %, negatives, missing masks)
against ACRO 1.0.2 (own virtualenv, timed in a subprocess), pandas.crosstab, DuckDB, Polars."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.harness import Disagreement, goal, row, time_cold_warm

ID = "C"
TITLE = "Safe crosstab: region x age band x sex, counts + mean with SDC masks"
ROWS = {"ci": 1_000_000, "full": 10_000_000}
SHAPE = (12, 20, 2)
ACRO_VENV_ENV = "LNDS_ACRO_VENV"
ACRO_REPEATS = 3

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
    """Zipf-skewed keys, lognormal income, a few dominant contributors and some missing values."""
    rng = np.random.default_rng(seed)

    def zipf_codes(size: int, exponent: float) -> np.ndarray:
        weights = 1.0 / np.arange(1, size + 1) ** exponent
        return rng.choice(size, n, p=weights / weights.sum()).astype(np.int8)

    region = zipf_codes(SHAPE[0], 1.1)
    age = zipf_codes(SHAPE[1], 1.6)
    sex = rng.integers(0, SHAPE[2], n).astype(np.int8)
    income = rng.lognormal(10.0, 1.0, n)
    dominant = rng.choice(n, 40, replace=False)
    income[dominant] *= 2000.0
    income[rng.choice(n, n // 2000, replace=False)] = np.nan
    return {"region": region, "age": age, "sex": sex, "income": income}


def masks_from_stats(count, n_values, abs_total, top1, top2) -> dict[str, np.ndarray]:
    """The default-profile masks from per-cell statistics, whoever computed them."""
    from lnds_spe.sdc import rules
    from lnds_spe.sdc.config import SDCConfig

    c = SDCConfig()
    return {
        "threshold": rules.threshold_mask(n_values, c.safe_threshold, True),
        "nk-rule": rules.nk_dominance_mask(abs_total, top1 + top2, c.safe_nk_k),
        "p-ratio": rules.p_percent_mask(abs_total, top1, top2, c.safe_pratio_p),
        "count": np.asarray(count),
    }


def run(scale: str, threads: int) -> dict:
    """Generate once, check every peer's masks against ours, then time each."""
    import duckdb
    import polars as pl
    import pyarrow as pa

    from lnds_spe.sdc import ACRO

    n = ROWS[scale]
    data = make_data(n)
    frame = pd.DataFrame(data)
    arrow = pa.table(data)
    session = ACRO(suppress=False)

    def ours() -> pd.DataFrame:
        return session.crosstab([frame.region, frame.age], frame.sex, values=frame.income,
                                aggfunc="mean")

    our_table = ours()
    our_flags = session.results.get("output_0").flags
    record_count = len(session.results.results)

    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.register("arrow_data", arrow)
    con.execute("CREATE TABLE native AS SELECT * FROM arrow_data")
    sql = """SELECT region, age, sex, count(*) AS n,
                    count(*) FILTER (WHERE NOT isnan(income)) AS n_values,
                    sum(abs(income)) FILTER (WHERE NOT isnan(income)) AS abs_total,
                    max(abs(income), 2) FILTER (WHERE NOT isnan(income)) AS top2,
                    count(*) FILTER (WHERE income < 0) AS negatives,
                    count(*) FILTER (WHERE isnan(income)) AS missing,
                    avg(income) FILTER (WHERE NOT isnan(income)) AS mean
             FROM {src} GROUP BY ALL ORDER BY ALL"""

    def duck(src: str) -> pd.DataFrame:
        return con.execute(sql.format(src=src)).df()

    polars_frame = pl.from_arrow(arrow).with_columns(
        pl.col("income").fill_nan(None))

    def polars_query() -> pl.DataFrame:
        return polars_frame.group_by(["region", "age", "sex"]).agg(
            pl.len().alias("n"), pl.col("income").count().alias("n_values"),
            pl.col("income").abs().sum().alias("abs_total"),
            pl.col("income").abs().top_k(2).alias("top2"),
            (pl.col("income") < 0).sum().alias("negatives"),
            pl.col("income").is_null().sum().alias("missing"),
            pl.col("income").mean().alias("mean"),
        ).sort(["region", "age", "sex"])

    def pandas_crosstab() -> pd.DataFrame:
        return pd.crosstab([frame.region, frame.age], frame.sex, values=frame.income,
                           aggfunc="mean")

    # ---- agreement before timing --------------------------------------------------------
    def grid(values: np.ndarray, keys: pd.DataFrame) -> np.ndarray:
        out = np.zeros(SHAPE)
        out[keys.region.to_numpy(), keys.age.to_numpy(), keys.sex.to_numpy()] = values
        return out.reshape(SHAPE[0] * SHAPE[1], SHAPE[2])

    def peer_masks(result: pd.DataFrame) -> dict[str, np.ndarray]:
        top = np.array([list(t) + [0.0] * (2 - len(t)) for t in result.top2])
        return masks_from_stats(grid(result.n, result), grid(result.n_values, result),
                                grid(result.abs_total, result), grid(top[:, 0], result),
                                grid(top[:, 1], result))

    observed = grid(np.ones(len(duck("native"))), duck("native")).astype(bool)
    ours_dense = {}
    for name in ("threshold", "nk-rule", "p-ratio"):
        dense = np.zeros(observed.shape, dtype=bool)
        for i, (region, age) in enumerate(our_table.index):
            for j, sex in enumerate(our_table.columns):
                dense[region * SHAPE[1] + age, sex] = our_flags[name][i, j]
        ours_dense[name] = dense
    peers = {"duckdb": duck("native"), "polars": polars_query().to_pandas()}
    for peer, result in peers.items():
        masks = peer_masks(result)
        for name, ours_mask in ours_dense.items():
            if not np.array_equal(masks[name] & observed, ours_mask & observed):
                raise Disagreement(f"workload C: {peer} gives a different {name} mask")
    expected_mean = pandas_crosstab()
    if not np.allclose(our_table.to_numpy(dtype=float), expected_mean.to_numpy(dtype=float),
                       rtol=1e-9, equal_nan=True):
        raise Disagreement("workload C: our mean table differs from pandas.crosstab")
    acro = _run_acro(frame)
    missing_cells = grid(peers["duckdb"].missing, peers["duckdb"]) > 0
    for name in ours_dense:
        theirs = np.zeros(observed.shape, dtype=bool)
        for key, text in acro["flagged"].items():
            (region, age), sex = json.loads(key)
            if any(ACRO_CHECK_NAMES.get(c.strip()) == name for c in text.split(";")):
                theirs[region * SHAPE[1] + age, sex] = True
        where_right = observed & ~missing_cells  # ACRO counts rows with missing income
        acro_right_cells = int(where_right.sum())
        if not np.array_equal(theirs[where_right], ours_dense[name][where_right]):
            raise Disagreement(f"workload C: ACRO 1.0.2 gives a different {name} mask")

    # ---- timing ---------------------------------------------------------------------------
    rows = []
    case = f"{n:.0e} rows, 480 cells"
    cold, warm_ours = time_cold_warm(ours)
    flagged = {k: int(v.sum()) for k, v in our_flags.items()}
    rows.append(row(case, "lnds_spe.sdc.ACRO.crosstab", cold, warm_ours, threads=threads,
                    flagged=flagged, outputs_recorded=len(session.results.results) - record_count))
    timings = {}
    for impl, fn in (("pandas.crosstab (mean only, no checks)", pandas_crosstab),
                     ("duckdb native table", lambda: duck("native")),
                     ("duckdb on arrow", lambda: duck("arrow_data")),
                     ("polars from_arrow", polars_query)):
        cold, warm = time_cold_warm(fn)
        timings[impl] = warm
        rows.append(row(case, impl, cold, warm, threads=threads))
    goals = [
        goal("masks identical to ACRO's default rules where ACRO is right "
             f"({acro_right_cells} cells compared)", 1.0, 1.0),
        goal(">= 5x pandas.crosstab", timings["pandas.crosstab (mean only, no checks)"]
             / warm_ours, 5.0),
        goal(">= 1.5x DuckDB (native table)", timings["duckdb native table"] / warm_ours, 1.5),
    ]
    rows.append(row(case, "ACRO 1.0.2 crosstab (subprocess, own venv)", acro["cold"],
                    acro["warm"], repeats=ACRO_REPEATS))
    goals.insert(1, goal(">= 50x ACRO", acro["warm"] / warm_ours, 50.0))
    return {"workload": ID, "title": TITLE, "scale": scale, "rows": rows, "goals": goals}


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
