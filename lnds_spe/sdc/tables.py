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


class MaskMismatchError(SPEError, ValueError):
    """A mask or value grid does not line up with the table it should be applied to."""


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
    how: str = "suppressed"  # how hidden cells were hidden: suppressed or redacted


def aggfunc_name(aggfunc: object) -> str | None:
    """Canonical name of an aggregation function given as a string or numpy/pandas callable."""
    if aggfunc is None or isinstance(aggfunc, str):
        return aggfunc
    known = {np.sum: "sum", np.mean: "mean", np.median: "median", np.std: "std", np.max: "max",
             np.min: "min", np.var: "var", len: "count"}
    name = known.get(aggfunc)  # type: ignore[call-overload]
    return name if name is not None else getattr(aggfunc, "__name__", "custom")


def aggfunc_label(aggfunc: object) -> str:
    """The column label pandas gives an aggregation in a list of aggfuncs."""
    func = agg_callable(aggfunc)
    return func if isinstance(func, str) else getattr(func, "__name__", str(func))


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
    """Verdict and a summary in ACRO's words ('MinimumThresholdCheck: fail - 3 cells may need
    suppressing'); failing cells that are hidden no longer fail."""
    parts = []
    effective: dict[str, np.ndarray] = {}
    for name, mask in flags.items():
        count = int(np.count_nonzero(mask))
        if not count:
            continue
        open_mask = mask & ~hidden if name in rules.FAILING_RULES else mask
        effective[name] = open_mask
        check = rules.acro_check_name(name)
        if name in rules.REVIEW_RULES:
            parts.append(f"{check}: review - {count} cells with {name} values to review")
        else:
            done = f" ({how})" if not open_mask.any() else ""
            parts.append(f"{check}: fail - {count} cells may need suppressing{done}")
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
        extra = _extra_flags(rows, cols, value_series, name, grid, config)
        flags.update({k: np.pad(v, ((0, 1), (0, 1))) if margins else v for k, v in extra.items()})
    if value_series is None or (name == "mean" and value_series.dtype == np.float64):
        table = _frame(_fused_values(grid_m, name, value_series is not None), grid_m)
    else:  # pandas' own table, so values and dtypes are exactly what pandas gives
        table = _pandas_table(rows, cols, value_series, aggfunc, margins, margins_name, dropna,
                              grid_m)
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
            # Totals are recomputed from the shown cells only, so no hidden cell is
            # recoverable as a total minus the visible cells.
            keep = ~hidden[:-1, :-1]
            regrid = grid.with_margins(margins_name, keep=keep)
            margin_fails = _failing(grid_flags(regrid, config, magnitude))
            hidden[-1, :] |= margin_fails[-1, :]
            hidden[:, -1] |= margin_fails[:, -1]
            if value_series is None or name in FUSED_AGGFUNCS:
                table = _frame(_fused_values(regrid, name, value_series is not None), regrid)
            else:
                table = _with_pandas_margins(table.iloc[:-1, :-1], rows, cols, value_series,
                                             aggfunc, grid, keep, margins_name)
        table = table.astype(float).mask(hidden)
    if normalize is not False:
        table = _normalise(table, normalize, margins)
        notes.append("normalised: checks ran on the underlying counts")
    verdict, summary = summarise(flags, hidden, how)
    return CheckedTable(table, flags, verdict, summary, counts, hidden, notes, how)


def as_list(spec: object) -> list:
    """A spec of names (None, one name, or a list or tuple of them) as a list."""
    return [] if spec is None else (list(spec) if isinstance(spec, list | tuple) else [spec])


def _rename(series: list[pd.Series], names: object) -> list[pd.Series]:
    """Apply rownames/colnames as pandas.crosstab does."""
    if names is None:
        return series
    return [s.rename(n) for s, n in zip(series, as_list(names), strict=False)]


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


