"""The airlock service over HTTP through the real hub: OAuth tokens of a researcher and two
checkers drive request -> return -> resubmit -> two approvals -> release; schemathesis fuzzes the
service's own OpenAPI schema; killing the service in the middle of a release leaves it consistent."""

import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
import requests

from lnds_spe.projects import open_registry

from .conftest import COUNTS, PROJECT

pytestmark = pytest.mark.timeout(900)


class Client:
    """One user's calls to the airlock API with their own hub token."""

    def __init__(self, hub, user: str, scopes: list[str] | None = None):
        self.base, self.user = hub.api, user
        self.headers = {"Authorization": f"token {hub.token(user, scopes)}"}

    def call(self, method: str, path: str, expect: int = 200, **kwargs):
        answer = requests.request(method, f"{self.base}{path}", headers=self.headers, timeout=120,
                                  **kwargs)
        assert answer.status_code == expect, f"{self.user} {method} {path}: {answer.status_code} " \
                                             f"{answer.text[:500]}"
        return answer.json() if answer.headers.get("content-type", "").startswith(
            "application/json") else answer


@pytest.fixture(scope="module")
def users(airlock_hub):
    return {name: Client(airlock_hub, name) for name in ("alice", "bob", "carol", "dave", "admin")}


@pytest.fixture(scope="module")
def outputs(airlock_hub) -> Path:
    folder = airlock_hub.state / "outputs" / PROJECT
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "counts.csv").write_text(COUNTS)
    (folder / "analysis.py").write_text("# how counts.csv was made\n")
    return folder


def submitted_request(users, files=(("counts.csv", "output"), ("analysis.py", "supporting")),
                      title="Counts by region"):
    alice = users["alice"]
    request = alice.call("POST", "/requests", 201, json={
        "project": PROJECT, "title": title, "purpose": "table 1",
        "disclosure_controls": "suppression below 10"})
    for name, kind in files:
        alice.call("POST", f"/requests/{request['id']}/files", 201, json={"name": name, "kind": kind})
    alice.call("POST", f"/requests/{request['id']}/submit")
    return request["id"]


def approve_and_release(users, rid, files=("counts.csv",)):
    for checker in ("carol", "dave"):
        for name in files:
            users[checker].call("PUT", f"/requests/{rid}/files/{name}/vote", json={"vote": "approve"})
        users[checker].call("POST", f"/requests/{rid}/review")
    users["dave"].call("POST", f"/requests/{rid}/approve")
    return users["carol"].call("POST", f"/requests/{rid}/release")


def test_tokens_without_the_service_scope_are_refused(airlock_hub):
    weak = Client(airlock_hub, "alice", ["read:users:name!user"])
    weak.call("GET", "/requests", 401)
    assert requests.get(f"{airlock_hub.api}/requests", timeout=30).status_code == 401


def test_journey_over_http(airlock_hub, users, outputs):
    alice, carol, dave = users["alice"], users["carol"], users["dave"]
    rid = submitted_request(users)
    assert rid in {r["id"] for r in carol.call("GET", "/requests") if r["to_review"]}
    # The researcher cannot review, and cannot take a file out before release.
    alice.call("PUT", f"/requests/{rid}/files/counts.csv/vote", 403, json={"vote": "approve"})
    alice.call("GET", f"/requests/{rid}/files/counts.csv", 403)
    users["bob"].call("PUT", f"/requests/{rid}/files/counts.csv/vote", 403, json={"vote": "approve"})
    assert carol.call("GET", f"/requests/{rid}/files/counts.csv").text == COUNTS

    carol.call("POST", f"/requests/{rid}/comments", 201, json={"text": "round to 5", "file": "counts.csv"})
    carol.call("PUT", f"/requests/{rid}/files/counts.csv/vote", json={"vote": "changes_requested"})
    carol.call("POST", f"/requests/{rid}/review")
    hidden = dave.call("GET", f"/requests/{rid}")
    assert hidden["comments"] == [] and all(f["votes"] == {} for f in hidden["files"])
    dave.call("PUT", f"/requests/{rid}/files/counts.csv/vote", json={"vote": "approve"})
    dave.call("POST", f"/requests/{rid}/review")
    dave.call("POST", f"/requests/{rid}/approve", 409)  # carol asked for changes
    carol.call("POST", f"/requests/{rid}/return")
    assert [c["text"] for c in alice.call("GET", f"/requests/{rid}")["comments"]] == ["round to 5"]

    (outputs / "counts.csv").write_text("region,F,M\nNorth,10,15\nSouth,20,\nEast,30,30\n")
    alice.call("POST", f"/requests/{rid}/files", 201, json={"name": "counts.csv"})
    alice.call("POST", f"/requests/{rid}/submit")
    (outputs / "counts.csv").write_text("region,F,M\nNorth,1,2\n")  # edited after submission
    released = approve_and_release(users, rid)
    assert released["status"] == "released"

    users["bob"].call("GET", f"/requests/{rid}/release", 403)
    carol.call("GET", f"/requests/{rid}/release", 403)
    answer = alice.call("GET", f"/requests/{rid}/release")
    with zipfile.ZipFile(io.BytesIO(answer.content)) as bundle:
        assert sorted(bundle.namelist()) == ["disclosure-record.json", "outputs/counts.csv"]
        record = json.loads(bundle.read("disclosure-record.json"))
        released_counts = bundle.read("outputs/counts.csv")
    assert released_counts == b"region,F,M\nNorth,10,15\nSouth,20,\nEast,30,30\n"
    by_name = {f["name"]: f for f in record["files"]}
    assert by_name["counts.csv"]["sha256"] == hashlib.sha256(released_counts).hexdigest()
    assert by_name["analysis.py"]["released"] is False
    assert {v["checker"] for v in by_name["counts.csv"]["votes"]} == {"carol", "dave"}
    users["admin"].call("GET", f"/requests/{rid}/release")

    registry = open_registry(airlock_hub.hub.env["SPE_DATABASE_URL"])
    events = [e for e in registry.audit.query(project=PROJECT) if e.target == rid]
    assert {"airlock.request.return", "airlock.request.release", "airlock.release.download"} \
        <= {e.action for e in events}
    assert [e.actor for e in events if e.action == "airlock.release.download"] == ["alice", "admin"]
    assert registry.audit.verify()[1] is None


