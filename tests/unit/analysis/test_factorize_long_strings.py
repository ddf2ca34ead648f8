"""factorize on many distinct long strings, split over threads, agrees with pandas."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from lnds_spe.analysis import factorize


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
