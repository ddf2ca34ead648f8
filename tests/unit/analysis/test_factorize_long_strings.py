"""factorize on short and long strings, many distinct, split over threads, agrees with pandas."""

import sys

import numba
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from lnds_spe.analysis import factorize
from lnds_spe.analysis._intrinsics import load_word
from lnds_spe.analysis._strings import (
    _factorize_by_hash,
    _grow,
    _hash_parallel,
    _partition_tables,
    _short_hash,
    _short_hits,
    distinct_estimate,
)
from lnds_spe.analysis.groupby import _arrow_string_buffers


@pytest.mark.parametrize("threads", [1, 2])
def test_many_distinct_long_strings_match_pandas(threads):
    rng = np.random.default_rng(0)
    alphabet = list("abcdefghijklmnopqrstuvwxyz0123456789")
    distinct = ["".join(rng.choice(alphabet, rng.integers(10, 41))) for _ in range(5_000)]
    rows = [distinct[i] for i in rng.integers(0, len(distinct), 50_000)]
    codes, uniques = factorize(pa.array(rows), threads=threads)
    ref_codes, ref_uniques = pd.factorize(np.asarray(rows, dtype=object))
    np.testing.assert_array_equal(codes, ref_codes)
    assert uniques.tolist() == ref_uniques.tolist()


@pytest.mark.parametrize("threads", [1, 2])
def test_strings_longer_than_the_first_arena_and_equal_prefixes_match_pandas(threads):
    rng = np.random.default_rng(1)
    # up to 40 KB (past the first 32 KB arena); long shared prefixes differ only at the end
    distinct = ["x" * int(n) + tail for n in rng.integers(0, 40_000, 60) for tail in ("a", "b")]
    distinct += ["p" * 65, "p" * 64, "p" * 63 + "q", ""]
    rows = [distinct[i] for i in rng.integers(0, len(distinct), 3_000)]
    codes, uniques = factorize(pa.array(rows), threads=threads)
    ref_codes, ref_uniques = pd.factorize(np.asarray(rows, dtype=object))
    np.testing.assert_array_equal(codes, ref_codes)
    assert uniques.tolist() == ref_uniques.tolist()


@pytest.mark.parametrize("threads", [1, 2])
def test_short_strings_sharing_bytes_and_mixed_with_long_match_pandas(threads):
    rng = np.random.default_rng(2)
    # up to 8 bytes differing only in the last byte, or only in length (trailing NULs), plus
    # the empty string; longer ones share their first 8 bytes with a short one
    short = ["", "\x00", "\x00\x00", "a", "ab", "abcdefg", "abcdefgh", "abcdefg\x00"]
    short += [f"abcdef{i:02d}" for i in range(100)] + [f"key{i}" for i in range(3000)]
    long = [s + "tail" for s in short[5:200]] + ["abcdefgh" * 3]
    distinct = short + long
    rows = [distinct[i] for i in rng.integers(0, len(distinct), 200_000)]
    rows[-1] = "z"  # a short string ending the data buffer, past its last whole word
    arr = pa.array(rows)
    _, offsets, data = arr.buffers()
    unaligned = pa.StringArray.from_buffers(len(rows), offsets,
                                            pa.py_buffer(b"." + data.to_pybytes())[1:])
    ref_codes, ref_uniques = pd.factorize(np.asarray(rows, dtype=object))
    for keys in (arr, unaligned):
        codes, uniques = factorize(keys, threads=threads)
        np.testing.assert_array_equal(codes, ref_codes)
        assert uniques.tolist() == ref_uniques.tolist()
    codes, _ = factorize(arr.slice(3), threads=threads)
    np.testing.assert_array_equal(codes, pd.factorize(np.asarray(rows[3:], dtype=object))[0])

@pytest.mark.parametrize("n_long", [0, 5000])  # few distinct: row chunks; many: hash split
def test_one_and_two_threads_give_the_same_codes(n_long):
    rng = np.random.default_rng(3)
    labels = [f"id{i:03d}" for i in range(100)] + [f"long-label-{i:06d}" for i in range(n_long)]
    arr = pa.array([labels[i] for i in rng.integers(0, len(labels), 100_000)])
    codes1, uniques1 = factorize(arr, threads=1)
    codes2, uniques2 = factorize(arr, threads=2)
    np.testing.assert_array_equal(codes1, codes2)
    assert uniques1.tolist() == uniques2.tolist()


