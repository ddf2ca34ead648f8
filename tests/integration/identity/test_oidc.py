"""OIDC sign-in against a real provider (oidc-provider on loopback): the full code flow over HTTP
and in Chromium, groups to roles, the multi-factor claim, refresh of expired tokens, and access
ended (workspaces stopped) when the provider removes or blocks a person."""

import shutil
import time

import pytest
import requests

from tests.integration.identity.conftest import (
    ACCESS_TOKEN_TTL_S,
    IMAGE,
    PROJECT,
    REFRESH_AGE_S,
    sign_in,
)

pytestmark = pytest.mark.integration


def user_model(hub, name: str) -> dict:
    """The hub's model of a person (asked by the admin), auth_state included."""
    answer = hub.call("admin", "GET", f"/users/{name}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_groups_claim_maps_to_admin_checker_and_hub_groups(oidc_hub):
    for name in ("alice", "bob", "carol"):
        oidc_hub.token(name)  # a full code flow with PKCE each
    alice, bob, carol = (user_model(oidc_hub, name) for name in ("alice", "bob", "carol"))
    assert alice["groups"] == ["idp-users"]
    assert sorted(bob["groups"]) == ["idp-checkers", "idp-users", "output-checkers"]
    assert sorted(carol["groups"]) == ["idp-admins", "idp-users", "spe-admins"]
    assert not carol["admin"]  # SPE admins are never JupyterHub admins (lnds_spe/hub/roles.py)
    # the checker group reaches the airlock's checker role; the admin group the airlock admin's
    scopes = {name: set(oidc_hub.call(name, "GET", "/user").json()["scopes"])
              for name in ("alice", "bob", "carol")}
    assert "custom:airlock:review" in scopes["bob"] - scopes["alice"]
    assert {"custom:airlock:admin", "custom:spe:admin", "admin:users"} <= scopes["carol"]
    assert not {"custom:airlock:admin", "custom:spe:admin"} & (scopes["alice"] | scopes["bob"])
    assert oidc_hub.audit_events("auth.login", "carol")[-1].outcome == "ok"


def test_a_person_in_no_spe_group_is_refused_and_audited(oidc_hub, provider):
    answer = sign_in(oidc_hub.url, "dave", provider.passwords["dave"])
    assert answer.status_code == 403
    assert "none of the groups allowed to use the SPE (idp-users)" in answer.text
    (refusal,) = oidc_hub.audit_events("auth.login_refused", "dave")
    assert refusal.outcome == "denied" and "idp-users" in refusal.details
    assert user_model(oidc_hub, "alice")  # the hub still answers; dave has no user
    assert oidc_hub.call("admin", "GET", "/users/dave").status_code == 404


def test_sign_in_without_a_second_factor_is_refused(oidc_hub, provider):
    refused = sign_in(oidc_hub.url, "frank", provider.passwords["frank"])
    assert refused.status_code == 403 and "multi-factor" in refused.text
    assert oidc_hub.audit_events("auth.login_refused", "frank")
    # amr ["pwd", "otp"] proves it as well as the acr value does
    allowed = sign_in(oidc_hub.url, "erin", provider.passwords["erin"])
    assert allowed.status_code == 200 and allowed.url.endswith("/hub/home"), allowed.url


def test_wrong_password_at_the_provider_never_reaches_the_hub(oidc_hub, provider):
    answer = sign_in(oidc_hub.url, "alice", provider.passwords["bob"])
    assert "wrong user name or password" in answer.text
    assert not answer.url.startswith(oidc_hub.url)


def test_expired_access_token_is_refreshed_and_the_person_stays_in(oidc_hub, provider):
    session = oidc_hub.login("erin")
    first = user_model(oidc_hub, "erin")["auth_state"]["access_token"]
    time.sleep(ACCESS_TOKEN_TTL_S + REFRESH_AGE_S)
    home = session.get(f"{oidc_hub.url}/hub/home", timeout=30)
    assert home.status_code == 200 and home.url.endswith("/hub/home")
    second = user_model(oidc_hub, "erin")["auth_state"]["access_token"]
    assert second != first  # userinfo refused the expired token; the refresh token made a new one
    assert not oidc_hub.audit_events("auth.access_revoked", "erin")


def start_alices_workspace(hub) -> tuple[requests.Session, str]:
    """alice signs in and starts her workspace of PROJECT: (her session, its container's name)."""
    session = hub.login("alice")
    started = session.post(f"{hub.api}/users/alice/servers/{PROJECT}",
                           json={"project": PROJECT, "image": IMAGE}, timeout=60)
    assert started.status_code in (201, 202), started.text
    deadline = time.monotonic() + 180
    while not (hub.server("alice", PROJECT) or {}).get("ready"):
        assert time.monotonic() < deadline, f"workspace not ready:\n{hub.log_tail()}"
        time.sleep(1)
    container = f"{hub.prefix}-alice--{PROJECT}"
    assert _container_running(container)
    return session, container


def test_removal_from_the_group_ends_access_and_stops_the_workspace(oidc_hub, provider):
    session, container = start_alices_workspace(oidc_hub)

    provider.change("alice", groups=["former-staff"])
    time.sleep(REFRESH_AGE_S + 0.5)
    answer = session.get(f"{oidc_hub.url}/hub/home", timeout=120, allow_redirects=False)
    assert answer.status_code == 302 and "/hub/login" in answer.headers["Location"]
    assert oidc_hub.server("alice", PROJECT) is None
    assert not _container_running(container)
    revoked = oidc_hub.audit_events("auth.access_revoked", "alice")[-1]
    assert PROJECT in revoked.details and "idp-users" in revoked.details
    # and signing in again is refused
    again = sign_in(oidc_hub.url, "alice", provider.passwords["alice"])
    assert again.status_code == 403
    provider.change("alice", groups=["idp-users"])  # back, for the next test


def test_a_refused_sign_in_stops_the_persons_running_workspace(oidc_hub, provider):
    _, container = start_alices_workspace(oidc_hub)
    provider.change("alice", groups=["former-staff"])
    refused = sign_in(oidc_hub.url, "alice", provider.passwords["alice"])  # a new browser
    assert refused.status_code == 403 and "none of the groups" in refused.text
    assert oidc_hub.server("alice", PROJECT) is None
    assert not _container_running(container)
    revoked = oidc_hub.audit_events("auth.access_revoked", "alice")[-1]
    assert PROJECT in revoked.details
    provider.change("alice", groups=["idp-users"])


def test_a_person_blocked_at_the_provider_loses_the_session(oidc_hub, provider):
    token = oidc_hub.token("bob")
    assert oidc_hub.call("bob", "GET", "/user").status_code == 200
    provider.change("bob", blocked=True)
    time.sleep(REFRESH_AGE_S + 0.5)
    answer = requests.get(f"{oidc_hub.api}/user", headers={"Authorization": f"token {token}"},
                          timeout=60)
    assert answer.status_code == 403, answer.text  # a token cannot be sent to log in again
    (revoked,) = oidc_hub.audit_events("auth.access_revoked", "bob")
    assert "no longer accepts" in revoked.details


def test_full_redirect_flow_in_chromium_and_sign_out_is_audited(oidc_hub, provider):
    from playwright.sync_api import sync_playwright

    from tests.e2e.conftest import CHROMIUM_FLAGS

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is missing: run ./run setup", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        page = browser.new_context().new_page()
        page.goto(f"{oidc_hub.url}/hub/oauth_login")
        page.fill("#username", "erin")
        page.fill("#password", provider.passwords["erin"])
        page.click("#login")
        page.wait_for_url(f"{oidc_hub.url}/hub/home")
        assert "erin" in page.content()
        page.goto(f"{oidc_hub.url}/hub/logout")
        page.goto(f"{oidc_hub.url}/hub/home")
        assert "/hub/login" in page.url
        refused = browser.new_context().new_page()
        refused.goto(f"{oidc_hub.url}/hub/oauth_login")
        refused.fill("#username", "dave")
        refused.fill("#password", provider.passwords["dave"])
        refused.click("#login")
        refused.wait_for_load_state()
        assert "none of the groups allowed" in refused.content()
        browser.close()
    assert oidc_hub.audit_events("auth.logout", "erin")


def _container_running(name: str) -> bool:
    """Whether the engine runs a container of this name."""
    import subprocess

    listed = subprocess.run(["podman", "ps", "--format", "{{.Names}}"], capture_output=True,
                            text=True, timeout=60)
    return name in listed.stdout.split()


def test_a1_to_a4_hold_for_people_signed_in_through_the_provider(oidc_hub, provider):
    """A1-A4 with people the provider signs in: membership still comes from the registry."""
    from datetime import date, timedelta

    _, container = start_alices_workspace(oidc_hub)
    erin = oidc_hub.login("erin")  # in the SPE's group, with MFA, but no member of PROJECT
    alices = f"{oidc_hub.url}/user/alice/{PROJECT}/api/kernels"

    # A1: no member cannot start, see or reach PROJECT's workspace
    started = erin.post(f"{oidc_hub.api}/users/erin/servers/{PROJECT}",
                        json={"project": PROJECT, "image": IMAGE}, timeout=60)
    assert 400 <= started.status_code < 500 and "not a researcher" in started.text
    assert oidc_hub.server("erin", PROJECT) is None
    assert any(e.project == PROJECT for e in oidc_hub.audit_events("workspace.spawn_denied", "erin"))
    assert erin.get(f"{oidc_hub.api}/users/alice", timeout=30).status_code in (403, 404)
    assert erin.get(alices, timeout=30).status_code in (403, 404)  # every redirect followed

    # A2: a member cannot reach another member's workspace
    registry = oidc_hub.registry()
    registry.add_member(PROJECT, "erin", "researcher", actor="test-admin")
    assert erin.get(alices, timeout=30).status_code in (403, 404)  # every redirect followed
    assert erin.delete(f"{oidc_hub.api}/users/alice/servers/{PROJECT}",
                       timeout=30).status_code in (403, 404)

    # A3: a project past its end date refuses, with the reason
    today = date.today()
    registry.create_project("idpold", "Ended", today - timedelta(days=60),
                            today - timedelta(days=1), actor="test-admin", allowed_images=(IMAGE,))
    registry.add_member("idpold", "erin", "researcher", actor="test-admin")
    ended = erin.post(f"{oidc_hub.api}/users/erin/servers/idpold",
                      json={"project": "idpold", "image": IMAGE}, timeout=60)
    assert 400 <= ended.status_code < 500 and "ended on" in ended.text

    # A4: removing the member stops their running workspace
    registry.remove_member(PROJECT, "alice", actor="test-admin")
    deadline = time.monotonic() + 90
    while oidc_hub.server("alice", PROJECT) is not None or _container_running(container):
        assert time.monotonic() < deadline, f"alice's workspace still runs:\n{oidc_hub.log_tail()}"
        time.sleep(2)
    registry.add_member(PROJECT, "alice", "researcher", actor="test-admin")
    registry.remove_member(PROJECT, "erin", actor="test-admin")
