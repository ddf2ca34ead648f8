"""Least privilege against a real hub with real tokens: each role's allowed and refused REST calls,
and A7: the SPE admin, with no project role, cannot open, proxy to or share a researcher's running
workspace (a real container), though they can see and stop it."""

import subprocess
import time
from collections.abc import Iterator

import pytest
import requests

from lnds_spe.hub.roles import SCOPE_SPE_ADMIN, SYNC_EVERY
from tests.support.engine import remove_home_volumes

from .conftest import PROJECT, ConsoleHub, start_hub


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> Iterator[ConsoleHub]:
    state = tmp_path_factory.mktemp("rbac")
    running = start_hub(state, f"sqlite:///{state / 'spe.sqlite'}")
    yield running
    running.stop_all_servers()
    running.stop()
    subprocess.run([str(running.config.parent / "scripts" / "hub.sh"), "down"], env=running.env,
                   capture_output=True, timeout=180)
    remove_home_volumes(running.env["SPE_CONTAINER_PREFIX"])


@pytest.fixture(scope="module")
def workspace(hub) -> str:
    """alice's census workspace, running (a real locked-down container); its URL."""
    answer = hub.call("alice", "POST", f"/users/alice/servers/{PROJECT}", json={})
    assert answer.status_code in (201, 202), answer.text
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        model = hub.server("alice", PROJECT)
        if model and model.get("ready"):
            return f"{hub.url}/user/alice/{PROJECT}"
        time.sleep(1)
    pytest.fail(f"alice's {PROJECT} workspace did not start:\n{hub.log_tail(60)}", pytrace=False)


def own_scopes(hub, user: str) -> set[str]:
    answer = hub.call(user, "GET", "/user")
    assert answer.status_code == 200, answer.text
    return set(answer.json()["scopes"])


def test_nobody_is_a_jupyterhub_admin(hub):
    """The SPE admin holds spe-admin, not JupyterHub's admin role (which has access:servers)."""
    model = hub.call("admin", "GET", "/user").json()
    assert model["admin"] is False
    assert "spe-admin" in model["roles"] and "admin" not in model["roles"]
    scopes = own_scopes(hub, "admin")
    assert SCOPE_SPE_ADMIN in scopes and "admin:users" in scopes
    assert not {"access:servers", "shares", "tokens", "admin:servers"} & scopes


def test_a7_admin_cannot_open_proxy_to_or_share_a_researchers_workspace(hub, workspace):
    """A7, with alice's own token reaching the same URLs as the positive control."""
    alice = {"Authorization": f"token {hub.token('alice')}"}
    admin = {"Authorization": f"token {hub.token('admin')}"}
    assert requests.get(f"{workspace}/api/kernels", headers=alice, timeout=30).status_code == 200
    for path in ("/api/kernels", "/api/contents", "/lab"):
        answer = requests.get(f"{workspace}{path}", headers=admin, timeout=30,
                              allow_redirects=False)
        assert answer.status_code == 403, (path, answer.status_code)
    # In the browser: the admin's hub login does not open the workspace (OAuth refuses).
    browser = hub.login("admin")
    page = browser.get(f"{workspace}/lab", timeout=60)
    assert page.status_code == 403 and "/lab" not in page.url.split("?")[0].rsplit("/user/", 1)[0]
    # Sharing: neither a direct share nor a share code, not even to themself.
    for method, path, body in (("POST", f"/shares/alice/{PROJECT}", {"user": "admin"}),
                               ("POST", f"/share-codes/alice/{PROJECT}", {}),
                               ("GET", f"/shares/alice/{PROJECT}", None)):
        answer = hub.call("admin", method, path, json=body)
        assert answer.status_code in (403, 404), (path, answer.status_code, answer.text)
    # Nor by making a token as alice, or making themself a JupyterHub admin.
    assert hub.call("admin", "POST", "/users/alice/tokens", json={}).status_code == 403
    assert hub.call("admin", "PATCH", "/users/admin", json={"admin": True}).status_code == 403
    started = hub.call("admin", "POST", f"/users/alice/servers/{PROJECT}x", json={})
    assert started.status_code in (403, 404), started.text
    assert requests.get(f"{workspace}/api/kernels", headers=alice, timeout=30).status_code == 200


