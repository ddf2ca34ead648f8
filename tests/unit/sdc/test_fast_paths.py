"""The crosstab fast paths (kernel records, keys, value conversion, outcome text) against pandas."""

import numpy as np
import pandas as pd
import pytest

from lnds_spe.errors import SPEError
from lnds_spe.sdc.grid import as_float_array, make_key
from lnds_spe.sdc.kernel import cell_stats
from lnds_spe.sdc.records import outcome_frame
from lnds_spe.sdc.tables import MaskMismatchError, checked_crosstab


def reference_stats(cell: np.ndarray, v: np.ndarray, w: np.ndarray, n_cells: int, k: int):
    """Per-cell statistics the slow, obvious way (rows with cell < 0 dropped)."""
    frame = pd.DataFrame({"cell": cell, "v": v, "w": w})
    frame = frame[frame.cell >= 0]
    grouped = frame.groupby("cell")
    index = pd.RangeIndex(n_cells)
    ranked = frame.assign(a=frame.v.abs()).dropna().sort_values(["cell", "a"],
                                                                 ascending=[True, False])
    rank = ranked.groupby("cell").cumcount().to_numpy()
    top = np.zeros((n_cells, k))
    keep = rank < k
    top[ranked.cell.to_numpy()[keep], rank[keep]] = ranked.a.to_numpy()[keep]
    return {
        "count": grouped.size().reindex(index, fill_value=0).to_numpy(),
        "weighted_count": grouped["w"].sum().reindex(index, fill_value=0).to_numpy(),
        "n_values": grouped["v"].count().reindex(index, fill_value=0).to_numpy(),
        "total": grouped["v"].sum().reindex(index, fill_value=0).to_numpy(),
        "abs_total": frame.v.abs().groupby(frame.cell).sum().reindex(index, fill_value=0)
        .to_numpy(),
        "negatives": (frame.v < 0).groupby(frame.cell).sum().reindex(index, fill_value=0)
        .to_numpy(),
        "missing": frame.v.isna().groupby(frame.cell).sum().reindex(index, fill_value=0)
        .to_numpy(),
        "top": top,
    }


@pytest.mark.parametrize(("threads", "sizes"), [(1, (7, 3)), (2, (7, 3)), (2, (300, 20))])
def test_kernel_records_match_pandas_with_weights_missing_keys_and_top3(threads, sizes):
    rng = np.random.default_rng(threads + sizes[0])
    n = 250_000
    a = rng.integers(-1, sizes[0], n)  # -1: missing key, row dropped
    b = rng.integers(0, sizes[1], n).astype(np.int16)
    v = rng.normal(size=n) * rng.choice([1.0, 50.0], n, p=[0.99, 0.01])
    v[rng.random(n) < 0.01] = np.nan
    w = rng.uniform(0.5, 2.0, n)
    stats = cell_stats([a, b], [0, 0], list(sizes), v, w, top_k=3, threads=threads)
    cell = np.where(a < 0, -1, a * sizes[1] + b)
    expected = reference_stats(cell, v, w, sizes[0] * sizes[1], 3)
    for name in ("count", "n_values", "negatives", "missing"):
        assert np.array_equal(getattr(stats, name).ravel(), expected[name]), name
    for name in ("weighted_count", "total", "abs_total"):
        assert np.allclose(getattr(stats, name).ravel(), expected[name], rtol=1e-10), name
    assert np.allclose(stats.top.reshape(-1, 3), expected["top"], rtol=0, atol=0)


def test_kernel_counts_only_with_weights_leaves_value_statistics_empty():
    keys = [np.array([0, 1, 1, 2], dtype=np.int8)]
    stats = cell_stats(keys, [0], [3], weights=np.array([0.5, 1.0, 2.0, 4.0]))
    assert stats.count.tolist() == [1, 2, 1]
    assert stats.weighted_count.tolist() == [0.5, 3.0, 4.0]
    assert not stats.n_values.any() and not stats.top.any() and not stats.total.any()


@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_kernel_refuses_a_thread_count_that_is_not_a_positive_integer(threads):
    with pytest.raises(SPEError, match=f"threads: expected a positive integer, got {threads!r}"):
        cell_stats([np.array([0, 1], dtype=np.int8)], [0], [2], threads=threads)


