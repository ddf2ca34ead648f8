"""Drop-in parity with ACRO 1.0.2's public API, mirroring what ACRO's own tests check."""

import json
import logging

import numpy as np
import pandas as pd
import pytest

from lnds_spe.sdc import ACRO
from lnds_spe.sdc.tables import agg_mode


@pytest.fixture
def grants() -> pd.DataFrame:
    """Grant-like data: year x grant_type, one small (R/G, 2015) cell of 4, amounts as float32."""
    rng = np.random.default_rng(7)
    rows = []
    for year in range(2010, 2016):
        for grant, n in (("G", 40), ("N", 30), ("R/G", 4 if year == 2015 else 12)):
            rows += [(year, grant, "Alive" if i % 3 else "Dead") for i in range(n)]
    frame = pd.DataFrame(rows, columns=["year", "grant_type", "survivor"])
    frame["inc_grants"] = rng.integers(1, 50, len(frame)).astype("float32") * 1000
    return frame


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in a scratch directory (acro_artifacts/ and release folders are relative)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_pivot_table_lists_of_values_and_aggfuncs_equal_pandas(grants):
    session = ACRO(suppress=False)
    kwargs = {"index": ["grant_type"], "values": ["inc_grants"], "aggfunc": ["mean", "sum"]}
    table = session.pivot_table(grants, **kwargs)
    pd.testing.assert_frame_equal(table, pd.pivot_table(grants, **kwargs))
    assert table.columns.nlevels == 2
    assert session.results.get_index(0).status == "pass"


def test_crosstab_aggfunc_list_and_sum_equal_pandas(grants):
    session = ACRO(suppress=False)
    args = (grants.year, grants.grant_type)
    listed = session.crosstab(*args, values=grants.inc_grants, aggfunc=["mean", "std"])
    assert listed.equals(pd.crosstab(*args, values=grants.inc_grants, aggfunc=["mean", "std"]))
    summed = session.crosstab(grants.year, [grants.survivor], values=grants.inc_grants,
                              aggfunc="sum")
    assert summed.equals(pd.crosstab(grants.year, [grants.survivor], values=grants.inc_grants,
                                     aggfunc="sum"))  # float32 sums, as pandas gives them
    assert session.results.get_index(0).status == "fail"  # (2015, R/G) holds 4 grants


def test_crosstab_aggfunc_list_suppressed(grants):
    session = ACRO(suppress=True)
    table = session.crosstab(grants.survivor, grants.grant_type, values=grants.inc_grants,
                             aggfunc=["mean", "std"], margins=True)
    record = session.results.get_index(0)
    assert table.columns.nlevels == 2 and "All" in table.index
    assert set(table.columns.get_level_values(0)) == {"mean", "std"}
    assert record.status == "pass"  # every survivor x grant cell holds >= 10
    small = session.crosstab(grants.year, grants.grant_type, values=grants.inc_grants,
                             aggfunc=["mean", "std"], margins=True)
    assert np.isnan(small.loc[2015, ("mean", "R/G")]) and np.isnan(small.loc[2015, ("std", "R/G")])
    assert session.results.get_index(-1).status == "review"
    assert session.results.get_index(-1).exception == \
        "Suppression automatically applied where needed"
    assert "may need suppressing" in session.results.get_index(-1).summary


def test_mode_in_crosstab_and_pivot_table_with_the_right_verdict(grants):
    session = ACRO(suppress=False)
    crosstab = session.crosstab(grants.year, grants.grant_type, values=grants.inc_grants,
                                aggfunc="mode")
    expected = pd.crosstab(grants.year, grants.grant_type, values=grants.inc_grants,
                           aggfunc=agg_mode)
    assert crosstab.equals(expected)
    pivot = session.pivot_table(grants, index="grant_type", values="inc_grants",
                                aggfunc="mode")
    for grant, group in grants.groupby("grant_type"):
        assert pivot.loc[grant, "inc_grants"] in group.inc_grants.mode().to_numpy()
    # ACRO runs no threshold on a mode: here each mode is held by fewer than 10 grants.
    assert session.results.get_index(-1).status == "fail"
    assert "mode" in session.results.get_index(-1).sdc["cells"]


def test_rounding_mitigation(grants, caplog):
    session = ACRO()
    session.enable_rounding(base=5)
    table = session.crosstab(grants.year, grants.grant_type, margins=True)
    assert (table.to_numpy() % 5 == 0).all()
    assert table.loc["All", "All"] == table.drop(index="All", columns="All").to_numpy().sum()
    record = session.results.get_index(0)
    assert record.exception == "Rounding automatically applied to nearest 5"
    assert record.properties["mitigation"] == "round" and record.properties["round_base"] == 5
    means = session.pivot_table(grants, index=["grant_type"], values=["inc_grants"],
                                aggfunc=["mean"])
    assert (means.to_numpy() % 5 == 0).all()
    with caplog.at_level(logging.WARNING):
        session.suppress = False
    assert session.mitigation == "round" and "no effect" in caplog.text
    session.disable_rounding()
    assert session.mitigation == "none"
    assert session.crosstab(grants.year, grants.grant_type).loc[2010, "R/G"] == 12


