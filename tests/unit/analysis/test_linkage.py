"""dice_similarity / dice_candidates against a numpy bit-level reference."""

import numpy as np
import pytest

from lnds_spe.analysis import AnalysisInputError, dice_candidates, dice_similarity
from lnds_spe.analysis.synthetic import clk_pairs, random_filters


def reference_dice(a, b):
    """Dice from unpacked bits."""
    bits_a = np.unpackbits(a.view(np.uint8), axis=1).astype(np.int64)
    bits_b = np.unpackbits(b.view(np.uint8), axis=1).astype(np.int64)
    common = bits_a @ bits_b.T
    total = bits_a.sum(1)[:, None] + bits_b.sum(1)[None, :]
    with np.errstate(invalid="ignore"):
        return np.where(total == 0, 0.0, 2 * common / np.maximum(total, 1))


def test_dice_similarity_matches_reference_including_empty_filters():
    a = random_filters(60, density=0.3, seed=1)
    b = random_filters(45, density=0.6, seed=2)
    a[0] = 0
    b[0] = 0
    np.testing.assert_allclose(dice_similarity(a, b), reference_dice(a, b), rtol=1e-15)
    np.testing.assert_allclose(dice_similarity(a.view(np.uint8), b.view(np.uint8)),
                               reference_dice(a, b))


@pytest.mark.parametrize("threads", [1, 2])
def test_dice_candidates_threshold_and_order(threads):
    pairs = clk_pairs(300, 250, match_fraction=0.1, seed=3)
    ref = reference_dice(pairs.filters_a, pairs.filters_b)
    scores, ia, ib = dice_candidates(pairs.filters_a, pairs.filters_b, 0.7, threads=threads)
    ri, rj = np.nonzero(ref >= 0.7)
    order = np.lexsort((rj, ri, -ref[ri, rj]))
    np.testing.assert_array_equal(ia, ri[order])
    np.testing.assert_array_equal(ib, rj[order])
    np.testing.assert_allclose(scores, ref[ri, rj][order])
    truth = set(zip(pairs.true_a.tolist(), pairs.true_b.tolist(), strict=True))
    assert truth <= set(zip(ia.tolist(), ib.tolist(), strict=True))


def test_dice_candidates_top_k_keeps_best_per_record():
    a = random_filters(40, density=0.5, seed=4)
    b = np.concatenate([a, random_filters(40, density=0.5, seed=5)])
    ref = reference_dice(a, b)
    scores, ia, ib = dice_candidates(a, b, 0.0, k=3)
    for i in range(40):
        mine = np.sort(scores[ia == i])[::-1]
        np.testing.assert_allclose(mine, np.sort(ref[i])[::-1][:3])
    assert np.all(np.diff(scores) <= 0)


def test_dice_refuses_bad_input():
    a = random_filters(3, seed=1)
    with pytest.raises(AnalysisInputError, match="filters_b"):
        dice_candidates(a, random_filters(3, bits=512, seed=1), 0.5)
    with pytest.raises(AnalysisInputError, match="threshold"):
        dice_candidates(a, a, 1.5)
    with pytest.raises(AnalysisInputError, match="filters_a"):
        dice_similarity(a.astype(np.float64), a)


def expected_pairs(a, b, threshold, k=None):
    """Pairs at or above threshold from the reference (pairs of two empty filters never
    count), best k per row of a, in dice_candidates' order."""
    ref = reference_dice(a, b)
    empty = (a.sum(1) == 0)[:, None] & (b.sum(1) == 0)[None, :]
    ri, rj = np.nonzero((ref >= threshold) & ~empty)
    s = ref[ri, rj]
    if k is not None:
        keep = np.lexsort((rj, -s, ri))  # per row: best first, lower index b on ties
        ri, rj, s = ri[keep], rj[keep], s[keep]
        rank = np.arange(ri.size) - np.searchsorted(ri, ri)
        ri, rj, s = ri[rank < k], rj[rank < k], s[rank < k]
    order = np.lexsort((rj, ri, -s))
    return s[order], ri[order], rj[order]


@pytest.mark.parametrize("bits", [512, 1024, 2048])
@pytest.mark.parametrize("threshold", [0.0, 0.6, 1.0])
@pytest.mark.parametrize("k", [None, 2])
def test_dice_candidates_every_width_matches_reference(bits, threshold, k):
    # 16-word filters take the blocked kernel, other widths the per-pair one: both must agree
    # with the reference; 300 rows of b span several tiles and end in a partial block
    a = random_filters(37, bits=bits, density=0.2, seed=6)
    b = np.concatenate([a[:20], random_filters(280, bits=bits, density=0.25, seed=7)])
    b[25:30] = b[3]  # ties: equal scores, the lower index b comes first
    a[5] = 0
    b[7] = 0
    b[-1] = 0
    for threads in (1, 2):
        scores, ia, ib = dice_candidates(a, b, threshold, k=k, threads=threads)
        s, ri, rj = expected_pairs(a, b, threshold, k)
        np.testing.assert_array_equal(ia, ri)
        np.testing.assert_array_equal(ib, rj)
        np.testing.assert_array_equal(scores, s)


@pytest.mark.parametrize("bits", [512, 1024])
def test_dice_candidates_rows_with_many_pairs_and_empty_sides(bits):
    # rows with more pairs than the first pass stores are done again with room for all
    a = random_filters(30, bits=bits, density=0.5, seed=8)
    b = np.concatenate([np.repeat(a[:2], 40, axis=0), random_filters(50, bits=bits, seed=9)])
    for threshold in (0.0, 0.55, 0.9):
        scores, ia, ib = dice_candidates(a, b, threshold)
        s, ri, rj = expected_pairs(a, b, threshold)
        np.testing.assert_array_equal(ia, ri)
        np.testing.assert_array_equal(ib, rj)
        np.testing.assert_array_equal(scores, s)
    for x, y in ((a[:0], b), (a, b[:0])):
        scores, ia, ib = dice_candidates(x, y, 0.5)
        assert scores.size == ia.size == ib.size == 0 and ia.dtype == np.int64
