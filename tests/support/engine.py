"""Container-engine housekeeping for tests that start their own hub."""

import shutil
import subprocess


def remove_home_volumes(prefix: str) -> None:
    """Delete the home volumes a test hub's workspaces left (`hub.sh down` keeps users' homes)."""
    engine = shutil.which("podman") or shutil.which("docker")
    listed = subprocess.run([engine, "volume", "ls", "-q"], capture_output=True, text=True)
    names = [n for n in listed.stdout.split() if n.startswith(f"{prefix}-home-")]
    if names:
        subprocess.run([engine, "volume", "rm", "-f", *names], capture_output=True)
