"""A real hub from the checkout's config, its registry on SQLite or PostgreSQL, and its people.

alice researches `census`, carol checks its outputs (hub group output-checkers), pat is its
project admin, and `admin` is the SPE admin (SPE_ADMIN_USERS) with no role in any project.
"""

import os
import re
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests

from lnds_spe.projects import open_registry
from tests.integration.conftest import POSTGRES_ADMIN_URL, _postgres_admin
from tests.support.hubs import HubProcess, demo_accounts, free_port, launched

ROOT = Path(__file__).resolve().parents[3]
PROJECT = "census"
MEMBERS = (("alice", "researcher"), ("carol", "output_checker"), ("pat", "project_admin"))


@contextmanager
def state_env(state: Path) -> Iterator[None]:
    """SPE_STATE_DIR set to the hub's state dir (PostgreSQL's audit key lives there)."""
    before = os.environ.get("SPE_STATE_DIR")
    os.environ["SPE_STATE_DIR"] = str(state)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("SPE_STATE_DIR")
        else:
            os.environ["SPE_STATE_DIR"] = before


class ConsoleHub(HubProcess):
    """A hub with helpers for its admin console and its REST API."""

    @property
    def console(self) -> str:
        return f"{self.url}/hub/spe-admin"

    def registry(self):
        with state_env(self.workdir):
            return open_registry(self.env["SPE_DATABASE_URL"])

    def post_form(self, session: requests.Session, path: str, data: dict) -> requests.Response:
        """POST a console form as the browser does: with the _xsrf field of the page's form."""
        page = session.get(f"{self.console}{path}", timeout=30)
        found = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
        assert found, f"no _xsrf field on {path}: {page.status_code} {page.text[:300]}"
        return session.post(f"{self.console}{path}", data={**data, "_xsrf": found.group(1)},
                            timeout=60, allow_redirects=True)


def seed(state: Path, registry_url: str) -> None:
    with state_env(state):
        registry = open_registry(registry_url)
    today = date.today()
    registry.create_project(PROJECT, "Census", today - timedelta(days=1), today + timedelta(days=30),
                            actor="setup")
    for user, role in MEMBERS:
        registry.add_member(PROJECT, user, role, actor="setup")
    registry.engine.dispose()


def start_hub(state: Path, registry_url: str, **extra_env: str) -> ConsoleHub:
    """A running hub over this registry (seeded with census), or the test fails with its log."""
    seed(state, registry_url)
    passwords = demo_accounts(state, ["admin", "bob", *(user for user, _ in MEMBERS)])
    port = free_port()
    env = {**os.environ, "SPE_STATE_DIR": str(state), "SPE_DEMO_MODE": "1",
           "SPE_DATABASE_URL": registry_url,
           "SPE_HUB_BIND_URL": f"http://127.0.0.1:{port}", "SPE_HUB_API_PORT": str(free_port()),
           "SPE_PROXY_API_URL": f"http://127.0.0.1:{free_port()}",
           "SPE_AIRLOCK_PORT": str(free_port()), "SPE_OUTPUT_CHECKERS": "carol",
           "SPE_ADMIN_USERS": "admin", "SPE_CONTAINER_PREFIX": f"spr{secrets.token_hex(3)}",
           "PYTHONPATH": str(ROOT), **extra_env}
    hub = ConsoleHub("rbac", ROOT / "jupyterhub_config.py", f"http://127.0.0.1:{port}", env,
                     state, passwords)
    launched(hub)
    return hub


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def console_hub(request, tmp_path_factory) -> Iterator[ConsoleHub]:
    """A hub per registry backend (no workspaces started)."""
    state = tmp_path_factory.mktemp(f"console-{request.param}")
    if request.param == "sqlite":
        hub = start_hub(state, f"sqlite:///{state / 'spe.sqlite'}")
        yield hub
        hub.stop()
        return
    name = f"spe_test_{uuid.uuid4().hex[:12]}"
    with _postgres_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    hub = start_hub(state, f"{base}/{name}")
    yield hub
    hub.stop()
    with _postgres_admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
