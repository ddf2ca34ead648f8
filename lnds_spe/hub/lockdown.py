"""Pure rendering of a workspace's lockdown: names, limits, mounts, container and pod settings.

Both spawners (Docker/Podman and Kubernetes) take their settings from here, so a locked-down
workspace means the same thing on either engine. No I/O.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from lnds_spe.policy import ProjectInfo, size_bytes

WORKSPACE_UID = 1000
WORKSPACE_GID = 1000
WORKSPACE_HOME = PurePosixPath("/home/jovyan")
TMP_SIZE = "512m"
LABEL_PROJECT = "org.lnds-spe.project"
LABEL_USER = "org.lnds-spe.user"
LABEL_REVIEW = "org.lnds-spe.review"

_NOT_NAME = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class Limits:
    """A workspace's resource limits, as engines want them."""

    cpu: float
    mem_bytes: int
    pids: int


def memory_bytes(text: str) -> int:
    """Bytes in a memory limit such as '2G' (K, M, G are powers of 1024)."""
    size = size_bytes(text)
    if not size:
        raise ValueError(f"memory limit {text!r} is not a number followed by K, M or G")
    return size


def project_limits(project: ProjectInfo) -> Limits:
    """The limits a project's registry entry sets for each of its workspaces."""
    return Limits(cpu=project.cpu_limit, mem_bytes=memory_bytes(project.mem_limit),
                  pids=project.pids_limit)


def safe_name(text: str) -> str:
    """Lowercase letters, digits and '-', usable in container, volume and Kubernetes names."""
    return _NOT_NAME.sub("-", text.lower()).strip("-") or "x"


def unique_name(*parts: str) -> str:
    """A readable, engine-safe name that is distinct for distinct parts: safe_name folds
    `j.smith`, `j_smith` and `J@Smith` together, and joining with '-' would make
    ('ann', 'lee-covid') and ('ann-lee', 'covid') one, so a hash of the exact parts follows."""
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]
    return "-".join([*(safe_name(p) for p in parts), digest])


def network_name(prefix: str, slug: str) -> str:
    """The one internal network of a project; no two projects share it."""
    return f"{prefix}-net-{safe_name(slug)}"


def review_network_name(prefix: str, username: str) -> str:
    """The internal network of one output checker's review server: shared with nobody."""
    return f"{prefix}-reviewnet-{unique_name(username)}"


# A review server holds no project data: modest fixed limits.
REVIEW_LIMITS = Limits(cpu=1.0, mem_bytes=1024**3, pids=256)


def home_volume_name(prefix: str, username: str, slug: str) -> str:
    """The named volume holding one user's home in one project (never another pair's)."""
    return f"{prefix}-home-{unique_name(username, slug)}"


def dataset_mount_point(dataset: str) -> str:
    """Where a dataset appears inside the workspace: ~/data/<dataset>."""
    return str(WORKSPACE_HOME / "data" / dataset)


def outputs_mount_point() -> str:
    """Where the project's shared outputs folder appears inside the workspace."""
    return str(WORKSPACE_HOME / "outputs")


def data_binds(datasets: dict[str, str], outputs_dir: str) -> dict[str, dict[str, str]]:
    """Bind mounts (host path -> target and mode): datasets read-only, outputs read-write."""
    binds = {host: {"bind": dataset_mount_point(name), "mode": "ro"}
             for name, host in sorted(datasets.items())}
    binds[outputs_dir] = {"bind": outputs_mount_point(), "mode": "rw"}
    return binds


# The workspace's resolver: nothing. The hub's one name is in /etc/hosts (N4). Mounted over the
# engine's own file, which in a user namespace also lists the network's DNS server (Podman 4.3).
RESOLV_CONF = "nameserver 127.0.0.1\n"


def resolv_conf_bind() -> dict[str, str]:
    """The mount of RESOLV_CONF over the workspace's /etc/resolv.conf, read-only."""
    return {"bind": "/etc/resolv.conf", "mode": "ro"}


def home_bind(userns: str) -> dict[str, str]:
    """The home volume's mount. In a user namespace the engine re-owns the home to the
    container's uids at each start (`U`), since each start may get another range."""
    return {"bind": str(WORKSPACE_HOME), "mode": "rw,U" if userns else "rw"}


def outputs_owner_and_mode(hub_is_root: bool, userns: str) -> tuple[int | None, int]:
    """Owner (None: leave it) and mode of a project's shared outputs folder on the host.

    In user namespaces each workspace writes as its own unmapped uid, so the folder is open to
    all of them; the state dir above it (0700) keeps every host account out (D6). Without them,
    a root hub gives the folder to the workspace uid.
    """
    if userns or not hub_is_root:
        return None, 0o777
    return WORKSPACE_UID, 0o770


def userns_mode(value: str) -> str:
    """The user namespace mode a setting asks for; '' (the engine's default) for off or none."""
    return "" if value.strip().lower() in ("", "off", "none", "no", "0", "false") else value.strip()


def userns_create_settings(userns: str) -> dict:
    """Container-create settings for a user namespace mode ('' keeps the engine's default).

    docker-py's host_config accepts only "host" for UsernsMode, so the mode goes into the raw
    HostConfig the create call sends; with `auto`, Podman maps the workspace's uids onto a range
    of subordinate ids no host account holds (D6).
    """
    return {"host_config": {"UsernsMode": userns}} if userns else {}


def docker_host_config(limits: Limits) -> dict:
    """docker-py host_config settings that lock a workspace container down."""
    return {
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={TMP_SIZE},mode=1777"},
        "pids_limit": limits.pids,
        "mem_limit": limits.mem_bytes,
        "memswap_limit": limits.mem_bytes,
        "privileged": False,
        # No IPv6 inside: the engine gives every container a link-local address and route even
        # on an IPv4-only network, which would reach listeners on the host's [::] (N7).
        "sysctls": {"net.ipv6.conf.all.disable_ipv6": "1",
                    "net.ipv6.conf.default.disable_ipv6": "1"},
    }


def pod_security_context() -> dict:
    """Pod-level securityContext of a workspace pod (Kubernetes field names)."""
    return {
        "runAsUser": WORKSPACE_UID,
        "runAsGroup": WORKSPACE_GID,
        "fsGroup": WORKSPACE_GID,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict:
    """Container-level securityContext of the workspace container (Kubernetes field names)."""
    return {
        "runAsUser": WORKSPACE_UID,
        "runAsGroup": WORKSPACE_GID,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }


def network_policy(slug: str, namespace: str, hub_selector: dict[str, str],
                   hub_port: int) -> dict:
    """A NetworkPolicy: the project's pods talk only with the hub (and the proxy to them)."""
    project_pods = {"matchLabels": {LABEL_PROJECT: safe_name(slug)}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"spe-project-{safe_name(slug)}", "namespace": namespace,
                     "labels": {LABEL_PROJECT: safe_name(slug)}},
        "spec": {
            "podSelector": project_pods,
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"component": "proxy"}}},
                                  {"podSelector": {"matchLabels": hub_selector}}]}],
            "egress": [{"to": [{"podSelector": {"matchLabels": hub_selector}}],
                        "ports": [{"protocol": "TCP", "port": hub_port}]}],
        },
    }
