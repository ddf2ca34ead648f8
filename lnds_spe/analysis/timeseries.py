"""A per-series, time-sorted store of long-format measurements with roll-ups and window queries."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numba
import numpy as np

from lnds_spe.analysis._inputs import AnalysisInputError, column, thread_count, to_numpy
from lnds_spe.analysis._intrinsics import LANES, prefetch, select_lanes
from lnds_spe.analysis._reduce import min_max

ROLLUP_SECONDS = {"hour": 3600, "day": 86400}
_MAX_DIRECT_SERIES_ID = 10_000_000
# below this many rows in the window a query runs on one thread: waking a second one costs
# more. Measured on 2 cores, 50 series: 2 threads were faster from about 1e5 rows (106 vs
# 80 us), and twice as fast at 5e6 (2.4 vs 1.3 ms); the old limit of 16e6 rows left A's
# one-year query on one thread, 3.6 ms against 1.1 ms beside the peers' queries.
_SERIAL_BELOW_ROWS = 200_000
_FAST = {"reassoc", "contract"}  # lets LLVM vectorise sums; NaN checks stay exact (no 'nnan')
# a series' values are summed _SUM_STEP at a time while the lines _PREFETCH_AHEAD values on
# are asked for: one core's hardware prefetcher alone streamed A's one-year query (50 series,
# 26M values, 2 threads) at 11 GB/s, 1.9 ms from memory; with 512 values ahead, 1.2 ms
_SUM_STEP = 256
_PREFETCH_AHEAD = 512


@numba.njit(parallel=True, cache=True, nogil=True)
def _counting_sort(codes, n_series, threads):
    """Stable parallel counting sort by series code: returns (offsets, permutation)."""
    n = codes.shape[0]
    chunk = (n + threads - 1) // threads
    hist = np.zeros((threads, n_series), dtype=np.int64)
    for t in numba.prange(threads):
        for i in range(t * chunk, min(n, (t + 1) * chunk)):
            hist[t, codes[i]] += 1
    offsets = np.zeros(n_series + 1, dtype=np.int64)
    starts = np.zeros((threads, n_series), dtype=np.int64)
    pos = 0
    for s in range(n_series):
        offsets[s] = pos
        for t in range(threads):
            starts[t, s] = pos
            pos += hist[t, s]
    offsets[n_series] = pos
    perm = np.empty(n, dtype=np.int64)
    for t in numba.prange(threads):
        cursor = starts[t].copy()
        for i in range(t * chunk, min(n, (t + 1) * chunk)):
            s = codes[i]
            perm[cursor[s]] = i
            cursor[s] += 1
    return offsets, perm


@numba.njit(parallel=True, cache=True, nogil=True)
def _gather_sorted(perm, offsets, times, values, out_t, out_v):
    """Gather rows per series into out_t and out_v, and sort each series by time (stable) if
    it is not already. The outputs are allocated by numpy, which asks for transparent huge
    pages; a kernel's own arrays get 4 KiB pages, on which queries ran slower (A's one-year
    query, 2 threads, medians: 0.95 to 0.8 ms repeated, 1.7 to 1.5 ms after the data left
    the cache)."""
    n_series = offsets.shape[0] - 1
    for s in numba.prange(n_series):
        lo = offsets[s]
        hi = offsets[s + 1]
        ordered = True
        for i in range(lo, hi):
            out_t[i] = times[perm[i]]
            out_v[i] = values[perm[i]]
            if i > lo and out_t[i] < out_t[i - 1]:
                ordered = False
        if not ordered:
            order = np.argsort(out_t[lo:hi], kind="mergesort")
            seg_t = out_t[lo:hi][order]
            seg_v = out_v[lo:hi][order]
            out_t[lo:hi] = seg_t
            out_v[lo:hi] = seg_v
    return out_t, out_v


@numba.njit(parallel=True, cache=True, nogil=True)
def _build_rollup(offsets, times, values, width):
    """Per series, one entry per non-empty bucket: start, sum, count (non-NaN), min, max."""
    n_series = offsets.shape[0] - 1
    n_buckets = np.zeros(n_series, dtype=np.int64)
    for s in numba.prange(n_series):
        last = np.int64(-(2 ** 62))
        c = 0
        for i in range(offsets[s], offsets[s + 1]):
            b = times[i] // width
            if c == 0 or b != last:
                c += 1
                last = b
        n_buckets[s] = c
    r_off = np.zeros(n_series + 1, dtype=np.int64)
    for s in range(n_series):
        r_off[s + 1] = r_off[s] + n_buckets[s]
    m = r_off[n_series]
    starts = np.empty(m, dtype=np.int64)
    sums = np.zeros(m)
    counts = np.zeros(m, dtype=np.int64)
    mins = np.full(m, np.inf)
    maxs = np.full(m, -np.inf)
    for s in numba.prange(n_series):
        j = r_off[s] - 1
        last = np.int64(-(2 ** 62))
        first = True
        for i in range(offsets[s], offsets[s + 1]):
            b = times[i] // width
            if first or b != last:
                j += 1
                starts[j] = b * width
                last = b
                first = False
            v = values[i]
            if v == v:
                sums[j] += v
                counts[j] += 1
                if v < mins[j]:
                    mins[j] = v
                if v > maxs[j]:
                    maxs[j] = v
    return r_off, starts, sums, counts, mins, maxs


@contextmanager
def _parallel_chunks(size: int) -> Iterator[None]:
    """Inside the block, threads of a parallel kernel take `size` iterations at a time as they
    become free, not one fixed share each."""
    previous = numba.set_parallel_chunksize(size)
    try:
        yield
    finally:
        numba.set_parallel_chunksize(previous)


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def _raw_sum_count(values, lo, hi):
    """Sum and count of the non-NaN values in values[lo:hi], the lines ahead prefetched."""
    line = max(1, 64 // values.itemsize)
    total = 0.0
    count = 0
    for start in range(lo, hi, _SUM_STEP):
        stop = min(start + _SUM_STEP, hi)
        for ahead in range(start + _PREFETCH_AHEAD, min(stop + _PREFETCH_AHEAD, hi), line):
            prefetch(values, ahead)
        part, c = _sum_count(values, start, stop)
        total += part
        count += c
    return total, count


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def _sum_count(values, lo, hi):
    """Sum and count of the non-NaN values in values[lo:hi]."""
    seg = values[lo:hi]  # indices from 0 need no wrap-around: the loop vectorises, no gathers
    total = 0.0
    missing = 0
    for i in range(seg.shape[0]):
        v = seg[i]
        ok = v == v
        total += v if ok else 0.0
        missing += 0 if ok else 1
    return total, seg.shape[0] - missing


@numba.njit(cache=True, nogil=True)
def _raw_min_max(values, lo, hi, cur_min, cur_max):
    """Min and max of the non-NaN values in values[lo:hi], folded into the current ones."""
    for v in values[lo:hi]:
        if v == v:
            if v < cur_min:
                cur_min = v
            if v > cur_max:
                cur_max = v
    return cur_min, cur_max


@numba.njit(parallel=True, cache=True, nogil=True)
def _window_kernel(offsets, times, values, r_off, r_starts, r_sums, r_counts, r_mins, r_maxs,
                   width, t0, t1, use_rollup, want_minmax, selected):
    """Per selected series sum/count/min/max over [t0, t1), whole buckets from the roll-up."""
    n_sel = selected.shape[0]
    sums = np.zeros(n_sel)
    counts = np.zeros(n_sel, dtype=np.int64)
    mins = np.full(n_sel, np.inf)
    maxs = np.full(n_sel, -np.inf)
    for out_pos in numba.prange(n_sel):
        s = selected[out_pos]
        lo = offsets[s]
        hi = offsets[s + 1]
        seg = times[lo:hi]
        a = lo + np.searchsorted(seg, t0, side="left")
        b = lo + np.searchsorted(seg, t1, side="left")
        total = 0.0
        count = 0
        cur_min = np.inf
        cur_max = -np.inf
        raw_ranges = np.empty((2, 2), dtype=np.int64)
        n_raw = 1
        raw_ranges[0, 0] = a
        raw_ranges[0, 1] = b
        if use_rollup and b > a:
            rs = r_starts[r_off[s]:r_off[s + 1]]
            ba = np.searchsorted(rs, t0, side="left")
            bb = np.searchsorted(rs, t1 - width, side="right")
            if bb > ba:
                for j in range(r_off[s] + ba, r_off[s] + bb):
                    total += r_sums[j]
                    count += r_counts[j]
                    if want_minmax:
                        cur_min = min(cur_min, r_mins[j])
                        cur_max = max(cur_max, r_maxs[j])
                first_full = rs[ba]
                after_full = rs[bb - 1] + width
                raw_ranges[0, 1] = lo + np.searchsorted(seg, first_full, side="left")
                raw_ranges[1, 0] = lo + np.searchsorted(seg, after_full, side="left")
                raw_ranges[1, 1] = b
                n_raw = 2
        for r in range(n_raw):
            part, c = _raw_sum_count(values, raw_ranges[r, 0], raw_ranges[r, 1])
            total += part
            count += c
            if want_minmax:
                cur_min, cur_max = _raw_min_max(values, raw_ranges[r, 0], raw_ranges[r, 1],
                                                cur_min, cur_max)
        sums[out_pos] = total
        counts[out_pos] = count
        mins[out_pos] = cur_min
        maxs[out_pos] = cur_max
    return sums, counts, mins, maxs


def _mean_or_nan(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """sums / counts per series, NaN where the count is 0."""
    return np.where(counts == 0, np.nan, sums / np.maximum(counts, 1))


@dataclass
class Rollup:
    """Per-series aggregates of whole time buckets of `width` time units."""

    width: int
    offsets: np.ndarray
    starts: np.ndarray
    sums: np.ndarray
    counts: np.ndarray
    mins: np.ndarray
    maxs: np.ndarray


@dataclass
class TimeSeriesStore:
    """Measurements grouped per series, each series sorted by time, with optional roll-ups.

    Times are int64 (epoch seconds by default, or the ticks of a datetime64 input); a window
    [start, stop) is found by binary search, whole buckets are read from the roll-ups. NaN
    values are missing: they are skipped by every statistic. Make one with `build`.

    Attributes
    ----------
    series_ids : ndarray of int64
        The distinct series ids, ascending.
    offsets : ndarray of int64
        Series i holds rows offsets[i] to offsets[i + 1] of `times` and `values`.
    times : ndarray of int64
        The times, series by series, each series in time order.
    values : ndarray
        The values, in the same order.
    unit : str
        The unit of `times`: 's' for epoch seconds, else the datetime64 unit of the input.
    rollups : dict of str to Rollup
        The roll-ups built, by name.
    build_seconds : dict of str to float
        How long each build step took.
    threads : int
        The threads queries may use.
    """

    series_ids: np.ndarray
    offsets: np.ndarray
    times: np.ndarray
    values: np.ndarray
    unit: str = "s"
    rollups: dict[str, Rollup] = field(default_factory=dict)
    build_seconds: dict[str, float] = field(default_factory=dict)
    threads: int = 1

    @classmethod
    def build(cls, times: Any, series: Any, values: Any,
              rollups: tuple[str, ...] | list[str] = (), threads: int | None = None,
              ) -> TimeSeriesStore:
        """Build a store from long-format (time, series id, value) columns.

        Parameters
        ----------
        times : array-like
            The time of each row: integers (e.g. epoch seconds) or datetime64 values.
        series : array-like of int
            The series id of each row (e.g. station * n_measurements + measurement).
        values : array-like of numbers
            The measured value of each row; NaN is a missing value.
        rollups : sequence of {'hour', 'day'}, default ()
            The roll-ups to build now (more can be added with `add_rollup`).
        threads : int, optional
            How many threads the kernel uses; defaults to numba's configured maximum, and is
            capped by it.

        Returns
        -------
        TimeSeriesStore
            The store, with the cost of each build step in ``build_seconds``.
        """
        started = time.perf_counter()
        raw_t = to_numpy(times, "times")
        unit = "s"
        if raw_t.dtype.kind == "M":
            unit = np.datetime_data(raw_t.dtype)[0]
            raw_t = raw_t.view(np.int64)
        t = column(raw_t, "times", "i", dtype=np.int64)
        ids = column(series, "series", "i", length=t.shape[0])
        v = column(values, "values", "n", length=t.shape[0])
        if v.dtype.kind != "f":
            v = v.astype(np.float64)
        unknown = [r for r in rollups if r not in ROLLUP_SECONDS]
        if unknown:
            raise AnalysisInputError(f"rollups: unknown {unknown}; choose from "
                                     f"{tuple(ROLLUP_SECONDS)}")
        threads = thread_count(threads)
        numba.set_num_threads(threads)
        lo = int(ids.min()) if ids.size else 0
        hi = int(ids.max()) if ids.size else -1
        if lo >= 0 and hi < _MAX_DIRECT_SERIES_ID:
            codes, labels = ids, np.arange(hi + 1, dtype=np.int64)
        else:
            import pandas as pd

            factor, labels = pd.factorize(ids, sort=True)
            codes = factor.astype(np.int64)
        offsets, perm = _counting_sort(codes, labels.shape[0], threads)
        sorted_t, sorted_v = _gather_sorted(perm, offsets, t, v, np.empty(perm.size, t.dtype),
                                            np.empty(perm.size, v.dtype))
        del perm
        store = cls(series_ids=labels, offsets=offsets, times=sorted_t, values=sorted_v,
                    unit=unit, threads=threads)
        store.build_seconds["layout"] = time.perf_counter() - started
        for name in rollups:
            store.add_rollup(name)
        return store

    def _ticks(self, seconds: int) -> int:
        """A duration in seconds expressed in this store's time unit."""
        per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}
        if self.unit not in per_second:
            raise AnalysisInputError(f"times: unit {self.unit!r} not supported for roll-ups")
        return seconds * per_second[self.unit]

    def add_rollup(self, name: str) -> Rollup:
        """Build (or rebuild) a roll-up and record its cost in ``build_seconds``.

        Parameters
        ----------
        name : {'hour', 'day'}
            The bucket width of the roll-up.

        Returns
        -------
        Rollup
            Per series, the sum, count, min and max of each non-empty bucket.
        """
        if name not in ROLLUP_SECONDS:
            raise AnalysisInputError(f"rollups: unknown {name!r}; choose from "
                                     f"{tuple(ROLLUP_SECONDS)}")
        started = time.perf_counter()
        numba.set_num_threads(self.threads)
        width = self._ticks(ROLLUP_SECONDS[name])
        rollup = Rollup(width, *_build_rollup(self.offsets, self.times, self.values, width))
        self.rollups[name] = rollup
        self.build_seconds[f"rollup_{name}"] = time.perf_counter() - started
        return rollup

    @property
    def n_rows(self) -> int:
        """Number of stored measurements."""
        return int(self.times.shape[0])

    def _time_value(self, value: Any, name: str) -> int:
        """A window bound as int64 ticks of this store (ints, numpy or pandas datetimes)."""
        if isinstance(value, int | np.integer) and not isinstance(value, bool):
            return int(value)
        try:
            return int(np.datetime64(value, self.unit).astype(np.int64))
        except (TypeError, ValueError) as exc:
            raise AnalysisInputError(f"{name}: expected an int time or a datetime, "
                                     f"got {value!r}") from exc

    def _selected_codes(self, series: Any) -> np.ndarray:
        """Positions of the requested series ids (all series when None)."""
        if series is None:
            return np.arange(self.series_ids.shape[0], dtype=np.int64)
        wanted = column(np.atleast_1d(to_numpy(series, "series")), "series", "i")
        pos = np.searchsorted(self.series_ids, wanted)
        pos = np.minimum(pos, max(self.series_ids.shape[0] - 1, 0))
        if self.series_ids.size == 0 or np.any(self.series_ids[pos] != wanted):
            raise AnalysisInputError("series: some requested series ids are not in the store")
        return pos.astype(np.int64)

    def window(self, start: Any, stop: Any, use_rollup: str | None = "auto",
               minmax: bool = True, series: Any = None) -> dict[str, np.ndarray]:
        """Mean, min, max, count and sum per series over the time window [start, stop).

        Parameters
        ----------
        start : int or datetime-like
            The first instant of the window: ticks of the store's unit, or a datetime.
        stop : int or datetime-like
            The end of the window (excluded); not before `start`.
        use_rollup : str or None, default 'auto'
            'auto' uses the coarsest roll-up built, a name ('hour', 'day') that one, None the raw
            data only. The results are the same; roll-ups make long windows faster.
        minmax : bool, default True
            Also compute min and max.
        series : array-like of int, optional
            The series ids to answer for, each in the store (default all).

        Returns
        -------
        dict of str to ndarray
            "series", "count", "sum", "mean" (and "min", "max" with `minmax`), one entry per
            series. A series with no value in the window has count 0 and NaN mean, min and max.
        """
        selected = self._selected_codes(series)
        t0 = self._time_value(start, "start")
        t1 = self._time_value(stop, "stop")
        if t1 < t0:
            raise AnalysisInputError(f"stop: {stop!r} is before start {start!r}")
        rollup = self._pick_rollup(use_rollup)
        numba.set_num_threads(self._query_threads(selected, t0, t1, rollup is not None))
        if rollup is None:
            empty_i = np.zeros(1, dtype=np.int64)
            empty_f = np.zeros(0)
            rollup_arrays = (empty_i, empty_i[:0], empty_f, empty_i[:0], empty_f, empty_f, 1)
        else:
            rollup_arrays = (rollup.offsets, rollup.starts, rollup.sums, rollup.counts,
                             rollup.mins, rollup.maxs, rollup.width)
        # threads take one series at a time as they become free: series differ in length,
        # and a thread held up by another process leaves its share to the other
        with _parallel_chunks(1):
            sums, counts, mins, maxs = _window_kernel(
                self.offsets, self.times, self.values, *rollup_arrays, t0, t1,
                rollup is not None, minmax, selected)
        empty = counts == 0
        out = {"series": self.series_ids[selected], "count": counts, "sum": sums,
               "mean": _mean_or_nan(sums, counts)}
        if minmax:
            out["min"] = np.where(empty, np.nan, mins)
            out["max"] = np.where(empty, np.nan, maxs)
        return out

    def _query_threads(self, selected: np.ndarray, t0: int, t1: int, rolled_up: bool) -> int:
        """One thread for small work (roll-ups, short windows), else the store's threads."""
        if rolled_up or self.n_rows == 0:
            return 1
        first, last = self._time_span
        overlap = max(0, min(t1, last + 1) - max(t0, first)) / max(1, last + 1 - first)
        rows = int((self.offsets[selected + 1] - self.offsets[selected]).sum()) * overlap
        return 1 if rows < _SERIAL_BELOW_ROWS else self.threads

    @cached_property
    def _time_span(self) -> tuple[int, int]:
        """The first and last time stored (read once: 2 × n_series scattered loads)."""
        lo, hi = self.offsets[:-1], self.offsets[1:]
        filled = hi > lo  # each series is sorted: its first and last rows bound its times
        return int(self.times[lo[filled]].min()), int(self.times[hi[filled] - 1].max())

    def _pick_rollup(self, use_rollup: str | None) -> Rollup | None:
        """The roll-up a query should use, validated."""
        if use_rollup is None:
            return None
        if use_rollup == "auto":
            if not self.rollups:
                return None
            return max(self.rollups.values(), key=lambda r: r.width)
        if use_rollup not in self.rollups:
            raise AnalysisInputError(f"use_rollup: {use_rollup!r} was not built; built: "
                                     f"{sorted(self.rollups)}")
        return self.rollups[use_rollup]


