"""L4: rewriting the audit log behind the SPE's back is caught by `spe audit verify`, naming the row.

Each attack is run on SQLite and the real PostgreSQL with the rights of whoever holds the database,
but not the SPE's state dir (where the audit key and the checkpoints live).
"""

import json
import os
import subprocess
import sys
import uuid
from datetime import date
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text

from lnds_spe.audit import audit_home, event_hash
from lnds_spe.projects import open_registry
from tests.integration.conftest import POSTGRES_ADMIN_URL

SPE = [sys.executable, "-m", "lnds_spe"]


@pytest.fixture
def state(tmp_path, monkeypatch) -> Path:
    """A state dir of its own (audit key, checkpoints, store), the same for this process and `spe`."""
    folder = tmp_path / "state"
    monkeypatch.setenv("SPE_STATE_DIR", str(folder))
    monkeypatch.setenv("SPE_STORE_URL", (tmp_path / "store").as_uri())
    return folder


@pytest.fixture
def cohort(database_url, state) -> str:
    """A project with two members and a dataset: events 1 to 4."""
    reg = open_registry(database_url)
    reg.create_project("cohort", "Cohort study", date(2026, 1, 1), date(2027, 12, 31), actor="admin1")
    reg.add_member("cohort", "alice", "researcher", actor="admin1")
    reg.add_member("cohort", "carol", "output_checker", actor="admin1")
    reg.add_dataset("cohort", "survey", "s3://spe/cohort/survey.c4gh", actor="admin1",
                    plaintext_sha256="ab" * 32, plaintext_size=1234)
    reg.engine.dispose()
    return database_url


def spe(database_url: str, *args: str) -> subprocess.CompletedProcess:
    """The real `spe` command against a database, with this test's state dir."""
    env = {**os.environ, "SPE_DATABASE_URL": database_url, "SPE_ACTOR": "admin1"}
    return subprocess.run([*SPE, *args], env=env, capture_output=True, text=True, timeout=120)


def sql(database_url: str, *statements: str, **params) -> list[tuple]:
    """Run statements straight on the database, as an attacker holding it would; last one's rows."""
    engine = create_engine(database_url)
    rows: list[tuple] = []
    with engine.begin() as conn:
        for statement in statements:
            result = conn.execute(text(statement), params)
            rows = [tuple(r) for r in result] if result.returns_rows else []
    engine.dispose()
    return rows


