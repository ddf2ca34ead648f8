"""Synthetic data with known structure: a meteo network, group-by tables, census microdata, CLKs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from lnds_spe.analysis._inputs import AnalysisInputError, positive_int

LUXEMBOURG_LON = (5.73, 6.53)
LUXEMBOURG_LAT = (49.44, 50.19)
START_2019 = 1546300800  # 2019-01-01T00:00:00Z
YEAR_SECONDS = 365 * 86400
# name, base level, seasonal amplitude, diurnal amplitude, station spread, noise sigma
MEASUREMENTS = (
    ("temperature_c", 9.5, 8.0, 4.0, 1.2, 0.8),
    ("humidity_pct", 78.0, 10.0, 12.0, 4.0, 3.0),
    ("pressure_hpa", 1015.0, 3.0, 0.8, 6.0, 1.5),
    ("wind_speed_ms", 3.5, 1.0, 1.2, 1.0, 0.9),
    ("precipitation_mm", 0.07, 0.02, 0.01, 0.02, 0.05),
    ("radiation_wm2", 120.0, 80.0, 150.0, 10.0, 30.0),
)


@numba.njit(cache=True, nogil=True)
def _splitmix(x):
    """A 64-bit mixing function: a counter-based random stream independent of thread count."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, nogil=True)
