"""Closing a project: the registry records it as closed (final), then its outputs go.

Outputs are archived (moved under <state>/archive/<project>/, readable by the hub's account only)
or deleted, as SPE_CLOSE_OUTPUTS (or the caller) says; either way an audit event records what was
there. Decrypted data is not kept at close: it lives only while a workspace runs, and the
lifecycle enforcer stops the workspaces of a closed project.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lnds_spe.config import setting
from lnds_spe.datasets import outputs_path, remove_tree
from lnds_spe.errors import SPEError

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


def _measure(root: Path) -> dict:
    """Number of files and bytes under a folder."""
    files = [Path(folder) / name for folder, _dirs, names in os.walk(root) for name in names]
    return {"files": len(files), "bytes": sum(p.lstat().st_size for p in files)}


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
                  outputs_policy: str | None = None) -> Path | None:
    """Close a project for good, then archive or delete its outputs; the archive, if any."""
    chosen = close_policy(outputs_policy)
    registry.set_status(slug, "closed", actor=actor)
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
