"""The airlock's hub pages through FastAPI's TestClient over a real database; the hub's sign-in is
stood in for by a table of tokens (tests/e2e/test_airlock_review.py drives them through a real hub)."""

import io
import re
import zipfile

import pytest
from fastapi.testclient import TestClient

from lnds_spe.services.airlock_api import create_app
from lnds_spe.services.airlock_pages import CSRF_FIELD
from lnds_spe.services.hub_auth import TOKEN_COOKIE, HubSignIn, HubUser, NotSignedIn

from .conftest import ADMIN, CAROL, DAVE, PROJECT, RESEARCHER

PREFIX = "/services/airlock/"
SMALL_CELL_CSV = "region,F,M\nNorthumbria,12,15\nSouth,3,20\nEast,30,31\n"
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
       b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00"
       b"\x00\x00IEND\xaeB`\x82")


class StandInSignIn(HubSignIn):
    """The hub's answer for each session cookie, from a table of callers."""

    def __init__(self, callers):
        super().__init__()
        self.callers = {f"token-{c.username}": c for c in callers}

    async def user(self, request):
        token = request.cookies.get(TOKEN_COOKIE, "")
        if token not in self.callers:
            raise NotSignedIn("no session")
        caller = self.callers[token]
        return HubUser(caller.username, caller.scopes, token, True)


@pytest.fixture
def app(airlock, outputs):
    (outputs / "counts.csv").write_text(SMALL_CELL_CSV)
    (outputs / "notes <b>&'.txt").write_text("<script>alert('x')</script> & more\n")
    (outputs / "plot.png").write_bytes(PNG)
    return create_app(airlock, StandInSignIn([RESEARCHER, CAROL, DAVE, ADMIN]), prefix=PREFIX)


def browser(app, caller=None) -> TestClient:
    """A client holding the caller's session cookie, not following redirects."""
    cookies = {TOKEN_COOKIE: f"token-{caller.username}"} if caller else {}
    return TestClient(app, cookies=cookies, follow_redirects=False)


def csrf_of(page) -> str:
    return re.search(rf'name="{CSRF_FIELD}" value="([0-9a-f]+)"', page.text).group(1)


def post(client, path, **fields):
    """Submit a form as the pages do, with the CSRF token read from the page holding the form."""
    page = PREFIX + "/".join(path.split("/")[:2]) if path.count("/") >= 2 else PREFIX
    return client.post(PREFIX + path, data={CSRF_FIELD: csrf_of(client.get(page)), **fields})


def draft(app) -> tuple[TestClient, str]:
    alice = browser(app, RESEARCHER)
    made = post(alice, "requests", project=PROJECT, title="Counts <i>by</i> region",
                purpose="table 1 of the paper", disclosure_controls="none yet")
    assert made.status_code == 303
    request_id = made.headers["location"].rsplit("/", 1)[1]
    for name, kind in (("counts.csv", "output"), ("notes <b>&'.txt", "supporting"),
                       ("plot.png", "output")):
        added = alice.post(f"{PREFIX}requests/{request_id}/files",
                           data={CSRF_FIELD: csrf_of(alice.get(PREFIX)), "name": name, "kind": kind})
        assert added.status_code == 303, added.text
    return alice, request_id


def test_signed_out_browser_goes_to_hub_oauth(app):
    anonymous = browser(app)
    for answer in (anonymous.get(PREFIX), anonymous.get(f"{PREFIX}requests/x"),
                   anonymous.post(f"{PREFIX}requests/x/submit", data={CSRF_FIELD: "x"})):
        assert answer.status_code == 302
        assert answer.headers["location"].startswith("/hub/api/oauth2/authorize?")


def test_pages_are_not_in_the_openapi_schema(app):
    paths = browser(app).get(f"{PREFIX}api/openapi.json").json()["paths"]
    assert paths and all(path.startswith(f"{PREFIX}api/") for path in paths)


