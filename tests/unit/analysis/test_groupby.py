"""groupby_reduce / time_bucket / factorize against pandas references."""

import numba
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from lnds_spe.analysis import AnalysisInputError, factorize, groupby_reduce, time_bucket
from lnds_spe.analysis._intrinsics import StaticInt, prefetch, static_value
from lnds_spe.analysis._reduce import min_max, slot_layout
from lnds_spe.analysis.groupby import REDUCTIONS


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
@pytest.mark.parametrize("n_rows,n_groups", [(0, 3), (1, 1), (1000, 7), (200_000, 5000),
                                             (300_000, 100_000)])  # slots past the cache
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
    with pytest.raises(AnalysisInputError, match="keys"):  # slots past the cache: prefetched
        groupby_reduce(np.arange(300_001) % 200_001, np.ones(300_001), n_groups=200_000)
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


@pytest.mark.parametrize("threads", [2, 3])
def test_factorize_chunks_seeded_by_the_first_rows_match_pandas(threads):
    """Few distinct strings: every chunk codes the first rows first. Strings that only a
    later chunk holds, or that the first chunk meets after those rows, are remapped."""
    from lnds_spe.analysis import _strings
    from lnds_spe.analysis.groupby import _arrow_string_buffers

    rng = np.random.default_rng(4)
    labels = np.array([f"id{i:02d}" for i in range(40)] + ["a long label of many words"],
                      dtype=object)
    values = labels[rng.integers(0, labels.size, 60_000)]
    values[5_000] = "met after the seed"
    values[[40_000, 45_000]] = ["only late", "a long string only a late chunk holds"]
    values[50_000] = "met after the seed"
    ref_codes, ref_uniques = pd.factorize(values)
    assert _strings._SAMPLE_ROWS < 5_000
    offsets, words, data, _ = _arrow_string_buffers(pa.array(values, pa.string()))
    codes, firsts = _strings.factorize_parallel(offsets, words, data, threads,
                                                np.empty(values.size, np.int32))
    np.testing.assert_array_equal(codes, ref_codes)
    np.testing.assert_array_equal(values[firsts], ref_uniques)
    seeded_only = labels[rng.integers(0, labels.size, 60_000)]
    codes, firsts = _strings.factorize_parallel(
        *_arrow_string_buffers(pa.array(seeded_only, pa.string()))[:3], threads,
        np.empty(seeded_only.size, np.int32))
    np.testing.assert_array_equal(codes, pd.factorize(seeded_only)[0])
    np.testing.assert_array_equal(seeded_only[firsts], pd.factorize(seeded_only)[1])


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


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n_rows,n_groups", [(0, 4), (3, 2), (50_000, 40), (120_000, 30_000)])
def test_fused_columns_match_pandas_per_column(n_rows, n_groups, threads):
    rng = np.random.default_rng(n_rows + 7 * n_groups)
    keys = rng.integers(0, max(1, n_groups - 3), n_rows).astype(np.int32)  # last groups empty
    a = rng.normal(size=n_rows)
    a[rng.random(n_rows) < 0.1] = np.nan
    b = rng.integers(-5, 5, n_rows)  # integers are reduced as float64
    c = rng.normal(size=n_rows).astype(np.float32)
    d = rng.uniform(size=n_rows)
    # every slot layout a column can have: min and max, neither, min alone, max alone
    ops = {"a": ("sum", "mean", "min", "max", "count"), "b": "sum", "c": ("min", "count"),
           "d": ("max", "mean")}
    ours = groupby_reduce(keys, {"a": a, "b": b, "c": c, "d": d}, n_groups=n_groups, ops=ops,
                          threads=threads)
    assert set(ours) == {"rows"} | {f"{name}.{op}" for name, spec in ops.items()
                                    for op in ((spec,) if isinstance(spec, str) else spec)}
    np.testing.assert_array_equal(ours["rows"], np.bincount(keys, minlength=n_groups))
    for name, column in (("a", a), ("b", b.astype(np.float64)), ("c", c.astype(np.float64)),
                         ("d", d)):
        ref = pandas_reduce(keys, column, n_groups)
        for op in (ops[name],) if isinstance(ops[name], str) else ops[name]:
            expected = ref[op].to_numpy()
            if op == "count":
                np.testing.assert_array_equal(ours[f"{name}.{op}"], expected)
            else:
                np.testing.assert_allclose(ours[f"{name}.{op}"], expected, rtol=1e-10,
                                           equal_nan=True)


