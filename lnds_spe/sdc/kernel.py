"""Fused per-cell statistics: one parallel pass over the rows gives everything the rules need.

Per cell: unweighted count of rows, weighted count, number of non-missing values, sum,
sum of absolute values, the k largest absolute contributions, negatives and missing counts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numba
import numpy as np

_PARALLEL_MIN_ROWS = 200_000
_LANES = 4


@dataclass(frozen=True)
class CellStats:
    """Statistics per cell of a dense grid of shape `shape` (one axis per key)."""

    shape: tuple[int, ...]
    count: np.ndarray
    weighted_count: np.ndarray
    n_values: np.ndarray
    total: np.ndarray
    abs_total: np.ndarray
    top: np.ndarray  # shape + (k,), largest absolute contributions first
    negatives: np.ndarray
    missing: np.ndarray

    def mean(self) -> np.ndarray:
        """Mean of the non-missing values per cell (NaN for cells without any)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n_values > 0, self.total / self.n_values, np.nan)


@numba.njit(cache=True, inline="always")
def _insert_top(top: np.ndarray, row: int, value: float) -> None:
    """Insert value into the descending list top[row, :] if it belongs there."""
    k = top.shape[1]
    if value <= top[row, k - 1]:
        return
    j = k - 1
    while j > 0 and top[row, j - 1] < value:
        top[row, j] = top[row, j - 1]
        j -= 1
    top[row, j] = value


@numba.njit(cache=True, inline="always")
def _cell_of(k0, k1, k2, i, offsets, sizes):
    """Cell number of row i and whether any key is missing / out of range.

    Unsigned arithmetic folds the "< 0" test into ">= size"; absent keys are None, so numba
    prunes their branches at compile time.
    """
    cell = np.uint64(np.int64(k0[i]) - offsets[0])
    bad = cell >= sizes[0]
    if k1 is not None:
        c1 = np.uint64(np.int64(k1[i]) - offsets[1])
        bad |= c1 >= sizes[1]
        cell = cell * sizes[1] + c1
    if k2 is not None:
        c2 = np.uint64(np.int64(k2[i]) - offsets[2])
        bad |= c2 >= sizes[2]
        cell = cell * sizes[2] + c2
    return cell, bad


@numba.njit(cache=True)
def _accumulate_chunk(
    k0, k1, k2, offsets, sizes, values, weights, start, stop,
    count, weighted, n_values, total, abs_total, top, negatives, missing,
):
    """Accumulate rows [start, stop) into one thread's private per-cell arrays."""
    k = top.shape[1]
    n_cells = np.uint64(top.shape[0])
    # Unsigned row numbers spare numba's negative-index wraparound on every access.
    for i in range(np.uint64(start), np.uint64(stop)):
        cell, bad = _cell_of(k0, k1, k2, i, offsets, sizes)
        if bad:
            continue
        top_cell = cell
        # Consecutive rows of a skewed key hit the same cell: spreading the sums over lanes
        # breaks the store-to-load dependency chain between them.
        cell = (i & np.uint64(_LANES - 1)) * n_cells + cell
        count[cell] += 1
        if weights is not None:
            weighted[cell] += weights[i]
        if values is not None:
            v = values[i]
            if np.isnan(v):
                missing[cell] += 1
                continue
            n_values[cell] += 1
            total[cell] += v
            a = abs(v)
            abs_total[cell] += a
            negatives[cell] += v < 0
            if a > top[top_cell, k - 1]:
                _insert_top(top, top_cell, a)


