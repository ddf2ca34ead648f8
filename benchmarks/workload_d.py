"""Workload D: Dice similarity of 1024-bit Bloom filters at threshold 0.7 vs anonlink.

anonlink's kernel releases the GIL, so an expert with N cores splits the first side into N
slices and runs them in N threads: both sides are timed with 1 and with N threads, and each
row is labelled with its thread count. The random data has near-copies planted in it, so the
pairs check compares real pairs, not two empty lists.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from benchmarks import harness

ID = "D"
TITLE = "Dice similarity, 1024-bit Bloom filters, threshold 0.7"
THRESHOLD = 0.7
SIZES = {"ci": 2_000, "full": 10_000}
PLANTED_FRACTION = 0.05
FLIP_PROBABILITY = 0.1  # a near-copy differs in ~10% of its bits: Dice ≈ 0.9, above 0.7


def to_bitarrays(filters: np.ndarray) -> list:
    """anonlink's input: one big-endian bitarray per filter (bytes in memory order)."""
    from bitarray import bitarray

    out = []
    raw = filters.view(np.uint8)
    for row in raw:
        bits = bitarray(endian="big")
        bits.frombytes(row.tobytes())
        out.append(bits)
    return out


def plant_near_copies(fa: np.ndarray, fb: np.ndarray, seed: int) -> tuple[np.ndarray, int]:
    """fb with a fraction of its rows replaced by noisy copies of rows of fa; how many."""
    rng = np.random.default_rng(seed)
    n = int(PLANTED_FRACTION * min(len(fa), len(fb)))
    rows_a = rng.choice(len(fa), n, replace=False)
    rows_b = rng.choice(len(fb), n, replace=False)
    noise = np.packbits(rng.random((n, fa.shape[1] * 64)) < FLIP_PROBABILITY, axis=1)
    out = fb.copy()
    out[rows_b] = fa[rows_a] ^ noise.view(fa.dtype).reshape(n, fa.shape[1])
    return out, n


def anonlink_pairs(ba: list, bb: list, threads: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """anonlink's candidates, the first side split over `threads` threads, in our order
    (decreasing score, then index a, then index b)."""
    from anonlink.similarities import dice_coefficient_accelerated

    bounds = np.linspace(0, len(ba), threads + 1).astype(int)

    def one(lo_hi: tuple[int, int]):
        scores, (pa, pb) = dice_coefficient_accelerated((ba[lo_hi[0]:lo_hi[1]], bb), THRESHOLD)
        return np.asarray(scores), np.asarray(pa, dtype=np.int64) + lo_hi[0], np.asarray(pb)

    if threads == 1:
        parts = [one((0, len(ba)))]
    else:
        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(one, zip(bounds[:-1], bounds[1:], strict=True)))
    scores, pa, pb = (np.concatenate([p[i] for p in parts]) for i in range(3))
    order = np.lexsort((pb, pa, -scores))
    return scores[order], pa[order], pb[order]


def datasets(n: int) -> dict[str, tuple[np.ndarray, np.ndarray, set | None]]:
    """Random filters with planted near-copies, and CLK-like filters with 5% true matches
    (with the set of true pairs)."""
    from lnds_spe.analysis.synthetic import clk_pairs, random_filters

    fa = random_filters(n, seed=1)
    fb, _ = plant_near_copies(fa, random_filters(n, seed=2), seed=3)
    clks = clk_pairs(n, n, match_fraction=0.05, seed=4)
    truth = set(zip(clks.true_a.tolist(), clks.true_b.tolist(), strict=True))
    return {"random + 5% near-copies": (fa, fb, None),
            "CLK-like, 5% matches": (clks.filters_a, clks.filters_b, truth)}


def probes(scale: str, threads: int, name: str | None = None) -> dict:
    """Fresh-process probes: each implementation on the CLK-like data, N threads."""
    from lnds_spe.analysis import dice_candidates

    fa, fb, _ = datasets(SIZES[scale])["CLK-like, 5% matches"]
    ba, bb = to_bitarrays(fa), to_bitarrays(fb)
    return {"lnds_spe dice_candidates": lambda: dice_candidates(fa, fb, THRESHOLD,
                                                                threads=threads),
            "anonlink": lambda: anonlink_pairs(ba, bb, threads)}


def run(scale: str, threads: int) -> dict:
    """Compare dice_candidates with anonlink on both data sets, each side with 1 and N threads."""
    from lnds_spe.analysis import dice_candidates

    n = SIZES[scale]
    counts = sorted({1, threads})
    probe = harness.fresh_process_probes(
        ID, scale, threads, harness.probe_names(scale, probes(scale, threads)))
    rows, goals = [], []
    for name, (fa, fb, truth) in datasets(n).items():
        ba, bb = to_bitarrays(fa), to_bitarrays(fb)
        impls = {}
        for t in counts:
            impls[("anonlink", t)] = lambda ba=ba, bb=bb, t=t: anonlink_pairs(ba, bb, t)
            impls[("ours", t)] = lambda fa=fa, fb=fb, t=t: dice_candidates(fa, fb, THRESHOLD,
                                                                          threads=t)
        expected = impls[("anonlink", 1)]()
        if expected[0].size < PLANTED_FRACTION * n:
            raise harness.Disagreement(f"{name}: anonlink found {expected[0].size} pairs, "
                                       f"fewer than the {PLANTED_FRACTION:.0%} planted")
        for (who, t), fn in impls.items():
            scores, pa, pb = fn()
            harness.check_equal(f"{name}: pairs (a), {who} {t} thread(s)", pa, expected[1])
            harness.check_equal(f"{name}: pairs (b), {who} {t} thread(s)", pb, expected[2])
            harness.check_close(f"{name}: scores, {who} {t} thread(s)", scores, expected[0])
        timing = harness.interleave(impls, harness.repeats_for(scale))
        case = f"{name}, {n}×{n}"
        for (who, t), stats in timing.items():
            label = ("anonlink dice_coefficient_accelerated" if who == "anonlink"
                     else "lnds_spe dice_candidates")
            split = ", first side split over threads" if who == "anonlink" and t > 1 else ""
            pname = "anonlink" if who == "anonlink" else "lnds_spe dice_candidates"
            rows.append(harness.timed_row(case, label + split, stats, t,
                                          probe.get(pname) if t == threads and truth else None,
                                          pairs=int(expected[0].size)))
        if truth is not None:
            found = set(zip(expected[1].tolist(), expected[2].tolist(), strict=True))
            rows[-1]["extra"]["true_matches_found"] = f"{len(found & truth)}/{len(truth)}"
        med = {key: stats["median_s"] for key, stats in timing.items()}
        goals.append(harness.goal(f"{name}: ≥ 1.5× anonlink, 1 thread each",
                                  med[("anonlink", 1)] / med[("ours", 1)], 1.5))
        if threads > 1:
            best_peer = min(med[("anonlink", t)] for t in counts)
            goals.append(harness.goal(
                f"{name}: ≥ 1.5× anonlink at its best of 1 and {threads} threads (ours "
                f"{threads} threads)", best_peer / med[("ours", threads)], 1.5))
    return {"workload": ID, "title": TITLE, "scale": scale, "rows": rows, "goals": goals}