def assert_broken(result: subprocess.CompletedProcess, *expected: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    for words in expected:
        assert words in result.stderr, result.stderr


def rewrite_chain(database_url: str, key: bytes | None) -> None:
    """Recompute every row's hash (unkeyed, or with a key that is not the SPE's) and the head."""
    rows = sql(database_url, "SELECT seq, time, actor, action, project, target, outcome, details "
                             "FROM audit_events ORDER BY seq")
    prev = "0" * 64
    engine = create_engine(database_url)
    with engine.begin() as conn:
        # Two passes, so the unique hash columns never collide midway.
        conn.execute(text("UPDATE audit_events SET prev_hash = 'x' || seq, hash = 'y' || seq"))
        for seq, time, actor, action, project, target, outcome, details in rows:
            if seq == 2:
                actor = "mallory"
            digest = event_hash(prev, seq, time, actor, action, project, target, outcome, details,
                                key=key)
            conn.execute(text("UPDATE audit_events SET actor = :a, prev_hash = :p, hash = :h "
                              "WHERE seq = :s"), {"a": actor, "p": prev, "h": digest, "s": seq})
            prev = digest
        conn.execute(text("UPDATE audit_head SET seq = :s, hash = :h"), {"s": rows[-1][0], "h": prev})
    engine.dispose()


def test_untouched_log_verifies(cohort):
    result = spe(cohort, "audit", "verify")
    assert result.returncode == 0, result.stderr
    assert "4 events" in result.stdout


def test_tail_cut_and_head_moved_back_is_caught_by_the_checkpoints(cohort, state):
    (seq3_hash,) = sql(cohort, "SELECT hash FROM audit_events WHERE seq = 3")[0]
    sql(cohort, "DELETE FROM audit_events WHERE seq = 4",
        "UPDATE audit_head SET seq = 3, hash = :h", h=seq3_hash)
    assert_broken(spe(cohort, "audit", "verify"), "checkpoint", "seq 4", "cut")


def test_tail_cut_is_caught_by_the_object_store_checkpoint_alone(cohort, monkeypatch):
    monkeypatch.setenv("SPE_AUDIT_STORE_EVERY", "10")  # the store gets every 10th head
    reg = open_registry(cohort)
    for i in range(8):
        reg.audit.append("alice", "workspace.spawn", project="cohort", details={"i": i})
    reg.engine.dispose()
    (seq9_hash,) = sql(cohort, "SELECT hash FROM audit_events WHERE seq = 9")[0]
    sql(cohort, "DELETE FROM audit_events WHERE seq >= 10",
        "UPDATE audit_head SET seq = 9, hash = :h", h=seq9_hash)
    files = list((audit_home(cohort) / "audit").glob("*.checkpoints"))
    assert len(files) == 1
    files[0].unlink()  # only the object store's copy remains
    assert_broken(spe(cohort, "audit", "verify"), "object store", "BROKEN at seq 10",
                  "rows seq 10 to 10 were cut")


@pytest.mark.parametrize("key", [None, b"k" * 32], ids=["unkeyed", "wrong-key"])
def test_whole_chain_recomputed_without_the_key_is_caught(cohort, key):
    rewrite_chain(cohort, key)
    assert_broken(spe(cohort, "audit", "verify"), "BROKEN at seq 1", "key")


def test_head_row_deleted_is_named_and_writes_refuse_cleanly(cohort):
    sql(cohort, "DELETE FROM audit_head")
    assert_broken(spe(cohort, "audit", "verify"), "audit_head")
    result = spe(cohort, "project", "member", "add", "cohort", "bob", "--role", "researcher")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "audit head row is missing" in result.stderr
    assert sql(cohort, "SELECT count(*) FROM members WHERE username = 'bob'") == [(0,)]


def test_member_row_inserted_directly_is_named(cohort):
    sql(cohort, "INSERT INTO members (project_id, username, role) "
                "SELECT id, 'mallory', 'researcher' FROM projects WHERE slug = 'cohort'")
    assert_broken(spe(cohort, "audit", "verify"), "members row", "mallory", "no member.add event")


def test_member_row_deleted_directly_is_named(cohort):
    sql(cohort, "DELETE FROM members WHERE username = 'carol'")
    assert_broken(spe(cohort, "audit", "verify"), "seq 3", "carol", "no members row")


def test_event_row_edited_is_named(cohort):
    """L2 on a keyed chain."""
    sql(cohort, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 3")
    assert_broken(spe(cohort, "audit", "verify"), "BROKEN at seq 3", "edited")


def test_missing_key_is_named_and_writes_refuse(cohort):
    (audit_home(cohort) / "keys" / "audit.key").unlink()
    assert_broken(spe(cohort, "audit", "verify"), "audit key", "missing")
    result = spe(cohort, "project", "member", "add", "cohort", "bob", "--role", "researcher")
    assert result.returncode == 2 and "audit key" in result.stderr, result.stderr


def test_unreadable_or_forged_checkpoint_is_named(cohort, state):
    (path,) = (audit_home(cohort) / "audit").glob("*.checkpoints")
    lines = path.read_text().splitlines()
    forged = {**json.loads(lines[-1]), "seq": 9}
    path.write_text("\n".join([*lines, "not json", json.dumps(forged)]) + "\n")
    assert_broken(spe(cohort, "audit", "verify"), f"line {len(lines) + 1}", "unreadable",
                  f"line {len(lines) + 2}", "MAC")


def test_app_role_cannot_update_or_delete_audit_rows(state, tmp_path):
    """L4-role: on PostgreSQL the SPE connects as a role that may only add audit rows and move the head."""
    name = f"spe_test_{uuid.uuid4().hex[:12]}"
    role = f"spe_app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    owner_url = base.replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"
    app_url = owner_url.replace("://postgres@", f"://{role}@", 1)
    try:
        result = spe(owner_url, "audit", "grant-app-role", role)
        assert result.returncode == 0, result.stderr
        reg = open_registry(app_url)  # already migrated: the app role needs no DDL
        reg.create_project("p1", "P1", date(2026, 1, 1), date(2026, 12, 31), actor="a")
        reg.add_member("p1", "alice", "researcher", actor="a")
        assert reg.audit.verify() == (2, None)
        reg.engine.dispose()
        for attack in ("UPDATE audit_events SET actor = 'mallory' WHERE seq = 1",
                       "DELETE FROM audit_events WHERE seq = 2",
                       "DELETE FROM audit_head",
                       "INSERT INTO audit_head (id, seq, hash) VALUES (2, 0, 'x')",
                       "UPDATE audit_chain SET keyed_from = 99"):
            with pytest.raises(Exception, match="permission denied"):
                sql(app_url, attack)
        assert sql(owner_url, "SELECT count(*) FROM audit_events") == [(2,)]
        assert spe(app_url, "audit", "verify").returncode == 0
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_a_database_from_before_the_key_still_verifies_and_is_keyed_from_then_on(database_url, state):
    """Migration path: events written before revision 0003 keep their sha256 links."""
    from lnds_spe.db import make_engine, migrate, upgrade_database

    engine = make_engine(database_url)
    migrate(engine, "0002")
    prev = "0" * 64
    with engine.begin() as conn:  # two events as the old code wrote them
        for seq in (1, 2):
            fields = dict(seq=seq, time=f"2026-01-01T00:00:0{seq}.000000Z", actor="old",
                          action="test.old", project=None, target=None, outcome="ok", details="{}")
            digest = event_hash(prev, **fields)
            conn.execute(text("INSERT INTO audit_events VALUES (:seq, :time, :actor, :action, "
                              ":project, :target, :outcome, :details, :prev, :hash)"),
                         {**fields, "prev": prev, "hash": digest})
            prev = digest
        conn.execute(text("UPDATE audit_head SET seq = 2, hash = :h"), {"h": prev})
    engine.dispose()
    upgrade_database(database_url)  # `spe db upgrade`: to the keyed chain
    reg = open_registry(database_url)
    reg.audit.append("new", "test.new")
    assert reg.audit.verify() == (3, None)
    (keyed_from,) = sql(database_url, "SELECT keyed_from FROM audit_chain")[0]
    assert keyed_from == 3
    result = spe(database_url, "audit", "verify")
    assert result.returncode == 0 and "predate the audit key" in result.stdout, result.stderr
    sql(database_url, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 1")
    assert_broken(spe(database_url, "audit", "verify"), "BROKEN at seq 1", "edited")
