"""Host firewall for project networks: a workspace may reach the hub's ports on the host, nothing else.

A container on an internal network has no route off its subnet, but the subnet's gateway is the
host itself, where services listening on all addresses would be reachable. These iptables rules
(one chain per project network of a hub, jumped to from INPUT) accept replies to connections the
host opened (the proxy and hub talking to the workspace) and new connections to the allowed ports
(the hub API and the airlock service), and reject the rest.
"""

from __future__ import annotations

import fcntl
import hashlib
import shlex
import shutil
import subprocess
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from lnds_spe.hub.lockdown import safe_name

LOCK_FILE = "/run/spe-firewall.lock"
HOOK_MARK = "spe-network:"


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


def chain_rules(network: str, ports: int | Iterable[int]) -> list[list[str]]:
    """The chain's rules in order: replies accepted, the allowed ports opened, the rest rejected."""
    chain = chain_name(network)
    return [
        ["-A", chain, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
        *[["-A", chain, "-p", "tcp", "--dport", str(port), "-j", "ACCEPT"]
          for port in allowed_ports(ports)],
        ["-A", chain, "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"],
        ["-A", chain, "-j", "REJECT", "--reject-with", "icmp-port-unreachable"],
    ]


def hook_rule(network: str, subnet: str) -> list[str]:
    """The INPUT rule sending the network's traffic to its chain, naming the network (so a chain
    left behind by a network that is gone can be found)."""
    return ["INPUT", "-s", subnet, "-m", "comment", "--comment", f"{HOOK_MARK}{network}",
            "-j", chain_name(network)]


def hooked_networks(input_rules: list[str]) -> set[str]:
    """The networks whose hooks appear in `iptables -S INPUT` output."""
    found = set()
    for rule in input_rules:
        parts = shlex.split(rule)
        if "--comment" in parts:
            comment = parts[parts.index("--comment") + 1]
            if comment.startswith(HOOK_MARK):
                found.add(comment[len(HOOK_MARK):])
    return found


def stale_networks(hooked: set[str], in_use: set[str], prefix: str) -> set[str]:
    """This hub's hooked networks that no container uses any more."""
    return {n for n in hooked if n.startswith(f"{prefix}-") and n not in in_use}


def remove_stale_firewalls(prefix: str, in_use: set[str]) -> set[str]:
    """Remove the chains of this hub's networks that no container uses; the networks removed."""
    rules = subprocess.run(["iptables", "-w", "-S", "INPUT"], capture_output=True,
                           text=True).stdout.splitlines()
    stale = stale_networks(hooked_networks(rules), in_use, prefix)
    for network in sorted(stale):
        remove_firewall(network)
    return stale


def restore_input(network: str, ports: int | Iterable[int]) -> str:
    """iptables-restore input that replaces exactly this chain, in one transaction (with
    --noflush, other chains are untouched; the chain is never seen empty or half-built)."""
    lines = ["*filter", f":{chain_name(network)} - [0:0]",
             *(" ".join(rule) for rule in chain_rules(network, ports)), "COMMIT", ""]
    return "\n".join(lines)


_applied: dict[str, str] = {}  # chain -> the restore input this process last applied
_in_process = threading.Lock()


@contextmanager
def _firewall_lock() -> Iterator[None]:
    """One writer at a time, across this hub's threads and other processes on the host."""
    with _in_process, open(LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def apply_firewall(network: str, subnet: str, ports: int | Iterable[int]) -> None:
    """Install the project's host rules: the chain is replaced atomically, and only when its
    rules change; the INPUT hook is added once. Concurrent spawns never interleave."""
    iptables, restore = shutil.which("iptables"), shutil.which("iptables-restore")
    if iptables is None or restore is None:
        raise RuntimeError("iptables is missing: install the iptables package, or set "
                           "SPEDockerSpawner.host_firewall = False where the hub runs in a container")
    chain, wanted = chain_name(network), restore_input(network, ports)
    with _firewall_lock():
        exists = subprocess.run([iptables, "-w", "-S", chain], capture_output=True).returncode == 0
        if not exists or _applied.get(chain) != wanted:
            subprocess.run([restore, "--noflush"], input=wanted, text=True, check=True,
                           capture_output=True)
            _applied[chain] = wanted
        hook = hook_rule(network, subnet)
        if subprocess.run([iptables, "-w", "-C", *hook], capture_output=True).returncode != 0:
            subprocess.run([iptables, "-w", "-I", hook[0], "1", *hook[1:]], check=True,
                           capture_output=True)


def remove_firewall(network: str) -> None:
    """Unhook and delete a project network's chain; nothing happens if it is absent."""
    chain = chain_name(network)
    rules = subprocess.run(["iptables", "-w", "-S", "INPUT"], capture_output=True,
                           text=True).stdout.splitlines()
    for rule in rules:
        parts = shlex.split(rule)
        if parts[:1] == ["-A"] and parts[-1] == chain:
            subprocess.run(["iptables", "-w", "-D", *parts[1:]], capture_output=True)
    subprocess.run(["iptables", "-w", "-F", chain], capture_output=True)
    subprocess.run(["iptables", "-w", "-X", chain], capture_output=True)
    _applied.pop(chain, None)


def _networks_in_use() -> set[str]:
    """Networks that a container (running or not) of the engine is attached to."""
    import docker

    client = docker.from_env()
    return {name for container in client.containers.list(all=True)
            for name in container.attrs["NetworkSettings"]["Networks"]}


if __name__ == "__main__":
    # `python -m lnds_spe.hub.firewall PREFIX`: run by scripts/hub.sh at start, stop and down.
    import sys

    for removed in sorted(remove_stale_firewalls(sys.argv[1], _networks_in_use())):
        print(f"removed the host firewall of {removed}: no workspace uses it")
