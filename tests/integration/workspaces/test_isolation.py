"""N8, N9: the hub's own ports answer only on loopback and the project networks, and two
workspaces of one project cannot open connections to each other."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from lnds_spe.hub.firewall import guard_chain_name

from .conftest import free_slash30, running_hub, start_workspace
from .test_network import connect_from, container_ip, gateway_of

PROBE = r"""
import json, socket, sys
results = {}
for port in sys.argv[2:]:
    s = socket.socket(); s.settimeout(3)
    try:
        s.connect((sys.argv[1], int(port))); results[port] = "connected"
    except OSError as error:
        results[port] = type(error).__name__
    finally:
        s.close()
print(json.dumps(results))
"""


@dataclass
class OtherInterface:
    """A namespace the test made, joined to the host by a veth pair on a free /30."""

    namespace: str
    host_address: str

    def connect(self, *ports: int) -> dict[str, str]:
        """TCP connects from inside the namespace to the host's veth address: outcome per port."""
        done = subprocess.run(["ip", "netns", "exec", self.namespace, sys.executable, "-c", PROBE,
                               self.host_address, *map(str, ports)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture
def other_interface() -> Iterator[OtherInterface]:
    """A namespace on another interface of the host than loopback and the project bridges."""
    net = free_slash30()
    host_ip, ns_ip = [str(a) for a in net.hosts()]
    tag = uuid.uuid4().hex[:6]
    ns, veth_host, veth_ns = f"spen8{tag}", f"spe8h{tag}", f"spe8n{tag}"
    try:
        for command in (["ip", "netns", "add", ns],
                        ["ip", "link", "add", veth_host, "type", "veth", "peer", "name", veth_ns],
                        ["ip", "link", "set", veth_ns, "netns", ns],
                        ["ip", "addr", "add", f"{host_ip}/30", "dev", veth_host],
                        ["ip", "link", "set", veth_host, "up"],
                        ["ip", "-n", ns, "addr", "add", f"{ns_ip}/30", "dev", veth_ns],
                        ["ip", "-n", ns, "link", "set", veth_ns, "up"],
                        ["ip", "-n", ns, "link", "set", "lo", "up"]):
            subprocess.run(command, check=True, capture_output=True)
        yield OtherInterface(ns, host_ip)
    finally:
        subprocess.run(["ip", "link", "del", veth_host], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture
def host_listener() -> Iterator[int]:
    """A listener of the test on all host addresses, on a port no firewall rule names."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", 0))
    server.listen(8)

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def test_n8_hub_and_airlock_ports_are_closed_to_other_interfaces(hub, ws_alice_pa,
                                                                 other_interface, host_listener):
    """N8: from another interface the hub API and airlock ports are unreachable, though a
    listener on all host addresses is reached the same way (the path works); the hub API still
    answers on loopback and, from a workspace, on its project gateway."""
    hub_port, airlock_port = (int(hub.env["SPE_HUB_API_PORT"]),
                              int(hub.env["SPE_AIRLOCK_PORT"]))
    assert requests.get(f"http://127.0.0.1:{hub_port}/hub/api", timeout=10).status_code == 200
    with socket.create_connection(("127.0.0.1", airlock_port), timeout=3):
        pass  # both listen: the refusals below are the firewall's, not an absent service
    from_workspace = connect_from(ws_alice_pa, [(gateway_of(ws_alice_pa), hub_port),
                                                (gateway_of(ws_alice_pa), airlock_port)])
    assert set(from_workspace.values()) == {"connected"}, from_workspace

    outcome = other_interface.connect(host_listener, hub_port, airlock_port)
    assert outcome[str(host_listener)] == "connected", outcome  # positive control
    assert outcome[str(hub_port)] != "connected", outcome
    assert outcome[str(airlock_port)] != "connected", outcome


def test_n8_holds_across_a_hub_restart(tmp_path_factory, other_interface, host_listener):
    """After a restart the hub's guard is hooked once, for the new process: its ports stay closed
    to other interfaces, and a workspace that kept running still reaches both on its gateway."""
    with running_hub(tmp_path_factory.mktemp("spe-n8-restart"), "n8-restart") as own:
        workspace = start_workspace(own, "alice", "pa")
        own.stop()
        own.start()
        hub_port, airlock_port = (int(own.env["SPE_HUB_API_PORT"]),
                                  int(own.env["SPE_AIRLOCK_PORT"]))
        hooks = [rule for rule in subprocess.run(["iptables", "-w", "-S", "INPUT"],
                                                 capture_output=True, text=True).stdout.splitlines()
                 if rule.endswith(f"-j {guard_chain_name(own.prefix, [hub_port, airlock_port])}")]
        assert len(hooks) == 1 and f"pid={own.process.pid}" in hooks[0], hooks
        outcome = other_interface.connect(host_listener, hub_port, airlock_port)
        assert outcome[str(host_listener)] == "connected", outcome
        assert outcome[str(hub_port)] != "connected", outcome
        assert outcome[str(airlock_port)] != "connected", outcome
        reached = connect_from(workspace, [(gateway_of(workspace), hub_port),
                                           (gateway_of(workspace), airlock_port)])
        assert set(reached.values()) == {"connected"}, reached


LISTEN = r"""
import socket, threading
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", 0)); server.listen(8)
def serve():
    while True:
        conn, _ = server.accept(); conn.sendall(b"bob\n"); conn.close()
threading.Thread(target=serve, daemon=True).start()
print(server.getsockname()[1])
"""

REACH_SELF = r"""
import socket
with socket.create_connection((%r, %d), timeout=3) as conn:
    print(conn.recv(16).decode().strip())
"""


def test_n9_workspaces_of_one_project_cannot_connect_to_each_other(hub, ws_alice_pa):
    """N9: bob listens in his pa workspace (he reaches himself on his project address, and the
    host reaches him); alice, in the same project network, cannot connect; both reach the hub."""
    ws_bob = start_workspace(hub, "bob", "pa")
    assert gateway_of(ws_bob) == gateway_of(ws_alice_pa)  # one project network, one bridge
    kernel = ws_bob.start_kernel()
    try:
        port = int(ws_bob.run(LISTEN, kernel_id=kernel).strip())
        bob_ip = container_ip(ws_bob)
        assert ws_bob.run(REACH_SELF % (bob_ip, port)).strip() == "bob"  # positive control
        with socket.create_connection((bob_ip, port), timeout=3) as conn:
            assert conn.recv(16) == b"bob\n"  # the host (the proxy's side) still reaches him

        from_alice = connect_from(ws_alice_pa, [(bob_ip, port), (bob_ip, 8888)])
        assert "connected" not in from_alice.values(), from_alice

        hub_port = int(hub.env["SPE_HUB_API_PORT"])
        for workspace in (ws_alice_pa, ws_bob):
            reached = connect_from(workspace, [(gateway_of(workspace), hub_port)])
            assert list(reached.values()) == ["connected"], (workspace.user, reached)
    finally:
        token = hub.token("bob")
        requests.delete(f"{ws_bob.base}/api/kernels/{kernel}", timeout=30,
                        headers={"Authorization": f"token {token}"})
        hub.stop_server("bob", "pa")
