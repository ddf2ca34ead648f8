"""Fused group-by kernel: every value column and reduction in one pass over row chunks."""

from __future__ import annotations

import numba
import numpy as np

from lnds_spe.analysis._intrinsics import StaticInt, prefetch, static_value

_AHEAD = 16  # rows between prefetching a group's slots and folding into them
_CACHED_FLOATS = 1 << 17  # accumulators up to 1 MiB stay in cache: no prefetching
_COPIES = 128  # accumulator copies at most, for few groups: row i folds into copy i % copies
_COPIES_FLOATS = 1 << 16  # ... while all copies fit in 512 KiB, half the smallest L2 here


@numba.njit(cache=True, nogil=True, inline="always")
def column_slot(bits, c, kind):
    """The accumulator slot of column c's sum (kind 0), min (1) or max (2), -1 when not kept.

    Slot 0 counts rows per group; each column then has a sum slot, and a min and a max slot
    when the layout `bits` keep them: bit 2c keeps column c's min, bit 2c + 1 its max.
    Counts of non-NaN values are not slots: they are rows minus the NaNs, which are counted
    apart since they are rare. The sum slot of column len(columns) is the slot count.
    """
    slot = 1
    for d in range(c):
        slot += 1 + (bits >> (2 * d) & 1) + (bits >> (2 * d + 1) & 1)
    want_min = bits >> (2 * c) & 1
    if kind == 0:
        return slot
    if kind == 1:
        return slot + 1 if want_min else -1
    return slot + 1 + want_min if bits >> (2 * c + 1) & 1 else -1


def slot_layout(keep: list[tuple[bool, bool]]) -> tuple[int, tuple[int, ...], StaticInt]:
    """Accumulator slots per group; per column, the slots of its sum, min and max (see
    column_slot); and the layout bits for fused_reduce, which compiles them in as constants.

    `keep` holds, per column, whether it asks for its min and its max.
    """
    bits = sum((want_min << (2 * c)) | (want_max << (2 * c + 1))
               for c, (want_min, want_max) in enumerate(keep))
    plan = tuple(column_slot(bits, c, kind) for c in range(len(keep)) for kind in range(3))
    return column_slot(bits, len(keep), 0), plan, StaticInt(bits)


@numba.njit(cache=True, nogil=True, inline="always")
def _add_row(acc, nans, layout, columns, i, g, b):
    """Fold row i into group g, whose slots start at acc[b]; NaN values are counted in nans."""
    b = np.uint64(b)  # unsigned indices skip numba's negative-index wraparound: 25% faster
    bits = static_value(layout)
    acc[b] += 1.0
    for c in numba.literal_unroll(range(len(columns))):
        v = columns[c][np.uint64(i)]
        if v == v:
            acc[b + np.uint64(column_slot(bits, c, 0))] += v
            s = column_slot(bits, c, 1)
            if s >= 0:  # always stored: a branch on a slot missing the cache stalls the loop
                acc[b + np.uint64(s)] = min(acc[b + np.uint64(s)], v)
            s = column_slot(bits, c, 2)
            if s >= 0:
                acc[b + np.uint64(s)] = max(acc[b + np.uint64(s)], v)
        else:
            nans[c, np.uint64(g)] += 1  # unsigned: no wraparound address computed every row


@numba.njit(cache=True, nogil=True)
def _fold_rows(acc, nans, layout, keys, times, origin, width, n_buckets, columns,
               n_groups, g_lo, g_hi, lo, hi, copies):
    """Initialise acc (`copies` copies of groups g_lo..g_hi-1 by slots), fold rows lo..hi-1
    of those groups in, row i into copy i % copies (a power of two).

    Kept out of the parallel region, where numba compiles the same loop several times slower.
    The layout is a StaticInt and the column loop unrolled, so slot offsets are constants
    and the tests of slots not kept are compiled out (read from a tuple argument, 100 and
    1e4 groups, 1e8 rows, 2 threads: about 1.3 times slower). With
    width > 0 the group is key * n_buckets + (time - origin) // width, the division done by
    multiplying with 1 / width and correcting by one (exact within 2**52 of the origin and
    several times faster), and only for a row outside the last row's bucket (time-ordered
    rows, 100M, 50 keys, 2 threads on an AMD EPYC: 1.15 to 0.68 s). With few groups, rows
    of one group come close together and each waits for the one before to store its sums;
    copies put them in separate slots (100 groups, 4 slots, 50M rows, 2 threads: 117 to 73
    ms). Rows sharing a copy must be further apart than the rows in flight: once the CPU sees
    a load of a slot still being stored to, it makes that load wait on every store (1e8 rows,
    100 groups, a mean, 2 threads: 16 copies 136 ms, 32 copies 122, 64 copies 72, 128
    copies 67). Returns the number of rows whose group is outside [0, n_groups).
    """
    bits = static_value(layout)
    n_slots = column_slot(bits, len(columns), 0)
    span = g_hi - g_lo
    for j in range(copies * span * n_slots):
        acc[j] = 0.0
    for c in range(len(columns)):
        for k in (1, 2):
            s = column_slot(bits, c, k)
            if s >= 0:
                fill = np.inf if k == 1 else -np.inf
                for g in range(copies * span):
                    acc[g * n_slots + s] = fill
    if width == 0:  # keys alone, apart: a test of width in their loop made it 1.3x slower
        if span * n_slots > _CACHED_FLOATS:
            return _fold_keys(acc, nans, layout, keys, columns, n_groups, g_lo, span, lo, hi,
                              copies, True)
        return _fold_keys(acc, nans, layout, keys, columns, n_groups, g_lo, span, lo, hi,
                          copies, False)
    n_bad = 0
    inverse = 1.0 / width
    q, start = np.int64(-1), np.int64(-width)  # the last row's bucket and its start
    for i in range(lo, hi):
        g = np.int64(keys[np.uint64(i)])
        if width > 0:  # always true here, but LLVM compiles the loop 7% faster with it
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
            _add_row(acc, nans, layout, columns, i, g,
                     ((i & (copies - 1)) * span + g - g_lo) * n_slots)
    return n_bad


