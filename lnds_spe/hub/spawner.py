"""JupyterHub spawners for project workspaces: the SPE policy in one mixin, two engines under it.

A server is named by its project's slug. Before every start the mixin asks the registry whether
the user is a researcher of the project, the project is active and within its dates, and the image
is on the project's allow-list; a refusal is audited and its reason shown on the spawn page. It
then prepares the project's data on the hub side while the engine class applies the lockdown.

One name is reserved: `review`, the output checker's review server. It starts for users who check
at least one open project, with the same locked-down image, no project data and no outputs
folder, on a network of its own that reaches only the hub and the airlock service.
"""

from __future__ import annotations

import asyncio
import html
import os
import time
from datetime import date
from functools import lru_cache
from pathlib import Path

from tornado import web
from traitlets import Bool, Callable, Int, Unicode, default
from traitlets.config import LoggingConfigurable

from lnds_spe.config import database_url, setting, setting_on, state_dir
from lnds_spe.datasets import outputs_path, prepare_plain_datasets, remove_tree
from lnds_spe.errors import ProjectNotFound, SpawnDenied
from lnds_spe.hub import lockdown
from lnds_spe.hub.homes import ensure_home_volume, release_stale_mount
from lnds_spe.hub.readiness import (
    WorkspaceNotReady,
    server_address,
    wait_budget,
    wait_listening,
)
from lnds_spe.ingress import delete_decrypted
from lnds_spe.lifecycle import outputs_bytes
from lnds_spe.policy import (
    REVIEW_SERVER,
    ProjectInfo,
    check_can_review,
    check_can_spawn,
    check_outputs_quota,
    check_server_name,
    startable_projects,
)
from lnds_spe.projects import Registry, open_registry


class SpawnRefused(web.HTTPError):
    """A spawn the SPE policy refuses; JupyterHub shows `jupyterhub_message` to the user."""

    def __init__(self, reason: str):
        super().__init__(403, reason.replace("%", "%%"))
        self.jupyterhub_message = f"Workspace not started: {reason}"


@lru_cache(maxsize=4)
def registry_at(url: str) -> Registry:
    """One registry (engine + sessions) per database URL for the whole hub process."""
    return open_registry(url or None)


def _today() -> date:
    """Today's date, the day project start/end dates are compared against."""
    return date.today()


