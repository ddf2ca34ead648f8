"""The lab extension's server part: which airlock calls it forwards, where, with which body."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "extensions" / "lnds-spe-airlock"))
from lnds_spe_airlock.proxy import (  # noqa: E402
    ProxyRefused,
    Settings,
    check_call,
    outgoing_body,
    target_url,
)

WORKSPACE = Settings("workspace", "demo", "http://10.89.0.1:8010/services/airlock/api/")
REVIEW = Settings("review", "", "http://10.89.1.1:8010/services/airlock/api/")


@pytest.mark.parametrize("settings, method, path", [
    (WORKSPACE, "GET", "requests"),
    (WORKSPACE, "POST", "requests"),
    (WORKSPACE, "POST", "requests/demo-1a2b3c4d/files"),
    (WORKSPACE, "DELETE", "requests/demo-1a2b3c4d/files/sub/t.csv"),
    (WORKSPACE, "POST", "requests/demo-1a2b3c4d/submit"),
    (WORKSPACE, "GET", "projects/demo/outputs"),
    (REVIEW, "GET", "requests/demo-1a2b3c4d/files/t.csv"),
    (REVIEW, "PUT", "requests/demo-1a2b3c4d/files/t.csv/vote"),
    (REVIEW, "POST", "requests/demo-1a2b3c4d/release"),
])
def test_allowed_calls(settings, method, path):
    check_call(method, path, settings)


@pytest.mark.parametrize("settings, method, path, reason", [
    (WORKSPACE, "GET", "requests/demo-1a2b3c4d/release", "from the hub"),
    (WORKSPACE, "GET", "requests/demo-1a2b3c4d/files/t.csv", "not offered in a workspace"),
    (WORKSPACE, "POST", "requests/demo-1a2b3c4d/approve", "not offered in a workspace"),
    (WORKSPACE, "GET", "projects/other/outputs", "belongs to project demo"),
    (WORKSPACE, "GET", "openapi.json", "not an airlock call"),
    (WORKSPACE, "GET", "requests/../../hub/api/users", "not an airlock API path"),
    (REVIEW, "POST", "requests", "not offered in a review"),
    (REVIEW, "POST", "requests/demo-1a2b3c4d/files", "not offered in a review"),
])
def test_refused_calls(settings, method, path, reason):
    with pytest.raises(ProxyRefused, match=reason):
        check_call(method, path, settings)


def test_target_is_under_the_airlock_api_with_segments_encoded():
    url = target_url("requests/demo-1/files/a b#.csv", WORKSPACE)
    assert url == "http://10.89.0.1:8010/services/airlock/api/requests/demo-1/files/a%20b%23.csv"
    with pytest.raises(ProxyRefused, match="SPE_AIRLOCK_API_URL"):
        target_url("requests", Settings("workspace", "demo", ""))


def test_a_new_request_is_always_in_the_workspaces_project():
    body = outgoing_body("POST", "requests", json.dumps({"project": "other", "title": "t"}).encode(),
                         WORKSPACE)
    assert json.loads(body) == {"project": "demo", "title": "t"}
    assert outgoing_body("POST", "requests/x/submit", b"", WORKSPACE) == b""
    with pytest.raises(ProxyRefused):
        outgoing_body("POST", "requests", b"[1]", WORKSPACE)
