"""Where the SPE keeps its state: settings read from the environment, with embedded defaults."""

import os
from pathlib import Path

from platformdirs import user_data_dir

DEFAULT_IMAGE = "localhost/lnds-spe-workspace:latest"


def state_dir() -> Path:
    """The state directory ($SPE_STATE_DIR, default the user's data dir); created on first use."""
    path = Path(os.environ.get("SPE_STATE_DIR") or user_data_dir("lnds-spe"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str:
    """$SPE_DATABASE_URL (e.g. postgresql+psycopg://...), else a SQLite file in the state dir."""
    return os.environ.get("SPE_DATABASE_URL") or f"sqlite:///{state_dir() / 'spe.sqlite'}"
