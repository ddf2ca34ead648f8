"""Hub service that stops workspaces whose project expired or was suspended, or lost the member.

Run by the hub as a managed service (`python -m lnds_spe.hub.enforcer`); every
$SPE_ENFORCE_EVERY seconds (default 20) it lists running servers through the hub API, asks the
registry, stops those that must stop and writes one audit event each, with the reason. A
workspace whose project's outputs are over their quota stops too. Then it archives or deletes
the home volumes of closed projects that no workspace uses any more (lnds_spe.lifecycle).
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import date

from lnds_spe.config import setting, state_dir
from lnds_spe.errors import ProjectNotFound
from lnds_spe.lifecycle import outputs_bytes, settle_closed_homes
from lnds_spe.policy import REVIEW_SERVER, must_stop, outputs_over_quota, review_server_must_stop
from lnds_spe.projects import Registry, open_registry

ACTOR = "system:lifecycle"
log = logging.getLogger("spe-enforcer")


@dataclass(frozen=True)
class RunningWorkspace:
    """A server the hub reports as running or starting: its user and name (the project)."""

    user: str
    server: str


def running_workspaces(users: list[dict]) -> list[RunningWorkspace]:
    """Running or pending servers in a hub API `GET /users` answer."""
    found = []
    for user in users:
        for name, server in (user.get("servers") or {}).items():
            if server.get("ready") or server.get("pending") in ("spawn", None):
                found.append(RunningWorkspace(user["name"], name))
    return found


def stop_reason(registry: Registry, workspace: RunningWorkspace, today: date) -> str | None:
    """Why this workspace must stop now, or None while it may run on. Unnamed servers and
    servers of projects the registry does not know always must; any other registry error
    propagates (the round fails and is retried), never read as "no project"."""
    if not workspace.server:
        return "a workspace must be named after a project"
    if workspace.server == REVIEW_SERVER:
        return review_server_must_stop(registry.projects_of(workspace.user, "output_checker"))
    try:
        project = registry.get_project(workspace.server)
    except ProjectNotFound:
        return f"there is no project {workspace.server}"
    return (must_stop(project, registry.roles_of(project.slug, workspace.user), today)
            or outputs_over_quota(project, outputs_bytes(state_dir(), project.slug)))


class HubAPI:
    """The few hub REST calls the enforcer makes, with the service's own token."""

    def __init__(self, api_url: str, token: str):
        self.api_url = api_url.rstrip("/")
        self.token = token

    def _request(self, method: str, path: str) -> tuple[int, bytes]:
        request = urllib.request.Request(self.api_url + path, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def users_with_servers(self) -> list[dict]:
        """All users that have an active server, with their servers."""
        status, body = self._request("GET", "/users?state=active")
        if status != 200:
            raise RuntimeError(f"hub API GET /users answered {status}: {body[:200]!r}")
        return json.loads(body)

    def stop_server(self, user: str, server: str) -> int:
        """Ask the hub to stop one server; returns the HTTP status (202/204 accepted)."""
        path = (f"/users/{urllib.parse.quote(user, safe='')}/servers/"
                f"{urllib.parse.quote(server, safe='')}")
        return self._request("DELETE", path)[0]


def enforce_once(api: HubAPI, registry: Registry, today: date) -> list[tuple[RunningWorkspace, str]]:
    """Stop every running workspace that must stop; returns (workspace, reason) for each."""
    stopped = []
    for workspace in running_workspaces(api.users_with_servers()):
        reason = stop_reason(registry, workspace, today)
        if reason is None:
            continue
        status = api.stop_server(workspace.user, workspace.server)
        outcome = "ok" if status in (202, 204) else "error"
        registry.audit.append(ACTOR, "workspace.expire", project=workspace.server or None,
                              target=workspace.user, outcome=outcome,
                              details={"reason": reason, "hub_status": status})
        log.info("stopped %s/%s: %s (hub answered %s)", workspace.user, workspace.server,
                 reason, status)
        stopped.append((workspace, reason))
    return stopped


def main() -> None:
    """Loop forever: enforce, sleep; errors are logged and retried at the next round."""
    logging.basicConfig(level=logging.INFO, format="[%(name)s %(asctime)s] %(message)s")
    every = float(setting("SPE_ENFORCE_EVERY") or 20)
    api = HubAPI(os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"])
    registry = open_registry()
    log.info("checking running workspaces every %.0f s", every)
    try:
        while True:
            try:
                enforce_once(api, registry, date.today())
                for failure in settle_closed_homes(registry, state_dir(), actor=ACTOR):
                    log.warning("home volume of a closed project not settled: %s", failure)
            except Exception:  # the hub may be restarting; try again next round
                log.exception("enforcement round failed")
            time.sleep(every)
    except KeyboardInterrupt:  # the hub stops its services with SIGINT first
        log.info("stopped")


if __name__ == "__main__":
    main()
