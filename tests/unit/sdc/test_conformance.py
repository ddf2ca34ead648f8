"""Public conformance cases C1-C14 of the SDC spec, plus the rules ACRO 1.0.2 gets wrong."""

import json

import numpy as np
import pandas as pd
import pytest

from lnds_spe.sdc import ACRO, rules
from lnds_spe.sdc.config import load_config
from lnds_spe.sdc.tables import checked_crosstab


def region_sex(north_f: int, others: int = 25) -> pd.DataFrame:
    """Unit-level rows whose region x sex counts are north_f for (North, F), `others` elsewhere."""
    rows = []
    for region in ["East", "North", "South"]:
        for sex in ["F", "M"]:
            n = north_f if (region, sex) == ("North", "F") else others
            rows += [(region, sex)] * n
    return pd.DataFrame(rows, columns=["region", "sex"])


def flagged(checked, rule):
    """Labels of the cells flagged by one rule."""
    mask = checked.flags[rule]
    return {(checked.table.index[i], checked.table.columns[j]) for i, j in np.argwhere(mask)}


def test_c1_small_cell_fails_and_only_it_is_flagged():
    df = region_sex(3)
    checked = checked_crosstab(df.region, df.sex)
    assert checked.verdict == "fail"
    assert flagged(checked, rules.THRESHOLD) == {("North", "F")}
    assert all(not m.any() for name, m in checked.flags.items() if name != rules.THRESHOLD)


@pytest.mark.parametrize(("count", "verdict"), [(9, "fail"), (10, "pass")])
def test_c2_threshold_boundary(count, verdict):
    df = region_sex(count)
    assert checked_crosstab(df.region, df.sex).verdict == verdict


@pytest.mark.parametrize(("zeros_disclosive", "verdict"), [(True, "fail"), (False, "pass")])
def test_c3_structural_zero(zeros_disclosive, verdict):
    df = region_sex(0)
    config = load_config({"zeros_are_disclosive": zeros_disclosive})
    checked = checked_crosstab(df.region, df.sex, config=config, dropna=True)
    assert checked.table.loc["North", "F"] == 0
    assert checked.verdict == verdict
    if zeros_disclosive:
        assert ("North", "F") in flagged(checked, rules.ZEROS)


def magnitude_frame(cell_values: list[float], others: int = 30) -> pd.DataFrame:
    """Group 'a' holds cell_values; group 'b' has `others` equal incomes."""
    values = list(cell_values) + [100.0] * others
    groups = ["a"] * len(cell_values) + ["b"] * others
    return pd.DataFrame({"group": groups, "sex": "F", "income": values})


def test_c4_one_dominant_unit_fails_nk_and_p_percent():
    total = 1000.0
    values = [0.95 * total] + [0.05 * total / 11] * 11
    df = magnitude_frame(values)
    checked = checked_crosstab(df.group, df.sex, values=df.income, aggfunc="sum")
    assert checked.verdict == "fail"
    assert flagged(checked, rules.NK_RULE) == {("a", "F")}
    assert flagged(checked, rules.P_RATIO) == {("a", "F")}
    assert not checked.flags[rules.THRESHOLD].any()


@pytest.mark.parametrize(("small", "fails"), [(0.49, True), (0.51, False)])
def test_c5_p_percent_boundary(small, fails):
    df = magnitude_frame([50.0, 45.0] + [small] * 10)
    checked = checked_crosstab(df.group, df.sex, values=df.income, aggfunc="sum")
    assert (("a", "F") in flagged(checked, rules.P_RATIO)) is fails


def test_c6_ten_equal_contributors_pass():
    df = magnitude_frame([10.0] * 10)
    checked = checked_crosstab(df.group, df.sex, values=df.income, aggfunc="mean")
    assert checked.verdict == "pass"