@pytest.mark.parametrize("series", [
    pd.Series([1.5, np.nan, -2.0]),
    pd.Series([1, 2, 3], dtype=np.int8),
    pd.Series([True, False, True]),
    pd.Series([1.5, 2.5], dtype=np.float32),
    pd.Series([1, None, 3], dtype="Int64"),
    pd.Series(["1.5", "2", None], dtype=object),
])
def test_float_values_equal_pandas_to_numeric(series):
    expected = pd.to_numeric(series, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    got = as_float_array(series)
    assert got.dtype == np.float64
    assert np.array_equal(got, expected, equal_nan=True)


def test_float64_values_are_not_copied():
    series = pd.Series(np.arange(5, dtype=np.float64))
    assert np.shares_memory(as_float_array(series), series.to_numpy())


def _decode(values: pd.Series) -> list:
    """Labels of make_key's codes, None where the row's key is missing (code out of range)."""
    key = make_key(values, dropna=True)
    codes = np.asarray(key.codes, dtype=np.int64) - key.offset
    inside = (codes >= 0) & (codes < len(key.labels))
    return [key.labels[c] if ok else None for c, ok in zip(codes, inside, strict=True)]


@pytest.mark.parametrize("kind", ["int", "wide_int", "str_none", "float_nan", "categorical"])
def test_keys_decode_to_the_original_values(kind):
    rng = np.random.default_rng(3)
    n = 2_000
    if kind == "int":
        series = pd.Series(rng.integers(-5, 40, n).astype(np.int16))
    elif kind == "wide_int":
        series = pd.Series(rng.choice([-(10**12), 0, 7, 10**12], n))
    elif kind == "str_none":
        series = pd.Series(rng.choice(["b", "a", "c", None], n), dtype=object)
    elif kind == "float_nan":
        series = pd.Series(rng.choice([0.5, -1.0, np.nan, 3.0], n))
    else:
        series = pd.Series(pd.Categorical(rng.choice(["x", "y", None], n),
                                          categories=["y", "x", "z"]))
    expected = [None if pd.isna(x) else x for x in series]
    assert _decode(series) == expected


def test_crosstab_with_missing_and_categorical_keys_equals_pandas():
    rng = np.random.default_rng(4)
    n = 3_000
    df = pd.DataFrame({
        "r": rng.choice(["n", "s", None], n),
        "k": pd.Categorical(rng.choice(["lo", "hi"], n), categories=["lo", "mid", "hi"]),
        "sex": rng.choice([1.0, 2.0, np.nan], n),
        "v": rng.lognormal(size=n),
    })
    for kwargs in ({}, {"values": df.v, "aggfunc": "mean"}):
        ours = checked_crosstab([df.r, df.k], df.sex, **kwargs).table
        # Labels of a categorical key come back as a plain Index (as before the fast paths).
        pd.testing.assert_frame_equal(ours, pd.crosstab([df.r, df.k], df.sex, **kwargs),
                                      check_dtype=False, check_index_type=False,
                                      check_categorical=False)


def test_outcome_text_lists_each_cells_rules_in_flag_order():
    rng = np.random.default_rng(5)
    table = pd.DataFrame(np.zeros((6, 4)), index=list("abcdef"), columns=list("wxyz"))
    flags = {name: rng.random((6, 4)) < 0.4 for name in ("threshold", "nk-rule", "p-ratio")}
    outcome = outcome_frame(table, flags)
    acro_names = {"threshold": "MinimumThresholdCheck", "nk-rule": "NKCheck",
                  "p-ratio": "PPercentCheck"}
    for i in range(6):
        for j in range(4):
            text = "".join(f"{acro_names[name]}; " for name in ("threshold", "nk-rule", "p-ratio")
                           if flags[name][i, j])
            assert outcome.iloc[i, j] == (text or "ok")
    assert list(outcome.index) == list(table.index)
    assert list(outcome.columns) == list(table.columns)
    with pytest.raises(MaskMismatchError):  # a mask that does not fit is never dropped
        outcome_frame(table, {**flags, "other-shape": np.ones((2, 2), dtype=bool)})
