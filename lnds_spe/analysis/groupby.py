"""Group-by reductions on int-coded keys and time buckets, and a fast string-key factoriser."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numba
import numpy as np

from lnds_spe.analysis._inputs import (
    AnalysisInputError,
    column,
    one_arrow_array,
    thread_count,
    to_numpy,
)
from lnds_spe.analysis._reduce import accumulator_copies, accumulator_size, fused_reduce, min_max, slot_layout
from lnds_spe.analysis._string_groups import INLINE_BYTES, group_strings, line_tables, longest_string
from lnds_spe.analysis._strings import (
    apply_remap,
    distinct_estimate,
    factorize_strings,
    first_seen_remap,
    hash_strings,
    many_distinct,
)

REDUCTIONS = ("sum", "mean", "min", "max", "count")
BUCKET_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
# Above this many accumulator slots (128 MiB a copy), threads split the groups rather than the
# rows, to keep memory to one copy. Below it, threads split the rows, each into its own copy,
# then merge: faster even where the copies spill the cache (measured on 2 threads, 1e8 rows:
# 1e6 random groups 1.18 s vs 1.41 s split, station × hour 345 ms vs 406 ms split).
_SPLIT_SLOTS = 1 << 24


def _check_ops(ops: tuple[str, ...] | list[str] | str) -> tuple[str, ...]:
    """The requested reductions, validated against REDUCTIONS."""
    ops = (ops,) if isinstance(ops, str) else tuple(ops)
    unknown = [op for op in ops if op not in REDUCTIONS]
    if unknown or not ops:
        raise AnalysisInputError(f"ops: unknown reduction(s) {unknown or ops}; "
                                 f"choose from {REDUCTIONS}")
    return ops


def _value_columns(values: Any, n_rows: int) -> dict[str, np.ndarray]:
    """Named, checked value columns: one unnamed column, or a mapping of names to columns."""
    named = dict(values) if isinstance(values, Mapping) else {"": values}
    if not named:
        raise AnalysisInputError("values: expected at least one value column")
    out = {}
    for name, col in named.items():
        arr = column(col, f"values[{name!r}]" if name else "values", "n", length=n_rows)
        if arr.dtype.kind in "iub" or arr.dtype.itemsize < 4:
            arr = arr.astype(np.float64)
        out[name] = arr
    if len({arr.dtype for arr in out.values()}) > 1:  # the kernel takes one dtype per call
        out = {name: arr.astype(np.float64, copy=False) for name, arr in out.items()}
    return out


def _column_ops(ops: Any, names: list[str]) -> dict[str, tuple[str, ...]]:
    """The validated reductions for each named column (one spec for all, or one per name)."""
    if isinstance(ops, Mapping):
        missing = [name for name in names if name not in ops]
        if missing or set(ops) - set(names):
            raise AnalysisInputError(f"ops: expected reductions for exactly the columns {names}, "
                                     f"got {sorted(ops)}")
        return {name: _check_ops(ops[name]) for name in names}
    checked = _check_ops(ops)
    return {name: checked for name in names}


def _finish(merged: np.ndarray, nans: np.ndarray, slots: tuple[int, ...],
            ops: tuple[str, ...]) -> dict:
    """The requested reductions of one column from its slots and NaN counts (NaN if empty)."""
    s_sum, s_min, s_max = slots
    out: dict[str, np.ndarray] = {}
    count = merged[:, 0].astype(np.int64) - nans
    for op in ops:
        if op == "sum":
            out["sum"] = np.ascontiguousarray(merged[:, s_sum])
        elif op == "count":
            out["count"] = count
        elif op == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                out["mean"] = merged[:, s_sum] / count
        else:
            out[op] = np.where(count == 0, np.nan, merged[:, s_min if op == "min" else s_max])
    return out


def _int_keys(keys: Any) -> tuple[np.ndarray, int | None]:
    """Integer codes as a numpy view, and the code count when the keys carry a dictionary.

    Arrow dictionary-encoded keys (e.g. strings) are grouped by their indices directly.
    """
    if type(keys).__module__.startswith("pyarrow"):
        import pyarrow as pa

        keys = one_arrow_array(keys)
        if isinstance(keys, pa.DictionaryArray):
            if keys.null_count:
                raise AnalysisInputError(f"keys: {keys.null_count} null(s); fill them first")
            return column(keys.indices, "keys", "i"), len(keys.dictionary)
    return column(keys, "keys", "i"), None


def _reduce(keys_arr: np.ndarray, values: Any, n_groups: int, ops: Any, threads: int | None,
            times: np.ndarray | None = None, origin: int = 0, width: int = 0,
            n_buckets: int = 1) -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]]]:
    """Rows per group and each column's requested reductions, from one fused kernel call."""
    cols = _value_columns(values, keys_arr.shape[0])
    col_ops = _column_ops(ops, list(cols))
    n_slots, plan, layout = slot_layout([("min" in spec, "max" in spec)
                                         for spec in col_ops.values()])
    threads = thread_count(threads)
    numba.set_num_threads(threads)
    nans = np.zeros((threads, len(cols), n_groups), dtype=np.int64)  # pages stay untouched
    split = threads > 1 and n_groups * n_slots > _SPLIT_SLOTS
    copies = accumulator_copies(n_groups, n_slots, split)
    acc = np.empty(accumulator_size(n_groups, n_slots, threads, split, copies))
    merged, bad = fused_reduce(keys_arr, keys_arr if times is None else times, origin, width,
                               n_buckets, tuple(cols.values()), layout, nans, n_groups,
                               threads, split, copies, acc)
    if bad:
        limit = n_groups // n_buckets
        raise AnalysisInputError(f"keys: {bad} key(s) outside [0, {limit}); "
                                 "factorise the keys or pass a larger "
                                 + ("n_keys" if times is not None else "n_groups"))
    rows = merged[:, 0].astype(np.int64)
    nan_counts = nans.sum(axis=0) if threads > 1 else nans[0]
    return rows, {name: _finish(merged, nan_counts[c], plan[3 * c:3 * c + 3], col_ops[name])
                  for c, name in enumerate(cols)}