# rows per block: the unit of the time pre-test, of the vector select and of the work sharing.
# A's time-sorted window (31.5M rows, 2 threads, scratch, alternating): 9.5 ms median with
# blocks of 4096 rows, 8.5 with 16384 (fewer calls, each with its slices and its fold loop)
_SCAN_BLOCK = 16384
_SCAN_CHUNK = 2  # blocks a thread takes at a time: idle threads take the next ones, so a
# window in time-ordered data, or a core busy with another process, does not stall the scan


@numba.njit(cache=True, nogil=True)
def _fold_rows(ts, ids, vs, t0, t1, check_time, slot, acc):
    """Fold rows with slot[id] >= 0 (and, with `check_time`, t0 <= time < t1) into acc: per
    slot k, the sum of non-NaN values at 2k, their count at 2k + 1. Returns the rows with a
    negative id."""
    n_ids = np.uint64(slot.shape[0])
    negative = 0
    for i in range(ids.shape[0]):
        if check_time and (ts[i] < t0 or ts[i] >= t1):
            continue
        s = ids[i]
        if np.uint64(s) < n_ids:  # negative ids wrap to huge: one test for both
            k = slot[np.uint64(s)]
            if k >= 0:
                v = vs[i]
                if v == v:
                    acc[np.uint64(2 * k)] += v
                    acc[np.uint64(2 * k + 1)] += 1.0
        elif s < 0:
            negative += 1
    return negative


