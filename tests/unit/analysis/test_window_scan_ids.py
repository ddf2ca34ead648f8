"""window_scan reads the id column once when told the wanted ids, and still refuses negatives."""

import numpy as np
import pytest

from lnds_spe.analysis import AnalysisInputError, window_scan


def test_wanted_ids_beyond_the_data_are_answered_with_count_zero():
    times = np.arange(6, dtype=np.int64)
    series = np.array([0, 1, 0, 1, 0, 1], dtype=np.int32)
    values = np.arange(6, dtype=np.float64)
    out = window_scan(times, series, values, 0, 6, wanted=[1, 5])
    np.testing.assert_array_equal(out["series"], [1, 5])
    np.testing.assert_array_equal(out["count"], [3, 0])
    assert out["mean"][0] == 3.0 and np.isnan(out["mean"][1])


@pytest.mark.parametrize("wanted", [None, [0, 1]])
@pytest.mark.parametrize("time_sorted", [False, True])
def test_negative_ids_are_refused(wanted, time_sorted):
    times = np.arange(4, dtype=np.int64)
    series = np.array([0, -1, 1, 0], dtype=np.int32)
    with pytest.raises(AnalysisInputError, match="negative ids"):
        window_scan(times, series, np.ones(4), 0, 4, wanted=wanted, time_sorted=time_sorted)


def _rows():
    """Unsorted rows with NaNs, ids 0..5 (id 4 only outside [10, 20)), and the sorted copy."""
    rng = np.random.default_rng(3)
    times = rng.permutation(np.repeat(np.arange(30, dtype=np.int64), 5))
    series = rng.integers(0, 6, times.size).astype(np.int32)
    series[(times >= 10) & (times < 20) & (series == 4)] = 5
    values = rng.normal(size=times.size).astype(np.float32)
    values[::7] = np.nan
    order = np.argsort(times, kind="stable")
    return (times, series, values), (times[order], series[order], values[order])


def _expected(times, series, values, start, stop, ids):
    inside = (times >= start) & (times < stop) & ~np.isnan(values)
    count = np.array([np.count_nonzero(inside & (series == s)) for s in ids])
    total = np.array([values[inside & (series == s)].astype(np.float64).sum() for s in ids])
    return count, np.where(count > 0, total / np.maximum(count, 1), np.nan)


@pytest.mark.parametrize("window", [(10, 20), (0, 30), (-5, 1), (29, 40), (12, 12), (20, 10)])
@pytest.mark.parametrize("wanted", [None, [5, 0, 4, 9, 0]])
def test_full_scan_of_unsorted_rows_and_the_sorted_window_agree_with_numpy(window, wanted):
    unsorted, ordered = _rows()
    ids = np.arange(6) if wanted is None else np.array([0, 4, 5, 9])
    count, mean = _expected(*unsorted, *window, ids)
    for rows, time_sorted in ((unsorted, False), (ordered, True)):
        out = window_scan(*rows, *window, wanted=wanted, time_sorted=time_sorted, threads=2)
        np.testing.assert_array_equal(out["series"], ids)
        np.testing.assert_array_equal(out["count"], count)
        np.testing.assert_allclose(out["mean"], mean, rtol=1e-12, equal_nan=True)


def test_ids_above_the_largest_wanted_and_an_empty_wanted_list_are_ignored():
    (times, series, values), _ = _rows()
    out = window_scan(times, series, values, 0, 30, wanted=[1])
    np.testing.assert_array_equal(out["count"], _expected(times, series, values, 0, 30, [1])[0])
    empty = window_scan(times, series, values, 0, 30, wanted=[-3])
    assert empty["series"].size == 0 and empty["count"].size == 0
