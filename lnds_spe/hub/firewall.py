"""Host firewall for project networks: a workspace may reach the hub's ports on the host, nothing else.

Three kinds of rules, all written under one host-wide lock:

- Host side (N2, N3). A container on an internal network has no route off its subnet, but the
  subnet's gateway is the host itself, where services listening on all addresses would be
  reachable. One iptables chain per project network of a hub, jumped to from INPUT by source
  subnet, accepts replies to connections the host opened (the proxy and hub talking to the
  workspace) and new connections to the allowed ports (the hub API and the airlock), and rejects
  the rest.
- Between workspaces (N9). Two containers on one bridge talk at layer 2: their frames never reach
  INPUT or FORWARD unless br_netfilter is loaded and switched on for the whole host. A base chain
  per project network in the nftables bridge family (hook forward: frames from one bridge port to
  another, never those to or from the host) drops the network's IPv4 and ARP, so a workspace
  reaches no other workspace of its project, whatever br_netfilter does.
- The hub's own ports (N8). The hub API and the airlock listen on all addresses, since the
  gateways they serve come and go with their bridges. A guard chain per hub, hooked into INPUT
  below every project network's hook, rejects new connections to those ports from anything but
  loopback: only loopback and the project networks (whose chains accept them first) get through.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lnds_spe.hub.lockdown import safe_name

LOCK_FILE = "/run/spe-firewall.lock"
HOOK_MARK = "spe-network:"
GUARD_MARK = "spe-hub:"
BRIDGE_TABLE = "spe-isolation"  # nftables bridge-family table holding every network's chain


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


def isolation_input(network: str, subnet: str) -> str:
    """nft input that replaces the network's bridge chain in one transaction: IPv4 and ARP
    forwarded between two ports of the network's bridge (workspace to workspace) are dropped.
    The frames are matched by the subnet, not the bridge's name, which the engine chooses and
    which exists only while a container is attached."""
    chain, mark = chain_name(network), f'comment "{HOOK_MARK}{network}"'
    where = f"bridge {BRIDGE_TABLE} {chain}"
    return "\n".join([
        f"add table bridge {BRIDGE_TABLE}",
        f"add chain {where} {{ type filter hook forward priority 0 ; policy accept ; }}",
        f"flush chain {where}",
        f"add rule {where} ether type ip ip saddr {subnet} ip daddr {subnet} drop {mark}",
        f"add rule {where} ether type arp arp saddr ip {subnet} drop {mark}",
        ""])


def isolated_networks(ruleset: dict) -> set[str]:
    """The networks whose bridge chains appear in `nft -j list table bridge spe-isolation`."""
    found = set()
    for item in ruleset.get("nftables", []):
        comment = item.get("rule", {}).get("comment", "")
        if comment.startswith(HOOK_MARK):
            found.add(comment[len(HOOK_MARK):])
    return found


def guard_chain_name(prefix: str, ports: Iterable[int]) -> str:
    """The iptables chain guarding one hub's own ports: named by its container prefix and its
    ports, so two hubs running at once never share one, even under the same prefix."""
    key = f"{prefix}:{','.join(map(str, allowed_ports(ports)))}"
    return f"SPE-HUB-{safe_name(prefix)[-10:]}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def guard_rules(prefix: str, ports: Iterable[int]) -> list[list[str]]:
    """The guard's rules: replies and loopback pass on, new connections to the ports are
    rejected (project networks never get here: their hooks above accept their ports first)."""
    chain = guard_chain_name(prefix, ports)
    return [
        ["-A", chain, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"],
        ["-A", chain, "-i", "lo", "-j", "RETURN"],
        ["-A", chain, "-p", "tcp", "-m", "multiport", "--dports",
         ",".join(str(p) for p in allowed_ports(ports)), "-j", "REJECT",
         "--reject-with", "tcp-reset"],
    ]


def guard_comment(prefix: str, pid: int, ports: Iterable[int]) -> str:
    """The guard hook's comment: the hub (prefix), the process it guards, and its ports."""
    return f"{GUARD_MARK}{prefix}:pid={pid}:ports={','.join(map(str, allowed_ports(ports)))}"


def guard_hook(prefix: str, pid: int, ports: Iterable[int]) -> list[str]:
    """The INPUT rule sending every packet to the hub's guard."""
    return ["INPUT", "-m", "comment", "--comment", guard_comment(prefix, pid, ports),
            "-j", guard_chain_name(prefix, ports)]


