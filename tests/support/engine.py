"""Container-engine housekeeping for tests that start their own hub."""

import os
import shutil
import subprocess


def _engine() -> str:
    return shutil.which("podman") or shutil.which("docker")


def remove_volumes(names: list[str]) -> None:
    """Remove volumes, unmounting first any loop-mounted home the engine left mounted (Podman
    4.3 leaves them mounted after a container in a user namespace; see hub/homes.py)."""
    for name in names:
        shown = subprocess.run([_engine(), "volume", "inspect", "--format", "{{.Mountpoint}}", name],
                               capture_output=True, text=True)
        mountpoint = shown.stdout.strip()
        if mountpoint and os.path.ismount(mountpoint):
            subprocess.run(["umount", mountpoint], capture_output=True)
    if names:
        subprocess.run([_engine(), "volume", "rm", "-f", *names], capture_output=True)


def remove_home_volumes(prefix: str) -> None:
    """Delete the home volumes a test hub's workspaces left (`hub.sh down` keeps users' homes)."""
    listed = subprocess.run([_engine(), "volume", "ls", "-q"], capture_output=True, text=True)
    remove_volumes([n for n in listed.stdout.split() if n.startswith(f"{prefix}-home-")])
