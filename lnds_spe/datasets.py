"""Datasets on the hub host: where plain ones lie, how a prepared copy is made read-only and removed.

Shared by the hub (`SPEPolicyMixin.prepare_datasets`' default, `prepare_plain_datasets`), data
ingress (the Crypt4GH decryption, which replaces that default with a function of the same
signature) and the project lifecycle (outputs). Nothing here imports the hub side.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lnds_spe.errors import DatasetUnavailable
from lnds_spe.policy import ProjectInfo
from lnds_spe.storage import PARTIAL_MARK

if TYPE_CHECKING:  # the registry (SQLAlchemy) stays out of the memory of upload-only processes
    from lnds_spe.projects import DatasetInfo

# (project, its datasets, an empty directory to fill) -> {dataset name: prepared host path}
PrepareDatasets = Callable[[ProjectInfo, Sequence["DatasetInfo"], Path], dict[str, Path]]


def plain_dataset_source(state_dir: Path, project: str, dataset: str) -> Path:
    """Where a plain (unencrypted) dataset of a project lies on the hub host."""
    return state_dir / "datasets" / project / dataset


def outputs_path(state_dir: Path, project: str) -> Path:
    """A project's shared outputs folder on the hub host."""
    return state_dir / "outputs" / project


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
            raise DatasetUnavailable(
                f"dataset {dataset.name} of project {project.slug} is not available on the hub "
                f"({source} is missing): ask the data steward to stage it")
        target = destination / dataset.name
        shutil.copytree(source, target, copy_function=_link_or_copy)
        make_read_only(target)
        prepared[dataset.name] = target
    return prepared


def make_read_only(root: Path) -> None:
    """Files 0444, directories 0755: the workspace user reads, nobody but the hub changes."""
    for folder, dirs, files in os.walk(root):
        for name in files:
            os.chmod(os.path.join(folder, name), 0o444)
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o755)
    os.chmod(root, 0o755)


def remove_tree(path: Path) -> None:
    """Delete a (possibly read-only) directory tree, if present."""
    if not path.exists():
        return
    for folder, dirs, _files in os.walk(path):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o700)
    os.chmod(path, 0o700)
    shutil.rmtree(path)


def remove_staging_leftovers(state_dir: Path) -> list[Path]:
    """Delete half-decrypted staging folders a crash left in prepared workspace data (run at hub
    start, when no decryption can be in progress); returns what was deleted."""
    leftovers = sorted((state_dir / "workspaces").glob(f"*/*/data/.*{PARTIAL_MARK}*"))
    for path in leftovers:
        remove_tree(path)
    return leftovers
