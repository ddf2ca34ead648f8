"""The airlock from inside: its port (and nothing else new) answers on the gateway, the lab
extension's server part forwards the lab's calls with the server's own token, and checkers get a
review server with no project data on a network of its own."""

import json
import shutil
import socket
import subprocess
import threading

import requests

from lnds_spe.hub.lockdown import review_network_name

from .conftest import IMAGE, inspect_container, start_workspace
from .test_network import connect_from, gateway_of

WHOAMI = r"""
import json, os, urllib.request
request = urllib.request.Request(os.environ["SPE_AIRLOCK_API_URL"] + "whoami",
                                 headers={"Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"]})
print(json.dumps(json.load(urllib.request.urlopen(request, timeout=10))))
"""


def airlock_port(hub) -> int:
    return int(hub.env["SPE_AIRLOCK_PORT"])


def test_airlock_port_answers_from_inside_and_nothing_else_new(ws_alice_pa):
    """The airlock's port on the gateway is open, a new host listener beside it is not; the
    server's own token reaches the airlock as alice with the request scope only."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", 0))
    server.listen(4)
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    try:
        other = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", other), timeout=3):
            pass  # positive control: the listener answers on the host
        gateway = gateway_of(ws_alice_pa)
        port = airlock_port(ws_alice_pa.hub)
        result = connect_from(ws_alice_pa, [(gateway, port), (gateway, other), (gateway, port + 1)])
        assert result[f"{gateway}:{port}"] == "connected", result
        assert result[f"{gateway}:{other}"] != "connected", result
        assert result[f"{gateway}:{port + 1}"] != "connected", result
        assert len(accepted) == 1  # only the positive control got through
    finally:
        server.close()
    me = json.loads(ws_alice_pa.run(WHOAMI))
    assert me["name"] == "alice"
    assert "custom:airlock:request" in me["scopes"]
    assert "custom:airlock:review" not in me["scopes"]


def test_lab_extension_forwards_the_labs_calls_with_the_servers_token(ws_alice_pa):
    """Through the hub's proxy to alice's server: config, a request filed in her project whatever
    the lab asks, a file frozen from ~/outputs; bundles and file contents refused in a workspace."""
    hub = ws_alice_pa.hub
    ws_alice_pa.run("open('/home/jovyan/outputs/lab-table.csv', 'w').write('g,n\\na,12\\nb,14\\n')")
    api = requests.Session()
    api.headers["Authorization"] = f"token {hub.token('alice')}"
    base = f"{ws_alice_pa.base}/lnds-spe-airlock"
    config = api.get(f"{base}/config", timeout=30)
    assert config.status_code == 200, config.text
    assert config.json() == {"kind": "workspace", "project": "pa", "configured": True}
    made = api.post(f"{base}/api/requests", timeout=60,
                    json={"project": "pb", "title": "Counts by group", "purpose": "test"})
    assert made.status_code == 201, made.text
    request = made.json()
    assert request["project"] == "pa" and request["author"] == "alice"
    added = api.post(f"{base}/api/requests/{request['id']}/files", timeout=60,
                     json={"name": "lab-table.csv", "kind": "output"})
    assert added.status_code == 201, added.text
    assert [f["name"] for f in added.json()["files"]] == ["lab-table.csv"]
    outputs = api.get(f"{base}/api/projects/pa/outputs", timeout=30)
    assert "lab-table.csv" in [o["name"] for o in outputs.json()]
    for path in (f"requests/{request['id']}/release", f"requests/{request['id']}/files/lab-table.csv",
                 "projects/pb/outputs", "openapi.json"):
        refused = api.get(f"{base}/api/{path}", timeout=30)
        assert refused.status_code == 403, (path, refused.status_code, refused.text)


def test_checker_review_server_has_no_data_and_its_own_network(hub, ws_alice_pa):
    """grace (output checker of pa, researcher of nothing) gets a review server: no data or outputs
    mounted, a network of her own reaching the hub and the airlock, a token with the review scope;
    alice (researcher, not a checker) is refused one."""
    refused = hub.spawn("alice", "review", image=IMAGE)
    assert 400 <= refused.status_code < 500, refused.text
    review = start_workspace(hub, "grace", "review")
    info = inspect_container(review.container)
    networks = info["NetworkSettings"]["Networks"]
    assert list(networks) == [review_network_name(hub.prefix, "grace")]
    assert gateway_of(review) != gateway_of(ws_alice_pa)
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert set(mounts) == {"/home/jovyan", "/etc/resolv.conf"}, mounts  # no data, no outputs
    assert mounts["/home/jovyan"]["Type"] == "volume"
    assert mounts["/etc/resolv.conf"]["RW"] is False
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    inside = json.loads(review.run(
        "import os, json; print(json.dumps({'data': os.path.exists('/home/jovyan/data/cohort'), "
        "'outputs': os.listdir('/home/jovyan/outputs') if os.path.isdir('/home/jovyan/outputs') "
        "else None, 'kind': os.environ['SPE_SERVER_KIND']}))"))
    assert inside == {"data": False, "outputs": [], "kind": "review"}  # the image's empty folder
    gateway = gateway_of(review)
    result = connect_from(review, [(gateway, int(hub.env["SPE_HUB_API_PORT"])),
                                   (gateway, airlock_port(hub)), (gateway_of(ws_alice_pa), 8888)])
    assert list(result.values())[:2] == ["connected", "connected"], result
    assert list(result.values())[2] != "connected", result
    me = json.loads(review.run(WHOAMI))
    assert me["name"] == "grace" and "custom:airlock:review" in me["scopes"]
    assert "custom:airlock:request" not in me["scopes"]
    config = requests.get(f"{review.base}/lnds-spe-airlock/config", timeout=30,
                          headers={"Authorization": f"token {hub.token('grace')}"})
    assert config.json() == {"kind": "review", "project": "", "configured": True}
    denied = [e for e in hub.registry().audit.query() if e.action == "workspace.spawn_denied"
              and e.actor == "alice" and json.loads(e.details).get("server") == "review"]
    assert denied, "alice's refused review server was not audited"


def test_image_has_the_lab_extension_enabled_and_ok():
    """`jupyter labextension list` in the workspace image shows the airlock extension enabled, OK."""
    engine = shutil.which("podman") or shutil.which("docker")
    assert engine, "podman is missing: run scripts/engine-setup.sh"
    out = subprocess.run([engine, "run", "--rm", "--network=none", IMAGE, "sh", "-c",
                          "jupyter labextension list 2>&1; jupyter server extension list 2>&1"],
                         capture_output=True, text=True, timeout=120)
    lines = out.stdout.splitlines()
    assert any("lnds-spe-airlock" in line and "enabled" in line and "OK" in line for line in lines), \
        out.stdout
    assert any("lnds_spe_airlock" in line and "enabled" in line for line in lines), out.stdout
