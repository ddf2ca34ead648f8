"""The Kubernetes path rendered without a cluster: pod lockdown, limits, mounts, NetworkPolicy."""

import asyncio
from datetime import date

import pytest
import yaml

from lnds_spe.config import DEFAULT_IMAGE
from lnds_spe.hub.kube import SPEKubeSpawner
from lnds_spe.policy import ProjectInfo

PROJECT = ProjectInfo("p1", "P1", "", date(2026, 1, 1), date(2026, 12, 31), "active", 2.0, "4G",
                      512, (DEFAULT_IMAGE,))


KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {token: unused}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


@pytest.fixture(autouse=True)
def offline_kubeconfig(tmp_path, monkeypatch):
    """A kubeconfig naming no real cluster: rendering never contacts one."""
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    from kubernetes_asyncio.config import kube_config

    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))


def rendered_pod():
    async def render():
        spawner = SPEKubeSpawner(_mock=True, namespace="spe", user_options={})
        spawner.apply_lockdown(PROJECT)
        return spawner, await spawner.get_pod_manifest()

    return asyncio.run(render())


def test_pod_is_locked_down_with_project_limits():
    _, pod = rendered_pod()
    (container,) = pod.spec.containers
    assert container.image == DEFAULT_IMAGE
    ctx = container.security_context
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] == 1000
    assert pod.spec.security_context["runAsNonRoot"] is True
    assert container.resources.limits == {"cpu": 2.0, "memory": 4 * 1024**3}
    assert pod.spec.automount_service_account_token is False
    assert pod.spec.host_users is False  # D6: a user namespace, the pod's uids are no host's
    assert pod.metadata.labels["org.lnds-spe.project"] == "p1"
    mounts = {m.mount_path: m for m in container.volume_mounts}
    assert mounts["/home/jovyan/data"].read_only is True
    assert not mounts["/home/jovyan/outputs"].read_only
    assert "/tmp" in mounts


def test_network_policy_allows_only_the_hub():
    spawner, _ = rendered_pod()
    policy = spawner.network_policy_manifest(PROJECT)
    assert policy["metadata"]["namespace"] == "spe"
    assert policy["spec"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": 8081}]
    assert policy["spec"]["egress"][0]["to"] == [{"podSelector": {"matchLabels":
                                                                  {"component": "hub"}}}]


def test_helm_values_use_the_spe_kube_spawner():
    from pathlib import Path

    values = yaml.safe_load((Path(__file__).parents[3] / "deploy" / "values.yaml").read_text())
    hub = values["hub"]
    assert hub["extraEnv"]["SPE_SPAWNER"] == "kube"
    assert "lnds_spe.hub.kube.SPEKubeSpawner" in hub["extraConfig"]["spe"]
    assert values["singleuser"]["networkPolicy"]["enabled"] is True
    assert values["singleuser"]["networkPolicy"]["egressAllowRules"]["nonPrivateIPs"] is False
