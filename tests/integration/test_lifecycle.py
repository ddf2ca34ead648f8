"""LC1, LC2: closing is final, and a closed project's outputs are archived or deleted, audited."""

import json
import os
import stat
import subprocess
import sys
from datetime import date

import pytest

from lnds_spe import lifecycle
from lnds_spe.errors import InvalidStatusTransition, SPEError
from lnds_spe.projects import open_registry


@pytest.fixture
def state(tmp_path, monkeypatch):
    """The state dir this process and every `spe` it runs share (the audit key lives there)."""
    monkeypatch.setenv("SPE_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture
def registry(database_url, state):
    reg = open_registry(database_url)
    reg.create_project("p1", "One", date(2020, 1, 1), date(2099, 1, 1), actor="admin")
    return reg


def spe(database_url: str, state, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SPE_DATABASE_URL": database_url, "SPE_ACTOR": "admin1",
           "SPE_STATE_DIR": str(state)}
    return subprocess.run([sys.executable, "-m", "lnds_spe", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_closed_project_cannot_be_resumed_or_suspended(registry, database_url, state):
    assert spe(database_url, state, "project", "close", "p1").returncode == 0
    for command in ("resume", "suspend", "close"):
        result = spe(database_url, state, "project", command, "p1")
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: project p1: "), result.stderr
    assert registry.get_project("p1").status == "closed"
    refusals = [e for e in registry.audit.query(project="p1")
                if e.action == "project.status" and e.outcome == "denied"]
    assert [json.loads(e.details)["to"] for e in refusals] == ["active", "suspended", "closed"]
    assert "closing a project is final" in json.loads(refusals[0].details)["reason"]
    assert registry.audit.verify()[1] is None


def test_suspend_and_resume_still_work(registry):
    registry.set_status("p1", "suspended", actor="admin")
    registry.set_status("p1", "active", actor="admin")
    with pytest.raises(InvalidStatusTransition, match="project p1: the project is already active"):
        registry.set_status("p1", "active", actor="admin")


def make_outputs(state):
    outputs = state / "outputs" / "p1"
    (outputs / "tables").mkdir(parents=True)
    (outputs / "tables" / "t.csv").write_text("a,b\n1,2\n")
    (outputs / "notes.txt").write_text("x" * 100)
    return outputs


def test_close_archives_the_outputs_out_of_reach(registry, state):
    outputs = make_outputs(state)
    archive = lifecycle.close_project(registry, "p1", actor="admin", state_dir=state,
                                      outputs_policy="archive").outputs_archive
    assert not outputs.exists()
    assert archive.parent == state / "archive" / "p1"
    assert (archive / "tables" / "t.csv").read_text() == "a,b\n1,2\n"
    assert stat.S_IMODE((state / "archive").stat().st_mode) == 0o700
    assert stat.S_IMODE(archive.stat().st_mode) == 0o700
    event = registry.audit.query(project="p1")[-1]
    assert (event.action, event.outcome) == ("project.outputs", "ok")
    details = json.loads(event.details)
    assert details == {"policy": "archive", "path": str(outputs), "archive": str(archive),
                       "files": 2, "bytes": 108}
    assert registry.get_project("p1").status == "closed"


def test_close_deletes_the_outputs_when_so_configured(registry, state, database_url):
    outputs = make_outputs(state)
    result = spe(database_url, state, "project", "close", "p1", "--outputs", "delete")
    assert result.returncode == 0, result.stderr
    assert "outputs deleted" in result.stdout
    assert not outputs.exists() and not (state / "archive").exists()
    event = registry.audit.query(project="p1")[-1]
    assert json.loads(event.details) == {"policy": "delete", "path": str(outputs), "files": 2,
                                         "bytes": 108}


def test_the_close_policy_is_read_from_the_settings(registry, tmp_path, monkeypatch):
    monkeypatch.setenv("SPE_CLOSE_OUTPUTS", "shred")
    with pytest.raises(SPEError, match="invalid SPE_CLOSE_OUTPUTS 'shred': use archive or delete"):
        lifecycle.close_project(registry, "p1", actor="admin", state_dir=tmp_path)
    assert registry.get_project("p1").status == "active"
