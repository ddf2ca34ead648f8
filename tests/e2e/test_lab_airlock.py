"""The airlock inside JupyterLab, in a real browser, through the real hub, real workspaces and
the real airlock service: alice writes a table to ~/outputs from a notebook and requests its export
through the extension; carol and dave review it in their review servers and return it with a
comment; alice replaces the file and resubmits; both approve, dave releases; alice downloads the
bundle from the hub. A screenshot of each step goes to $SPE_E2E_ARTIFACTS/lab-airlock (default
test-artifacts/lab-airlock in the checkout)."""

import io
import json
import os
import zipfile
from pathlib import Path

from lnds_spe.projects import open_registry

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("SPE_E2E_ARTIFACTS", ROOT / "test-artifacts")) / "lab-airlock"
SPAWN_TIMEOUT = 240_000
FIRST = "import pandas as pd; pd.DataFrame({'region': ['North', 'South', 'East'], 'F': [12, 3, 30], " \
        "'M': [15, 20, 31]}).to_csv('outputs/table.csv', index=False); print('written')"
SECOND = "pd.DataFrame({'region': ['North', 'South+East'], 'F': [12, 33], 'M': [15, 51]})" \
         ".to_csv('outputs/table.csv', index=False); print('rewritten')"
SECOND_CSV = "region,F,M\nNorth,12,15\nSouth+East,33,51\n"


class Steps:
    """Numbered screenshots of the journey, one per step, in the artifacts folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.count = 0
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png"):
            old.unlink()

    def shot(self, page, name: str) -> None:
        self.count += 1
        page.screenshot(path=str(self.folder / f"{self.count:02d}-{name}.png"), full_page=True)


def log_in(browser, url: str, user: str, password: str):
    """A fresh browser context logged into the hub as `user`, on the home page."""
    page = browser.new_context(viewport={"width": 1400, "height": 900},
                               accept_downloads=True).new_page()
    page.goto(f"{url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_url(f"{url}/hub/**")
    return page


def start_server(page, url: str, user: str, server: str) -> None:
    """Start a named server from the home page and wait for JupyterLab."""
    page.goto(f"{url}/hub/home")
    page.click(f"#start-{server}")
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url(f"{url}/user/{user}/{server}/lab**", timeout=SPAWN_TIMEOUT)
    page.wait_for_selector(".jp-LabShell", timeout=120_000)


def run_cell(page, code: str, expect: str) -> None:
    """Type code into the notebook's last cell, run it, wait for its output."""
    cell = page.locator(".jp-Cell .cm-content").last
    cell.click()
    page.keyboard.type(code)
    page.keyboard.press("Shift+Enter")
    page.locator(".jp-OutputArea-output", has_text=expect).wait_for(timeout=120_000)


def idle(page) -> None:
    """Wait until the airlock panel has no call in flight."""
    page.wait_for_selector(".lnds-airlock-panel:not(.lnds-airlock-busy)")


def open_request(page, request_id: str, round_: int, keyboard: bool = False) -> None:
    """In the review panel: refresh the queue and open one request in its given review round
    (with the keyboard: focus its Open button and press Enter)."""
    page.click("#lnds-review-refresh")
    idle(page)
    opener = page.locator(f"#lnds-review-queue tr[data-request='{request_id}'] button")
    if keyboard:
        opener.focus()
        page.keyboard.press("Enter")
    else:
        opener.click()
    page.wait_for_selector(f"#lnds-review-detail[data-request='{request_id}'][data-round='{round_}']")
    idle(page)


def panel_background(page) -> tuple[int, ...]:
    """The review panel's background colour as (r, g, b)."""
    text = page.locator(".lnds-airlock-panel").first.evaluate("e => getComputedStyle(e).backgroundColor")
    return tuple(int(v) for v in text[text.index("(") + 1:text.index(")")].split(",")[:3])