@numba.njit(cache=True, nogil=True)
def _fold_keys(acc, nans, layout, keys, columns, n_groups, g_lo, span, lo, hi, copies, ahead):
    """_fold_rows's loop for keys without times. With `ahead` (a constant, passed as True
    for accumulators too big for the cache), each row's slots are prefetched _AHEAD rows
    before they are folded into, so their cache misses overlap (1e6 groups: 10-15% faster;
    with few groups prefetching only costs). Returns the number of rows outside
    [0, n_groups)."""
    n_slots = column_slot(static_value(layout), len(columns), 0)
    n_bad = 0
    for i in range(lo, hi):
        if ahead and i + _AHEAD < hi:
            later = np.uint64(np.int64(keys[np.uint64(i + _AHEAD)]) - g_lo)
            if later < np.uint64(span):
                prefetch(acc, later * np.uint64(n_slots))
        g = np.int64(keys[np.uint64(i)])
        if np.uint64(g) >= np.uint64(n_groups):
            n_bad += 1
        elif np.uint64(g - g_lo) < np.uint64(span):
            _add_row(acc, nans, layout, columns, i, g,
                     ((i & (copies - 1)) * span + g - g_lo) * n_slots)
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
    """Copies of the slots each thread folds into: the most, a power of two up to _COPIES,
    that fit in _COPIES_FLOATS; one when threads split the groups."""
    if split_groups:
        return 1
    fit = min(_COPIES, _COPIES_FLOATS // max(1, n_groups * n_slots))
    return 1 << max(0, fit.bit_length() - 1)


def accumulator_size(n_groups: int, n_slots: int, threads: int, split_groups: bool,
                     copies: int) -> int:
    """Floats fused_reduce accumulates in: one set of slots when threads split the groups,
    else each thread's `copies` sets."""
    return n_groups * n_slots * (1 if split_groups else threads * copies)


@numba.njit(parallel=True, cache=True, nogil=True)
def fused_reduce(keys, times, origin, width, n_buckets, columns, layout, nans, n_groups,
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
    bits = static_value(layout)
    n_slots = column_slot(bits, len(columns), 0)
    n = keys.shape[0]
    bad = np.zeros(threads, dtype=np.int64)
    if split_groups:
        per = (n_groups + threads - 1) // threads
        for t in numba.prange(threads):
            g_lo = min(n_groups, t * per)
            g_hi = min(n_groups, g_lo + per)
            bad[t] = _fold_rows(acc[g_lo * n_slots:g_hi * n_slots], nans[t], layout,
                                keys, times, origin, width, n_buckets, columns, n_groups,
                                g_lo, g_hi, 0, n, 1)
        return acc.reshape((n_groups, n_slots)), bad[0]
    span = n_groups * n_slots
    chunk = (n + threads - 1) // threads
    for t in numba.prange(threads):
        lo = min(n, t * chunk)
        mine = acc[t * copies * span:(t + 1) * copies * span]
        bad[t] = _fold_rows(mine, nans[t], layout, keys, times, origin, width,
                            n_buckets, columns, n_groups, 0, n_groups, lo, min(n, lo + chunk),
                            copies)
    sets = threads * copies  # every thread's every copy, merged into the first
    if sets > 1:
        kinds = np.zeros(n_slots, dtype=np.int64)  # 0: added, 1: min, 2: max
        for c in range(len(columns)):
            for k in (1, 2):
                if column_slot(bits, c, k) >= 0:
                    kinds[column_slot(bits, c, k)] = k
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
