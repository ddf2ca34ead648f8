"""Run the airlock service under JupyterHub: `python -m lnds_spe.services.airlock`.

JupyterHub passes the service's URL, prefix, OAuth client and API token in the environment; the
registry and state directory come from SPE_DATABASE_URL and SPE_STATE_DIR like every SPE entry
point.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import urlparse

import uvicorn

from lnds_spe.airlock.service import Airlock
from lnds_spe.config import state_dir
from lnds_spe.projects import open_registry
from lnds_spe.services.airlock_api import create_app
from lnds_spe.services.hub_auth import HubSignIn

log = logging.getLogger("spe-airlock")


def build_app():
    """The app for this process's environment."""
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/airlock/")
    airlock = Airlock(open_registry(), state_dir())
    for path in airlock.discard_unfinished():
        log.warning("deleted %s, left half-written by an earlier crash", path.name)
    return create_app(airlock, HubSignIn(), prefix=prefix)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(name)s %(asctime)s] %(message)s")
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8010"))
    # SPE_AIRLOCK_BIND_IP (e.g. 0.0.0.0): listen where workspaces reach it, not only on the
    # service URL's host (the hub's firewall rules guard the port, as for the hub API).
    host = os.environ.get("SPE_AIRLOCK_BIND_IP") or url.hostname or "127.0.0.1"
    uvicorn.run(build_app(), host=host, port=url.port or 8010,
                log_level="info", access_log=True)


if __name__ == "__main__":
    main()
