"""A real hub with real locked-down workspaces (Podman/Docker), shared by the whole session.

One JupyterHub runs per test session from the checkout's jupyterhub_config.py, with a SQLite
registry in a temporary state directory. Workspaces are spawned through the hub's REST API with
each user's own token and shared between tests; code runs inside through the Jupyter kernel API
behind the hub's proxy, as a researcher's browser would run it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests
import websocket

from lnds_spe.config import setting
from lnds_spe.crypto import PUBLIC_KEY_NAME, generate_keypair, load_public_key
from lnds_spe.hub.firewall import remove_firewall
from lnds_spe.hub.lockdown import network_name, review_network_name
from lnds_spe.ingress import Recipients, upload_dataset
from lnds_spe.storage import LocalStore
from tests.support import hubs
from tests.support.engine import remove_volumes
from tests.support.hubs import HubError, HubProcess, demo_accounts, free_port

ROOT = Path(__file__).resolve().parents[3]
IMAGE = setting("SPE_WORKSPACE_IMAGE")
ENGINE_SOCKET = setting("SPE_ENGINE_SOCKET")
SECRETS = {"SPE_KEY_PASSPHRASE": "kp-" + secrets.token_hex(12),
           "AWS_ACCESS_KEY_ID": "ak-" + secrets.token_hex(12),
           "AWS_SECRET_ACCESS_KEY": "sk-" + secrets.token_hex(12)}


def fail_missing(what: str, how: str) -> None:
    """Fail (never skip) with a message naming what the machine lacks and how to get it."""
    pytest.fail(f"{what} is missing: {how}", pytrace=False)


def engine_socket() -> str:
    """The container engine's API socket path, or fail naming what to run."""
    try:
        return hubs.engine_socket()
    except HubError as error:
        pytest.fail(str(error), pytrace=False)


def engine_get(path: str) -> requests.Response:
    """GET on the engine's Docker-compatible API over its unix socket (via curl)."""
    out = subprocess.run(["curl", "-sS", "--unix-socket", engine_socket(), f"http://d{path}"],
                         capture_output=True, text=True, timeout=30)
    response = requests.Response()
    response.status_code = 200 if out.returncode == 0 else 599
    response._content = out.stdout.encode()
    return response


def inspect_container(name: str) -> dict:
    """The engine's inspect document of a container."""
    return json.loads(engine_get(f"/containers/{name}/json").content)


# --- The hub ----------------------------------------------------------------------------------

@dataclass(kw_only=True)
class Hub(HubProcess):
    """A running JupyterHub (the benchmarks' HubProcess) and the registry behind it."""

    state_dir: Path
    prefix: str

    def start(self) -> None:
        """Start the hub in the background and wait until its API answers (about 10 s)."""
        self.launch()
        try:
            self.wait_up(90)
        except HubError as error:
            pytest.fail(str(error), pytrace=False)

    def spawn(self, username: str, server: str, **options) -> requests.Response:
        """Ask the hub to start a user's named server with these user_options; its first answer."""
        return self.call(username, "POST", f"/users/{username}/servers/{server}",
                         json=options or {})

    def wait_ready(self, username: str, project: str, timeout: float = 180) -> dict:
        """Wait until the workspace is ready; its hub model."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.server(username, project)
            if model and model.get("ready"):
                return model
            if model is None:
                pytest.fail(f"{username}/{project} stopped while starting:\n{self.log_tail()}",
                            pytrace=False)
            time.sleep(0.5)
        pytest.fail(f"{username}/{project} not ready in {timeout} s:\n{self.log_tail()}",
                    pytrace=False)

    def wait_gone(self, username: str, project: str, timeout: float) -> float:
        """Wait until a server is gone; seconds it took."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.server(username, project) is None:
                return time.monotonic() - start
            time.sleep(1)
        pytest.fail(f"{username}/{project} still running after {timeout} s:\n{self.log_tail()}",
                    pytrace=False)

    def registry(self):
        """The registry the hub uses (same SQLite file)."""
        from lnds_spe.projects import open_registry

        return open_registry(self.env["SPE_DATABASE_URL"])


def _check_prerequisites() -> None:
    """Fail with a clear message when the engine, image or proxy is missing."""
    engine_socket()
    if engine_get("/version").status_code != 200:
        fail_missing("a container engine answering on its socket", "run scripts/engine-setup.sh")
    if engine_get(f"/images/{IMAGE}/json").status_code != 200 or \
            "Id" not in json.loads(engine_get(f"/images/{IMAGE}/json").content or b"{}"):
        fail_missing(f"workspace image {IMAGE}", "run scripts/build-images.sh")
    if not shutil.which("configurable-http-proxy"):
        fail_missing("configurable-http-proxy", "run scripts/engine-setup.sh")
    for tool in ("ip", "iptables", "curl"):
        if not shutil.which(tool):
            fail_missing(tool, "run scripts/engine-setup.sh (apt-get install iproute2 iptables curl)")