@numba.njit(cache=True, parallel=True)
def _fused_cell_stats(
    k0, k1, k2, offsets, sizes, n_cells, values, weights, k, n_threads
):
    """Each thread runs one contiguous chunk into private accumulators; then a merge."""
    n_rows = k0.shape[0]
    lanes = _LANES * n_cells
    count = np.zeros((n_threads, lanes), dtype=np.int64)
    n_values = np.zeros((n_threads, lanes), dtype=np.int64)
    negatives = np.zeros((n_threads, lanes), dtype=np.int64)
    missing = np.zeros((n_threads, lanes), dtype=np.int64)
    weighted = np.zeros((n_threads, lanes), dtype=np.float64)
    total = np.zeros((n_threads, lanes), dtype=np.float64)
    abs_total = np.zeros((n_threads, lanes), dtype=np.float64)
    top = np.zeros((n_threads, n_cells, k), dtype=np.float64)
    chunk = (n_rows + n_threads - 1) // n_threads
    for t in numba.prange(n_threads):
        start = t * chunk
        stop = min(n_rows, start + chunk)
        _accumulate_chunk(
            k0, k1, k2, offsets, sizes, values, weights,
            start, stop, count[t], weighted[t], n_values[t], total[t], abs_total[t], top[t],
            negatives[t], missing[t],
        )
    merged_top = np.zeros((n_cells, k), dtype=np.float64)
    for c in range(n_cells):
        for t in range(n_threads):
            for j in range(k):
                _insert_top(merged_top, c, top[t, c, j])
    return (
        count.reshape(n_threads * _LANES, n_cells).sum(axis=0),
        weighted.reshape(n_threads * _LANES, n_cells).sum(axis=0),
        n_values.reshape(n_threads * _LANES, n_cells).sum(axis=0),
        total.reshape(n_threads * _LANES, n_cells).sum(axis=0),
        abs_total.reshape(n_threads * _LANES, n_cells).sum(axis=0),
        merged_top,
        negatives.reshape(n_threads * _LANES, n_cells).sum(axis=0),
        missing.reshape(n_threads * _LANES, n_cells).sum(axis=0),
    )


def default_threads() -> int:
    """Threads to use: NUMBA_NUM_THREADS if set, else numba's configured count."""
    return int(os.environ.get("NUMBA_NUM_THREADS", numba.config.NUMBA_NUM_THREADS))


def cell_stats(
    keys: list[np.ndarray],
    offsets: list[int],
    sizes: list[int],
    values: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    top_k: int = 2,
    threads: int | None = None,
) -> CellStats:
    """Per-cell statistics for integer keys (code = key - offset, out of range = dropped row)."""
    if not keys:
        raise ValueError("cell_stats needs at least one key array")
    n_rows = keys[0].shape[0]
    full_shape = tuple(int(s) for s in sizes)
    keys, offsets, sizes = _at_most_three_keys(keys, offsets, sizes)
    common = np.result_type(*[key.dtype for key in keys])
    padded: list[np.ndarray | None] = [np.ascontiguousarray(key, dtype=common) for key in keys]
    padded += [None] * (3 - len(padded))
    value_array = None if values is None else np.ascontiguousarray(values, dtype=np.float64)
    weight_array = None if weights is None else np.ascontiguousarray(weights, dtype=np.float64)
    n_threads = threads if threads is not None else default_threads()
    n_threads = max(1, min(n_threads, numba.config.NUMBA_NUM_THREADS))
    if n_rows < _PARALLEL_MIN_ROWS:
        n_threads = 1
    shape = tuple(int(s) for s in sizes)
    result = _fused_cell_stats(
        padded[0],
        padded[1],
        padded[2],
        np.asarray(list(offsets) + [0] * (3 - len(offsets)), dtype=np.int64),
        np.asarray(list(shape) + [1] * (3 - len(shape)), dtype=np.uint64),
        int(np.prod(shape)),
        value_array,
        weight_array,
        max(1, int(top_k)),
        n_threads,
    )
    count, weighted, n_values, total, abs_total, top, negatives, missing = result
    if weights is None:
        weighted = count.astype(np.float64)
    shape = full_shape
    return CellStats(
        shape=shape,
        count=count.reshape(shape),
        weighted_count=weighted.reshape(shape),
        n_values=n_values.reshape(shape),
        total=total.reshape(shape),
        abs_total=abs_total.reshape(shape),
        top=top.reshape(shape + (top.shape[1],)),
        negatives=negatives.reshape(shape),
        missing=missing.reshape(shape),
    )


def _at_most_three_keys(
    keys: list[np.ndarray], offsets: list[int], sizes: list[int]
) -> tuple[list[np.ndarray], list[int], list[int]]:
    """Fold leading keys into one combined code so the kernel sees at most three."""
    keys, offsets, sizes = list(keys), list(offsets), list(sizes)
    while len(keys) > 3:
        first = keys[0].astype(np.int64) - offsets[0]
        second = keys[1].astype(np.int64) - offsets[1]
        bad = (first < 0) | (first >= sizes[0]) | (second < 0) | (second >= sizes[1])
        combined = np.where(bad, -1, first * sizes[1] + second)
        keys[:2] = [combined]
        offsets[:2] = [0]
        sizes[:2] = [sizes[0] * sizes[1]]
    return keys, offsets, sizes
