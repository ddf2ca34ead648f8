"""Rules ACRO 1.0.2 gets wrong (marked in the spec), shown right here; plus the API surface."""

import json

import numpy as np
import pandas as pd
import pytest

from lnds_spe.errors import SPEError
from lnds_spe.sdc import ACRO, rules
from lnds_spe.sdc.ledger import CountTable, differencing_findings, read_ledger
from lnds_spe.sdc.tables import checked_crosstab


def test_weights_never_lift_a_cell():
    df = pd.DataFrame({"g": ["a"] * 4 + ["b"] * 20, "s": "x", "w": [3.0] * 4 + [1.0] * 20})
    checked = checked_crosstab(df.g, df.s, weights=df.w)
    assert checked.table.loc["a", "x"] == 12.0  # weighted count is shown ...
    assert checked.flags[rules.THRESHOLD][0, 0]  # ... but 4 units fail
    assert checked.verdict == "fail"


@pytest.mark.parametrize("aggfunc", ["max", "min"])
def test_extreme_values_fail_unless_coded(aggfunc):
    values = list(np.arange(1.0, 31.0))
    df = pd.DataFrame({"g": "a", "s": "x", "v": values})
    checked = checked_crosstab(df.g, df.s, values=df.v, aggfunc=aggfunc)
    assert checked.verdict == "fail" and checked.flags[rules.EXTREME_VALUE].all()
    coded = [min(max(v, 10.0), 20.0) for v in values]  # top- and bottom-coded
    df_coded = pd.DataFrame({"g": "a", "s": "x", "v": coded})
    assert checked_crosstab(df_coded.g, df_coded.s, values=df_coded.v,
                            aggfunc=aggfunc).verdict == "pass"


@pytest.mark.parametrize("aggfunc", ["max", "min"])
def test_an_empty_cell_shows_no_extreme_value(aggfunc):
    # (b, y) has no unit: its max/min is no one's value, so only the threshold flags it.
    coded = [10.0] * 12 + [20.0] * 12
    df = pd.DataFrame({"g": ["a"] * 12 + ["b"] * 12, "v": coded,
                       "s": ["x"] * 6 + ["y"] * 6 + ["x"] * 12})
    checked = checked_crosstab(df.g, df.s, values=df.v, aggfunc=aggfunc)
    assert checked.counts.loc["b", "y"] == 0
    assert not checked.flags[rules.EXTREME_VALUE][1, 1]
    assert checked.flags[rules.THRESHOLD][1, 1]
    assert checked.flags[rules.EXTREME_VALUE][0].all()  # six units at the extreme: too few


def test_mode_below_threshold_fails():
    df = pd.DataFrame({"g": "a", "s": "x", "v": [1.0] * 3 + list(range(10, 30))})
    assert checked_crosstab(df.g, df.s, values=df.v, aggfunc="mode").verdict == "fail"
    df2 = pd.DataFrame({"g": "a", "s": "x", "v": [1.0] * 12 + list(range(10, 30))})
    assert checked_crosstab(df2.g, df2.s, values=df2.v, aggfunc="mode").verdict == "pass"


def test_negatives_review_and_dominance_on_absolute_values():
    values = [-1000.0] + [1.0] * 20
    df = pd.DataFrame({"g": "a", "s": "x", "v": values})
    checked = checked_crosstab(df.g, df.s, values=df.v, aggfunc="sum")
    assert checked.flags[rules.NEGATIVE].all()
    assert checked.flags[rules.NK_RULE].all()  # |-1000| dominates even though the sum is -980
    assert checked.verdict == "fail"
    mild = pd.DataFrame({"g": "a", "s": "x", "v": [-5.0] + [10.0] * 20})
    result = checked_crosstab(mild.g, mild.s, values=mild.v, aggfunc="sum")
    assert result.verdict == "review" and "negative" in result.summary


def test_histogram_small_bin_fails(tmp_path):
    data = pd.DataFrame({"x": np.r_[np.zeros(30), [10.0, 10.0]]})
    session = ACRO()
    session.hist(data, "x", bins=2, filename=str(tmp_path / "h.png"))
    assert session.results.get("output_0").status == "fail"
    assert session.results.get("output_0").properties["bin_counts"] == [30, 2]


