"""Host firewall for project networks: a workspace may reach the hub's ports on the host, nothing else.

A container on an internal network has no route off its subnet, but the subnet's gateway is the
host itself, where services listening on all addresses would be reachable. These iptables rules
(one chain per project network of a hub, jumped to from INPUT) accept replies to connections the
host opened (the proxy and hub talking to the workspace) and new connections to the allowed ports
(the hub API and the airlock service), and reject the rest.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterable

from lnds_spe.hub.lockdown import safe_name


def chain_name(network: str) -> str:
    """The iptables chain guarding the host from one project network (unique per hub, <= 28)."""
    digest = hashlib.sha256(network.encode()).hexdigest()[:8]
    return f"SPE-{safe_name(network)[-14:]}-{digest}"


def allowed_ports(ports: int | Iterable[int]) -> list[int]:
    """The TCP ports a project network may open on the host: distinct, positive, in order."""
    listed = [ports] if isinstance(ports, int) else list(ports)
    if not listed or any(not 0 < p < 65536 for p in listed):
        raise ValueError(f"firewall ports must be 1-65535, got {listed!r}")
    return sorted(set(listed))


def firewall_commands(network: str, subnet: str, ports: int | Iterable[int]) -> list[list[str]]:
    """iptables argument lists that (re)build the network's chain and hook it into INPUT once."""
    chain = chain_name(network)
    return [
        ["-N", chain],
        ["-F", chain],
        ["-A", chain, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
        *[["-A", chain, "-p", "tcp", "--dport", str(port), "-j", "ACCEPT"]
          for port in allowed_ports(ports)],
        ["-A", chain, "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"],
        ["-A", chain, "-j", "REJECT", "--reject-with", "icmp-port-unreachable"],
        ["-C", "INPUT", "-s", subnet, "-j", chain],
        ["-I", "INPUT", "1", "-s", subnet, "-j", chain],
    ]


def apply_firewall(network: str, subnet: str, ports: int | Iterable[int]) -> None:
    """Install the project's host rules (idempotent: an existing chain is rebuilt, hooked once)."""
    iptables = shutil.which("iptables")
    if iptables is None:
        raise RuntimeError("iptables is missing: install the iptables package, or set "
                           "SPEDockerSpawner.host_firewall = False where the hub runs in a container")
    commands = firewall_commands(network, subnet, ports)
    hooked = False
    for args in commands:
        if args[0] == "-N":
            subprocess.run([iptables, "-w", *args], capture_output=True)  # exists already: fine
        elif args[0] == "-C":
            hooked = subprocess.run([iptables, "-w", *args], capture_output=True).returncode == 0
        elif args[0] == "-I" and hooked:
            continue
        else:
            subprocess.run([iptables, "-w", *args], check=True, capture_output=True)


def remove_firewall(network: str) -> None:
    """Unhook and delete a project network's chain; nothing happens if it is absent."""
    chain = chain_name(network)
    rules = subprocess.run(["iptables", "-w", "-S", "INPUT"], capture_output=True,
                           text=True).stdout.splitlines()
    for rule in rules:
        parts = rule.split()
        if parts[:1] == ["-A"] and parts[-1] == chain:
            subprocess.run(["iptables", "-w", "-D", *parts[1:]], capture_output=True)
    subprocess.run(["iptables", "-w", "-F", chain], capture_output=True)
    subprocess.run(["iptables", "-w", "-X", chain], capture_output=True)
