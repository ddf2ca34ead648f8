"""The registry, the audit log and the `spe` command against SQLite and the real PostgreSQL."""

import json
import os
import subprocess
import sys
from datetime import date

import pytest
from sqlalchemy import create_engine, text

from lnds_spe.errors import SPEError
from lnds_spe.projects import open_registry

SPE = [sys.executable, "-m", "lnds_spe"]


def spe(database_url: str, *args: str) -> subprocess.CompletedProcess:
    """Run the real `spe` command against a database."""
    env = {**os.environ, "SPE_DATABASE_URL": database_url, "SPE_ACTOR": "admin1"}
    return subprocess.run([*SPE, *args], env=env, capture_output=True, text=True, timeout=120)


def snapshot(database_url: str) -> dict[str, list]:
    """Every row of every SPE table, to show a refused command changed nothing."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        tables = ["projects", "members", "datasets", "audit_events", "audit_head"]
        result = {t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY 1"))]
                  for t in tables}
    engine.dispose()
    return result


DEMO_COMMANDS = (
    ["project", "create", "cohort", "--title", "Cohort study", "--start", "2026-01-01",
     "--end", "2027-12-31", "--mem", "4G", "--cpu", "2"],
    ["project", "member", "add", "cohort", "alice", "--role", "researcher"],
    ["project", "member", "add", "cohort", "carol", "--role", "output_checker"],
    ["project", "dataset", "add", "cohort", "survey", "--location", "s3://spe/cohort/survey.c4gh",
     "--sha256", "ab" * 32, "--size", "1234"],
)


@pytest.fixture
def demo(database_url):
    """The registry DEMO_COMMANDS make, built through the Python API (the CLI is slower)."""
    reg = open_registry(database_url)
    reg.create_project("cohort", "Cohort study", date(2026, 1, 1), date(2027, 12, 31),
                       actor="admin1", mem_limit="4G", cpu_limit=2)
    reg.add_member("cohort", "alice", "researcher", actor="admin1")
    reg.add_member("cohort", "carol", "output_checker", actor="admin1")
    reg.add_dataset("cohort", "survey", "s3://spe/cohort/survey.c4gh", actor="admin1",
                    plaintext_sha256="ab" * 32, plaintext_size=1234)
    reg.engine.dispose()
    return database_url


def test_cli_builds_registry_and_audits_every_change(database_url):
    for args in DEMO_COMMANDS:
        result = spe(database_url, *args)
        assert result.returncode == 0, result.stderr
    reg = open_registry(database_url)
    project = reg.get_project("cohort")
    assert (project.title, project.mem_limit, project.cpu_limit) == ("Cohort study", "4G", 2.0)
    assert {(m.username, m.role) for m in reg.members("cohort")} == {
        ("alice", "researcher"), ("carol", "output_checker")}
    assert [d.name for d in reg.datasets("cohort")] == ["survey"]
    assert reg.datasets("cohort")[0].plaintext_size == 1234
    assert [p.slug for p in reg.projects_of("alice", "researcher")] == ["cohort"]
    events = reg.audit.query(project="cohort")
    assert [e.action for e in events] == ["project.create", "member.add", "member.add", "dataset.add"]
    assert {e.actor for e in events} == {"admin1"}

    result = spe(database_url, "audit", "verify")
    assert result.returncode == 0 and "4 events" in result.stdout


def test_status_change_and_member_removal(demo):
    assert spe(demo, "project", "suspend", "cohort").returncode == 0
    assert spe(demo, "project", "member", "remove", "cohort", "alice").returncode == 0
    assert spe(demo, "project", "member", "remove", "cohort", "alice").returncode == 2
    reg = open_registry(demo)
    assert reg.get_project("cohort").status == "suspended"
    assert reg.roles_of("cohort", "alice") == set()
    actions = [e.action for e in reg.audit.query(project="cohort")][-2:]
    assert actions == ["project.status", "member.remove"]


LATER = ("--title", "T", "--start", "2026-01-01", "--end", "2026-02-01")
BAD_INPUTS = {
    "unknown project": (["project", "member", "add", "nosuch", "bob", "--role", "researcher"],
                        "unknown project 'nosuch'"),
    "duplicate slug": (["project", "create", "cohort", "--title", "Again", "--start", "2026-01-01",
                        "--end", "2026-02-01"], "project 'cohort' already exists"),
    "end before start": (["project", "create", "later", "--title", "T", "--start", "2026-05-01",
                          "--end", "2026-04-30"], "end date 2026-04-30 is before start date"),
    "unknown role": (["project", "member", "add", "cohort", "bob", "--role", "boss"],
                     "unknown role 'boss'"),
    "invalid slug": (["project", "create", "Bad_Slug", "--title", "T", "--start", "2026-01-01",
                      "--end", "2026-02-01"], "invalid project slug 'Bad_Slug'"),
    "slug too long": (["project", "create", "a" * 31, "--title", "T", "--start", "2026-01-01",
                       "--end", "2026-02-01"], "invalid project slug"),
    "duplicate dataset": (["project", "dataset", "add", "cohort", "survey", "--location",
                           "s3://x/cohort/survey.c4gh"],
                          "already has a dataset 'survey'"),
    "bad date": (["project", "create", "later", "--title", "T", "--start", "2026-02-30",
                  "--end", "2026-04-30"], "invalid --start '2026-02-30'"),
    # V1: input that escaped before (a traceback, or a value no engine or column holds)
    "pids overflow": (["project", "create", "later", *LATER, "--pids", "99999999999999999999"],
                      "invalid pids limit 99999999999999999999"),
    "cpu inf": (["project", "create", "later", *LATER, "--cpu", "inf"], "invalid CPU limit inf"),
    "memory overflow": (["project", "create", "later", *LATER, "--mem", "99999999999999999999G"],
                        "invalid memory limit '99999999999999999999G'"),
    "member name JupyterHub lowercases": (
        ["project", "member", "add", "cohort", "Alice", "--role", "researcher"],
        "invalid user name 'Alice'"),
    "dataset location outside any store": (
        ["project", "dataset", "add", "cohort", "shadow", "--location", "file:///etc/shadow"],
        "dataset location 'file:///etc/shadow' is not an encrypted object in a store"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_clear_line_and_changes_nothing(demo, case):
    args, message = BAD_INPUTS[case]
    before = snapshot(demo)
    result = spe(demo, *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(demo) == before


def test_an_actor_name_the_audit_log_cannot_hold_is_refused(demo):
    before = snapshot(demo)
    env = {**os.environ, "SPE_DATABASE_URL": demo, "SPE_ACTOR": "a" * 129}
    result = subprocess.run([*SPE, "project", "suspend", "cohort"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "(the acting user, from SPE_ACTOR or the login name)" in result.stderr
    assert snapshot(demo) == before


def test_the_longest_names_the_validators_accept_fit_the_columns(database_url):
    """V1: on PostgreSQL too, a 30-character slug, a 128-character user and actor, a 64-character
    dataset name are stored and audited."""
    reg = open_registry(database_url)
    slug, user, dataset = "p" * 30, "u" * 128, "d" * 64
    reg.create_project(slug, "T", date(2026, 1, 1), date(2026, 2, 1), actor=user,
                       mem_limit="4096G", cpu_limit=1024, pids_limit=4_194_304)
    reg.add_member(slug, user, "researcher", actor=user)
    reg.add_dataset(slug, dataset, "s3://b/" + "k" * 500 + ".c4gh", actor=user)
    assert [e.actor for e in reg.audit.query(project=slug)] == [user] * 3


def test_refused_change_rolls_back_with_its_audit_event(database_url):
    reg = open_registry(database_url)
    reg.create_project("p1", "P1", date(2026, 1, 1), date(2026, 12, 31), actor="a")
    with pytest.raises(SPEError):
        reg.add_member("p1", "bob", "nosuchrole", actor="a")
    with pytest.raises(SPEError):
        reg.remove_member("p1", "bob", actor="a")
    assert reg.audit.verify() == (1, None)


TAMPERING = {
    "edit": ["UPDATE audit_events SET actor = 'mallory' WHERE seq = 3"],
    "delete": ["DELETE FROM audit_events WHERE seq = 3"],
    "reorder": ["UPDATE audit_events SET seq = -1 WHERE seq = 3",
                "UPDATE audit_events SET seq = 3 WHERE seq = 4",
                "UPDATE audit_events SET seq = 4 WHERE seq = -1"],
    "cut tail": ["DELETE FROM audit_events WHERE seq = 4"],
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_audit_verify_catches_tampering_and_names_the_row(demo, case):
    engine = create_engine(demo)
    with engine.begin() as conn:
        for statement in TAMPERING[case]:
            conn.execute(text(statement))
    engine.dispose()
    result = spe(demo, "audit", "verify")
    assert result.returncode == 1
    expected_seq = 4 if case in ("delete", "cut tail") else 3
    assert f"BROKEN at seq {expected_seq}" in result.stderr, result.stderr


def test_audit_query_filters_by_person_project_and_dates(demo):
    reg = open_registry(demo)
    reg.create_project("other", "Other", date(2026, 1, 1), date(2026, 12, 31), actor="admin2")
    reg.audit.append("alice", "workspace.spawn", project="cohort")
    result = spe(demo, "audit", "query", "--user", "alice", "--json")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2  # the membership granted to alice, and her spawn
    assert '"workspace.spawn"' in lines[1] and '"member.add"' in lines[0]
    result = spe(demo, "audit", "query", "--project", "other", "--json")
    assert len(result.stdout.strip().splitlines()) == 1
    assert spe(demo, "audit", "query", "--since", "2099-01-01", "--json").stdout.strip() == ""
    assert len(spe(demo, "audit", "query", "--until", "2099-01-01", "--json")
               .stdout.strip().splitlines()) == 6



def test_audit_query_combines_person_project_and_a_window_that_cuts(demo):
    """L3: who did what in a project between two moments; events either side are left out."""
    import time

    reg = open_registry(demo)
    for step in ("first", "second", "third"):
        reg.audit.append("alice", f"workspace.{step}", project="cohort")
        reg.audit.append("bob", f"workspace.{step}", project="cohort")
        reg.audit.append("alice", f"workspace.{step}", project="other")
        time.sleep(0.02)
    times = {e.action: e.time for e in reg.audit.query(project="cohort", user="alice")}
    since, until = (times[a].rstrip("Z") for a in ("workspace.second", "workspace.third"))
    result = spe(demo, "audit", "query", "--project", "cohort", "--user", "alice",
                 "--since", since, "--until", until, "--json")
    assert result.returncode == 0, result.stderr
    found = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [(e["actor"], e["action"], e["project"]) for e in found] == [
        ("alice", "workspace.second", "cohort")]

APPENDER = """
import sys
from lnds_spe.projects import open_registry
reg = open_registry(sys.argv[1])
for i in range(500):
    reg.audit.append(sys.argv[2], "test.append", details={"i": i})
