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
