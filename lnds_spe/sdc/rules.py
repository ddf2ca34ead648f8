"""Disclosure rules as pure functions over numpy arrays: each returns a boolean mask of unsafe cells.

Counts are always unweighted numbers of contributing units; magnitudes are judged on
absolute contributions, so negative values cannot hide a dominant unit.
"""

from __future__ import annotations

import numpy as np

REDACTED = "[REDACTED]"

# Rule names as they appear in flagged-cell reports and results.json.
THRESHOLD = "threshold"
NK_RULE = "nk-rule"
P_RATIO = "p-ratio"
NEGATIVE = "negative"
MISSING = "missing"
ZEROS = "zeros"
CLASS_DISCLOSURE = "class-disclosure"
EXTREME_VALUE = "extreme-value"
MODE = "mode"
DOF = "dof"
DIFFERENCING = "differencing"

# Rules whose flag makes an output fail; the rest ask a checker to review it.
FAILING_RULES = frozenset(
    {THRESHOLD, NK_RULE, P_RATIO, ZEROS, CLASS_DISCLOSURE, EXTREME_VALUE, MODE, DOF, DIFFERENCING}
)
REVIEW_RULES = frozenset({NEGATIVE, MISSING})

# ACRO 1.0.2's names for the checks it also runs (results.json, Record.sdc, outcome cells);
# the project's further rules keep their own names.
ACRO_CHECK_NAMES = {THRESHOLD: "MinimumThresholdCheck", NK_RULE: "NKCheck",
                    P_RATIO: "PPercentCheck", ZEROS: "PresenceOfZeroCheck",
                    MISSING: "MissingCheck", DOF: "MinimumDoFCheck"}


def acro_check_name(rule: str) -> str:
    """ACRO's name for a rule, or the rule's own name where ACRO has no such check."""
    return ACRO_CHECK_NAMES.get(rule, rule)


def threshold_mask(counts: np.ndarray, threshold: int, zeros_are_disclosive: bool) -> np.ndarray:
    """Cells whose unweighted count is below the threshold (empty cells only if zeros disclose)."""
    counts = np.asarray(counts)
    below = counts < threshold
    return below if zeros_are_disclosive else below & (counts > 0)


def zeros_mask(counts: np.ndarray, zeros_are_disclosive: bool) -> np.ndarray:
    """Empty cells, which disclose that no unit has that combination, when zeros are disclosive."""
    counts = np.asarray(counts)
    return (counts == 0) if zeros_are_disclosive else np.zeros(counts.shape, dtype=bool)


def nk_dominance_mask(abs_total: np.ndarray, top_n_abs_sum: np.ndarray, k: float) -> np.ndarray:
    """N-K rule: the largest n contributions make up at least fraction k of the cell total."""
    abs_total = np.asarray(abs_total, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.asarray(top_n_abs_sum, dtype=float) / abs_total
    return (abs_total > 0) & (share >= k)


def p_percent_mask(
    abs_total: np.ndarray, top1: np.ndarray, top2: np.ndarray, p: float
) -> np.ndarray:
    """p % rule: the second largest contributor can estimate the largest to within p %."""
    top1 = np.asarray(top1, dtype=float)
    remainder = np.asarray(abs_total, dtype=float) - top1 - np.asarray(top2, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = remainder / top1
    # Subtracting the two largest from a float total leaves rounding noise: absorb it.
    tolerance = 1e-9 * np.maximum(np.asarray(abs_total, dtype=float), 1.0)
    return (top1 > 0) & (ratio < p) & ~(np.abs(remainder - p * top1) <= tolerance)


def negatives_mask(negative_counts: np.ndarray) -> np.ndarray:
    """Cells with negative contributions: dominance still runs on |x|, a checker reviews them."""
    return np.asarray(negative_counts) > 0


def missing_mask(missing_counts: np.ndarray) -> np.ndarray:
    """Cells in which some units had a missing value for the summarised variable."""
    return np.asarray(missing_counts) > 0


def class_disclosure_mask(counts_2d: np.ndarray, zeros_are_disclosive: bool) -> np.ndarray:
    """Cells holding all units of their row or column (every other category empty)."""
    counts = np.asarray(counts_2d)
    mask = np.zeros(counts.shape, dtype=bool)
    if not zeros_are_disclosive or counts.ndim != 2:
        return mask
    for axis in (0, 1):
        if counts.shape[1 - axis] < 2:
            continue
        nonzero = counts > 0
        single = nonzero.sum(axis=1 - axis) == 1
        mask |= nonzero & (np.expand_dims(single, 1 - axis))
    return mask


def dof_fails(residual_dof: float, threshold: int) -> bool:
    """A model with fewer residual degrees of freedom than the threshold discloses."""
    return residual_dof < threshold


def extreme_value_mask(
    counts: np.ndarray, units_at_extreme: np.ndarray, threshold: int
) -> np.ndarray:
    """max/min is one unit's value unless at least `threshold` units share it (top/bottom-coded)."""
    return (np.asarray(counts) > 0) & (np.asarray(units_at_extreme) < threshold)


def mode_mask(units_at_mode: np.ndarray, threshold: int) -> np.ndarray:
    """A mode held by fewer units than the threshold discloses those units' value."""
    return np.asarray(units_at_mode) < threshold


def round_to_base(values: np.ndarray, base: int) -> np.ndarray:
    """Round to the nearest multiple of base (halves away from zero, as checkers expect)."""
    values = np.asarray(values, dtype=float)
    return np.sign(values) * np.floor(np.abs(values) / base + 0.5) * base


def redact_and_round(
    counts: np.ndarray, redaction_threshold: int, base: int
) -> tuple[np.ndarray, np.ndarray]:
    """OpenSAFELY style: counts <= redaction_threshold hidden, the rest rounded to base.

    Returns the rounded values (NaN where redacted) and the redaction mask.
    """
    counts = np.asarray(counts, dtype=float)
    redacted = counts <= redaction_threshold
    shown = np.where(redacted, np.nan, round_to_base(counts, base))
    return shown, redacted


def midpoint6_round(counts: np.ndarray) -> np.ndarray:
    """Midpoint-6 rounding: 0 stays 0, 1..6 -> 3, 7..12 -> 9, ... (6 * ceil(x / 6) - 3)."""
    counts = np.asarray(counts, dtype=np.int64)
    return np.where(counts <= 0, 0, 6 * ((counts + 5) // 6) - 3)


def looks_midpoint6_rounded(values: np.ndarray, min_nonzero: int = 2) -> bool:
    """Detector: all values are non-negative integers equal to 0 or 3 mod 6, with some non-zero."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0 or np.any(values < 0) or np.any(values != np.round(values)):
        return False
    nonzero = values[values > 0]
    return nonzero.size >= min_nonzero and bool(np.all(nonzero % 6 == 3))


def looks_rounded_to_base(values: np.ndarray, base: int) -> bool:
    """Detector: every non-missing value is a multiple of base."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    return values.size > 0 and bool(np.all(values % base == 0))


def verdict_for(flags: dict[str, np.ndarray | bool]) -> str:
    """Overall verdict from per-rule flags: any failing rule -> fail, else any review -> review."""
    flagged = {name for name, value in flags.items() if np.any(value)}
    if flagged & FAILING_RULES:
        return "fail"
    if flagged:
        return "review"
    return "pass"