def test_fused_columns_equal_separate_calls_and_refuse_mismatched_ops():
    rng = np.random.default_rng(11)
    keys = rng.integers(0, 50, 10_000)
    x, y = rng.normal(size=10_000), rng.uniform(size=10_000)
    both = groupby_reduce(keys, {"x": x, "y": y}, ops="mean")
    np.testing.assert_allclose(both["x.mean"], groupby_reduce(keys, x, ops="mean")["mean"])
    np.testing.assert_allclose(both["y.mean"], groupby_reduce(keys, y, ops="mean")["mean"])
    with pytest.raises(AnalysisInputError, match="ops"):
        groupby_reduce(keys, {"x": x, "y": y}, ops={"x": "sum"})
    with pytest.raises(AnalysisInputError, match="values"):
        groupby_reduce(keys, {})
    with pytest.raises(AnalysisInputError, match="length"):
        groupby_reduce(keys, {"x": x, "y": y[:-1]})


@pytest.mark.parametrize("threads", [1, 2])
def test_groupby_on_arrow_dictionary_keys_uses_indices(threads):
    rng = np.random.default_rng(5)
    labels = pa.array(["north", "south", "east", "west", "unused"])
    indices = rng.integers(0, 4, 30_000).astype(np.int32)
    values = rng.normal(size=30_000)
    values[::13] = np.nan
    keys = pa.DictionaryArray.from_arrays(pa.array(indices), labels)
    ours = groupby_reduce(keys, values, ops=("mean", "count"), threads=threads)
    ref = pandas_reduce(indices, values, len(labels))
    np.testing.assert_allclose(ours["mean"], ref["mean"].to_numpy(), rtol=1e-10, equal_nan=True)
    np.testing.assert_array_equal(ours["count"], ref["count"].to_numpy())
    assert ours["rows"][4] == 0 and np.isnan(ours["mean"][4])
    chunked = pa.chunked_array([keys[:100], keys[100:]])
    np.testing.assert_array_equal(groupby_reduce(chunked, values, ops="count")["count"],
                                  ours["count"])


@pytest.mark.parametrize("threads", [1, 2])
def test_factorize_dictionary_arrow_matches_pandas_first_seen(threads):
    rng = np.random.default_rng(8)
    # a duplicate entry ("b" twice) and an unused one ("zz") must not give extra codes
    dictionary = pa.array(["b", "a", "zz", "b", "c"])
    indices = rng.choice(np.array([0, 1, 3, 4], dtype=np.int8), 20_000)
    keys = pa.DictionaryArray.from_arrays(pa.array(indices), dictionary)
    codes, uniques = factorize(keys, threads=threads)
    ref_codes, ref_uniques = pd.factorize(np.asarray(keys.to_pylist(), dtype=object))
    np.testing.assert_array_equal(codes, ref_codes)
    np.testing.assert_array_equal(uniques, ref_uniques)
    assert codes.dtype == np.int32
    with pytest.raises(AnalysisInputError, match="null"):
        factorize(pa.DictionaryArray.from_arrays(pa.array([0, None], pa.int32()), dictionary))


@pytest.mark.parametrize("threads", [1, 2])
def test_factorize_strings_of_every_length_and_many_uniques(threads):
    rng = np.random.default_rng(9)
    alphabet = np.array(list("abcdefghé"), dtype=object)
    # lengths 0..40 cross the 8-byte words; 20k distinct values make the table grow
    pool = ["".join(rng.choice(alphabet, rng.integers(0, 41))) for _ in range(20_000)]
    values = np.array(pool, dtype=object)[rng.integers(0, len(pool), 150_000)]
    arr = pa.array(values, type=pa.string())
    codes, uniques = factorize(arr, threads=threads)
    ref_codes, ref_uniques = pd.factorize(values)
    np.testing.assert_array_equal(codes, ref_codes)
    np.testing.assert_array_equal(uniques, ref_uniques)
    sliced_codes, _ = factorize(arr.slice(12_345, 1000), threads=threads)
    np.testing.assert_array_equal(sliced_codes, pd.factorize(values[12_345:13_345])[0])


