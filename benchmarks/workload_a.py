"""Workload A: the meteo map — yearly mean per station, then IDW onto 1524 grid cells."""

from __future__ import annotations

import os

import numpy as np

from benchmarks import harness

ID = "A"
TITLE = "Meteo map: mean per station over a year, then 1524 cells × 5 nearest, IDW power 2"
YEARS = {"ci": 0.5, "full": 5.0}
N_CELLS = 1524
MEASUREMENT = "temperature_c"
# The bandwidth floors divide by the memory read bandwidth all threads reach together in the
# same run (issue 14 guessed about 27–34 GB/s; measured here it was 14–38 GB/s on one core,
# by CPU); LNDS_BENCH_GBPS fixes it instead, in GB/s.
FIXED_GBPS = os.environ.get("LNDS_BENCH_GBPS")


PROBE_YEARS = 0.1  # the fresh-process probes' network: cold start and memory, not throughput


def aligned(series_ids: np.ndarray, counts: dict[int, int], sums: dict[int, float],
            wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A peer's per-series counts and means in our series order (count 0 and NaN where absent)."""
    count = np.array([counts.get(int(s), 0) for s in wanted], dtype=np.int64)
    total = np.array([sums.get(int(s), 0.0) for s in wanted])
    return count, np.where(count > 0, total / np.maximum(count, 1), np.nan)


def in_order(series: np.ndarray, counts: np.ndarray, means: np.ndarray,
             wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Our per-series counts and means laid out in `wanted` order (0 and NaN where absent)."""
    position = {int(s): i for i, s in enumerate(series)}
    pick = np.array([position.get(int(s), -1) for s in wanted])
    found = pick >= 0
    count = np.where(found, np.asarray(counts)[pick], 0).astype(np.int64)
    return count, np.where(found & (count > 0), np.asarray(means)[pick], np.nan)


def break_even(build_ours: float, query_ours: float, build_peer: float,
               query_peer: float) -> float | None:
    """Queries after which our layout (build + n queries) costs less than the peer's; 0 when
    ours is never dearer, None when ours never catches up."""
    if build_ours <= build_peer and query_ours <= query_peer:
        return 0.0
    if query_ours >= query_peer:
        return None
    return max((build_ours - build_peer) / (query_peer - query_ours), 0.0)


class Setup:
    """The meteo network, our layouts and the peers' tables, with what each took to build."""

    def __init__(self, years: float, threads: int, only: str | None = None) -> None:
        import duckdb
        import polars as pl
        import pyarrow as pa

        from lnds_spe.analysis import TimeSeriesStore
        from lnds_spe.analysis.synthetic import YEAR_SECONDS, grid_cells, meteo_network

        self.years, self.threads = years, threads
        self.generate_s, self.net = harness.time_once(lambda: meteo_network(years=years, seed=42))
        net = self.net
        self.wanted = net.series_of(MEASUREMENT)
        self.t0 = int(net.times[0]) + (YEAR_SECONDS if years >= 3 else 0)
        self.t1 = self.t0 + int(min(1.0, years) * YEAR_SECONDS)
        self.cells = grid_cells(N_CELLS)
        self.ref_lat = float(net.station_lat.mean())
        self.build_s: dict[str, float] = {}
        self.build_s["per-series layout"], self.store = harness.time_once(
            lambda: TimeSeriesStore.build(net.times, net.series, net.values, threads=threads))
        self.build_s["daily roll-ups"] = self.build_s["per-series layout"] + harness.time_once(
            lambda: self.store.add_rollup("day"))[0]
        self.table = pa.table({"time": net.times, "series": net.series, "value": net.values})
        self.con = duckdb.connect()
        self.con.execute(f"SET threads = {threads}")
        self.con.register("meteo_arrow", self.table)
        for name, sql in (
                ("DuckDB native", "CREATE TABLE meteo AS SELECT * FROM meteo_arrow"),
                ("DuckDB sorted (series, time)", "CREATE TABLE meteo_sorted AS SELECT * FROM "
                 "meteo_arrow ORDER BY series, time"),
                ("DuckDB daily table", "CREATE TABLE meteo_daily AS SELECT series, "
                 "time // 86400 * 86400 AS day, sum(value::DOUBLE) AS s, count(value) AS n "
                 "FROM meteo_arrow WHERE NOT isnan(value) GROUP BY ALL ORDER BY series, day")):
            if only is not None and only != name:
                continue
            self.build_s[name] = harness.time_once(lambda sql=sql: self.con.execute(sql))[0]
        self.polars = pl.from_arrow(self.table)
        self.pandas = self.table.to_pandas()

    def draw(self, counts_means: tuple[np.ndarray, np.ndarray]) -> tuple:
        """Every implementation's map is drawn by the same IDW (ours) from its means."""
        from lnds_spe.analysis import knn_idw

        counts, means = counts_means
        return counts, means, knn_idw(self.net.station_lon, self.net.station_lat, means,
                                      *self.cells, k=5, power=2.0, ref_lat=self.ref_lat,
                                      threads=self.threads)

    def implementations(self) -> dict:
        """Name → zero-argument query + map, for ours and every peer."""
        import polars as pl

        from lnds_spe.analysis import window_scan

        net, wanted, t0, t1, threads = self.net, self.wanted, self.t0, self.t1, self.threads

        def scan(time_sorted: bool):
            got = window_scan(net.times, net.series, net.values, t0, t1, wanted,
                              time_sorted=time_sorted, threads=threads)
            return self.draw(in_order(got["series"], got["count"], got["mean"], wanted))

        def store(rollup):
            got = self.store.window(t0, t1, use_rollup=rollup, minmax=False, series=wanted)
            return self.draw((got["count"], got["mean"]))

        ids_sql = ", ".join(str(int(s)) for s in wanted)
        raw_sql = ("SELECT series, count(value), sum(value::DOUBLE) FROM {src} WHERE time >= "
                   f"{t0} AND time < {t1} AND series IN ({ids_sql}) AND NOT isnan(value) "
                   "GROUP BY series")
        daily_sql = (f"SELECT series, sum(n), sum(s) FROM meteo_daily WHERE day >= {t0} AND "
                     f"day < {t1} AND series IN ({ids_sql}) GROUP BY series")

        def duck(sql: str):
            rows = self.con.execute(sql).fetchall()
            return self.draw(aligned(wanted, {r[0]: r[1] for r in rows},
                                     {r[0]: r[2] for r in rows}, wanted))

        def polars_query():
            out = (self.polars.lazy()
                   .filter((pl.col("time") >= t0) & (pl.col("time") < t1)
                           & pl.col("series").is_in(wanted.tolist())
                           & pl.col("value").is_not_nan())
                   .group_by("series").agg(pl.len().alias("n"),
                                           pl.col("value").cast(pl.Float64).sum().alias("s"))
                   .collect())
            keys = out["series"].to_list()
            return self.draw(aligned(wanted, dict(zip(keys, out["n"].to_list(), strict=True)),
                                     dict(zip(keys, out["s"].to_list(), strict=True)), wanted))

        def pandas_query():
            frame = self.pandas
            sel = frame[(frame["time"] >= t0) & (frame["time"] < t1)
                        & frame["series"].isin(wanted) & frame["value"].notna()]
            # float32 values summed in float64, as every other implementation does
            grouped = sel["value"].astype(np.float64).groupby(sel["series"]).agg(["count", "sum"])
            return self.draw(aligned(wanted, grouped["count"].to_dict(),
                                     grouped["sum"].to_dict(), wanted))

        return {"full scan": lambda: scan(False), "time-sorted layout": lambda: scan(True),
                "per-series layout": lambda: store(None), "daily roll-ups": lambda: store("day"),
                "DuckDB native": lambda: duck(raw_sql.format(src="meteo")),
                "DuckDB on Arrow": lambda: duck(raw_sql.format(src="meteo_arrow")),
                "DuckDB sorted (series, time)": lambda: duck(raw_sql.format(src="meteo_sorted")),
                "DuckDB daily table": lambda: duck(daily_sql),
                "Polars": polars_query, "pandas": pandas_query}


def probes(scale: str, threads: int, name: str | None = None) -> dict:
    """Fresh-process probes on a short network; with `name`, only that peer's table is built.
    The IDW every implementation shares is compiled here, so a cold start is the query's."""
    setup = Setup(PROBE_YEARS, threads, only=name)
    setup.draw((np.zeros(setup.wanted.size, dtype=np.int64), np.ones(setup.wanted.size)))
    return setup.implementations()


def check_agreement(impls: dict) -> None:
    """Every implementation's per-series counts equal ours exactly, means and map at 1e-9."""
    counts, means, grid = impls["per-series layout"]()
    for name, fn in impls.items():
        their_counts, their_means, their_grid = fn()
        harness.check_equal(f"per-series counts via {name}", their_counts, counts)
        harness.check_close(f"per-series means via {name}", their_means, means, rtol=1e-9)
        harness.check_close(f"map via {name}", their_grid, grid, rtol=1e-9)


def run(scale: str, threads: int) -> dict:
    """Generate the network once, check every implementation, then time them round-robin."""
    from lnds_spe.analysis import TimeSeriesStore
    from lnds_spe.analysis.synthetic import YEAR_SECONDS, meteo_network

    setup = Setup(YEARS[scale], threads)
    impls = setup.implementations()
    check_agreement(impls)
    names = ["per-series layout", *(n for n in impls if n != "per-series layout")]
    probe = harness.fresh_process_probes(ID, scale, threads, harness.probe_names(scale, names))
    read_gbs = [harness.parallel_read_gbs(setup.net.times, threads)]
    timing = harness.interleave(impls, harness.repeats_for(scale))
    read_gbs.append(harness.parallel_read_gbs(setup.net.times, threads))
    measured_gbs = max(read_gbs)
    gbs = float(FIXED_GBPS) if FIXED_GBPS else measured_gbs
    gbs_source = "set by LNDS_BENCH_GBPS" if FIXED_GBPS else f"this run's {threads}-thread read bandwidth"
    warm = {name: stats["median_s"] for name, stats in timing.items()}
    n_rows = int(setup.net.times.size)
    years = setup.years
    case = f"{n_rows:,} rows, {years:g} years"
    single_thread = {"pandas"}
    rows = []
    for name, stats in timing.items():
        extra = {}
        if name in setup.build_s:
            extra["build_s"] = round(setup.build_s[name], 3)
        if name.startswith("DuckDB") and name in setup.build_s:
            for ours in ("per-series layout", "daily roll-ups"):
                n = break_even(setup.build_s[ours], warm[ours], setup.build_s[name], warm[name])
                extra[f"break_even_queries_vs_{ours.split()[0]}"] = (
                    "never" if n is None else round(n, 1))
        rows.append(harness.timed_row(case, name, stats, 1 if name in single_thread else threads,
                                      probe.get(name), **extra))
    rows.append(harness.row(case, "one-off costs", None, setup.build_s["daily roll-ups"],
                            generate_s=round(setup.generate_s, 2),
                            process_peak_rss_mib_so_far=round(harness.peak_rss_mib(), 1),
                            **{f"build {k}": round(v, 2) for k, v in setup.build_s.items()}))
    rows.append(harness.row(case, "memory read of the times column (numpy max, one share per "
                            "thread), its best", None, setup.net.times.nbytes / measured_gbs / 1e9,
                            threads, gbs_before_timing=read_gbs[0], gbs_after_timing=read_gbs[1],
                            floors_use_gbs=gbs))
    floor_s = n_rows * 16 / (gbs * 1e9)
    # the time-sorted scan binary-searches the times (a few dozen reads), then must read the id
    # (4 B) and the value (4 B) of every row in the window, and nothing else
    window_rows = int(np.searchsorted(setup.net.times, setup.t1)
                      - np.searchsorted(setup.net.times, setup.t0))
    sorted_floor_s = window_rows * 8 / (gbs * 1e9)
    setup.con.close()
    net, store, t0, t1, wanted = setup.net, setup.store, setup.t0, setup.t1, setup.wanted
    del setup, impls

    # history length: the same one-year query on 5 vs 10 years of one measurement
    stores = {}
    for n_years in (years, 2 * years):
        single = meteo_network(years=n_years, n_measurements=1, seed=7)
        stores[n_years] = (TimeSeriesStore.build(single.times, single.series, single.values,
                                                 rollups=("day",), threads=threads),
                           int(single.times[0]))
    window = int(min(1.0, years) * YEAR_SECONDS)
    history = harness.interleave(
        {(n_years, mode): (lambda s=s, start=start, mode=mode: s.window(
            start, start + window, use_rollup=mode, minmax=False))
         for n_years, (s, start) in stores.items() for mode in (None, "day")},
        max(harness.repeats_for(scale), 9))
    for (n_years, mode), stats in history.items():
        rows.append(harness.timed_row(f"history {n_years:g} years, 1 measurement",
                                      f"per-series window ({mode or 'raw'})", stats, threads))
    del stores
    _plot_map(net, store, t0, t1, wanted)
    best_duck = min(warm[n] for n in warm if n.startswith("DuckDB"))
    goals = [
        harness.goal("full scan ≤ Polars (Polars time / our full-scan time)",
                     warm["Polars"] / warm["full scan"], 1.0),
        harness.goal_at_most(f"full scan vs the bandwidth floor (16 B/row at {gbs:g} GB/s, "
                             f"{gbs_source}), × floor",
                             warm["full scan"] / floor_s, 1.5),
        harness.goal_at_most(f"time-sorted layout vs its bandwidth floor (8 B per row in the "
                             f"window: id and value; the times are only binary-searched; at "
                             f"{gbs:g} GB/s), × floor",
                             warm["time-sorted layout"] / sorted_floor_s, 2.0),
        harness.goal("time-sorted layout ≥ 1.5× DuckDB native",
                     warm["DuckDB native"] / warm["time-sorted layout"], 1.5),
        harness.goal_at_most("per-series layout end to end, warm ms",
                             warm["per-series layout"] * 1e3, 5.0),
        harness.goal("per-series layout ≥ 2× DuckDB on its best layout (sorted or daily table)",
                     best_duck / warm["per-series layout"], 2.0),
        harness.goal_at_most("daily roll-ups end to end, warm ms",
                             warm["daily roll-ups"] * 1e3, 1.0),
        harness.goal(f"{2 * years:g} years of history cost the same as {years:g} (time ratio, "
                     "≥ 0.8 counts as the same)",
                     history[(years, None)]["median_s"] / history[(2 * years, None)]["median_s"],
                     0.8),
    ]
    return {"workload": ID, "title": TITLE, "scale": scale, "rows": rows, "goals": goals}


def _plot_map(net, store, t0: int, t1: int, wanted: np.ndarray) -> None:
    """The interpolated yearly mean temperature of Luxembourg, with the stations, as a PNG."""
    path = harness.artifact_path("meteo_map.png")
    if path is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lnds_spe.analysis import idw_grid
    from lnds_spe.analysis.synthetic import LUXEMBOURG_LAT, LUXEMBOURG_LON

    means = store.window(t0, t1, use_rollup="day", series=wanted)["mean"]
    lons, lats, grid = idw_grid(net.station_lon, net.station_lat, means, LUXEMBOURG_LON,
                                LUXEMBOURG_LAT, nx=160, ny=150)
    fig, ax = plt.subplots(figsize=(6, 7))
    image = ax.pcolormesh(lons, lats, grid, cmap="coolwarm", shading="auto")
    ax.scatter(net.station_lon, net.station_lat, c="black", s=10, label="stations")
    fig.colorbar(image, ax=ax, label="mean temperature (°C)")
    ax.set_xlabel("longitude (°E)")
    ax.set_ylabel("latitude (°N)")
    ax.set_title("IDW (k=5, power 2) of yearly station means")
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
