"""Workload D: Dice similarity of 1024-bit Bloom filters at threshold 0.7 vs anonlink."""

from __future__ import annotations

import numpy as np

from benchmarks import harness

ID = "D"
TITLE = "Dice similarity, 1024-bit Bloom filters, threshold 0.7"
THRESHOLD = 0.7
SIZES = {"ci": 2_000, "full": 10_000}


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


def run(scale: str, threads: int) -> dict:
    """Compare dice_candidates with anonlink on random and CLK-like filters, 1 and N threads."""
    from anonlink.similarities import dice_coefficient_accelerated

    from lnds_spe.analysis import dice_candidates
    from lnds_spe.analysis.synthetic import clk_pairs, random_filters

    n = SIZES[scale]
    clks = clk_pairs(n, n, match_fraction=0.05, seed=4)
    datasets = {"random": (random_filters(n, seed=1), random_filters(n, seed=2)),
                "CLK-like, 5% matches": (clks.filters_a, clks.filters_b)}
    rows, goals = [], []
    for name, (fa, fb) in datasets.items():
        ba, bb = to_bitarrays(fa), to_bitarrays(fb)

        def peer(ba=ba, bb=bb):
            return dice_coefficient_accelerated((ba, bb), THRESHOLD)

        scores, (pa, pb) = peer()
        for t in sorted({1, threads}):
            ours_s, ours_a, ours_b = dice_candidates(fa, fb, THRESHOLD, threads=t)
            harness.check_equal(f"{name}: pairs (a)", ours_a, np.asarray(pa))
            harness.check_equal(f"{name}: pairs (b)", ours_b, np.asarray(pb))
            harness.check_close(f"{name}: scores", ours_s, np.asarray(scores))
        case = f"{name}, {n}×{n}"
        peer_cold, peer_warm = harness.time_cold_warm(peer)
        rows.append(harness.row(case, "anonlink (1 thread)", peer_cold, peer_warm,
                                pairs=len(scores)))
        for t in sorted({1, threads}):
            cold, warm = harness.time_cold_warm(
                lambda fa=fa, fb=fb, t=t: dice_candidates(fa, fb, THRESHOLD, threads=t))
            rows.append(harness.row(case, f"lnds_spe dice_candidates ({t} thread(s))", cold, warm))
            target = 1.5 if t == 1 else 2.5
            goals.append(harness.goal(f"{name}: ≥ {target}× anonlink with {t} thread(s)",
                                      peer_warm / warm, target))
        if name.startswith("CLK"):
            found = set(zip(ours_a.tolist(), ours_b.tolist(), strict=True))
            truth = set(zip(clks.true_a.tolist(), clks.true_b.tolist(), strict=True))
            rows[-1]["extra"]["true_matches_found"] = f"{len(found & truth)}/{len(truth)}"
    return {"workload": ID, "title": TITLE, "scale": scale, "rows": rows, "goals": goals}
