"""Checked tables: crosstab/pivot outputs with per-cell rule flags, suppression and redaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lnds_spe.errors import SPEError
from lnds_spe.sdc import rules
from lnds_spe.sdc.config import SDCConfig
from lnds_spe.sdc.grid import Grid2D, as_series_list, build_grid

FUSED_AGGFUNCS = ("count", "sum", "mean")
MAGNITUDE_AGGFUNCS = ("sum", "mean", "std", "var", "median", "sem")


@dataclass
class CheckedTable:
    """A table as shown to the researcher plus its per-rule flags and verdict."""

    table: pd.DataFrame
    flags: dict[str, np.ndarray]
    verdict: str
    summary: str
    counts: pd.DataFrame  # true unweighted counts per cell, for the differencing ledger
    hidden: np.ndarray  # cells not shown (suppressed or redacted)
    notes: list[str] = field(default_factory=list)


def aggfunc_name(aggfunc: object) -> str | None:
    """Canonical name of an aggregation function given as a string or numpy/pandas callable."""
    if aggfunc is None or isinstance(aggfunc, str):
        return aggfunc
    known = {np.sum: "sum", np.mean: "mean", np.median: "median", np.std: "std", np.max: "max",
             np.min: "min", np.var: "var", len: "count"}
    name = known.get(aggfunc)  # type: ignore[call-overload]
    return name if name is not None else getattr(aggfunc, "__name__", "custom")


def grid_flags(grid: Grid2D, config: SDCConfig, magnitude: bool) -> dict[str, np.ndarray]:
    """Rule masks for every cell of a grid (frequency or magnitude table)."""
    zeros = config.zeros_are_disclosive
    if not magnitude:
        flags = {
            rules.THRESHOLD: rules.threshold_mask(grid.count, config.safe_threshold, zeros),
            rules.ZEROS: rules.zeros_mask(grid.count, zeros),
        }
        inner = grid.count
        flags[rules.CLASS_DISCLOSURE] = rules.class_disclosure_mask(inner, zeros)
        return flags
    n = min(config.safe_nk_n, grid.top.shape[2])
    flags = {
        rules.THRESHOLD: rules.threshold_mask(grid.n_values, config.safe_threshold, True),
        rules.NK_RULE: rules.nk_dominance_mask(
            grid.abs_total, grid.top[:, :, :n].sum(axis=2), config.safe_nk_k
        ),
        rules.P_RATIO: rules.p_percent_mask(
            grid.abs_total, grid.top[:, :, 0], grid.top[:, :, 1], config.safe_pratio_p
        ),
        rules.NEGATIVE: rules.negatives_mask(grid.negatives),
    }
    if config.check_missing_values:
        flags[rules.MISSING] = rules.missing_mask(grid.missing)
    return flags


def _frame(values: np.ndarray, grid: Grid2D) -> pd.DataFrame:
    """Label a 2-D array with the grid's row and column index."""
    return pd.DataFrame(values, index=grid.row_index.copy(), columns=grid.col_index.copy())


def _fused_values(grid: Grid2D, aggfunc: str | None, has_values: bool) -> np.ndarray:
    """Cell values of the table the researcher asked for, from the fused statistics."""
    if not has_values or aggfunc is None:
        return grid.count
    empty = grid.count == 0
    if aggfunc == "count":
        return np.where(empty, np.nan, grid.n_values.astype(float))
    if aggfunc == "sum":
        return np.where(empty, np.nan, grid.total)
    return grid.mean()


def _failing(flags: dict[str, np.ndarray]) -> np.ndarray:
    """Cells flagged by any rule that makes an output fail."""
    shape = next(iter(flags.values())).shape
    out = np.zeros(shape, dtype=bool)
    for name, mask in flags.items():
        if name in rules.FAILING_RULES:
            out |= mask
    return out


def summarise(flags: dict[str, np.ndarray], hidden: np.ndarray, how: str) -> tuple[str, str]:
    """Verdict and a human-readable summary; failing cells that are hidden no longer fail."""
    parts = []
    effective: dict[str, np.ndarray] = {}
    for name, mask in flags.items():
        count = int(np.count_nonzero(mask))
        if not count:
            continue
        open_mask = mask & ~hidden if name in rules.FAILING_RULES else mask
        effective[name] = open_mask
        state = how if name in rules.FAILING_RULES and not open_mask.any() else (
            "to review" if name in rules.REVIEW_RULES else "may need suppressing"
        )
        parts.append(f"{name}: {count} cells {state}")
    verdict = rules.verdict_for(effective)
    if verdict == "pass" and hidden.any() and how == "suppressed":
        verdict = "review"
    text = f"{verdict}; " + "; ".join(parts) if parts else verdict
    return verdict, text