def test_pie_and_hist(in_tmp):
    session = ACRO(suppress=False)
    data = pd.DataFrame({"group": ["A"] * 20 + ["B"] * 15 + ["C"] * 5,
                         "value": np.arange(40.0)})
    pie = session.pie(data, "group")
    assert pie.startswith("acro_artifacts") and (in_tmp / pie).is_file()
    assert session.results.get_index(-1).status == "fail"
    assert session.results.get_index(-1).output_type == "pie chart"
    assert session.hist(data, ["value", "value"]) is None  # several columns: not drawn
    assert session.hist(pd.DataFrame({"value": [np.nan] * 3}), "value") is None
    assert session.results.get_index(-1).status == "fail"  # the empty column is recorded
    count = len(session.results.results)
    session.results.blocked_extensions = [".png"]
    assert session.hist(data, "value", filename="h.png") is None
    assert session.pie(data, "group", filename="p.png") is None
    assert len(session.results.results) == count
    assert session.custom_output(pie) is False  # .png is blocked now


def test_surv_func_returns_what_acro_returns(in_tmp):
    rng = np.random.default_rng(3)
    time, died = pd.Series(rng.exponential(100, 300), name="futime"), \
        pd.Series(rng.binomial(1, 0.3, 300), name="death")
    session = ACRO()
    table = session.surv_func(time, died, output="table")
    assert isinstance(table, pd.DataFrame) and "num at risk" in table
    axes, path = session.surv_func(time, died, output="plot")
    assert axes is not None and (in_tmp / path).is_file()
    assert session.surv_func(time, died, output="something_else") is None
    assert [r.output_type for r in session.results.results.values()] == ["table",
                                                                         "survival plot"]
    assert session.results.get_index(0).status == "fail"  # the tail has < 10 at risk


def test_show_fair_summaries_and_records_interface(grants):
    session = ACRO()
    session.crosstab(grants.year, grants.grant_type)
    session.pivot_table(grants, index="grant_type", values="inc_grants", aggfunc="sum")
    text = session.show_fair_summaries()
    assert "output_0\n" in text and "independent : ['year', 'grant_type']" in text
    assert "dependent : inc_grants" in text
    records = session.results
    assert records.get_keys() == ["output_0", "output_1"]
    last = records.get_index(-1)
    assert last.uid == "output_1" and isinstance(last.output[0], pd.DataFrame)
    first = records.get_index(0)
    assert first.status == "fail" and first.sdc["cells"]["MinimumThresholdCheck"] == [[5, 2]]
    session.add_comments("output_0", "small cell")
    assert first.comments == ["small cell"] and first.exception == ""


def test_errors_are_value_errors(grants, in_tmp):
    session = ACRO()
    session.crosstab(grants.year, grants.grant_type)
    with pytest.raises(ValueError, match="unable to add exception: output_9"):
        session.add_exception("output_9", "x")
    with pytest.raises(ValueError, match="unable to remove output_9"):
        session.remove_output("output_9")
    with pytest.raises(ValueError, match="unable to rename, output_0 already exists"):
        session.rename_output("output_0", "output_0")
    with pytest.raises(ValueError, match="Invalid file extension"):
        session.finalise("out", "123")
    with pytest.raises(ValueError, match="single values column"):
        session.crosstab(grants.year, grants.grant_type, aggfunc="mean")
    with pytest.raises(ValueError, match="values column"):
        session.pivot_table(grants, index="grant_type")
    with pytest.raises(ValueError, match="multiple values"):
        session.pivot_table(grants, index="grant_type", values=["inc_grants", "year"])
    with pytest.raises(ValueError, match="neither a profile"):
        ACRO(config="no_such_config")


def test_finalise_interactive_asks_for_exceptions(grants, in_tmp, monkeypatch):
    session = ACRO()
    session.crosstab(grants.year, grants.grant_type)
    monkeypatch.setattr("builtins.input", lambda _prompt: "a published figure")
    records = session.finalise("release", "xlsx", interactive=True)
    assert records.get_index(0).exception == "a published figure"
    sheets = pd.read_excel(in_tmp / "release" / "results.xlsx", sheet_name=None)
    assert list(sheets) == ["description", "output_0"]
    assert sheets["description"]["Sheet"].tolist() == ["output_0"]


def test_federated_mode_collects_evidence_only(grants, in_tmp):
    session = ACRO(federated=True)
    table = session.crosstab(grants.year, grants.grant_type)
    assert not table.empty and session.results.results == {}
    assert session.results.output_id == 1
    session.finalise("evidence")
    evidence = json.loads((in_tmp / "evidence" / "evidence.json").read_text())
    entry = evidence["outputs"]["output_0"]
    assert entry["analysis_names"] == ["FrequencyTable"]
    assert (in_tmp / "evidence" / entry["interim_tables"]["count_table"]).is_file()
    assert not (in_tmp / "evidence" / "results.json").exists()
    assert ACRO().federated is False


def test_config_looked_up_by_name(in_tmp):
    (in_tmp / "strict.yaml").write_text("safe_threshold: 20\nfederated: true\n")
    session = ACRO(config="strict")
    assert session.config.safe_threshold == 20 and session.federated is True
    assert ACRO(config="strict", federated=False).federated is False


def test_crosstab_accepts_series_arrays_and_lists_alike(grants):
    session = ACRO(suppress=False)
    kwargs = {"aggfunc": "count", "margins": True}
    from_series = session.crosstab(grants.year, grants.grant_type,
                                   values=grants.inc_grants, **kwargs)
    from_arrays = session.crosstab(grants.year.to_numpy(), grants.grant_type.to_numpy(),
                                   values=grants.inc_grants.to_numpy(), rownames=["year"],
                                   colnames=["grant_type"], **kwargs)
    from_lists = session.crosstab(grants.year.tolist(), grants.grant_type.tolist(),
                                  values=grants.inc_grants.tolist(), **kwargs)
    assert from_series.equals(from_arrays) and from_series.equals(from_lists)
    assert [r.status for r in session.results.results.values()] == ["fail"] * 3
