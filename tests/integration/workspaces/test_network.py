"""N1-N7: a workspace's only way out is the hub; projects never share a network."""

import json
import socket
import subprocess
import threading
import time

import pytest

from .conftest import ENGINE_SOCKET, inspect_container

CONNECT = r"""
import json, socket
results = {}
for host, port in %s:
    s = socket.socket(); s.settimeout(3)
    try:
        s.connect((host, port)); results[f"{host}:{port}"] = "connected"
    except OSError as error:
        results[f"{host}:{port}"] = type(error).__name__ + ": " + str(error)
    finally:
        s.close()
print(json.dumps(results))
"""


def connect_from(workspace, targets: list[tuple[str, int]]) -> dict[str, str]:
    """Try a TCP connect to each (host, port) from inside; the outcome of each."""
    return json.loads(workspace.run(CONNECT % repr(targets)))


def container_ip(workspace) -> str:
    """The workspace container's address on its project network."""
    networks = inspect_container(workspace.container)["NetworkSettings"]["Networks"]
    (network,) = networks.values()
    return network["IPAddress"]


def gateway_of(workspace) -> str:
    """The gateway (the host) of the workspace's project network."""
    networks = inspect_container(workspace.container)["NetworkSettings"]["Networks"]
    (network,) = networks.values()
    return network["Gateway"]


@pytest.fixture(scope="module")
def host_listener():
    """A TCP listener of the test on all host addresses: the host's other services."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", 0))
    server.listen(8)
    accepted = []

    def accept():
        while True:
            try:
                conn, peer = server.accept()
            except OSError:
                return
            accepted.append(peer)
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1], accepted
    server.close()


def test_n1_no_tcp_to_outside_host(ws_alice_pa, outside_host):
    """N1: the outside host (reachable from the hub side) is unreachable from inside."""
    with socket.create_connection((outside_host.address, outside_host.port), timeout=3) as conn:
        assert conn.recv(16) == b"outside\n"  # positive control from the hub side
    result = connect_from(ws_alice_pa, [(outside_host.address, outside_host.port)])
    assert "connected" not in result.values(), result


def test_n2_no_engine_api_host_or_other_project(ws_alice_pa, ws_carol_pb, outside_host,
                                                host_listener):
    """N2: no engine API, no other host address or host service, no other project's workspace."""
    port, accepted = host_listener
    with socket.create_connection(("127.0.0.1", port), timeout=3):
        pass  # positive control: the listener works
    gateway = gateway_of(ws_alice_pa)
    targets = [
        (gateway, port),                                  # a host service on all addresses
        (outside_host.host_side_address, port),           # the host's other address
        (gateway, 2375), (gateway, 2376),                 # an engine API over TCP
        (container_ip(ws_carol_pb), 8888),                # another project's workspace
    ]
    before = len(accepted)
    result = connect_from(ws_alice_pa, targets)
    assert "connected" not in result.values(), result
    assert len(accepted) == before
    engine = json.loads(ws_alice_pa.run(
        "import os, json; print(json.dumps([p for p in ('/var/run/docker.sock', "
        f"'/run/podman/podman.sock', {ENGINE_SOCKET!r}) if os.path.exists(p)]))"))
    assert engine == []


def test_n3_only_the_hub_port_on_the_gateway(ws_alice_pa):
    """N3: the hub API port on the gateway accepts connections from inside."""
    hub_port = int(ws_alice_pa.hub.env["SPE_HUB_API_PORT"])
    result = connect_from(ws_alice_pa, [(gateway_of(ws_alice_pa), hub_port)])
    assert list(result.values()) == ["connected"]


def test_n4_no_name_resolution_but_the_hub(ws_alice_pa):
    """N4: only the hub's name resolves; no resolver forwards queries upstream."""
    out = ws_alice_pa.run(r"""
import json, socket
def resolve(name):
    try:
        return sorted({a[4][0] for a in socket.getaddrinfo(name, 80, socket.AF_INET)})
    except OSError as error:
        return type(error).__name__
servers = [l.split()[1] for l in open("/etc/resolv.conf") if l.startswith("nameserver")]
print(json.dumps({"hub": resolve("spe-hub"), "other": resolve("data-portal.example"),
                  "pb": resolve("spe-project-pb"), "servers": servers}))
""")
    answer = json.loads(out)
    assert answer["hub"] == [gateway_of(ws_alice_pa)]
    assert not isinstance(answer["other"], list), answer
    assert not isinstance(answer["pb"], list), answer
    assert set(answer["servers"]) <= {"127.0.0.1"}, answer["servers"]