def _uniform(seed, stream, i):
    """A uniform number in (0, 1) for (seed, stream, i)."""
    h = _splitmix(_splitmix(np.uint64(seed) * np.uint64(1000003) + np.uint64(stream))
                  + np.uint64(i))
    return ((h >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@numba.njit(parallel=True, cache=True, nogil=True)
def _meteo_values(n_steps, n_stations, params, offsets, cadence, start, seed, missing, phi):
    """Time-major values (step, station, measurement): seasons + days + offsets + AR(1) + gaps."""
    n_meas = params.shape[0]
    n_series = n_stations * n_meas
    out = np.empty(n_steps * n_series, dtype=np.float32)
    two_pi = 2.0 * math.pi
    for s in numba.prange(n_series):
        station = s // n_meas
        m = s % n_meas
        base, seas, diur, noise = params[m, 0], params[m, 1], params[m, 2], params[m, 4]
        innovation = noise * math.sqrt(1.0 - phi * phi)
        x = 0.0
        for step in range(n_steps):
            t = start + step * cadence
            day = (t % 31556952) / 86400.0
            hour = (t % 86400) / 3600.0
            u1 = _uniform(seed, s, 2 * step)
            u2 = _uniform(seed, s, 2 * step + 1)
            eps = math.sqrt(-2.0 * math.log(u1)) * math.cos(two_pi * u2)
            x = phi * x + innovation * eps
            v = (base + seas * math.cos(two_pi * (day - 200.0) / 365.25)
                 + diur * math.cos(two_pi * (hour - 15.0) / 24.0) + offsets[station, m] + x)
            if _uniform(seed + 7, s, step) < missing:
                v = np.nan
            out[step * n_series + s] = v
    return out


@dataclass
class MeteoNetwork:
    """Long-format meteo data (rows sorted by time) and the stations that produced it."""

    station_lon: np.ndarray
    station_lat: np.ndarray
    measurements: tuple[str, ...]
    times: np.ndarray  # int64 epoch seconds
    series: np.ndarray  # int32: station * n_measurements + measurement
    values: np.ndarray  # float32, NaN = missing value
    cadence_s: int

    @property
    def n_stations(self) -> int:
        """Number of stations."""
        return int(self.station_lon.shape[0])

    def series_of(self, measurement: str) -> np.ndarray:
        """Series ids of one measurement, one per station in station order.

        Parameters
        ----------
        measurement : str
            The measurement's name, one of `measurements` (e.g. 'temperature_c').

        Returns
        -------
        ndarray of int64
            station * len(measurements) + the measurement's position, for every station.
        """
        m = self.measurements.index(measurement)
        return np.arange(self.n_stations) * len(self.measurements) + m


def meteo_network(n_stations: int = 50, years: float = 5.0, n_measurements: int = 6,
                  cadence_s: int = 300, seed: int = 0, missing_fraction: float = 0.005,
                  outage_fraction: float = 0.3, start: int = START_2019) -> MeteoNetwork:
    """A synthetic meteo network in Luxembourg's bounding box, one value per sensor per cadence.

    Values: seasonal and diurnal cycles, a per-station offset and AR(1) noise; some values are
    missing (NaN) and some stations have one outage of 1 to 14 days (no rows).

    Parameters
    ----------
    n_stations : int, default 50
        The number of stations, placed uniformly at random in the box.
    years : float, default 5.0
        How long the series run, from `start`.
    n_measurements : int, default 6
        How many of the measurements (temperature, humidity, pressure, wind speed,
        precipitation, radiation, in that order) each station records; at most 6.
    cadence_s : int, default 300
        Seconds between two values of a sensor.
    seed : int, default 0
        The random seed; the same seed gives the same network.
    missing_fraction : float, default 0.005
        The share of values that are NaN, in [0, 1).
    outage_fraction : float, default 0.3
        The share of stations with one outage.
    start : int, default START_2019
        The first time, in epoch seconds (2019-01-01T00:00:00Z).

    Returns
    -------
    MeteoNetwork
        The stations' coordinates and the long-format rows (times, series, values), sorted by
        time.
    """
    n_stations = positive_int(n_stations, "n_stations")
    n_measurements = positive_int(n_measurements, "n_measurements")
    if n_measurements > len(MEASUREMENTS):
        raise AnalysisInputError(f"n_measurements: at most {len(MEASUREMENTS)}")
    if not 0 <= missing_fraction < 1:
        raise AnalysisInputError("missing_fraction: expected a fraction in [0, 1)")
    rng = np.random.default_rng(seed)
    lon = rng.uniform(*LUXEMBOURG_LON, n_stations)
    lat = rng.uniform(*LUXEMBOURG_LAT, n_stations)
    params = np.array([m[1:] for m in MEASUREMENTS[:n_measurements]], dtype=np.float64)
    offsets = rng.normal(size=(n_stations, n_measurements)) * params[:, 3]
    n_steps = int(years * YEAR_SECONDS // cadence_s)
    values = _meteo_values(n_steps, n_stations, params, offsets, cadence_s, start, seed,
                           missing_fraction, 0.97)
    n_series = n_stations * n_measurements
    keep = np.ones((n_steps, n_stations), dtype=bool)
    for station in np.flatnonzero(rng.random(n_stations) < outage_fraction):
        length = int(rng.integers(1, 15) * 86400 // cadence_s)
        first = int(rng.integers(0, max(1, n_steps - length)))
        keep[first:first + length, station] = False
    series_pattern = np.arange(n_series, dtype=np.int32)
    times = np.repeat(start + np.arange(n_steps, dtype=np.int64) * cadence_s, n_series)
    series = np.tile(series_pattern, n_steps)
    if not keep.all():
        row_keep = np.repeat(keep, n_measurements, axis=1).ravel()
        times, series, values = times[row_keep], series[row_keep], values[row_keep]
    names = tuple(m[0] for m in MEASUREMENTS[:n_measurements])
    return MeteoNetwork(lon, lat, names, times, series, values, cadence_s)


def grid_cells(n_cells: int, lon_range: tuple[float, float] = LUXEMBOURG_LON,
               lat_range: tuple[float, float] = LUXEMBOURG_LAT) -> tuple[np.ndarray, np.ndarray]:
    """The first n_cells centres of a regular lattice over a box, row by row, north last.

    Parameters
    ----------
    n_cells : int
        How many cell centres.
    lon_range : tuple of float, default LUXEMBOURG_LON
        (west, east) edges of the box, in degrees.
    lat_range : tuple of float, default LUXEMBOURG_LAT
        (south, north) edges of the box, in degrees.

    Returns
    -------
    lon : ndarray of float64
        The longitudes of the cell centres.
    lat : ndarray of float64
        Their latitudes.
    """
    n_cells = positive_int(n_cells, "n_cells")
    aspect = (lon_range[1] - lon_range[0]) / (lat_range[1] - lat_range[0])
    nx = max(1, math.ceil(math.sqrt(n_cells * aspect)))
    ny = math.ceil(n_cells / nx)
    lons = lon_range[0] + (np.arange(nx) + 0.5) * (lon_range[1] - lon_range[0]) / nx
    lats = lat_range[0] + (np.arange(ny) + 0.5) * (lat_range[1] - lat_range[0]) / ny
    glon, glat = np.meshgrid(lons, lats)
    return glon.ravel()[:n_cells].copy(), glat.ravel()[:n_cells].copy()


def groupby_table(n_rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A table like db-benchmark's group-by data: int keys of 100, 1e4 and 1e6 groups.

    Parameters
    ----------
    n_rows : int
        The number of rows.
    seed : int, default 0
        The random seed.

    Returns
    -------
    dict of str to ndarray
        Keys "id_100", "id_10k", "id_1m" (int32) and values "v1" (small integers as float64)
        and "v3" (uniform in [0, 100)).
    """
    n_rows = positive_int(n_rows, "n_rows")
    rng = np.random.default_rng(seed)
    return {
        "id_100": rng.integers(0, 100, n_rows, dtype=np.int32),
        "id_10k": rng.integers(0, 10_000, n_rows, dtype=np.int32),
        "id_1m": rng.integers(0, 1_000_000, n_rows, dtype=np.int32),
        "v1": rng.integers(1, 6, n_rows, dtype=np.int32).astype(np.float64),
        "v3": np.round(rng.uniform(0, 100, n_rows), 6),
    }


def census_microdata(n_rows: int, seed: int = 0, n_regions: int = 12, n_age_bands: int = 20,
                     dominant_fraction: float = 2e-4) -> dict[str, np.ndarray]:
    """Census-like microdata for SDC: region, age band and sex (Zipf-skewed), lognormal income.

    A few rows earn 100 to 1000 times the median: dominant contributors the n-k and p-percent
    rules should catch.

    Parameters
    ----------
    n_rows : int
        The number of people.
    seed : int, default 0
        The random seed.
    n_regions : int, default 12
        The number of regions.
    n_age_bands : int, default 20
        The number of age bands.
    dominant_fraction : float, default 2e-4
        The share of rows that are dominant earners.

    Returns
    -------
    dict of str to ndarray
        "region", "age_band", "sex" (int8 codes) and "income" (float64).
    """
    n_rows = positive_int(n_rows, "n_rows")
    rng = np.random.default_rng(seed)

    def zipf(n: int, a: float) -> np.ndarray:
        weights = 1.0 / np.arange(1, n + 1) ** a
        return rng.permutation(weights / weights.sum())

    region = rng.choice(n_regions, n_rows, p=zipf(n_regions, 1.3)).astype(np.int8)
    age_band = rng.choice(n_age_bands, n_rows, p=zipf(n_age_bands, 0.9)).astype(np.int8)
    sex = (rng.random(n_rows) < 0.49).astype(np.int8)
    income = rng.lognormal(mean=10.3, sigma=0.6, size=n_rows)
    dominant = rng.random(n_rows) < dominant_fraction
    income[dominant] *= rng.uniform(100, 1000, int(dominant.sum()))
    return {"region": region, "age_band": age_band, "sex": sex, "income": income}


@numba.njit(parallel=True, cache=True, nogil=True)
def _encode_clks(data, offsets, n_records, n_fields, words, hashes, key):
    """Bloom filters: every bigram of every field sets `hashes` bits (double hashing)."""
    out = np.zeros((n_records, words), dtype=np.uint64)
    bits = np.uint64(words * 64)
    for r in numba.prange(n_records):
        for f in range(n_fields):
            cell = r * n_fields + f
            lo = offsets[cell]
            hi = offsets[cell + 1]
            for p in range(lo - 1, hi):
                c1 = np.uint64(95) if p < lo else np.uint64(data[p])  # '_' pads the start
                c2 = np.uint64(95) if p + 1 >= hi else np.uint64(data[p + 1])
                token = (np.uint64(f + 1) << np.uint64(16)) | (c1 << np.uint64(8)) | c2
                h1 = _splitmix(token ^ np.uint64(key))
                h2 = _splitmix(token + np.uint64(key) * np.uint64(31)) | np.uint64(1)
                for i in range(hashes):
                    bit = (h1 + np.uint64(i) * h2) % bits
                    out[r, bit >> np.uint64(6)] |= np.uint64(1) << (bit & np.uint64(63))
    return out


def _random_records(rng: np.random.Generator, n: int) -> list[list[bytes]]:
    """Random (first name, last name, birth date) byte strings."""
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
    records = []
    for _ in range(n):
        first = letters[rng.integers(0, 26, rng.integers(4, 9))].tobytes()
        last = letters[rng.integers(0, 26, rng.integers(5, 12))].tobytes()
        dob = (f"{rng.integers(1930, 2010)}{rng.integers(1, 13):02d}"
               f"{rng.integers(1, 29):02d}").encode()
        records.append([first, last, dob])
    return records


def _typo(rng: np.random.Generator, record: list[bytes]) -> list[bytes]:
    """The same record with one character of one field changed."""
    out = list(record)
    f = int(rng.integers(0, len(out)))
    field = bytearray(out[f])
    field[int(rng.integers(0, len(field)))] = int(rng.integers(97, 123))
    out[f] = bytes(field)
    return out


def _encode(records: list[list[bytes]], bits: int, hashes: int, key: int) -> np.ndarray:
    """CLK Bloom filters (n × bits/64 uint64) of the records."""
    n_fields = len(records[0]) if records else 3
    flat = [field for rec in records for field in rec]
    lengths = np.array([len(f) for f in flat], dtype=np.int64)
    offsets = np.zeros(len(flat) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = np.frombuffer(b"".join(flat), dtype=np.uint8) if flat else np.empty(0, np.uint8)
    return _encode_clks(data, offsets, len(records), n_fields, bits // 64, hashes, key)


@dataclass
class ClkPairs:
    """Two sets of Bloom filters and the true matches between them."""

    filters_a: np.ndarray
    filters_b: np.ndarray
    true_a: np.ndarray
    true_b: np.ndarray


def clk_pairs(n_a: int, n_b: int, match_fraction: float = 0.05, bits: int = 1024,
              hashes: int = 20, seed: int = 0, key: int = 0x5EC12E7) -> ClkPairs:
    """Two sets of CLK-like Bloom filters of random people, with known true matches.

    A `match_fraction` of the smaller set's size are records of a found again in b, half of
    them with one typo.

    Parameters
    ----------
    n_a : int
        The number of records in the first set.
    n_b : int
        The number of records in the second set.
    match_fraction : float, default 0.05
        The share of min(n_a, n_b) that are true matches.
    bits : int, default 1024
        The filter length; a multiple of 64.
    hashes : int, default 20
        The bits each bigram sets.
    seed : int, default 0
        The random seed.
    key : int, default 0x5EC12E7
        The secret the hashing is keyed with.

    Returns
    -------
    ClkPairs
        Both sets of filters (uint64 words) and the matching rows (true_a[i] matches
        true_b[i]), sorted by true_a.
    """
    n_a = positive_int(n_a, "n_a")
    n_b = positive_int(n_b, "n_b")
    if bits % 64:
        raise AnalysisInputError("bits: expected a multiple of 64")
    rng = np.random.default_rng(seed)
    recs_a = _random_records(rng, n_a)
    recs_b = _random_records(rng, n_b)
    n_match = int(round(match_fraction * min(n_a, n_b)))
    true_a = rng.choice(n_a, n_match, replace=False)
    true_b = rng.choice(n_b, n_match, replace=False)
    for ia, ib in zip(true_a, true_b, strict=True):
        recs_b[ib] = _typo(rng, recs_a[ia]) if rng.random() < 0.5 else list(recs_a[ia])
    order = np.argsort(true_a)
    return ClkPairs(_encode(recs_a, bits, hashes, key), _encode(recs_b, bits, hashes, key),
                    true_a[order], true_b[order])


def random_filters(n: int, bits: int = 1024, density: float = 0.5, seed: int = 0) -> np.ndarray:
    """Random Bloom filters, each bit set independently.

    Parameters
    ----------
    n : int
        The number of filters.
    bits : int, default 1024
        The filter length; a multiple of 64.
    density : float, default 0.5
        The probability of each bit being set.
    seed : int, default 0
        The random seed.

    Returns
    -------
    ndarray of uint64, shape (n, bits // 64)
        The filters.
    """
    rng = np.random.default_rng(seed)
    return np.packbits(rng.random((positive_int(n, "n"), bits)) < density,
                       axis=1).view(np.uint64)