# Projects of the session: slug -> (researchers, datasets {name: {file: text}}, days left)
PROJECTS = {
    "pa": (["alice", "bob", "dave"], {"cohort": {"visits.csv": "id,age\n1,40\n2,51\n"}}, 30),
    "pb": (["carol"], {"secretb": {"b-only-marker.txt": "project b data\n"}}, 30),
    "pc": (["frank"], {}, 30),
    "pd": (["dave"], {}, 30),
    "pold": (["erin"], {}, -1),
}
# Output checkers of the session (not researchers of the project they check): slug -> users.
CHECKERS = {"pa": ["grace"]}
MEM_LIMIT = "1G"
PIDS_LIMIT = 300
CPU_LIMIT = 1.0


def _seed_registry(url: str, state_dir: Path) -> None:
    """Create the session's projects and members, and upload their datasets encrypted for the
    SPE's key (the hub decrypts and verifies them at each spawn)."""
    from lnds_spe.projects import open_registry

    registry = open_registry(url)
    recipients = Recipients(load_public_key(state_dir / "keys" / PUBLIC_KEY_NAME))
    today = date.today()
    for slug, (researchers, datasets, days_left) in PROJECTS.items():
        start = today - timedelta(days=10)
        registry.create_project(slug, f"Project {slug}", start, today + timedelta(days=days_left),
                                actor="test-setup", cpu_limit=CPU_LIMIT, mem_limit=MEM_LIMIT,
                                pids_limit=PIDS_LIMIT, allowed_images=(IMAGE,))
        for user in researchers:
            registry.add_member(slug, user, "researcher", actor="test-setup")
        for name, files in datasets.items():
            folder = state_dir / "datasets" / slug / name
            folder.mkdir(parents=True)
            for file_name, text in files.items():
                (folder / file_name).write_text(text)
            upload_dataset(registry, folder, slug, name, store=LocalStore(state_dir / "store"),
                           recipients=recipients, actor="test-setup")
    for slug, checkers in CHECKERS.items():
        for user in checkers:
            registry.add_member(slug, user, "output_checker", actor="test-setup")


def _remove_engine_objects(prefix: str) -> None:
    """Remove the session's containers, volumes and networks from the engine."""
    for kind, fmt in (("ps", "{{.Names}}"), ("volume ls", "{{.Name}}"),
                      ("network ls", "{{.Name}}")):
        engine = shutil.which("podman") or shutil.which("docker")
        listing = subprocess.run([engine, *kind.split(), "-a" if kind == "ps" else "-q",
                                  "--format", fmt], capture_output=True, text=True)
        if kind != "ps":
            listing = subprocess.run([engine, *kind.split(), "--format", fmt],
                                     capture_output=True, text=True)
        names = [n for n in listing.stdout.split() if n.startswith(prefix + "-")]
        if kind == "volume ls":
            remove_volumes(names)
        elif names:
            noun = {"ps": "rm", "network ls": "network rm"}[kind]
            subprocess.run([engine, *noun.split(), "-f", *names], capture_output=True)


