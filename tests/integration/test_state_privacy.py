"""D6: hub-side state (registry, outputs, decrypted data, keys) is closed to other host accounts.

Checked with a real other account (nobody) reading through the real file system, in a state dir
whose parent every account may traverse, as an admin's `mkdir` would leave it.
"""

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

SPE = [sys.executable, "-m", "lnds_spe"]
NOBODY = 65534


def read_as_nobody(path: Path) -> subprocess.CompletedProcess:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv (util-linux) is needed to read as another account: apt-get install util-linux")
    return subprocess.run([setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                           "cat", str(path)], capture_output=True, text=True, timeout=30)


@pytest.fixture
def open_state_dir():
    if os.geteuid() != 0:
        pytest.fail("this test switches to another account: run the suite as root, as ./run test does")
    parent = Path(tempfile.mkdtemp(prefix="spe-d6-"))
    parent.chmod(0o755)
    state = parent / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    yield state
    shutil.rmtree(parent)


def test_d6_the_state_dir_is_closed_to_other_accounts(open_state_dir):
    probe = open_state_dir / "outputs" / "p1" / "table.csv"
    probe.parent.mkdir(parents=True)
    probe.parent.chmod(0o777)  # as the outputs folder workspaces write to
    probe.write_text("a,b\n1,2\n")
    probe.chmod(0o644)
    control = read_as_nobody(probe)
    assert control.returncode == 0 and control.stdout == "a,b\n1,2\n", control.stderr

    env = {**os.environ, "SPE_STATE_DIR": str(open_state_dir)}
    env.pop("SPE_DATABASE_URL", None)
    listed = subprocess.run([*SPE, "project", "list"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert listed.returncode == 0, listed.stderr
    registry = open_state_dir / "spe.sqlite"
    assert registry.exists()

    assert stat.S_IMODE(open_state_dir.stat().st_mode) == 0o700
    for path in (probe, registry):
        refused = read_as_nobody(path)
        assert refused.returncode != 0, f"nobody read {path}"
        assert "Permission denied" in refused.stderr