def groupby_reduce(keys: Any, values: Any, n_groups: int | None = None,
                   ops: Any = REDUCTIONS, threads: int | None = None) -> dict[str, np.ndarray]:
    """Reduce values by integer-coded keys in one pass; NaN values are skipped.

    Parameters
    ----------
    keys : array-like of int
        The group of each row, a code in [0, n_groups): a numpy, pandas or Arrow integer
        column, or an Arrow dictionary array (its indices are the codes). Use `factorize` for
        other keys.
    values : array-like or mapping of str to array-like
        One numeric column to reduce, or several by name, reduced together in the same pass.
    n_groups : int, optional
        The number of groups; defaults to the dictionary's size for Arrow dictionary keys,
        else to the largest key plus one. A key outside [0, n_groups) raises
        AnalysisInputError.
    ops : str, sequence of str, or mapping, default all of REDUCTIONS
        The reductions: 'sum', 'mean', 'min', 'max', 'count' (non-NaN values). With a mapping
        of `values`, either one spec for every column or a mapping of column name to spec.
    threads : int, optional
        How many threads the kernel uses; defaults to numba's configured maximum, and is
        capped by it.

    Returns
    -------
    dict of str to ndarray
        One dense array per group: "rows" (rows per group, NaN values included) and one array
        per requested op; with a mapping of `values` the op arrays are named "<name>.<op>".
        An empty group has sum 0, count 0 and NaN mean, min and max.
    """
    keys_arr, dict_size = _int_keys(keys)
    if n_groups is None:
        n_groups = dict_size if dict_size is not None else (
            int(keys_arr.max()) + 1 if keys_arr.size else 0)
    if isinstance(n_groups, bool) or not isinstance(n_groups, int | np.integer) or n_groups < 0:
        raise AnalysisInputError(f"n_groups: expected a non-negative integer, got {n_groups!r}")
    rows, per_column = _reduce(keys_arr, values, int(n_groups), ops, threads)
    if not isinstance(values, Mapping):
        return {"rows": rows, **per_column[""]}
    out: dict[str, np.ndarray] = {"rows": rows}
    for name, stats in per_column.items():
        out.update({f"{name}.{op}": arr for op, arr in stats.items()})
    return out


