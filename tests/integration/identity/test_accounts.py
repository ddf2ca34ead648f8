"""Per-person accounts without an OIDC provider (NativeAuthenticator): a real hub in demo mode
with the demo's accounts, one password each; and no shared password outside demo mode."""

import json
import os
import re
import uuid
from collections.abc import Iterator

import pytest
import requests

from lnds_spe.projects import open_registry
from tests.integration.identity.conftest import ROOT
from tests.support.hubs import HubError, HubProcess, demo_accounts, free_port, launched

pytestmark = pytest.mark.integration

PEOPLE = ["alice", "bob", "admin"]


def hub_env(state, **settings) -> dict:
    """The environment of a hub on free loopback ports with its own state and registry."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("SPE_")},
            "SPE_STATE_DIR": str(state), "SPE_DATABASE_URL": f"sqlite:///{state / 'spe.sqlite'}",
            "SPE_HUB_BIND_URL": f"http://127.0.0.1:{free_port()}",
            "SPE_HUB_API_PORT": str(free_port()),
            "SPE_PROXY_API_URL": f"http://127.0.0.1:{free_port()}",
            "SPE_AIRLOCK_PORT": str(free_port()),
            "SPE_CONTAINER_PREFIX": f"spen{uuid.uuid4().hex[:6]}", "PYTHONPATH": str(ROOT),
            "SPE_DEMO_MODE": "0",  # not the demo, whatever the venv's settings file says
            **settings}


@pytest.fixture(scope="module")
def accounts_hub(tmp_path_factory) -> Iterator[HubProcess]:
    """A demo-mode hub whose accounts are alice, bob and admin, each with a password of their own."""
    state = tmp_path_factory.mktemp("accounts-state")
    open_registry(f"sqlite:///{state / 'spe.sqlite'}").engine.dispose()
    passwords = demo_accounts(state, PEOPLE)
    env = hub_env(state, SPE_DEMO_MODE="1")
    hub = HubProcess("accounts", ROOT / "jupyterhub_config.py", env["SPE_HUB_BIND_URL"], env, state,
                     passwords)
    launched(hub)
    yield hub
    hub.stop()


def post_login(hub: HubProcess, username: str, password: str) -> tuple[requests.Session, requests.Response]:
    """The login form posted as a browser does; (session, answer)."""
    session = requests.Session()
    page = session.get(f"{hub.url}/hub/login", timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    answer = session.post(f"{hub.url}/hub/login?next=", allow_redirects=False, timeout=30,
                          data={"username": username, "password": password, "_xsrf": xsrf})
    return session, answer


def audit(hub: HubProcess, action: str, actor: str) -> list:
    """The audit events of this action by this person."""
    registry = open_registry(hub.env["SPE_DATABASE_URL"])
    return [e for e in registry.audit.events() if e.action == action and e.actor == actor]


def test_another_persons_password_is_refused_and_audited(accounts_hub):
    _, answer = post_login(accounts_hub, "alice", accounts_hub.passwords["bob"])
    assert answer.status_code == 200 and "Invalid user name, password" in answer.text
    assert "jupyterhub-session-id" not in answer.cookies
    (failed,) = audit(accounts_hub, "auth.login_failed", "alice")
    assert failed.outcome == "denied"
    _, own = post_login(accounts_hub, "alice", accounts_hub.passwords["alice"])
    assert own.status_code == 302 and own.headers["Location"].endswith("/hub/home")
    assert audit(accounts_hub, "auth.login", "alice")


def test_an_unknown_name_cannot_sign_in_with_any_password(accounts_hub):
    for password in accounts_hub.passwords.values():
        _, answer = post_login(accounts_hub, "mallory", password)
        assert answer.status_code == 200, answer.headers
    assert len(audit(accounts_hub, "auth.login_failed", "mallory")) == len(accounts_hub.passwords)


def test_sign_out_is_audited(accounts_hub):
    session, _ = post_login(accounts_hub, "bob", accounts_hub.passwords["bob"])
    session.get(f"{accounts_hub.url}/hub/logout", timeout=30)
    assert audit(accounts_hub, "auth.logout", "bob")
    home = session.get(f"{accounts_hub.url}/hub/home", allow_redirects=False, timeout=30)
    assert home.status_code == 302 and "/hub/login" in home.headers["Location"]


def test_only_an_admin_creates_accounts(accounts_hub):
    alice = accounts_hub.login("alice")
    assert alice.get(f"{accounts_hub.url}/hub/signup", timeout=30).status_code == 403
    admin = accounts_hub.login("admin")
    page = admin.get(f"{accounts_hub.url}/hub/signup", timeout=30)
    assert page.status_code == 200, page.text[:300]
    password = "carol-" + uuid.uuid4().hex
    made = admin.post(f"{accounts_hub.url}/hub/signup", timeout=30,
                      data={"username": "carol", "signup_password": password,
                            "signup_password_confirmation": password,
                            "_xsrf": admin.cookies.get("_xsrf")})
    assert made.status_code == 200, made.text[:300]
    _, answer = post_login(accounts_hub, "carol", password)
    assert answer.status_code == 302  # authorized at once: an admin made it
    anonymous = requests.get(f"{accounts_hub.url}/hub/signup", allow_redirects=False, timeout=30)
    assert anonymous.status_code in (302, 403)


def test_hub_refuses_a_shared_password_outside_demo_mode(tmp_path):
    shared = "one-password-for-everyone"
    env = hub_env(tmp_path, SPE_AUTHENTICATOR="shared-password", SPE_SHARED_PASSWORD=shared)
    hub = HubProcess("shared", ROOT / "jupyterhub_config.py", env["SPE_HUB_BIND_URL"], env,
                     tmp_path, {})
    hub.launch()
    try:
        with pytest.raises(HubError, match="exited"):
            hub.wait_up(60)
    finally:
        hub.stop()
    log = hub.log_path.read_text()
    assert "SPE_AUTHENTICATOR=shared-password" in log and "SPE_DEMO_MODE=1" in log
    # the same hub in explicit demo mode starts, and the shared password signs anyone in
    demo = HubProcess("shared-demo", hub.config, hub.url, {**env, "SPE_DEMO_MODE": "1"}, tmp_path,
                      {"anyone": shared})
    demo.launch()
    try:
        demo.wait_up()
        assert demo.login("anyone")
    finally:
        demo.stop()


def test_outside_demo_mode_the_first_admin_comes_from_a_private_accounts_file(tmp_path):
    open_registry(f"sqlite:///{tmp_path / 'spe.sqlite'}").engine.dispose()
    accounts = tmp_path / "first-accounts.json"
    accounts.write_text(json.dumps({"passwords": {"admin": "first-" + uuid.uuid4().hex}}))
    accounts.chmod(0o644)
    env = hub_env(tmp_path, SPE_ACCOUNTS_FILE=str(accounts))
    hub = HubProcess("first-admin", ROOT / "jupyterhub_config.py", env["SPE_HUB_BIND_URL"], env,
                     tmp_path, json.loads(accounts.read_text())["passwords"])
    hub.launch()
    try:
        with pytest.raises(HubError, match="exited"):
            hub.wait_up(60)
    finally:
        hub.stop()
    assert f"{accounts} holds passwords and others may read it: chmod 600 it" in hub.log_tail(80)
    accounts.chmod(0o600)
    hub.launch()
    try:
        hub.wait_up()
        assert hub.login("admin")
        assert audit(hub, "auth.login", "admin")
    finally:
        hub.stop()
