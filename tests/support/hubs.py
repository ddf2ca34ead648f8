"""A JupyterHub process for tests and benchmarks: started on free loopback ports, driven by REST.

Used by the integration and browser tests' fixtures and by the benchmarks, without pytest: log
in with each person's own password, make an API token, start and stop named servers, and reach
them through the hub's proxy. Failures raise HubError with the end of the hub's log.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from lnds_spe.config import setting

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ENGINE_SOCKET = setting("SPE_ENGINE_SOCKET")
START_TIMEOUT_S = 90.0


class HubError(RuntimeError):
    """A hub or one of its servers did not do what the benchmark asked."""


def free_port() -> int:
    """A TCP port on loopback nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def demo_accounts(state_dir: Path, names: Iterable[str]) -> dict[str, str]:
    """Write <state>/demo-accounts.json (mode 600) with a password of its own for each name.

    A hub started with SPE_DEMO_MODE=1 makes these its accounts; the passwords are returned.
    """
    passwords = {name: f"{name}-{secrets.token_urlsafe(16)}" for name in names}
    path = state_dir / "demo-accounts.json"
    path.touch(mode=0o600)
    path.write_text(json.dumps({"passwords": passwords}))
    return passwords


def engine_socket() -> str:
    """Path of the container engine's Docker-compatible API socket, or HubError naming the fix."""
    host = os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_ENGINE_SOCKET}"
    path = host.removeprefix("unix://")
    if not os.path.exists(path):
        raise HubError(f"container engine API socket {path} is missing: "
                       "run scripts/engine-setup.sh")
    return path


def require_tools(*names: str) -> None:
    """HubError naming the first program that is not on PATH."""
    for name in names:
        if not shutil.which(name):
            raise HubError(f"{name} is not on PATH: run scripts/engine-setup.sh")


@dataclass
class HubProcess:
    """One running JupyterHub (config file + environment) and the users' API tokens."""

    label: str
    config: Path
    url: str
    env: dict[str, str]
    workdir: Path
    passwords: dict[str, str]  # user name -> that person's own password
    process: subprocess.Popen | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def api(self) -> str:
        """The hub's REST API base URL."""
        return f"{self.url}/hub/api"

    @property
    def log_path(self) -> Path:
        """Where the hub's stdout and stderr go."""
        return self.workdir / "jupyterhub.log"

    def launch(self) -> None:
        """Start the hub in the background (see wait_up)."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(self.config)],
                cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def wait_up(self, timeout: float = START_TIMEOUT_S) -> None:
        """Wait until the hub's API answers (about 10 s here); HubError if it exits or hangs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise HubError(f"{self.label} hub exited:\n{self.log_tail()}")
            try:
                if requests.get(self.api, timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        raise HubError(f"{self.label} hub did not answer within {timeout:.0f} s:\n"
                       f"{self.log_tail()}")

    def stop(self) -> None:
        """Stop the hub with SIGTERM (SIGKILL after 30 s)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        """The end of the hub's log, for error messages."""
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def login(self, username: str) -> requests.Session:
        """A browser-like session logged in with the user's own password."""
        if username not in self.passwords:
            raise HubError(f"{self.label} hub: no account for {username}: add them to the "
                           "accounts the hub was started with (demo_accounts)")
        session = requests.Session()
        page = session.get(f"{self.url}/hub/login", timeout=30)
        found = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
        xsrf = session.cookies.get("_xsrf") or (found.group(1) if found else "")
        answer = session.post(f"{self.url}/hub/login?next=", timeout=30, allow_redirects=False,
                              data={"username": username, "password": self.passwords[username],
                                    "_xsrf": xsrf})
        if answer.status_code != 302:
            raise HubError(f"{self.label} hub: login of {username} failed with "
                           f"{answer.status_code}:\n{self.log_tail()}")
        session.headers["X-XSRFToken"] = session.cookies.get("_xsrf", xsrf)
        return session

    def token(self, username: str) -> str:
        """The user's own API token (made once through a real login, then reused)."""
        if username not in self.tokens:
            answer = self.login(username).post(f"{self.api}/users/{username}/tokens",
                                               json={"note": "benchmark"}, timeout=30)
            if answer.status_code not in (200, 201):
                raise HubError(f"{self.label} hub: token for {username}: {answer.text}")
            self.tokens[username] = answer.json()["token"]
        return self.tokens[username]

    def call(self, username: str, method: str, path: str, **kwargs) -> requests.Response:
        """A REST API call made with the user's own token."""
        headers = {"Authorization": f"token {self.token(username)}"}
        return requests.request(method, f"{self.api}{path}", headers=headers, timeout=120,
                                **kwargs)

    def server(self, username: str, name: str) -> dict | None:
        """The hub's model of a user's named server (asked as admin), None if it has none."""
        answer = self.call("admin", "GET", f"/users/{username}")
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        return answer.json().get("servers", {}).get(name)

    def user_get(self, username: str, path: str) -> requests.Response:
        """GET of a page under /user/<username>/ through the proxy, with the user's token."""
        return requests.get(f"{self.url}/user/{username}/{path}", allow_redirects=False,
                            headers={"Authorization": f"token {self.token(username)}"},
                            timeout=30)

    def stop_server(self, username: str, name: str, timeout: float = 120) -> None:
        """Ask the hub to stop a named server and wait until it has forgotten it."""
        answer = self.call(username, "DELETE", f"/users/{username}/servers/{name}")
        if answer.status_code not in (202, 204, 404):
            raise HubError(f"{self.label} hub: stop {username}/{name}: "
                           f"{answer.status_code} {answer.text}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server(username, name) is None:
                return
            time.sleep(0.25)
        raise HubError(f"{self.label} hub: {username}/{name} still there after {timeout:.0f} s:"
                       f"\n{self.log_tail()}")

    def stop_all_servers(self) -> None:
        """Best effort at the end of a run: stop every server of every user the hub knows."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            users = self.call("admin", "GET", "/users").json()
            for user in users:
                for name in user.get("servers", {}):
                    self.stop_server(user["name"], name, timeout=60)
        except (requests.RequestException, HubError, ValueError):
            pass  # the engine objects are removed by name prefix afterwards anyway


def launched(hub: HubProcess) -> HubProcess:
    """Launch a test's hub and wait for its API; the test fails with the hub's log if it does not
    come up."""
    import pytest

    hub.launch()
    try:
        hub.wait_up()
    except HubError as error:
        hub.stop()
        pytest.fail(str(error), pytrace=False)
    return hub