@pytest.mark.parametrize("threads", [1, 2])
def test_strings_around_40_bytes_and_at_the_buffer_end_match_pandas(threads):
    rng = np.random.default_rng(4)
    # 9..40 bytes load as five fixed words, 41 and more word by word, and the same string at
    # the end of the data buffer byte by byte: all must hash and compare alike
    distinct = [f"{i:05d}" + "q" * n for i in range(2000) for n in (3, 4, 34, 35, 36)]
    rows = [distinct[i] for i in rng.integers(0, len(distinct), 30_000)]
    rows += [rows[0], rows[1], rows[2]]
    codes, uniques = factorize(pa.array(rows), threads=threads)
    ref_codes, ref_uniques = pd.factorize(np.asarray(rows, dtype=object))
    np.testing.assert_array_equal(codes, ref_codes)
    assert uniques.tolist() == ref_uniques.tolist()


@pytest.mark.parametrize("distinct", [100, 3_000, 200_000])
def test_the_distinct_count_sketch_estimates_within_five_percent(distinct):
    offsets, words, data, _ = _arrow_string_buffers(
        pa.array([f"key-{i:07d}" for i in range(distinct)] * 2))
    sketches = np.zeros((2, 4096), np.uint8)
    _hash_parallel(offsets, words, data, np.empty(2 * distinct, np.uint64), sketches)
    assert distinct_estimate(sketches.max(axis=0)) == pytest.approx(distinct, rel=0.05)


def test_partition_tables_sized_too_small_grow_and_still_match_pandas():
    """An estimate far under the truth (tables for 10 strings, arena for empty ones) must
    only cost growth, never a wrong code."""
    rng = np.random.default_rng(5)
    distinct = [f"{i:06d}-" + "z" * int(rng.integers(3, 60)) for i in range(20_000)]
    rows = [distinct[i] for i in rng.integers(0, len(distinct), 60_000)]
    offsets, words, data, _ = _arrow_string_buffers(pa.array(rows))
    hashes = np.empty(len(rows), np.uint64)
    _hash_parallel(offsets, words, data, hashes, np.zeros((2, 4096), np.uint8))
    codes, first_rows = _factorize_by_hash(offsets, words, data, hashes,
                                           *_partition_tables(10, 2, 0.0),
                                           np.empty(len(rows), np.int32))
    ref_codes, ref_uniques = pd.factorize(np.asarray(rows, dtype=object))
    np.testing.assert_array_equal(codes, ref_codes)
    assert [rows[r] for r in first_rows] == ref_uniques.tolist()


def test_a_short_string_sharing_another_ones_hash_is_not_given_its_code():
    # the short-string hash is not a bijection: a slot with the row's hash and length but
    # another word is a different string, and the lookup must go on (here: find no code)
    offsets, words, data, _ = _arrow_string_buffers(pa.array(["ab", "ba"]))
    ab, ba = (int.from_bytes(s.encode(), "little") for s in ("ab", "ba"))
    row_hash = _short_hash(np.uint64(ba), 2)
    arena = np.array([2, ab, 0, 0], dtype=np.uint64)  # "ab" only, stored under ba's hash
    s_hash, s_info = _grow(1024, np.array([row_hash], np.uint64), np.array([0], np.int64), 1)
    codes = np.full(2, -1, dtype=np.int32)
    assert _short_hits(offsets, words, data, 1, 2, s_hash, s_info, arena, codes) == 1
    assert codes[1] == -1
    arena[1] = ba  # the same slot now holds "ba" itself: found, code 0
    assert _short_hits(offsets, words, data, 1, 2, s_hash, s_info, arena, codes) == 2
    assert codes[1] == 0


def test_different_strings_given_one_hash_still_get_their_own_codes():
    # a tagged slot matches on the hash's high half only: the arena entry must decide
    rows = ["first-long-string", "second-long-string", "first-long-string", "third-one-here",
            "second-long-string"]
    offsets, words, data, _ = _arrow_string_buffers(pa.array(rows))
    hashes = np.full(len(rows), 0x9E3779B97F4A7C15, dtype=np.uint64)
    codes, first_rows = _factorize_by_hash(offsets, words, data, hashes,
                                           *_partition_tables(len(rows), 1, 18.0),
                                           np.empty(len(rows), np.int32))
    assert codes.tolist() == [0, 1, 0, 2, 1]
    assert first_rows.tolist() == [0, 1, 3]


@numba.njit
def _words_at_every_byte(data):
    out = np.empty(data.shape[0] - 7, np.uint64)
    for i in range(out.shape[0]):
        out[i] = load_word(data, i)
    return out


def test_load_word_reads_the_eight_bytes_at_any_offset():
    data = np.random.default_rng(5).integers(0, 256, 40, dtype=np.uint8)
    expected = [int.from_bytes(data[i:i + 8].tobytes(), sys.byteorder) for i in range(33)]
    assert _words_at_every_byte(data).tolist() == expected
