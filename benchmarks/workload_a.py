"""Workload A: the meteo map — yearly mean per station, then IDW onto 1524 grid cells."""

from __future__ import annotations

import numpy as np

from benchmarks import harness

ID = "A"
TITLE = "Meteo map: mean per station over a year, then 1524 cells × 5 nearest, IDW power 2"
YEARS = {"ci": 0.5, "full": 5.0}
N_CELLS = 1524
MEASUREMENT = "temperature_c"


def reference_means(frame_means: dict[int, float], series_ids: np.ndarray) -> np.ndarray:
    """Peer means (series id → mean) in our series order, NaN where the peer has none."""
    return np.array([frame_means.get(int(s), np.nan) for s in series_ids])


def run(scale: str, threads: int) -> dict:
    """Generate the network once, check every peer's means and map, then time each layout."""
    import duckdb
    import polars as pl
    import pyarrow as pa
    from scipy.spatial import cKDTree

    from benchmarks.workload_e import scipy_idw
    from lnds_spe.analysis import TimeSeriesStore, knn_idw, window_scan
    from lnds_spe.analysis.spatial import planar_xy
    from lnds_spe.analysis.synthetic import YEAR_SECONDS, grid_cells, meteo_network

    years = YEARS[scale]
    gen_s, net = harness.time_once(lambda: meteo_network(years=years, seed=42))
    wanted = net.series_of(MEASUREMENT)
    t0 = int(net.times[0]) + (YEAR_SECONDS if years >= 3 else 0)
    t1 = t0 + int(min(1.0, years) * YEAR_SECONDS)
    cell_lon, cell_lat = grid_cells(N_CELLS)
    ref_lat = float(net.station_lat.mean())
    n_rows = int(net.times.size)

    def our_map(means: np.ndarray) -> np.ndarray:
        return knn_idw(net.station_lon, net.station_lat, means, cell_lon, cell_lat, k=5,
                       power=2.0, ref_lat=ref_lat, threads=threads)

    def peer_map(means: np.ndarray) -> np.ndarray:
        sx, sy = planar_xy(net.station_lon, net.station_lat, ref_lat)
        qx, qy = planar_xy(cell_lon, cell_lat, ref_lat)
        return scipy_idw(cKDTree, sx, sy, means, qx, qy, threads)

    # ours: three layouts
    layout_s, store = harness.time_once(lambda: TimeSeriesStore.build(
        net.times, net.series, net.values, threads=threads))
    rollup_s, _ = harness.time_once(lambda: store.add_rollup("day"))

    def full_scan():
        return our_map(window_scan(net.times, net.series, net.values, t0, t1, wanted,
                                   threads=threads)["mean"])

    def time_sorted():
        return our_map(window_scan(net.times, net.series, net.values, t0, t1, wanted,
                                   time_sorted=True, threads=threads)["mean"])

    def per_series():
        return our_map(store.window(t0, t1, use_rollup=None, minmax=False, series=wanted)["mean"])

    def daily():
        return our_map(store.window(t0, t1, use_rollup="day", minmax=False,
                                    series=wanted)["mean"])

    # peers, given the same columns zero-copy through Arrow
    table = pa.table({"time": net.times, "series": net.series, "value": net.values})
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.register("meteo_arrow", table)
    native_s, _ = harness.time_once(
        lambda: con.execute("CREATE TABLE meteo AS SELECT * FROM meteo_arrow"))
    ids_sql = ", ".join(str(int(s)) for s in wanted)
    sql = ("SELECT series, avg(value) FROM {src} WHERE time >= {t0} AND time < {t1} "
           f"AND series IN ({ids_sql}) AND NOT isnan(value) GROUP BY series")
    frames = {"polars": pl.from_arrow(table), "pandas": table.to_pandas()}

    def duck(src: str):
        rows = con.execute(sql.format(src=src, t0=t0, t1=t1)).fetchall()
        return peer_map(reference_means(dict(rows), wanted))

    def polars_query():
        out = (frames["polars"].lazy()
               .filter((pl.col("time") >= t0) & (pl.col("time") < t1)
                       & pl.col("series").is_in(wanted.tolist()) & pl.col("value").is_not_nan())
               .group_by("series").agg(pl.col("value").cast(pl.Float64).mean()).collect())
        means = dict(zip(out["series"].to_list(), out["value"].to_list(), strict=True))
        return peer_map(reference_means(means, wanted))

    def pandas_query():
        frame = frames["pandas"]
        sel = frame[(frame["time"] >= t0) & (frame["time"] < t1) & frame["series"].isin(wanted)]
        means = sel.groupby("series")["value"].mean().to_dict()
        return peer_map(reference_means(means, wanted))

    ours = {"full scan": full_scan, "time-sorted layout": time_sorted,
            "per-series layout": per_series, "daily roll-ups": daily}
    peers = {"DuckDB native": lambda: duck("meteo"), "DuckDB on Arrow": lambda: duck("meteo_arrow"),
             "Polars": polars_query, "pandas": pandas_query}
    expected = per_series()
    for name, fn in {**ours, **peers}.items():
        harness.check_close(f"map via {name}", fn(), expected, rtol=1e-5)

    case = f"{n_rows:,} rows, {years:g} years"
    rows, warm = [], {}
    for name, fn in {**ours, **peers}.items():
        cold, warm[name] = harness.time_cold_warm(fn, 7 if name in ours else 5)
        rows.append(harness.row(case, name, cold, warm[name]))
    rows[2]["extra"]["build_layout_s"] = round(layout_s, 3)
    rows[3]["extra"]["build_daily_rollup_s"] = round(rollup_s, 3)
    rows.append(harness.row(case, "one-off costs", None, layout_s + rollup_s,
                            generate_s=round(gen_s, 2), duckdb_native_load_s=round(native_s, 2),
                            store_layout_s=round(layout_s, 2), daily_rollup_s=round(rollup_s, 2)))
    frames.clear()  # free the peers' copies before the history measurement
    del table
    con.close()

    # history length: the same one-year query on 5 vs 10 years of one measurement
    history = {}
    for n_years in (years, 2 * years):
        single = meteo_network(years=n_years, n_measurements=1, seed=7)
        hstore = TimeSeriesStore.build(single.times, single.series, single.values,
                                       rollups=("day",), threads=threads)
        for mode in (None, "day"):
            history[(n_years, mode)] = harness.time_warm(
                lambda hstore=hstore, mode=mode, start=int(single.times[0]): hstore.window(
                    start, start + int(min(1.0, years) * YEAR_SECONDS), use_rollup=mode,
                    minmax=False), 9)
            rows.append(harness.row(f"history {n_years:g} years, 1 measurement",
                                    f"per-series window ({mode or 'raw'})", None,
                                    history[(n_years, mode)]))
        del single, hstore
    _plot_map(net, store, t0, t1, wanted)
    goals = [
        harness.goal("full scan ≤ Polars (Polars time / our full-scan time)",
                     warm["Polars"] / warm["full scan"], 1.0),
        harness.goal("time-sorted layout ≥ 1.5× DuckDB native",
                     warm["DuckDB native"] / warm["time-sorted layout"], 1.5),
        harness.goal_at_most("per-series layout end to end, warm ms",
                             warm["per-series layout"] * 1e3, 5.0),
        harness.goal_at_most("daily roll-ups end to end, warm ms",
                             warm["daily roll-ups"] * 1e3, 1.0),
        harness.goal(f"{2 * years:g} years of history cost the same as {years:g} (time ratio, "
                     "≥ 0.8 counts as the same)",
                     history[(years, None)] / history[(2 * years, None)], 0.8),
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
