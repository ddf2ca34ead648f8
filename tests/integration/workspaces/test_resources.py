"""R1 and R2: idle workspaces are culled (busy ones only at their max age); memory is capped."""

import json
import os
import subprocess
import sys
import time
import uuid

import requests
import websocket

from .conftest import start_workspace


def test_r2_memory_hog_killed_inside(ws_alice_pa):
    """R2: a kernel allocating past the 1G limit is killed; the workspace and hub stay up."""
    result = ws_alice_pa.execute(
        "blocks = []\nfor _ in range(40):\n    blocks.append(bytearray(64 * 1024 * 1024))\n"
        "print('survived')", timeout=120)
    assert "survived" not in result["stdout"]
    assert result["status"] in ("restarting", "dead", "closed") or result["error"], result
    hub = ws_alice_pa.hub
    assert requests.get(hub.api, timeout=10).status_code == 200
    status = requests.get(f"{ws_alice_pa.base}/api/status", timeout=30,
                          headers={"Authorization": f"token {hub.token('alice')}"})
    assert status.status_code == 200
    assert ws_alice_pa.run("print(6 * 7)").strip() == "42"


def test_r1_idle_culled_busy_kept_until_max_age(hub):
    """R1: the real idle culler stops an idle workspace, and a busy one only at its max age."""
    idle_requested = time.monotonic()
    start_workspace(hub, "dave", "pa")
    busy = start_workspace(hub, "dave", "pd")
    kernel = busy.start_kernel()
    token = hub.token(busy.user)
    conn = websocket.create_connection(
        busy.base.replace("http://", "ws://") + f"/api/kernels/{kernel}/channels",
        header=[f"Authorization: token {token}"], timeout=30)
    conn.send(json.dumps({
        "header": {"msg_id": uuid.uuid4().hex, "msg_type": "execute_request", "username": "dave",
                   "session": uuid.uuid4().hex, "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": "import time\ntime.sleep(600)", "silent": False}}))
    conn.close()
    scopes = ["list:users!user=dave", "read:users:activity!user=dave",
              "read:servers!user=dave", "delete:servers!user=dave"]
    answer = hub.call("admin", "POST", "/users/admin/tokens",
                      json={"note": "culler scoped to dave", "scopes": scopes})
    assert answer.status_code in (200, 201), answer.text
    env = {**os.environ, "JUPYTERHUB_API_URL": hub.api,
           "JUPYTERHUB_API_TOKEN": answer.json()["token"]}
    culler = subprocess.Popen([sys.executable, "-m", "jupyterhub_idle_culler", "--timeout=30",
                               "--cull-every=5", "--max-age=100"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.monotonic()
    try:
        hub.wait_gone("dave", "pa", timeout=90)
        assert time.monotonic() - idle_requested >= 30, "culled before its idle timeout"
        while time.monotonic() - started < 70:
            assert hub.server("dave", "pd") is not None, "busy workspace culled while busy"
            time.sleep(3)
        hub.wait_gone("dave", "pd", timeout=90)
        assert time.monotonic() - started >= 75, "busy workspace culled before its max age"
    finally:
        culler.terminate()
        culler.wait()