@contextmanager
def running_hub(state_dir: Path, label: str) -> Iterator[Hub]:
    """A JupyterHub with the session's projects in its own state dir and container prefix, torn
    down with everything it started."""
    _check_prerequisites()
    registry_url = f"sqlite:///{state_dir / 'spe.sqlite'}"
    # Hub-side secrets the workspaces must never see (D3): the SPE's key pair and store keys.
    generate_keypair(state_dir / "keys", SECRETS["SPE_KEY_PASSPHRASE"])
    _seed_registry(registry_url, state_dir)
    prefix = f"spet{uuid.uuid4().hex[:6]}"
    port, api_port, proxy_port = free_port(), free_port(), free_port()
    hub_dir = state_dir / "hub"
    hub_dir.mkdir()
    state_dir.chmod(0o755)  # as an admin's mkdir leaves it: the hub must close it itself (D6)
    people = {u for users, _, _ in PROJECTS.values() for u in users}
    people |= {u for users in CHECKERS.values() for u in users}
    passwords = demo_accounts(state_dir, sorted(people | {"admin"}))
    env = {
        **os.environ,
        "DOCKER_HOST": f"unix://{engine_socket()}",
        "SPE_STATE_DIR": str(state_dir),
        "SPE_DEMO_MODE": "1",  # each account of demo-accounts.json with its own password
        "SPE_DATABASE_URL": registry_url,
        "SPE_HUB_BIND_URL": f"http://127.0.0.1:{port}",
        "SPE_HUB_API_PORT": str(api_port),
        "SPE_PROXY_API_URL": f"http://127.0.0.1:{proxy_port}",
        "SPE_CONTAINER_PREFIX": prefix,
        "SPE_WORKSPACE_IMAGE": IMAGE,
        "SPE_ENFORCE_EVERY": "5",
        "SPE_ACTIVITY_INTERVAL": "10",
        "SPE_HUB_ACTIVITY_INTERVAL": "10",
        "SPE_AIRLOCK_PORT": str(free_port()),
        "SPE_OUTPUT_CHECKERS": ",".join(sorted({u for users in CHECKERS.values() for u in users})),
        "PYTHONPATH": str(ROOT),
        **SECRETS,
    }
    hub = Hub(label=label, config=ROOT / "jupyterhub_config.py", url=f"http://127.0.0.1:{port}",
              env=env, workdir=hub_dir, passwords=passwords,
              state_dir=state_dir, prefix=prefix)
    hub.start()
    try:
        yield hub
    finally:
        for user in list(hub.tokens):
            answer = hub.call("admin", "GET", f"/users/{user}") if user != "admin" else None
            servers = answer.json().get("servers", {}) if answer is not None and \
                answer.status_code == 200 else {}
            for name in servers:
                hub.call("admin", "DELETE", f"/users/{user}/servers/{name}")
        hub.stop()
        _remove_engine_objects(prefix)
        registry = hub.registry()
        for slug in {p.slug for p in registry.list_projects()} | set(PROJECTS):
            remove_firewall(network_name(prefix, slug))  # tests add projects of their own too
        registry.engine.dispose()
        for user in {u for users in CHECKERS.values() for u in users}:
            remove_firewall(review_network_name(prefix, user))


@pytest.fixture(scope="session")
def hub(tmp_path_factory) -> Iterator[Hub]:
    """One JupyterHub for the whole session."""
    with running_hub(tmp_path_factory.mktemp("spe-state"), "test") as session_hub:
        yield session_hub


# --- Workspaces and code inside them ----------------------------------------------------------

@dataclass
class Workspace:
    """A running project workspace and the way a researcher runs code in it."""

    hub: Hub
    user: str
    project: str

    @property
    def base(self) -> str:
        """The workspace's URL prefix behind the hub's proxy."""
        return f"{self.hub.url}/user/{self.user}/{self.project}"

    @property
    def container(self) -> str:
        """The name of the workspace's container."""
        return f"{self.hub.prefix}-{self.user}--{self.project}"

    def run(self, code: str, timeout: float = 120, kernel_id: str | None = None) -> str:
        """Run code in a fresh kernel (or the given one); its stdout. Fails on an error."""
        result = self.execute(code, timeout=timeout, kernel_id=kernel_id)
        assert result["error"] is None, f"code failed inside:\n{result['error']}\n{code}"
        return result["stdout"]

    def start_kernel(self) -> str:
        """Start a kernel through the Jupyter server API; its id."""
        token = self.hub.token(self.user)
        answer = requests.post(f"{self.base}/api/kernels", json={"name": "python3"},
                               headers={"Authorization": f"token {token}"}, timeout=60)
        assert answer.status_code == 201, f"kernel start: {answer.status_code} {answer.text}"
        return answer.json()["id"]

    def execute(self, code: str, timeout: float = 120, kernel_id: str | None = None) -> dict:
        """Send one execute_request over the kernel websocket; stdout, error, final status."""
        token = self.hub.token(self.user)
        own_kernel = kernel_id is None
        kernel_id = kernel_id or self.start_kernel()
        try:
            return self._execute_in(kernel_id, code, timeout, token)
        finally:
            if own_kernel:  # a kernel left running holds memory under the workspace's limit
                requests.delete(f"{self.base}/api/kernels/{kernel_id}", timeout=30,
                                headers={"Authorization": f"token {token}"})

    def _execute_in(self, kernel_id: str, code: str, timeout: float, token: str) -> dict:
        """One execute_request in a running kernel."""
        ws_url = self.base.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels"
        conn = websocket.create_connection(ws_url, timeout=timeout,
                                           header=[f"Authorization: token {token}"])
        msg_id = uuid.uuid4().hex
        conn.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": self.user,
                       "session": uuid.uuid4().hex, "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }))
        stdout, error, status = [], None, "ok"
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                msg = json.loads(conn.recv())
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    if msg.get("msg_type") == "status" and \
                            msg["content"].get("execution_state") in ("restarting", "dead"):
                        return {"stdout": "".join(stdout), "error": None,
                                "status": msg["content"]["execution_state"]}
                    continue
                kind = msg["msg_type"]
                if kind == "stream" and msg["content"]["name"] == "stdout":
                    stdout.append(msg["content"]["text"])
                elif kind == "error":
                    error = "\n".join(msg["content"]["traceback"])
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    break
                elif kind == "status" and msg["content"]["execution_state"] in ("restarting",
                                                                               "dead"):
                    status = msg["content"]["execution_state"]
                    break
            else:
                status = "timeout"
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            status = "closed"
        finally:
            conn.close()
        return {"stdout": "".join(stdout), "error": error, "status": status}


