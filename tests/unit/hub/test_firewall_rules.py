"""Pure firewall rendering for N8 and N9: the bridge chain between workspaces, the hub's port guard."""

from lnds_spe.hub.firewall import (
    BRIDGE_TABLE,
    HOOK_MARK,
    chain_name,
    guard_chain_name,
    guard_comment,
    guard_hook,
    guard_position,
    guard_rules,
    isolated_networks,
    isolation_input,
    parse_guard,
    stale_guards,
)


def test_bridge_chain_is_replaced_in_one_nft_transaction_and_drops_workspace_to_workspace():
    script = isolation_input("spe-net-p1", "10.89.3.0/24").splitlines()
    where = f"bridge {BRIDGE_TABLE} {chain_name('spe-net-p1')}"
    assert script[0] == f"add table bridge {BRIDGE_TABLE}"
    assert script[1].startswith(f"add chain {where} {{ type filter hook forward ")
    assert script[2] == f"flush chain {where}"  # flush and the rules commit together
    rules = script[3:]
    assert len(rules) == 2 and all(r.startswith(f"add rule {where} ") for r in rules)
    assert "ip saddr 10.89.3.0/24 ip daddr 10.89.3.0/24 drop" in rules[0]
    assert "arp saddr ip 10.89.3.0/24 drop" in rules[1]
    assert all(f'comment "{HOOK_MARK}spe-net-p1"' in r for r in rules)


def test_isolated_networks_are_read_from_the_rules_comments():
    listing = {"nftables": [{"metainfo": {}}, {"table": {"name": BRIDGE_TABLE}},
                            {"chain": {"name": "SPE-x"}},
                            {"rule": {"chain": "SPE-x", "comment": f"{HOOK_MARK}spe-net-a"}},
                            {"rule": {"chain": "SPE-y", "comment": "someone else's"}}]}
    assert isolated_networks(listing) == {"spe-net-a"}
    assert isolated_networks({}) == set()


def test_guard_rejects_the_hub_ports_from_all_but_loopback_and_replies():
    rules = guard_rules("spe", [8081, 8010])
    chain = guard_chain_name("spe", [8081, 8010])
    assert rules[0][-3:] == ["ESTABLISHED,RELATED", "-j", "RETURN"]
    assert rules[1] == ["-A", chain, "-i", "lo", "-j", "RETURN"]
    assert rules[2][rules[2].index("--dports") + 1] == "8010,8081"
    assert rules[2][-3:] == ["REJECT", "--reject-with", "tcp-reset"]
    assert len(chain) <= 28 and chain == guard_chain_name("spe", [8010, 8081])
    assert chain != guard_chain_name("spe2", [8081, 8010])
    assert chain != guard_chain_name("spe", [8082, 8010])  # two hubs under one prefix


def test_guard_comment_round_trips():
    comment = guard_comment("spe-hub:odd", 4242, [8081, 8010])
    assert parse_guard(comment) == ("spe-hub:odd", 4242, [8010, 8081])
    assert guard_hook("spe", 1, [8081])[-2:] == ["-j", guard_chain_name("spe", [8081])]
    assert parse_guard(f"{HOOK_MARK}spe-net-a") is None
    assert parse_guard("spe-hub:x:pid=abc:ports=1") is None


def test_guard_goes_below_the_last_project_hook():
    rules = ["-P INPUT ACCEPT",
             '-A INPUT -s 10.89.1.0/24 -m comment --comment "spe-network:spe-net-a" -j SPE-a',
             "-A INPUT -s 10.89.2.0/24 -m comment --comment spe-network:spe-net-b -j SPE-b",
             "-A INPUT -i eth0 -j ACCEPT"]
    assert guard_position(rules) == 3
    assert guard_position(["-P INPUT ACCEPT", "-A INPUT -i eth0 -j ACCEPT"]) == 1


def test_stale_guards_are_those_of_gone_hubs_with_nobody_listening():
    rules = [f'-A INPUT -m comment --comment "{guard_comment(name, pid, ports)}" -j X-{name}'
             for name, pid, ports in (("live", 10, [8081]), ("gone", 11, [9081]),
                                      ("gone-but-port-open", 12, [9082]))]
    # the chain is the one the hook jumps to, even if this code would name it otherwise
    assert stale_guards(rules, alive={10}, listening={9082}) == {
        guard_comment("gone", 11, [9081]): "X-gone"}