def test_a_table_differencing_against_a_released_one_is_flagged(users, outputs):
    (outputs / "first.csv").write_text("region,F,M\nNorth,12,15\nSouth,20,\nEast,30,31\n")
    first = submitted_request(users, files=(("first.csv", "output"),), title="first")
    approve_and_release(users, first, files=("first.csv",))
    (outputs / "margin.csv").write_text("region,count\nNorth,27\nSouth,23\nEast,61\n")
    second = submitted_request(users, files=(("margin.csv", "output"),), title="margin")
    checks = users["carol"].call("GET", f"/requests/{second}")["files"][0]["checks"]
    assert checks["status"] == "fail"
    assert f"{first}/first.csv" in {d["combined_with"] for d in checks["differencing"]}
    assert {d["table"] for d in checks["differencing"]} == {"margin.csv"}


@pytest.mark.parametrize("user", ["alice", "carol"])
def test_schemathesis_finds_no_server_error(airlock_hub, users, outputs, user, tmp_path):
    """Fuzz every operation with the user's real token, path ids pointing at a real request."""
    request_id = submitted_request(users, title=f"fuzzed by {user}")
    if user == "alice":  # a returned request: the requester's edits are live
        for checker in ("carol", "dave"):
            users[checker].call("PUT", f"/requests/{request_id}/files/counts.csv/vote",
                                json={"vote": "changes_requested"})
            users[checker].call("POST", f"/requests/{request_id}/review")
        users["carol"].call("POST", f"/requests/{request_id}/return")
    config = tmp_path / "schemathesis.toml"
    config.write_text(f'[parameters]\n"path.request_id" = "{request_id}"\n"path.project" = "{PROJECT}"\n')
    token = users[user].headers["Authorization"]
    run = subprocess.run(
        [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config), "run",
         f"{airlock_hub.api}/openapi.json", "--url", airlock_hub.hub.url,
         "-H", f"Authorization: {token}", "--checks", "not_a_server_error",
         "--max-examples", "25", "--seed", "7", "--request-timeout", "60",
         "--generation-allow-x00", "false"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert counts and counts.group(1) == counts.group(2) and int(counts.group(1)) > 200, run.stdout[-2000:]
    assert "Loaded specification" in run.stdout


def _service_pid(state: Path) -> int:
    """The airlock process of this hub (found by its state directory in its environment)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        serves_airlock = any(b"lnds_spe.services.airlock" in part for part in command)
        if serves_airlock and f"SPE_STATE_DIR={state}".encode() in environ:
            return int(entry.name)
    pytest.fail("no airlock service process of this hub is running", pytrace=False)


def test_service_killed_mid_release_leaves_the_request_consistent(airlock_hub, users, outputs):
    # A large output makes the bundle take seconds to write: the kill lands while it is written.
    row = "region,value\n" + "".join(f"r{i},{hashlib.sha256(str(i).encode()).hexdigest()}\n"
                                     for i in range(700_000))
    (outputs / "large.csv").write_text(row)
    rid = submitted_request(users, files=(("large.csv", "output"),), title="large")
    for checker in ("carol", "dave"):
        users[checker].call("PUT", f"/requests/{rid}/files/large.csv/vote", json={"vote": "approve"})
        users[checker].call("POST", f"/requests/{rid}/review")
    users["dave"].call("POST", f"/requests/{rid}/approve")

    releases = airlock_hub.state / "airlock" / "releases"
    pid = _service_pid(airlock_hub.state)
    headers = users["carol"].headers
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(answer=_post_quietly(
        f"{airlock_hub.api}/requests/{rid}/release", headers)))
    thread.start()
    deadline = time.monotonic() + 60
    while not list(releases.glob(f".{rid}-*.tmp")):
        assert time.monotonic() < deadline, "the release never started writing its bundle"
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=120)
    assert outcome["answer"] is None or outcome["answer"] >= 500

    airlock_hub.wait_service()  # the hub restarts its managed service
    assert _service_pid(airlock_hub.state) != pid
    after = users["alice"].call("GET", f"/requests/{rid}")
    assert after["status"] == "approved" and after["released_at"] is None
    assert not (releases / f"{rid}.zip").exists()
    assert not list(releases.glob("*.tmp")), "the restarted service removes half-written bundles"
    registry = open_registry(airlock_hub.hub.env["SPE_DATABASE_URL"])
    assert registry.audit.verify()[1] is None
    assert "airlock.request.release" not in {e.action for e in registry.audit.query(project=PROJECT)
                                             if e.target == rid}

    released = users["carol"].call("POST", f"/requests/{rid}/release")
    assert released["status"] == "released"
    bundle = users["alice"].call("GET", f"/requests/{rid}/release").content
    assert hashlib.sha256(bundle).hexdigest() == released["bundle_sha256"]
    assert registry.audit.verify()[1] is None


def _post_quietly(url: str, headers: dict) -> int | None:
    """POST and return the status, or None when the connection dies with the service."""
    try:
        return requests.post(url, headers=headers, timeout=120).status_code
    except requests.ConnectionError:
        return None