@pytest.mark.parametrize(("n", "verdict"), [(12, "fail"), (13, "pass")])
def test_c7_regression_residual_dof(n, verdict, tmp_path):
    rng = np.random.default_rng(1)
    x = pd.DataFrame({"const": 1.0, "x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    y = x.x1 * 2 + rng.normal(size=n)
    session = ACRO()
    fitted = session.ols(y, x)
    assert fitted.df_resid == n - 3
    assert session.results.get("output_0").status == verdict


@pytest.mark.parametrize(("size", "verdict"), [(9, "fail"), (10, "pass")])
def test_c8_median_needs_threshold_count(size, verdict):
    df = pd.DataFrame({"group": ["a"] * size, "sex": "F", "income": np.arange(size) * 1.0 + 1})
    checked = checked_crosstab(df.group, df.sex, values=df.income, aggfunc="median")
    assert checked.table.loc["a", "F"] == pytest.approx(np.median(df.income))
    assert checked.verdict == verdict


def test_c9_histogram_two_bins_of_twenty_pass(tmp_path):
    data = pd.DataFrame({"x": np.r_[np.linspace(0, 4, 20), np.linspace(6, 10, 20)]})
    session = ACRO()
    name = session.hist(data, "x", bins=2, filename=str(tmp_path / "h.png"))
    record = session.results.get("output_0")
    assert record.status == "pass"
    assert record.properties["bin_counts"] == [20, 20]  # the maximum falls in the last bin
    assert "review" in record.summary and name.endswith("h.png")


def test_c10_normalised_table_checked_on_counts():
    df = region_sex(250, others=250)
    checked = checked_crosstab(df.region, df.sex, normalize=True)
    assert checked.verdict == "pass"
    assert checked.table.to_numpy().sum() == pytest.approx(1.0)
    small = region_sex(3)
    assert checked_crosstab(small.region, small.sex, normalize=True).verdict == "fail"


def test_c11_differencing_one_way_released_against_suppressed_table(tmp_path):
    from lnds_spe.sdc.ledger import append_to_ledger, count_table_from_frame

    df = region_sex(3, others=25)
    df = pd.concat([df, pd.DataFrame({"region": ["North"] * 25, "sex": "M"})])  # North = 53
    one_way = pd.crosstab(df.region, columns=[pd.Series(["n"] * len(df), index=df.index)])
    released = count_table_from_frame(
        "output_0", pd.DataFrame(one_way.to_numpy(), index=one_way.index,
                                 columns=pd.Index([""], name=None)),
        np.zeros((3, 1), dtype=bool))
    ledger = tmp_path / "ledger.jsonl"
    append_to_ledger(ledger, "p1", "request-1", released)
    assert released.cells[("North",)] == 53
    session = ACRO(suppress=True, ledger=ledger, project="p1")
    table = session.crosstab(df.region, df.sex)
    assert np.isnan(table.loc["North", "F"]) and table.loc["North", "M"] == 50
    record = session.results.get("output_0")
    assert record.status == "fail"
    assert "request-1/output_0" in record.summary
    position = (list(table.index).index("North"), list(table.columns).index("F"))
    assert record.flags[rules.DIFFERENCING][position]


def test_c12_opensafely_redaction_and_rounding():
    df = pd.DataFrame({"g": ["a"] * 3 + ["b"] * 8 + ["c"] * 12, "s": "x"})
    checked = checked_crosstab(df.g, df.s, margins=True, config=load_config("opensafely"))
    column = checked.table["x"]
    assert list(column[["a", "b", "c"]]) == [rules.REDACTED, 10, 10]
    assert column["All"] == 20 and checked.table.loc["All", "All"] == 20
    assert checked.verdict == "pass"


def test_c13_midpoint6_rounding_and_detector():
    rounded = rules.midpoint6_round(np.array([0, 1, 6, 7, 12, 13]))
    assert list(rounded) == [0, 3, 3, 9, 9, 15]
    assert rules.looks_midpoint6_rounded(rounded)
    assert not rules.looks_midpoint6_rounded(np.array([0, 1, 6, 7, 12, 13]))


def test_c14_results_json_layout(tmp_path):
    df = region_sex(3)
    session = ACRO()
    session.crosstab(df.region, df.sex)
    session.add_exception("output_0", "the cell is a known public figure")
    session.add_comments("output_0", "first table")
    out = tmp_path / "release"
    session.finalise(str(out), "json")
    document = json.loads((out / "results.json").read_text())
    assert set(document) >= {"version", "tool", "results"}
    entry = document["results"]["output_0"]
    assert set(entry) == {"uid", "status", "type", "properties", "files", "outcome", "command",
                          "summary", "timestamp", "comments", "exception", "fair"}
    assert entry["status"] == "fail" and entry["type"] == "table"
    assert entry["files"][0]["name"] == "output_0_0.csv"
    assert entry["files"][0]["sdc"]["cells"]["MinimumThresholdCheck"] == [[1, 0]]
    assert entry["files"][0]["sdc"]["summary"]["MinimumThresholdCheck"] == 1
    assert entry["outcome"]["F"]["North"] == "MinimumThresholdCheck; "
    assert entry["fair"]["variables"] == {"dependent": "unknown",
                                          "independent": ["region", "sex"]}
    assert entry["exception"] == "the cell is a known public figure"
    assert entry["comments"] == ["first table"]
    assert "session.crosstab(df.region, df.sex)" in entry["command"]
    assert (out / "checksums" / "output_0_0.csv.txt").read_text() == __import__(
        "hashlib").sha256((out / "output_0_0.csv").read_bytes()).hexdigest()
    assert json.loads((out / "config.json").read_text())["safe_threshold"] == 10