def parse_guard(comment: str) -> tuple[str, int, list[int]] | None:
    """(prefix, pid, ports) of a guard hook's comment, None for any other comment."""
    if not comment.startswith(GUARD_MARK):
        return None
    prefix, _, rest = comment[len(GUARD_MARK):].rpartition(":pid=")
    pid, _, ports = rest.partition(":ports=")
    if not prefix or not pid.isdigit() or not ports:
        return None
    return prefix, int(pid), [int(p) for p in ports.split(",") if p.isdigit()]


def guard_position(input_rules: list[str]) -> int:
    """Where a new guard hook goes in INPUT (1-based): just below the last project network hook,
    so a workspace's own chain accepts its hub ports before any guard rejects them."""
    last = 0
    for number, rule in enumerate((r for r in input_rules if r.startswith("-A ")), start=1):
        if f"--comment {HOOK_MARK}" in rule or f'--comment "{HOOK_MARK}' in rule:
            last = number
    return last + 1


def stale_guards(input_rules: list[str], alive: set[int],
                 listening: set[int]) -> dict[str, str]:
    """Guard hooks whose hub process is gone and whose ports nobody listens on: their comment
    and the chain they jump to (as the rule says, whichever code version named it)."""
    stale = {}
    for rule in input_rules:
        parts = shlex.split(rule)
        if "--comment" in parts and "-j" in parts:
            comment = parts[parts.index("--comment") + 1]
            parsed = parse_guard(comment)
            if parsed and parsed[1] not in alive and not set(parsed[2]) & listening:
                stale[comment] = parts[parts.index("-j") + 1]
    return stale


def remove_stale_firewalls(prefix: str, in_use: set[str]) -> set[str]:
    """Remove the chains (host and bridge) of this hub's networks that no container uses; the
    networks removed."""
    rules = subprocess.run(["iptables", "-w", "-S", "INPUT"], capture_output=True,
                           text=True).stdout.splitlines()
    hooked = hooked_networks(rules) | isolated_networks(_bridge_ruleset())
    stale = stale_networks(hooked, in_use, prefix)
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


def _tools(*names: str) -> list[str]:
    """Paths of the firewall programs, or RuntimeError naming the package to install."""
    found = [shutil.which(name) for name in names]
    missing = [name for name, path in zip(names, found, strict=True) if path is None]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} missing: install the iptables and nftables "
                           "packages (./run setup), or set SPEDockerSpawner.host_firewall = False "
                           "where the hub runs in a container")
    return [path for path in found if path is not None]


def apply_firewall(network: str, subnet: str, ports: int | Iterable[int]) -> None:
    """Install the project network's rules: its host chain and its bridge chain, each replaced
    atomically and only when its rules change; the INPUT hook is added once. Concurrent spawns
    never interleave."""
    iptables, restore, nft = _tools("iptables", "iptables-restore", "nft")
    chain, wanted = chain_name(network), restore_input(network, ports)
    isolation = isolation_input(network, subnet)
    with _firewall_lock():
        exists = subprocess.run([iptables, "-w", "-S", chain], capture_output=True).returncode == 0
        if not exists or _applied.get(chain) != wanted:
            subprocess.run([restore, "--noflush"], input=wanted, text=True, check=True,
                           capture_output=True)
            _applied[chain] = wanted
        bridged = subprocess.run([nft, "list", "chain", "bridge", BRIDGE_TABLE, chain],
                                 capture_output=True).returncode == 0
        if not bridged or _applied.get(f"bridge {chain}") != isolation:
            _nft(nft, isolation)
            _applied[f"bridge {chain}"] = isolation
        hook = hook_rule(network, subnet)
        if subprocess.run([iptables, "-w", "-C", *hook], capture_output=True).returncode != 0:
            subprocess.run([iptables, "-w", "-I", hook[0], "1", *hook[1:]], check=True,
                           capture_output=True)


def _nft(nft: str, script: str) -> None:
    """Run an nft script as one transaction; RuntimeError with nft's own message if refused."""
    done = subprocess.run([nft, "-f", "-"], input=script, text=True, capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"nft refused the workspace isolation rules: {done.stderr.strip()}")


def _bridge_ruleset() -> dict:
    """The SPE's nftables bridge table as JSON (empty when absent or nft is missing)."""
    listed = subprocess.run(["nft", "-j", "list", "table", "bridge", BRIDGE_TABLE],
                            capture_output=True, text=True) if shutil.which("nft") else None
    return json.loads(listed.stdout) if listed and listed.returncode == 0 else {}


def _unhook(chain: str) -> None:
    """Delete every INPUT rule that jumps to the chain."""
    rules = subprocess.run(["iptables", "-w", "-S", "INPUT"], capture_output=True,
                           text=True).stdout.splitlines()
    for rule in rules:
        parts = shlex.split(rule)
        if parts[:1] == ["-A"] and parts[-1] == chain:
            subprocess.run(["iptables", "-w", "-D", *parts[1:]], capture_output=True)


