"""The airlock's business logic on a real database: the whole journey, refusals and their audit."""

import json
import zipfile

import pytest

from lnds_spe.airlock.enums import AuditAction
from lnds_spe.airlock.exceptions import (
    BadFile,
    FileNotFound,
    InvalidStateTransition,
    RequestNotReady,
    RequestPermissionDenied,
)

from .conftest import ADMIN, CAROL, COLLEAGUE, DAVE, PROJECT, RESEARCHER


def draft_with_files(airlock):
    request = airlock.create(RESEARCHER, PROJECT, "Counts by region", "paper table 1",
                             "cells under 10 suppressed")
    airlock.add_file(RESEARCHER, request["id"], "counts.csv")
    airlock.add_file(RESEARCHER, request["id"], "analysis.py", "supporting")
    return request["id"]


def review(airlock, request_id, checker, vote="approve", file="counts.csv"):
    airlock.vote(checker, request_id, file, vote)
    return airlock.submit_review(checker, request_id)


def test_journey_return_resubmit_two_approvals_release(airlock, outputs):
    rid = draft_with_files(airlock)
    submitted = airlock.submit(RESEARCHER, rid)
    assert submitted["status"] == "submitted" and submitted["round"] == 1
    checks = {f["name"]: f["checks"] for f in submitted["files"]}
    assert checks["counts.csv"]["status"] == "pass"  # every shown count is at least 10
    airlock.comment(CAROL, rid, "please round to base 5", file_name="counts.csv")
    review(airlock, rid, CAROL, "changes_requested")
    # Dave does not see Carol's vote or comment before his own review is in.
    seen = airlock.detail(DAVE, rid)
    assert seen["files"][1]["votes"] == {} and seen["comments"] == []
    review(airlock, rid, DAVE, "approve")
    assert airlock.detail(DAVE, rid)["files"][1]["votes"] == {"carol": "changes_requested",
                                                              "dave": "approve"}
    with pytest.raises(RequestNotReady, match="not yet: counts.csv"):
        airlock.approve(DAVE, rid)
    # The requester sees nothing of the review until it is decided.
    assert airlock.detail(RESEARCHER, rid)["comments"] == []
    returned = airlock.return_request(CAROL, rid)
    assert returned["status"] == "returned"
    assert [c["text"] for c in airlock.detail(RESEARCHER, rid)["comments"]] == ["please round to base 5"]

    (outputs / "counts.csv").write_text("region,F,M\nNorth,10,15\nSouth,20,\nEast,30,30\n")
    airlock.add_file(RESEARCHER, rid, "counts.csv")
    resubmitted = airlock.submit(RESEARCHER, rid)
    assert resubmitted["round"] == 2
    assert all(f["votes"] == {} for f in resubmitted["files"])  # a new round starts afresh
    review(airlock, rid, CAROL)
    review(airlock, rid, DAVE)
    assert airlock.approve(CAROL, rid)["status"] == "approved"
    released = airlock.release(DAVE, rid)
    assert released["status"] == "released"

    bundle = airlock.open_release(RESEARCHER, rid)
    with zipfile.ZipFile(bundle) as archive:
        assert sorted(archive.namelist()) == ["disclosure-record.json", "outputs/counts.csv"]
        record = json.loads(archive.read("disclosure-record.json"))
        content = archive.read("outputs/counts.csv")
    assert content == (outputs / "counts.csv").read_bytes()
    import hashlib
    files = {f["name"]: f for f in record["files"]}
    assert files["counts.csv"]["sha256"] == hashlib.sha256(content).hexdigest()
    assert files["analysis.py"]["released"] is False
    assert {v["checker"] for v in files["counts.csv"]["votes"]} == {"carol", "dave"}
    assert record["request"]["requester"] == "alice" and record["request"]["rounds"] == 2
    assert record["rules"]["safe_threshold"] == 10
    assert record["released_by"] == "dave"
    assert [r["round"] for r in record["reviews"]] == [1, 1, 2, 2]
    assert files["counts.csv"]["automatic_checks"]["status"] in ("pass", "review", "fail")

    actions = [e.action for e in airlock.audit.query(project=PROJECT)]
    for action in (AuditAction.CREATE, AuditAction.FILE_ADD, AuditAction.FILE_REPLACE,
                   AuditAction.SUBMIT, AuditAction.VOTE, AuditAction.REVIEW_SUBMIT,
                   AuditAction.COMMENT, AuditAction.RETURN, AuditAction.APPROVE,
                   AuditAction.RELEASE, AuditAction.DOWNLOAD):
        assert action in actions, action
    assert airlock.audit.verify()[1] is None


