"""k nearest stations and inverse-distance weighting onto grid cells (planar or haversine)."""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from lnds_spe.analysis._inputs import AnalysisInputError, column, positive_int, thread_count

EARTH_RADIUS_KM = 6371.0088
METRICS = ("planar", "haversine")
_KM_PER_DEGREE = math.pi / 180.0 * EARTH_RADIUS_KM
_SERIAL_BELOW_CELLS = 20_000  # waking a second thread costs more than the work below this
_STATIONS_PER_BIN = 3  # grid density of the kNN index, tuned on 50..1e4 stations
_FEW_STATIONS = 100  # up to this many, planar knn_idw scans stations sorted per bin instead
_CELLS_PER_BIN = 100  # the sorted bins of _idw_planar_few: at least this many cells per bin...
_BINS_PER_STATION = 4  # ...and at most this many bins per station


@numba.njit(cache=True, nogil=True, inline="always")
def _insert(best_d, best_i, d, i, k):
    """Insert (d, i) into the sorted k-best lists, ties broken by the lower station index."""
    pos = k - 1
    if d > best_d[pos] or (d == best_d[pos] and i >= best_i[pos]):
        return
    while pos > 0 and (best_d[pos - 1] > d or (best_d[pos - 1] == d and best_i[pos - 1] > i)):
        best_d[pos] = best_d[pos - 1]
        best_i[pos] = best_i[pos - 1]
        pos -= 1
    best_d[pos] = d
    best_i[pos] = i