def _extra_flags(
    rows: list[pd.Series], cols: list[pd.Series], values: pd.Series, name: str | None,
    grid: Grid2D, config: SDCConfig,
) -> dict[str, np.ndarray]:
    """Rules for aggregations the kernel does not fuse (extreme values, mode), from groupby."""
    frame = pd.concat(rows + cols + [values], axis=1)
    keys = [s.name for s in rows + cols]
    grouped = frame.groupby(keys, observed=True, dropna=True)[values.name]
    extra: dict[str, np.ndarray] = {}
    if name in ("max", "min"):
        target = grouped.transform(name)
        at_extreme = (frame[values.name] == target).groupby(
            [frame[k] for k in keys], observed=True).sum()
        extra[rules.EXTREME_VALUE] = rules.extreme_value_mask(
            grid.n_values, _align(at_extreme, rows, cols, grid, fill=0), config.safe_threshold)
    if name in ("mode", "agg_mode"):
        units_at_mode = grouped.agg(lambda s: int(s.value_counts().max()) if len(s) else 0)
        extra[rules.MODE] = rules.mode_mask(
            _align(units_at_mode, rows, cols, grid, fill=0), config.safe_threshold)
    if name not in MAGNITUDE_AGGFUNCS:
        extra[rules.NK_RULE] = np.zeros(grid.count.shape, dtype=bool)
        extra[rules.P_RATIO] = np.zeros(grid.count.shape, dtype=bool)
    return extra


def _pandas_table(
    rows: list[pd.Series], cols: list[pd.Series], values: pd.Series, aggfunc: object,
    margins: bool, margins_name: str, dropna: bool, grid: Grid2D,
) -> pd.DataFrame:
    """pandas.crosstab's table, its rows and columns put in the grid's order by label."""
    columns = cols or [pd.Series("", index=values.index)]
    table = pd.crosstab(rows, columns, values=values, aggfunc=agg_callable(aggfunc),
                        margins=margins, margins_name=margins_name, dropna=dropna)
    if not cols:
        table.columns = grid.col_index[: table.shape[1]]
    shape = _frame(np.zeros(grid.count.shape), grid)
    row_pos, col_pos = _indexers(shape, table)
    if len(set(col_pos)) != table.shape[1]:
        raise MaskMismatchError(
            f"pandas' table has columns {list(table.columns)}, the checked grid "
            f"{list(grid.col_index)}; report this as a bug.")
    return table.iloc[row_pos, col_pos]


def agg_mode(series: pd.Series) -> float:
    """Smallest modal value of a group (deterministic), NaN for a group without values."""
    return series.mode().iloc[0] if len(series.dropna()) else np.nan


def agg_callable(aggfunc: object) -> str | Callable:
    """pandas-acceptable aggregation: 'mode' becomes agg_mode, as in ACRO."""
    if aggfunc in ("mode", "agg_mode"):
        return agg_mode
    return aggfunc  # type: ignore[return-value]


def _unit_cells(rows: list[pd.Series], cols: list[pd.Series], grid: Grid2D
                ) -> tuple[np.ndarray, np.ndarray]:
    """Row and column position on the grid of every unit (-1 when its cell is not shown)."""
    def positions(series: list[pd.Series], index: pd.Index) -> np.ndarray:
        if not series:
            return np.zeros(len(rows[0]), dtype=np.int64)
        keys = series[0] if len(series) == 1 else pd.MultiIndex.from_arrays(series)
        return index.get_indexer(keys)
    return positions(rows, grid.row_index), positions(cols, grid.col_index)


def _with_pandas_margins(
    table: pd.DataFrame, rows: list[pd.Series], cols: list[pd.Series], values: pd.Series,
    aggfunc: object, grid: Grid2D, keep: np.ndarray, margins_name: str,
) -> pd.DataFrame:
    """Add totals aggregated over the units of the kept cells only (aggregations not fused)."""
    row_pos, col_pos = _unit_cells(rows, cols, grid)
    placed = (row_pos >= 0) & (col_pos >= 0)
    kept = placed.copy()
    kept[placed] = keep[row_pos[placed], col_pos[placed]]
    subset = pd.Series(values.to_numpy()[kept])
    func = agg_callable(aggfunc)
    n_rows, n_cols = grid.count.shape
    row_margin = subset.groupby(row_pos[kept]).agg(func).reindex(range(n_rows)).to_numpy()
    col_margin = subset.groupby(col_pos[kept]).agg(func).reindex(range(n_cols)).to_numpy()
    grand = subset.agg(func) if len(subset) else np.nan
    values_2d = np.block([[table.to_numpy(dtype=float), row_margin[:, None]],
                          [col_margin[None, :], np.array([[grand]], dtype=float)]])
    return _frame(values_2d, grid.with_margins(margins_name))


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


