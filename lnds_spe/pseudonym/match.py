"""Linkage by proximity: Dice candidates above a threshold, a greedy 1:1 assignment, linkage keys.

Candidates come from the numba `dice_candidates` (which blocks on filter popcounts: a pair whose
counts cannot reach the threshold is never compared). Each side then gets only its own record ids
with a fresh random linkage key per matched pair: no scores, no ids of the other side.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import numpy as np

from lnds_spe.analysis.linkage import dice_candidates


def greedy_pairs(scores: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> list[tuple[int, int]]:
    """Best-first 1:1 pairs from candidates sorted by decreasing score."""
    used_a, used_b, pairs = set(), set(), []
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            pairs.append((i, j))
    return pairs


def match(filters_a: np.ndarray, filters_b: np.ndarray, threshold: float = 0.8,
          threads: int | None = None) -> list[tuple[int, int]]:
    """Index pairs (a, b) linked 1:1 at Dice >= threshold."""
    scores, rows, cols = dice_candidates(filters_a, filters_b, threshold, threads=threads)
    return greedy_pairs(scores, rows, cols)


def linkage_keys(pairs: Sequence[tuple[int, int]], ids_a: Sequence[str],
                 ids_b: Sequence[str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(id, linkage key) rows for holder A and for holder B; one fresh random key per pair."""
    keys = [secrets.token_hex(12) for _ in pairs]
    side_a = sorted((ids_a[i], k) for (i, _), k in zip(pairs, keys, strict=True))
    side_b = sorted((ids_b[j], k) for (_, j), k in zip(pairs, keys, strict=True))
    return side_a, side_b