def test_edits_in_the_workspace_after_submission_change_nothing(airlock, outputs):
    rid = draft_with_files(airlock)
    frozen = airlock.submit(RESEARCHER, rid)["files"][1]["sha256"]
    (outputs / "counts.csv").write_text("region,F,M\nNorth,1,2\n")
    assert airlock.detail(CAROL, rid)["files"][1]["sha256"] == frozen
    path = airlock.open_file(CAROL, rid, "counts.csv")
    assert path.read_text() == "region,F,M\nNorth,12,15\nSouth,20,\nEast,30,31\n"
    with pytest.raises(InvalidStateTransition, match="only a draft or returned"):
        airlock.add_file(RESEARCHER, rid, "counts.csv")


def test_refusals_are_named_and_audited(airlock, outputs):
    rid = draft_with_files(airlock)
    with pytest.raises(RequestPermissionDenied, match="only the requester"):
        airlock.submit(COLLEAGUE, rid)
    airlock.submit(RESEARCHER, rid)
    with pytest.raises(RequestPermissionDenied, match="made request .* cannot review it"):
        airlock.vote(RESEARCHER.__class__("alice", CAROL.scopes), rid, "counts.csv", "approve")
    with pytest.raises(RequestPermissionDenied, match="researcher of project census"):
        airlock.vote(COLLEAGUE, rid, "counts.csv", "approve")
    with pytest.raises(RequestPermissionDenied, match="lacks the scope"):
        airlock.open_file(RESEARCHER, rid, "counts.csv")  # no way out before release
    with pytest.raises(RequestPermissionDenied, match="only the requester"):
        airlock.withdraw(ADMIN, rid)
    denied = [e for e in airlock.audit.query(project=PROJECT) if e.action == AuditAction.DENIED]
    assert len(denied) == 5
    assert all(e.outcome == "denied" and json.loads(e.details)["reason"] for e in denied)


def test_single_approval_does_not_release(airlock, outputs):
    rid = draft_with_files(airlock)
    airlock.submit(RESEARCHER, rid)
    review(airlock, rid, CAROL)
    with pytest.raises(RequestNotReady, match="1 of 2"):
        airlock.approve(CAROL, rid)
    with pytest.raises(InvalidStateTransition, match="cannot become released"):
        airlock.release(CAROL, rid)


def test_withdrawal_is_final(airlock, outputs):
    rid = draft_with_files(airlock)
    airlock.submit(RESEARCHER, rid)
    assert airlock.withdraw(RESEARCHER, rid)["status"] == "withdrawn"
    with pytest.raises(InvalidStateTransition):
        airlock.submit(RESEARCHER, rid)


@pytest.mark.parametrize("name, error, match", [
    ("../../etc/passwd", BadFile, "without '..'"),
    ("/etc/passwd", BadFile, "without '..'"),
    ("missing.csv", FileNotFound, "no file missing.csv"),
    ("link.csv", BadFile, "symlink"),
    ("linkdir/x.csv", BadFile, "symlink"),
])
def test_files_outside_the_outputs_folder_never_join(airlock, outputs, tmp_path, name, error, match):
    secret = tmp_path / "secret.csv"
    secret.write_text("a,b\n1,2\n")
    (outputs / "link.csv").symlink_to(secret)
    (outputs / "linkdir").symlink_to(tmp_path)
    rid = airlock.create(RESEARCHER, PROJECT, "t")["id"]
    with pytest.raises(error, match=match):
        airlock.add_file(RESEARCHER, rid, name)
    assert airlock.detail(RESEARCHER, rid)["files"] == []


