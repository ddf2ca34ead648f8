"""Fused group-by kernel: every value column and reduction in one pass over row chunks."""

from __future__ import annotations

import numba
import numpy as np

from lnds_spe.analysis._intrinsics import prefetch

_AHEAD = 16  # rows between prefetching a group's slots and folding into them
_CACHED_FLOATS = 1 << 17  # accumulators up to 1 MiB stay in cache: no prefetching
_COPIES = 16  # accumulator copies for few groups: row i folds into copy i % _COPIES
_COPIES_FLOATS = 1 << 16  # ... while all copies fit in 512 KiB, half the smallest L2 here


def slot_layout(keep: list[tuple[bool, bool]]) -> tuple[int, tuple[int, ...]]:
    """Accumulator slots per group and, per column, the slots of its sum, min and max.

    Slot 0 counts rows per group; each column then has a sum slot, and a min and a max slot
    when `keep` (min, max) asks for them (-1 when not kept). Counts of non-NaN values are not
    slots: they are rows minus the NaNs, which are counted apart since they are rare.
    """
    plan = []
    n_slots = 1
    for want_min, want_max in keep:
        plan += [n_slots, n_slots + 1 if want_min else -1,
                 n_slots + 1 + want_min if want_max else -1]
        n_slots += 1 + want_min + want_max
    return n_slots, tuple(plan)


@numba.njit(cache=True, nogil=True, inline="always")
def _add_row(acc, nans, plan, columns, i, g, b):
    """Fold row i into group g, whose slots start at acc[b]; NaN values are counted in nans."""
    b = np.uint64(b)  # unsigned indices skip numba's negative-index wraparound: 25% faster
    acc[b] += 1.0
    for c in numba.literal_unroll(range(len(columns))):
        v = columns[c][np.uint64(i)]
        if v == v:
            acc[b + np.uint64(plan[3 * c])] += v
            s = plan[3 * c + 1]
            if s >= 0:  # always stored: a branch on a slot missing the cache stalls the loop
                acc[b + np.uint64(s)] = min(acc[b + np.uint64(s)], v)
            s = plan[3 * c + 2]
            if s >= 0:
                acc[b + np.uint64(s)] = max(acc[b + np.uint64(s)], v)
        else:
            nans[c, np.uint64(g)] += 1  # unsigned: no wraparound address computed every row


@numba.njit(cache=True, nogil=True)
def _fold_rows(acc, nans, n_slots, plan, keys, times, origin, width, n_buckets, columns,
               n_groups, g_lo, g_hi, lo, hi, copies):
    """Initialise acc (`copies` copies of groups g_lo..g_hi-1 by slots), fold rows lo..hi-1
    of those groups in, row i into copy i % copies (a power of two).

    Kept out of the parallel region, where numba compiles the same loop several times slower.
    The plan is a tuple and the column loop unrolled, so slot offsets are constants to the
    compiler (read from an array inside the loop they made it twice as slow). With
    width > 0 the group is key * n_buckets + (time - origin) // width, the division done by
    multiplying with 1 / width and correcting by one (exact within 2**52 of the origin and
    several times faster), and only for a row outside the last row's bucket (time-ordered
    rows, 100M, 50 keys, 2 threads on an AMD EPYC: 1.15 to 0.68 s). With few groups, rows
    of one group come close together and each waits for the one before to store its sums;
    copies put them in separate slots (100 groups, 4 slots, 50M rows, 2 threads: 117 to 73
    ms). Returns the number of rows whose group is outside [0, n_groups).
    """
    span = g_hi - g_lo
    for j in range(copies * span * n_slots):
        acc[j] = 0.0
    for c in range(len(columns)):
        for k in (1, 2):
            s = plan[3 * c + k]
            if s >= 0:
                fill = np.inf if k == 1 else -np.inf
                for g in range(copies * span):
                    acc[g * n_slots + s] = fill
    if width == 0 and span * n_slots > _CACHED_FLOATS:
        return _fold_rows_ahead(acc, nans, n_slots, plan, keys, columns, n_groups, g_lo, span,
                                lo, hi)
    n_bad = 0
    inverse = 1.0 / max(width, 1)
    q, start = np.int64(-1), np.int64(-width)  # the last row's bucket and its start
    for i in range(lo, hi):
        g = np.int64(keys[np.uint64(i)])
        if width > 0:
            d = np.int64(times[np.uint64(i)]) - origin
            if np.uint64(d - start) >= np.uint64(width):  # not in the last row's bucket
                q = np.int64(d * inverse)
                if q * width > d:
                    q -= 1
                elif (q + 1) * width <= d:
                    q += 1
                start = q * width
            g = g * n_buckets + q if d >= 0 else np.int64(-1)
        if np.uint64(g) >= np.uint64(n_groups):
            n_bad += 1
        elif np.uint64(g - g_lo) < np.uint64(span):
            _add_row(acc, nans, plan, columns, i, g,
                     ((i & (copies - 1)) * span + g - g_lo) * n_slots)
    return n_bad