@numba.njit(cache=True, nogil=True)
def _build_bins(sx, sy, per_bin):
    """A uniform grid over the stations: bin geometry, bin offsets and stations sorted by bin."""
    n = sx.shape[0]
    x0, x1, y0, y1 = sx.min(), sx.max(), sy.min(), sy.max()
    span_x = max(x1 - x0, 1e-12)
    span_y = max(y1 - y0, 1e-12)
    n_bins = max(1, n // per_bin)
    nx = max(1, int(math.sqrt(n_bins * span_x / span_y)))
    ny = max(1, n_bins // nx)
    bw = span_x / nx * (1 + 1e-9)
    bh = span_y / ny * (1 + 1e-9)
    counts = np.zeros(nx * ny + 1, dtype=np.int64)
    bins = np.empty(n, dtype=np.int64)
    for i in range(n):
        bx = min(nx - 1, int((sx[i] - x0) / bw))
        by = min(ny - 1, int((sy[i] - y0) / bh))
        bins[i] = by * nx + bx
        counts[bins[i] + 1] += 1
    for b in range(nx * ny):
        counts[b + 1] += counts[b]
    order = np.empty(n, dtype=np.int64)
    cursor = counts[:-1].copy()
    for i in range(n):
        order[cursor[bins[i]]] = i
        cursor[bins[i]] += 1
    return x0, y0, bw, bh, nx, ny, counts, order


@numba.njit(parallel=True, cache=True, nogil=True)
def _knn_planar(sx, sy, qx, qy, k, threads, per_bin):
    """k nearest stations by Euclidean distance, searching grid bins ring by ring."""
    x0, y0, bw, bh, nx, ny, starts, order = _build_bins(sx, sy, per_bin)
    bsx = sx[order]
    bsy = sy[order]
    m = qx.shape[0]
    out_i = np.empty((m, k), dtype=np.int64)
    out_d = np.empty((m, k))
    chunk = (m + threads - 1) // threads
    for t in numba.prange(threads):
        best_d = np.empty(k)
        best_i = np.empty(k, dtype=np.int64)
        for q in range(t * chunk, min(m, (t + 1) * chunk)):
            px = qx[q]
            py = qy[q]
            best_d[:] = np.inf
            best_i[:] = 2 ** 62
            worst = np.inf
            cx = min(nx - 1, max(0, int(math.floor((px - x0) / bw))))
            cy = min(ny - 1, max(0, int(math.floor((py - y0) / bh))))
            r = 0
            while True:
                bx_lo, bx_hi = max(0, cx - r), min(nx - 1, cx + r)
                by_lo, by_hi = max(0, cy - r), min(ny - 1, cy + r)
                for by in range(by_lo, by_hi + 1):
                    edge_row = by == cy - r or by == cy + r
                    step = 1 if edge_row else max(1, 2 * r)
                    bx = cx - r if not edge_row else bx_lo
                    while bx <= bx_hi:
                        if bx >= bx_lo:
                            b = by * nx + bx
                            for j in range(starts[b], starts[b + 1]):
                                dx = bsx[j] - px
                                dy = bsy[j] - py
                                d = dx * dx + dy * dy
                                if d <= worst:
                                    _insert(best_d, best_i, d, order[j], k)
                                    worst = best_d[k - 1]
                        bx += step
                # distance from the query to any bin not yet visited (a lower bound)
                bound = np.inf
                if bx_lo > 0:
                    bound = min(bound, max(0.0, px - (x0 + bx_lo * bw)))
                if bx_hi < nx - 1:
                    bound = min(bound, max(0.0, (x0 + (bx_hi + 1) * bw) - px))
                if by_lo > 0:
                    bound = min(bound, max(0.0, py - (y0 + by_lo * bh)))
                if by_hi < ny - 1:
                    bound = min(bound, max(0.0, (y0 + (by_hi + 1) * bh) - py))
                if bound == np.inf or worst < bound * bound:
                    break
                r += 1
            for j in range(k):
                out_i[q, j] = best_i[j]
                out_d[q, j] = math.sqrt(best_d[j])
    return out_i, out_d


@numba.njit(parallel=True, cache=True, nogil=True)
def _knn_haversine(slon, slat, qlon, qlat, k, threads):
    """k nearest stations by great-circle distance (km), brute force over all stations."""
    n = slon.shape[0]
    m = qlon.shape[0]
    deg = math.pi / 180.0
    out_i = np.empty((m, k), dtype=np.int64)
    out_d = np.empty((m, k))
    coslat = np.cos(slat * deg)
    chunk = (m + threads - 1) // threads
    for t in numba.prange(threads):
        best_d = np.empty(k)
        best_i = np.empty(k, dtype=np.int64)
        for q in range(t * chunk, min(m, (t + 1) * chunk)):
            best_d[:] = np.inf
            best_i[:] = 2 ** 62
            la = qlat[q] * deg
            cq = math.cos(la)
            for s in range(n):
                dlat = slat[s] * deg - la
                dlon = (slon[s] - qlon[q]) * deg
                h = math.sin(dlat / 2) ** 2 + cq * coslat[s] * math.sin(dlon / 2) ** 2
                _insert(best_d, best_i, h, s, k)
            for j in range(k):
                h = min(1.0, max(0.0, best_d[j]))
                out_i[q, j] = best_i[j]
                out_d[q, j] = 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))
    return out_i, out_d


@numba.njit(cache=True, nogil=True, inline="always")
def _idw_value(values, idx, dist, power):
    """Inverse-distance weighted mean of one cell's neighbours; exact hits take the hit
    stations' mean."""
    hits = 0
    hit_sum = 0.0
    num = 0.0
    den = 0.0
    for j in range(idx.shape[0]):
        d = dist[j]
        v = values[idx[j]]
        if d == 0.0:
            hits += 1
            hit_sum += v
        else:
            w = 1.0 / (d * d) if power == 2.0 else 1.0 / d ** power
            num += w * v
            den += w
    return hit_sum / hits if hits else num / den


@numba.njit(parallel=True, cache=True, nogil=True)
def _idw(values, idx, dist, power):
    """_idw_value of every cell."""
    m = idx.shape[0]
    out = np.empty(m)
    for q in numba.prange(m):
        out[q] = _idw_value(values, idx[q], dist[q], power)
    return out


