"""A1-A5: who may start, see and reach which workspace; lifecycle stops; image allow-list."""

from datetime import date, timedelta

import requests
from sqlalchemy import update

from .conftest import start_workspace


def audit_events(hub, action: str, project: str) -> list:
    """Audit events of one action about one project."""
    return [e for e in hub.registry().audit.query(project=project) if e.action == action]


def refused(answer: requests.Response) -> bool:
    """True if the hub refused a spawn request outright (4xx) rather than starting it."""
    return 400 <= answer.status_code < 500


def assert_refused_at_the_end(url: str, token: str) -> None:
    """Following every redirect with the person's token ends in a refusal, never the server."""
    answer = requests.get(url, timeout=30, headers={"Authorization": f"token {token}"})
    assert answer.status_code in (403, 404), (url, answer.status_code, answer.url)


def test_a1_non_member_cannot_start_see_or_reach(hub, ws_alice_pa):
    """A1: carol (not in pa) cannot start, list or reach a pa workspace, UI or API."""
    answer = hub.spawn("carol", "pa")
    assert refused(answer), answer.text
    assert "not a researcher of project pa" in answer.json()["message"]
    assert hub.server("carol", "pa") is None
    denied = audit_events(hub, "workspace.spawn_denied", "pa")
    assert any(e.actor == "carol" and "not a researcher" in e.details for e in denied)
    assert hub.call("carol", "GET", "/users/alice").status_code in (403, 404)
    token = hub.token("carol")
    assert_refused_at_the_end(f"{ws_alice_pa.base}/api/kernels", token)
    form = hub.login("carol").get(f"{hub.url}/hub/spawn/carol", timeout=30)
    assert form.status_code == 200
    assert 'value="pb"' in form.text and 'value="pa"' not in form.text


def test_a2_member_cannot_reach_another_members_workspace(hub, ws_alice_pa):
    """A2: bob (a researcher of pa) cannot reach alice's pa workspace."""
    token = hub.token("bob")
    for url in (f"{ws_alice_pa.base}/api/kernels", f"{ws_alice_pa.base}/lab"):
        assert_refused_at_the_end(url, token)
    assert hub.call("bob", "GET", "/users/alice").status_code in (403, 404)
    assert hub.call("bob", "DELETE", "/users/alice/servers/pa").status_code in (403, 404)
    assert hub.server("alice", "pa")["ready"]


def test_a3_expired_project_refuses_and_running_ones_stop(hub):
    """A3: past its end date a project refuses to spawn (reason shown); running ones stop."""
    answer = hub.spawn("erin", "pold")
    assert refused(answer)
    assert "ended on" in answer.json()["message"]
    page = hub.login("erin").post(f"{hub.url}/hub/spawn/erin/pold", timeout=60,
                                  data={"project": "pold"})
    assert "ended on" in page.text
    assert audit_events(hub, "workspace.spawn_denied", "pold")

    start_workspace(hub, "frank", "pc")
    registry = hub.registry()
    from lnds_spe.db import Project

    with registry.engine.begin() as conn:  # the calendar moves past the end date
        conn.execute(update(Project).where(Project.slug == "pc")
                     .values(end_date=date.today() - timedelta(days=1)))
    took = hub.wait_gone("frank", "pc", timeout=60)
    assert took < 60
    expired = audit_events(hub, "workspace.expire", "pc")
    assert len(expired) == 1 and "ended on" in expired[0].details
    assert expired[0].target == "frank"


def test_a4_removed_member_workspace_stops(hub):
    """A4: removing bob from pa stops his running pa workspace, with an audit event."""
    start_workspace(hub, "bob", "pa")
    hub.registry().remove_member("pa", "bob", actor="test-admin")
    try:
        hub.wait_gone("bob", "pa", timeout=60)
        expired = audit_events(hub, "workspace.expire", "pa")
        assert any(e.target == "bob" and "no longer a researcher" in e.details for e in expired)
        assert refused(hub.spawn("bob", "pa"))
    finally:  # the session's hub is shared: later tests (N9) need bob in pa again
        hub.registry().add_member("pa", "bob", "researcher", actor="test-admin")


def test_a5_image_not_on_allow_list_refused(hub):
    """A5: another image is refused through the REST API and through the form's user_options."""
    answer = hub.spawn("dave", "pd", image="unvetted-analysis-image:latest")
    assert refused(answer)
    assert "is not allowed for project pd" in answer.json()["message"]
    page = hub.login("dave").post(f"{hub.url}/hub/spawn/dave/pd", timeout=60,
                                  data={"project": "pd", "image": "localhost/spe-base:bookworm"})
    assert "is not allowed for project pd" in page.text
    assert hub.server("dave", "pd") is None
    denied = audit_events(hub, "workspace.spawn_denied", "pd")
    assert len(denied) == 2