def start_workspace(hub: Hub, user: str, project: str) -> Workspace:
    """Spawn a user's project workspace through the REST API and wait until it is ready."""
    answer = hub.spawn(user, project, project=project, image=IMAGE)
    assert answer.status_code in (201, 202), f"spawn {user}/{project}: {answer.text}"
    hub.wait_ready(user, project)
    return Workspace(hub, user, project)


@pytest.fixture(scope="session")
def ws_alice_pa(hub) -> Workspace:
    """alice's workspace of project pa (with dataset `cohort`)."""
    return start_workspace(hub, "alice", "pa")


@pytest.fixture(scope="session")
def ws_carol_pb(hub) -> Workspace:
    """carol's workspace of project pb (with dataset `secretb`)."""
    return start_workspace(hub, "carol", "pb")


# --- The test's own "outside" host ------------------------------------------------------------

def used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network this machine's addresses and routes mention."""
    seen = []
    text = subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True).stdout
    text += subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    for match in re.finditer(r"(\d+\.\d+\.\d+\.\d+)(/\d+)?", text):
        seen.append(ipaddress.ip_network(match.group(1) + (match.group(2) or "/32"),
                                         strict=False))
    return seen


def free_slash30() -> ipaddress.IPv4Network:
    """A /30 that no address or route of this machine (nor podman's pools) overlaps."""
    taken = used_networks() + [ipaddress.ip_network("10.88.0.0/16"),
                               ipaddress.ip_network("10.89.0.0/16")]
    for second in range(200, 250):
        for fourth in range(0, 256, 4):
            candidate = ipaddress.ip_network(f"10.{second}.0.{fourth}/30")
            if not any(candidate.overlaps(net) for net in taken):
                return candidate
    pytest.fail("no free /30 found in 10.200.0.0-10.249.255.255", pytrace=False)


LISTENER = r"""
import socket, sys, threading
port, log = int(sys.argv[1]), sys.argv[2]
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", port)); tcp.listen(16)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("0.0.0.0", port))
def serve_udp():
    while True:
        data, peer = udp.recvfrom(2048)
        with open(log, "a") as f: f.write(data.decode(errors="replace") + "\n")
threading.Thread(target=serve_udp, daemon=True).start()
while True:
    conn, _ = tcp.accept(); conn.sendall(b"outside\n"); conn.close()
"""


@dataclass
class OutsideHost:
    """A host in a network namespace the test created, reachable from the hub side."""

    address: str
    host_side_address: str
    port: int
    udp_log: Path


@pytest.fixture(scope="session")
def outside_host(tmp_path_factory) -> Iterator[OutsideHost]:
    """A namespace with a TCP+UDP listener on a free /30; removed at the end of the session."""
    net = free_slash30()
    host_ip, ns_ip = [str(a) for a in net.hosts()]
    tag = uuid.uuid4().hex[:6]
    ns, veth_host, veth_ns = f"speout{tag}", f"speh{tag}", f"spen{tag}"
    port = 18000 + secrets.randbelow(1000)
    udp_log = tmp_path_factory.mktemp("outside") / "udp.log"
    udp_log.write_text("")
    commands = [
        ["ip", "netns", "add", ns],
        ["ip", "link", "add", veth_host, "type", "veth", "peer", "name", veth_ns],
        ["ip", "link", "set", veth_ns, "netns", ns],
        ["ip", "addr", "add", f"{host_ip}/30", "dev", veth_host],
        ["ip", "link", "set", veth_host, "up"],
        ["ip", "-n", ns, "addr", "add", f"{ns_ip}/30", "dev", veth_ns],
        ["ip", "-n", ns, "link", "set", veth_ns, "up"],
        ["ip", "-n", ns, "link", "set", "lo", "up"],
    ]
    listener = None
    try:
        for command in commands:
            subprocess.run(command, check=True, capture_output=True)
        listener = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", LISTENER,
                                     str(port), str(udp_log)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # positive control: the hub side reaches it
            try:
                with socket.create_connection((ns_ip, port), timeout=1) as conn:
                    assert conn.recv(16) == b"outside\n"
                    break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail(f"outside host {ns_ip}:{port} not reachable from the hub side")
        yield OutsideHost(ns_ip, host_ip, port, udp_log)
    finally:
        if listener is not None:
            listener.terminate()
            listener.wait()
        subprocess.run(["ip", "link", "del", veth_host], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
