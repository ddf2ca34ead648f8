"""window_scan: the wanted ids, negative ids, blocks in, across or outside the window, and the
vector select of the rows it keeps, for every id and value dtype."""

import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

from lnds_spe.analysis import AnalysisInputError, window_scan
from lnds_spe.analysis._intrinsics import LANES, select_lanes
from lnds_spe.analysis.timeseries import _SCAN_BLOCK


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
@pytest.mark.parametrize("n, at", [(4, 1), (5 * LANES + 3, 2 * LANES + 5)])  # tail, vectors
def test_negative_ids_are_refused(wanted, time_sorted, n, at):
    times = np.arange(n, dtype=np.int64)
    series = np.arange(n, dtype=np.int32) % 2
    series[at] = -1
    with pytest.raises(AnalysisInputError, match="negative ids"):
        window_scan(times, series, np.ones(n), 0, n, wanted=wanted, time_sorted=time_sorted)


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


def _long_rows(order):
    """Three blocks and a bit of rows, time i at row i, ids 0..6 with NaNs; shuffled or not."""
    n = 3 * _SCAN_BLOCK + 17
    rng = np.random.default_rng(5)
    times = np.arange(n, dtype=np.int64)
    series = rng.integers(0, 7, n).astype(np.int32)
    values = rng.normal(size=n).astype(np.float32)
    values[::11] = np.nan
    pick = rng.permutation(n) if order == "shuffled" else np.arange(n)
    return times[pick], series[pick], values[pick]


B = _SCAN_BLOCK


@pytest.mark.parametrize("window", [(B, 2 * B), (B - 1, 2 * B + 1), (B + 1, 2 * B - 1),
                                    (5, B + 3), (0, 3 * B + 17), (3 * B, 4 * B), (2 * B, 2 * B)])
