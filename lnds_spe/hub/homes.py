"""Home volumes: one per (user, project), size-limited, labelled, archived or deleted at close.

Each home is an engine volume backed by an ext4 image of the project's home quota under
<state>/homes/<project>/ (the engine mounts it through a loop device when a workspace starts): a
hard limit, a write past it fails with "No space left on device". The volume carries the
project, the user and the state dir it belongs to as labels, so a closed project's homes are
found without guessing names, and two hubs sharing one engine never touch each other's.

At close each home is archived (a tar under <state>/archive/<project>/, readable by the hub's
account only, written to a temporary name and renamed when complete) or deleted, then its volume
and image are removed; one audit event per volume names it and what it held. A volume still used
by a workspace is left for the lifecycle enforcer, which stops the workspace and settles it.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from lnds_spe.config import engine_host, setting
from lnds_spe.errors import SPEError
from lnds_spe.hub import lockdown
from lnds_spe.policy import ProjectInfo, size_bytes

if TYPE_CHECKING:
    import docker

    from lnds_spe.projects import Registry

LABEL_STATE = "org.lnds-spe.state"
MOUNT_OPTIONS = "loop,nosuid,nodev"


class HomeVolumeError(SPEError):
    """A home volume could not be made, archived or deleted; the message names it."""


@dataclass(frozen=True)
class HomeVolume:
    """A home volume the engine holds: its name, project and user (from its labels)."""

    name: str
    project: str
    user: str


def engine_client() -> docker.APIClient:
    """The container engine's API, where the hub's spawner finds it (config.engine_host)."""
    import docker

    return docker.APIClient(base_url=engine_host() or None, timeout=120)


def image_path(state_dir: Path, project: str, volume: str) -> Path:
    """The ext4 image behind a home volume."""
    return state_dir / "homes" / project / f"{volume}.ext4"


def _private_dir(path: Path, levels: int = 2) -> Path:
    """A folder (and its parent, with levels=2) readable by the hub's account only."""
    path.mkdir(parents=True, exist_ok=True)
    for folder in (path, path.parent)[:levels]:
        os.chmod(folder, 0o700)
    return path


def _run(*command: str, ok: tuple[int, ...] = (0,)) -> None:
    """Run a filesystem tool; HomeVolumeError with its message when it fails."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode not in ok:
        raise HomeVolumeError(f"{command[0]} failed: {(done.stderr or done.stdout).strip()}")


def _make_image(image: Path, size: int) -> None:
    """A fresh ext4 image of `size` bytes whose root the workspace user owns (no root reserve)."""
    partial = image.with_name(image.name + ".partial")
    partial.unlink(missing_ok=True)
    with open(partial, "wb") as handle:
        handle.truncate(size)
    os.chmod(partial, 0o600)
    try:
        _run("mkfs.ext4", "-q", "-F", "-m", "0",
             "-E", f"root_owner={lockdown.WORKSPACE_UID}:{lockdown.WORKSPACE_GID}", str(partial))
        _drop_lost_found(partial)
        os.rename(partial, image)
    finally:
        partial.unlink(missing_ok=True)


def _grow_image(image: Path, size: int) -> None:
    """Enlarge an unmounted image and its filesystem to `size` bytes (a raised quota)."""
    _run("e2fsck", "-f", "-p", str(image), ok=(0, 1))  # 1: fixed (e.g. made lost+found)
    with open(image, "r+b") as handle:
        handle.truncate(size)
    _run("resize2fs", "-f", str(image))
    _drop_lost_found(image)


def _drop_lost_found(image: Path) -> None:
    """Remove the root-only lost+found that mkfs and fsck make, which the user could not read."""
    _run("debugfs", "-w", "-R", "rmdir lost+found", str(image))


def _in_use(client: docker.APIClient, volume: str) -> list[str]:
    """Names of the containers (running or not) that mount a volume."""
    return [c["Names"][0].lstrip("/") for c in
            client.containers(all=True, filters={"volume": volume})]


def release_stale_mount(client: docker.APIClient, volume: str) -> bool:
    """Unmount a home volume no container uses but the engine left mounted; whether it did.

    Podman 4.3 does not unmount a volume with mount options (our loop-mounted ext4) when its
    container ran in a user namespace, and then refuses the next start ("already mounted"); a
    resize or archive of a mounted image would be unsafe too.
    """
    if _in_use(client, volume):
        return False
    mountpoint = client.inspect_volume(volume).get("Mountpoint") or ""
    if not mountpoint or not os.path.ismount(mountpoint):
        return False
    _run("umount", mountpoint)
    return True


def ensure_home_volume(client: docker.APIClient, state_dir: Path, volume: str,
                       project: ProjectInfo, user: str) -> None:
    """Create a user's home volume in a project, its image sized to the project's home quota,
    or grow an existing one whose quota was raised; a volume made before quotas is kept as is."""
    image = image_path(state_dir, project.slug, volume)
    quota = size_bytes(project.home_quota)
    existing = client.volumes(filters={"name": volume}).get("Volumes") or []
    if any(v["Name"] == volume for v in existing):
        release_stale_mount(client, volume)
        if image.exists() and image.stat().st_size < quota and not _in_use(client, volume):
            _grow_image(image, quota)
        return
    _private_dir(image.parent)
    if not image.exists():
        _make_image(image, quota)
    labels = {lockdown.LABEL_PROJECT: project.slug, lockdown.LABEL_USER: user,
              LABEL_STATE: str(state_dir)}
    client.create_volume(volume, driver="local", labels=labels,
                         driver_opts={"type": "ext4", "device": str(image), "o": MOUNT_OPTIONS})


def home_volumes(client: docker.APIClient, state_dir: Path,
                 project: str | None = None) -> list[HomeVolume]:
    """The home volumes of this state dir (of one project, if given), by name. The labels are
    matched here too: Podman's Docker API answers several label filters with any, not all."""
    wanted = {LABEL_STATE: str(state_dir)}
    if project is not None:
        wanted[lockdown.LABEL_PROJECT] = project
    found = client.volumes(filters={"label": f"{LABEL_STATE}={state_dir}"}).get("Volumes") or []
    mine = [v for v in found
            if all((v.get("Labels") or {}).get(key) == value for key, value in wanted.items())]
    return sorted((HomeVolume(v["Name"], v["Labels"][lockdown.LABEL_PROJECT],
                              v["Labels"].get(lockdown.LABEL_USER, "")) for v in mine),
                  key=lambda v: v.name)