@numba.njit(cache=True, nogil=True)
def _fold_selected(ts, ids, vs, slot, wanted_bits, acc, kept_rows):
    """As `_fold_rows` without a time test, a vector of LANES rows at a time: select_lanes
    writes the positions of each vector's rows with a wanted id (its bit set in wanted_bits)
    and a value into kept_rows (room for the rows + LANES), which are then folded in one loop;
    the last rows (fewer than LANES) one by one."""
    whole = ids.shape[0] - ids.shape[0] % LANES
    kept = 0
    negative = 0
    for i in range(0, whole, LANES):
        written, negatives = select_lanes(ids, vs, i, wanted_bits, kept_rows, kept)
        kept += written
        negative += negatives
    for q in range(kept):
        row = np.uint64(kept_rows[q])
        k = slot[np.uint64(ids[row])]  # a wanted id: in the table, with a slot
        acc[np.uint64(2 * k)] += vs[row]
        acc[np.uint64(2 * k + 1)] += 1.0
    return negative + _fold_rows(ts[whole:], ids[whole:], vs[whole:], 0, 0, False, slot, acc)


@numba.njit(cache=True, nogil=True)
def _scan_block(times, series, values, a, b, t0, t1, check_time, slot, wanted_bits, acc,
                kept_rows):
    """Fold rows a..b-1 into acc (see `_fold_rows`). With `check_time`, a block whose times
    are all outside [t0, t1) is skipped after one vectorised min/max pass, and one wholly
    inside is folded without testing times, as is every block without `check_time`."""
    ts, ids, vs = times[a:b], series[a:b], values[a:b]  # from 0: no wrap-around checks
    if not check_time or ts.shape[0] == 0:
        return _fold_selected(ts, ids, vs, slot, wanted_bits, acc, kept_rows)
    low = ts[0]
    high = ts[0]
    for i in range(ts.shape[0]):
        low = min(low, ts[i])
        high = max(high, ts[i])
    if high < t0 or low >= t1:
        return 0
    if low >= t0 and high < t1:
        return _fold_selected(ts, ids, vs, slot, wanted_bits, acc, kept_rows)
    return _fold_rows(ts, ids, vs, t0, t1, True, slot, acc)


