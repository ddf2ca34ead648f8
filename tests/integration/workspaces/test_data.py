"""D1, D2 and the data lifecycle: datasets read-only, other projects' data absent, copy removed."""

import json

from lnds_spe.hub.lockdown import unique_name

DATA_PROBE = r"""
import json, os
root = os.path.expanduser("~/data/cohort")
attempts = {}
def attempt(name, fn):
    try:
        fn(); attempts[name] = "allowed"
    except OSError as error:
        attempts[name] = type(error).__name__
attempt("write", lambda: open(os.path.join(root, "visits.csv"), "a").write("3,99\n"))
attempt("create", lambda: open(os.path.join(root, "new.csv"), "w").write("x"))
attempt("rename", lambda: os.rename(os.path.join(root, "visits.csv"), os.path.join(root, "v.csv")))
attempt("delete", lambda: os.remove(os.path.join(root, "visits.csv")))
attempt("chmod", lambda: os.chmod(os.path.join(root, "visits.csv"), 0o666))
attempt("mkdir", lambda: os.mkdir(os.path.join(root, "sub")))
attempt("rmdir", lambda: os.rmdir(root))
mounts = {m.split()[1]: m.split()[3].split(",") for m in open("/proc/mounts")}
outputs = os.path.expanduser("~/outputs/result.txt")
open(outputs, "w").write("ok")
print(json.dumps({"attempts": attempts, "content": open(os.path.join(root, "visits.csv")).read(),
                  "data_opts": mounts.get(root), "outputs_opts": mounts.get(os.path.dirname(outputs)),
                  "listing": sorted(os.listdir(os.path.expanduser("~/data")))}))
"""


def test_d1_datasets_read_only(ws_alice_pa):
    """D1: writing, creating, renaming, deleting or chmod-ing dataset files fails; mount is ro."""
    facts = json.loads(ws_alice_pa.run(DATA_PROBE))
    assert set(facts["attempts"].values()) <= {"OSError", "PermissionError"}, facts["attempts"]
    assert facts["content"] == "id,age\n1,40\n2,51\n"
    assert "ro" in facts["data_opts"]
    assert "rw" in facts["outputs_opts"]
    shared = ws_alice_pa.hub.state_dir / "outputs" / "pa" / "result.txt"
    assert shared.read_text() == "ok"


def test_d2_other_projects_data_absent(ws_alice_pa, ws_carol_pb):
    """D2: project pb's dataset is absent from pa's workspace (and the other way round)."""
    found = json.loads(ws_alice_pa.run(r"""
import json, os
hits = []
for top in ("/home", "/tmp", "/mnt", "/srv", "/opt", "/run", "/media"):
    for folder, dirs, files in os.walk(top):
        hits += [os.path.join(folder, f) for f in files + dirs
                 if "secretb" in f or "b-only-marker" in f]
print(json.dumps({"hits": hits, "data": sorted(os.listdir(os.path.expanduser("~/data")))}))
"""))
    assert found == {"hits": [], "data": ["cohort"]}
    other = json.loads(ws_carol_pb.run(
        "import os, json; print(json.dumps(sorted(os.listdir(os.path.expanduser('~/data')))))"))
    assert other == ["secretb"]


def test_prepared_copy_removed_after_stop(hub):
    """After stop, the hub-side prepared copy of the datasets is gone from the host."""
    from .conftest import start_workspace

    start_workspace(hub, "dave", "pa")
    prepared = (hub.state_dir / "workspaces" / unique_name("dave") / "pa" / "data" / "cohort"
                / "visits.csv")
    assert prepared.read_text().startswith("id,age")
    events = [e for e in hub.registry().audit.query(project="pa") if e.action == "dataset.mount"]
    assert any(e.actor == "dave" and "cohort" in e.details for e in events)
    hub.stop_server("dave", "pa")
    assert not prepared.parent.parent.exists()


SECRET_PROBE = r"""
import json, os
markers = [m[::-1].encode() for m in REVERSED_MARKERS]  # reversed: kernel history stays clean
hits = []
def scan(path):
    try:
        with open(path, "rb") as handle:
            blob = handle.read(4 << 20)
    except OSError:
        return
    hits.extend(f"{path}: {m.decode()[:12]}" for m in markers if m in blob)
for pid in os.listdir("/proc"):
    if pid.isdigit():
        scan(f"/proc/{pid}/environ")
        scan(f"/proc/{pid}/cmdline")
mounts = [line.split()[1] for line in open("/proc/mounts")]
tops = {"/etc", "/home", "/tmp", "/run", "/var", "/mnt", "/srv", "/root"}
tops |= {m for m in mounts if not m.startswith(("/proc", "/sys", "/dev")) and m != "/"}
for top in sorted(tops):
    for folder, dirs, files in os.walk(top):
        for name in files:
            scan(os.path.join(folder, name))
env_hits = [k for k in os.environ if k.startswith(("AWS_", "SPE_KEY"))]
print(json.dumps({"hits": hits, "env": env_hits, "scanned": sorted(tops)}))
"""


def test_d3_no_key_material_or_store_credentials_inside(ws_alice_pa):
    """D3: the hub's key passphrase, private key and store credentials are nowhere inside."""
    from .conftest import SECRETS

    private_key = (ws_alice_pa.hub.state_dir / "keys" / "spe.sec").read_text().splitlines()
    markers = [*SECRETS.values(), private_key[1][:40], "CRYPT4GH PRIVATE KEY"]
    code = f"REVERSED_MARKERS = {json.dumps([m[::-1] for m in markers])}\n" + SECRET_PROBE
    found = json.loads(ws_alice_pa.run(code, timeout=300))
    assert found["hits"] == [] and found["env"] == [], found
    assert any(top.endswith("/data/cohort") for top in found["scanned"]), found["scanned"]
