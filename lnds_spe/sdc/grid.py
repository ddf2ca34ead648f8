"""From pandas keys to the kernel's dense grid and back to a labelled 2-D table with margins."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lnds_spe.errors import SPEError
from lnds_spe.sdc.kernel import CellStats, cell_stats

_MAX_DENSE_RANGE = 1_000_000


@dataclass(frozen=True)
class Key:
    """One grouping variable as integer codes on a dense range of labels."""

    name: str
    codes: np.ndarray
    offset: int
    labels: pd.Index
    keep_unobserved: bool


def as_series_list(axis: object, prefix: str) -> list[pd.Series]:
    """Row/column specification (Series, list of Series, DataFrame, array) as named Series."""
    if axis is None:
        return []
    if isinstance(axis, pd.DataFrame):
        items = [axis[c] for c in axis.columns]
    elif isinstance(axis, list | tuple) and axis and np.ndim(axis[0]) == 0:
        items = [pd.Series(list(axis))]  # a list of labels is one variable, as in pandas
    elif isinstance(axis, list | tuple):
        items = [item if isinstance(item, pd.Series) else pd.Series(item) for item in axis]
    elif isinstance(axis, pd.Series):
        items = [axis]
    else:
        items = [pd.Series(np.asarray(axis))]
    named = []
    for position, series in enumerate(items):
        name = series.name if series.name is not None else f"{prefix}_{position}"
        named.append(series.rename(name))
    return named


def make_key(series: pd.Series, dropna: bool) -> Key:
    """Codes for one variable: integers by offset, categoricals by code, others factorised."""
    name = str(series.name)
    if len(series) == 0:
        raise SPEError(f"Variable {name!r} is empty: a table needs at least one row.")
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        codes = np.asarray(series.cat.codes)
        return Key(name, codes, 0, pd.Index(dtype.categories, name=name), not dropna)
    values = series.to_numpy()
    if values.dtype.kind in "iub":
        low, high = int(values.min()), int(values.max())
        if high - low < _MAX_DENSE_RANGE:
            labels = np.arange(low, high + 1).astype(values.dtype)
            return Key(name, values, low, pd.Index(labels, name=name), False)
    codes, uniques = pd.factorize(series, sort=True)
    return Key(name, codes, 0, pd.Index(uniques, name=name), False)


def as_float_array(series: pd.Series) -> np.ndarray:
    """Values as float64 with NaN for missing; numeric numpy columns are not copied or parsed."""
    if isinstance(series.dtype, np.dtype) and series.dtype.kind in "fiub":
        return series.to_numpy(dtype=np.float64, copy=False)
    return pd.to_numeric(series, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)


@dataclass(frozen=True)
class Grid2D:
    """Per-cell statistics laid out as rows x columns (row/column keys flattened)."""

    row_index: pd.Index
    col_index: pd.Index
    count: np.ndarray
    weighted_count: np.ndarray
    n_values: np.ndarray
    total: np.ndarray
    abs_total: np.ndarray
    top: np.ndarray  # (rows, cols, k)
    negatives: np.ndarray
    missing: np.ndarray

    def take(self, rows: np.ndarray, cols: np.ndarray) -> Grid2D:
        """Sub-grid of the chosen rows and columns."""
        pick = np.ix_(rows, cols)
        return Grid2D(
            self.row_index[rows],
            self.col_index[cols],
            self.count[pick],
            self.weighted_count[pick],
            self.n_values[pick],
            self.total[pick],
            self.abs_total[pick],
            self.top[pick],
            self.negatives[pick],
            self.missing[pick],
        )

    def mean(self) -> np.ndarray:
        """Mean of contributing values per cell."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n_values > 0, self.total / self.n_values, np.nan)

    def with_margins(self, name: str, keep: np.ndarray | None = None) -> Grid2D:
        """Add a margin row and column (over `keep` cells only, if given) named `name`."""
        keep = np.ones(self.count.shape, dtype=bool) if keep is None else keep

        def extend(array: np.ndarray) -> np.ndarray:
            kept = np.where(keep, array, 0)
            row_margin = kept.sum(axis=1, keepdims=True)
            col_margin = kept.sum(axis=0, keepdims=True)
            grand = kept.sum(keepdims=True)
            return np.block([[array, row_margin], [col_margin, grand]])

        k = self.top.shape[2]
        kept_top = np.where(keep[:, :, None], self.top, 0.0)
        rows, cols = kept_top.shape[:2]
        row_top = _largest(kept_top.reshape(rows, 1, cols * k), k)
        col_top = _largest(kept_top.transpose(1, 0, 2).reshape(1, cols, rows * k), k)
        grand_top = _largest(kept_top.reshape(1, 1, rows * cols * k), k)
        top = np.concatenate(
            [np.concatenate([self.top, row_top], axis=1), np.concatenate([col_top, grand_top], 1)],
            axis=0,
        )
        return Grid2D(
            _append_label(self.row_index, name),
            _append_label(self.col_index, name),
            extend(self.count),
            extend(self.weighted_count),
            extend(self.n_values),
            extend(self.total),
            extend(self.abs_total),
            top,
            extend(self.negatives),
            extend(self.missing),
        )


