"""An airlock over a real registry database (SQLite and PostgreSQL) with a project and its people."""

import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests

from lnds_spe.airlock import policies
from lnds_spe.airlock.service import Airlock, Caller
from lnds_spe.projects import open_registry
from tests.support.hubs import HubProcess, demo_accounts, free_port, launched

ROOT = Path(__file__).resolve().parents[3]
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


@dataclass
class AirlockHub:
    """A real JupyterHub from the checkout's config, running the airlock service beside it."""

    hub: HubProcess
    state: Path

    @property
    def api(self) -> str:
        return f"{self.hub.url}/services/airlock/api"

    def token(self, user: str, scopes: list[str] | None = None) -> str:
        """A hub API token of `user` (made through a real login), limited to `scopes`."""
        wanted = scopes if scopes is not None else USER_SCOPES.get(user, [])
        answer = self.hub.login(user).post(f"{self.hub.api}/users/{user}/tokens",
                                           json={"note": "airlock test", "scopes": wanted}, timeout=30)
        assert answer.status_code in (200, 201), answer.text
        return answer.json()["token"]

    def wait_service(self, timeout: float = 90) -> None:
        """Wait until the airlock answers through the hub's proxy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.api}/openapi.json", timeout=5).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        pytest.fail(f"the airlock service did not answer within {timeout} s:\n{self.hub.log_tail(60)}",
                    pytrace=False)


ACCESS = "access:services!service=airlock"
USER_SCOPES = {
    "alice": [ACCESS, policies.SCOPE_REQUEST],
    "bob": [ACCESS, policies.SCOPE_REQUEST],
    "carol": [ACCESS, policies.SCOPE_REVIEW],
    "dave": [ACCESS, policies.SCOPE_REVIEW],
    "admin": [ACCESS, policies.SCOPE_ADMIN],
}


@pytest.fixture(scope="module")
def airlock_hub(tmp_path_factory) -> Iterator[AirlockHub]:
    """One hub per module with a SQLite registry seeded with the census project."""
    state = tmp_path_factory.mktemp("airlock-hub")
    registry_url = f"sqlite:///{state / 'spe.sqlite'}"
    registry = open_registry(registry_url)
    seed_project(registry)
    registry.engine.dispose()
    passwords = demo_accounts(state, USER_SCOPES)
    port = free_port()
    env = {**os.environ, "SPE_STATE_DIR": str(state), "SPE_DEMO_MODE": "1",
           "SPE_DATABASE_URL": registry_url,
           "SPE_HUB_BIND_URL": f"http://127.0.0.1:{port}", "SPE_HUB_API_PORT": str(free_port()),
           "SPE_PROXY_API_URL": f"http://127.0.0.1:{free_port()}",
           "SPE_AIRLOCK_PORT": str(free_port()), "SPE_OUTPUT_CHECKERS": "carol,dave,bob",
           "SPE_CONTAINER_PREFIX": f"spa{secrets.token_hex(3)}", "PYTHONPATH": str(ROOT)}
    hub = HubProcess("airlock", ROOT / "jupyterhub_config.py", f"http://127.0.0.1:{port}", env,
                     state, passwords)
    launched(hub)
    running = AirlockHub(hub, state)
    running.wait_service()
    yield running
    hub.stop()
