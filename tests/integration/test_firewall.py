"""The host firewall under concurrent spawns, on the real iptables and nftables: a project's
chains are replaced in one transaction, so while many spawns apply them at once they are never
empty, half-built or misordered, and the INPUT hook is added once; a hub's port guard sits below
every project hook and goes once its hub is gone."""

import os
import shutil
import subprocess
import threading
import uuid

import pytest

from lnds_spe.hub.firewall import (
    BRIDGE_TABLE,
    apply_firewall,
    chain_name,
    chain_rules,
    guard_chain_name,
    guard_hub_ports,
    remove_firewall,
    remove_hub_guard,
    remove_stale_firewalls,
)

SUBNET = "198.51.100.252/30"  # only matched as a source address: no interface or route is made
PORTS = [8081, 8010]


def chain_listing(chain: str) -> list[str]:
    listed = subprocess.run(["iptables", "-w", "-S", chain], capture_output=True, text=True)
    return listed.stdout.splitlines() if listed.returncode == 0 else []


def bridge_listing(chain: str) -> list[str]:
    """The drop rules of a network's chain in the SPE's nftables bridge table ([] if absent)."""
    listed = subprocess.run(["nft", "list", "chain", "bridge", BRIDGE_TABLE, chain],
                            capture_output=True, text=True)
    return [line.strip() for line in listed.stdout.splitlines() if " drop " in line]


def whole(listing: list[str]) -> bool:
    """The chain as iptables prints it: its -N, replies first, the ports, the two rejects last."""
    rules = listing[1:]
    return (len(rules) >= len(chain_rules("x", PORTS)) and "ESTABLISHED" in rules[0]
            and all("--dport" in r and "ACCEPT" in r for r in rules[1:-2])
            and all("REJECT" in r for r in rules[-2:]))


@pytest.fixture
def network():
    for tool in ("iptables-restore", "nft"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run ./run setup (it installs iptables and nftables)",
                        pytrace=False)
    name = f"fwtest-{uuid.uuid4().hex[:8]}"
    yield name
    remove_firewall(name)


def test_concurrent_spawns_never_leave_the_chain_empty_or_misordered(network):
    chain = chain_name(network)
    apply_firewall(network, SUBNET, PORTS)
    assert whole(chain_listing(chain))
    seen_broken: list[list[str]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            listing = chain_listing(chain)
            if not whole(listing):
                seen_broken.append(listing)

    def spawn(i: int) -> None:
        for round_ in range(5):  # alternating port lists: every call really rewrites the chain
            apply_firewall(network, SUBNET, PORTS + [8020] * ((i + round_) % 2))

    watcher = threading.Thread(target=watch)
    watcher.start()
    workers = [threading.Thread(target=spawn, args=(i,)) for i in range(16)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    done.set()
    watcher.join()
    assert seen_broken == [], seen_broken[:3]
    hooks = [r for r in chain_listing("INPUT") if r.endswith(f"-j {chain}")]
    assert len(hooks) == 1 and f"-s {SUBNET}" in hooks[0] and network in hooks[0]
    bridge = bridge_listing(chain)  # workspace to workspace: IPv4 and ARP dropped, once each
    assert len(bridge) == 2 and all(SUBNET in rule and network in rule for rule in bridge), bridge


def test_changed_ports_replace_the_rules_in_place(network):
    chain = chain_name(network)
    apply_firewall(network, SUBNET, [8081])
    apply_firewall(network, SUBNET, PORTS)
    assert whole(chain_listing(chain))
    assert sum("--dport" in r for r in chain_listing(chain)) == 2
    apply_firewall(network, SUBNET, [8081])
    assert sum("--dport" in r for r in chain_listing(chain)) == 1


def test_chains_of_networks_nobody_uses_are_removed(network):
    prefix = network.split("-")[0]
    kept = f"{prefix}-kept-{uuid.uuid4().hex[:6]}"
    try:
        apply_firewall(network, SUBNET, PORTS)
        apply_firewall(kept, "198.51.100.248/30", PORTS)
        other_hub = f"otherhub-{uuid.uuid4().hex[:6]}"
        apply_firewall(other_hub, "198.51.100.244/30", PORTS)
        removed = remove_stale_firewalls(prefix, in_use={kept})
        assert network in removed and kept not in removed and other_hub not in removed
        assert chain_listing(chain_name(network)) == []
        assert bridge_listing(chain_name(network)) == []
        assert whole(chain_listing(chain_name(kept)))
        assert len(bridge_listing(chain_name(kept))) == 2
        assert whole(chain_listing(chain_name(other_hub)))  # another hub's chains are its own
        assert len(bridge_listing(chain_name(other_hub))) == 2
    finally:
        remove_firewall(kept)
        remove_firewall(other_hub)


def unused_pid() -> int:
    """A process id no process has right now."""
    pid = 4_000_000
    while os.path.exists(f"/proc/{pid}"):
        pid -= 1
    return pid


def test_a_hub_guard_sits_below_project_hooks_and_goes_with_its_hub(network):
    """The guard of a hub's ports comes after every project hook (a workspace's own chain accepts
    its hub ports first), is re-hooked when the hub restarts, and is removed once its process is
    gone and nobody listens on its ports."""
    prefix = f"fwguard{uuid.uuid4().hex[:6]}"
    ports = [1, 2]  # nothing listens on tcpmux or port 2
    chain = guard_chain_name(prefix, ports)
    try:
        apply_firewall(network, SUBNET, PORTS)
        guard_hub_ports(prefix, ports, os.getpid())
        rules = chain_listing("INPUT")
        project_hook = next(i for i, r in enumerate(rules) if r.endswith(chain_name(network)))
        [guard_hook] = [i for i, r in enumerate(rules) if r.endswith(f"-j {chain}")]
        assert guard_hook > project_hook, rules
        assert any("--dports 1,2" in r and "REJECT" in r for r in chain_listing(chain))
        assert any("-i lo -j RETURN" in r for r in chain_listing(chain))

        guard_hub_ports(prefix, [3], os.getpid())  # another live hub under the same prefix
        hooked = [r.split()[-1] for r in chain_listing("INPUT")]
        assert chain in hooked and guard_chain_name(prefix, [3]) in hooked, hooked

        gone = unused_pid()
        guard_hub_ports(prefix, ports, gone)  # the hub restarted as another process
        hooks = [r for r in chain_listing("INPUT") if r.endswith(f"-j {chain}")]
        assert len(hooks) == 1 and f"pid={gone}" in hooks[0], hooks

        guard_hub_ports(f"{prefix}x", ports, os.getpid())  # any hub's start removes stale guards
        assert chain_listing(chain) == []
        assert not any(r.endswith(f"-j {chain}") for r in chain_listing("INPUT"))
    finally:
        remove_hub_guard(prefix)
        remove_hub_guard(f"{prefix}x")
