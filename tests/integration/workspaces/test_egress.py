"""E1: raw files never leave a workspace through its Jupyter server; notebooks and text still open.

Every request goes through the real hub's proxy to a real spawned workspace, with the researcher's
own credentials (API token, or the browser's login session). Paths are sent byte for byte
(http.client), so percent-encodings, double slashes and dot segments reach the proxy and the
server as a hand-made request would send them.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
from urllib.parse import urlsplit

import pytest

from .conftest import Workspace, engine_socket, start_workspace

DATA = "data/cohort/visits.csv"  # the project's dataset, mounted read-only
DATA_TEXT = "id,age\n1,40\n2,51\n"
NOTEBOOK = "egress-analysis.ipynb"
NOTEBOOK_MARK = "egress-notebook-cell"
TEXT = "egress-notes.txt"
BLOB = "egress-blob.bin"
LEAK_MARKERS = ("1,40", "2,51", "aWQsYWdl")  # the dataset's rows, and its start in base64

SETUP = r"""
import os, nbformat
home = os.path.expanduser("~")
nb = nbformat.v4.new_notebook()
nb.cells.append(nbformat.v4.new_code_cell("print('egress-notebook-cell')"))
nbformat.write(nb, os.path.join(home, "egress-analysis.ipynb"))
open(os.path.join(home, "egress-notes.txt"), "w").write("egress notes\n")
open(os.path.join(home, "egress-blob.bin"), "wb").write(bytes(range(256)) + b"1,40")
print("ready")
"""


@pytest.fixture(scope="module")
def ws(ws_alice_pa) -> Workspace:
    """alice's pa workspace with a notebook, a text file and a binary file in her home."""
    assert ws_alice_pa.run(SETUP).strip() == "ready"
    return ws_alice_pa


def send(ws: Workspace, method: str, target: str, body: bytes | None = None,
         headers: dict | None = None) -> tuple[int, dict, bytes]:
    """One request through the hub's proxy, `target` (path + query below the workspace's URL)
    sent exactly as written; status, headers (lower-case names) and body."""
    url = urlsplit(ws.hub.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    all_headers = {"Authorization": f"token {ws.hub.token(ws.user)}", **(headers or {})}
    if body is not None:
        all_headers.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, f"/user/{ws.user}/{ws.project}{target}", body=body,
                     headers=all_headers)
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


def assert_refused(ws: Workspace, method: str, target: str, **kwargs) -> None:
    """The request is refused with 403 and the airlock message, and hands out nothing."""
    status, headers, body = send(ws, method, target, **kwargs)
    where = f"{method} {target}"
    assert status == 403, f"{where}: {status} {body[:300]!r}"
    assert "attachment" not in headers.get("content-disposition", ""), where
    text = body.decode(errors="replace")
    assert not any(marker in text for marker in LEAK_MARKERS), f"{where} leaked: {text[:300]}"
    if method != "HEAD":
        assert "export request (the airlock)" in json.loads(body)["message"], f"{where}: {text}"


FILES_ROUTES = [
    f"/files/{DATA}",
    f"/files/{DATA}?download=1",
    f"/files/{TEXT}",
    f"/files/{NOTEBOOK}",
    f"/files/{BLOB}",
    "/files",
    "/files/",
    f"/files/{DATA}/",
    f"//files/{DATA}",
    f"/files//{DATA}",
    f"/%66iles/{DATA}",
    f"/%2566iles/{DATA}",
    f"/files%2F{DATA}",
    f"/FILES/{DATA}",
    f"/./files/{DATA}",
    f"/lab/../files/{DATA}",
    f"/lab/%2E%2E/files/{DATA}",
    f"/view/{DATA}",
    f"/view/{TEXT}",
]


@pytest.mark.parametrize("target", FILES_ROUTES)
def test_e1_files_and_view_routes_refused(ws, target):
    """E1: /files/... and /view/..., in every spelling, with GET and HEAD."""
    assert_refused(ws, "GET", target)
    assert_refused(ws, "HEAD", target)


