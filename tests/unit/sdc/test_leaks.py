"""The three disclosure leaks of issue 10, each reproduced: totals, one-way pivots, free-form files."""

import json

import numpy as np
import pandas as pd
import pytest

from lnds_spe.sdc import ACRO, check_file
from lnds_spe.sdc.tables import MaskMismatchError, place_mask


def two_way_unsafe() -> pd.DataFrame:
    """indvar1 x indvar2 counts: 11 per cell, but 5 in each cell of row C (ACRO's 2-D case)."""
    rows = []
    for first in "ABC":
        for second in "ABC":
            rows += [(first, second, r) for r in range(5 if first == "C" else 11)]
    frame = pd.DataFrame(rows, columns=["indvar1", "indvar2", "depvar"])
    categories = pd.CategoricalDtype(["A", "B", "C"], ordered=True)
    return frame.astype({"indvar1": categories, "indvar2": categories})


@pytest.mark.parametrize("aggfunc", ["count", "sum"])
def test_pivot_totals_hold_only_shown_cells(aggfunc):
    session = ACRO(suppress=True)
    table = session.pivot_table(two_way_unsafe(), index="indvar1", columns="indvar2",
                                values="depvar", aggfunc=aggfunc, margins=True)
    inner = table.drop(index="All", columns="All")
    assert inner.loc["C"].isna().all() and inner.loc[["A", "B"]].notna().all().all()
    # Before the fix, All - visible = 27 - 11 - 11 = 5 gave each hidden cell back.
    pd.testing.assert_series_equal(table.loc["All"].drop("All"), inner.sum(),
                                   check_names=False, check_dtype=False)
    assert table.loc["All", "All"] == np.nansum(inner.to_numpy())
    assert np.isnan(table.loc["C", "All"])
    assert session.results.get_index(-1).status == "review"


def test_pivot_mean_totals_exclude_hidden_units():
    data = two_way_unsafe()
    data["depvar"] = np.where(data.indvar1 == "C", 1000.0, 1.0)
    table = ACRO(suppress=True).pivot_table(data, index="indvar1", columns="indvar2",
                                            values="depvar", aggfunc="mean", margins=True)
    assert table.loc["All", "A"] == 1.0  # the hidden 1000s do not move the total
    assert table.loc["All", "All"] == 1.0


def test_crosstab_and_pivot_agree_on_suppressed_totals():
    data = two_way_unsafe()
    session = ACRO(suppress=True)
    crosstab = session.crosstab(data.indvar1, data.indvar2, values=data.depvar,
                                aggfunc="count", margins=True)
    pivot = session.pivot_table(data, index="indvar1", columns="indvar2", values="depvar",
                                aggfunc="count", margins=True)
    np.testing.assert_array_equal(crosstab.to_numpy(dtype=float), pivot.to_numpy(dtype=float))


def one_way_unsafe() -> pd.DataFrame:
    """indvar1 counts 11, 11, 5."""
    return two_way_unsafe().query("indvar2 == 'A'")


@pytest.mark.parametrize("columns", [[], None])
def test_one_way_pivot_is_suppressed(columns):
    session = ACRO(suppress=True)
    table = session.pivot_table(one_way_unsafe(), index="indvar1", columns=columns,
                                values="depvar", aggfunc="count", margins=True)
    record = session.results.get_index(-1)
    assert np.isnan(table.loc["C", "depvar"])  # before the fix: 5, shown
    assert table.loc["All", "depvar"] == 22
    assert record.sdc["cells"]["MinimumThresholdCheck"] == [[2, 0]]
    assert record.status == "review"


def test_one_way_pivot_unsuppressed_flags_the_cell():
    session = ACRO(suppress=False)
    table = session.pivot_table(one_way_unsafe(), index="indvar1", columns=[],
                                values="depvar", aggfunc="count")
    assert table.loc["C", "depvar"] == 5
    assert session.results.get_index(-1).status == "fail"
    assert session.results.get_index(-1).sdc["cells"]["MinimumThresholdCheck"] == [[2, 0]]


def test_a_mask_that_does_not_fit_raises():
    table = pd.DataFrame({"x": [1, 2]}, index=["a", "b"])
    checked = pd.DataFrame({"y": [1, 2, 3]}, index=["a", "b", "c"])
    with pytest.raises(MaskMismatchError, match="does not fit"):
        place_mask(np.ones((3, 1), dtype=bool), checked, table)


def test_custom_free_form_file_goes_to_review(tmp_path):
    note = tmp_path / "notes.txt"
    note.write_text("In the North there were 3 women aged 90.\n")
    session = ACRO()
    assert session.custom_output(str(note), "my notes") is True
    record = session.results.get_index(-1)
    assert record.status == "review"  # before the fix: pass
    assert "checker must read" in record.summary


@pytest.mark.parametrize(("name", "content"), [
    ("notes.txt", b"three women aged 90 in the North"),
    ("report.md", b"# Results\nNorth: 3"),
    ("data.json", b'{"north": 3}'),
    ("figure.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 16),
    ("figure.svg", b'<svg><rect width="1" height="1"/></svg>'),
    ("page.html", b"<p>North: 3</p>"),
    ("labels.csv", b"region,sex\nNorth,F\nSouth,M\n"),
    ("code.ipynb", json.dumps({"cells": [{"cell_type": "code", "source": "x = 3",
                                          "outputs": []}]}).encode()),
])
def test_check_file_sends_unruled_files_to_review(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    verdict = check_file(path)
    assert verdict["status"] == "review"
    assert any("checker must read" in reason for reason in verdict["reasons"])
    assert set(verdict) >= {"path", "kind", "status", "reasons", "flagged"}


def test_check_file_keeps_pass_and_fail_for_ruled_tables(tmp_path):
    safe = tmp_path / "safe.csv"
    safe.write_text("region,F,M\nNorth,33,40\nSouth,30,41\n")
    assert check_file(safe)["status"] == "pass"
    small = tmp_path / "small.csv"
    small.write_text("region,F,M\nNorth,3,40\nSouth,30,41\n")
    assert check_file(small)["status"] == "fail"
    script = tmp_path / "bad.svg"
    script.write_text("<svg><script>x()</script></svg>")
    assert check_file(script)["status"] == "fail"