def test_two_tables_over_nearly_equal_populations_fail():
    df = pd.DataFrame({"g": np.repeat(["a", "b"], 50), "s": np.tile(["x", "y"], 50),
                       "age": np.arange(100)})
    session = ACRO()
    session.crosstab(df.g, df.s)
    younger = df[df.age < 98]
    session.crosstab(younger.g, younger.s)
    assert session.results.get("output_1").status == "fail"
    assert "output_0" in session.results.get("output_1").summary
    assert session.results.get("output_0").status == "fail"


def test_margin_recovery_inside_a_session():
    rows = [("a", "x")] * 3 + [("a", "y")] * 30 + [("b", "x")] * 30 + [("b", "y")] * 30
    df = pd.DataFrame(rows, columns=["g", "s"])
    session = ACRO(suppress=True)
    session.crosstab(df.g, df.s)
    assert session.results.get("output_0").status == "review"
    session.pivot_table(df.assign(n=1), values="n", index="g", aggfunc="count")
    assert session.results.get("output_0").status == "fail"
    assert session.results.get("output_0").flags[rules.DIFFERENCING][0, 0]


def test_population_finding_needs_nested_tables():
    a = CountTable("A", ("g",), {("x",): 40, ("y",): 40})
    b = CountTable("B", ("g",), {("x",): 38, ("y",): 42})
    assert differencing_findings(a, [b], 10) == []
    c = CountTable("C", ("g",), {("x",): 38, ("y",): 40})
    assert differencing_findings(a, [c], 10)[0].other == "C"


def test_release_bundle_holds_no_session_summary(tmp_path):
    df = pd.DataFrame({"g": np.repeat(["a", "b"], 20), "s": "x"})
    session = ACRO()
    session.crosstab(df.g, df.s)
    out = tmp_path / "release"
    session.finalise(str(out), "xlsx")
    names = {p.name for p in out.iterdir()}
    assert not any("summary" in n for n in names)
    assert {"results.json", "results.xlsx", "config.json", "checksums", "output_0_0.csv"} <= names
    assert session.session_summary()["status_counts"] == {"pass": 1}
    before = sorted(p.name for p in out.iterdir())
    assert session.finalise(str(out), "json") is None  # as ACRO: an existing folder is kept
    assert sorted(p.name for p in out.iterdir()) == before


def test_suppression_recomputes_margins():
    rows = [("a", "x")] * 3 + [("a", "y")] * 30 + [("b", "x")] * 30 + [("b", "y")] * 30
    df = pd.DataFrame(rows, columns=["g", "s"])
    table = ACRO(suppress=True).crosstab(df.g, df.s, margins=True)
    assert np.isnan(table.loc["a", "x"])
    assert table.loc["a", "All"] == 30 and table.loc["All", "x"] == 30
    assert table.loc["All", "All"] == 90


def test_api_session_management(tmp_path, capsys):
    df = pd.DataFrame({"g": np.repeat(["a", "b"], 20), "s": "x", "v": np.arange(40.0)})
    session = ACRO()
    table = session.pivot_table(df, values="v", index="g", aggfunc="mean")
    pd.testing.assert_frame_equal(table, pd.pivot_table(df, values="v", index="g",
                                                        aggfunc="mean"))
    session.crosstab(df.g, df.s)
    session.remove_output("output_1")
    assert "output_0" in session.print_outputs() and "output_1" not in capsys.readouterr().out
    csv = tmp_path / "made_by_hand.csv"
    csv.write_text("g,count\na,3\nb,40\n")
    assert session.custom_output(str(csv), "by hand") is True  # added, as ACRO ...
    assert session.results.get_index(-1).status == "fail"  # ... with the table's verdict
    with pytest.raises(SPEError, match="output_9"):
        session.add_exception("output_9", "x")


def test_regressions_logit_probit_and_formula():
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"x": rng.normal(size=200)})
    df["y"] = (df.x + rng.normal(size=200) > 0).astype(int)
    session = ACRO()
    session.logitr("y ~ x", data=df)
    session.probitr("y ~ x", data=df)
    session.olsr("y ~ x", data=df)
    assert [r.status for r in session.results.results.values()] == ["pass"] * 3
    assert session.results.get("output_0").properties["dof"] == 198


def test_ledger_rejects_a_broken_line(tmp_path):
    path = tmp_path / "ledger.jsonl"
    path.write_text(json.dumps({"variables": ["g"], "cells": [["a", 3]]}) + "\nnot json\n")
    with pytest.raises(SPEError, match="line 2"):
        read_ledger(path)