def checked_crosstab(
    index: object,
    columns: object,
    values: object = None,
    rownames: object = None,
    colnames: object = None,
    aggfunc: object = None,
    margins: bool = False,
    margins_name: str = "All",
    dropna: bool = True,
    normalize: bool | str = False,
    weights: object = None,
    config: SDCConfig | None = None,
    suppress: bool = False,
) -> CheckedTable:
    """pandas.crosstab with every cell checked; fused kernel for counts, sums and means."""
    config = config or SDCConfig()
    rows = _rename(as_series_list(index, "row"), rownames)
    cols = _rename(as_series_list(columns, "col"), colnames)
    if not rows:
        raise SPEError("crosstab needs at least one row variable (index=...).")
    if values is None and aggfunc is not None:
        raise SPEError("crosstab: aggfunc needs values=...; pass the variable to summarise.")
    if values is not None and aggfunc is None:
        raise SPEError("crosstab: values needs an aggfunc such as 'mean' or 'sum'.")
    name = aggfunc_name(aggfunc)
    value_series = None if values is None else pd.Series(values).rename(
        getattr(values, "name", None) or "values"
    )
    weight_series = None if weights is None else pd.Series(weights)
    top_k = max(2, config.safe_nk_n)
    grid = build_grid(rows, cols, value_series, weight_series, dropna, top_k)
    magnitude = value_series is not None and name != "count"
    grid_m = grid.with_margins(margins_name) if margins else grid
    flags = grid_flags(grid_m, config, magnitude)
    if margins and not magnitude:
        flags[rules.CLASS_DISCLOSURE] = np.pad(
            rules.class_disclosure_mask(grid.count, config.zeros_are_disclosive), ((0, 1), (0, 1))
        )
    notes: list[str] = []
    if value_series is not None and name not in FUSED_AGGFUNCS:
        table, extra = _pandas_aggregate(rows, cols, value_series, aggfunc, grid_m, config)
        flags.update(extra)
    else:
        table = _frame(_fused_values(grid_m, name, value_series is not None), grid_m)
    if weight_series is not None and value_series is None:
        table = _frame(grid_m.weighted_count, grid_m)
        notes.append("weighted counts; thresholds applied to unweighted counts")
    counts = _frame(grid.count, grid)
    hidden = np.zeros(table.shape, dtype=bool)
    how = "suppressed"
    if config.redaction_threshold is not None and not magnitude:
        table, hidden = _redact(grid, config, margins, margins_name)
        how = "redacted"
    elif suppress:
        hidden = _failing(flags)
        if margins and hidden[:-1, :-1].any():
            inner_keep = ~hidden[:-1, :-1]
            regrid = grid.with_margins(margins_name, keep=inner_keep)
            regrid_flags = grid_flags(regrid, config, magnitude)
            hidden = hidden | np.pad(np.zeros_like(inner_keep), ((0, 1), (0, 1)),
                                     constant_values=False)
            hidden[-1, :] |= _failing(regrid_flags)[-1, :]
            hidden[:, -1] |= _failing(regrid_flags)[:, -1]
            if value_series is None or name in FUSED_AGGFUNCS:
                table = _frame(_fused_values(regrid, name, value_series is not None), regrid)
        table = table.astype(float).mask(hidden)
    if normalize is not False:
        table = _normalise(table, normalize, margins)
        notes.append("normalised: checks ran on the underlying counts")
    verdict, summary = summarise(flags, hidden, how)
    return CheckedTable(table, flags, verdict, summary, counts, hidden, notes)


def _rename(series: list[pd.Series], names: object) -> list[pd.Series]:
    """Apply rownames/colnames as pandas.crosstab does."""
    if names is None:
        return series
    names = list(names) if isinstance(names, list | tuple) else [names]
    return [s.rename(n) for s, n in zip(series, names, strict=False)]


