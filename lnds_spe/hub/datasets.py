"""Hub-side data preparation for a workspace: the datasets it sees and the project's outputs.

`prepare_plain_datasets` is the default of `SPEPolicyMixin.prepare_datasets`: it copies (hard
links where possible) a plain directory per dataset from `<state_dir>/datasets/<project>/<name>`.
The Crypt4GH decryption replaces it with a function of the same signature.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from lnds_spe.errors import SPEError
from lnds_spe.hub.lockdown import WORKSPACE_GID, WORKSPACE_UID
from lnds_spe.policy import ProjectInfo
from lnds_spe.projects import DatasetInfo

# (project, its datasets, an empty directory to fill) -> {dataset name: prepared host path}
PrepareDatasets = Callable[[ProjectInfo, Sequence[DatasetInfo], Path], dict[str, Path]]


def plain_dataset_source(state_dir: Path, project: str, dataset: str) -> Path:
    """Where a plain (unencrypted) dataset of a project lies on the hub host."""
    return state_dir / "datasets" / project / dataset


def _link_or_copy(source: str, destination: str) -> None:
    """Hard-link a file (instant, no extra space), copying when the filesystem refuses."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def prepare_plain_datasets(project: ProjectInfo, datasets: Sequence[DatasetInfo],
                           destination: Path, *, state_dir: Path) -> dict[str, Path]:
    """Put each dataset's plain directory under `destination/<name>`, readable by the workspace."""
    prepared: dict[str, Path] = {}
    for dataset in datasets:
        source = plain_dataset_source(state_dir, project.slug, dataset.name)
        if not source.is_dir():
            raise SPEError(f"dataset {dataset.name} of project {project.slug} is not available "
                           f"on the hub ({source} is missing): ask the data steward to stage it")
        target = destination / dataset.name
        shutil.copytree(source, target, copy_function=_link_or_copy)
        make_readable(target)
        prepared[dataset.name] = target
    return prepared


def make_readable(root: Path) -> None:
    """Let the workspace user read (not write) a prepared tree: dirs 0755, files 0444."""
    os.chmod(root, 0o755)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o444)


def outputs_path(state_dir: Path, project: str) -> Path:
    """A project's shared outputs folder on the hub host."""
    return state_dir / "outputs" / project


def ensure_outputs_dir(state_dir: Path, project: str) -> Path:
    """The project's shared outputs folder on the host, writable by the workspace user."""
    path = outputs_path(state_dir, project)
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(path, WORKSPACE_UID, WORKSPACE_GID)
        os.chmod(path, 0o770)
    else:
        os.chmod(path, 0o777)
    return path


def remove_prepared(path: Path) -> None:
    """Delete a workspace's prepared (possibly decrypted) data from the host."""
    if path.exists():
        shutil.rmtree(path)


def remove_staging_leftovers(state_dir: Path) -> list[Path]:
    """Delete half-decrypted staging folders a crash left in prepared workspace data (run at hub
    start, when no decryption can be in progress); returns what was deleted."""
    from lnds_spe.ingress import STAGING_MARK

    leftovers = sorted((state_dir / "workspaces").glob(f"*/*/data/.*{STAGING_MARK}*"))
    for path in leftovers:
        remove_prepared(path)
    return leftovers
