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