def _stream_home(client: docker.APIClient, volume: str, sink: BinaryIO) -> None:
    """Write a tar of a home volume's files to `sink`, through a throwaway container that
    mounts it read-only (no network, no capabilities) and is removed after."""
    image = setting("SPE_WORKSPACE_IMAGE")
    host_config = client.create_host_config(
        binds={volume: {"bind": str(lockdown.WORKSPACE_HOME), "mode": "ro,nocopy"}},
        network_mode="none", read_only=True, cap_drop=["ALL"],
        security_opt=["no-new-privileges"])
    container = client.create_container(
        image, command=["sleep", "600"], host_config=host_config,
        user=f"{lockdown.WORKSPACE_UID}:{lockdown.WORKSPACE_GID}",
        labels={LABEL_STATE: "home-export"})
    try:
        client.start(container)
        stream, _stat = client.get_archive(container, f"{lockdown.WORKSPACE_HOME}/.")
        for chunk in stream:
            sink.write(chunk)
    finally:
        client.remove_container(container, force=True)


def _tar_contents(path: Path) -> dict:
    """Files and bytes in a tar (reading it through also proves it is complete)."""
    with tarfile.open(path) as tar:
        files = [m for m in tar.getmembers() if m.isfile()]
    return {"files": len(files), "bytes": sum(m.size for m in files)}


def _settle(client: docker.APIClient, state_dir: Path, home: HomeVolume, policy: str) -> dict:
    """Archive (tar, then rename into place) or delete one home volume, then remove it and its
    image; what it held. Nothing is removed unless the archive is complete."""
    kept = policy == "archive"
    folder = _private_dir(state_dir / ("archive" if kept else "homes") / home.project)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = folder / f"home-{home.name}-{stamp}.tar"
    partial = folder / f".{target.name}.partial"
    release_stale_mount(client, home.name)
    try:
        with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as sink:
            _stream_home(client, home.name, sink)
            sink.flush()
            os.fsync(sink.fileno())
        details = _tar_contents(partial)
        if kept:
            os.rename(partial, target)
            details["archive"] = str(target)
    finally:
        partial.unlink(missing_ok=True)
    client.remove_volume(home.name)
    image_path(state_dir, home.project, home.name).unlink(missing_ok=True)
    return details


def settle_homes(registry: Registry, client: docker.APIClient, state_dir: Path, slug: str,
                 policy: str, *, actor: str) -> tuple[list[HomeVolume], list[str]]:
    """Archive or delete every home volume of a closed project that no container uses, one
    audit event each; returns those still in use (left for the lifecycle enforcer) and, for
    those that failed (audited), their names with the reason. Idempotent: a settled volume is
    gone, so a retry does only what is left; `spe project close` and the enforcer take turns."""
    with _settling(state_dir):
        return _settle_all(registry, client, state_dir, slug, policy, actor=actor)


@contextmanager
def _settling(state_dir: Path) -> Iterator[None]:
    """One settler at a time per state dir (the close command and the enforcer may overlap)."""
    with open(_private_dir(state_dir / "homes", levels=1) / ".settle.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _settle_all(registry: Registry, client: docker.APIClient, state_dir: Path, slug: str,
                policy: str, *, actor: str) -> tuple[list[HomeVolume], list[str]]:
    pending, failed = [], []
    for home in home_volumes(client, state_dir, slug):
        details = {"policy": policy, "volume": home.name, "user": home.user}
        if _in_use(client, home.name):
            pending.append(home)
            continue
        try:
            details.update(_settle(client, state_dir, home, policy))
        except Exception as error:  # noqa: BLE001 - engine, disk or tar errors: audited, named
            reason = f"{type(error).__name__}: {error}"[:500]
            registry.audit.append(actor, "project.home", project=slug, target=home.user,
                                  outcome="failed", details={**details, "reason": reason})
            failed.append(f"{home.name} ({reason})")
            continue
        registry.audit.append(actor, "project.home", project=slug, target=home.user,
                              details=details)
    if not pending and not failed:
        _remove_images_folder(state_dir / "homes" / slug)
    return pending, failed


def _remove_images_folder(folder: Path) -> None:
    """Remove a closed project's image folder with any image whose volume went before a crash."""
    if folder.exists():
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()