def test_n5_no_default_route_and_no_udp_out(ws_alice_pa, outside_host):
    """N5: no default route inside; a UDP datagram to the outside host never arrives."""
    out = ws_alice_pa.run(r"""
import json, subprocess, socket
routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.sendto(b"from-workspace", (OUTSIDE_ADDRESS, OUTSIDE_PORT)); sent = "sent"
except OSError as error:
    sent = type(error).__name__
print(json.dumps({"routes": routes, "sent": sent}))
""".replace("OUTSIDE_ADDRESS", repr(outside_host.address))
                          .replace("OUTSIDE_PORT", str(outside_host.port)))
    answer = json.loads(out)
    assert "default" not in answer["routes"]
    assert answer["routes"].strip(), "ip route printed nothing"
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.sendto(b"from-hub-side", (outside_host.address, outside_host.port))
    deadline = time.monotonic() + 5
    while "from-hub-side" not in outside_host.udp_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    received = outside_host.udp_log.read_text()
    assert "from-hub-side" in received  # positive control
    assert "from-workspace" not in received


def test_n6_projects_on_different_networks(ws_alice_pa, ws_carol_pb):
    """N6: two projects' workspaces are on different networks and cannot connect either way."""
    nets_a = inspect_container(ws_alice_pa.container)["NetworkSettings"]["Networks"]
    nets_b = inspect_container(ws_carol_pb.container)["NetworkSettings"]["Networks"]
    assert len(nets_a) == 1 and len(nets_b) == 1
    assert set(nets_a).isdisjoint(nets_b)
    (net_a,), (net_b,) = nets_a.values(), nets_b.values()
    assert net_a["Gateway"] != net_b["Gateway"]
    a_to_b = connect_from(ws_alice_pa, [(net_b["IPAddress"], 8888)])
    b_to_a = connect_from(ws_carol_pb, [(net_a["IPAddress"], 8888)])
    assert "connected" not in a_to_b.values(), a_to_b
    assert "connected" not in b_to_a.values(), b_to_a


IPV6_PROBE = r"""
import json, socket
addresses = open("/proc/net/if_inet6").read().split()
outcomes = {}
for target in %r:
    try:
        info = socket.getaddrinfo(target, %d, socket.AF_INET6, socket.SOCK_STREAM)[0][4]
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.settimeout(3)
            s.connect(info)
        outcomes[target] = "connected"
    except OSError as error:
        outcomes[target] = type(error).__name__
print(json.dumps({"if_inet6": addresses, "outcomes": outcomes}))
"""


def test_n7_nothing_on_the_host_over_ipv6(ws_alice_pa):
    """N7: the workspace has no IPv6 address at all, so a listener on the host's [::] (reachable
    from the host itself: the positive control) is reached over none of the host's IPv6
    addresses, link-local included."""
    server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    server.bind(("::", 0))
    server.listen(8)
    port = server.getsockname()[1]
    try:
        with socket.create_connection(("::1", port), timeout=3):
            pass  # the listener answers on the host
        shown = subprocess.run(["ip", "-6", "-o", "addr", "show"], capture_output=True, text=True,
                               check=True).stdout.split("\n")
        host_addresses = []
        for line in filter(None, shown):
            fields = line.split()
            address = fields[3].split("/")[0]
            if address.startswith("fe80"):
                host_addresses += [f"{address}%eth0", f"{address}%lo"]
            else:
                host_addresses.append(address)
        found = json.loads(ws_alice_pa.run(IPV6_PROBE % (host_addresses or ["::1"], port)))
    finally:
        server.close()
    assert found["if_inet6"] == [], found["if_inet6"]
    assert found["outcomes"] and "connected" not in found["outcomes"].values(), found["outcomes"]