def _normalise(table: pd.DataFrame, how: bool | str, margins: bool) -> pd.DataFrame:
    """Proportions as pandas.crosstab(normalize=...) gives them."""
    inner = table.iloc[:-1, :-1] if margins else table
    if how is True or how == "all":
        result = table / inner.to_numpy().sum()
    elif how == "index":
        result = table.div(inner.sum(axis=1).reindex(table.index).fillna(
            inner.to_numpy().sum()), axis=0)
    elif how == "columns":
        result = table.div(inner.sum(axis=0).reindex(table.columns).fillna(
            inner.to_numpy().sum()), axis=1)
    else:
        raise SPEError(f"normalize={how!r} is not one of True, 'all', 'index', 'columns'.")
    return result


def _redact(
    grid: Grid2D, config: SDCConfig, margins: bool, margins_name: str
) -> tuple[pd.DataFrame, np.ndarray]:
    """OpenSAFELY profile: hide small counts, round the rest; totals sum the shown values."""
    shown, redacted = rules.redact_and_round(
        grid.count, config.redaction_threshold or 0, config.safe_round_base
    )
    table = _frame(shown, grid)
    if margins:
        table[margins_name] = np.nansum(shown, axis=1)
        table.loc[margins_name] = np.append(np.nansum(shown, axis=0), np.nansum(shown))
        # A margin over redacted cells only would show 0: redact it as well.
        row_all = redacted.all(axis=1)
        col_all = redacted.all(axis=0)
        redacted = np.block([[redacted, row_all[:, None]],
                             [col_all[None, :], np.array([[redacted.all()]])]])
    display = table.astype(object).mask(np.asarray(redacted), rules.REDACTED)
    return display, redacted


def _pandas_aggregate(
    rows: list[pd.Series],
    cols: list[pd.Series],
    values: pd.Series,
    aggfunc: object,
    grid: Grid2D,
    config: SDCConfig,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Aggregations the kernel does not fuse: table from pandas, extra rules from groupby."""
    frame = pd.concat(rows + cols + [values], axis=1)
    keys = [s.name for s in rows + cols]
    grouped = frame.groupby(keys, observed=True, dropna=True)[values.name]
    name = aggfunc_name(aggfunc)
    cell_values = grouped.agg(_agg_callable(aggfunc))
    extra: dict[str, np.ndarray] = {}
    if name in ("max", "min"):
        target = grouped.transform(name)
        at_extreme = (frame[values.name] == target).groupby(
            [frame[k] for k in keys], observed=True).sum()
        extra[rules.EXTREME_VALUE] = _align(at_extreme, rows, cols, grid, fill=0) < \
            config.safe_threshold
    if name in ("mode", "agg_mode"):
        units_at_mode = grouped.agg(lambda s: int(s.value_counts().max()) if len(s) else 0)
        extra[rules.MODE] = rules.mode_mask(
            _align(units_at_mode, rows, cols, grid, fill=0), config.safe_threshold)
    if name not in MAGNITUDE_AGGFUNCS:
        extra[rules.NK_RULE] = np.zeros(grid.count.shape, dtype=bool)
        extra[rules.P_RATIO] = np.zeros(grid.count.shape, dtype=bool)
    table = pd.DataFrame(
        _align(cell_values, rows, cols, grid, fill=np.nan),
        index=grid.row_index.copy(),
        columns=grid.col_index.copy(),
    )
    return table, extra


def _agg_callable(aggfunc: object) -> str | Callable:
    """pandas-acceptable aggregation (mode picks the smallest modal value, deterministically)."""
    if aggfunc in ("mode", "agg_mode"):
        return lambda s: s.mode().iloc[0] if len(s.dropna()) else np.nan
    return aggfunc  # type: ignore[return-value]


def _align(
    per_group: pd.Series, rows: list[pd.Series], cols: list[pd.Series], grid: Grid2D, fill: float
) -> np.ndarray:
    """Place a per-group series (indexed by row keys then column keys) on the grid's cells."""
    n_row = len(rows)
    out = np.full(grid.count.shape, fill, dtype=float)
    row_pos = {label: i for i, label in enumerate(grid.row_index)}
    col_pos = {label: j for j, label in enumerate(grid.col_index)}
    for key, value in per_group.items():
        key = key if isinstance(key, tuple) else (key,)
        row_label = key[0] if n_row == 1 else tuple(key[:n_row])
        col_key = key[n_row:]
        col_label = "" if not col_key else (col_key[0] if len(col_key) == 1 else tuple(col_key))
        if row_label in row_pos and col_label in col_pos:
            out[row_pos[row_label], col_pos[col_label]] = value
    return out
