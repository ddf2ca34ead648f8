"""Where the SPE keeps its state: settings from the environment, else from the venv's settings file.

`./run setup` writes `<venv>/lnds-spe.env` (KEY=VALUE lines) naming the checkout's state dir, so
`.venv/bin/spe`, the hub and its services all see one registry and one key pair even when the
caller's environment has no SPE_STATE_DIR. The environment still wins.
"""

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from platformdirs import user_data_dir

DEFAULT_IMAGE = "localhost/lnds-spe-workspace:latest"
SETTINGS_FILE_NAME = "lnds-spe.env"


def settings_file() -> Path:
    """The settings file of the running virtual environment."""
    return Path(sys.prefix) / SETTINGS_FILE_NAME


def _file_settings(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a settings file (blank lines and # comments skipped); {} if absent."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return {}
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def setting(name: str) -> str:
    """A setting: the environment's value, else the settings file's, else ''."""
    return os.environ.get(name) or _file_settings(settings_file()).get(name, "")


def state_path() -> Path:
    """The state directory: $SPE_STATE_DIR, the settings file's, else the user's data dir."""
    return Path(setting("SPE_STATE_DIR") or user_data_dir("lnds-spe"))


def state_dir() -> Path:
    """The state directory, created on first use."""
    path = state_path()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str:
    """$SPE_DATABASE_URL (e.g. postgresql+psycopg://...), else a SQLite file in the state dir."""
    return setting("SPE_DATABASE_URL") or f"sqlite:///{state_dir() / 'spe.sqlite'}"


def redacted_url(url: str) -> str:
    """A URL with its password replaced by ***, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
