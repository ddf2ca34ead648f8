"""The admin console in a real browser on the demo hub: the SPE admin creates a project, adds
members and a dataset, is shown a refusal, and reads and exports the project's audit log. A
screenshot of each step goes to $SPE_E2E_ARTIFACTS/admin-console (default
test-artifacts/admin-console in the checkout)."""

import csv
import io
import os
from datetime import date, timedelta
from pathlib import Path

from lnds_spe.projects import open_registry

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("SPE_E2E_ARTIFACTS", ROOT / "test-artifacts")) / "admin-console"
LOCATION = "s3://spe-data/trial/visits.c4gh"


def test_admin_provisions_a_project_and_reads_its_audit_log(browser, demo_hub):
    url, accounts, state = demo_hub
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    shots = iter(range(1, 100))

    def shot(name: str) -> None:
        page.screenshot(path=str(ARTIFACTS / f"{next(shots):02d}-{name}.png"), full_page=True)

    page = browser.new_context(viewport={"width": 1400, "height": 900},
                               accept_downloads=True).new_page()
    page.goto(f"{url}/hub/login")
    page.fill("#username_input", "admin")
    page.fill("#password_input", accounts["passwords"]["admin"])
    page.click("#login_submit")
    page.wait_for_url(f"{url}/hub/**")
    page.click("#spe-admin-nav")  # the console's link in the hub's navigation bar
    page.wait_for_url(f"{url}/hub/spe-admin")
    assert page.locator("#spe-project-list tr[data-project='demo']").count() == 1
    shot("projects")

    start, end = date.today(), date.today() + timedelta(days=60)
    page.fill("#slug", "trial")
    page.fill("#title", "Vaccine trial follow-up")
    page.fill("#start", start.isoformat())
    page.fill("#end", end.isoformat())
    page.fill("#mem", "3G")
    page.click("#spe-create")
    page.wait_for_url(f"{url}/hub/spe-admin/projects/trial**")
    assert page.inner_text("#spe-done") == "created project trial"
    assert "3G memory" in page.inner_text("#spe-project-facts")
    shot("created")

    for user, role in (("alice", "researcher"), ("carol", "output_checker")):
        page.fill("#username", user)
        page.select_option("#role", role)
        page.click("#spe-member-add")
        page.wait_for_selector(f"#spe-members tr[data-member='{user}'][data-role='{role}']")
        assert page.inner_text("#spe-done") == f"{user} is now {role} of trial"
    shot("members")

    page.fill("#name", "visits")
    page.fill("#location", "/home/alice/visits.csv")
    page.click("#spe-dataset-add")
    page.wait_for_selector("#spe-error")
    assert "is not an encrypted object in a store" in page.inner_text("#spe-error")
    assert page.locator("#spe-datasets tr[data-dataset]").count() == 0
    shot("dataset-refused")
    page.fill("#name", "visits")
    page.fill("#location", LOCATION)
    page.click("#spe-dataset-add")
    page.wait_for_selector("#spe-datasets tr[data-dataset='visits']")
    assert page.inner_text("#spe-done") == "dataset visits registered to trial"
    shot("dataset")

    page.click("#spe-project-audit")
    page.wait_for_selector("#spe-audit-events")
    rows = page.locator("#spe-audit-events tbody tr")
    actions = [rows.nth(i).locator("td").nth(3).inner_text() for i in range(rows.count())]
    outcomes = [rows.nth(i).locator("td").nth(6).inner_text() for i in range(rows.count())]
    assert actions == ["project.create", "member.add", "member.add", "dataset.add", "dataset.add"]
    assert outcomes == ["ok", "ok", "ok", "denied", "ok"]
    shot("audit")
    page.fill("#user", "carol")
    page.click("#spe-audit-show")
    page.wait_for_selector("#spe-audit-count")
    assert page.inner_text("#spe-audit-count") == "1 events"
    with page.expect_download() as download:
        page.click("#spe-audit-csv")
    exported = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [(r["actor"], r["action"], r["target"]) for r in exported] == [
        ("admin", "member.add", "carol")]
    shot("audit-carol")

    registry = open_registry(f"sqlite:///{state / 'spe.sqlite'}")
    assert registry.roles_of("trial", "alice") == {"researcher"}
    assert [d.location for d in registry.datasets("trial")] == [LOCATION]
    registry.engine.dispose()