def test_requester_builds_a_request_and_sees_no_file_content(app):
    alice, request_id = draft(app)
    page = alice.get(f"{PREFIX}requests/{request_id}")
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY"
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
    assert "<script" not in page.text.lower()
    assert "Counts &lt;i&gt;by&lt;/i&gt; region" in page.text
    assert "notes &lt;b&gt;&amp;&#39;.txt" in page.text
    assert "Northumbria" not in page.text and "csv-preview" not in page.text  # nothing leaves
    assert 'id="add-file-form"' in page.text and 'id="action-submit"' in page.text
    listed = alice.get(PREFIX)
    assert 'id="my-requests-table"' in listed.text and request_id in listed.text

    removed = alice.post(f"{PREFIX}requests/{request_id}/files/remove",
                         data={CSRF_FIELD: csrf_of(page), "name": "plot.png"})
    assert removed.status_code == 303
    edited = alice.post(f"{PREFIX}requests/{request_id}/edit",
                        data={CSRF_FIELD: csrf_of(page), "title": "Counts by region",
                              "purpose": "paper", "disclosure_controls": "none"})
    assert edited.status_code == 303
    page = alice.get(f"{PREFIX}requests/{request_id}")
    assert 'data-name="plot.png"' not in page.text and "Counts by region" in page.text


def test_refusals_are_one_message_with_their_status(app):
    alice, request_id = draft(app)
    page = alice.get(f"{PREFIX}requests/{request_id}")
    no_csrf = alice.post(f"{PREFIX}requests/{request_id}/submit", data={})
    assert no_csrf.status_code == 403 and "security token" in no_csrf.text
    stale = alice.post(f"{PREFIX}requests/{request_id}/submit", data={CSRF_FIELD: "0" * 64})
    assert stale.status_code == 403
    as_json = alice.post(f"{PREFIX}requests/{request_id}/submit", json={CSRF_FIELD: csrf_of(page)})
    assert as_json.status_code == 415
    missing = alice.post(f"{PREFIX}requests/{request_id}/files",
                         data={CSRF_FIELD: csrf_of(page), "name": "nope.csv"})
    assert missing.status_code == 404
    assert missing.text.count('role="alert"') == 1 and "nope.csv" in missing.text
    assert "Traceback" not in missing.text
    approve = alice.post(f"{PREFIX}requests/{request_id}/approve", data={CSRF_FIELD: csrf_of(page)})
    assert approve.status_code == 409 and "it cannot become approved" in approve.text
    assert 'id="request-title"' in approve.text  # the request page, with the message on top
    assert browser(app, CAROL).get(f"{PREFIX}requests/{request_id}").status_code == 403  # a draft
    assert alice.get(f"{PREFIX}requests/nope").status_code == 404
    untitled = post(alice, "requests", project=PROJECT, title=" ")
    assert untitled.status_code == 422 and "title" in untitled.text
    assert 'id="new-request-form"' in untitled.text  # the list page, with the message on top


def test_two_checkers_review_independently_then_release(app):
    alice, request_id = draft(app)
    assert post(alice, f"requests/{request_id}/submit").status_code == 303
    carol, dave = browser(app, CAROL), browser(app, DAVE)

    queue = carol.get(PREFIX)
    assert 'id="to-review-table"' in queue.text and request_id in queue.text
    page = carol.get(f"{PREFIX}requests/{request_id}")
    flagged = re.findall(r'<td class="flagged" data-row="(\d+)" data-col="(\d+)"[^>]*>([^<]*)'
                         r'<span class="rule">([^<]*)</span>', page.text)
    assert flagged == [("1", "1", "3", "threshold")]
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in page.text
    assert f'src="{PREFIX}api/requests/{request_id}/files/plot.png"' in page.text
    assert carol.get(f"{PREFIX}api/requests/{request_id}/files/plot.png").content == PNG
    assert 'id="vote-form-1"' in page.text and 'id="vote-form-2"' not in page.text  # not supporting

    for name in ("counts.csv", "plot.png"):
        assert post(carol, f"requests/{request_id}/vote", file=name, vote="approve").status_code == 303
    assert post(carol, f"requests/{request_id}/comments", file="counts.csv",
                text="South/F is 3: fine as agreed").status_code == 303
    assert post(carol, f"requests/{request_id}/review").status_code == 303

    assert "Your review is in" in carol.get(f"{PREFIX}requests/{request_id}").text
    before = dave.get(f"{PREFIX}requests/{request_id}").text
    assert "South/F is 3" not in before and "carol: Approve" not in before
    assert "Vote on every output file" in before and 'id="action-review"' not in before
    for name in ("counts.csv", "plot.png"):
        assert post(dave, f"requests/{request_id}/vote", file=name, vote="approve").status_code == 303
    assert post(dave, f"requests/{request_id}/review").status_code == 303
    after = dave.get(f"{PREFIX}requests/{request_id}").text
    assert "South/F is 3" in after and "carol: Approve" in after
    assert 'id="action-approve"' in after
    assert post(dave, f"requests/{request_id}/approve").status_code == 303
    assert post(carol, f"requests/{request_id}/release").status_code == 303

    page = alice.get(f"{PREFIX}requests/{request_id}")
    assert 'id="status" class="status status-released"' in page.text
    assert 'id="download"' in page.text and "South/F is 3" in page.text
    bundle = alice.get(f"{PREFIX}api/requests/{request_id}/release")
    with zipfile.ZipFile(io.BytesIO(bundle.content)) as archive:
        assert sorted(archive.namelist()) == ["disclosure-record.json", "outputs/counts.csv",
                                              "outputs/plot.png"]
    assert 'id="download"' not in carol.get(f"{PREFIX}requests/{request_id}").text
    assert 'id="download"' in browser(app, ADMIN).get(f"{PREFIX}requests/{request_id}").text