class SPEPolicyMixin(LoggingConfigurable):
    """The SPE policy shared by the Docker and Kubernetes workspace spawners."""

    registry_url = Unicode(
        help="""SQLAlchemy URL of the project registry (default: $SPE_DATABASE_URL, else the
        SQLite file in the state directory).""",
    ).tag(config=True)

    @default("registry_url")
    def _default_registry_url(self) -> str:
        return database_url()

    workspace_userns = Unicode(
        help="""User namespace of workspace containers, so the workspace's uid is no host account
        (D6). Docker/Podman: `auto` (Podman gives each workspace its own range of subordinate ids)
        or empty (`off` in $SPE_WORKSPACE_USERNS) for the engine's default (Docker: use the
        daemon's `userns-remap` instead).
        Kubernetes: any non-empty value runs pods with `hostUsers: false`.
        Default: $SPE_WORKSPACE_USERNS.""",
    ).tag(config=True)

    @default("workspace_userns")
    def _default_workspace_userns(self) -> str:
        return lockdown.userns_mode(setting("SPE_WORKSPACE_USERNS"))

    spe_state_dir = Unicode(
        help="""Directory of the SPE's hub-side state: staged datasets under `datasets/`,
        prepared workspace data under `workspaces/`, project outputs under `outputs/`
        (default: $SPE_STATE_DIR, else the user's data directory).""",
    ).tag(config=True)

    @default("spe_state_dir")
    def _default_state_dir(self) -> str:
        return str(state_dir())

    default_workspace_image = Unicode(
        help="""Image started when the user names none, and the image of review servers; it must
        still be on the project's allow-list (default: $SPE_WORKSPACE_IMAGE, else the one in
        lnds_spe/defaults.env).""",
    ).tag(config=True)

    @default("default_workspace_image")
    def _default_workspace_image(self) -> str:
        return setting("SPE_WORKSPACE_IMAGE")

    prepare_datasets = Callable(
        None,
        allow_none=True,
        help="""Hook that makes a project's datasets available on the hub before a workspace
        starts: called as `prepare_datasets(project, datasets, destination)` with a
        ProjectInfo, the project's DatasetInfo list and an empty directory; returns
        {dataset name: host path}, each mounted read-only at ~/data/<name>. The directory is
        deleted after the workspace stops. None (default): copy a plain directory per dataset
        from <state dir>/datasets/<project>/<dataset>.""",
    ).tag(config=True)

    hub_port_for_workspaces = Int(
        8081,
        help="""Port of the hub API as workspaces reach it on their project network's gateway
        (the hub must listen there, e.g. JupyterHub.hub_ip = '0.0.0.0').""",
    ).tag(config=True)

    airlock_port_for_workspaces = Int(
        0,
        help="""Port of the airlock service as workspaces reach it on their network's gateway (the
        service must listen there; the host firewall opens it beside the hub port). 0: workspaces
        are not told of the airlock and cannot reach it.""",
    ).tag(config=True)

    airlock_prefix = Unicode(
        "/services/airlock/",
        help="URL prefix of the airlock service; its JSON API is under `<prefix>api/`.",
    ).tag(config=True)

    # Set by the engine for this spawn: the airlock API as the workspace reaches it.
    airlock_api_url: str = ""

    @property
    def registry(self) -> Registry:
        """The project registry this hub uses."""
        return registry_at(self.registry_url)

    @property
    def state_path(self) -> Path:
        """The hub-side state directory as a Path."""
        return Path(self.spe_state_dir)

    def workspace_data_dir(self) -> Path:
        """Host directory holding this workspace's prepared datasets while it runs."""
        return (self.state_path / "workspaces" / lockdown.unique_name(self.user.name)
                / lockdown.safe_name(self.name or "default") / "data")

    def requested_image(self) -> str:
        """The image asked for through the form, `user_options` or the REST API, else the default."""
        return str(self.user_options.get("image") or self.default_workspace_image)

    @property
    def is_review_server(self) -> bool:
        """True for the output checker's review server (no project)."""
        return self.name == REVIEW_SERVER

    @default("server_token_scopes")
    def _default_server_token_scopes(self):
        return lambda spawner: spawner.token_scopes()

    def token_scopes(self) -> list[str]:
        """Scopes of the server's own hub token: the server role's, plus the airlock's for its
        kind (filing requests in a project workspace, reviewing in a review server). The hub
        grants only those the user holds."""
        from lnds_spe.airlock.policies import SCOPE_REQUEST, SCOPE_REVIEW

        airlock = SCOPE_REVIEW if self.is_review_server else SCOPE_REQUEST
        return ["users:activity!user", "access:servers!server",
                "access:services!service=airlock", airlock]

    def get_env(self) -> dict:
        """The server's environment, plus where the airlock is and what kind of server this is."""
        env = super().get_env()
        env["SPE_SERVER_KIND"] = "review" if self.is_review_server else "workspace"
        env["SPE_PROJECT"] = "" if self.is_review_server else (self.name or "")
        if self.airlock_api_url:
            env["SPE_AIRLOCK_API_URL"] = self.airlock_api_url
        return env

    def audit(self, action: str, *, outcome: str = "ok", details: dict | None = None) -> None:
        """Append one audit event about this user's workspace of this project (or review server)."""
        if self.is_review_server:
            details = {"server": REVIEW_SERVER, **(details or {})}
        project = None if self.is_review_server else (self.name or None)
        self.registry.audit.append(self.user.name, action, project=project,
                                   target=self.user.name, outcome=outcome, details=details)

    def refuse(self, denied: SpawnDenied, image: str) -> SpawnRefused:
        """Audit a refused start and turn it into the refusal the user sees."""
        self.audit("workspace.spawn_denied", outcome="denied",
                   details={"reason": str(denied), "image": image})
        return SpawnRefused(str(denied))

    def authorize_review(self) -> None:
        """Allow the review server, or SpawnRefused (audited) with the reason the user sees."""
        image = self.requested_image()
        checked = self.registry.projects_of(self.user.name, "output_checker")
        try:
            check_can_review(checked, image, self.default_workspace_image)
        except SpawnDenied as denied:
            raise self.refuse(denied, image) from None

    def project_to_start(self, image: str) -> ProjectInfo:
        """The project this server starts, if the policy allows it; SpawnDenied says why not."""
        slug = check_server_name(self.name, self.user_options.get("project"))
        try:
            project = self.registry.get_project(slug)
        except ProjectNotFound:
            raise SpawnDenied(f"there is no project {slug}") from None
        check_can_spawn(project, self.registry.roles_of(slug, self.user.name), image, _today())
        check_outputs_quota(project, outputs_bytes(self.state_path, slug))
        return project

    def authorize_spawn(self) -> ProjectInfo:
        """The project to start, or SpawnRefused (audited) with the reason the user sees."""
        image = self.requested_image()
        try:
            return self.project_to_start(image)
        except SpawnDenied as denied:
            raise self.refuse(denied, image) from None

    def prepare_data(self, project: ProjectInfo) -> dict[str, str]:
        """Prepare the project's datasets on the hub side: {dataset name: host path}."""
        destination = self.workspace_data_dir()
        self.delete_prepared_data()
        destination.mkdir(parents=True)
        datasets = self.registry.datasets(project.slug)
        if self.prepare_datasets is not None:
            prepared = self.prepare_datasets(project, datasets, destination)
        else:
            prepared = prepare_plain_datasets(project, datasets, destination,
                                              state_dir=self.state_path)
        for name in sorted(prepared):
            self.audit("dataset.mount", details={"dataset": name})
        return {name: str(path) for name, path in prepared.items()}

    def delete_prepared_data(self) -> None:
        """Delete this workspace's prepared (possibly decrypted) data from the host: each dataset
        through the audited deletion, and the whole folder even if an audit write fails."""
        folder = self.workspace_data_dir()
        try:
            for path in sorted(folder.iterdir()) if folder.is_dir() else []:
                delete_decrypted(self.registry, self.name, path, actor=self.user.name)
        finally:
            remove_tree(folder)

    def outputs_dir(self, project: ProjectInfo) -> str:
        """The project's shared outputs folder on the host, created on first use and writable by
        the workspace user."""
        path = outputs_path(self.state_path, project.slug)
        path.mkdir(parents=True, exist_ok=True)
        owner, mode = lockdown.outputs_owner_and_mode(os.geteuid() == 0, self.workspace_userns)
        if owner is not None:
            os.chown(path, owner, owner)
        os.chmod(path, mode)
        return str(path)

    def active_projects(self) -> list[ProjectInfo]:
        """Projects the user may start a workspace for today (researcher, active, in dates)."""
        return startable_projects(self.registry.projects_of(self.user.name, "researcher"), _today())

    def render_options_form(self) -> str:
        """The spawn form: the user's active projects, and the images this project allows."""
        if self.is_review_server:
            return ("<p>Your review server: the workspace image with no project data, where you "
                    "review export requests.</p>")
        projects = self.active_projects()
        if not projects:
            return "<p>You have no active project: ask a project administrator.</p>"
        current = next((p for p in projects if p.slug == self.name), None)
        project_options = "".join(
            f'<option value="{html.escape(p.slug)}"{" selected" if p is current else ""}>'
            f"{html.escape(p.slug)}: {html.escape(p.title)}</option>" for p in projects)
        parts = ['<label for="spe-project">Project</label>',
                 f'<select class="form-control" id="spe-project" name="project">'
                 f"{project_options}</select>"]
        if current is not None:
            image_options = "".join(
                f'<option value="{html.escape(image)}">{html.escape(image)}</option>'
                for image in current.allowed_images)
            parts += ['<label for="spe-image">Image</label>',
                      f'<select class="form-control" id="spe-image" name="image">'
                      f"{image_options}</select>"]
        return "\n".join(parts)

    @default("options_form")
    def _default_options_form(self):
        return lambda spawner: spawner.render_options_form()

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, str]:
        """Form fields (lists of strings) to user_options: the chosen project and image."""
        options = {}
        for key in ("project", "image"):
            values = formdata.get(key) or []
            if values and values[0]:
                options[key] = values[0]
        return options

    async def start(self):
        """Check the policy, prepare data and the engine side at once, then start the workspace.

        The data (decrypted in a thread) and the engine side (network, home, firewall) do not
        depend on each other, so a large dataset's decryption overlaps the engine's work. The
        start returns when the workspace listens (wait_until_listening).
        """
        began = time.monotonic()
        if self.is_review_server:
            self.authorize_review()
            await self.prepare_review_engine()
        else:
            project = self.authorize_spawn()
        steps: list[asyncio.Future] = []
        try:
            if not self.is_review_server:
                data = asyncio.ensure_future(asyncio.to_thread(self.prepare_files, project))
                engine = asyncio.ensure_future(self.prepare_engine(project))
                steps = [data, engine]
                await asyncio.wait(steps)
                prepared = data.result()  # the data's error first: it may be an audited refusal
                engine.result()
                self.mount_data(*prepared)
            result = await super().start()
            await self.wait_until_listening(result, began)
            self.audit("workspace.spawn", details={"image": self.requested_image()})
        except BaseException as error:
            # Whatever failed (decryption, audit, engine, cancellation), no plaintext stays.
            await asyncio.shield(self._clean_up_failed_start(steps))
            self._audit_failed_start(error)
            raise
        return result

    async def wait_until_listening(self, started: tuple[str, int] | str, began: float) -> None:
        """Return as soon as the started workspace accepts connections, so the hub's own
        check (with waits of seconds) finds it up at its first try; see readiness."""
        host, port = server_address(started)
        seconds, final = wait_budget(self.http_timeout, self.start_timeout,
                                     time.monotonic() - began)
        if not await wait_listening(host, port, seconds, self.poll) and final:
            raise WorkspaceNotReady(f"the workspace did not listen on {host}:{port} within "
                                    f"{seconds:g} s of its start; an admin can read its log")

    def prepare_files(self, project: ProjectInfo) -> tuple[dict[str, str], str]:
        """The host side of a start: the prepared datasets and the outputs folder."""
        return self.prepare_data(project), self.outputs_dir(project)

    async def _clean_up_failed_start(self, steps: list[asyncio.Future]) -> None:
        """Wait for the start's steps to end (a cancelled start does not stop a decryption
        thread, which would write after the deletion), then delete the prepared data."""
        if steps:
            await asyncio.wait(steps)
            for step in steps:  # retrieved: the start's own error is the one raised
                if not step.cancelled():
                    step.exception()
        await asyncio.to_thread(self._delete_after_failed_start)

    def _delete_after_failed_start(self) -> None:
        """Delete the prepared data of a start that failed; an audit error must not hide the
        start's own (the data is gone either way)."""
        try:
            self.delete_prepared_data()
        except Exception as audit_error:  # noqa: BLE001 - the start's own error is re-raised
            self.log.error("could not audit deleting the data of %s: %s", self.name, audit_error)

    def _audit_failed_start(self, error: BaseException) -> None:
        """Record a start that failed; a broken audit log must not hide the original error."""
        try:
            self.audit("workspace.spawn", outcome="error",
                       details={"error": f"{type(error).__name__}: {error}"[:500]})
        except Exception as audit_error:  # noqa: BLE001 - the start's own error is re-raised
            self.log.error("could not audit the failed start of %s: %s", self.name, audit_error)

    async def prepare_engine(self, project: ProjectInfo) -> None:
        """Engine-specific settings for this spawn that need no data (network, home, limits,
        lockdown); runs while the data is prepared."""
        raise NotImplementedError

    def mount_data(self, datasets: dict[str, str], outputs_dir: str) -> None:
        """Engine-specific mounts of the prepared datasets (read-only) and the outputs folder."""
        raise NotImplementedError

    async def prepare_review_engine(self) -> None:
        """Engine-specific settings for a review server (own network, no data, lockdown)."""
        raise SpawnRefused("review servers are not available on this hub's container engine: "
                           "review on the airlock's pages instead")

    async def stop(self, now: bool = False):
        """Stop the workspace, then delete its prepared data from the host."""
        await super().stop(now=now)
        await asyncio.to_thread(self.delete_prepared_data)
        self.audit("workspace.stop")


