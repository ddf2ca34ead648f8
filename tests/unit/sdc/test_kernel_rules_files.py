"""The fused kernel against plain numpy/pandas, table output against pandas, and file checks."""

import json

import numpy as np
import pandas as pd
import pytest

from lnds_spe.sdc import check_file, rules
from lnds_spe.sdc.kernel import cell_stats
from lnds_spe.sdc.tables import checked_crosstab


@pytest.mark.parametrize("threads", [1, 2])
def test_kernel_matches_numpy(threads):
    rng = np.random.default_rng(7)
    n = 300_000
    a = rng.integers(0, 5, n).astype(np.int8)
    b = rng.integers(0, 4, n).astype(np.int8)
    v = rng.normal(size=n)
    v[::97] = np.nan
    stats = cell_stats([a, b], [0, 0], [5, 4], v, top_k=2, threads=threads)
    cell = a.astype(np.int64) * 4 + b
    frame = pd.DataFrame({"cell": cell, "v": v})
    grouped = frame.groupby("cell")["v"]
    assert np.array_equal(stats.count.ravel(), np.bincount(cell, minlength=20))
    assert np.allclose(stats.total.ravel(), grouped.sum().to_numpy())
    assert np.array_equal(stats.missing.ravel(), grouped.apply(lambda s: s.isna().sum()))
    assert np.array_equal(stats.negatives.ravel(), grouped.apply(lambda s: (s < 0).sum()))
    top = grouped.apply(lambda s: np.sort(np.abs(s.dropna()))[::-1][:2]).to_list()
    assert np.allclose(stats.top.reshape(20, 2), np.array(top))


def test_kernel_drops_rows_with_missing_keys_and_folds_many_keys():
    keys = [np.array([0, 1, -1, 1]), np.array([0, 0, 0, 1]), np.array([1, 1, 1, 1]),
            np.array([0, 0, 0, 0])]
    stats = cell_stats(keys, [0, 0, 0, 0], [2, 2, 2, 1])
    assert stats.count.sum() == 3 and stats.count[1, 1, 1, 0] == 1


@pytest.mark.parametrize("kwargs", [{}, {"margins": True}, {"aggfunc": "mean", "values": True},
                                    {"aggfunc": "sum", "values": True, "margins": True},
                                    {"aggfunc": "std", "values": True}])
def test_table_equals_pandas(kwargs):
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"r": rng.choice(["n", "s", "e"], 400), "k": rng.integers(18, 21, 400),
                       "sex": rng.choice(["F", "M"], 400), "v": rng.lognormal(size=400)})
    if kwargs.pop("values", False):
        kwargs["values"] = df.v
    ours = checked_crosstab([df.r, df.k], df.sex, **kwargs).table
    pd.testing.assert_frame_equal(ours, pd.crosstab([df.r, df.k], df.sex, **kwargs),
                                  check_dtype=False)


def test_class_disclosure():
    counts = np.array([[12, 0], [15, 20]])
    assert rules.class_disclosure_mask(counts, True).tolist() == [[True, False], [False, True]]
    assert not rules.class_disclosure_mask(counts, False).any()


def test_rounding_and_redaction():
    assert list(rules.round_to_base(np.array([2, 3, 12, 13]), 5)) == [0, 5, 10, 15]
    shown, redacted = rules.redact_and_round(np.array([3, 7, 8]), 7, 5)
    assert redacted.tolist() == [True, True, False] and shown[2] == 10


def test_check_file_tables(tmp_path):
    small = tmp_path / "t.csv"
    small.write_text("region,F,M\nNorth,3,40\nSouth,30,41\n")
    verdict = check_file(small)
    assert verdict["status"] == "fail" and verdict["flagged"]["threshold"] == [[0, 1]]
    json.dumps(verdict)
    safe = tmp_path / "ok.tsv"
    safe.write_text("region\tF\tM\nNorth\t33\t40\nSouth\t30\t41\n")
    assert check_file(safe)["status"] == "pass"
    m6 = tmp_path / "m6.csv"
    m6.write_text("g,n\na,3\nb,9\nc,15\n")
    assert check_file(m6)["rounding"] == "midpoint6" and check_file(m6)["status"] == "pass"
    ident = tmp_path / "ids.csv"
    ident.write_text("patient_id,age\n1,30\n")
    assert check_file(ident)["status"] == "fail"


def test_check_file_structure(tmp_path):
    (tmp_path / "x.exe").write_bytes(b"MZ")
    assert check_file(tmp_path / "x.exe")["status"] == "fail"
    (tmp_path / "a.svg").write_text('<svg><script>alert(1)</script></svg>')
    assert check_file(tmp_path / "a.svg")["status"] == "fail"
    (tmp_path / "b.svg").write_text('<svg><image href="data:image/png;base64,AA"/></svg>')
    assert check_file(tmp_path / "b.svg")["status"] == "fail"
    (tmp_path / "c.svg").write_text('<svg><rect width="1" height="1"/></svg>')
    assert check_file(tmp_path / "c.svg")["status"] == "review"  # a checker reads it
    (tmp_path / "p.html").write_text('<p onclick="x()">hi</p>')
    assert check_file(tmp_path / "p.html")["status"] == "fail"
    (tmp_path / "fake.png").write_text("not an image")
    assert check_file(tmp_path / "fake.png")["status"] == "fail"
    notebook = {"cells": [{"cell_type": "code", "source": "1", "outputs": [{"text": "1"}]}]}
    (tmp_path / "n.ipynb").write_text(json.dumps(notebook))
    assert check_file(tmp_path / "n.ipynb")["status"] == "fail"
    notebook["cells"][0]["outputs"] = []
    (tmp_path / "n.ipynb").write_text(json.dumps(notebook))
    assert check_file(tmp_path / "n.ipynb")["status"] == "review"  # code: a checker reads it
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b\n" + "x,1\n" * 6000)
    assert "row limit" in check_file(rows)["reasons"][0]
