"""Closing a project: the registry records it as closed (final), then its outputs and homes go.

Outputs are archived (moved under <state>/archive/<project>/, readable by the hub's account only)
or deleted, as SPE_CLOSE_OUTPUTS (or the caller) says; the members' home volumes follow the same
policy (lnds_spe.hub.homes: a tar each in the same folder). Either way an audit event records
what was there. A home still used by a running workspace is left to the lifecycle enforcer, which
stops the workspace and settles the home with the policy recorded at close; it also retries a
home that failed. Decrypted data is not kept at close: it lives only while a workspace runs, and
the lifecycle enforcer stops the workspaces of a closed project.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lnds_spe.config import setting
from lnds_spe.datasets import outputs_path, remove_tree
from lnds_spe.errors import ProjectNotFound, SPEError

if TYPE_CHECKING:
    from lnds_spe.projects import Registry

CLOSE_POLICIES = ("archive", "delete")
CLOSE_SETTING = "SPE_CLOSE_OUTPUTS"


def close_policy(chosen: str | None = None) -> str:
    """What happens to outputs at close: `chosen`, else $SPE_CLOSE_OUTPUTS, else archive."""
    value = chosen or setting(CLOSE_SETTING) or "archive"
    if value not in CLOSE_POLICIES:
        source = "--outputs" if chosen else CLOSE_SETTING
        raise SPEError(f"invalid {source} {value!r}: use archive or delete")
    return value


@dataclass(frozen=True)
class Closed:
    """What closing a project did: where its outputs went, and its homes settled or pending."""

    outputs_archive: Path | None
    homes_settled: list[str] = field(default_factory=list)
    homes_pending: list[str] = field(default_factory=list)

    def message(self, slug: str) -> str:
        """What `spe project close` and the admin console say: outputs, then home volumes."""
        kept = (f"outputs archived in {self.outputs_archive}" if self.outputs_archive
                else "outputs deleted (or none)")
        homes = f"{len(self.homes_settled)} home volume(s) done"
        if self.homes_pending:
            homes += (f"; in use, left for the lifecycle enforcer (it stops their workspaces): "
                      f"{', '.join(self.homes_pending)}")
        return f"project {slug} is now closed; {kept}; {homes}"


def recorded_close_policy(registry: Registry, slug: str) -> str:
    """The policy the project was closed with (its last outputs or home event), else the default."""
    for event in reversed(registry.audit.query(project=slug)):
        if event.action in ("project.outputs", "project.home"):
            return json.loads(event.details)["policy"]
    return close_policy()


def _measure(root: Path) -> dict:
    """Number of files and bytes under a folder (files removed while it runs are skipped)."""
    files = bytes_ = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            try:
                bytes_ += os.lstat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                continue
            files += 1
    return {"files": files, "bytes": bytes_}


def outputs_bytes(state_dir: Path, slug: str) -> int:
    """Bytes a project's outputs folder holds now (0 when it has none)."""
    return _measure(outputs_path(state_dir, slug))["bytes"]


def _archive(outputs: Path, state_dir: Path, project: str) -> Path:
    """Move `outputs` under <state>/archive/<project>/, every level readable by the hub only."""
    base = state_dir / "archive"
    folder = base / project
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o700)
    os.chmod(folder, 0o700)
    target = folder / f"outputs-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}"
    os.rename(outputs, target)
    os.chmod(target, 0o700)
    return target


def close_project(registry: Registry, slug: str, *, actor: str, state_dir: Path,
                  outputs_policy: str | None = None) -> Closed:
    """Close a project for good, then archive or delete its outputs and its home volumes."""
    chosen = close_policy(outputs_policy)
    registry.set_status(slug, "closed", actor=actor)
    archive = _close_outputs(registry, slug, chosen, actor=actor, state_dir=state_dir)
    settled, pending = _close_homes(registry, slug, chosen, actor=actor, state_dir=state_dir)
    return Closed(archive, settled, pending)


def _close_homes(registry: Registry, slug: str, chosen: str, *, actor: str,
                 state_dir: Path) -> tuple[list[str], list[str]]:
    """Settle the project's home volumes now; those in use are audited as pending."""
    from lnds_spe.hub.homes import engine_client, home_volumes, settle_homes

    try:
        client = engine_client()
        before = [home.name for home in home_volumes(client, state_dir, slug)]
    except Exception as error:  # noqa: BLE001 - an engine that does not answer: audited, named
        reason = (f"project {slug} is closed, but the container engine did not answer "
                  f"({type(error).__name__}: {error}): the lifecycle enforcer settles its home "
                  f"volumes ({chosen}) once it does")
        registry.audit.append(actor, "project.home", project=slug, outcome="failed",
                              details={"policy": chosen, "reason": reason[:500]})
        raise SPEError(reason) from None
    pending, failed = settle_homes(registry, client, state_dir, slug, chosen, actor=actor)
    for home in pending:
        registry.audit.append(actor, "project.home", project=slug, target=home.user,
                              outcome="pending", details={"policy": chosen, "volume": home.name,
                                                          "reason": "in use by a workspace"})
    if failed:
        raise SPEError(f"project {slug} is closed, but these home volumes could not be {chosen}d: "
                       f"{'; '.join(failed)}; the lifecycle enforcer retries them every round")
    left = {home.name for home in pending}
    return [name for name in before if name not in left], sorted(left)


def _close_outputs(registry: Registry, slug: str, chosen: str, *, actor: str,
                   state_dir: Path) -> Path | None:
    """Archive or delete a closed project's outputs, audited; the archive, if any."""
    outputs = outputs_path(state_dir, slug)
    if not outputs.exists():
        return None
    details = {"policy": chosen, "path": str(outputs), **_measure(outputs)}
    try:
        archive = _archive(outputs, state_dir, slug) if chosen == "archive" else None
        if archive is None:
            remove_tree(outputs)
    except OSError as exc:
        reason = (f"project {slug} is closed, but its outputs at {outputs} could not be "
                  f"{chosen}d ({exc.strerror or exc}): {chosen} them by hand")
        registry.audit.append(actor, "project.outputs", project=slug, outcome="failed",
                              details={**details, "reason": reason})
        raise SPEError(reason) from None
    if archive is not None:
        details = {"policy": chosen, "path": str(outputs), "archive": str(archive),
                   **_measure(archive)}
    registry.audit.append(actor, "project.outputs", project=slug, details=details)
    return archive


def settle_closed_homes(registry: Registry, state_dir: Path, *, actor: str) -> list[str]:
    """Archive or delete the home volumes of closed projects that no workspace uses any more,
    with the policy each was closed with (the lifecycle enforcer, every round); the failures."""
    from lnds_spe.hub.homes import engine_client, home_volumes, settle_homes

    client = engine_client()
    failures = []
    for slug in sorted({home.project for home in home_volumes(client, state_dir)}):
        try:
            if registry.get_project(slug).status != "closed":
                continue
        except ProjectNotFound:
            continue
        policy = recorded_close_policy(registry, slug)
        failures += settle_homes(registry, client, state_dir, slug, policy, actor=actor)[1]
    return failures
