"""Point numba's on-disk cache at a writable folder before numba is imported."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

# a folder of kernels compiled in advance (the workspace image's, see warm.py), copied into an
# empty cache folder before numba first looks there
SEED_ENV = "LNDS_SPE_NUMBA_SEED"


def default_cache_dir() -> Path:
    """A per-user cache folder for compiled kernels (site-packages is read-only in workspaces)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lnds-spe" / "numba"


def ensure_numba_cache_dir() -> str:
    """Set NUMBA_CACHE_DIR to a writable folder if unset or unwritable; return the folder used."""
    wanted = os.environ.get("NUMBA_CACHE_DIR")
    candidates = [Path(wanted)] if wanted else []
    fallback = Path(tempfile.gettempdir()) / f"lnds-spe-numba-{os.getuid()}"
    candidates += [default_cache_dir(), fallback]
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            if os.environ.get(SEED_ENV):
                seed_cache(folder, Path(os.environ[SEED_ENV]))
            os.environ["NUMBA_CACHE_DIR"] = str(folder)
            return str(folder)
    raise OSError("no writable folder for NUMBA_CACHE_DIR: set it to a writable path")


def seed_cache(folder: Path, seed: Path) -> bool:
    """Fill an empty cache folder with a copy of `seed`; whether it did. The copy is made
    beside it and renamed into place, so no process reads a half-copied cache, and a folder
    another process filled first is left as it is."""
    if not seed.is_dir() or any(folder.iterdir()):
        return False
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        shutil.copytree(seed, partial, dirs_exist_ok=True)
        os.replace(partial, folder)  # replaces only an empty folder
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        return False
    return True