def test_returned_request_shows_the_comments_and_reopens_for_changes(app, outputs):
    alice, request_id = draft(app)
    assert post(alice, f"requests/{request_id}/submit").status_code == 303
    for checker in (browser(app, CAROL), browser(app, DAVE)):
        assert post(checker, f"requests/{request_id}/vote", file="counts.csv",
                    vote="changes_requested").status_code == 303
        assert post(checker, f"requests/{request_id}/vote", file="plot.png",
                    vote="approve").status_code == 303
        assert post(checker, f"requests/{request_id}/comments",
                    text="round South/F to base 5").status_code == 303
        assert post(checker, f"requests/{request_id}/review").status_code == 303
    assert post(browser(app, DAVE), f"requests/{request_id}/return").status_code == 303

    page = alice.get(f"{PREFIX}requests/{request_id}").text
    assert 'id="status" class="status status-returned"' in page
    assert page.count("round South/F to base 5") == 2 and "dave: Changes requested" in page
    assert 'id="add-file-form"' in page and "Returned for changes" in page
    (outputs / "counts.csv").write_text("region,F,M\nNorthumbria,10,15\nSouth,5,20\nEast,30,30\n")
    assert post(alice, f"requests/{request_id}/files", name="counts.csv",
                kind="output").status_code == 303
    assert post(alice, f"requests/{request_id}/submit").status_code == 303
    assert 'id="to-review-table"' in browser(app, CAROL).get(PREFIX).text

    admin = browser(app, ADMIN)
    listed = admin.get(PREFIX).text
    assert "All requests" in listed and request_id in listed and 'id="to-review' not in listed
    seen = admin.get(f"{PREFIX}requests/{request_id}").text
    assert "csv-preview" not in seen and "Northumbria" not in seen  # admins see requests, not data


def test_checker_sees_an_acro_session_s_verdicts(app, outputs, monkeypatch):
    import numpy as np
    import pandas as pd

    from lnds_spe.sdc import ACRO

    monkeypatch.chdir(outputs)
    session = ACRO(suppress=False)
    frame = pd.DataFrame({"region": np.repeat(list("ABC"), 30), "sex": list("FM") * 45})
    frame.loc[0:3, "sex"] = "X"
    session.crosstab(frame.region, frame.sex)
    session.finalise("session1", "json")
    alice = browser(app, RESEARCHER)
    made = post(alice, "requests", project=PROJECT, title="ACRO session")
    request_id = made.headers["location"].rsplit("/", 1)[1]
    for name, kind in (("session1/output_0_0.csv", "output"), ("session1/results.json", "supporting")):
        assert post(alice, f"requests/{request_id}/files", name=name, kind=kind).status_code == 303
    assert post(alice, f"requests/{request_id}/submit").status_code == 303
    page = browser(app, CAROL).get(f"{PREFIX}requests/{request_id}").text
    assert "ACRO (output_0): fail" in page
    assert "ACRO's checks flag: class-disclosure (1 cell), MinimumThresholdCheck (3 cells)" in page
