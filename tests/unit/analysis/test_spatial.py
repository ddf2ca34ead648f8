"""knn / knn_idw / idw_grid against brute-force numpy and scipy references."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from lnds_spe.analysis import AnalysisInputError, idw_grid, knn, knn_idw
from lnds_spe.analysis.spatial import EARTH_RADIUS_KM, planar_xy
from lnds_spe.errors import SPEError


def brute_knn(sx, sy, qx, qy, k):
    """Stable argsort of squared distances: ties go to the lower station index."""
    d2 = (qx[:, None] - sx[None, :]) ** 2 + (qy[:, None] - sy[None, :]) ** 2
    idx = np.argsort(d2, axis=1, kind="stable")[:, :k]
    return idx, np.sqrt(np.take_along_axis(d2, idx, axis=1))


def reference_idw(values, idx, dist, power):
    """IDW with exact hits taking the mean of the hit stations."""
    out = np.empty(idx.shape[0])
    for q in range(idx.shape[0]):
        hit = dist[q] == 0
        if hit.any():
            out[q] = values[idx[q][hit]].mean()
        else:
            w = 1 / dist[q] ** power
            out[q] = (w * values[idx[q]]).sum() / w.sum()
    return out


@pytest.mark.parametrize("n_stations,n_cells", [(1, 30), (7, 200), (50, 1524), (3000, 50_000)])
def test_planar_knn_matches_brute_force(n_stations, n_cells):
    rng = np.random.default_rng(n_stations)
    slon, slat = rng.uniform(5.7, 6.5, n_stations), rng.uniform(49.4, 50.2, n_stations)
    qlon, qlat = rng.uniform(5.5, 6.7, n_cells), rng.uniform(49.3, 50.3, n_cells)
    k = min(5, n_stations)
    idx, dist = knn(slon, slat, qlon, qlat, k=k)
    sx, sy = planar_xy(slon, slat, slat.mean())
    qx, qy = planar_xy(qlon, qlat, slat.mean())
    ref_idx, ref_dist = brute_knn(sx, sy, qx, qy, k)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-12)


def test_ties_in_distance_go_to_the_lower_station_index():
    # stations on a lattice: a cell at a lattice centre has four stations at the same distance
    sx, sy = np.meshgrid(np.arange(6.0), np.arange(6.0))
    slon, slat = 5.8 + sx.ravel() * 0.01, 49.6 + sy.ravel() * 0.01
    qlon = 5.8 + np.array([0.5, 2.5, 4.5]) * 0.01
    qlat = 49.6 + np.array([0.5, 2.5, 3.5]) * 0.01
    idx, dist = knn(slon, slat, qlon, qlat, k=3, ref_lat=0.0)
    ref_idx, ref_dist = brute_knn(*planar_xy(slon, slat, 0.0), *planar_xy(qlon, qlat, 0.0), 3)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(dist, ref_dist)


def test_haversine_knn_matches_great_circle_brute_force():
    rng = np.random.default_rng(3)
    slon, slat = rng.uniform(-10, 30, 80), rng.uniform(35, 65, 80)
    qlon, qlat = rng.uniform(-10, 30, 500), rng.uniform(35, 65, 500)
    idx, dist = knn(slon, slat, qlon, qlat, k=4, metric="haversine")
    p1, p2 = np.radians(qlat)[:, None], np.radians(slat)[None, :]
    dl = np.radians(slon)[None, :] - np.radians(qlon)[:, None]
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    d = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(h))
    ref_idx = np.argsort(d, axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(dist, np.take_along_axis(d, ref_idx, axis=1), rtol=1e-9)


def test_knn_idw_matches_ckdtree_reference():
    rng = np.random.default_rng(11)
    slon, slat = rng.uniform(5.73, 6.53, 50), rng.uniform(49.44, 50.19, 50)
    values = rng.normal(10, 2, 50)
    qlon, qlat = rng.uniform(5.73, 6.53, 1524), rng.uniform(49.44, 50.19, 1524)
    qlon[:3], qlat[:3] = slon[:3], slat[:3]  # cells exactly on stations
    ours = knn_idw(slon, slat, values, qlon, qlat, k=5, power=2)
    sx, sy = planar_xy(slon, slat, slat.mean())
    dist, idx = cKDTree(np.c_[sx, sy]).query(np.c_[planar_xy(qlon, qlat, slat.mean())], k=5)
    np.testing.assert_allclose(ours, reference_idw(values, idx, dist, 2.0), rtol=1e-10)
    np.testing.assert_array_equal(ours[:3], values[:3])


def test_missing_stations_are_left_out():
    rng = np.random.default_rng(5)
    slon, slat = rng.uniform(5.73, 6.53, 20), rng.uniform(49.44, 50.19, 20)
    values = rng.normal(size=20)
    values[[2, 7, 11]] = np.nan
    qlon, qlat = rng.uniform(5.73, 6.53, 300), rng.uniform(49.44, 50.19, 300)
    keep = ~np.isnan(values)
    ours = knn_idw(slon, slat, values, qlon, qlat, k=5, ref_lat=49.8)
    expected = knn_idw(slon[keep], slat[keep], values[keep], qlon, qlat, k=5, ref_lat=49.8)
    np.testing.assert_allclose(ours, expected)
    assert not np.isnan(ours).any()


def test_single_station_and_all_missing():
    qlon, qlat = np.array([5.8, 6.2]), np.array([49.5, 50.0])
    single = knn_idw([6.0], [49.7], [3.5], qlon, qlat, k=5)
    np.testing.assert_allclose(single, [3.5, 3.5], rtol=1e-15)
    none = knn_idw([6.0, 6.1], [49.7, 49.8], [np.nan, np.nan], qlon, qlat)
    assert np.isnan(none).all()


def test_idw_grid_shape_and_pandas_input():
    import pandas as pd

    stations = pd.DataFrame({"lon": [5.8, 6.4, 6.1], "lat": [49.5, 50.1, 49.8],
                             "v": [1.0, 3.0, 2.0]})
    lons, lats, grid = idw_grid(stations["lon"], stations["lat"], stations["v"],
                                (5.73, 6.53), (49.44, 50.19), nx=40, ny=30, k=3)
    assert grid.shape == (30, 40) and lons.shape == (40,) and lats.shape == (30,)
    assert grid.min() >= 1.0 and grid.max() <= 3.0


@pytest.mark.parametrize("kwargs,needle", [
    ({"k": 0}, "k:"), ({"metric": "manhattan"}, "metric"), ({"k": 9}, "k:"),
])
def test_bad_arguments_name_the_argument(kwargs, needle):
    args = dict(station_lon=[6.0, 6.1], station_lat=[49.7, 49.8], cell_lon=[6.0],
                cell_lat=[49.9])
    with pytest.raises(AnalysisInputError, match=needle):
        knn(**args, **kwargs)


def test_nan_coordinates_and_bad_shapes_are_refused():
    with pytest.raises(SPEError, match="station_lat"):
        knn([6.0, 6.1], [49.7, np.nan], [6.0], [49.9], k=1)
    with pytest.raises(ValueError, match="cell_lon"):
        knn([6.0], [49.7], np.zeros((2, 2)), [49.9], k=1)
    with pytest.raises(AnalysisInputError, match="station_values"):
        knn_idw([6.0, 6.1], [49.7, 49.8], [1.0], [6.0], [49.9])


@pytest.mark.parametrize("n_stations,n_cells,power", [
    (5, 300, 2.0), (100, 2_000, 1.5), (101, 2_000, 2.0), (60, 25_000, 2.0), (300, 25_000, 3.0),
])
def test_knn_idw_scan_and_grid_paths_match_brute_force(n_stations, n_cells, power):
    # up to 100 stations knn_idw scans them per bin, sorted by distance from the bin's centre,
    # with cells outside the stations' bins; above it goes through knn's grid; 25 000 cells
    # run on two threads
    rng = np.random.default_rng(n_stations + n_cells)
    slon, slat = rng.uniform(5.7, 6.5, n_stations), rng.uniform(49.4, 50.2, n_stations)
    values = rng.normal(10, 2, n_stations)
    qlon, qlat = rng.uniform(5.5, 6.7, n_cells), rng.uniform(49.3, 50.3, n_cells)
    qlon[:2], qlat[:2] = slon[:2], slat[:2]  # cells exactly on stations
    k = min(5, n_stations)
    sx, sy = planar_xy(slon, slat, 49.8)
    idx, dist = brute_knn(sx, sy, *planar_xy(qlon, qlat, 49.8), k)
    expected = reference_idw(values, idx, dist, power)
    for threads in (1, 2):
        ours = knn_idw(slon, slat, values, qlon, qlat, k=5, power=power, ref_lat=49.8,
                       threads=threads)
        np.testing.assert_allclose(ours, expected, rtol=1e-12)
    np.testing.assert_array_equal(ours[:2], values[:2])


def test_knn_idw_ties_at_the_kth_neighbour_go_to_the_lower_station_index():
    sx, sy = np.meshgrid(np.arange(6.0), np.arange(6.0))
    slon, slat = 5.8 + sx.ravel() * 0.01, 49.6 + sy.ravel() * 0.01
    values = np.arange(36.0) ** 2
    qlon = 5.8 + np.array([0.5, 2.5, 4.5]) * 0.01
    qlat = 49.6 + np.array([0.5, 2.5, 3.5]) * 0.01
    ours = knn_idw(slon, slat, values, qlon, qlat, k=3, ref_lat=0.0)
    idx, dist = brute_knn(*planar_xy(slon, slat, 0.0), *planar_xy(qlon, qlat, 0.0), 3)
    np.testing.assert_allclose(ours, reference_idw(values, idx, dist, 2.0), rtol=1e-12)


def test_knn_idw_stations_on_one_point_and_far_cells():
    # a zero-width station grid, duplicate stations (ties) and cells far outside it
    slon, slat = np.full(8, 6.0), np.full(8, 49.7)
    slon[5:], slat[5:] = 6.3, 49.9
    values = np.arange(8.0)
    qlon = np.r_[6.0, 6.3, np.linspace(-20, 40, 3000)]
    qlat = np.r_[49.7, 49.9, np.linspace(-60, 80, 3000)]
    ours = knn_idw(slon, slat, values, qlon, qlat, k=3, ref_lat=49.8)
    idx, dist = brute_knn(*planar_xy(slon, slat, 49.8), *planar_xy(qlon, qlat, 49.8), 3)
    np.testing.assert_allclose(ours, reference_idw(values, idx, dist, 2.0), rtol=1e-12)
    np.testing.assert_array_equal(ours[:2], [1.0, 6.0])
