"""Dice coefficients between sets of Bloom filters (e.g. CLKs) with threshold and top-k."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from lnds_spe.analysis._inputs import AnalysisInputError, positive_int, thread_count, to_numpy

_LANES = 8  # b rows per block: their 8 counts fill one 512-bit register
_TILE_BLOCKS = 32  # blocks of b scanned by a group of a rows in turn: 32 KiB, fits L1
_GROUP_ROWS = 32  # a rows per task, each reusing a tile while it is in L1
_FIRST_WIDTH = 16  # pairs stored per row of a in dice_candidates' first pass (k = None)


@intrinsic
def _ctpop64(typingctx, value):
    """Population count of a 64-bit word through LLVM's ctpop intrinsic."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(fn, args)

    return sig, codegen


@numba.njit(cache=True, nogil=True)
def _popcounts(filters):
    """Number of set bits of every filter (serial: waking threads costs more)."""
    n, w = filters.shape
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        c = np.uint64(0)
        for j in range(w):
            c += _ctpop64(filters[i, j])
        out[i] = c
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _dice(a, b, i, j, pa, pb):
    """Dice coefficient of a[i] and b[j] given their popcounts."""
    if pa + pb == 0:
        return 0.0
    c = np.uint64(0)
    for w in range(a.shape[1]):
        c += _ctpop64(a[i, w] & b[j, w])
    return 2.0 * c / (pa + pb)


@numba.njit(parallel=True, cache=True, nogil=True)
def _dice_matrix(a, b, pa, pb):
    """The full matrix of Dice coefficients (float64)."""
    out = np.empty((a.shape[0], b.shape[0]))
    for i in numba.prange(a.shape[0]):
        for j in range(b.shape[0]):
            out[i, j] = _dice(a, b, i, j, pa[i], pb[j])
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _keep(a, b, i, j, pi, pj, threshold, k, buf_s, buf_j, r, n):
    """Keep pair (i, j) in row r of the buffers if it reaches threshold (best k if k > 0);
    the row's new count, which for k = 0 goes on past the buffers' width (pairs not stored)."""
    total = pi + pj
    # Dice <= 2 min(pa, pb) / (pa + pb): skip pairs that cannot reach the threshold
    if total == 0 or 2.0 * min(pi, pj) < threshold * total:
        return n
    s = _dice(a, b, i, j, pi, pj)
    if s < threshold:
        return n
    if k <= 0:
        if n < buf_s.shape[1]:
            buf_s[r, n] = s
            buf_j[r, n] = j
        return n + 1
    if n < k or s > buf_s[r, n - 1]:
        pos = n if n < k else k - 1
        while pos > 0 and buf_s[r, pos - 1] < s:
            buf_s[r, pos] = buf_s[r, pos - 1]
            buf_j[r, pos] = buf_j[r, pos - 1]
            pos -= 1
        buf_s[r, pos] = s
        buf_j[r, pos] = j
        if n < k:
            n += 1
    return n


@numba.njit(parallel=True, cache=True, nogil=True)
def _candidates_block(a, b, pa, pb, lo, hi, threshold, k, buf_s, buf_j, counts):
    """For rows lo..hi-1 of a, the pairs at or above threshold (best k if k > 0) per row."""
    for r in numba.prange(hi - lo):
        n = 0
        for j in range(b.shape[0]):
            n = _keep(a, b, lo + r, j, pa[lo + r], pb[j], threshold, k, buf_s, buf_j, r, n)
        counts[r] = n


@numba.njit(cache=True, nogil=True)
def _need_table(threshold, max_total):
    """need[t]: the fewest common bits with 2 c / t >= threshold (0 for t = 0); nondecreasing."""
    need = np.zeros(max_total + 1, dtype=np.uint64)
    c = 0
    for total in range(1, max_total + 1):
        while 2.0 * c / total < threshold:
            c += 1
        need[total] = c
    return need


