"""TimeSeriesStore window queries against pandas, with and without roll-ups."""

import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import lnds_spe.analysis
from lnds_spe.analysis import AnalysisInputError, TimeSeriesStore, window_scan


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(9)
    n = 300_000
    times = rng.integers(1_546_300_800, 1_546_300_800 + 60 * 86400, n)  # unsorted input
    series = rng.integers(0, 12, n)
    series[series == 7] = 8  # series 7 has no rows at all
    values = rng.normal(size=n).astype(np.float32)
    values[rng.random(n) < 0.01] = np.nan
    return times, series, values


def pandas_window(times, series, values, t0, t1, n_series):
    frame = pd.DataFrame({"t": times, "s": series, "v": values})
    sel = frame[(frame.t >= t0) & (frame.t < t1)].groupby("s")["v"]
    return pd.DataFrame({"mean": sel.mean(), "min": sel.min(), "max": sel.max(),
                         "count": sel.count()}).reindex(range(n_series))


@pytest.mark.parametrize("use_rollup", [None, "hour", "day", "auto"])
@pytest.mark.parametrize("window", [(0, 1), (3600 * 5 + 17, 86400 * 33 + 999),
                                    (86400 * 10, 86400 * 11), (-86400, 86400 * 90)])
def test_window_matches_pandas(data, use_rollup, window):
    times, series, values = data
    store = TimeSeriesStore.build(times, series, values, rollups=("hour", "day"), threads=2)
    t0, t1 = 1_546_300_800 + window[0], 1_546_300_800 + window[1]
    ours = store.window(t0, t1, use_rollup=use_rollup)
    ref = pandas_window(times, series, values, t0, t1, 12)
    for op in ("mean", "min", "max"):
        np.testing.assert_allclose(ours[op], ref[op].to_numpy(), rtol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(ours["count"], ref["count"].fillna(0).to_numpy())
    assert ours["count"][7] == 0 and np.isnan(ours["mean"][7])


def test_the_pandas_comparisons_cover_one_thread_and_two(data):
    times, series, values = data
    store = TimeSeriesStore.build(times, series, values, threads=2)
    every = np.arange(12)
    t0 = 1_546_300_800
    assert store._query_threads(every, t0 - 86400, t0 + 86400 * 90, rolled_up=False) == 2
    assert store._query_threads(every, t0 + 86400 * 10, t0 + 86400 * 11, rolled_up=False) == 1


def test_layout_is_sorted_per_series_and_costs_are_reported(data):
    times, series, values = data
    store = TimeSeriesStore.build(pa.array(times), pd.Series(series), values, rollups=("day",))
    assert store.n_rows == times.size
    for s in range(12):
        seg = store.times[store.offsets[s]:store.offsets[s + 1]]
        assert np.all(np.diff(seg) >= 0)
        assert seg.size == np.count_nonzero(series == s)
    assert set(store.build_seconds) == {"layout", "rollup_day"}
    assert all(v >= 0 for v in store.build_seconds.values())


def test_arbitrary_series_ids_and_datetime_input():
    times = np.array(["2024-01-01T00:00", "2024-01-01T12:00", "2024-01-02T01:00"],
                     dtype="datetime64[s]")
    store = TimeSeriesStore.build(times, np.array([-5, 10**12, -5]), np.array([1.0, 2.0, 3.0]),
                                  rollups=("day",))
    np.testing.assert_array_equal(store.series_ids, [-5, 10**12])
    out = store.window(np.datetime64("2024-01-01"), np.datetime64("2024-01-03"))
    np.testing.assert_allclose(out["mean"], [2.0, 2.0])
    np.testing.assert_array_equal(out["count"], [2, 1])


def test_single_series_single_row():
    store = TimeSeriesStore.build([100], [0], [4.0], rollups=("hour",))
    np.testing.assert_allclose(store.window(0, 200)["mean"], [4.0])
    assert store.window(101, 200)["count"][0] == 0


def test_bad_input_is_refused_with_the_argument_named():
    with pytest.raises(AnalysisInputError, match="series"):
        TimeSeriesStore.build([1, 2], [0], [1.0, 2.0])
    with pytest.raises(AnalysisInputError, match="rollups"):
        TimeSeriesStore.build([1, 2], [0, 0], [1.0, 2.0], rollups=("week",))
    store = TimeSeriesStore.build([1, 2], [0, 0], [1.0, 2.0])
    with pytest.raises(AnalysisInputError, match="stop"):
        store.window(5, 1)
    with pytest.raises(AnalysisInputError, match="use_rollup"):
        store.window(0, 5, use_rollup="day")
    with pytest.raises(AnalysisInputError, match="times"):
        TimeSeriesStore.build(["a", "b"], [0, 0], [1.0, 2.0])


def test_numba_cache_dir_is_writable():
    folder = lnds_spe.analysis.NUMBA_CACHE_DIR
    assert os.environ["NUMBA_CACHE_DIR"] == folder
    assert os.access(folder, os.W_OK)


@pytest.mark.parametrize("time_sorted", [False, True])
def test_window_scan_matches_pandas(data, time_sorted):
    times, series, values = data
    if time_sorted:
        order = np.argsort(times, kind="stable")
        times, series, values = times[order], series[order], values[order]
    t0, t1 = 1_546_300_800 + 86400 * 3 + 11, 1_546_300_800 + 86400 * 20
    out = window_scan(times, series, values, t0, t1, wanted=[0, 3, 7, 8],
                      time_sorted=time_sorted)
    ref = pandas_window(times, series, values, t0, t1, 12)
    np.testing.assert_array_equal(out["series"], [0, 3, 7, 8])
    np.testing.assert_allclose(out["mean"], ref["mean"].to_numpy()[[0, 3, 7, 8]], rtol=1e-6,
                               equal_nan=True)


def test_window_on_selected_series(data):
    times, series, values = data
    store = TimeSeriesStore.build(times, series, values, rollups=("day",))
    full = store.window(1_546_300_800, 1_546_300_800 + 86400 * 30)
    some = store.window(1_546_300_800, 1_546_300_800 + 86400 * 30, series=[8, 2])
    np.testing.assert_array_equal(some["series"], [8, 2])
    np.testing.assert_allclose(some["mean"], full["mean"][[8, 2]])
    with pytest.raises(AnalysisInputError, match="series"):
        store.window(0, 1, series=[99])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prefetched_sum_and_count_over_any_range(dtype):
    """The raw-range sum steps and prefetches in blocks: ranges of every length and offset,
    inside and across blocks, give numpy's sum and count of the non-NaN values."""
    from lnds_spe.analysis.timeseries import _raw_sum_count

    rng = np.random.default_rng(3)
    values = rng.normal(size=5_000).astype(dtype)
    values[rng.random(values.size) < 0.05] = np.nan
    ranges = [(0, 0), (0, 1), (0, 5_000), (255, 257), (256, 768), (17, 4_999), (4_999, 5_000)]
    ranges += [tuple(sorted(rng.integers(0, 5_001, 2))) for _ in range(200)]
    for lo, hi in ranges:
        total, count = _raw_sum_count(values, lo, hi)
        part = values[lo:hi].astype(np.float64)
        assert count == np.count_nonzero(~np.isnan(part)), (lo, hi)
        np.testing.assert_allclose(total, np.nansum(part), rtol=1e-12, atol=1e-12)
