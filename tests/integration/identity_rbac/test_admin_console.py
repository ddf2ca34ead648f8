"""The admin console's forms over HTTP against a real hub: changes land in the registry with the
CLI's audit events; refusals show the CLI's message, change nothing and are audited."""

import csv
import html
import io
from datetime import date, timedelta

import requests

from .conftest import PROJECT


def events(hub, action: str, project: str | None = None) -> list:
    registry = hub.registry()
    try:
        return [e for e in registry.audit.query(project=project) if e.action == action]
    finally:
        registry.engine.dispose()


def test_console_is_for_spe_admins_only(console_hub):
    """A researcher gets 403 on every console page; the SPE admin gets the pages."""
    alice = console_hub.login("alice")
    for path in ("", f"/projects/{PROJECT}", "/audit"):
        assert alice.get(f"{console_hub.console}{path}", timeout=30).status_code == 403, path
    refused = alice.post(console_hub.console, data={"slug": "sneaky", "title": "x",
                                                     "start": "2030-01-01", "end": "2030-02-01"},
                         timeout=30)
    assert refused.status_code == 403
    anonymous = requests.get(console_hub.console, timeout=30, allow_redirects=False)
    assert anonymous.status_code == 302 and "/hub/login" in anonymous.headers["Location"]
    page = console_hub.login("admin").get(console_hub.console, timeout=30)
    assert page.status_code == 200 and f'data-project="{PROJECT}"' in page.text
    home = alice.get(f"{console_hub.url}/hub/home", timeout=30)
    assert home.status_code == 200 and "spe-admin-nav" not in home.text
    assert "spe-admin-nav" in console_hub.login("admin").get(f"{console_hub.url}/hub/home",
                                                             timeout=30).text
    registry = console_hub.registry()
    assert "sneaky" not in [p.slug for p in registry.list_projects()]
    registry.engine.dispose()


def test_form_without_xsrf_is_refused(console_hub):
    """A cross-site POST (no _xsrf field) is refused by the hub and creates nothing."""
    admin = console_hub.login("admin")
    admin.headers.pop("X-XSRFToken")
    answer = admin.post(console_hub.console, timeout=30,
                        data={"slug": "forged", "title": "F", "start": "2030-01-01",
                              "end": "2030-02-01"})
    assert answer.status_code == 403
    registry = console_hub.registry()
    assert "forged" not in [p.slug for p in registry.list_projects()]
    registry.engine.dispose()


def test_create_project_add_member_dataset_and_status(console_hub):
    """Create, add a member and a dataset, suspend and resume: each change audited, by admin."""
    admin = console_hub.login("admin")
    start, end = date.today(), date.today() + timedelta(days=90)
    created = console_hub.post_form(admin, "", {
        "slug": "health", "title": "Health survey", "start": start.isoformat(),
        "end": end.isoformat(), "cpu": "1.5", "mem": "3G", "pids": "400", "image": "",
        "home_quota": "2G", "outputs_quota": "3G"})
    assert created.status_code == 200, created.text[:500]
    assert created.url.endswith("/hub/spe-admin/projects/health?created=1")
    assert "created project health" in created.text
    added = console_hub.post_form(admin, "/projects/health",
                                  {"op": "member-add", "username": "bob", "role": "researcher"})
    assert "bob is now researcher of health" in added.text
    attached = console_hub.post_form(admin, "/projects/health", {
        "op": "dataset-add", "name": "survey", "location": "s3://bucket/health/survey.c4gh",
        "sha256": "ab" * 32, "size": "123"})
    assert "dataset survey registered to health" in attached.text
    suspended = console_hub.post_form(admin, "/projects/health", {"op": "suspend"})
    assert "project health is now suspended" in suspended.text
    resumed = console_hub.post_form(admin, "/projects/health", {"op": "resume"})
    assert "project health is now active" in resumed.text
    quotas = console_hub.post_form(admin, "/projects/health", {"op": "quotas", "home_quota": "",
                                                               "outputs_quota": "4G"})
    assert "project health: home quota 2G, outputs quota 4G" in quotas.text

    registry = console_hub.registry()
    info = registry.get_project("health")
    assert (info.cpu_limit, info.mem_limit, info.pids_limit) == (1.5, "3G", 400)
    assert (info.home_quota, info.outputs_quota) == ("2G", "4G")
    assert registry.roles_of("health", "bob") == {"researcher"}
    assert [d.location for d in registry.datasets("health")] == ["s3://bucket/health/survey.c4gh"]
    actions = [(e.action, e.actor, e.outcome) for e in registry.audit.query(project="health")]
    registry.engine.dispose()
    assert actions == [("project.create", "admin", "ok"), ("member.add", "admin", "ok"),
                       ("dataset.add", "admin", "ok"), ("project.status", "admin", "ok"),
                       ("project.status", "admin", "ok"), ("project.quota", "admin", "ok")]


