"""Pure lockdown rendering: limits, names, mounts, container and pod settings, firewall rules."""

from datetime import date

import pytest

from lnds_spe.config import DEFAULT_IMAGE
from lnds_spe.hub import lockdown
from lnds_spe.hub.enforcer import RunningWorkspace, running_workspaces
from lnds_spe.hub.firewall import (
    chain_name,
    chain_rules,
    hook_rule,
    hooked_networks,
    restore_input,
    stale_networks,
)
from lnds_spe.policy import ProjectInfo

PROJECT = ProjectInfo("cohort-study", "Cohort", "", date(2026, 1, 1), date(2026, 12, 31),
                      "active", 1.5, "3G", 256, (DEFAULT_IMAGE,))


def test_memory_bytes_units():
    assert lockdown.memory_bytes("512M") == 512 * 1024**2
    assert lockdown.memory_bytes("3G") == 3 * 1024**3
    with pytest.raises(ValueError):
        lockdown.memory_bytes("3GB")


def test_project_limits_from_registry_entry():
    assert lockdown.project_limits(PROJECT) == lockdown.Limits(1.5, 3 * 1024**3, 256)


def test_docker_host_config_locks_down():
    config = lockdown.docker_host_config(lockdown.project_limits(PROJECT))
    assert config["read_only"] is True
    assert config["cap_drop"] == ["ALL"]
    assert config["security_opt"] == ["no-new-privileges"]
    assert config["pids_limit"] == 256
    assert config["mem_limit"] == config["memswap_limit"] == 3 * 1024**3
    assert config["sysctls"]["net.ipv6.conf.all.disable_ipv6"] == "1"
    assert set(config["tmpfs"]) == {"/tmp"}
    assert config["privileged"] is False


def test_data_binds_read_only_datasets_and_rw_outputs():
    binds = lockdown.data_binds({"b": "/h/b", "a": "/h/a"}, "/h/out")
    assert binds == {"/h/a": {"bind": "/home/jovyan/data/a", "mode": "ro"},
                     "/h/b": {"bind": "/home/jovyan/data/b", "mode": "ro"},
                     "/h/out": {"bind": "/home/jovyan/outputs", "mode": "rw"}}


def test_names_are_per_project_and_safe():
    assert lockdown.network_name("spe", "p1") != lockdown.network_name("spe", "p2")
    assert lockdown.home_volume_name("spe", "Alice@Uni", "p1").startswith("spe-home-alice-uni-p1-")
    assert all(c.isalnum() or c == "-" for c in lockdown.home_volume_name("spe", "Alice@Uni", "p1"))


ADVERSARIAL_PAIRS = [(("ann", "lee-covid"), ("ann-lee", "covid")),
                     (("j.smith", "p"), ("j_smith", "p")), (("j.smith", "p"), ("J@Smith", "p")),
                     (("Ann", "p"), ("ann", "p")), (("a-", "b"), ("a", "-b")), (("x", "p"), ("x ", "p"))]


def test_names_are_injective_over_adversarial_pairs():
    """D5: distinct (user, project) pairs never share a home volume, a prepared-data folder or
    (for checkers) a review network, whatever characters their names hold."""
    for (user_a, slug_a), (user_b, slug_b) in ADVERSARIAL_PAIRS:
        assert lockdown.home_volume_name("spe", user_a, slug_a) != \
            lockdown.home_volume_name("spe", user_b, slug_b)
        if user_a != user_b:
            assert lockdown.unique_name(user_a) != lockdown.unique_name(user_b)
            assert lockdown.review_network_name("spe", user_a) != \
                lockdown.review_network_name("spe", user_b)


def test_kubernetes_security_contexts():
    pod = lockdown.pod_security_context()
    container = lockdown.container_security_context()
    assert pod["runAsNonRoot"] and pod["runAsUser"] == 1000
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}


def test_network_policy_only_hub_egress():
    policy = lockdown.network_policy("p1", "spe", {"component": "hub"}, 8081)
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["podSelector"]["matchLabels"] == {lockdown.LABEL_PROJECT: "p1"}
    assert spec["egress"] == [{"to": [{"podSelector": {"matchLabels": {"component": "hub"}}}],
                               "ports": [{"protocol": "TCP", "port": 8081}]}]


def test_firewall_accepts_replies_and_hub_port_then_rejects():
    rules = chain_rules("spe-net-p1", 8081)
    chain = chain_name("spe-net-p1")
    assert "ESTABLISHED,RELATED" in rules[0]
    assert rules[1][-3:] == ["8081", "-j", "ACCEPT"]
    assert all("REJECT" in r for r in rules[2:])
    hook = hook_rule("spe-net-p1", "10.89.3.0/24")
    assert hook[:3] == ["INPUT", "-s", "10.89.3.0/24"] and hook[-2:] == ["-j", chain]
    assert hooked_networks([f'-A {" ".join(hook[:-5])} --comment "{hook[-3]}" -j {chain}']) \
        == {"spe-net-p1"}
    assert len(chain_name("a" * 40)) <= 28
    assert chain_name("hub1-net-p1") != chain_name("hub2-net-p1")  # two hubs never share a chain


def test_firewall_chain_is_replaced_in_one_restore_transaction():
    text = restore_input("spe-net-p1", [8081, 8010])
    chain = chain_name("spe-net-p1")
    lines = text.splitlines()
    assert lines[:2] == ["*filter", f":{chain} - [0:0]"] and lines[-1] == "COMMIT"
    assert lines[2:-1] == [" ".join(r) for r in chain_rules("spe-net-p1", [8081, 8010])]
    assert "-F" not in text.split() and "INPUT" not in text  # no flush, no other chain touched


def test_running_workspaces_from_hub_answer():
    users = [{"name": "alice", "servers": {"p1": {"ready": True, "pending": None},
                                           "p2": {"ready": False, "pending": "stop"}}},
             {"name": "bob", "servers": {}}]
    assert running_workspaces(users) == [RunningWorkspace("alice", "p1")]


def test_stale_networks_are_this_hub_s_unused_ones():
    hooked = {"spe-net-a", "spe-net-b", "spe2-net-a", "other-net-c"}
    assert stale_networks(hooked, in_use={"spe-net-b"}, prefix="spe") == {"spe-net-a"}


def test_d6_user_namespace_settings():
    assert lockdown.userns_create_settings("auto") == {"host_config": {"UsernsMode": "auto"}}
    assert lockdown.userns_create_settings("") == {}
    assert lockdown.home_bind("auto") == {"bind": "/home/jovyan", "mode": "rw,U"}
    assert lockdown.home_bind("") == {"bind": "/home/jovyan", "mode": "rw"}


def test_d6_outputs_folder_owner_and_mode():
    assert lockdown.outputs_owner_and_mode(True, "auto") == (None, 0o777)
    assert lockdown.outputs_owner_and_mode(False, "") == (None, 0o777)
    assert lockdown.outputs_owner_and_mode(True, "") == (lockdown.WORKSPACE_UID, 0o770)


def test_d6_user_namespace_can_be_turned_off_by_name():
    assert lockdown.userns_mode("auto") == "auto"
    assert lockdown.userns_mode(" auto:size=65536 ") == "auto:size=65536"
    assert [lockdown.userns_mode(v) for v in ("off", "None", "", "0")] == ["", "", "", ""]