@pytest.mark.parametrize("target", [
    f"/files/{DATA}?download=1",
    f"/api/contents/{DATA}?type=file&format=text&download=1",
    f"/api/contents/{TEXT}?format=text&download=0",
    f"/api/contents/{NOTEBOOK}?type=notebook&Download=true",
    f"/api/contents/{DATA}?DOWNLOAD=1&format=text",
    f"/api/contents/{DATA}?%64ownload=1&format=text",
    f"/api/contents/{DATA}?download&format=text",
    f"/lab/tree/{DATA}?download=1",
    "/lab?download=1",
    "/lab/api/settings?download=1",
    "/api/kernels?download=1",
])
def test_e1_download_parameter_refused_everywhere(ws, target):
    """E1: any `download` parameter, in any case or encoding, on any route (GET and HEAD)."""
    assert_refused(ws, "GET", target)
    assert_refused(ws, "HEAD", target)


@pytest.mark.parametrize(("method", "target"), [
    ("GET", f"/nbconvert/html/{NOTEBOOK}?download=true"),
    ("GET", f"/nbconvert/script/{NOTEBOOK}?download=true"),
    ("GET", f"/nbconvert/html/{NOTEBOOK}"),
    ("GET", f"/nbconvert/markdown/{NOTEBOOK}"),
    ("HEAD", f"/nbconvert/html/{NOTEBOOK}"),
    ("GET", f"/%6Ebconvert/html/{NOTEBOOK}"),
    ("GET", f"//nbconvert/html/{NOTEBOOK}"),
])
def test_e1_nbconvert_downloads_refused(ws, method, target):
    """E1: every nbconvert route ("Save and Export Notebook As")."""
    assert_refused(ws, method, target)


def test_e1_nbconvert_post_refused(ws):
    """E1: converting a notebook posted in the body is an nbconvert download too."""
    notebook = json.loads(ws.run(f"print(open('{NOTEBOOK}').read())"))
    body = json.dumps({"content": notebook}).encode()
    assert_refused(ws, "POST", "/nbconvert/html", body=body)


@pytest.mark.parametrize("target", [
    f"/api/contents/{BLOB}?format=base64",
    f"/api/contents/{BLOB}?type=file&content=1&format=base64",
    f"/api/contents/{BLOB}?content=1&format=base64&hash=0",
    f"/api/contents/{BLOB}",  # no format: the server would pick base64 for a binary file
    f"/api/contents/{BLOB}?type=file&content=1",
    f"/api/contents/{BLOB}?FORMAT=base64",  # ignored by the server's parser, refused here
    f"/api/contents/{DATA}?format=base64",
    f"/api/contents/{DATA}?content=1&format=base64",
    f"/api/contents/{DATA}?format=text&format=base64",
    f"/api/contents/{DATA}?format=%62ase64",
    f"/api//contents/{DATA}?format=base64",
    f"/api/contents/{DATA}/?format=base64",
    f"/api/%63ontents/{DATA}?format=base64",
])
def test_e1_binary_contents_refused(ws, target):
    """E1: the contents API never hands out a file's bytes (base64)."""
    assert_refused(ws, "GET", target)


def test_e1_notebooks_and_text_still_open_and_save(ws):
    """E1's other half: the lab opens and saves notebooks and text files as before."""
    status, _, body = send(ws, "GET", f"/api/contents/{NOTEBOOK}?type=notebook&content=1&hash=0")
    assert status == 200, body[:300]
    model = json.loads(body)
    assert model["type"] == "notebook" and model["format"] == "json"
    assert NOTEBOOK_MARK in model["content"]["cells"][0]["source"]

    status, _, body = send(ws, "GET", f"/api/contents/{DATA}?type=file&format=text&content=1")
    assert status == 200, body[:300]
    assert json.loads(body)["content"] == DATA_TEXT
    status, _, body = send(ws, "GET", f"/api/contents/{TEXT}?format=text")
    assert status == 200 and json.loads(body)["content"] == "egress notes\n"
    status, _, body = send(ws, "GET", f"/api/contents/{DATA}")  # no format: text file as text
    assert status == 200 and json.loads(body)["format"] == "text"

    model["content"]["cells"][0]["source"] = f"print('{NOTEBOOK_MARK} saved')"
    save = json.dumps({"type": "notebook", "format": "json", "content": model["content"]})
    status, _, body = send(ws, "PUT", f"/api/contents/{NOTEBOOK}", body=save.encode())
    assert status == 200, body[:300]
    status, _, body = send(ws, "GET", f"/api/contents/{NOTEBOOK}?type=notebook&content=1")
    assert "saved" in json.loads(body)["content"]["cells"][0]["source"]

    text = json.dumps({"type": "file", "format": "text", "content": "edited\n"}).encode()
    status, _, body = send(ws, "PUT", f"/api/contents/{TEXT}", body=text)
    assert status in (200, 201), body[:300]
    status, _, body = send(ws, "GET", f"/api/contents/{TEXT}?type=file&format=text&content=1")
    assert json.loads(body)["content"] == "edited\n"

    status, _, body = send(ws, "GET", "/api/contents?content=1&hash=0")
    assert status == 200
    names = {item["name"] for item in json.loads(body)["content"]}
    assert {NOTEBOOK, TEXT, BLOB, "data", "outputs"} <= names
    status, _, body = send(ws, "GET", f"/api/contents/{BLOB}?content=0")  # metadata only
    assert status == 200 and json.loads(body)["content"] is None
    for target in ("/lab", "/lab/api/settings?ids_only=true", "/api/nbconvert", "/api/kernels"):
        status, _, body = send(ws, "GET", target)
        assert status == 200, f"{target}: {status} {body[:200]!r}"


