"""Run the IPMS token service on its own host: `python -m lnds_spe.services.pseudonym`.

Settings (environment, else the venv's settings file): SPE_IPMS_KEY_FILE (master key, default
`<state>/ipms/master.key`), SPE_IPMS_CALLERS (default `<state>/ipms/callers.json`), SPE_IPMS_AUDIT
(default `<state>/ipms/audit.jsonl`), SPE_IPMS_URL (default http://127.0.0.1:8020). It is not a
JupyterHub service: it has its own callers and roles, and the hub never holds its key.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import uvicorn

from lnds_spe.config import setting, state_path
from lnds_spe.pseudonym.keystore import FileKeyStore
from lnds_spe.pseudonym.service import PseudonymService
from lnds_spe.services.pseudonym_api import create_app


def callers_file() -> Path:
    return Path(setting("SPE_IPMS_CALLERS") or state_path() / "ipms" / "callers.json")


def audit_file() -> Path:
    return Path(setting("SPE_IPMS_AUDIT") or state_path() / "ipms" / "audit.jsonl")


def build_app():
    """The app for this process's settings."""
    return create_app(PseudonymService(FileKeyStore(), audit_file()), callers_file())


def main() -> None:
    url = urlparse(setting("SPE_IPMS_URL") or "http://127.0.0.1:8020")
    # access_log off: paths carry nothing secret, but one log less to keep
    uvicorn.run(build_app(), host=url.hostname or "127.0.0.1", port=url.port or 8020,
                log_level="info", access_log=False)


if __name__ == "__main__":
    main()
