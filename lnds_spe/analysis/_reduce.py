"""Fused group-by kernel: every value column and reduction in one pass over row chunks."""

from __future__ import annotations

import numba
import numpy as np

BLOCK_ROWS = 2048
SLOT_ADD, SLOT_MIN, SLOT_MAX = 0, 1, 2


@numba.njit(cache=True, nogil=True, inline="always")
def _group_of(keys, times, i, origin, width, n_buckets, n_groups):
    """Group index of row i (key, or key × time bucket when width > 0); -1 when out of range."""
    g = np.int64(keys[i])
    if width > 0:
        d = np.int64(times[i]) - origin
        if d < 0:
            return np.int64(-1)
        g = g * n_buckets + d // width
    if g < 0 or g >= n_groups:
        return np.int64(-1)
    return g


@numba.njit(cache=True, nogil=True)
def _init_partial(acc, slot_kind, n_groups):
    """Set one thread's accumulators to the identity of each slot (0, +inf for min, -inf max)."""
    n_slots = slot_kind.shape[0]
    for g in range(n_groups):
        base = g * n_slots
        for s in range(n_slots):
            k = slot_kind[s]
            acc[base + s] = np.inf if k == SLOT_MIN else (-np.inf if k == SLOT_MAX else 0.0)


@numba.njit(cache=True, nogil=True)
def _accumulate_block(acc, col, start, gbuf, m, layout_row):
    """Fold one value column of a block of m rows (group offsets in gbuf) into acc; NaN skipped."""
    s_sum, s_count, s_min, s_max = layout_row[0], layout_row[1], layout_row[2], layout_row[3]
    if s_min < 0 and s_max < 0:
        if s_count < 0:
            for j in range(m):
                b = gbuf[j]
                v = col[start + j]
                if b >= 0 and v == v:
                    acc[b + s_sum] += v
        elif s_sum < 0:
            for j in range(m):
                b = gbuf[j]
                v = col[start + j]
                if b >= 0 and v == v:
                    acc[b + s_count] += 1.0
        else:
            for j in range(m):
                b = gbuf[j]
                v = col[start + j]
                if b >= 0 and v == v:
                    acc[b + s_sum] += v
                    acc[b + s_count] += 1.0
        return
    for j in range(m):
        b = gbuf[j]
        v = col[start + j]
        if b >= 0 and v == v:
            if s_sum >= 0:
                acc[b + s_sum] += v
            acc[b + s_count] += 1.0
            if s_min >= 0 and v < acc[b + s_min]:
                acc[b + s_min] = v
            if s_max >= 0 and v > acc[b + s_max]:
                acc[b + s_max] = v


@numba.njit(parallel=True, cache=True, nogil=True)
def fused_reduce(keys, times, origin, width, n_buckets, columns, layout, slot_kind, n_groups,
                 threads, lanes):
    """Per-thread partial accumulators over row chunks, merged into a (slots, groups) matrix.

    Slot 0 counts rows per group; `layout[c]` holds the sum/count/min/max slots of column c
    (-1 when not wanted). With width > 0 the group is key * n_buckets + (time - origin) // width.
    With few groups each thread spreads rows over `lanes` (a power of two) accumulator copies,
    so that nearby rows of one group do not wait on each other's stores.
    Returns the merged matrix and the number of rows whose group fell outside [0, n_groups).
    """
    n = keys.shape[0]
    n_slots = slot_kind.shape[0]
    group_span = n_groups * n_slots
    lane_mask = lanes - 1
    chunk = (n + threads - 1) // threads
    partial = np.empty(threads * lanes * group_span)
    bad = np.zeros(threads, dtype=np.int64)
    for t in numba.prange(threads):
        acc = partial[t * lanes * group_span:(t + 1) * lanes * group_span]
        _init_partial(acc, slot_kind, n_groups * lanes)
        gbuf = np.empty(BLOCK_ROWS, dtype=np.int64)
        lo = min(n, t * chunk)
        hi = min(n, lo + chunk)
        for start in range(lo, hi, BLOCK_ROWS):
            m = min(hi - start, BLOCK_ROWS)
            for j in range(m):
                g = _group_of(keys, times, start + j, origin, width, n_buckets, n_groups)
                if g < 0:
                    bad[t] += 1
                    gbuf[j] = -1
                else:
                    b = (j & lane_mask) * group_span + g * n_slots
                    acc[b] += 1.0
                    gbuf[j] = b
            for c in range(len(columns)):
                _accumulate_block(acc, columns[c], start, gbuf, m, layout[c])
    merged = np.empty((n_slots, n_groups))
    for g in numba.prange(n_groups):
        base = g * n_slots
        for s in range(n_slots):
            k = slot_kind[s]
            v = partial[base + s]
            for r in range(1, threads * lanes):
                w = partial[r * group_span + base + s]
                if k == SLOT_MIN:
                    v = min(v, w)
                elif k == SLOT_MAX:
                    v = max(v, w)
                else:
                    v += w
            merged[s, g] = v
    return merged, bad.sum()