def test_time_bucket_with_several_columns_matches_single_calls():
    rng = np.random.default_rng(12)
    times = np.sort(rng.integers(1_600_000_000, 1_600_000_000 + 3 * 86400, 20_000))
    stations = rng.integers(0, 4, 20_000).astype(np.int16)
    temp, wind = rng.normal(size=20_000), rng.gamma(2.0, size=20_000)
    wind[::11] = np.nan
    both = time_bucket(times, {"temp": temp, "wind": wind}, "hour", keys=stations,
                       ops={"temp": "mean", "wind": ("max", "count")})
    alone = time_bucket(times, wind, "hour", keys=stations, ops=("max", "count"))
    np.testing.assert_array_equal(both["key"], alone["key"])
    np.testing.assert_allclose(both["wind.max"], alone["max"], equal_nan=True)
    np.testing.assert_array_equal(both["wind.count"], alone["count"])
    np.testing.assert_allclose(both["temp.mean"],
                               time_bucket(times, temp, "hour", keys=stations, ops="mean")["mean"])
    with pytest.raises(AnalysisInputError, match="keys"):
        time_bucket(times, temp, "hour", keys=stations, n_keys=2)


@pytest.mark.parametrize("split_slots", [0, 1 << 40])
def test_group_split_and_row_split_agree_with_nans_infs_and_all_nan_groups(split_slots,
                                                                           monkeypatch):
    from lnds_spe.analysis import groupby as groupby_module

    monkeypatch.setattr(groupby_module, "_SPLIT_SLOTS", split_slots)
    rng = np.random.default_rng(13)
    n_groups = 3001  # odd, so the threads' ranges of groups differ in size
    keys = rng.integers(0, n_groups - 2, 40_000)
    x = rng.normal(size=40_000)
    x[rng.random(40_000) < 0.2] = np.nan
    x[keys == 7] = np.nan  # a group with rows but no values
    x[:3] = [np.inf, -np.inf, np.inf]
    results = [groupby_reduce(keys, {"x": x, "y": -x}, n_groups=n_groups,
                              ops={"x": REDUCTIONS, "y": ("min", "count")}, threads=threads)
               for threads in (1, 2)]
    ref = pandas_reduce(keys, x, n_groups)
    for ours in results:
        for op in ("sum", "mean", "min", "max"):
            np.testing.assert_allclose(ours[f"x.{op}"], ref[op].to_numpy(), rtol=1e-10,
                                       equal_nan=True)
        np.testing.assert_array_equal(ours["x.min"], ref["min"].to_numpy())
        np.testing.assert_array_equal(ours["y.min"], -ref["max"].to_numpy())
        np.testing.assert_array_equal(ours["x.count"], ref["count"].to_numpy())
        np.testing.assert_array_equal(ours["rows"], np.bincount(keys, minlength=n_groups))
        assert ours["rows"][7] > 0 and np.isnan(ours["x.min"][7]) and np.isnan(ours["x.mean"][7])
    with pytest.raises(AnalysisInputError, match="1 key"):
        groupby_reduce(np.append(keys, n_groups), np.append(x, 1.0), n_groups=n_groups,
                       threads=2)


