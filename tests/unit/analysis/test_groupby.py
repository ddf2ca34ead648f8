"""groupby_reduce / time_bucket / factorize against pandas references."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from lnds_spe.analysis import AnalysisInputError, factorize, groupby_reduce, time_bucket


def pandas_reduce(keys, values, n_groups):
    """Dense per-group stats from pandas (NaN skipped; empty groups: sum 0, count 0, NaN)."""
    grouped = pd.Series(values).groupby(keys)
    frame = pd.DataFrame({"sum": grouped.sum(), "mean": grouped.mean(), "min": grouped.min(),
                          "max": grouped.max(), "count": grouped.count()})
    frame = frame.reindex(range(n_groups))
    frame["sum"] = frame["sum"].fillna(0.0)
    frame["count"] = frame["count"].fillna(0).astype(np.int64)
    return frame


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n_rows,n_groups", [(0, 3), (1, 1), (1000, 7), (200_000, 5000)])
def test_groupby_reduce_matches_pandas_with_nans_and_empty_groups(n_rows, n_groups, threads):
    rng = np.random.default_rng(n_rows + n_groups)
    keys = rng.integers(0, max(1, n_groups - 2), n_rows)  # the last groups stay empty
    values = rng.normal(size=n_rows)
    values[rng.random(n_rows) < 0.05] = np.nan
    ours = groupby_reduce(keys, values, n_groups=n_groups, threads=threads)
    ref = pandas_reduce(keys, values, n_groups)
    for op in ("sum", "mean", "min", "max"):
        np.testing.assert_allclose(ours[op], ref[op].to_numpy(), rtol=1e-10, equal_nan=True)
    np.testing.assert_array_equal(ours["count"], ref["count"].to_numpy())
    np.testing.assert_array_equal(ours["rows"], np.bincount(keys, minlength=n_groups))


def test_groupby_accepts_arrow_and_pandas_and_float32():
    keys = pa.array(np.array([0, 1, 1, 2, 0], dtype=np.int32))
    values = pd.Series(np.array([1, 2, 3, 4, 5], dtype=np.float32))
    out = groupby_reduce(keys, values, ops=("sum", "count"))
    np.testing.assert_allclose(out["sum"], [6, 5, 4])
    np.testing.assert_array_equal(out["count"], [2, 2, 1])
    assert set(out) == {"sum", "count", "rows"}


def test_groupby_refuses_bad_keys_and_ops():
    with pytest.raises(AnalysisInputError, match="keys"):
        groupby_reduce(np.array([0, 5]), np.array([1.0, 2.0]), n_groups=3)
    with pytest.raises(AnalysisInputError, match="keys"):
        groupby_reduce(np.array([0.5, 1.0]), np.array([1.0, 2.0]))
    with pytest.raises(AnalysisInputError, match="ops"):
        groupby_reduce(np.array([0, 1]), np.array([1.0, 2.0]), ops=("median",))
    with pytest.raises(ValueError, match="values"):
        groupby_reduce(np.array([0, 1]), np.array([1.0, 2.0, 3.0]))


@pytest.mark.parametrize("bucket,freq", [("hour", "h"), ("day", "D")])
def test_time_bucket_matches_pandas_floor(bucket, freq):
    rng = np.random.default_rng(4)
    n = 50_000
    times = np.sort(rng.integers(1_546_300_800, 1_546_300_800 + 20 * 86400, n))
    stations = rng.integers(0, 6, n)
    values = rng.normal(size=n)
    values[::37] = np.nan
    ours = time_bucket(times, values, bucket=bucket, keys=stations)
    frame = pd.DataFrame({"s": stations, "t": pd.to_datetime(times, unit="s").floor(freq),
                          "v": values})
    ref = frame.groupby(["s", "t"])["v"].agg(["mean", "min", "max", "count", "sum"])
    np.testing.assert_array_equal(ours["key"], ref.index.get_level_values(0))
    starts = ref.index.get_level_values(1).to_numpy().astype("datetime64[s]").astype(np.int64)
    np.testing.assert_array_equal(ours["bucket_start"], starts)
    for op in ("mean", "min", "max", "sum"):
        np.testing.assert_allclose(ours[op], ref[op].to_numpy(), rtol=1e-10, equal_nan=True)
    np.testing.assert_array_equal(ours["count"], ref["count"].to_numpy())


def test_time_bucket_accepts_datetime64_and_refuses_bad_bucket():
    times = np.array(["2024-01-01T00:10", "2024-01-01T00:50", "2024-01-01T01:05"],
                     dtype="datetime64[ns]")
    out = time_bucket(times, np.array([1.0, 3.0, 5.0]), bucket="hour", ops="mean")
    np.testing.assert_allclose(out["mean"], [2.0, 5.0])
    with pytest.raises(AnalysisInputError, match="bucket"):
        time_bucket(times, np.array([1.0, 3.0, 5.0]), bucket="fortnight")


@pytest.mark.parametrize("threads", [1, 2])
def test_factorize_arrow_strings_matches_pandas(threads):
    rng = np.random.default_rng(2)
    labels = np.array([f"id{i:04d}" for i in range(3000)] + ["", "é-ü"], dtype=object)
    values = labels[rng.integers(0, labels.size, 100_000)]
    codes, uniques = factorize(pa.array(values, type=pa.string()), threads=threads)
    ref_codes, ref_uniques = pd.factorize(values)
    np.testing.assert_array_equal(codes, ref_codes)
    np.testing.assert_array_equal(uniques, ref_uniques)
    large_codes, _ = factorize(pa.chunked_array([pa.array(values[:10], pa.large_string()),
                                                 pa.array(values[10:], pa.large_string())]))
    np.testing.assert_array_equal(large_codes, ref_codes)


def test_factorize_numpy_and_pandas_inputs():
    values = np.array(["b", "a", "b", "c"], dtype=object)
    codes, uniques = factorize(values)
    np.testing.assert_array_equal(codes, [0, 1, 0, 2])
    np.testing.assert_array_equal(uniques, ["b", "a", "c"])
    codes2, uniques2 = factorize(pd.Series(values, dtype="string"))
    np.testing.assert_array_equal(codes2, [0, 1, 0, 2])
    assert list(uniques2) == ["b", "a", "c"]
    with pytest.raises(AnalysisInputError, match="null"):
        factorize(pa.array(["a", None]))