def _docker_spawner_base():
    from dockerspawner import DockerSpawner

    return DockerSpawner


class SPEDockerSpawner(SPEPolicyMixin, _docker_spawner_base()):
    """Project workspaces as locked-down containers on Docker or Podman (Docker API)."""

    host_firewall = Bool(
        help="""Install host firewall rules so a project's subnet reaches only the hub ports on
        the host and no other workspace (needs root, iptables and nftables; turn off when the hub
        itself runs in a container). Default: $SPE_HOST_FIREWALL.""",
    ).tag(config=True)

    hub_host_alias = Unicode(
        "spe-hub",
        help="The one name that resolves inside a workspace: the hub, via /etc/hosts.",
    ).tag(config=True)

    @default("host_firewall")
    def _default_host_firewall(self) -> bool:
        return setting_on("SPE_HOST_FIREWALL")

    @default("remove")
    def _default_remove(self) -> bool:
        return True

    @default("prefix")
    def _default_prefix(self) -> str:
        return setting("SPE_CONTAINER_PREFIX")

    @default("name_template")
    def _default_name_template(self) -> str:
        return "{prefix}-{username}--{servername}"

    @default("image")
    def _default_image(self) -> str:
        return self.default_workspace_image

    async def ensure_project_network(self, slug: str) -> tuple[str, str]:
        """Create the project's internal network if needed; return (gateway, subnet)."""
        return await self.ensure_internal_network(lockdown.network_name(self.prefix, slug),
                                                  {lockdown.LABEL_PROJECT: slug})

    async def network_exists(self, name: str) -> bool:
        """Whether the engine has a network of exactly this name."""
        networks = await self.docker("networks", names=[name])
        return any(net.get("Name") == name for net in networks)

    async def ensure_internal_network(self, name: str, labels: dict[str, str]) -> tuple[str, str]:
        """Create an internal network if needed; return (gateway, subnet)."""
        from docker.errors import APIError

        if not await self.network_exists(name):
            self.log.info("Creating internal network %s (%s)", name, labels)
            try:
                await self.docker("create_network", name, driver="bridge", internal=True,
                                  labels=labels, options={"isolate": "true"})
            except APIError:
                if not await self.network_exists(name):  # not one a concurrent spawn made
                    raise
        info = await self.docker("inspect_network", name)
        if not info.get("Internal"):
            raise RuntimeError(f"network {name} exists but is not internal: remove it")
        config = (info.get("IPAM") or {}).get("Config") or []
        ipv4 = [c for c in config if c.get("Subnet") and ":" not in c["Subnet"]]
        if not ipv4 or not ipv4[0].get("Gateway"):
            raise RuntimeError(f"network {name} has no IPv4 subnet with a gateway")
        return ipv4[0]["Gateway"], ipv4[0]["Subnet"]

    def host_ports(self) -> list[int]:
        """Host ports a workspace may open on its gateway: the hub API, and the airlock if set."""
        return [p for p in (self.hub_port_for_workspaces, self.airlock_port_for_workspaces) if p]

    def resolv_conf(self) -> str:
        """The host file mounted as every workspace's /etc/resolv.conf (written when it differs)."""
        path = self.state_path / "workspace-resolv.conf"
        if not path.exists() or path.read_text() != lockdown.RESOLV_CONF:
            path.write_text(lockdown.RESOLV_CONF)
            path.chmod(0o644)
        return str(path)

    async def lock_down(self, network: str, gateway: str, subnet: str, limits: lockdown.Limits,
                        volumes: dict, labels: dict[str, str]) -> None:
        """Firewall, hub and airlock addresses, limits, mounts and lockdown for one container."""
        self.network_name = network
        if self.host_firewall:
            from lnds_spe.hub.firewall import apply_firewall

            await asyncio.to_thread(apply_firewall, network, subnet, self.host_ports())
            self.log.info("Host firewall of %s (%s): ports %s on the host, no workspace to "
                          "workspace traffic", network, subnet, self.host_ports())
        image = self.requested_image()
        self.image = image
        self.allowed_images = {image: image}
        self.use_internal_ip = True
        self.hub_connect_url = f"http://{gateway}:{self.hub_port_for_workspaces}"
        self.airlock_api_url = (f"http://{gateway}:{self.airlock_port_for_workspaces}"
                                f"{self.airlock_prefix}api/" if self.airlock_port_for_workspaces
                                else "")
        self.mem_limit = limits.mem_bytes
        self.cpu_limit = limits.cpu
        self.volumes = {**volumes, self.resolv_conf(): lockdown.resolv_conf_bind()}
        host_config = lockdown.docker_host_config(limits)
        host_config["extra_hosts"] = {self.hub_host_alias: gateway}
        host_config["dns"] = ["127.0.0.1"]
        self.extra_host_config = host_config
        self.extra_create_kwargs = {
            "user": f"{lockdown.WORKSPACE_UID}:{lockdown.WORKSPACE_GID}",
            "labels": {**labels, lockdown.LABEL_USER: self.user.name},
            "working_dir": str(lockdown.WORKSPACE_HOME),
            **lockdown.userns_create_settings(self.workspace_userns),
        }

    async def prepare_engine(self, project: ProjectInfo) -> None:
        """Network, firewall, home, limits and lockdown for this user's project container."""
        gateway, subnet = await self.ensure_project_network(project.slug)
        home = lockdown.home_volume_name(self.prefix, self.user.name, project.slug)
        await asyncio.to_thread(ensure_home_volume, self.client, self.state_path, home, project,
                                self.user.name)
        await self.lock_down(lockdown.network_name(self.prefix, project.slug), gateway, subnet,
                             lockdown.project_limits(project),
                             {home: lockdown.home_bind(self.workspace_userns)},
                             {lockdown.LABEL_PROJECT: project.slug})

    def mount_data(self, datasets: dict[str, str], outputs_dir: str) -> None:
        """Bind the prepared datasets read-only and the outputs folder beside the home."""
        self.volumes = {**self.volumes, **lockdown.data_binds(datasets, outputs_dir)}

    async def stop(self, now: bool = False):
        """Stop and remove the container, then unmount its home if the engine left it mounted."""
        await super().stop(now=now)
        home = lockdown.home_volume_name(self.prefix, self.user.name, self.name)
        found = (await self.docker("volumes", filters={"name": home})).get("Volumes") or []
        if any(volume["Name"] == home for volume in found):
            await asyncio.to_thread(release_stale_mount, self.client, home)

    async def prepare_review_engine(self) -> None:
        """The checker's own internal network, a home volume and nothing else mounted."""
        network = lockdown.review_network_name(self.prefix, self.user.name)
        gateway, subnet = await self.ensure_internal_network(
            network, {lockdown.LABEL_REVIEW: lockdown.safe_name(self.user.name)})
        home = lockdown.home_volume_name(self.prefix, self.user.name, REVIEW_SERVER)
        await self.lock_down(network, gateway, subnet, lockdown.REVIEW_LIMITS,
                             {home: lockdown.home_bind(self.workspace_userns)},
                             {lockdown.LABEL_REVIEW: lockdown.safe_name(self.user.name)})
