"""An airlock over a real registry database (SQLite and PostgreSQL) with a project and its people."""

from datetime import date, timedelta
from pathlib import Path

import pytest

from lnds_spe.airlock import policies
from lnds_spe.airlock.service import Airlock, Caller
from lnds_spe.projects import open_registry

PROJECT = "census"
RESEARCHER = Caller("alice", frozenset({policies.SCOPE_REQUEST}))
COLLEAGUE = Caller("bob", frozenset({policies.SCOPE_REQUEST, policies.SCOPE_REVIEW}))
CAROL = Caller("carol", frozenset({policies.SCOPE_REVIEW, policies.SCOPE_REQUEST}))
DAVE = Caller("dave", frozenset({policies.SCOPE_REVIEW, policies.SCOPE_REQUEST}))
ADMIN = Caller("admin", frozenset({policies.SCOPE_ADMIN}))

COUNTS = "region,F,M\nNorth,12,15\nSouth,20,\nEast,30,31\n"


def seed_project(registry, slug: str = PROJECT) -> None:
    """A project with two researchers (alice; bob also holds the checker role) and two checkers."""
    today = date.today()
    registry.create_project(slug, "Census", today - timedelta(days=1), today + timedelta(days=30),
                            actor="setup")
    for user, role in (("alice", "researcher"), ("bob", "researcher"), ("bob", "output_checker"),
                       ("carol", "output_checker"), ("dave", "output_checker")):
        registry.add_member(slug, user, role, actor="setup")


@pytest.fixture
def airlock(database_url, tmp_path) -> Airlock:
    registry = open_registry(database_url)
    seed_project(registry)
    yield Airlock(registry, tmp_path / "state")
    registry.engine.dispose()


@pytest.fixture
def outputs(airlock) -> Path:
    """The project's outputs folder, as the workspace writes it."""
    folder = airlock.outputs_root / PROJECT
    folder.mkdir(parents=True)
    (folder / "counts.csv").write_text(COUNTS)
    (folder / "analysis.py").write_text("import pandas as pd\n# made counts.csv\n")
    return folder
