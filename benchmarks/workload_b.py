"""Workload B: group-by on int-coded and string keys, and station × hour time buckets."""

from __future__ import annotations

import numpy as np

from benchmarks import harness

ID = "B"
TITLE = "Group-by: sum/mean by 100, 1e4, 1e6 groups; string keys; station × hour buckets"
ROWS = {"ci": 10_000_000, "full": 100_000_000}
KEYS = (("id_100", 100), ("id_10k", 10_000), ("id_1m", 1_000_000))


def dense(keys: list, columns: list[list], n_groups: int) -> list[np.ndarray]:
    """Scatter a peer's (key, value...) rows into dense arrays indexed by key, NaN elsewhere."""
    idx = np.asarray(keys, dtype=np.int64)
    out = []
    for col in columns:
        arr = np.full(n_groups, np.nan)
        arr[idx] = np.asarray(col, dtype=np.float64)
        out.append(arr)
    return out


def run(scale: str, threads: int) -> dict:
    """Check DuckDB, Polars and pandas agree with groupby_reduce/time_bucket, then time them."""
    import duckdb
    import pandas as pd
    import polars as pl
    import pyarrow as pa

    from lnds_spe.analysis import factorize, groupby_reduce, time_bucket
    from lnds_spe.analysis.synthetic import groupby_table

    n = ROWS[scale]
    data = groupby_table(n, seed=1)
    labels = pa.array([f"id{i:03d}" for i in range(100)])
    string_keys = pa.DictionaryArray.from_arrays(pa.array(data["id_100"]), labels).cast(
        pa.string())
    rng = np.random.default_rng(2)
    n_stations = 50
    bucket_time = np.repeat(1_546_300_800 + np.arange(n // n_stations, dtype=np.int64) * 60,
                            n_stations)
    bucket_station = np.tile(np.arange(n_stations, dtype=np.int32), n // n_stations)
    bucket_value = rng.normal(10, 5, bucket_time.size)
    table = pa.table({**data, "id_str": string_keys})
    ts_table = pa.table({"station": bucket_station, "time": bucket_time, "value": bucket_value})
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.register("t_arrow", table)
    con.register("ts_arrow", ts_table)
    load_s, _ = harness.time_once(lambda: (
        con.execute("CREATE TABLE t AS SELECT * FROM t_arrow"),
        con.execute("CREATE TABLE ts AS SELECT * FROM ts_arrow")))
    frame_pl = pl.from_arrow(table)
    frame_pd = pd.DataFrame({k: v for k, v in data.items()})
    rows, warm, cases = [], {}, {}

    for key, n_groups in KEYS:
        def ours(key=key, n_groups=n_groups):
            s = groupby_reduce(data[key], data["v1"], n_groups, ops="sum", threads=threads)
            m = groupby_reduce(data[key], data["v3"], n_groups, ops="mean", threads=threads)
            return s["sum"], m["mean"], s["rows"]

        def duck(key=key, n_groups=n_groups):
            r = con.execute(f"SELECT {key}, sum(v1), avg(v3) FROM t GROUP BY {key}").fetchnumpy()
            return dense(r[key], [r["sum(v1)"], r["avg(v3)"]], n_groups)

        def polars_q(key=key, n_groups=n_groups):
            r = frame_pl.group_by(key).agg(pl.col("v1").sum(), pl.col("v3").mean())
            return dense(r[key].to_numpy(), [r["v1"].to_numpy(), r["v3"].to_numpy()], n_groups)

        def pandas_q(key=key, n_groups=n_groups):
            r = frame_pd.groupby(key).agg(v1=("v1", "sum"), v3=("v3", "mean"))
            return dense(r.index.to_numpy(), [r["v1"].to_numpy(), r["v3"].to_numpy()], n_groups)

        cases[key] = {"lnds_spe groupby_reduce": ours, "DuckDB native": duck, "Polars": polars_q,
                      "pandas": pandas_q}
        our_sum, our_mean, present = ours()
        for name, fn in list(cases[key].items())[1:]:
            peer_sum, peer_mean = fn()
            harness.check_close(f"{key} sum via {name}", np.where(present > 0, our_sum, np.nan),
                                peer_sum, rtol=1e-9)
            harness.check_close(f"{key} mean via {name}", our_mean, peer_mean, rtol=1e-9)

    def ours_str():
        codes, uniques = factorize(string_keys, threads=threads)
        m = groupby_reduce(codes, data["v3"], len(uniques), ops="mean", threads=threads)
        return dict(zip(uniques.tolist(), m["mean"].tolist(), strict=True))

    def duck_str():
        return dict(con.execute("SELECT id_str, avg(v3) FROM t GROUP BY id_str").fetchall())

    mine, theirs = ours_str(), duck_str()
    harness.check_close("string keys mean via DuckDB", [mine[k] for k in sorted(mine)],
                        [theirs[k] for k in sorted(mine)], rtol=1e-9)
    cases["string keys (factorised)"] = {"lnds_spe factorize + groupby_reduce": ours_str,
                                        "DuckDB native": duck_str}

    def ours_bucket():
        return time_bucket(bucket_time, bucket_value, "hour", keys=bucket_station,
                           n_keys=n_stations, threads=threads)

    def duck_bucket():
        return con.execute("SELECT station, time // 3600 * 3600 AS h, avg(value) AS mean, min(value) AS mn, "
                           "max(value) AS mx, count(value) AS n FROM ts GROUP BY ALL ORDER BY station, h"
                           ).fetchnumpy()

    def polars_bucket():
        return (pl.from_arrow(ts_table).lazy()
                .group_by("station", (pl.col("time") // 3600 * 3600).alias("h"))
                .agg(pl.col("value").mean().alias("mean"), pl.col("value").min().alias("min"),
                     pl.col("value").max().alias("max"), pl.col("value").count().alias("count"))
                .sort("station", "h").collect())

    mine_b, duck_b, pol_b = ours_bucket(), duck_bucket(), polars_bucket()
    harness.check_equal("bucket keys via DuckDB", mine_b["key"], duck_b["station"])
    harness.check_equal("bucket starts via DuckDB", mine_b["bucket_start"], duck_b["h"])
    harness.check_close("bucket means via DuckDB", mine_b["mean"], duck_b["mean"])
    harness.check_close("bucket max via Polars", mine_b["max"], pol_b["max"].to_numpy())
    harness.check_equal("bucket counts via Polars", mine_b["count"], pol_b["count"].to_numpy())
    cases["station × hour"] = {"lnds_spe time_bucket": ours_bucket, "DuckDB native": duck_bucket,
                               "Polars": polars_bucket}

    for case, impls in cases.items():
        for name, fn in impls.items():
            cold, warm[(case, name)] = harness.time_cold_warm(fn)
            rows.append(harness.row(f"{case}, {n:,} rows", name, cold, warm[(case, name)]))
    rows.append(harness.row("one-off costs", "DuckDB native load", None, load_s))
    con.close()

    def ratio(case: str, peer: str) -> float:
        ours_name = next(iter(cases[case]))
        return warm[(case, peer)] / warm[(case, ours_name)]

    goals = [harness.goal("≥ 2× DuckDB native, 100 int-coded groups", ratio("id_100", "DuckDB native"), 2),
             harness.goal("≥ 2× DuckDB native, 1e4 int-coded groups", ratio("id_10k", "DuckDB native"), 2),
             harness.goal("≥ 3× DuckDB native, 1e6 int-coded groups", ratio("id_1m", "DuckDB native"), 3),
             harness.goal("string keys incl. factorising: ≤ 1.5× DuckDB's time",
                          ratio("string keys (factorised)", "DuckDB native"), 1 / 1.5),
             harness.goal("≥ 5× pandas (worst int-coded case)",
                          min(ratio(k, "pandas") for k, _ in KEYS), 5),
             harness.goal("station × hour: ≥ 2× DuckDB native",
                          ratio("station × hour", "DuckDB native"), 2)]
    return {"workload": ID, "title": TITLE, "scale": scale, "rows": rows, "goals": goals}