def _largest(array: np.ndarray, k: int) -> np.ndarray:
    """The k largest values along the last axis, descending."""
    if array.shape[-1] < k:
        pad = np.zeros(array.shape[:-1] + (k - array.shape[-1],))
        array = np.concatenate([array, pad], axis=-1)
    return -np.sort(-array, axis=-1)[..., :k]


def _append_label(index: pd.Index, name: str) -> pd.Index:
    """Index with one more entry `name` (a tuple padded with '' for MultiIndex)."""
    if isinstance(index, pd.MultiIndex):
        extra = (name,) + ("",) * (index.nlevels - 1)
        return index.append(pd.MultiIndex.from_tuples([extra], names=index.names))
    return pd.Index(list(index) + [name], name=index.name)


def _product_index(keys: list[Key]) -> pd.Index:
    """Labels of the flattened grid axis made of these keys."""
    if not keys:
        return pd.Index([""])
    if len(keys) == 1:
        return keys[0].labels
    return pd.MultiIndex.from_product([k.labels for k in keys], names=[k.name for k in keys])


def build_grid(
    row_series: list[pd.Series],
    col_series: list[pd.Series],
    values: pd.Series | None,
    weights: pd.Series | None,
    dropna: bool,
    top_k: int,
    threads: int | None = None,
) -> Grid2D:
    """Run the fused kernel over the keys and keep the observed rows and columns."""
    all_series = row_series + col_series
    n_rows = len(all_series[0])
    for series in all_series[1:] + [s for s in (values, weights) if s is not None]:
        if len(series) != n_rows:
            raise SPEError(
                f"Variable {series.name!r} has {len(series)} rows, expected {n_rows}: "
                "pass variables from the same data frame."
            )
    keys = [make_key(s, dropna) for s in all_series]
    value_array = None if values is None else as_float_array(values)
    weight_array = None if weights is None else weights.to_numpy(dtype=np.float64)
    stats: CellStats = cell_stats(
        [k.codes for k in keys],
        [k.offset for k in keys],
        [len(k.labels) for k in keys],
        value_array,
        weight_array,
        top_k=top_k,
        threads=threads,
    )
    n_row_keys = len(row_series)
    rows = int(np.prod([len(k.labels) for k in keys[:n_row_keys]], dtype=np.int64))
    cols = int(np.prod([len(k.labels) for k in keys[n_row_keys:]], dtype=np.int64))
    k = stats.top.shape[-1]
    grid = Grid2D(
        _product_index(keys[:n_row_keys]),
        _product_index(keys[n_row_keys:]),
        stats.count.reshape(rows, cols),
        stats.weighted_count.reshape(rows, cols),
        stats.n_values.reshape(rows, cols),
        stats.total.reshape(rows, cols),
        stats.abs_total.reshape(rows, cols),
        stats.top.reshape(rows, cols, k),
        stats.negatives.reshape(rows, cols),
        stats.missing.reshape(rows, cols),
    )
    keep_rows = grid.count.sum(axis=1) > 0
    keep_cols = grid.count.sum(axis=0) > 0
    if any(key.keep_unobserved for key in keys[:n_row_keys]):
        keep_rows[:] = True
    if any(key.keep_unobserved for key in keys[n_row_keys:]):
        keep_cols[:] = True
    return grid.take(np.flatnonzero(keep_rows), np.flatnonzero(keep_cols))
