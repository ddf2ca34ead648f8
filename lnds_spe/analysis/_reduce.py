"""Fused group-by kernel: every value column and reduction in one pass over row chunks."""

from __future__ import annotations

import numba
import numpy as np


def slot_layout(n_columns: int, minmax: bool) -> np.ndarray:
    """Accumulator slot of each column's sum, count, min and max (-1 when not kept).

    Slot 0 counts rows per group; then each column has sum and count (and min, max).
    """
    stride = 4 if minmax else 2
    layout = np.full((n_columns, 4), -1, dtype=np.int64)
    for c in range(n_columns):
        layout[c, :stride] = 1 + c * stride + np.arange(stride)
    return layout


@numba.njit(cache=True, nogil=True)
def _fold_rows(partial, base, n_slots, keys, times, origin, width, n_buckets, columns, minmax,
               n_groups, lo, hi):
    """Initialise one thread's accumulators at partial[base:], fold rows lo..hi-1 into them.

    Kept out of the parallel region, where numba compiles the same loop several times slower.
    Returns the number of rows whose group is outside [0, n_groups).
    """
    n_cols = len(columns)
    stride = 4 if minmax else 2
    for g in range(n_groups):
        b = base + g * n_slots
        partial[b] = 0.0
        for c in range(n_cols):
            s = b + 1 + c * stride
            partial[s] = 0.0
            partial[s + 1] = 0.0
            if minmax:
                partial[s + 2] = np.inf
                partial[s + 3] = -np.inf
    n_bad = 0
    for i in range(lo, hi):
        g = np.int64(keys[i])
        if width > 0:
            d = np.int64(times[i]) - origin
            g = g * n_buckets + d // width if d >= 0 else np.int64(-1)
        if g < 0 or g >= n_groups:
            n_bad += 1
            continue
        b = base + g * n_slots
        partial[b] += 1.0
        for c in range(n_cols):
            v = columns[c][i]
            if v == v:
                s = b + 1 + c * stride
                partial[s] += v
                partial[s + 1] += 1.0
                if minmax:
                    if v < partial[s + 2]:
                        partial[s + 2] = v
                    if v > partial[s + 3]:
                        partial[s + 3] = v
    return n_bad


@numba.njit(parallel=True, cache=True, nogil=True)
def fused_reduce(keys, times, origin, width, n_buckets, columns, minmax, n_groups, threads):
    """Per-thread partial accumulators over row chunks, merged into a (groups, slots) matrix.

    One row loop updates every column (slots as in slot_layout; NaN values skipped). With
    width > 0 the group is key * n_buckets + (time - origin) // width. The same slots are
    kept for every column so that their offsets are constants the compiler can fold: a
    per-column plan read inside the loop made it twice as slow. Returns the merged matrix
    and the number of rows whose group fell outside [0, n_groups).
    """
    n = keys.shape[0]
    n_cols = len(columns)
    stride = 4 if minmax else 2
    n_slots = 1 + n_cols * stride
    span = n_groups * n_slots
    chunk = (n + threads - 1) // threads
    partial = np.empty(threads * span)
    bad = np.zeros(threads, dtype=np.int64)
    for t in numba.prange(threads):
        lo = min(n, t * chunk)
        bad[t] = _fold_rows(partial, t * span, n_slots, keys, times, origin, width, n_buckets,
                            columns, minmax, n_groups, lo, min(n, lo + chunk))
    kinds = np.zeros(n_slots, dtype=np.int64)  # 0: added, 2: min, 3: max
    if minmax:
        for c in range(n_cols):
            kinds[3 + c * stride] = 2
            kinds[4 + c * stride] = 3
    if threads > 1:
        for g in numba.prange(n_groups):
            b = g * n_slots
            for s in range(n_slots):
                v = partial[b + s]
                kind = kinds[s]
                for t in range(1, threads):
                    w = partial[t * span + b + s]
                    if kind == 2:
                        v = min(v, w)
                    elif kind == 3:
                        v = max(v, w)
                    else:
                        v += w
                partial[b + s] = v
    return partial[:span].reshape((n_groups, n_slots)), bad.sum()