def _lanes(b: np.ndarray, pb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """b in blocks of _LANES rows stored word-major (block, word, lane), zero-padded, and the
    smallest popcount of each block."""
    n_blocks = -(-b.shape[0] // _LANES)
    padded = np.zeros((n_blocks * _LANES, b.shape[1]), dtype=np.uint64)
    padded[:b.shape[0]] = b
    lanes = np.ascontiguousarray(padded.reshape(n_blocks, _LANES, b.shape[1]).transpose(0, 2, 1))
    pb_padded = np.zeros(n_blocks * _LANES, dtype=np.int64)
    pb_padded[:b.shape[0]] = pb
    return lanes, pb_padded.reshape(n_blocks, _LANES).min(axis=1)


@numba.njit(parallel=True, cache=True, nogil=True)
def _candidates_block16(a, b, lanes, bmin, pa, pb, need, lo, hi, threshold, k, buf_s, buf_j,
                        counts):
    """_candidates_block for 16-word (1024-bit) filters: counts 8 b rows at a time in vector
    registers, tile by tile, and checks pairs only in blocks where one can pass."""
    m = b.shape[0]
    n_blocks = lanes.shape[0]
    rows = hi - lo
    for g in numba.prange((rows + _GROUP_ROWS - 1) // _GROUP_ROWS):
        r0 = g * _GROUP_ROWS
        r1 = min(rows, r0 + _GROUP_ROWS)
        counts[r0:r1] = 0
        for t0 in range(0, n_blocks, _TILE_BLOCKS):
            for r in range(r0, r1):
                i = lo + r
                pi = pa[i]
                n = counts[r]
                for blk in range(t0, min(n_blocks, t0 + _TILE_BLOCKS)):
                    most = np.uint64(0)
                    for lane in range(_LANES):
                        c = np.uint64(0)
                        for w in range(16):
                            c += _ctpop64(a[i, w] & lanes[blk, w, lane])
                        most = max(most, c)
                    # need is nondecreasing, so no pair of the block passes below this
                    if most >= need[pi + bmin[blk]]:
                        for j in range(blk * _LANES, min(m, (blk + 1) * _LANES)):
                            n = _keep(a, b, i, j, pi, pb[j], threshold, k, buf_s, buf_j, r, n)
                counts[r] = n


def as_filters(filters: Any, name: str) -> np.ndarray:
    """Bloom filters as a C-contiguous (n, words) uint64 view; bytes rows are viewed, not copied."""
    arr = to_numpy(filters, name)
    if arr.ndim != 2:
        raise AnalysisInputError(f"{name}: expected a 2-D array (records × words or bytes), "
                                 f"got shape {arr.shape}")
    if arr.dtype == np.uint8 or arr.dtype == np.int8:
        if arr.shape[1] % 8:
            raise AnalysisInputError(f"{name}: byte rows must be a multiple of 8 bytes long")
        arr = np.ascontiguousarray(arr).view(np.uint64)
    elif arr.dtype.kind in "iu" and arr.dtype.itemsize == 8:
        arr = np.ascontiguousarray(arr).view(np.uint64)
    else:
        raise AnalysisInputError(f"{name}: expected uint64 words or uint8 bytes, got {arr.dtype}")
    return arr


def _pair_inputs(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both filter sets, checked to have the same width."""
    fa = as_filters(a, "filters_a")
    fb = as_filters(b, "filters_b")
    if fa.shape[1] != fb.shape[1]:
        raise AnalysisInputError(f"filters_b: {fb.shape[1] * 64}-bit filters do not match "
                                 f"filters_a's {fa.shape[1] * 64} bits")
    return fa, fb


def dice_similarity(filters_a: Any, filters_b: Any, threads: int | None = None) -> np.ndarray:
    """Dice coefficients of every pair of Bloom filters, 2|a∩b| / (|a| + |b|).

    Parameters
    ----------
    filters_a : array-like, shape (n_a, words) of uint64 or (n_a, bytes) of uint8
        The first set of filters (e.g. CLKs), one per row; byte rows must be a multiple of 8
        bytes long.
    filters_b : array-like, shape (n_b, words) of uint64 or (n_b, bytes) of uint8
        The second set, of the same filter width.
    threads : int, optional
        How many threads the kernel uses; defaults to numba's configured maximum, and is
        capped by it.

    Returns
    -------
    ndarray of float64, shape (n_a, n_b)
        The coefficient of each pair; 0 where both filters are empty.
    """
    fa, fb = _pair_inputs(filters_a, filters_b)
    numba.set_num_threads(thread_count(threads))
    return _dice_matrix(fa, fb, _popcounts(fa), _popcounts(fb))


def dice_candidates(filters_a: Any, filters_b: Any, threshold: float, k: int | None = None,
                    threads: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs of Bloom filters whose Dice coefficient reaches a threshold.

    Parameters
    ----------
    filters_a : array-like, shape (n_a, words) of uint64 or (n_a, bytes) of uint8
        The first set of filters (e.g. CLKs), one per row.
    filters_b : array-like, shape (n_b, words) of uint64 or (n_b, bytes) of uint8
        The second set, of the same filter width.
    threshold : float
        The smallest Dice coefficient kept, in [0, 1].
    k : int, optional
        Keep only the k best pairs of each record of `filters_a` (all pairs when None).
    threads : int, optional
        How many threads the kernel uses; defaults to numba's configured maximum, and is
        capped by it.

    Returns
    -------
    scores : ndarray of float64
        The Dice coefficient of each pair, sorted by decreasing score, then index_a, then
        index_b.
    index_a : ndarray of int64
        The row of each pair in `filters_a`.
    index_b : ndarray of int64
        The row of each pair in `filters_b`.
    """
    fa, fb = _pair_inputs(filters_a, filters_b)
    if not 0.0 <= float(threshold) <= 1.0:
        raise AnalysisInputError(f"threshold: expected a number in [0, 1], got {threshold!r}")
    k_eff = 0 if k is None else positive_int(k, "k")
    threads = thread_count(threads)
    numba.set_num_threads(threads)
    pa, pb = _popcounts(fa), _popcounts(fb)
    fast = fa.shape[1] == 16
    lanes, bmin = _lanes(fb, pb) if fast else (None, None)
    need = _need_table(float(threshold), 2 * 64 * 16) if fast else None

    def pairs(a: np.ndarray, p: np.ndarray, rows: np.ndarray,
              width: int) -> tuple[list, list, list, np.ndarray, np.ndarray]:
        """Pairs of a (rows `rows` of fa, popcounts p), at most width per row, in blocks; the
        rows with more (k = 0 only) and their counts."""
        block = int(max(threads, min(a.shape[0], 4096, 20_000_000 // width)))
        buf_s = np.empty((block, width))
        buf_j = np.empty((block, width), dtype=np.int64)
        counts = np.empty(block, dtype=np.int64)
        parts = ([np.empty(0)], [np.empty(0, np.int64)], [np.empty(0, np.int64)])
        over, over_n = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
        for lo in range(0, a.shape[0], block):
            hi = min(a.shape[0], lo + block)
            if fast:
                _candidates_block16(a, fb, lanes, bmin, p, pb, need, lo, hi, float(threshold),
                                    k_eff, buf_s, buf_j, counts)
            else:
                _candidates_block(a, fb, p, pb, lo, hi, float(threshold), k_eff, buf_s, buf_j,
                                  counts)
            n = counts[:hi - lo]
            full = n > width
            over.append(rows[lo:hi][full])
            over_n.append(n[full])
            n = np.where(full, 0, n)
            kept = np.arange(width) < n[:, None]
            parts[0].append(buf_s[:hi - lo][kept])
            parts[1].append(np.repeat(rows[lo:hi], n))
            parts[2].append(buf_j[:hi - lo][kept])
        return *parts, np.concatenate(over), np.concatenate(over_n)

    # a first pass stores a few pairs per row (buffers of every pair per row would be huge and
    # sparse), then the rows with more are done again with room for all
    width = max(1, min(k_eff or _FIRST_WIDTH, fb.shape[0]))
    scores, rows, cols, over, over_n = pairs(fa, pa, np.arange(fa.shape[0]), width)
    if over.size:
        more = pairs(np.ascontiguousarray(fa[over]), pa[over], over, int(over_n.max()))
        scores, rows, cols = scores + more[0], rows + more[1], cols + more[2]
    s, i, j = np.concatenate(scores), np.concatenate(rows), np.concatenate(cols)
    order = np.lexsort((j, i, -s))
    return s[order], i[order], j[order]