def _delete_chain(chain: str) -> None:
    """Flush and delete an iptables chain (nothing happens if it is absent)."""
    subprocess.run(["iptables", "-w", "-F", chain], capture_output=True)
    subprocess.run(["iptables", "-w", "-X", chain], capture_output=True)
    _applied.pop(chain, None)


def remove_firewall(network: str) -> None:
    """Unhook and delete a project network's host and bridge chains; nothing happens if absent."""
    chain = chain_name(network)
    _unhook(chain)
    _delete_chain(chain)
    if shutil.which("nft"):
        where = f"bridge {BRIDGE_TABLE} {chain}"
        subprocess.run(["nft", "-f", "-"], input=f"flush chain {where}\ndelete chain {where}\n",
                       text=True, capture_output=True)
    _applied.pop(f"bridge {chain}", None)


def listening_ports() -> set[int]:
    """TCP ports something listens on, on this host (IPv4 and IPv6)."""
    ports = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":  # TCP_LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _alive_pids() -> set[int]:
    """Ids of the processes running on this host."""
    return {int(name) for name in os.listdir("/proc") if name.isdigit()}


def guard_hub_ports(prefix: str, ports: Iterable[int], pid: int) -> list[str]:
    """Guard one hub's own ports (process pid): only loopback and the project networks reach
    them. The guard chain is replaced atomically, hooked below every project network's hook,
    and re-hooked when the hub restarts; guards of hubs that are gone are removed first.
    Returns the rules installed, for the hub's log."""
    iptables, restore = _tools("iptables", "iptables-restore")
    ports = allowed_ports(ports)
    chain, rules = guard_chain_name(prefix, ports), guard_rules(prefix, ports)
    hook = guard_hook(prefix, pid, ports)
    wanted = "\n".join(["*filter", f":{chain} - [0:0]", *(" ".join(r) for r in rules),
                        "COMMIT", ""])
    with _firewall_lock():
        _remove_stale_guards()
        try:
            subprocess.run([restore, "--noflush"], input=wanted, text=True, check=True,
                           capture_output=True)
            if subprocess.run([iptables, "-w", "-C", *hook], capture_output=True).returncode:
                _unhook(chain)  # a hook of this hub's earlier process
                listed = subprocess.run([iptables, "-w", "-S", "INPUT"], capture_output=True,
                                        text=True, check=True).stdout.splitlines()
                subprocess.run([iptables, "-w", "-I", "INPUT", str(guard_position(listed)),
                                *hook[1:]], check=True, capture_output=True)
        except subprocess.CalledProcessError as error:
            raise RuntimeError(f"could not guard the hub's ports {allowed_ports(ports)} with "
                               f"iptables ({(error.stderr or '').strip()}): run the hub as root, "
                               "or set SPE_HOST_FIREWALL=0 where the hub runs in a container") from None
    return [" ".join(hook), *(" ".join(r) for r in rules)]


def _remove_stale_guards() -> dict[str, str]:
    """Unhook the guards of hubs whose process is gone and whose ports nobody listens on, and
    delete their chains unless a live hub of the same prefix still jumps to them."""
    rules = subprocess.run(["iptables", "-w", "-S", "INPUT"], capture_output=True,
                           text=True).stdout.splitlines()
    stale = stale_guards(rules, _alive_pids(), listening_ports())
    for comment, chain in sorted(stale.items()):
        subprocess.run(["iptables", "-w", "-D", "INPUT", "-m", "comment", "--comment", comment,
                        "-j", chain], capture_output=True)
        if not any(rule.endswith(f"-j {chain}") for rule in subprocess.run(
                ["iptables", "-w", "-S", "INPUT"], capture_output=True, text=True).stdout.splitlines()):
            _delete_chain(chain)
    return stale


def remove_hub_guard(prefix: str) -> None:
    """Unhook and delete the guards of one hub's prefix (for a hub that is gone for good)."""
    with _firewall_lock():
        rules = subprocess.run(["iptables", "-w", "-S", "INPUT"], capture_output=True,
                               text=True).stdout.splitlines()
        for rule in rules:
            parts = shlex.split(rule)
            parsed = parse_guard(parts[parts.index("--comment") + 1]) \
                if "--comment" in parts else None
            if parsed and parsed[0] == prefix and "-j" in parts:
                chain = parts[parts.index("-j") + 1]
                _unhook(chain)
                _delete_chain(chain)


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
    with _firewall_lock():
        for comment in sorted(_remove_stale_guards()):
            print(f"removed the port guard {comment}: its hub is gone")
