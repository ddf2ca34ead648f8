"""E1, the pure decision: which requests to a workspace's Jupyter server hand a file out."""

import json

import pytest

from lnds_spe.workspace import egress as workspace_egress
from lnds_spe.workspace.egress import model_hands_out_bytes, refusal

BASE = "/user/alice/pa/"
CSV = "data/survey/survey.csv"


def rule(method: str, path: str, query: str = "") -> str | None:
    """The refusing rule's name for a request under BASE, or None if it is allowed."""
    verdict = refusal(method, path, query, BASE)
    return verdict.rule if verdict else None


@pytest.mark.parametrize(("method", "path", "query", "expected"), [
    # The raw-file route, in every spelling the server or a proxy might accept.
    ("GET", f"{BASE}files/{CSV}", "", "files-route"),
    ("HEAD", f"{BASE}files/{CSV}", "", "files-route"),
    ("POST", f"{BASE}files/{CSV}", "", "files-route"),
    ("OPTIONS", f"{BASE}files/{CSV}", "", "files-route"),
    ("GET", f"{BASE}files", "", "files-route"),
    ("GET", f"{BASE}files/", "", "files-route"),
    ("GET", f"{BASE}files/{CSV}/", "", "files-route"),
    ("GET", f"{BASE}/files/{CSV}", "", "files-route"),
    ("GET", f"/user//alice/pa//files//{CSV}", "", "files-route"),
    ("GET", f"{BASE}%66iles/{CSV}", "", "files-route"),
    ("GET", f"{BASE}%2566iles/{CSV}", "", "files-route"),
    ("GET", f"{BASE}files%2F{CSV}", "", "files-route"),
    ("GET", f"{BASE}FILES/{CSV}", "", "files-route"),
    ("GET", f"{BASE}Files/{CSV}", "", "files-route"),
    ("GET", f"{BASE}lab/../files/{CSV}", "", "files-route"),
    ("GET", f"{BASE}lab/%2E%2E/files/{CSV}", "", "files-route"),
    ("GET", f"{BASE}./files/{CSV}", "", "files-route"),
    ("GET", f"/USER/Alice/PA/files/{CSV}", "", "files-route"),
    ("GET", f"/files/{CSV}", "", "files-route"),
    # The view page (an iframe on /files) and every nbconvert route.
    ("GET", f"{BASE}view/{CSV}", "", "view-route"),
    ("GET", f"{BASE}nbconvert/html/analysis.ipynb", "download=true", "download-parameter"),
    ("GET", f"{BASE}nbconvert/html/analysis.ipynb", "", "nbconvert-route"),
    ("GET", f"{BASE}nbconvert/script/analysis.ipynb", "", "nbconvert-route"),
    ("POST", f"{BASE}nbconvert/html", "", "nbconvert-route"),
    ("GET", f"{BASE}%6Ebconvert/pdf/analysis.ipynb", "", "nbconvert-route"),
    # A download parameter anywhere, in any case or encoding, with any value.
    ("GET", f"{BASE}files/{CSV}", "download=1", "download-parameter"),
    ("GET", f"{BASE}api/contents/{CSV}", "download=1", "download-parameter"),
    ("GET", f"{BASE}api/contents/{CSV}", "type=file&format=text&download=0", "download-parameter"),
    ("GET", f"{BASE}lab/tree/{CSV}", "download=1", "download-parameter"),
    ("GET", f"{BASE}lab/api/settings", "DOWNLOAD=1", "download-parameter"),
    ("GET", f"{BASE}lab", "Download=true", "download-parameter"),
    ("GET", f"{BASE}lab", "download", "download-parameter"),
    ("GET", f"{BASE}lab", "download=", "download-parameter"),
    ("GET", f"{BASE}lab", "%64ownload=1", "download-parameter"),
    ("GET", f"{BASE}lab", "%2564ownload=1", "download-parameter"),
    ("HEAD", f"{BASE}api/contents/{CSV}", "download=1", "download-parameter"),
    # The contents API asked for a file's bytes as base64.
    ("GET", f"{BASE}api/contents/{CSV}", "format=base64", "contents-base64"),
    ("GET", f"{BASE}api/contents/{CSV}", "content=1&format=base64", "contents-base64"),
    ("GET", f"{BASE}api/contents/{CSV}", "type=file&FORMAT=Base64&content=1", "contents-base64"),
    ("GET", f"{BASE}api/contents/{CSV}", "format=text&format=base64", "contents-base64"),
    ("GET", f"{BASE}api/contents/{CSV}", "format=base64&format=text", "contents-base64"),
    ("GET", f"{BASE}api/contents/{CSV}", "format=%62ase64", "contents-base64"),
    ("GET", f"{BASE}api//contents/{CSV}", "format=base64", "contents-base64"),
    ("GET", f"{BASE}api/%63ontents/{CSV}", "format=base64", "contents-base64"),
    ("GET", f"{BASE}lab/api/contents/{CSV}", "format=base64", "contents-base64"),
    ("HEAD", f"{BASE}api/contents/{CSV}/", "format=base64", "contents-base64"),
])
def test_refused(method, path, query, expected):
    assert rule(method, path, query) == expected