@numba.njit(cache=True, nogil=True)
def _fold_rows_ahead(acc, nans, n_slots, plan, keys, columns, n_groups, g_lo, span, lo, hi):
    """_fold_rows's loop for keys without times, on accumulators too big for the cache: each
    row's slots are prefetched _AHEAD rows before they are folded into, so their cache misses
    overlap (1e6 groups: 10-15% faster). Apart, because the test in _fold_rows's loop makes
    small group counts 15% slower. Returns the number of rows outside [0, n_groups)."""
    n_bad = 0
    for i in range(lo, hi):
        if i + _AHEAD < hi:
            later = np.uint64(np.int64(keys[np.uint64(i + _AHEAD)]) - g_lo)
            if later < np.uint64(span):
                prefetch(acc, later * np.uint64(n_slots))
        g = np.int64(keys[np.uint64(i)])
        if np.uint64(g) >= np.uint64(n_groups):
            n_bad += 1
        elif np.uint64(g - g_lo) < np.uint64(span):
            _add_row(acc, nans, plan, columns, i, g, (g - g_lo) * n_slots)
    return n_bad


@numba.njit(cache=True, nogil=True)
def _slice_min_max(part):
    """Smallest and largest of a non-empty array; a slice from 0 (no wrap-around checks) lets
    the loop vectorise: three times faster than the same loop over a range of a bigger array."""
    low = part[0]
    high = part[0]
    for i in range(part.shape[0]):
        low = min(low, part[i])
        high = max(high, part[i])
    return low, high


@numba.njit(parallel=True, cache=True, nogil=True)
def min_max(values, threads):
    """Smallest and largest of a non-empty integer array, in one parallel pass."""
    n = values.shape[0]
    chunk = (n + threads - 1) // threads
    lows = np.full(threads, values[0])
    highs = np.full(threads, values[0])
    for t in numba.prange(threads):
        lo = min(n, t * chunk)
        if lo < n:
            lows[t], highs[t] = _slice_min_max(values[lo:min(n, lo + chunk)])
    return lows.min(), highs.max()


def accumulator_copies(n_groups: int, n_slots: int, split_groups: bool) -> int:
    """Copies of the slots each thread folds into: _COPIES for few groups, else one."""
    return _COPIES if not split_groups and _COPIES * n_groups * n_slots <= _COPIES_FLOATS else 1


def accumulator_size(n_groups: int, n_slots: int, threads: int, split_groups: bool,
                     copies: int) -> int:
    """Floats fused_reduce accumulates in: one set of slots when threads split the groups,
    else each thread's `copies` sets."""
    return n_groups * n_slots * (1 if split_groups else threads * copies)


@numba.njit(parallel=True, cache=True, nogil=True)
def fused_reduce(keys, times, origin, width, n_buckets, columns, n_slots, plan, nans, n_groups,
                 threads, split_groups, copies, acc):
    """Every column's slots per group (a groups by slots matrix, as in slot_layout).

    With width > 0 the group is key * n_buckets + (time - origin) // width. NaN values are
    skipped and counted in nans (threads by columns by groups, zero on entry). Threads take
    row chunks and their partial slots are merged; with split_groups, for many groups, each
    thread instead scans every row but keeps only its own range of groups, so the
    accumulators are half the size and need no merge. Without split_groups each thread folds
    into `copies` copies (see accumulator_copies). acc is the accumulators' space
    (accumulator_size floats, allocated by numpy: see _strings). Returns the slots and the
    number of rows whose group is outside [0, n_groups).
    """
    n = keys.shape[0]
    bad = np.zeros(threads, dtype=np.int64)
    if split_groups:
        per = (n_groups + threads - 1) // threads
        for t in numba.prange(threads):
            g_lo = min(n_groups, t * per)
            g_hi = min(n_groups, g_lo + per)
            bad[t] = _fold_rows(acc[g_lo * n_slots:g_hi * n_slots], nans[t], n_slots, plan,
                                keys, times, origin, width, n_buckets, columns, n_groups,
                                g_lo, g_hi, 0, n, 1)
        return acc.reshape((n_groups, n_slots)), bad[0]
    span = n_groups * n_slots
    chunk = (n + threads - 1) // threads
    for t in numba.prange(threads):
        lo = min(n, t * chunk)
        mine = acc[t * copies * span:(t + 1) * copies * span]
        bad[t] = _fold_rows(mine, nans[t], n_slots, plan, keys, times, origin, width,
                            n_buckets, columns, n_groups, 0, n_groups, lo, min(n, lo + chunk),
                            copies)
    sets = threads * copies  # every thread's every copy, merged into the first
    if sets > 1:
        kinds = np.zeros(n_slots, dtype=np.int64)  # 0: added, 1: min, 2: max
        for c in range(len(columns)):
            for k in (1, 2):
                if plan[3 * c + k] >= 0:
                    kinds[plan[3 * c + k]] = k
        for g in numba.prange(n_groups):
            b = g * n_slots
            for s in range(n_slots):
                v = acc[b + s]
                kind = kinds[s]
                for t in range(1, sets):
                    w = acc[t * span + b + s]
                    if kind == 1:
                        v = min(v, w)
                    elif kind == 2:
                        v = max(v, w)
                    else:
                        v += w
                acc[b + s] = v
    return acc[:span].reshape((n_groups, n_slots)), bad.sum()
