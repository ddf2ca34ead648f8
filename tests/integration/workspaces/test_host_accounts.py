"""D6: the workspace's uid is no host account, and hub-side state is closed to other accounts."""

import json
import pwd
import stat
from pathlib import Path

from .conftest import inspect_container

PROBE = r"""
import json, os
path = os.path.expanduser("~/outputs/d6-probe.txt")
with open(path, "w") as f:
    f.write("written inside")
print(json.dumps({"uid": os.getuid(), "uid_map": open("/proc/self/uid_map").read().split()}))
"""


def host_uid(uid_map: list[str], inside: int) -> int:
    """The host uid a namespace uid maps to, from /proc/<pid>/uid_map's triples."""
    for start in range(0, len(uid_map), 3):
        first, outside, count = (int(v) for v in uid_map[start:start + 3])
        if first <= inside < first + count:
            return outside + inside - first
    raise AssertionError(f"uid {inside} is not mapped: {uid_map}")


def is_host_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def test_d6_the_workspace_uid_is_no_host_account(ws_alice_pa, hub):
    facts = json.loads(ws_alice_pa.run(PROBE))
    outside = host_uid(facts["uid_map"], facts["uid"])
    assert outside != facts["uid"], f"the workspace runs as host uid {outside}, unmapped"
    assert not is_host_account(outside), f"workspace uid maps to host account {outside}"

    pid = inspect_container(ws_alice_pa.container)["State"]["Pid"]
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    real_uids = {int(v) for v in status["Uid"].split()}
    assert not any(is_host_account(uid) for uid in real_uids), real_uids

    written = hub.state_dir / "outputs" / ws_alice_pa.project / "d6-probe.txt"
    owner = written.stat().st_uid
    assert owner == outside and not is_host_account(owner)
    written.unlink()


def test_d6_the_hub_closes_its_state_dir_to_other_accounts(hub):
    """The fixture leaves the state dir 0755, as an admin's mkdir would; the hub closes it."""
    mode = stat.S_IMODE(hub.state_dir.stat().st_mode)
    assert mode & 0o077 == 0, f"state dir {hub.state_dir} is {oct(mode)}"