def test_researcher_reaches_only_their_own(hub, workspace):
    """alice: her own model and servers; nobody else's, no user list, no sharing, no console."""
    assert hub.call("alice", "GET", "/users/alice").status_code == 200
    assert hub.call("alice", "GET", "/users/carol").status_code == 404
    assert hub.call("alice", "GET", "/users").status_code == 403
    assert hub.call("alice", "POST", f"/shares/alice/{PROJECT}",
                    json={"user": "bob"}).status_code == 403
    assert hub.call("alice", "POST", "/users", json={"usernames": ["mallory"]}).status_code == 403
    assert hub.login("alice").get(hub.console, timeout=30).status_code == 403
    bob = {"Authorization": f"token {hub.token('bob')}"}
    assert requests.get(f"{workspace}/api/kernels", headers=bob, timeout=30,
                        allow_redirects=False).status_code == 403


def test_output_checker_holds_review_not_researchers_servers(hub, workspace):
    """carol: the airlock review scope (and her own review server); no access to alice's."""
    scopes = own_scopes(hub, "carol")
    assert "custom:airlock:review" in scopes and "access:servers" not in scopes
    carol = {"Authorization": f"token {hub.token('carol')}"}
    assert requests.get(f"{workspace}/api/kernels", headers=carol, timeout=30,
                        allow_redirects=False).status_code == 403
    assert hub.call("carol", "GET", "/users/alice").status_code == 404
    assert hub.call("carol", "DELETE", f"/users/alice/servers/{PROJECT}").status_code in (403, 404)


def test_spe_admin_manages_users_and_sees_servers(hub, workspace):
    """The admin lists users, creates one, reads alice's server."""
    assert hub.call("admin", "GET", "/users").status_code == 200
    created = hub.call("admin", "POST", "/users", json={"usernames": ["newcomer"]})
    assert created.status_code == 201, created.text
    assert hub.call("admin", "GET", "/users/alice").json()["servers"][PROJECT]["ready"]


def test_project_admin_sees_and_stops_only_their_projects_servers(hub, workspace):
    """pat (project_admin of census) reads and stops alice's census server, cannot open it, and
    sees nobody outside the project's group; the role arrives by the hub's periodic sync."""
    hub.token("pat")  # pat signs in once, so the hub knows the user the role is granted to
    wanted = f"read:servers!group=project-{PROJECT}"
    deadline = time.monotonic() + SYNC_EVERY + 15
    while wanted not in own_scopes(hub, "pat") and time.monotonic() < deadline:
        time.sleep(2)
    scopes = own_scopes(hub, "pat")
    assert {wanted, f"delete:servers!group=project-{PROJECT}"} <= scopes
    assert not any(s.startswith("access:servers!group") for s in scopes)
    pat = {"Authorization": f"token {hub.token('pat')}"}
    assert requests.get(f"{workspace}/api/kernels", headers=pat, timeout=30,
                        allow_redirects=False).status_code == 403
    assert hub.call("pat", "GET", "/users/alice").json()["servers"][PROJECT]["ready"]
    assert hub.call("pat", "GET", "/users/carol").status_code == 404
    assert hub.call("pat", "POST", f"/shares/alice/{PROJECT}", json={"user": "pat"}).status_code \
        in (403, 404)
    stopped = hub.call("pat", "DELETE", f"/users/alice/servers/{PROJECT}")
    assert stopped.status_code in (202, 204), stopped.text
    deadline = time.monotonic() + 90
    while hub.server("alice", PROJECT) is not None and time.monotonic() < deadline:
        time.sleep(1)
    assert hub.server("alice", PROJECT) is None
