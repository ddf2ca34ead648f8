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


def run(scale: str, threads: int) -> dict:
    """Time knn_idw against cKDTree for every (stations, cells) pair of the scale."""
    from scipy.spatial import cKDTree

    from lnds_spe.analysis import knn_idw
    from lnds_spe.analysis.spatial import planar_xy
    from lnds_spe.analysis.synthetic import LUXEMBOURG_LAT, LUXEMBOURG_LON

    stations_list, cells_list = SCALES[scale]
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

            def ours(qlon=qlon, qlat=qlat, slon=slon, slat=slat, values=values, ref=ref_lat):
                return knn_idw(slon, slat, values, qlon, qlat, k=K, power=POWER, ref_lat=ref,
                               threads=threads)

            def peer(qlon=qlon, qlat=qlat, slon=slon, slat=slat, values=values, ref=ref_lat):
                sx, sy = planar_xy(slon, slat, ref)
                qx, qy = planar_xy(qlon, qlat, ref)
                return scipy_idw(cKDTree, sx, sy, values, qx, qy, threads)

            harness.check_close(f"IDW {n_stations} stations × {n_cells} cells", ours(), peer(),
                                rtol=1e-9)
            repeats = 3 if n_cells >= 1_000_000 else 7
            case = f"{n_stations} stations × {n_cells} cells"
            cold, warm = harness.time_cold_warm(ours, repeats)
            peer_cold, peer_warm = harness.time_cold_warm(peer, repeats)
            rows.append(harness.row(case, "lnds_spe knn_idw", cold, warm))
            rows.append(harness.row(case, "scipy cKDTree", peer_cold, peer_warm))
            ratios[(n_stations, n_cells)] = peer_warm / warm
    at_50 = min(r for (s, _), r in ratios.items() if s == 50)
    at_10k = min(r for (s, _), r in ratios.items() if s == 10_000)
    goals = [harness.goal("≥ 2× cKDTree at 50 stations (worst cell count)", at_50, 2.0),
             harness.goal("within 1.2× of cKDTree at 1e4 stations (worst cell count)", at_10k,
                          1 / 1.2)]
    return {"workload": ID, "title": TITLE, "scale": scale, "rows": rows, "goals": goals}