def test_time_bucket_odd_widths_and_bucket_edges_match_integer_division():
    rng = np.random.default_rng(14)
    for width in (1, 7, 3600, 86400 * 365 + 1):
        span = 20_000 * width  # up to 6e11 seconds from the origin
        times = rng.integers(-span, span, 30_000)
        times[:4] = [-span - 1, 0, 7 * width - 1, 7 * width]
        values = rng.normal(size=times.size)
        out = time_bucket(times, values, bucket=width, ops="count")
        starts = np.unique(times // width * width)
        np.testing.assert_array_equal(out["bucket_start"], starts)
        np.testing.assert_array_equal(out["count"], np.unique(times // width,
                                                               return_counts=True)[1])


def test_time_bucket_rows_walking_across_bucket_edges_each_land_in_their_own_bucket():
    # the kernel reuses the last row's bucket while rows stay in it; these rows step onto
    # and just off every edge, forwards and backwards, and jump back to earlier buckets
    for width in (1, 60, 3600):
        edges = np.array([0, 1, width - 1, width, width - 1, 2 * width, 2 * width - 1,
                          5 * width, 5 * width + 1, width, 0, 3 * width - 1, 3 * width])
        times = 1_546_300_800 + np.concatenate([edges, edges[::-1], np.repeat(edges, 3)])
        values = np.arange(times.size, dtype=float)
        for threads in (1, 2):
            out = time_bucket(times, values, bucket=width, ops=("count", "sum"),
                              threads=threads)
            buckets, counts = np.unique(times // width, return_counts=True)
            np.testing.assert_array_equal(out["bucket_start"], buckets * width)
            np.testing.assert_array_equal(out["count"], counts)
            sums = np.bincount(np.searchsorted(buckets, times // width), weights=values)
            np.testing.assert_array_equal(out["sum"], sums)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("n", [1, 2, 5, 100_003])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_min_max_matches_numpy_for_every_split_of_the_rows(n, threads, dtype):
    values = np.random.default_rng(n).integers(-10**9, 10**9, n).astype(dtype)
    low, high = min_max(values, threads)
    assert (low, high) == (values.min(), values.max())
    values[-1] = np.iinfo(dtype).min  # the extreme in the last thread's share
    assert min_max(values, threads)[0] == np.iinfo(dtype).min


def test_prefetch_compiles_for_arrays_of_different_dtypes_in_one_kernel():
    @numba.njit
    def total(ints, floats):
        out = 0.0
        for i in range(ints.shape[0]):
            prefetch(ints, min(i + 8, ints.shape[0] - 1))
            prefetch(floats, min(i + 8, floats.shape[0] - 1))
            out += ints[i] * floats[i]
        return out

    ints, floats = np.arange(100, dtype=np.int32), np.full(100, 0.5)
    assert total(ints, floats) == pytest.approx(float(ints.sum()) * 0.5)


@pytest.mark.parametrize("n_rows", [0, 5, 17, 50_000])  # fewer rows than copies, and many
def test_accumulator_copies_give_the_same_groups_as_one_copy(n_rows, monkeypatch):
    from lnds_spe.analysis import _reduce

    assert _reduce.accumulator_copies(100, 4, split_groups=False) == _reduce._COPIES > 1
    assert _reduce.accumulator_copies(10_000, 4, split_groups=False) == 1
    assert _reduce.accumulator_copies(1_000, 2, split_groups=False) == 32  # as many as fit
    assert _reduce.accumulator_copies(100, 4, split_groups=True) == 1
    rng = np.random.default_rng(n_rows)
    keys = rng.integers(0, 9, n_rows)  # 10 groups: the last stays empty
    x = rng.normal(size=n_rows)
    x[rng.random(n_rows) < 0.2] = np.nan
    x[:min(n_rows, 2)] = [np.inf, -np.inf][:min(n_rows, 2)]
    ops = {"x": REDUCTIONS}
    with_copies = [groupby_reduce(keys, {"x": x}, n_groups=10, ops=ops, threads=threads)
                   for threads in (1, 2)]
    monkeypatch.setattr(_reduce, "_COPIES", 1)
    assert _reduce.accumulator_copies(100, 4, split_groups=False) == 1
    one_copy = groupby_reduce(keys, {"x": x}, n_groups=10, ops=ops, threads=1)
    ref = pandas_reduce(keys, x, 10)
    for ours in with_copies:
        for op in ("min", "max", "count"):
            np.testing.assert_array_equal(ours[f"x.{op}"], one_copy[f"x.{op}"])
            np.testing.assert_array_equal(ours[f"x.{op}"], ref[op].to_numpy())
        for op in ("sum", "mean"):
            np.testing.assert_allclose(ours[f"x.{op}"], one_copy[f"x.{op}"], rtol=1e-12,
                                       equal_nan=True)
        np.testing.assert_array_equal(ours["rows"], np.bincount(keys, minlength=10))


def test_slot_layout_gives_each_kept_reduction_its_own_slot_after_the_row_count():
    n_slots, plan, layout = slot_layout([(False, False), (True, False), (True, True),
                                         (False, True)])
    assert plan == (1, -1, -1, 2, 3, -1, 4, 5, 6, 7, -1, 8)  # (sum, min, max) per column
    assert n_slots == 9
    assert layout.value == 0b10_11_01_00  # bit 2c: column c's min, 2c + 1: its max


def test_a_static_int_is_compiled_in_once_per_value():
    @numba.njit
    def scaled(x, static):
        return x * static_value(static)

    assert scaled(2.0, StaticInt(3)) == 6.0
    assert scaled(2.0, StaticInt(5)) == 10.0
    assert scaled(1.0, StaticInt(3)) == 3.0
    assert len(scaled.signatures) == 2