@pytest.mark.parametrize("order", ["sorted", "shuffled"])
@pytest.mark.parametrize("wanted", [None, [6, 1, 3]])
def test_blocks_wholly_in_partly_in_and_outside_the_window_on_1_and_2_threads(window, order,
                                                                              wanted):
    rows = _long_rows(order)
    ids = np.arange(7) if wanted is None else np.array([1, 3, 6])
    count, mean = _expected(*rows, *window, ids)
    modes = (False, True) if order == "sorted" else (False,)
    for time_sorted in modes:
        for threads in (1, 2):
            out = window_scan(*rows, *window, wanted=wanted, time_sorted=time_sorted,
                              threads=threads)
            np.testing.assert_array_equal(out["count"], count)
            np.testing.assert_allclose(out["mean"], mean, rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("n", [0, 1, 3])
@pytest.mark.parametrize("time_sorted", [False, True])
def test_inputs_smaller_than_a_block_and_than_the_threads(n, time_sorted):
    times = np.arange(n, dtype=np.int64)
    series = np.zeros(n, dtype=np.int32)
    values = np.arange(n, dtype=np.float32)
    out = window_scan(times, series, values, 0, 2, wanted=[0], time_sorted=time_sorted,
                      threads=2)
    np.testing.assert_array_equal(out["count"], [min(n, 2)])
    np.testing.assert_allclose(out["mean"], [0.5 if n > 1 else 0.0 if n else np.nan])


def test_the_parallel_chunk_size_is_restored():
    import numba

    before = numba.get_parallel_chunksize()
    window_scan(*_long_rows("sorted"), 0, B, threads=2)
    assert numba.get_parallel_chunksize() == before


@numba.njit
def _select_every_vector(ids, values, wanted_bits):
    """select_lanes over every whole vector of rows: the kept rows' positions, in order, and
    the count of negative ids."""
    kept_rows = np.empty(ids.shape[0] + LANES, dtype=np.int32)
    kept = negative = 0
    for i in range(0, ids.shape[0] - ids.shape[0] % LANES, LANES):
        written, negatives = select_lanes(ids, values, i, wanted_bits, kept_rows, kept)
        kept += written
        negative += negatives
    return kept_rows[:kept], negative


def _bitset(wanted, n_ids):
    bits = np.zeros(max(16, -(-n_ids // 32)), dtype=np.uint32)
    for w in wanted:
        bits[w // 32] |= np.uint32(1 << (w % 32))
    return bits


# ids below 512 are tested in a register, larger ones by a gather: both, and vectors mixing them
@pytest.mark.parametrize("id_range", [40, 3000])
@pytest.mark.parametrize("id_dtype", [np.int8, np.int16, np.int32, np.int64, np.uint16,
                                      np.uint64])
@pytest.mark.parametrize("value_dtype", [np.float32, np.float64, np.int32, np.uint8])
def test_select_lanes_keeps_the_rows_with_a_wanted_id_and_a_value_in_row_order(
        id_range, id_dtype, value_dtype):
    rng = np.random.default_rng(11)
    n = 12 * LANES
    high = min(id_range, np.iinfo(id_dtype).max)
    ids = rng.integers(0, high, n).astype(id_dtype)  # the top quarter is never wanted
    if np.dtype(id_dtype).kind == "i":
        ids[rng.random(n) < 0.1] = -1
    elif id_dtype == np.uint64:
        ids[::9] = 2**63 + 3  # past the bitset, not negative
    values = (rng.normal(size=n) * 50).astype(value_dtype)
    if np.dtype(value_dtype).kind == "f":
        values[::5] = np.nan
    n_ids = high * 3 // 4
    wanted = set(rng.choice(n_ids, n_ids * 2 // 5, replace=False).tolist())
    rows = [i for i in range(n) if int(ids[i]) in wanted and values[i] == values[i]]
    got_rows, negative = _select_every_vector(ids, values, _bitset(wanted, n_ids))
    assert 0 < len(rows) < n
    np.testing.assert_array_equal(got_rows, rows)
    assert negative == sum(int(i) < 0 for i in ids)


def test_wanted_ids_on_both_sides_of_512_in_a_large_id_space_agree_with_numpy():
    rng = np.random.default_rng(13)
    n = 2 * _SCAN_BLOCK + 53
    times = np.sort(rng.integers(0, 100, n))
    series = rng.integers(0, 5000, n).astype(np.int32)
    series[: n // 2] %= 600  # the first half mostly in the register's range
    values = rng.normal(size=n)
    values[::13] = np.nan
    wanted = np.unique(np.concatenate([series[::7], [0, 511, 512, 4999]]))
    count, mean = _expected(times, series, values, 10, 90, wanted)
    for time_sorted in (False, True):
        for threads in (1, 2):
            out = window_scan(times, series, values, 10, 90, wanted=wanted,
                              time_sorted=time_sorted, threads=threads)
            np.testing.assert_array_equal(out["count"], count)
            np.testing.assert_allclose(out["mean"], mean, rtol=1e-12, equal_nan=True)


def test_without_avx512_every_word_is_gathered_and_the_same_rows_are_kept(tmp_path):
    """A CPU without AVX-512 has no register table: in a fresh process compiling for Haswell,
    the select and the scan across 512 keep the same rows."""
    code = ("import numpy as np, test_window_scan_ids as t\n"
            "from lnds_spe.analysis._intrinsics import _has_avx512\n"
            "assert not _has_avx512()\n"
            "for ids in (np.int32, np.uint64):\n"
            "    for values in (np.float32, np.float64):\n"
            "        t.test_select_lanes_keeps_the_rows_with_a_wanted_id_and_a_value_in_row_order("
            "3000, ids, values)\n"
            "t.test_wanted_ids_on_both_sides_of_512_in_a_large_id_space_agree_with_numpy()\n"
            "print('portable select ok')\n")
    env = {**os.environ, "NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": "-avx512f",
           "NUMBA_CACHE_DIR": str(tmp_path), "PYTHONPATH": os.pathsep.join(
               [str(Path(__file__).parent), *sys.path])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0 and "portable select ok" in out.stdout, out.stderr[-2000:]


@pytest.mark.parametrize("id_dtype", [np.int16, np.int64, np.uint32])
@pytest.mark.parametrize("value_dtype", [np.float64, np.int16, np.bool_])
@pytest.mark.parametrize("time_sorted", [False, True])
def test_every_id_and_value_dtype_agrees_with_numpy(id_dtype, value_dtype, time_sorted):
    rng = np.random.default_rng(7)
    n = 3 * _SCAN_BLOCK + 37  # whole blocks, a short one, and rows after the last vector
    times = np.sort(rng.integers(0, 100, n)) if time_sorted else rng.integers(0, 100, n)
    series = rng.integers(0, 9, n).astype(id_dtype)
    values = (rng.normal(size=n) * 10).astype(value_dtype)
    if np.dtype(value_dtype).kind == "f":
        values[::11] = np.nan
    wanted = np.array([1, 4, 8])
    out = window_scan(times, series, values, 20, 70, wanted=wanted, time_sorted=time_sorted,
                      threads=2)
    count, mean = _expected(times, series.astype(np.int64), values.astype(np.float64), 20, 70,
                            wanted)
    np.testing.assert_array_equal(out["count"], count)
    np.testing.assert_allclose(out["mean"], mean, rtol=1e-12)