def test_differencing_against_a_released_table_is_flagged_naming_both(airlock, outputs):
    first = draft_with_files(airlock)
    airlock.submit(RESEARCHER, first)
    review(airlock, first, CAROL)
    review(airlock, first, DAVE)
    airlock.approve(CAROL, first)
    airlock.release(CAROL, first)
    # South/M was hidden in the released table; a margin by region gives it away: 24 - 20 = 4.
    (outputs / "by_region.csv").write_text("region,count\nNorth,27\nSouth,24\nEast,61\n")
    second = airlock.create(RESEARCHER, PROJECT, "Region totals")["id"]
    airlock.add_file(RESEARCHER, second, "by_region.csv")
    checks = airlock.submit(RESEARCHER, second)["files"][0]["checks"]
    assert checks["status"] == "fail"
    finding = checks["differencing"][0]
    assert finding["table"] == "by_region.csv"
    assert finding["combined_with"] == f"{first}/counts.csv"
    assert finding["cells"] == [["M", "South"]]
    assert "add up to 4" in finding["reason"]
    assert f"{first}/counts.csv" in checks["reasons"][-1]
    # A margin that hides nothing new is not flagged.
    (outputs / "safe.csv").write_text("region,count\nNorth,27\nEast,61\n")
    third = airlock.create(RESEARCHER, PROJECT, "Safe totals")["id"]
    airlock.add_file(RESEARCHER, third, "safe.csv")
    assert "differencing" not in airlock.submit(RESEARCHER, third)["files"][0]["checks"]


def test_automatic_checks_are_stored_with_every_file(airlock, outputs):
    (outputs / "small.csv").write_text("region,F,M\nNorth,3,15\nSouth,20,12\n")
    (outputs / "notes.txt").write_text("We found that incomes rose.\n")
    rid = airlock.create(RESEARCHER, PROJECT, "t")["id"]
    for name in ("small.csv", "notes.txt", "analysis.py"):
        airlock.add_file(RESEARCHER, rid, name, "supporting" if name.endswith(".py") else "output")
    # The requester sees each file's findings before submitting.
    draft = {f["name"]: f["checks"] for f in airlock.detail(RESEARCHER, rid)["files"]}
    assert draft["small.csv"]["status"] == "fail"
    assert draft["small.csv"]["flagged"]["threshold"] == [[0, 1]]
    checks = {f["name"]: f["checks"] for f in airlock.submit(RESEARCHER, rid)["files"]}
    assert checks["small.csv"]["status"] == "fail"
    assert checks["small.csv"]["flagged"]["threshold"] == [[0, 1]]
    assert checks["analysis.py"]["status"] == "fail"  # not on the allow-list of file types
    assert checks["notes.txt"]["status"] in ("pass", "review")
    assert airlock.detail(CAROL, rid)["files"][2]["checks"] == checks["small.csv"]


def test_an_acro_session_s_verdicts_are_stored_with_its_outputs(airlock, outputs, monkeypatch):
    import numpy as np
    import pandas as pd

    from lnds_spe.sdc import ACRO

    monkeypatch.chdir(outputs)
    session = ACRO(suppress=False)
    frame = pd.DataFrame({"region": np.repeat(list("ABC"), 30), "sex": list("FM") * 45})
    frame.loc[0:3, "sex"] = "X"
    session.crosstab(frame.region, frame.sex)
    session.finalise("session1", "json")
    rid = airlock.create(RESEARCHER, PROJECT, "ACRO session")["id"]
    airlock.add_file(RESEARCHER, rid, "session1/output_0_0.csv")
    airlock.add_file(RESEARCHER, rid, "session1/results.json", "supporting")
    checks = {f["name"]: f["checks"] for f in airlock.submit(RESEARCHER, rid)["files"]}
    acro = checks["session1/output_0_0.csv"]["acro"]
    assert acro["uid"] == "output_0" and acro["status"] == "fail"
    assert acro["sdc"]["cells"]
    assert "acro" not in checks["session1/results.json"]
