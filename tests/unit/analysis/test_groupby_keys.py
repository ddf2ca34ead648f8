"""groupby_keys against pandas: the one-pass string-line path and the factorising path."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import lnds_spe.analysis.groupby as groupby_module
from lnds_spe.analysis import AnalysisInputError, groupby_keys
from lnds_spe.analysis._string_groups import (
    INLINE_BYTES,
    group_strings,
    line_tables,
    longest_string,
)
from lnds_spe.analysis._strings import hash_strings


def many_strings(n_rows: int, n_distinct: int, longest: int, seed: int) -> np.ndarray:
    """n_rows strings drawn from n_distinct of 0..longest UTF-8 bytes (some 2-byte chars)."""
    rng = np.random.default_rng(seed)
    pool = set()
    while len(pool) < n_distinct:
        text = "".join(rng.choice(list("abcdefgh0123é"), rng.integers(0, longest + 1)))
        while len(text.encode()) > longest:
            text = text[:-1]
        pool.add(text)
    pool = np.array(sorted(pool), dtype=object)
    return pool[rng.permutation(pool.size)[rng.integers(0, pool.size, n_rows)]]


def assert_matches_pandas(out, keys, values, ops):
    grouped = pd.Series(values).groupby(pd.Series(keys), sort=False)
    np.testing.assert_array_equal(out["keys"], np.asarray(grouped.size().index, dtype=object))
    np.testing.assert_array_equal(out["rows"], grouped.size().to_numpy())
    reference = {"sum": grouped.sum(), "mean": grouped.mean(), "count": grouped.count(),
                 "min": grouped.min(), "max": grouped.max()}
    for op in ops:
        np.testing.assert_allclose(out[op], reference[op].to_numpy(), rtol=1e-12, atol=1e-12,
                                   err_msg=op)


def refuse_factorising(monkeypatch):
    """Make the factorising path fail, so a test proves the one-pass path ran."""
    def factorize(*args, **kwargs):
        raise AssertionError("groupby_keys factorised keys the one-pass path should take")

    monkeypatch.setattr(groupby_module, "factorize", factorize)


@pytest.mark.parametrize("threads", [2, 3])
def test_string_lines_match_pandas_with_nans_and_every_length(threads, monkeypatch):
    keys = many_strings(120_000, 15_000, INLINE_BYTES, seed=threads)
    keys[-1] = "the last row: its bytes"  # read byte by byte at the buffer's end
    values = np.random.default_rng(1).normal(size=keys.size)
    values[::5] = np.nan
    values[np.flatnonzero(keys == keys[3])] = np.nan  # a key of NaN values only
    refuse_factorising(monkeypatch)
    ops = ("sum", "mean", "count")
    out = groupby_keys(pa.array(keys, pa.string()), values, ops=ops, threads=threads)
    assert np.isnan(out["mean"][list(out["keys"]).index(keys[3])])
    assert_matches_pandas(out, keys, values, ops)
    large = groupby_keys(pa.chunked_array([pa.array(keys[:7], pa.large_string()),
                                           pa.array(keys[7:], pa.large_string())]),
                         values, ops="mean", threads=threads)
    np.testing.assert_array_equal(large["mean"], out["mean"])
    backed = groupby_keys(pd.Series(keys, dtype="string[pyarrow]"), values, ops="count",
                          threads=threads)
    np.testing.assert_array_equal(backed["count"], out["count"])
    part = slice(20_001, 80_001)
    sliced = groupby_keys(pa.array(keys, pa.string()).slice(part.start, 60_000), values[part],
                          ops=ops, threads=threads)
    assert_matches_pandas(sliced, keys[part], values[part], ops)


def test_string_lines_tables_that_fill_up_double_and_keep_every_sum():
    keys = many_strings(60_000, 9_000, 30, seed=5)
    values = np.random.default_rng(2).normal(size=keys.size)
    arr = pa.array(keys, pa.string())
    offsets, words, data, _ = groupby_module._arrow_string_buffers(arr)
    hashes, _ = hash_strings(offsets, words, data, 2)
    roomy = group_strings(offsets, data, values, hashes, line_tables(20_000, 2))
    cramped = group_strings(offsets, data, values, hashes, line_tables(1, 2))  # doubles 3 times
    assert line_tables(1, 2).shape[1] < 8 * 9_000
    for name, a, b in zip(("first rows", "sums", "rows", "nans"), roomy, cramped, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    np.testing.assert_array_equal(keys[roomy[0]], pd.unique(keys))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_longest_string_is_found_in_any_row_of_any_chunk(threads):
    for where in (0, 3, 4, 9):  # the first row, either side of a chunk's end, the last row
        strings = ["y" * (7 if row == where else 3) for row in range(10)]
        for arr in (pa.array(strings, pa.string()), pa.array(strings, pa.large_string()),
                    pa.array(["z" * 12, *strings], pa.string()).slice(1)):
            offsets = groupby_module._arrow_string_buffers(arr)[0]
            assert longest_string(offsets, threads) == 7, (where, arr.type)
    assert longest_string(np.zeros(1, np.int32), threads) == 0


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", ["long strings", "min and max", "few distinct", "int keys",
                                  "named columns"])
def test_keys_the_string_lines_do_not_take_are_factorised_first(case, threads):
    keys = many_strings(30_000, 10_000, INLINE_BYTES, seed=7)
    ops = ("sum", "mean", "count")
    if case == "long strings":
        keys[100] = "x" * (INLINE_BYTES + 1)
    elif case == "min and max":
        ops = ("mean", "min", "max")
    elif case == "few distinct":
        keys = keys[np.arange(keys.size) % 50]
    values = np.random.default_rng(3).normal(size=keys.size)
    if case == "int keys":
        keys = np.random.default_rng(4).integers(0, 1000, keys.size)
        out = groupby_keys(keys, values, ops=ops, threads=threads)
    elif case == "named columns":
        out = groupby_keys(pa.array(keys), {"x": values}, ops=ops, threads=threads)
        out = {"keys": out["keys"], "rows": out["rows"],
               **{op: out[f"x.{op}"] for op in ops}}
    else:
        out = groupby_keys(pa.array(keys), values, ops=ops, threads=threads)
    assert_matches_pandas(out, keys, values, ops)


def test_groupby_keys_refuses_bad_input_by_name():
    keys = pa.array(many_strings(20_000, 10_000, 20, seed=8))
    with pytest.raises(AnalysisInputError, match="values"):
        groupby_keys(keys, np.ones(len(keys) - 1), threads=2)
    with pytest.raises(AnalysisInputError, match="ops"):
        groupby_keys(keys, np.ones(len(keys)), ops="median", threads=2)
    with pytest.raises(AnalysisInputError, match="null"):
        groupby_keys(pa.array(["a", None] * 10_000), np.ones(20_000), ops="mean", threads=2)
