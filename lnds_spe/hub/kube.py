"""The scale-out path: project workspaces as locked-down pods on Kubernetes (Zero to JupyterHub).

Same policy mixin as the Docker spawner; the lockdown becomes a pod securityContext, resource
limits and a per-project NetworkPolicy that lets the project's pods reach only the hub. A pod sees
exactly the datasets the hub decrypted and verified for it: the hub's state dir lives on a shared
PersistentVolumeClaim (`state_claim`) and the pod mounts its own prepared folder from it,
read-only. Without that claim, a project with datasets is refused before anything is decrypted.
Outputs come from a per-project claim, read-write.
"""

from __future__ import annotations

from kubespawner import KubeSpawner
from traitlets import Dict, Unicode

from lnds_spe.errors import SpawnDenied
from lnds_spe.hub import lockdown
from lnds_spe.hub.spawner import SPEPolicyMixin
from lnds_spe.policy import ProjectInfo


class SPEKubeSpawner(SPEPolicyMixin, KubeSpawner):
    """Project workspaces as locked-down pods, one NetworkPolicy per project."""

    hub_pod_labels = Dict(
        {"component": "hub"},
        help="Labels of the hub pod: the only pods a workspace may connect to.",
    ).tag(config=True)

    state_claim = Unicode(
        "",
        help="""PersistentVolumeClaim (ReadWriteMany) holding the hub's state dir, mounted in the
        hub pod at `spe_state_dir`. A workspace pod mounts its own prepared, verified datasets
        from it read-only (subPath `workspaces/<user>/<server>/data`) at ~/data. Empty: projects
        with datasets are refused on Kubernetes.""",
    ).tag(config=True)

    outputs_claim_template = Unicode(
        "spe-outputs-{project}",
        help="PersistentVolumeClaim of a project's shared outputs, mounted read-write.",
    ).tag(config=True)

    def apply_lockdown(self, project: ProjectInfo) -> None:
        """Set this spawn's pod settings: image, limits, security contexts, mounts, labels."""
        limits = lockdown.project_limits(project)
        self.image = self.requested_image()
        self.cpu_limit = limits.cpu
        self.cpu_guarantee = min(limits.cpu, 0.1)
        self.mem_limit = limits.mem_bytes
        self.mem_guarantee = min(limits.mem_bytes, 256 * 1024**2)
        self.uid = lockdown.WORKSPACE_UID
        self.gid = lockdown.WORKSPACE_GID
        self.fs_gid = lockdown.WORKSPACE_GID
        self.allow_privilege_escalation = False
        self.privileged = False
        self.pod_security_context = lockdown.pod_security_context()
        self.container_security_context = lockdown.container_security_context()
        self.automount_service_account_token = False
        if self.workspace_userns:  # Kubernetes user namespaces: the pod's uids are no host's (D6)
            self.extra_pod_config = {"hostUsers": False}
        self.extra_labels = {lockdown.LABEL_PROJECT: lockdown.safe_name(project.slug)}
        self.storage_pvc_ensure = True
        self.pvc_name_template = "spe-home-{username}--{servername}"
        slug = lockdown.safe_name(project.slug)
        data_mount = {"name": "data", "mountPath": str(lockdown.WORKSPACE_HOME / "data"),
                      "readOnly": True}
        if self.state_claim:
            data_volume = {"name": "data", "persistentVolumeClaim": {
                "claimName": self.state_claim, "readOnly": True}}
            data_mount["subPath"] = str(self.workspace_data_dir().relative_to(self.state_path))
        else:  # no datasets (prepare_data refused any): an empty, read-only ~/data
            data_volume = {"name": "data", "emptyDir": {"sizeLimit": "1Mi"}}
        self.volumes = [
            {"name": "home", "persistentVolumeClaim": {"claimName": self.pvc_name}},
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": lockdown.TMP_SIZE}},
            data_volume,
            {"name": "outputs", "persistentVolumeClaim": {
                "claimName": self.outputs_claim_template.format(project=slug)}},
        ]
        self.volume_mounts = [
            {"name": "home", "mountPath": str(lockdown.WORKSPACE_HOME)},
            {"name": "tmp", "mountPath": "/tmp"},
            data_mount,
            {"name": "outputs", "mountPath": lockdown.outputs_mount_point()},
        ]

    def prepare_data(self, project: ProjectInfo) -> dict[str, str]:
        """Refuse (audited, before decrypting) a project with datasets no pod could be given."""
        if not self.state_claim and self.registry.datasets(project.slug):
            reason = (f"project {project.slug} has datasets, and this hub cannot hand prepared "
                      "data to pods: an administrator must set SPEKubeSpawner.state_claim (a "
                      "shared claim holding the hub's state dir)")
            raise self.refuse(SpawnDenied(reason), self.requested_image())
        return super().prepare_data(project)

    def network_policy_manifest(self, project: ProjectInfo) -> dict:
        """The project's NetworkPolicy: its pods reach only the hub API port."""
        return lockdown.network_policy(project.slug, self.namespace, self.hub_pod_labels,
                                       self.hub_port_for_workspaces)

    async def prepare_engine(self, project: ProjectInfo) -> None:
        """Lock the pod down and create (or replace) the project's NetworkPolicy."""
        from kubernetes_asyncio.client import NetworkingV1Api
        from kubernetes_asyncio.client.exceptions import ApiException

        self.apply_lockdown(project)
        manifest = self.network_policy_manifest(project)
        api = NetworkingV1Api(self.api.api_client)
        name = manifest["metadata"]["name"]
        try:
            await api.create_namespaced_network_policy(self.namespace, manifest)
        except ApiException as error:
            if error.status != 409:
                raise
            await api.replace_namespaced_network_policy(name, self.namespace, manifest)

    def mount_data(self, datasets: dict[str, str], outputs_dir: str) -> None:
        """Nothing to add: the pod mounts its prepared folder from the state claim and the
        project's outputs claim by name (apply_lockdown), wherever the hub put the files."""