@pytest.mark.parametrize(("method", "path", "query"), [
    # What the lab does to open, save and list: notebooks as JSON, text as text.
    ("GET", f"{BASE}api/contents/analysis.ipynb", "type=notebook&content=1&hash=0"),
    ("GET", f"{BASE}api/contents/{CSV}", "type=file&format=text&content=1&hash=0"),
    ("GET", f"{BASE}api/contents/notes.txt", "format=text"),
    ("GET", f"{BASE}api/contents/data/survey", "content=1&hash=0"),
    ("GET", f"{BASE}api/contents", ""),
    ("GET", f"{BASE}api/contents/{CSV}", "content=0"),
    ("PUT", f"{BASE}api/contents/analysis.ipynb", ""),
    ("PATCH", f"{BASE}api/contents/old.txt", ""),
    ("POST", f"{BASE}api/contents/outputs", ""),
    ("POST", f"{BASE}api/contents/analysis.ipynb/checkpoints", ""),
    # Folders and files whose names only look like routes.
    ("GET", f"{BASE}api/contents/files/notes.txt", "format=text"),
    ("GET", f"{BASE}api/contents/view.csv", "format=text"),
    ("GET", f"{BASE}api/contents/download/notes.txt", "format=text"),
    ("GET", f"{BASE}lab/tree/files/analysis.ipynb", ""),
    ("GET", f"{BASE}lab/tree/nbconvert.ipynb", ""),
    # The lab itself, its APIs, kernels and the exporter list (harmless metadata).
    ("GET", f"{BASE}lab", ""),
    ("GET", f"{BASE}lab/", ""),
    ("GET", f"{BASE}lab/api/settings", "ids_only=true"),
    ("PUT", f"{BASE}lab/api/settings/@jupyterlab/apputils-extension:themes", ""),
    ("GET", f"{BASE}lab/api/workspaces/default", ""),
    ("GET", f"{BASE}api/kernels", ""),
    ("POST", f"{BASE}api/kernels", ""),
    ("GET", f"{BASE}api/nbconvert", ""),
    ("GET", f"{BASE}api/kernelspecs", ""),
    ("GET", f"{BASE}kernelspecs/python3/logo-64x64.png", ""),
    ("GET", f"{BASE}static/lab/main.js", "v=1"),
    ("GET", f"{BASE}api", ""),
    ("GET", f"{BASE}api/contents/{CSV}", "format=text&note=base64"),
])
def test_allowed(method, path, query):
    assert refusal(method, path, query, BASE) is None


def test_base_url_is_case_and_slash_insensitive():
    assert refusal("GET", "/user/alice/pa/files/x", "", "/user/alice/pa") is not None
    assert refusal("GET", "/user/alice/pa/lab", "", "/user/alice/pa") is None
    assert refusal("GET", "/files/x", "", "/") is not None


def test_decoding_is_bounded_and_deeper_encodings_refused():
    nested = "%66iles"
    for _ in range(40):
        nested = nested.replace("%", "%25")
    assert rule("GET", f"{BASE}{nested}/x") == "over-encoded"
    assert rule("GET", f"{BASE}api/contents/100%25.txt", "format=text") is None


def test_binary_contents_answers_refused_text_and_notebooks_allowed():
    assert model_hands_out_bytes({"type": "file", "format": "base64", "content": "AAEC"})
    assert model_hands_out_bytes({"type": "file", "format": "base64", "content": ""})
    assert not model_hands_out_bytes({"type": "file", "format": "base64", "content": None})
    assert not model_hands_out_bytes({"type": "file", "format": "text", "content": "a,b\n"})
    assert not model_hands_out_bytes({"type": "notebook", "format": "json", "content": {}})
    assert not model_hands_out_bytes({"type": "directory", "format": "json", "content": []})


def test_refusal_body_names_the_airlock():
    body = json.loads(workspace_egress.refusal_body("files-route"))
    assert "export request" in body["message"] and "airlock" in body["message"]
    assert body["reason"] == "egress refused (files-route)"


def test_extension_point_names_this_module():
    points = workspace_egress._jupyter_server_extension_points()
    assert points == [{"module": "lnds_spe.workspace.egress"}]
