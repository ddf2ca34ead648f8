"""Workload B: group-by on int-coded and string keys, and station × hour time buckets."""

from __future__ import annotations

import os

import numpy as np

from benchmarks import harness

ID = "B"
TITLE = "Group-by: sum/mean by 100, 1e4, 1e6 groups; string keys; station × hour buckets"
ROWS = {"ci": 10_000_000, "full": 100_000_000}
ROWS_ENV = "LNDS_BENCH_B_ROWS"  # overrides the row count, e.g. 5e7 when 1e8 does not fit
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


def load_average() -> str:
    """The 1-minute load average now, recorded beside each timing (the machine is shared)."""
    return f"{os.getloadavg()[0]:.2f}"


def run(scale: str, threads: int) -> dict:
    """Check DuckDB, Polars and pandas agree with groupby_reduce/time_bucket, then time them."""
    import duckdb
    import pandas as pd
    import polars as pl
    import pyarrow as pa

    from lnds_spe.analysis import factorize, groupby_reduce, time_bucket
    from lnds_spe.analysis.synthetic import groupby_table

    n = int(float(os.environ.get(ROWS_ENV) or ROWS[scale]))
    data = groupby_table(n, seed=1)
    labels = pa.array([f"id{i:03d}" for i in range(100)])
    dict_keys = pa.DictionaryArray.from_arrays(pa.array(data["id_100"]), labels)
    string_keys = dict_keys.cast(pa.string())
    rng = np.random.default_rng(2)
    n_stations = 50
    bucket_time = np.repeat(1_546_300_800 + np.arange(n // n_stations, dtype=np.int64) * 60,
                            n_stations)
    bucket_station = np.tile(np.arange(n_stations, dtype=np.int32), n // n_stations)
    bucket_value = rng.normal(10, 5, bucket_time.size)
    table = pa.table({**data, "id_str": string_keys, "id_dict": dict_keys})
    ts_table = pa.table({"station": bucket_station, "time": bucket_time, "value": bucket_value})
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.register("t_arrow", table)
    con.register("ts_arrow", ts_table)
    load_s, _ = harness.time_once(lambda: (
        con.execute("CREATE TABLE t AS SELECT * EXCLUDE (id_dict) FROM t_arrow"),
        con.execute("CREATE TABLE ts AS SELECT * FROM ts_arrow")))
    frame_pl = pl.from_arrow(table.drop_columns(["id_dict"]))
    ts_pl = pl.from_arrow(ts_table)
    frame_pd = pd.DataFrame({k: v for k, v in data.items()})
    rows, warm, cases = [], {}, {}

    for key, n_groups in KEYS:
        def ours(key=key, n_groups=n_groups):
            r = groupby_reduce(data[key], {"v1": data["v1"], "v3": data["v3"]}, n_groups,
                               ops={"v1": "sum", "v3": "mean"}, threads=threads)
            return r["v1.sum"], r["v3.mean"], r["rows"]

        query = f"SELECT {key}, sum(v1) AS s, avg(v3) AS m FROM {{}} GROUP BY {key}"

        def duck(key=key, query=query):
            return con.execute(query.format("t")).fetchnumpy()

        def duck_arrow(key=key, query=query):
            return con.execute(query.format("t_arrow")).fetchnumpy()

        def polars_q(key=key):
            return frame_pl.group_by(key).agg(pl.col("v1").sum().alias("s"),
                                              pl.col("v3").mean().alias("m"))

        def pandas_q(key=key):
            return frame_pd.groupby(key).agg(s=("v1", "sum"), m=("v3", "mean"))

        # peers return their native result inside the timing; it is made dense only to check
        as_dense = {"DuckDB native": lambda r, key=key: (r[key], r["s"], r["m"]),
                    "DuckDB on Arrow": lambda r, key=key: (r[key], r["s"], r["m"]),
                    "Polars": lambda r, key=key: (r[key].to_numpy(), r["s"].to_numpy(),
                                                  r["m"].to_numpy()),
                    "pandas": lambda r: (r.index.to_numpy(), r["s"].to_numpy(),
                                         r["m"].to_numpy())}
        cases[key] = {"lnds_spe groupby_reduce (fused)": ours, "DuckDB native": duck,
                      "DuckDB on Arrow": duck_arrow, "Polars": polars_q, "pandas": pandas_q}
        our_sum, our_mean, present = ours()
        for name, fn in list(cases[key].items())[1:]:
            idx, peer_sum, peer_mean = as_dense[name](fn())
            peer_sum, peer_mean = dense(idx, [peer_sum, peer_mean], n_groups)
            harness.check_close(f"{key} sum via {name}", np.where(present > 0, our_sum, np.nan),
                                peer_sum, rtol=1e-9)
            harness.check_close(f"{key} mean via {name}", our_mean, peer_mean, rtol=1e-9)

    def ours_str():
        codes, uniques = factorize(string_keys, threads=threads)
        m = groupby_reduce(codes, data["v3"], len(uniques), ops="mean", threads=threads)
        return dict(zip(uniques.tolist(), m["mean"].tolist(), strict=True))

    def duck_str():
        return dict(con.execute("SELECT id_str, avg(v3) FROM t GROUP BY id_str").fetchall())

    def duck_str_arrow():
        return dict(con.execute("SELECT id_str, avg(v3) FROM t_arrow GROUP BY id_str").fetchall())

    def ours_dict():
        m = groupby_reduce(dict_keys, data["v3"], ops="mean", threads=threads)
        return dict(zip(dict_keys.dictionary.to_pylist(), m["mean"].tolist(), strict=True))

    def duck_dict_arrow():
        return dict(con.execute("SELECT id_dict, avg(v3) FROM t_arrow GROUP BY id_dict"
                                ).fetchall())

    mine = ours_str()
    for what, fn in (("string keys mean via DuckDB native", duck_str),
                     ("string keys mean via DuckDB on Arrow", duck_str_arrow),
                     ("dictionary keys mean (ours)", ours_dict),
                     ("dictionary keys mean via DuckDB on Arrow", duck_dict_arrow)):
        theirs = fn()
        harness.check_close(what, [mine[k] for k in sorted(mine)],
                            [theirs[k] for k in sorted(mine)], rtol=1e-9)
    cases["string keys (factorised)"] = {"lnds_spe factorize + groupby_reduce": ours_str,
                                        "DuckDB native": duck_str,
                                        "DuckDB on Arrow": duck_str_arrow}
    cases["string keys, Arrow dictionary-encoded"] = {
        "lnds_spe groupby_reduce on dictionary indices": ours_dict,
        "DuckDB on Arrow": duck_dict_arrow}

    def ours_bucket():
        return time_bucket(bucket_time, bucket_value, "hour", keys=bucket_station,
                           n_keys=n_stations, ops=("mean", "min", "max", "count"),
                           threads=threads)

    def duck_bucket():
        return con.execute("SELECT station, time // 3600 * 3600 AS h, avg(value) AS mean, min(value) AS mn, "
                           "max(value) AS mx, count(value) AS n FROM ts GROUP BY ALL ORDER BY station, h"
                           ).fetchnumpy()

    def polars_bucket():
        return (ts_pl.lazy()
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
            rows.append(harness.row(f"{case}, {n:,} rows", name, cold, warm[(case, name)],
                                    load_avg_1min=load_average()))
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