@numba.njit(cache=True, nogil=True)
def _sorted_from_bins(sx, sy, g):
    """For each bin of a g × g grid over the stations, every station sorted by distance from
    the bin's centre: grid geometry, then (bin, rank) arrays of distance, x, y and index."""
    n = sx.shape[0]
    x0, y0 = sx.min(), sy.min()
    bw = max(sx.max() - x0, 1e-12) / g
    bh = max(sy.max() - y0, 1e-12) / g
    od = np.empty((g * g, n))
    ox = np.empty((g * g, n))
    oy = np.empty((g * g, n))
    oi = np.empty((g * g, n), dtype=np.int64)
    d = np.empty(n)
    for b in range(g * g):
        cx = x0 + (b % g + 0.5) * bw
        cy = y0 + (b // g + 0.5) * bh
        for s in range(n):
            d[s] = math.sqrt((sx[s] - cx) ** 2 + (sy[s] - cy) ** 2)
        order = np.argsort(d)
        for r in range(n):
            s = order[r]
            od[b, r] = d[s]
            ox[b, r] = sx[s]
            oy[b, r] = sy[s]
            oi[b, r] = s
    return x0, y0, bw, bh, od, ox, oy, oi


@numba.njit(parallel=True, cache=True, nogil=True)
def _idw_planar_few(sx, sy, values, qlon, qlat, x_per_degree, y_per_degree, k, power, g,
                    threads):
    """knn (planar) then _idw in one pass, for a few stations: each cell scans the stations
    in order of distance from its bin's centre c and stops once |s - c| - |q - c| (a lower
    bound of |s - q|) exceeds the k-th best. Cells are projected as planar_xy does."""
    x0, y0, bw, bh, od, ox, oy, oi = _sorted_from_bins(sx, sy, g)
    n = sx.shape[0]
    m = qlon.shape[0]
    out = np.empty(m)
    chunk = (m + threads - 1) // threads
    for t in numba.prange(threads):
        best_d = np.empty(k)
        best_i = np.empty(k, dtype=np.int64)
        for q in range(t * chunk, min(m, (t + 1) * chunk)):
            px = qlon[q] * x_per_degree
            py = qlat[q] * y_per_degree
            bx = int(min(g - 1.0, max(0.0, (px - x0) / bw)))
            by = int(min(g - 1.0, max(0.0, (py - y0) / bh)))
            b = by * g + bx
            to_centre = math.sqrt((px - (x0 + (bx + 0.5) * bw)) ** 2
                                  + (py - (y0 + (by + 0.5) * bh)) ** 2)
            best_d[:] = np.inf
            best_i[:] = 2 ** 62
            worst = np.inf
            reach = np.inf
            for r in range(n):
                if od[b, r] > reach:
                    break
                dx = ox[b, r] - px
                dy = oy[b, r] - py
                d = dx * dx + dy * dy
                if d <= worst:
                    _insert(best_d, best_i, d, oi[b, r], k)
                    worst = best_d[k - 1]
                    # a margin far above rounding: no station beyond can tie the k-th best
                    reach = to_centre + math.sqrt(worst) * (1 + 1e-9) + 1e-9
            for j in range(k):
                best_d[j] = math.sqrt(best_d[j])
            out[q] = _idw_value(values, best_i, best_d, power)
    return out


def _coords(lon: Any, lat: Any, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Checked float64 longitude/latitude columns of equal length, without NaN."""
    lon_arr = column(lon, f"{prefix}_lon", "n", dtype=np.float64, allow_nan=False)
    lat_arr = column(lat, f"{prefix}_lat", "n", dtype=np.float64, allow_nan=False,
                     length=lon_arr.shape[0])
    if lat_arr.size and (np.abs(lat_arr).max() > 90):
        raise AnalysisInputError(f"{prefix}_lat: latitudes must lie in [-90, 90]")
    return lon_arr, lat_arr


def _km_per_degree_lon(ref_lat: float) -> float:
    """Kilometres per degree of longitude at ref_lat."""
    return _KM_PER_DEGREE * math.cos(math.radians(ref_lat))


def planar_xy(lon: np.ndarray, lat: np.ndarray, ref_lat: float) -> tuple[np.ndarray, np.ndarray]:
    """Kilometre coordinates with longitudes scaled by cos(ref_lat) (equirectangular)."""
    return lon * _km_per_degree_lon(ref_lat), lat * _KM_PER_DEGREE


def knn(station_lon: Any, station_lat: Any, cell_lon: Any, cell_lat: Any, k: int = 5,
        metric: str = "planar", ref_lat: float | None = None,
        threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest stations of each cell, nearest first, with their distances in km.

    Parameters
    ----------
    station_lon : array-like of float
        The stations' longitudes, in degrees.
    station_lat : array-like of float
        The stations' latitudes, in degrees, in [-90, 90].
    cell_lon : array-like of float
        The longitudes of the points to answer for (e.g. grid cell centres), in degrees.
    cell_lat : array-like of float
        Their latitudes, in degrees.
    k : int, default 5
        How many neighbours; at most the number of stations.
    metric : {'planar', 'haversine'}, default 'planar'
        'planar': Euclidean distance with longitudes scaled by cos(ref_lat), fast for a
        country-sized area; 'haversine': great-circle distance.
    ref_lat : float, optional
        The latitude of the planar projection; defaults to the stations' mean latitude.
    threads : int, optional
        How many threads the kernel uses; defaults to numba's configured maximum, and is
        capped by it. Fewer than 20 000 cells run on one thread.

    Returns
    -------
    indices : ndarray of int64, shape (cells, k)
        The station indices; ties in distance go to the lower index.
    distances : ndarray of float64, shape (cells, k)
        Their distances in km.
    """
    slon, slat = _coords(station_lon, station_lat, "station")
    qlon, qlat = _coords(cell_lon, cell_lat, "cell")
    k = positive_int(k, "k")
    if metric not in METRICS:
        raise AnalysisInputError(f"metric: expected one of {METRICS}, got {metric!r}")
    if slon.size == 0:
        raise AnalysisInputError("station_lon: no stations given")
    if k > slon.size:
        raise AnalysisInputError(f"k: {k} neighbours asked but only {slon.size} stations")
    threads = 1 if qlon.size < _SERIAL_BELOW_CELLS else thread_count(threads)
    numba.set_num_threads(threads)
    if metric == "haversine":
        return _knn_haversine(slon, slat, qlon, qlat, k, threads)
    ref = float(np.mean(slat)) if ref_lat is None else float(ref_lat)
    sx, sy = planar_xy(slon, slat, ref)
    qx, qy = planar_xy(qlon, qlat, ref)
    return _knn_planar(sx, sy, qx, qy, k, threads, _STATIONS_PER_BIN)


def knn_idw(station_lon: Any, station_lat: Any, station_values: Any, cell_lon: Any,
            cell_lat: Any, k: int = 5, power: float = 2.0, metric: str = "planar",
            ref_lat: float | None = None, threads: int | None = None) -> np.ndarray:
    """Inverse-distance weighted value of each cell from its k nearest stations with a value.

    A cell on top of a station takes that station's value; with fewer valid stations than k,
    all valid ones are used; with none, the result is NaN.

    Parameters
    ----------
    station_lon : array-like of float
        The stations' longitudes, in degrees.
    station_lat : array-like of float
        The stations' latitudes, in degrees, in [-90, 90].
    station_values : array-like of float
        The value at each station; NaN marks a station without a value, which is left out.
    cell_lon : array-like of float
        The longitudes of the cells to interpolate to, in degrees.
    cell_lat : array-like of float
        Their latitudes, in degrees.
    k : int, default 5
        How many neighbours weigh in.
    power : float, default 2.0
        The weight of a station is 1 / distance ** power; positive.
    metric : {'planar', 'haversine'}, default 'planar'
        How distances are measured, as in `knn`.
    ref_lat : float, optional
        The latitude of the planar projection; defaults to the valid stations' mean latitude.
    threads : int, optional
        How many threads the kernel uses; defaults to numba's configured maximum, and is
        capped by it.

    Returns
    -------
    ndarray of float64, shape (cells,)
        The interpolated value of each cell.
    """
    slon, slat = _coords(station_lon, station_lat, "station")
    vals = column(station_values, "station_values", "n", dtype=np.float64,
                  length=slon.shape[0])
    qlon, qlat = _coords(cell_lon, cell_lat, "cell")
    k = positive_int(k, "k")
    if not np.isfinite(power) or power <= 0:
        raise AnalysisInputError(f"power: expected a positive number, got {power!r}")
    valid = np.flatnonzero(~np.isnan(vals))
    if valid.size == 0:
        return np.full(qlon.shape[0], np.nan)
    if valid.size < slon.size:
        slon, slat, vals = slon[valid], slat[valid], vals[valid]
    if ref_lat is None:
        ref_lat = float(np.mean(slat))
    if metric == "planar" and slon.size <= _FEW_STATIONS:
        threads = 1 if qlon.size < _SERIAL_BELOW_CELLS else thread_count(threads)
        numba.set_num_threads(threads)
        sx, sy = planar_xy(slon, slat, float(ref_lat))
        g = max(1, int(math.sqrt(min(qlon.size / _CELLS_PER_BIN,
                                     slon.size * _BINS_PER_STATION))))
        return _idw_planar_few(sx, sy, vals, qlon, qlat, _km_per_degree_lon(float(ref_lat)),
                               _KM_PER_DEGREE, min(k, valid.size), float(power), g, threads)
    idx, dist = knn(slon, slat, qlon, qlat, min(k, valid.size), metric, ref_lat, threads)
    return _idw(vals, idx, dist, float(power))


def idw_grid(station_lon: Any, station_lat: Any, station_values: Any,
             lon_range: tuple[float, float], lat_range: tuple[float, float], nx: int, ny: int,
             k: int = 5, power: float = 2.0, metric: str = "planar",
             threads: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse-distance weighting over a regular grid of cell centres.

    Parameters
    ----------
    station_lon : array-like of float
        The stations' longitudes, in degrees.
    station_lat : array-like of float
        The stations' latitudes, in degrees, in [-90, 90].
    station_values : array-like of float
        The value at each station; NaN marks a station without a value.
    lon_range : tuple of float
        (west, east) edges of the grid, in degrees; west < east.
    lat_range : tuple of float
        (south, north) edges of the grid, in degrees; south < north.
    nx : int
        The number of cells from west to east.
    ny : int
        The number of cells from south to north.
    k : int, default 5
        How many neighbours weigh in.
    power : float, default 2.0
        The weight of a station is 1 / distance ** power.
    metric : {'planar', 'haversine'}, default 'planar'
        How distances are measured, as in `knn`.
    threads : int, optional
        How many threads the kernel uses; defaults to numba's configured maximum, and is
        capped by it.

    Returns
    -------
    lons : ndarray of float64, shape (nx,)
        The longitudes of the cell centres.
    lats : ndarray of float64, shape (ny,)
        The latitudes of the cell centres.
    values : ndarray of float64, shape (ny, nx)
        The interpolated map, south row first.
    """
    nx = positive_int(nx, "nx")
    ny = positive_int(ny, "ny")
    (lon0, lon1), (lat0, lat1) = lon_range, lat_range
    if not (lon1 > lon0 and lat1 > lat0):
        raise AnalysisInputError("lon_range/lat_range: expected (low, high) with low < high")
    lons = lon0 + (np.arange(nx) + 0.5) * (lon1 - lon0) / nx
    lats = lat0 + (np.arange(ny) + 0.5) * (lat1 - lat0) / ny
    grid_lon, grid_lat = np.meshgrid(lons, lats)
    values = knn_idw(station_lon, station_lat, station_values, grid_lon.ravel(),
                     grid_lat.ravel(), k, power, metric, None, threads)
    return lons, lats, values.reshape(ny, nx)