def review(page, steps: Steps, who: str, vote: str, comment: str | None) -> None:
    """Vote on the table (and comment), then submit the review."""
    section = page.locator("section.lnds-review-file[data-file='table.csv']")
    section.locator("td").first.wait_for()  # the preview has loaded
    section.locator(f"input[data-vote='{vote}']").check()
    section.locator(".lnds-review-vote-save").click()
    page.get_by_text("Vote on table.csv saved.").wait_for()
    if comment:
        page.locator("section.lnds-review-file[data-file='table.csv'] textarea").fill(comment)
        page.locator("section.lnds-review-file[data-file='table.csv'] .lnds-review-comment-save").click()
        page.locator("#lnds-review-comments", has_text=comment).wait_for()
    steps.shot(page, f"{who}-votes-{vote}")
    page.click("#lnds-review-action-review")
    page.wait_for_selector("#lnds-review-action-review", state="detached")


def test_export_through_the_lab_extension(browser, demo_hub):
    steps = Steps(ARTIFACTS)
    try:
        journey(browser, demo_hub, steps)
    except BaseException:
        for context in browser.contexts:
            for page in context.pages:
                steps.shot(page, "failed-" + page.url.split("/user/")[-1].split("/")[0][:20])
        raise


def journey(browser, demo_hub, steps: Steps) -> None:
    """The whole journey; each step's screenshot in `steps`."""
    url, accounts, state = demo_hub
    passwords = accounts["passwords"]

    # alice: start the project, write a table to ~/outputs from a notebook.
    alice = log_in(browser, url, "alice", passwords["alice"])
    start_server(alice, url, "alice", "demo")
    alice.click(".jp-LauncherCard[data-category='Notebook']", timeout=120_000)
    alice.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=180_000)
    run_cell(alice, FIRST, "written")
    steps.shot(alice, "alice-notebook-writes-table")

    # "Request export…" on the file in ~/outputs: a draft with the file frozen by the airlock.
    alice.locator(".jp-DirListing-itemText").get_by_text("outputs", exact=True).dblclick()
    item = alice.locator(".jp-DirListing-itemText").get_by_text("table.csv", exact=True)
    item.click(button="right")
    alice.locator(".lm-Menu-item", has_text="Request export…").click()
    row = alice.locator("#lnds-airlock-files [data-file='table.csv']")
    row.wait_for(timeout=60_000)
    steps.shot(alice, "alice-request-export-draft")
    request_id = alice.locator("#lnds-airlock-requests tr.lnds-airlock-current").get_attribute(
        "data-request")
    assert request_id and request_id.startswith("demo-")
    alice.fill("#lnds-airlock-title", "Respondents by region and sex")
    alice.fill("#lnds-airlock-purpose", "Table 1 of the demo paper")
    alice.fill("#lnds-airlock-controls", "none yet: please check the small cell")
    alice.click("#lnds-airlock-save")
    alice.get_by_text("Context saved.").wait_for()
    alice.click("#lnds-airlock-submit")
    alice.wait_for_selector("#lnds-airlock-status[data-status='submitted']", timeout=120_000)
    findings = row.locator(".lnds-airlock-findings")
    assert findings.get_attribute("data-verdict") == "fail"
    assert "threshold" in findings.inner_text()
    steps.shot(alice, "alice-submitted-with-findings")

    # carol and dave: their review servers open on the review panel; both ask for changes.
    carol = log_in(browser, url, "carol", passwords["carol"])
    carol.wait_for_selector("#spe-review")
    start_server(carol, url, "carol", "review")
    carol.wait_for_selector("#lnds-review-queue", timeout=60_000)
    open_request(carol, request_id, 1)
    assert "Table 1 of the demo paper" in carol.inner_text("#lnds-review-purpose")
    flagged = carol.locator("section.lnds-review-file[data-file='table.csv'] td.lnds-airlock-flagged")
    flagged.first.wait_for(timeout=60_000)
    assert flagged.count() == 1 and flagged.inner_text().split() == ["3", "threshold"]
    steps.shot(carol, "carol-review-flagged-cell")
    review(carol, steps, "carol", "changes_requested", "South/F is 3: merge or suppress it")

    dave = log_in(browser, url, "dave", passwords["dave"])
    start_server(dave, url, "dave", "review")
    dave.wait_for_selector("#lnds-review-queue", timeout=60_000)
    open_request(dave, request_id, 1)
    dave_file = dave.locator("section.lnds-review-file[data-file='table.csv']")
    assert dave_file.locator(".lnds-review-votes-hidden").count() == 1  # carol's vote hidden
    assert "merge or suppress" not in dave.inner_text("#lnds-review-detail")
    review(dave, steps, "dave", "changes_requested", None)
    assert "carol: Changes requested" in dave_file.locator(".lnds-review-votes").inner_text()
    dave.click("#lnds-review-action-return")
    dave.wait_for_selector("#lnds-review-status[data-status='returned']")
    steps.shot(dave, "dave-returns-request")

    # alice: reads the comment, rewrites the table, replaces the file and resubmits.
    alice.click("#lnds-airlock-refresh")
    alice.wait_for_selector("#lnds-airlock-status[data-status='returned']")
    assert "merge or suppress it" in alice.inner_text("#lnds-airlock-comments")
    steps.shot(alice, "alice-reads-returned-comment")
    alice.locator(".jp-NotebookPanel").first.click()
    run_cell(alice, SECOND, "rewritten")
    alice.locator("#lnds-airlock-files [data-file='table.csv'] .lnds-airlock-replace").click()
    alice.get_by_text("table.csv replaced with its current content").wait_for()
    alice.click("#lnds-airlock-submit")
    alice.wait_for_selector("#lnds-airlock-status[data-status='submitted'][data-round='2']",
                            timeout=120_000)
    steps.shot(alice, "alice-resubmitted")

    # Round two: both approve; dave approves the request and releases it.
    open_request(carol, request_id, 2)
    verdict = carol.locator("section.lnds-review-file[data-file='table.csv'] .lnds-airlock-findings")
    assert verdict.get_attribute("data-verdict") == "pass", verdict.inner_text()
    review(carol, steps, "carol", "approve", None)
    open_request(dave, request_id, 2, keyboard=True)
    review(dave, steps, "dave", "approve", None)
    dave.click("#lnds-review-action-approve")
    dave.wait_for_selector("#lnds-review-status[data-status='approved']")
    dave.click("#lnds-review-action-release")
    dave.wait_for_selector("#lnds-review-status[data-status='released']", timeout=120_000)
    steps.shot(dave, "dave-releases")

    # The panel follows JupyterLab's theme: dark after switching through the command palette.
    light = panel_background(carol)
    carol.keyboard.press("Control+Shift+C")
    carol.keyboard.type("JupyterLab Dark")
    carol.keyboard.press("Enter")
    carol.wait_for_function("document.body.dataset.jpThemeLight === 'false'", timeout=60_000)
    carol.wait_for_timeout(500)  # the theme's style sheet applies
    dark = panel_background(carol)
    assert sum(light) > 600 and sum(dark) < 200, (light, dark)
    steps.shot(carol, "carol-dark-theme")

    # alice: the panel says released; the bundle is downloaded from the hub, not the workspace.
    alice.click("#lnds-airlock-refresh")
    alice.wait_for_selector("#lnds-airlock-status[data-status='released']")
    steps.shot(alice, "alice-sees-released")
    alice.goto(f"{url}/services/airlock/requests/{request_id}")
    alice.wait_for_url(f"{url}/services/airlock/requests/{request_id}")
    with alice.expect_download() as download:
        alice.click("#download")
    saved = ARTIFACTS / "bundle.zip"
    download.value.save_as(saved)
    steps.shot(alice, "alice-downloads-bundle")
    with zipfile.ZipFile(io.BytesIO(saved.read_bytes())) as bundle:
        assert sorted(bundle.namelist()) == ["disclosure-record.json", "outputs/table.csv"]
        assert bundle.read("outputs/table.csv").decode() == SECOND_CSV
        record = json.loads(bundle.read("disclosure-record.json"))
    assert record["request"]["id"] == request_id and record["request"]["rounds"] == 2
    assert {v["checker"] for v in record["files"][0]["votes"]} == {"carol", "dave"}

    registry = open_registry(f"sqlite:///{state / 'spe.sqlite'}")
    actions = [(e.actor, e.action) for e in registry.audit.query(project="demo")]
    for done in (("alice", "airlock.request.submit"), ("alice", "airlock.file.replace"),
                 ("dave", "airlock.request.return"), ("dave", "airlock.request.release"),
                 ("alice", "airlock.release.download")):
        assert done in actions, done
    assert registry.audit.verify()[1] is None
    assert steps.count >= 12
