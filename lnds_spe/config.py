"""The SPE's settings, read in this one place: the environment, else the venv's settings file,
else the built-in defaults.

`./run setup` writes `<venv>/lnds-spe.env` (KEY=VALUE lines) naming the checkout's state dir, so
`.venv/bin/spe`, the hub and its services all see one registry and one key pair even when the
caller's environment has no SPE_STATE_DIR. The environment still wins. Defaults the shell scripts
share (the workspace image, the engine socket) are written once, in `lnds_spe/defaults.env`.
"""

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from platformdirs import user_data_dir

SETTINGS_FILE_NAME = "lnds-spe.env"
DEFAULTS_FILE = Path(__file__).with_name("defaults.env")


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
    """A setting: the environment's value, else the settings file's, else the built-in default,
    else ''."""
    return (os.environ.get(name) or _file_settings(settings_file()).get(name)
            or BUILT_IN.get(name, ""))


def setting_on(name: str) -> bool:
    """A yes/no setting: anything but '', 0, false, no or off is yes."""
    return setting(name).lower() not in ("", "0", "false", "no", "off")


def engine_host() -> str:
    """The container engine's API: $DOCKER_HOST, else the socket scripts/engine-setup.sh starts
    ($SPE_ENGINE_SOCKET) if it exists, else '' (the Docker client's own default)."""
    socket = Path(setting("SPE_ENGINE_SOCKET"))
    return os.environ.get("DOCKER_HOST") or (f"unix://{socket}" if socket.exists() else "")


BUILT_IN = _file_settings(DEFAULTS_FILE)
DEFAULT_IMAGE = BUILT_IN["SPE_WORKSPACE_IMAGE"]


def state_path() -> Path:
    """The state directory: $SPE_STATE_DIR, the settings file's, else the user's data dir."""
    return Path(setting("SPE_STATE_DIR") or user_data_dir("lnds-spe"))


def state_dir() -> Path:
    """The state directory, created on first use, and kept closed to other host accounts: it
    holds decrypted data, outputs, keys and the registry (D6), whatever modes they have."""
    path = state_path()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_mode & 0o077 and info.st_uid == os.geteuid():
        os.chmod(path, 0o700)
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
