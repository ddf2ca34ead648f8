"""Migrations are explicit: only `spe db upgrade` (setup) and the hub's start change the schema.

A registry behind this code is refused with one line naming `spe db upgrade`, and left as it was,
so a newer command never migrates a database under a running hub; SQLite and PostgreSQL.
"""

import os
import subprocess
import sys

import pytest
from sqlalchemy import create_engine, text

from lnds_spe.db import SchemaNotCurrent, current_revision, head_revision, make_engine, migrate, schema_state
from lnds_spe.projects import open_registry

SPE = [sys.executable, "-m", "lnds_spe"]


def spe(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SPE_DATABASE_URL": database_url, "SPE_ACTOR": "admin1"}
    return subprocess.run([*SPE, *args], env=env, capture_output=True, text=True, timeout=120)


def migrate_to(database_url: str, revision: str) -> None:
    """Build the schema as an older SPE left it."""
    engine = make_engine(database_url)
    migrate(engine, revision)
    engine.dispose()


def revision_of(database_url: str) -> str | None:
    engine = make_engine(database_url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


def test_schema_states_are_named():
    known = {"0001", "0002", "0003"}
    assert schema_state(None, "0003", known) == "empty"
    assert schema_state("0003", "0003", known) == "current"
    assert schema_state("0002", "0003", known) == "behind"
    assert schema_state("0099", "0003", known) == "ahead"


def test_a_registry_behind_is_refused_and_left_unmigrated(database_url):
    migrate_to(database_url, "0002")
    with pytest.raises(SchemaNotCurrent, match=r"revision 0002.*spe db upgrade"):
        open_registry(database_url)
    assert revision_of(database_url) == "0002"

    listed = spe(database_url, "project", "list")
    assert listed.returncode == 2
    assert listed.stderr.strip().splitlines() == [listed.stderr.strip()]  # one line
    assert "spe db upgrade" in listed.stderr and "Traceback" not in listed.stderr
    assert revision_of(database_url) == "0002"

    upgraded = spe(database_url, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"from 0002 to {head_revision()}" in upgraded.stdout
    assert revision_of(database_url) == head_revision()
    assert spe(database_url, "project", "list").returncode == 0
    again = spe(database_url, "db", "upgrade")
    assert "already at schema revision" in again.stdout


def test_an_empty_database_is_created_at_the_newest_schema(database_url):
    registry = open_registry(database_url)
    registry.engine.dispose()
    assert revision_of(database_url) == head_revision()


def test_a_registry_ahead_of_this_code_is_refused_even_by_upgrade(database_url):
    migrate_to(database_url, "head")
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(SchemaNotCurrent, match="newer than this SPE knows"):
        open_registry(database_url)
    upgraded = spe(database_url, "db", "upgrade")
    assert upgraded.returncode == 2
    assert "upgrade the SPE software" in upgraded.stderr
    assert revision_of(database_url) == "9999"
