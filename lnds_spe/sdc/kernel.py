"""Fused per-cell statistics: one parallel pass over the rows gives everything the rules need.

Per cell: unweighted count of rows, weighted count, number of non-missing values, sum,
sum of absolute values, the k largest absolute contributions, negatives and missing counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from lnds_spe.analysis._inputs import thread_count

_PARALLEL_MIN_ROWS = 200_000
_LANES = 4
# Spread a cell over lanes only while every thread's accumulators stay cache-sized.
_LANE_BYTES_LIMIT = 1 << 20

# Slots of one cell's accumulator record (all float64, so one row touches one record).
_COUNT, _WEIGHT, _MISSING, _NEGATIVES, _TOTAL, _ABS_TOTAL, _TOP = 0, 1, 2, 3, 4, 5, 6


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


@numba.njit(cache=True, inline="always")
def _insert_top(acc: np.ndarray, base: int, k: int, value: float) -> None:
    """Insert value into the descending top-k slots of the record at `base`."""
    j = k - 1
    while j > 0 and acc[base + _TOP + j - 1] < value:
        acc[base + _TOP + j] = acc[base + _TOP + j - 1]
        j -= 1
    acc[base + _TOP + j] = value


@numba.njit(cache=True)
def _accumulate_chunk(
    k0, k1, k2, o0, o1, o2, n0, n1, n2, values, weights, start, stop, acc, n_cells, lanes,
    width, k,
):
    """Accumulate rows [start, stop) into one thread's private records (lanes x cells x width).

    Unsigned arithmetic folds the "< 0" test of a code into ">= size"; absent keys, values
    and weights are None, so numba prunes their branches at compile time.
    """
    last_top = _TOP + k - 1
    lane_mask = np.uint64(lanes - 1)
    # Unsigned row numbers spare numba's negative-index wraparound on every access.
    for i in range(np.uint64(start), np.uint64(stop)):
        cell = np.uint64(np.int64(k0[i]) - o0)
        bad = cell >= n0
        if k1 is not None:
            c1 = np.uint64(np.int64(k1[i]) - o1)
            bad |= c1 >= n1
            cell = cell * n1 + c1
        if k2 is not None:
            c2 = np.uint64(np.int64(k2[i]) - o2)
            bad |= c2 >= n2
            cell = cell * n2 + c2
        if bad:
            continue
        # Consecutive rows of a skewed key hit the same cell: spreading them over lanes
        # breaks the store-to-load dependency chain between them.
        base = ((i & lane_mask) * n_cells + cell) * width
        acc[base + _COUNT] += 1.0
        if weights is not None:
            acc[base + _WEIGHT] += weights[i]
        if values is not None:
            v = values[i]
            if np.isnan(v):
                acc[base + _MISSING] += 1.0
                continue
            a = abs(v)
            acc[base + _TOTAL] += v
            acc[base + _ABS_TOTAL] += a
            acc[base + _NEGATIVES] += v < 0
            if a > acc[base + last_top]:
                _insert_top(acc, base, k, a)


@numba.njit(cache=True, parallel=True)
def _fused_records(k0, k1, k2, o0, o1, o2, n0, n1, n2, values, weights, lanes, width, k,
                   n_threads):
    """Each thread runs one contiguous chunk into private records; returns them unmerged."""
    n_rows = k0.shape[0]
    n_cells = n0 * n1 * n2
    acc = np.zeros((n_threads, lanes * n_cells * width), dtype=np.float64)
    chunk = (n_rows + n_threads - 1) // n_threads
    for t in numba.prange(n_threads):
        start = t * chunk
        stop = min(n_rows, start + chunk)
        _accumulate_chunk(
            k0, k1, k2, o0, o1, o2, np.uint64(n0), np.uint64(n1), np.uint64(n2), values,
            weights, start, stop, acc[t], np.uint64(n_cells), lanes, width, k,
        )
    return acc


def _thread_count(threads: int | None, n_rows: int) -> int:
    """Threads for a pass over n_rows: 1 for small inputs, else the analysis kernels' count
    (the request capped by numba's pool, numba's configured count by default)."""
    count = thread_count(threads)
    return 1 if n_rows < _PARALLEL_MIN_ROWS else count


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
    offsets = [int(o) for o in offsets] + [0] * (3 - len(offsets))
    dims = [int(s) for s in sizes] + [1] * (3 - len(sizes))
    value_array = None if values is None else np.ascontiguousarray(values, dtype=np.float64)
    weight_array = None if weights is None else np.ascontiguousarray(weights, dtype=np.float64)
    k = max(1, int(top_k))
    n_cells = int(np.prod(dims))
    width = _TOP + k if values is not None else (_WEIGHT + 1 if weights is not None else 1)
    lanes = _LANES if _LANES * n_cells * width * 8 <= _LANE_BYTES_LIMIT else 1
    n_threads = _thread_count(threads, n_rows)
    acc = _fused_records(
        padded[0], padded[1], padded[2], *offsets, *dims, value_array, weight_array,
        lanes, width, k, n_threads,
    ).reshape(n_threads * lanes, n_cells, width)
    sums = acc[:, :, : min(width, _TOP)].sum(axis=0)
    count = sums[:, _COUNT].astype(np.int64)
    weighted = sums[:, _WEIGHT] if weights is not None else count.astype(np.float64)
    zeros_i, zeros_f = np.zeros(n_cells, dtype=np.int64), np.zeros(n_cells)
    if values is None:
        missing, negatives, n_values, total, abs_total = zeros_i, zeros_i, zeros_i, zeros_f, zeros_f
        top = np.zeros((n_cells, k))
    else:
        missing = sums[:, _MISSING].astype(np.int64)
        negatives = sums[:, _NEGATIVES].astype(np.int64)
        n_values = count - missing
        total, abs_total = sums[:, _TOTAL], sums[:, _ABS_TOTAL]
        candidates = acc[:, :, _TOP:].transpose(1, 0, 2).reshape(n_cells, -1)
        top = -np.sort(-candidates, axis=1)[:, :k]
    shape = full_shape
    return CellStats(
        shape=shape,
        count=count.reshape(shape),
        weighted_count=weighted.reshape(shape),
        n_values=n_values.reshape(shape),
        total=total.reshape(shape),
        abs_total=abs_total.reshape(shape),
        top=top.reshape(shape + (k,)),
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
