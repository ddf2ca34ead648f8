"""D4 and N3: the workspace container is locked down, and its only way out, the hub, works."""

import json

from .conftest import CPU_LIMIT, ENGINE_SOCKET, PIDS_LIMIT, inspect_container

PROBE = r"""
import json, os, subprocess
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
mounts = [line.split() for line in open("/proc/mounts")]
root = [m for m in mounts if m[1] == "/"][0]
try:
    open("/etc/spe-probe", "w")
    root_write = "allowed"
except OSError as error:
    root_write = type(error).__name__
def run(cmd):
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, input="x\n")
        return done.returncode
    except FileNotFoundError:
        return "absent"
sockets = [p for p in ("/var/run/docker.sock", "/run/docker.sock", "{ENGINE_SOCKET}",
                       "/run/podman/podman.sock") if os.path.exists(p)]
found = []
for top in ("/run", "/var/run", "/tmp", "/home", "/mnt", "/srv"):
    for folder, dirs, files in os.walk(top):
        found += [os.path.join(folder, f) for f in files if f.endswith(".sock")]
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "euid": os.geteuid(),
    "cap_eff": status["CapEff"].strip(), "cap_prm": status["CapPrm"].strip(),
    "cap_bnd": status["CapBnd"].strip(), "no_new_privs": status["NoNewPrivs"].strip(),
    "root_options": root[3].split(","), "root_write": root_write,
    "su": run(["su", "-c", "id -u", "root"]), "sudo": run(["sudo", "-n", "id", "-u"]),
    "sockets": sockets + found,
}))
"""


def test_d4_container_runs_locked_down(ws_alice_pa):
    """D4: non-root, no capabilities, no new privileges, read-only root, no engine socket."""
    facts = json.loads(ws_alice_pa.run(PROBE.replace("{ENGINE_SOCKET}", ENGINE_SOCKET)))
    assert facts["uid"] != 0 and facts["euid"] != 0 and facts["gid"] != 0
    assert int(facts["cap_eff"], 16) == 0
    assert int(facts["cap_prm"], 16) == 0
    assert int(facts["cap_bnd"], 16) == 0
    assert facts["no_new_privs"] == "1"
    assert "ro" in facts["root_options"]
    assert facts["root_write"] in ("OSError", "PermissionError")
    assert facts["su"] != 0, "su worked inside the workspace"
    assert facts["sudo"] != 0, "sudo worked inside the workspace"
    assert facts["sockets"] == []


def test_d4_engine_sees_limits_and_lockdown(ws_alice_pa):
    """D4 from the engine's side: limits of the project, lockdown flags, only the expected mounts."""
    info = inspect_container(ws_alice_pa.container)
    host = info["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["Privileged"] is False
    assert "no-new-privileges" in " ".join(host.get("SecurityOpt") or [])
    assert host["Memory"] == 1024**3
    assert host["PidsLimit"] == PIDS_LIMIT
    assert host["CpuQuota"] == int(CPU_LIMIT * host["CpuPeriod"])
    assert info["Config"]["User"].split(":")[0] == "1000"
    targets = {m["Destination"]: m for m in info["Mounts"]}
    assert set(targets) == {"/home/jovyan", "/home/jovyan/data/cohort", "/home/jovyan/outputs",
                            "/etc/resolv.conf"}
    assert targets["/home/jovyan/data/cohort"]["RW"] is False
    assert targets["/etc/resolv.conf"]["RW"] is False
    assert targets["/home/jovyan/outputs"]["RW"] is True
    assert targets["/home/jovyan"]["Type"] == "volume"
    assert not any("sock" in (m.get("Source") or "") for m in info["Mounts"])


def test_d4_limits_visible_inside(ws_alice_pa):
    """D4 from inside: the cgroup limits the kernel runs under are the project's."""
    out = ws_alice_pa.run(r"""
import os, json
def read(*paths):
    for p in paths:
        if os.path.exists(p):
            return open(p).read().strip()
print(json.dumps({
  "mem": read("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"),
  "pids": read("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"),
}))
""")
    limits = json.loads(out)
    assert int(limits["mem"]) == 1024**3
    assert int(limits["pids"]) == PIDS_LIMIT


def test_n3_hub_api_reachable_inside(ws_alice_pa):
    """N3: the hub API answers from inside (the single way out works)."""
    out = ws_alice_pa.run(r"""
import os, urllib.request, json
url = os.environ["JUPYTERHUB_API_URL"]
with urllib.request.urlopen(url, timeout=10) as r:
    print(json.dumps({"status": r.status, "body": json.loads(r.read())}))
""")
    answer = json.loads(out)
    assert answer["status"] == 200
    assert "version" in answer["body"]
