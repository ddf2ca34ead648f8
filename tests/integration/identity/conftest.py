"""A real OpenID Connect provider (tests/support/oidc, oidc-provider on Node) on loopback and a
real SPE hub signing people in through it, with real workspaces (Podman)."""

import json
import os
import re
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests

from lnds_spe.config import setting
from lnds_spe.hub.firewall import remove_firewall
from lnds_spe.hub.lockdown import network_name
from tests.support.engine import remove_home_volumes
from tests.support.hubs import HubError, HubProcess, engine_socket, free_port, launched

ROOT = Path(__file__).resolve().parents[3]
PROVIDER_DIR = ROOT / "tests" / "support" / "oidc"
IMAGE = setting("SPE_WORKSPACE_IMAGE")
PROJECT = "idp"
MFA_ACR = "urn:spe:mfa"
ADMIN = "carol"  # an admin through the provider's idp-admins group
REFRESH_AGE_S = 2  # the hub asks the provider again at a person's first request after this
ACCESS_TOKEN_TTL_S = 4  # so tokens expire during a test and are refreshed
# People at the provider: their groups, and whether they signed in with a second factor.
PEOPLE = {
    "alice": {"groups": ["idp-users"], "acr": MFA_ACR},  # researcher of PROJECT
    "bob": {"groups": ["idp-users", "idp-checkers"], "acr": MFA_ACR},
    "carol": {"groups": ["idp-users", "idp-admins"], "acr": MFA_ACR},
    "dave": {"groups": ["payroll"], "acr": MFA_ACR},  # not an SPE group
    "erin": {"groups": ["idp-users"], "amr": ["pwd", "otp"]},  # MFA shown by amr
    "frank": {"groups": ["idp-users"]},  # password only
}


@dataclass
class Provider:
    """The running provider: its issuer URL, config file, and the people's passwords."""

    issuer: str
    config_path: Path
    process: subprocess.Popen
    passwords: dict[str, str]

    def change(self, username: str, **fields) -> None:
        """Change a person at the provider while it runs (groups, blocked, ...)."""
        config = json.loads(self.config_path.read_text())
        config["users"][username].update(fields)
        self.config_path.write_text(json.dumps(config))


def sign_in(hub_url: str, username: str, password: str,
            session: requests.Session | None = None) -> requests.Response:
    """The full code flow over HTTP: hub -> provider's login form -> consent -> hub callback."""
    session = session or requests.Session()
    form = session.get(f"{hub_url}/hub/oauth_login?next=", timeout=30)
    assert "/interaction/" in form.url and 'id="password"' in form.text, form.text[:500]
    action = re.search(r'action="([^"]+)"', form.text).group(1)
    issuer = form.url.split("/interaction/")[0]
    return session.post(issuer + action, data={"username": username, "password": password},
                        timeout=30)


@dataclass
class OIDCHub(HubProcess):
    """An SPE hub whose people sign in at the provider (HubProcess.login does the code flow)."""

    provider: Provider | None = None
    prefix: str = ""

    def token(self, username: str) -> str:
        """A person's API token; "admin" (as HubProcess's helpers say) is ADMIN, an admin by group."""
        return super().token(ADMIN if username == "admin" else username)

    def login(self, username: str) -> requests.Session:
        """A session signed in through the provider."""
        session = requests.Session()
        answer = sign_in(self.url, username, self.provider.passwords[username], session)
        if answer.status_code != 200 or not answer.url.startswith(f"{self.url}/hub/"):
            raise HubError(f"sign-in of {username} failed with {answer.status_code} at "
                           f"{answer.url}:\n{answer.text[:500]}\n{self.log_tail()}")
        session.headers["X-XSRFToken"] = session.cookies.get("_xsrf", domain="127.0.0.1") or ""
        return session

    def registry(self):
        """The registry the hub writes its audit events to."""
        from lnds_spe.projects import open_registry

        return open_registry(self.env["SPE_DATABASE_URL"])

    def audit_events(self, action: str, actor: str) -> list:
        """The audit events of this action by this person."""
        return [e for e in self.registry().audit.events() if e.action == action and e.actor == actor]


def _check_prerequisites() -> None:
    """Fail (never skip) naming what is missing."""
    if not shutil.which("node"):
        pytest.fail("node is missing: run ./run setup (scripts/engine-setup.sh installs nodejs)",
                    pytrace=False)
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail(f"oidc-provider is not installed in {PROVIDER_DIR}: run ./run setup",
                    pytrace=False)