@numba.njit(parallel=True, cache=True, nogil=True)
def _scan_kernel(times, series, values, lo, hi, t0, t1, slot, wanted_bits, n_slots,
                 check_time, threads):
    """Per-slot sum/count over rows lo..hi-1 with t0 <= time < t1 (tested only with
    `check_time`) and slot[id] >= 0; also counts the negative ids of those rows. Run it with a
    parallel chunk size set: threads then take chunks of blocks as they become free, each
    folding into its own accumulator."""
    acc = np.zeros((threads, 2 * n_slots))
    kept_rows = np.empty((threads, _SCAN_BLOCK + LANES), dtype=np.int32)
    negatives = np.zeros(threads, dtype=np.int64)
    n_blocks = (hi - lo + _SCAN_BLOCK - 1) // _SCAN_BLOCK
    for j in numba.prange(n_blocks):
        t = numba.get_thread_id()
        a = lo + j * _SCAN_BLOCK
        negatives[t] += _scan_block(times, series, values, a, min(hi, a + _SCAN_BLOCK), t0, t1,
                                    check_time, slot, wanted_bits, acc[t], kept_rows[t])
    total = acc.sum(axis=0)
    return total[0::2], total[1::2].astype(np.int64), negatives.sum()


def window_scan(times: Any, series: Any, values: Any, start: int, stop: int,
                wanted: Any = None, time_sorted: bool = False,
                threads: int | None = None) -> dict[str, np.ndarray]:
    """Mean and count per series id over [start, stop), straight from long-format columns.

    No store is built. Every row's time is read, and its id and value only when the time is in
    the window; threads take blocks of rows as they become free, so a window in time-ordered
    data is shared (the order of the sums, hence a mean's last bits, may vary between runs).
    With `time_sorted`, binary search finds the window and only its ids and values are read.

    Parameters
    ----------
    times : array-like of int
        The time of each row (e.g. epoch seconds).
    series : array-like of int
        The series id of each row; non-negative (a negative id among the rows read is refused).
    values : array-like of numbers
        The value of each row; NaN is missing and skipped.
    start : int
        The first instant of the window.
    stop : int
        The end of the window (excluded).
    wanted : array-like of int, optional
        The series ids to answer for (default all ids up to the largest).
    time_sorted : bool, default False
        The rows are ordered by time (not checked), so only the window's rows need reading.
    threads : int, optional
        How many threads the kernel uses; defaults to numba's configured maximum, and is
        capped by it.

    Returns
    -------
    dict of str to ndarray
        "series", "count" and "mean" (NaN for a series without a value in the window), one
        entry per series answered for, by ascending id.
    """
    t = column(times, "times", "i")
    ids = column(series, "series", "i", length=t.shape[0])
    v = column(values, "values", "n", length=t.shape[0])
    if v.dtype == np.bool_:  # summed as 0 and 1: the kernel's vector select takes numbers
        v = v.view(np.uint8)
    threads = thread_count(threads)
    numba.set_num_threads(threads)
    negative_ids = AnalysisInputError("series: negative ids; factorise them first")
    if wanted is None:  # every id is answered for: one pass finds the largest (and negatives)
        low, high = min_max(ids, threads) if ids.size else (0, -1)
        if low < 0:
            raise negative_ids
        keep = np.arange(int(high) + 1, dtype=np.int64)
    else:  # only the wanted ids: the id column is read once, by the scan itself
        w = column(np.atleast_1d(to_numpy(wanted, "wanted")), "wanted", "i")
        keep = np.unique(w[w >= 0]).astype(np.int64)
    slot = np.full(int(keep[-1]) + 1 if keep.size else 0, -1, dtype=np.int32)
    slot[keep] = np.arange(keep.size, dtype=np.int32)
    wanted_bits = np.zeros(max(16, -(-slot.size // 32)), dtype=np.uint32)  # 16: see select_lanes
    np.bitwise_or.at(wanted_bits, keep >> 5, np.left_shift(1, keep & 31).astype(np.uint32))
    lo, hi = 0, t.shape[0]
    if time_sorted:
        lo = int(np.searchsorted(t, start, side="left"))
        hi = max(lo, int(np.searchsorted(t, stop, side="left")))
    with _parallel_chunks(_SCAN_CHUNK):
        sums, counts, negatives = _scan_kernel(t, ids, v, lo, hi, int(start), int(stop), slot,
                                               wanted_bits, keep.size, not time_sorted, threads)
    if negatives:
        raise negative_ids
    return {"series": keep, "count": counts, "mean": _mean_or_nan(sums, counts)}
