"""Output checking in a browser through the real hub: alice's export is reviewed by carol and dave
on the airlock's pages, released, and downloaded by alice."""

import io
import json
import re
import time
import zipfile
from pathlib import Path

import requests

from lnds_spe.projects import open_registry

AIRLOCK = "/services/airlock/"
COUNTS = "region,F,M\nNorth,12,15\nSouth,3,20\nEast,30,31\n"  # South/F = 3 is under the threshold
HIGHLIGHT = "rgb(255, 214, 214)"  # td.flagged in the pages' style sheet


def hub_log(state: Path) -> str:
    return (state / "hub" / "jupyterhub.log").read_text(errors="replace")[-3000:]


def airlock_token(url: str, password: str, user: str) -> str:
    """A hub API token of the user's own for the airlock, made after a real login."""
    session = requests.Session()
    page = session.get(f"{url}/hub/login", timeout=30)
    found = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    xsrf = session.cookies.get("_xsrf") or (found.group(1) if found else "")
    login = session.post(f"{url}/hub/login?next=", allow_redirects=False, timeout=30,
                         data={"username": user, "password": password, "_xsrf": xsrf})
    assert login.status_code == 302, login.text
    made = session.post(f"{url}/hub/api/users/{user}/tokens", timeout=30,
                        headers={"X-XSRFToken": session.cookies.get("_xsrf", xsrf)},
                        json={"scopes": ["access:services!service=airlock",
                                         "custom:airlock:request"], "note": "e2e airlock"})
    assert made.status_code in (200, 201), made.text
    return made.json()["token"]


def submitted_request(url: str, state: Path, token: str) -> str:
    """alice's request for outputs/counts.csv, built and submitted through the airlock's API."""
    outputs = state / "outputs" / "demo"
    outputs.mkdir(parents=True, exist_ok=True)
    (outputs / "counts.csv").write_text(COUNTS)  # as the workspace writes it
    api = requests.Session()
    api.headers["Authorization"] = f"token {token}"
    deadline = time.monotonic() + 60
    while api.get(f"{url}{AIRLOCK}api/whoami", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, f"the airlock service did not answer:\n{hub_log(state)}"
        time.sleep(0.5)
    made = api.post(f"{url}{AIRLOCK}api/requests", timeout=30,
                    json={"project": "demo", "title": "Respondents by region and sex",
                          "purpose": "Table 1 of the demo paper",
                          "disclosure_controls": "none: please check the small cell"})
    assert made.status_code == 201, made.text
    request_id = made.json()["id"]
    added = api.post(f"{url}{AIRLOCK}api/requests/{request_id}/files", timeout=30,
                     json={"name": "counts.csv", "kind": "output"})
    assert added.status_code == 201, added.text
    submitted = api.post(f"{url}{AIRLOCK}api/requests/{request_id}/submit", timeout=60)
    assert submitted.status_code == 200 and submitted.json()["status"] == "submitted", submitted.text
    return request_id


def logged_in(browser, url: str, user: str, password: str):
    """A fresh browser context logged into the hub as `user`, on the airlock's list page."""
    page = browser.new_context(viewport={"width": 1280, "height": 900},
                               accept_downloads=True).new_page()
    page.goto(f"{url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_url(f"{url}/hub/**")
    page.goto(f"{url}{AIRLOCK}")  # no airlock session yet: through the hub's OAuth and back
    page.wait_for_url(f"{url}{AIRLOCK}")
    assert page.inner_text("#signed-in-as") == f"Signed in as {user}"
    return page


def review(page, comment: str) -> None:
    """Approve the one output, comment on it, submit the review."""
    page.check("#vote-1-approve")
    page.click("#vote-1-submit")
    page.wait_for_selector("#vote-1-approve:checked")
    page.fill("#comment-form-1-text", comment)
    page.click("#comment-form-1-submit")
    page.get_by_text(comment).wait_for()
    page.click("#action-review")
    page.wait_for_selector("#action-review", state="detached")


def test_two_checkers_review_in_the_browser_and_alice_downloads(browser, demo_hub, tmp_path):
    url, accounts, state = demo_hub
    passwords = accounts["passwords"]
    request_id = submitted_request(url, state, airlock_token(url, passwords["alice"], "alice"))
    request_url = f"{url}{AIRLOCK}requests/{request_id}"

    carol = logged_in(browser, url, "carol", passwords["carol"])
    assert request_id in carol.inner_text("#to-review-table")
    carol.click(f"#to-review-table tr[data-request='{request_id}'] a")
    carol.wait_for_url(request_url)
    assert "Table 1 of the demo paper" in carol.inner_text("#context-purpose")
    cell = carol.locator("#file-1 td.flagged")
    assert cell.count() == 1
    assert cell.inner_text().split() == ["3", "threshold"]
    assert cell.evaluate("td => getComputedStyle(td).backgroundColor") == HIGHLIGHT
    # A change without the form's CSRF field is refused, though the session cookie is sent.
    forged = carol.request.post(f"{request_url}/comments", form={"text": "forged"},
                                 max_redirects=0)
    assert forged.status == 403
    try:
        review(carol, "South/F is 3: suppress it or explain why it is safe")
    finally:
        carol.screenshot(path=str(tmp_path / "carol.png"), full_page=True)
    assert "forged" not in carol.content()

    dave = logged_in(browser, url, "dave", passwords["dave"])
    dave.click(f"#to-review-table tr[data-request='{request_id}'] a")
    dave.wait_for_url(request_url)
    assert dave.locator("#file-1 .file-votes").count() == 0
    assert "South/F is 3" not in dave.content() and "carol" not in dave.inner_text("#files")
    review(dave, "Agreed with the requester: the count is of the demo's synthetic data")
    assert "carol: Approve" in dave.inner_text("#file-1 .file-votes")
    assert "South/F is 3" in dave.inner_text("#file-1")
    dave.click("#action-approve")
    dave.wait_for_selector("#status.status-approved")
    dave.click("#action-release")
    dave.wait_for_selector("#status.status-released")
    assert dave.locator("#download").count() == 0  # checkers do not download releases

    alice = logged_in(browser, url, "alice", passwords["alice"])
    assert "released" in alice.inner_text(f"#my-requests-table tr[data-request='{request_id}']")
    alice.click(f"#my-requests-table tr[data-request='{request_id}'] a")
    alice.wait_for_url(request_url)
    assert alice.locator("#file-1 td").count() == 0  # no content preview for the requester
    with alice.expect_download() as download:
        alice.click("#download")
    saved = tmp_path / "bundle.zip"
    download.value.save_as(saved)
    with zipfile.ZipFile(io.BytesIO(saved.read_bytes())) as bundle:
        assert sorted(bundle.namelist()) == ["disclosure-record.json", "outputs/counts.csv"]
        record = json.loads(bundle.read("disclosure-record.json"))
        assert bundle.read("outputs/counts.csv").decode() == COUNTS
    assert record["request"]["id"] == request_id and record["released_by"] == "dave"
    assert {v["checker"] for v in record["files"][0]["votes"]} == {"carol", "dave"}

    registry = open_registry(f"sqlite:///{state / 'spe.sqlite'}")
    actions = [(e.actor, e.action) for e in registry.audit.query(project="demo")]
    for done in (("carol", "airlock.file.view"), ("carol", "airlock.review.submit"),
                 ("dave", "airlock.review.submit"), ("dave", "airlock.request.release"),
                 ("alice", "airlock.release.download")):
        assert done in actions
    assert registry.audit.verify()[1] is None