@pytest.fixture(scope="module")
def provider(tmp_path_factory) -> Iterator[Provider]:
    """The OIDC provider on a free loopback port, its people and the hub's client."""
    _check_prerequisites()
    work = tmp_path_factory.mktemp("oidc")
    port, hub_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{port}"
    passwords = {name: f"{name}-{secrets.token_urlsafe(12)}" for name in PEOPLE}
    config = {
        "issuer": issuer, "port": port, "access_token_ttl": ACCESS_TOKEN_TTL_S,
        "cookie_key": secrets.token_hex(16),
        "clients": [{
            "client_id": "spe-hub", "client_secret": secrets.token_urlsafe(24),
            "redirect_uris": [f"http://127.0.0.1:{hub_port}/hub/oauth_callback"],
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_post",
        }],
        "users": {name: {**person, "password": passwords[name]} for name, person in PEOPLE.items()},
        "hub_port": hub_port,
    }
    config_path = work / "provider.json"
    config_path.write_text(json.dumps(config))
    log = open(work / "provider.log", "wb")  # noqa: SIM115 (open while the provider runs)
    process = subprocess.Popen(["node", str(PROVIDER_DIR / "provider.js"), str(config_path)],
                               cwd=PROVIDER_DIR, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{issuer}/.well-known/openid-configuration", timeout=2).ok:
                break
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the OIDC provider did not start:\n{(work / 'provider.log').read_text()}",
                        pytrace=False)
        time.sleep(0.2)
    yield Provider(issuer, config_path, process, passwords)
    process.terminate()
    process.wait(timeout=10)
    log.close()


def _seed_registry(url: str) -> None:
    """One project, alice its researcher, the workspace image allowed."""
    from lnds_spe.projects import open_registry

    registry = open_registry(url)
    today = date.today()
    registry.create_project(PROJECT, "Identity", today - timedelta(days=1), today + timedelta(days=30),
                            actor="test-setup", allowed_images=(IMAGE,))
    registry.add_member(PROJECT, "alice", "researcher", actor="test-setup")
    registry.engine.dispose()


@pytest.fixture(scope="module")
def oidc_hub(provider, tmp_path_factory) -> Iterator[OIDCHub]:
    """The SPE hub signing people in at the provider (MFA required), on a fresh registry."""
    state = tmp_path_factory.mktemp("identity-state")
    config = json.loads(provider.config_path.read_text())
    registry_url = f"sqlite:///{state / 'spe.sqlite'}"
    _seed_registry(registry_url)
    port = config["hub_port"]
    prefix = f"spei{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "SPE_DEMO_MODE": "0",  # not the demo, whatever the venv's settings file says
        "DOCKER_HOST": f"unix://{engine_socket()}",
        "SPE_STATE_DIR": str(state), "SPE_DATABASE_URL": registry_url,
        "SPE_HUB_BIND_URL": f"http://127.0.0.1:{port}", "SPE_HUB_API_PORT": str(free_port()),
        "SPE_PROXY_API_URL": f"http://127.0.0.1:{free_port()}",
        "SPE_AIRLOCK_PORT": str(free_port()), "SPE_CONTAINER_PREFIX": prefix,
        "SPE_WORKSPACE_IMAGE": IMAGE, "SPE_ADMIN_USERS": "",
        "SPE_AUTHENTICATOR": "oidc",
        "SPE_OIDC_ISSUER": provider.issuer,
        "SPE_OIDC_CLIENT_ID": config["clients"][0]["client_id"],
        "SPE_OIDC_CLIENT_SECRET": config["clients"][0]["client_secret"],
        "SPE_OIDC_ALLOWED_GROUPS": "idp-users",
        "SPE_OIDC_ADMIN_GROUPS": "idp-admins",
        "SPE_OIDC_CHECKER_GROUPS": "idp-checkers",
        "SPE_OIDC_REQUIRE_MFA": "1", "SPE_OIDC_MFA_ACR": MFA_ACR,
        "SPE_OIDC_REFRESH_AGE": str(REFRESH_AGE_S),
        "PYTHONPATH": str(ROOT),
    }
    hub = OIDCHub("identity", ROOT / "jupyterhub_config.py", f"http://127.0.0.1:{port}", env,
                  state, {}, provider=provider, prefix=prefix)
    launched(hub)
    yield hub
    hub.stop_all_servers()
    hub.stop()
    _remove_engine_objects(prefix)
    remove_firewall(network_name(prefix, PROJECT))
    remove_home_volumes(prefix)


def _remove_engine_objects(prefix: str) -> None:
    """Containers and networks this hub's prefix names, left by a failed test."""
    engine = shutil.which("podman")
    if engine is None:
        return
    for listing, remove in ((["ps", "-a", "--format", "{{.Names}}"], ["rm", "-f"]),
                            (["network", "ls", "--format", "{{.Name}}"], ["network", "rm", "-f"])):
        names = subprocess.run([engine, *listing], capture_output=True, text=True).stdout.split()
        ours = [name for name in names if name.startswith(prefix + "-")]
        if ours:
            subprocess.run([engine, *remove, *ours], capture_output=True)
