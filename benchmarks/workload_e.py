"""Workload E: k nearest stations + inverse-distance weighting vs scipy's cKDTree."""

from __future__ import annotations

import numpy as np

from benchmarks import harness

ID = "E"
TITLE = "IDW / kNN: k=5 nearest stations, power 2, planar km coordinates"
K = 5
POWER = 2.0
SCALES = {"ci": ((50, 1_000, 10_000), (1_524, 100_000)),
          "full": ((50, 1_000, 10_000), (1_524, 100_000, 1_000_000))}


def scipy_idw(tree_cls, sx, sy, values, qx, qy, threads: int) -> np.ndarray:
    """Reference: cKDTree build + k-query + IDW in numpy (exact hits take the station value)."""
    tree = tree_cls(np.column_stack([sx, sy]))
    dist, idx = tree.query(np.column_stack([qx, qy]), k=K, workers=threads)
    with np.errstate(divide="ignore"):
        weights = 1.0 / dist**POWER
    hit = dist == 0
    out = (weights * values[idx]).sum(axis=1) / weights.sum(axis=1)
    any_hit = hit.any(axis=1)
    if any_hit.any():
        out[any_hit] = (np.where(hit, values[idx], 0).sum(axis=1) / hit.sum(axis=1))[any_hit]
    return out


def probes(scale: str, threads: int, name: str | None = None) -> dict:
    """Fresh-process probes: 50 stations onto 100,000 cells, N threads each."""
    from scipy.spatial import cKDTree

    from lnds_spe.analysis import knn_idw
    from lnds_spe.analysis.spatial import planar_xy
    from lnds_spe.analysis.synthetic import LUXEMBOURG_LAT, LUXEMBOURG_LON

    rng = np.random.default_rng(5)
    slon, slat = rng.uniform(*LUXEMBOURG_LON, 50), rng.uniform(*LUXEMBOURG_LAT, 50)
    qlon, qlat = rng.uniform(*LUXEMBOURG_LON, 100_000), rng.uniform(*LUXEMBOURG_LAT, 100_000)
    values, ref = rng.normal(10, 3, 50), float(slat.mean())

    def peer():
        sx, sy = planar_xy(slon, slat, ref)
        qx, qy = planar_xy(qlon, qlat, ref)
        return scipy_idw(cKDTree, sx, sy, values, qx, qy, threads)

    return {"lnds_spe knn_idw": lambda: knn_idw(slon, slat, values, qlon, qlat, k=K, power=POWER,
                                                ref_lat=ref, threads=threads),
            "scipy cKDTree": peer}


def run(scale: str, threads: int) -> dict:
    """Time knn_idw against cKDTree for every (stations, cells) pair, each with 1 and N threads
    (cKDTree's query takes `workers`), round-robin; goals compare equal thread counts."""
    from scipy.spatial import cKDTree

    from lnds_spe.analysis import knn_idw
    from lnds_spe.analysis.spatial import planar_xy
    from lnds_spe.analysis.synthetic import LUXEMBOURG_LAT, LUXEMBOURG_LON

    stations_list, cells_list = SCALES[scale]
    counts = sorted({1, threads})
    probe = harness.fresh_process_probes(
        ID, scale, threads, harness.probe_names(scale, probes(scale, threads)))
    rng = np.random.default_rng(5)
    rows, ratios = [], {}
    for n_stations in stations_list:
        slon = rng.uniform(*LUXEMBOURG_LON, n_stations)
        slat = rng.uniform(*LUXEMBOURG_LAT, n_stations)
        values = rng.normal(10, 3, n_stations)
        ref_lat = float(slat.mean())
        for n_cells in cells_list:
            qlon = rng.uniform(*LUXEMBOURG_LON, n_cells)
            qlat = rng.uniform(*LUXEMBOURG_LAT, n_cells)
            impls = {}
            for t in counts:
                impls[("ours", t)] = lambda qlon=qlon, qlat=qlat, slon=slon, slat=slat, \
                    values=values, ref=ref_lat, t=t: knn_idw(
                        slon, slat, values, qlon, qlat, k=K, power=POWER, ref_lat=ref, threads=t)

                def peer(qlon=qlon, qlat=qlat, slon=slon, slat=slat, values=values,
                         ref=ref_lat, t=t):
                    sx, sy = planar_xy(slon, slat, ref)
                    qx, qy = planar_xy(qlon, qlat, ref)
                    return scipy_idw(cKDTree, sx, sy, values, qx, qy, t)

                impls[("cKDTree", t)] = peer
            expected = impls[("cKDTree", 1)]()
            for (who, t), fn in impls.items():
                harness.check_close(f"IDW {n_stations} stations × {n_cells} cells, {who} "
                                    f"{t} thread(s)", fn(), expected, rtol=1e-9)
            repeats = harness.repeats_for(scale)
            timing = harness.interleave(impls, repeats)
            case = f"{n_stations} stations × {n_cells} cells"
            probed = n_stations == 50 and n_cells == 100_000
            for (who, t), stats in timing.items():
                name = "lnds_spe knn_idw" if who == "ours" else "scipy cKDTree"
                rows.append(harness.timed_row(case, name, stats, t,
                                              probe.get(name) if probed and t == threads else None))
            for t in counts:
                ratios[(n_stations, n_cells, t)] = (timing[("cKDTree", t)]["median_s"]
                                                    / timing[("ours", t)]["median_s"])
    goals = []
    for t in counts:
        at_50 = min(r for (s, _, rt), r in ratios.items() if s == 50 and rt == t)
        at_10k = min(r for (s, _, rt), r in ratios.items() if s == 10_000 and rt == t)
        goals += [harness.goal(f"≥ 2× cKDTree at 50 stations, {t} thread(s) each (worst cell "
                               "count)", at_50, 2.0),
                  harness.goal(f"within 1.2× of cKDTree at 1e4 stations, {t} thread(s) each "
                               "(worst cell count)", at_10k, 1 / 1.2)]
    return {"workload": ID, "title": TITLE, "scale": scale, "rows": rows, "goals": goals}
