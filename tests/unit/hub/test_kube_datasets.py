"""K1: on Kubernetes a pod mounts exactly the data the hub prepared and verified, or none starts."""

import asyncio
import json
from datetime import date, timedelta
from types import SimpleNamespace

import pytest

from lnds_spe.hub.kube import SPEKubeSpawner
from lnds_spe.hub.spawner import SpawnRefused
from lnds_spe.projects import DEFAULT_IMAGE, open_registry

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


@pytest.fixture
def registry(tmp_path):
    registry = open_registry(f"sqlite:///{tmp_path / 'spe.sqlite'}")
    today = date.today()
    for slug in ("withdata", "nodata"):
        registry.create_project(slug, slug, today - timedelta(days=1), today + timedelta(days=9),
                                actor="t", allowed_images=(DEFAULT_IMAGE,))
        registry.add_member(slug, "ann", "researcher", actor="t")
    registry.add_dataset("withdata", "ds", "s3://b/withdata/ds.c4gh", actor="t")
    return registry


def kube_spawner(registry, tmp_path, name: str, **config) -> SPEKubeSpawner:
    prepared = {}

    def prepare(project, datasets, destination):
        for dataset in datasets:
            (destination / dataset.name).mkdir()
            prepared[dataset.name] = destination / dataset.name
        return dict(prepared)

    return SPEKubeSpawner(_mock=True, namespace="spe", registry_url=registry.url,
                          spe_state_dir=str(tmp_path / "state"), prepare_datasets=prepare,
                          user=SimpleNamespace(name="ann", id=1, url="/user/ann/"),
                          orm_spawner=SimpleNamespace(name=name, server=None), user_options={},
                          **config)


def plain(pod) -> dict:
    """The pod manifest as the JSON sent to the API server."""
    from kubernetes_asyncio.client import ApiClient

    return ApiClient().sanitize_for_serialization(pod)


def render(registry, tmp_path, slug: str, **config):
    """Prepare the data and render the pod as a spawn would: (spawner, datasets, pod)."""
    async def steps():
        spawner = kube_spawner(registry, tmp_path, slug, **config)
        project = spawner.registry.get_project(slug)
        datasets = await asyncio.to_thread(spawner.prepare_data, project)
        spawner.apply_lockdown(project)
        pod = await spawner.get_pod_manifest()
        return spawner, datasets, (pod, plain(pod))

    return asyncio.run(steps())


def test_without_a_shared_state_claim_a_project_with_datasets_is_refused_before_decrypting(
        registry, tmp_path):
    with pytest.raises(SpawnRefused, match="project withdata has datasets, and this hub cannot "
                                           "hand prepared data to pods"):
        render(registry, tmp_path, "withdata")
    assert not (tmp_path / "state" / "workspaces").exists()  # nothing was decrypted
    last = registry.audit.query(project="withdata")[-1]
    assert (last.action, last.outcome) == ("workspace.spawn_denied", "denied")
    assert "state_claim" in json.loads(last.details)["reason"]


def test_a_project_without_datasets_starts_with_an_empty_read_only_data_folder(registry,
                                                                               tmp_path):
    _, _, (pod, manifest) = render(registry, tmp_path, "nodata")
    (container,) = pod.spec.containers
    mounts = {m.mount_path: m for m in container.volume_mounts}
    data = mounts["/home/jovyan/data"]
    assert data.read_only is True
    volumes = {v["name"]: v for v in manifest["spec"]["volumes"]}
    assert "emptyDir" in volumes[data.name]


def test_the_pod_mounts_the_prepared_verified_folder_read_only(registry, tmp_path):
    spawner, datasets, (pod, manifest) = render(registry, tmp_path, "withdata",
                                                state_claim="spe-hub-state")
    (container,) = pod.spec.containers
    data = {m.mount_path: m for m in container.volume_mounts}["/home/jovyan/data"]
    prepared_dir = spawner.workspace_data_dir()
    assert datasets == {"ds": str(prepared_dir / "ds")}
    assert data.read_only is True
    assert data.sub_path == str(prepared_dir.relative_to(tmp_path / "state"))
    volumes = {v["name"]: v for v in manifest["spec"]["volumes"]}
    assert volumes[data.name]["persistentVolumeClaim"] == {"claimName": "spe-hub-state",
                                                           "readOnly": True}
    claims = {v["persistentVolumeClaim"]["claimName"] for v in volumes.values()
              if "persistentVolumeClaim" in v}
    assert not any(c.startswith("spe-data-") for c in claims)  # no unverified per-project data