"""


def test_two_concurrent_writers_never_fork_the_chain(database_url):
    open_registry(database_url)  # migrate once before the race
    writers = [subprocess.Popen([sys.executable, "-c", APPENDER, database_url, name])
               for name in ("w1", "w2")]
    assert [w.wait(timeout=600) for w in writers] == [0, 0]
    reg = open_registry(database_url)
    assert reg.audit.verify() == (1000, None)
    actors = [e.actor for e in reg.audit.events()]
    assert actors.count("w1") == actors.count("w2") == 500


def test_demo_init_is_idempotent(database_url, tmp_path):
    from lnds_spe.demo import init_demo

    reg = open_registry(database_url)
    accounts = init_demo(reg, tmp_path, "admin")
    assert set(accounts["users"]) == {"alice", "bob", "carol", "dave"}
    assert (tmp_path / "demo-accounts.json").stat().st_mode & 0o077 == 0
    events = reg.audit.verify()[0]
    assert init_demo(reg, tmp_path, "admin") is None
    assert reg.audit.verify() == (events, None)
    assert reg.roles_of("demo", "carol") == {"output_checker"}
    # The survey went through the data holder's path: encrypted for the SPE's key, in the store.
    from lnds_spe import crypto, ingress
    from lnds_spe.demo import demo_key_passphrase

    (survey,) = reg.datasets("demo")
    assert survey.manifest["plaintext_sha256"] == survey.plaintext_sha256
    secret = crypto.load_private_key(tmp_path / "keys" / crypto.PRIVATE_KEY_NAME,
                                     lambda: demo_key_passphrase(tmp_path))
    out = ingress.fetch_dataset(reg, "demo", "survey", tmp_path / "fetched", secret, actor="t")
    assert (out / "survey.csv").read_text().startswith("region,sex,age_band,income")