def time_bucket(times: Any, values: Any, bucket: str | int = "hour", keys: Any = None,
                n_keys: int | None = None, ops: Any = REDUCTIONS,
                threads: int | None = None) -> dict[str, np.ndarray]:
    """Reduce values by (key, time bucket), buckets aligned to the epoch as date_trunc in UTC.

    Parameters
    ----------
    times : array-like
        The time of each row: int64 epoch seconds or datetime64 values.
    values : array-like or mapping of str to array-like
        One numeric column to reduce, or several by name, as in `groupby_reduce`.
    bucket : {'minute', 'hour', 'day'} or int, default 'hour'
        The bucket width: a name or a positive number of seconds.
    keys : array-like of int, optional
        An integer code per row (e.g. a station) to group by as well; none puts every row
        under key 0.
    n_keys : int, optional
        The number of key codes; defaults to the largest key plus one.
    ops : str, sequence of str, or mapping, default all of REDUCTIONS
        The reductions, as in `groupby_reduce`.
    threads : int, optional
        How many threads the kernel uses; defaults to numba's configured maximum, and is
        capped by it.

    Returns
    -------
    dict of str to ndarray
        "key" and "bucket_start" (epoch seconds) of each (key, bucket) pair holding at least
        one row, ordered by key then bucket start, and one array per op (named
        "<name>.<op>" with a mapping of `values`).
    """
    raw = to_numpy(times, "times")
    if raw.dtype.kind == "M":
        raw = raw.astype("datetime64[s]", copy=False).view(np.int64)
    t = column(raw, "times", "i")
    width = BUCKET_SECONDS.get(bucket) if isinstance(bucket, str) else bucket
    if width is None or isinstance(width, bool) or int(width) < 1:
        raise AnalysisInputError(f"bucket: expected one of {tuple(BUCKET_SECONDS)} or a positive "
                                 f"number of seconds, got {bucket!r}")
    width = int(width)
    threads = thread_count(threads)
    numba.set_num_threads(threads)
    if keys is None:
        k = np.zeros(t.shape[0], dtype=np.int8)
        n_keys = 1
    else:
        k = column(keys, "keys", "i", length=t.shape[0])
        if n_keys is None:
            n_keys = int(min_max(k, threads)[1]) + 1 if k.size else 0
    if t.size == 0:
        names = list(values) if isinstance(values, Mapping) else [""]
        empty = {f"{name}.{op}" if name else op: np.empty(0)
                 for name, col_ops in _column_ops(ops, names).items() for op in col_ops}
        return {"key": np.empty(0, np.int64), "bucket_start": np.empty(0, np.int64), **empty}
    t_min, t_max = (int(x) for x in min_max(t, threads))
    origin = (t_min // width) * width
    n_buckets = (t_max - origin) // width + 1
    rows, per_column = _reduce(k, values, int(n_keys) * n_buckets, ops, threads, times=t,
                               origin=origin, width=width, n_buckets=n_buckets)
    present = np.flatnonzero(rows)
    out = {"key": present // n_buckets, "bucket_start": origin + (present % n_buckets) * width}
    for name, stats in per_column.items():
        out.update({f"{name}.{op}" if name else op: arr[present] for op, arr in stats.items()})
    return out


def _arrow_string_buffers(arr: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any] | None:
    """Offsets, aligned 8-byte words and bytes of an Arrow (large_)string Array, else None.

    Nothing is copied unless the array is a string view.
    """
    import pyarrow as pa

    if pa.types.is_string_view(arr.type):
        arr = arr.cast(pa.large_string())
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return None
    if arr.null_count:
        raise AnalysisInputError(f"keys: {arr.null_count} null string(s); fill them first")
    _, off_buf, data_buf = arr.buffers()
    off_type = np.int32 if pa.types.is_string(arr.type) else np.int64
    offsets = np.frombuffer(off_buf, dtype=off_type)[arr.offset:arr.offset + len(arr) + 1]
    if data_buf is None or data_buf.size == 0:
        data = np.zeros(8, np.uint8)
    else:
        data = np.frombuffer(data_buf, dtype=np.uint8)
    whole = data.size // 8 * 8
    words = data[:whole].view(np.uint64) if data.ctypes.data % 8 == 0 else np.empty(0, np.uint64)
    return offsets, words, data, arr


def _arrow_source(keys: Any) -> Any:
    """Keys as one Arrow Array where they are Arrow (or pandas backed by Arrow), else None."""
    if type(keys).__module__.startswith("pandas") and hasattr(keys, "array"):
        try:
            import pyarrow as pa

            keys = pa.array(keys.array)
        except (ImportError, TypeError, ValueError, AttributeError):
            return None
    return one_arrow_array(keys) if type(keys).__module__.startswith("pyarrow") else None


def _factorize_dictionary(arr: Any, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes in first-seen order from an Arrow dictionary array's indices, without hashing rows.

    Duplicate and unused dictionary entries are merged or dropped, as pandas.factorize would.
    """
    if arr.null_count:
        raise AnalysisInputError(f"keys: {arr.null_count} null(s); fill them first")
    indices = column(arr.indices, "keys", "i")
    entry_codes, entry_uniques = factorize(arr.dictionary, threads=threads)
    n_rows = indices.shape[0]
    entry_first = first_seen_remap(indices, len(arr.dictionary), threads)
    unique_first = np.full(len(entry_uniques), n_rows, dtype=np.int64)
    np.minimum.at(unique_first, entry_codes, entry_first)
    used = np.flatnonzero(unique_first < n_rows)
    order = used[np.argsort(unique_first[used], kind="stable")]
    rank = np.full(len(entry_uniques), -1, dtype=np.int32)
    rank[order] = np.arange(order.size, dtype=np.int32)
    remap = rank[entry_codes]
    if indices.dtype == np.int32 and np.array_equal(remap, np.arange(remap.size)):
        return indices, entry_uniques[order]
    return (apply_remap(indices, remap, threads, np.empty(n_rows, dtype=np.int32)),
            entry_uniques[order])


def factorize(keys: Any, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Encode keys as int32 codes in first-seen order, with the unique values.

    Arrow string arrays (and pandas Series backed by Arrow) are hashed in parallel straight
    from their buffers; Arrow dictionary arrays reuse their indices; other inputs go through
    pandas.factorize. The codes match pandas.factorize's.

    Parameters
    ----------
    keys : array-like
        The keys: strings or any other values pandas can factorise, 1-D. Nulls in Arrow
        string or dictionary arrays raise AnalysisInputError.
    threads : int, optional
        How many threads the kernel uses; defaults to numba's configured maximum, and is
        capped by it.

    Returns
    -------
    codes : ndarray of int32
        The code of each row.
    uniques : ndarray
        The distinct keys, in the order of their first row (``uniques[codes]`` gives the keys).
    """
    threads = thread_count(threads)
    numba.set_num_threads(threads)
    source = _arrow_source(keys)
    buffers = None
    if source is not None:
        import pyarrow as pa

        if isinstance(source, pa.DictionaryArray):
            return _factorize_dictionary(source, threads)
        buffers = _arrow_string_buffers(source)
    if buffers is None:
        import pandas as pd

        arr = to_numpy(keys, "keys")
        if arr.ndim != 1:
            raise AnalysisInputError(f"keys: expected a 1-D array, got shape {arr.shape}")
        codes, uniques = pd.factorize(arr, use_na_sentinel=False)
        return codes.astype(np.int32), np.asarray(uniques)
    offsets, words, data, arrow_arr = buffers
    if offsets.shape[0] <= 1:
        return np.empty(0, np.int32), np.empty(0, dtype=object)
    codes, first_rows = factorize_strings(offsets, words, data, threads)
    uniques = arrow_arr.take(first_rows).to_numpy(zero_copy_only=False)
    return codes, uniques


_LINE_OPS = ("sum", "mean", "count")  # the reductions a string's line keeps


def _groups_by_string_lines(keys: Any, values: Any, ops: Any, threads: int) -> dict | None:
    """groupby_keys in one pass over Arrow string keys (see _string_groups), or None where
    it does not apply: other keys or values, min or max, strings past 40 bytes, few distinct
    strings (factorising codes them per row chunk, in cache), or 2**32 rows or more."""
    source = _arrow_source(keys)
    if (source is None or isinstance(values, Mapping) or isinstance(ops, Mapping)
            or not set(_check_ops(ops)) <= set(_LINE_OPS)):
        return None
    buffers = _arrow_string_buffers(source)
    if buffers is None:
        return None
    offsets, words, data, arrow_arr = buffers
    n = offsets.shape[0] - 1
    value_col = _value_columns(values, n)[""]
    if value_col.dtype != np.float64 or n >= 1 << 32 or not many_distinct(offsets, words, data, threads):
        return None
    if longest_string(offsets, threads) > INLINE_BYTES:
        return None
    hashes, sketch = hash_strings(offsets, words, data, threads)
    tables = line_tables(distinct_estimate(sketch), threads)
    first_rows, sums, rows, nans = group_strings(offsets, data, value_col, hashes, tables)
    count = rows - nans
    out = {"keys": arrow_arr.take(first_rows).to_numpy(zero_copy_only=False), "rows": rows}
    for op in _check_ops(ops):
        if op == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                out["mean"] = sums / count
        else:
            out[op] = sums if op == "sum" else count
    return out


def groupby_keys(keys: Any, values: Any, ops: Any = REDUCTIONS,
                 threads: int | None = None) -> dict[str, np.ndarray]:
    """Reduce values by keys of any kind (strings included); NaN values are skipped.

    What `factorize` then `groupby_reduce` give, with the keys. Arrow string keys (or pandas
    backed by Arrow) with many distinct strings of at most 40 bytes, one float64 column and
    only 'sum', 'mean' and 'count' are reduced in one pass, never coding the rows.

    Parameters
    ----------
    keys : array-like
        The key of each row: strings or any other values `factorize` takes.
    values : array-like or mapping of str to array-like
        One numeric column to reduce, or several by name, as in `groupby_reduce`.
    ops : str, sequence of str, or mapping, default all of REDUCTIONS
        The reductions, as in `groupby_reduce`.
    threads : int, optional
        How many threads the kernels use; defaults to numba's configured maximum, and is
        capped by it.

    Returns
    -------
    dict of str to ndarray
        "keys" (the distinct keys in the order of their first row, as `factorize` gives
        them), "rows" (rows per key, NaN values included) and one array per op, named as
        `groupby_reduce` names them.
    """
    threads = thread_count(threads)
    numba.set_num_threads(threads)
    fused = _groups_by_string_lines(keys, values, ops, threads)
    if fused is not None:
        return fused
    codes, uniques = factorize(keys, threads=threads)
    return {"keys": uniques, **groupby_reduce(codes, values, len(uniques), ops=ops,
                                              threads=threads)}