def label_block(checked: pd.DataFrame, prefix: tuple, one_way: bool) -> pd.DataFrame:
    """A checked table relabelled as its block of a pandas result: column labels get `prefix`
    (aggfunc and/or values name, as pandas adds them); a one-way table keeps one column."""
    if one_way:
        checked = checked.iloc[:, :1]
        keys = [prefix]
    else:
        keys = [prefix + (c if isinstance(c, tuple) else (c,)) for c in checked.columns]
    if all(len(k) == 1 for k in keys):
        columns = pd.Index([k[0] for k in keys])
    else:
        columns = pd.MultiIndex.from_tuples(keys)
    return pd.DataFrame(checked.to_numpy(), index=checked.index, columns=columns)


def _indexers(checked: pd.DataFrame, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Positions in `table` of `checked`'s rows and columns, matched by label."""
    rows = table.index.get_indexer(checked.index)
    cols = table.columns.get_indexer(checked.columns)
    if (rows < 0).any() or (cols < 0).any() or len(set(rows)) != table.shape[0]:
        missing_rows = list(checked.index[rows < 0])[:5]
        missing_cols = list(checked.columns[cols < 0])[:5]
        raise MaskMismatchError(
            f"The disclosure mask ({checked.shape[0]} x {checked.shape[1]}) does not fit the "
            f"table ({table.shape[0]} x {table.shape[1]}): unmatched rows {missing_rows}, "
            f"columns {missing_cols}. The output was not recorded; report this as a bug.")
    return rows, cols


def place_mask(mask: np.ndarray, checked: pd.DataFrame, table: pd.DataFrame) -> np.ndarray:
    """A mask over `checked`'s cells laid onto the same-labelled cells of `table`."""
    if mask.shape != checked.shape:
        raise MaskMismatchError(
            f"The disclosure mask ({mask.shape[0]} x {mask.shape[1]}) does not fit the checked "
            f"table ({checked.shape[0]} x {checked.shape[1]}); report this as a bug.")
    rows, cols = _indexers(checked, table)
    placed = np.zeros(table.shape, dtype=bool)
    placed[np.ix_(rows, cols)] = mask
    return placed


def place_values(checked: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """`table` with the cells `checked` labels replaced by checked's values (floats)."""
    rows, cols = _indexers(checked, table)
    values = table.to_numpy(dtype=float, na_value=np.nan).copy()
    values[np.ix_(rows, cols)] = checked.to_numpy(dtype=float, na_value=np.nan)
    return pd.DataFrame(values, index=table.index, columns=table.columns)


def combine_blocks(table: pd.DataFrame, blocks: list[CheckedTable],
                   labelled: list[pd.DataFrame]) -> CheckedTable:
    """One checked table from per-aggfunc blocks laid by label onto pandas' result `table`.

    Hidden cells and recomputed totals replace pandas' values; with nothing hidden the result
    is pandas' own table. A one-way block keeps its first column (see label_block).
    """
    flags: dict[str, np.ndarray] = {}
    hidden = np.zeros(table.shape, dtype=bool)
    shown = table
    for block, frame in zip(blocks, labelled, strict=True):
        width = frame.shape[1]
        for name, mask in block.flags.items():
            placed = place_mask(mask[:, :width], frame, table)
            flags[name] = flags[name] | placed if name in flags else placed
        hidden |= place_mask(block.hidden[:, :width], frame, table)
        if block.hidden.any():
            shown = place_values(frame, shown)
    if hidden.any() and blocks[0].how == "redacted":
        shown = shown.astype(object).mask(hidden, rules.REDACTED)
    verdict, summary = summarise(flags, hidden, blocks[0].how)
    notes = [note for block in blocks for note in block.notes]
    return CheckedTable(shown, flags, verdict, summary, blocks[0].counts, hidden,
                        list(dict.fromkeys(notes)), blocks[0].how)


def rounded_table(table: pd.DataFrame, base: int, margins: bool, additive: bool
                  ) -> pd.DataFrame:
    """Cells rounded to the nearest multiple of base; totals of counts and sums are re-added
    from the rounded cells, so they agree with what is shown."""
    values = rules.round_to_base(table.to_numpy(dtype=float, na_value=np.nan), base)
    if margins and additive:
        if values.shape[1] == 1:
            values[-1, 0] = np.nansum(values[:-1, 0])
        else:
            inner = values[:-1, :-1]
            values[:-1, -1] = np.nansum(inner, axis=1)
            values[-1, :-1] = np.nansum(inner, axis=0)
            values[-1, -1] = np.nansum(inner)
    return pd.DataFrame(values, index=table.index, columns=table.columns)