def test_e1_browser_session_refused(ws):
    """E1 as a researcher's browser does it: logged in at the hub, Download on a dataset file."""
    session = ws.hub.login(ws.user)
    lab = session.get(f"{ws.base}/lab", timeout=60)
    assert lab.status_code == 200 and "JupyterLab" in lab.text, lab.status_code
    answer = session.get(f"{ws.base}/files/{DATA}?download=1", timeout=60,
                         allow_redirects=False)
    assert answer.status_code == 403, answer.status_code
    assert "attachment" not in answer.headers.get("Content-Disposition", "")
    assert "export request (the airlock)" in answer.json()["message"]
    assert not any(marker in answer.text for marker in LEAK_MARKERS)
    opened = session.get(f"{ws.base}/api/contents/{NOTEBOOK}?type=notebook&content=1",
                         timeout=60)
    assert opened.status_code == 200 and opened.json()["type"] == "notebook"


PLUGINS_OFF = ("@jupyterlab/docmanager-extension:download",
               "@jupyterlab/filebrowser-extension:download",
               "@jupyterlab/filebrowser-extension:open-browser-tab",
               "@jupyterlab/notebook-extension:export")


def test_e1_lab_offers_no_download(ws):
    """The lab does not offer what the server refuses: download and export plugins disabled,
    their menu entries switched off in the defaults."""
    status, _, body = send(ws, "GET", "/lab")
    found = re.search(rb'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                      body, re.S)
    assert status == 200 and found, body[:300]
    disabled = json.loads(found.group(1))["disabledExtensions"]
    assert set(PLUGINS_OFF) <= set(disabled), disabled

    status, _, body = send(ws, "GET", "/lab/api/settings/@jupyterlab/mainmenu-extension:plugin")
    assert status == 200
    menus = json.loads(body)["schema"]["properties"]["menus"]["default"]
    file_items = [item for menu in menus if menu["id"] == "jp-mainmenu-file"
                  for item in menu["items"]]
    assert {"command": "docmanager:download", "rank": 6, "disabled": True} in file_items
    status, _, body = send(ws, "GET",
                           "/lab/api/settings/@jupyterlab/application-extension:context-menu")
    items = json.loads(body)["schema"]["properties"]["contextMenu"]["default"]
    off = {item["command"] for item in items if item.get("disabled")}
    assert {"filebrowser:download", "filebrowser:copy-download-link",
            "filebrowser:open-browser-tab"} <= off


def test_e1_refusals_logged_by_the_server(ws):
    """Each refusal is logged by the workspace's server (its container log), naming the caller."""
    assert_refused(ws, "GET", f"/files/{DATA}?download=1")
    logs = subprocess.run(["curl", "-sS", "--unix-socket", engine_socket(),
                           f"http://d/containers/{ws.container}/logs?stdout=true&stderr=true"],
                          capture_output=True, timeout=30, check=True).stdout
    lines = [line for line in logs.decode(errors="replace").splitlines()
             if "lnds_spe.egress refused" in line]
    assert any("rule=download-parameter" in line and f"caller={ws.user}" in line
               and f"owner={ws.user}" in line for line in lines), lines[-5:]


SERVER_MEMORY = r"""
import json, os
server = os.getppid()
tries = {}
for name, mode in (("mem", "r+b"), ("mem", "rb"), ("environ", "rb")):
    try:
        open(f"/proc/{server}/{name}", mode).close()
        tries[f"{name}:{mode}"] = "opened"
    except PermissionError:
        tries[f"{name}:{mode}"] = "refused"
own = open(f"/proc/{os.getpid()}/environ", "rb").read()
cmdline = open(f"/proc/{server}/cmdline", "rb").read().decode()
print(json.dumps({"tries": tries, "own_ok": len(own) > 0, "server": cmdline}))
"""


def test_e1_kernel_cannot_patch_the_running_server(ws):
    """Researcher code (same uid as the server) cannot open the server's memory to switch the
    guard off: the server is non-dumpable; the kernel itself is an ordinary process."""
    result = ws.execute(SERVER_MEMORY)
    assert result["error"] is None, result["error"]
    found = json.loads(result["stdout"])
    assert "jupyterhub-singleuser" in found["server"] or "jupyter" in found["server"], found
    assert found["tries"] == {"mem:r+b": "refused", "mem:rb": "refused", "environ:rb": "refused"}
    assert found["own_ok"]


HOME_TAMPERING = r"""
import json, os, shutil
home = os.path.expanduser("~")
off = {"ServerApp": {"jpserver_extensions": {"lnds_spe.workspace.egress": False}}}
for folder in (os.path.join(home, ".jupyter"), os.path.join(home, ".jupyter", "jupyter_server_config.d")):
    os.makedirs(folder, exist_ok=True)
json.dump(off, open(os.path.join(home, ".jupyter", "jupyter_server_config.json"), "w"))
json.dump(off, open(os.path.join(home, ".jupyter", "jupyter_server_config.d", "zz.json"), "w"))
open(os.path.join(home, ".jupyter", "jupyter_server_config.py"), "w").write(
    "c.ServerApp.jpserver_extensions = {'lnds_spe.workspace.egress': False}\n")
share = os.path.join(home, ".local", "share", "jupyter")
for folder in ("kernels/leak", "labextensions/leak/static", "lab/themes/leak"):
    os.makedirs(os.path.join(share, folder), exist_ok=True)
    shutil.copy(os.path.expanduser("~/data/cohort/visits.csv"), os.path.join(share, folder))
json.dump({"argv": ["python3"], "display_name": "leak", "language": "python"},
          open(os.path.join(share, "kernels/leak/kernel.json"), "w"))
from jupyter_core.paths import jupyter_config_dir, jupyter_config_path, jupyter_path
writable = os.access(jupyter_config_dir(), os.W_OK)
print(json.dumps({"config_dir": jupyter_config_dir(), "config_dir_writable": writable,
                  "config_path": jupyter_config_path(), "data_path": jupyter_path()}))
"""


def test_e1_home_cannot_switch_the_guard_off(hub):
    """The researcher's code writes Jupyter config and data files into the home volume (which
    outlives the container) to switch the guard off or have the server hand out files; after a
    restart the guard still refuses and none of those files is served."""
    bob = start_workspace(hub, "bob", "pa")
    try:
        facts = json.loads(bob.run(HOME_TAMPERING))
        assert not facts["config_dir_writable"], facts
        assert not any(p.startswith("/home") for p in facts["config_path"] + facts["data_path"]), \
            facts
        hub.stop_server("bob", "pa")
        bob = start_workspace(hub, "bob", "pa")
        assert_refused(bob, "GET", f"/files/{DATA}?download=1")
        assert_refused(bob, "GET", f"/api/contents/{BLOB}?format=base64")
        for target in ("/kernelspecs/leak/visits.csv", "/lab/extensions/leak/static/visits.csv",
                       "/lab/api/themes/leak/visits.csv"):
            status, _, body = send(bob, "GET", target)
            assert status in (403, 404), f"{target}: {status} {body[:200]!r}"
            assert not any(marker in body.decode(errors="replace") for marker in LEAK_MARKERS)
        status, _, body = send(bob, "GET", "/api/kernelspecs")
        assert status == 200 and "leak" not in json.loads(body)["kernelspecs"]
    finally:
        hub.stop_server("bob", "pa")