def test_refusals_show_the_cli_message_change_nothing_and_are_audited(console_hub):
    """Bad dates, a bad limit, an unknown role, a bad location: one message each, 400, audited."""
    admin = console_hub.login("admin")
    registry = console_hub.registry()
    before = registry.list_projects()
    cases = [
        ("", {"slug": "late", "title": "T", "start": "2030-02-01", "end": "2030-01-01"},
         "end date 2030-01-01 is before start date 2030-02-01"),
        ("", {"slug": "cpu", "title": "T", "start": "2030-01-01", "end": "2030-02-01",
              "cpu": "lots"}, "invalid cpu 'lots'"),
        ("", {"slug": "Bad Slug", "title": "T", "start": "2030-01-01", "end": "2030-02-01"},
         "invalid project slug 'Bad Slug'"),
        (f"/projects/{PROJECT}", {"op": "member-add", "username": "eve", "role": "boss"},
         "unknown role 'boss'"),
        (f"/projects/{PROJECT}", {"op": "dataset-add", "name": "x", "location": "/etc/passwd"},
         "dataset location '/etc/passwd' is not an encrypted object in a store"),
        (f"/projects/{PROJECT}", {"op": "close", "confirm": ""}, "closing is final"),
        (f"/projects/{PROJECT}", {"op": "quotas"}, "nothing to change"),
    ]
    denied_before = sum(1 for e in registry.audit.query() if e.outcome == "denied")
    for path, form, message in cases:
        answer = console_hub.post_form(admin, path, form)
        assert answer.status_code == 400, (form, answer.status_code)
        assert message in html.unescape(answer.text), message
    assert registry.list_projects() == before
    assert registry.roles_of(PROJECT, "eve") == set()
    assert registry.datasets(PROJECT) == []
    denied = [e for e in registry.audit.query() if e.outcome == "denied"]
    registry.engine.dispose()
    assert len(denied) - denied_before == len(cases)
    assert all(e.actor == "admin" for e in denied[-len(cases):])


def test_audit_view_filters_and_exports_csv(console_hub):
    """The audit page filters by project, person and dates as `spe audit query` does; CSV too."""
    admin = console_hub.login("admin")
    page = admin.get(f"{console_hub.console}/audit", params={"project": PROJECT, "user": "alice"},
                     timeout=30)
    assert page.status_code == 200
    assert "member.add" in page.text and "1 events" in page.text
    today = date.today().isoformat()
    exported = admin.get(f"{console_hub.console}/audit", timeout=30, params={
        "project": PROJECT, "since": today, "until": today, "format": "csv"})
    assert exported.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    added = {r["target"] for r in rows if r["action"] == "member.add" and r["outcome"] == "ok"}
    assert added == {"alice", "carol", "pat"}
    assert all(r["project"] == PROJECT for r in rows)
    none = admin.get(f"{console_hub.console}/audit", timeout=30,
                     params={"project": PROJECT, "until": "2000-01-01", "format": "csv"})
    assert none.text.splitlines() == ["seq,time,actor,action,project,target,outcome,details"]
    bad = admin.get(f"{console_hub.console}/audit", params={"since": "yesterday"}, timeout=30)
    assert bad.status_code == 400
    assert "invalid --since 'yesterday': use YYYY-MM-DD or YYYY-MM-DDTHH:MM" in html.unescape(bad.text)


def test_close_project_from_console(console_hub):
    """Closing (confirmed) is final and audited; resuming it afterwards is refused."""
    admin = console_hub.login("admin")
    today = date.today()
    console_hub.post_form(admin, "", {"slug": "closing", "title": "C", "start": today.isoformat(),
                                      "end": (today + timedelta(days=5)).isoformat()})
    closed = console_hub.post_form(admin, "/projects/closing",
                                   {"op": "close", "confirm": "close", "outputs": "delete"})
    assert "project closing is now closed; outputs deleted (or none)" in closed.text
    again = console_hub.post_form(admin, "/projects/closing", {"op": "resume"})
    assert again.status_code == 400
    assert "a closed project cannot become active" in html.unescape(again.text)
    statuses = [(e.outcome, e.details) for e in events(console_hub, "project.status", "closing")]
    assert [o for o, _ in statuses] == ["ok", "denied"]
