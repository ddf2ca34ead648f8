"""Point numba's on-disk cache at a writable folder before numba is imported."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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
            os.environ["NUMBA_CACHE_DIR"] = str(folder)
            return str(folder)
    raise OSError("no writable folder for NUMBA_CACHE_DIR: set it to a writable path")
