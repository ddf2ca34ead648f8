"""The SPE admin console: hub pages to provision projects and read the audit log, no shell needed.

Pages under /hub/spe-admin, for holders of the `custom:spe:admin` scope (lnds_spe/hub/roles.py;
checked in `prepare`, as JupyterHub's `needs_scope` only knows scopes defined before import).
Forms post with the hub's XSRF token (BaseHandler checks it). Each form is parsed by
lnds_spe.hub.admin_forms, then handed to the registry and lifecycle calls the `spe` command
makes, so the checks, messages and audit events are the CLI's; a refusal is shown on the page
(status 400), changes nothing, and is audited with outcome "denied".
"""

import asyncio
from pathlib import Path

from jupyterhub.handlers import BaseHandler
from tornado import web

from lnds_spe import policy
from lnds_spe.errors import InvalidStatusTransition, SPEError
from lnds_spe.hub import admin_forms
from lnds_spe.hub.roles import SCOPE_SPE_ADMIN, sync_from_registry
from lnds_spe.hub.spawner import registry_at
from lnds_spe.lifecycle import close_project

CONSOLE = "spe-admin"


def _is_slug(text: str) -> bool:
    try:
        policy.check_slug(text)
    except SPEError:
        return False
    return True


class ConsoleHandler(BaseHandler):
    """What every console page shares: the registry, the acting admin, refusals."""

    def initialize(self, registry_url: str, state_dir: str):
        self.registry = registry_at(registry_url)
        self.state_dir = Path(state_dir)

    async def prepare(self):
        """Signed-in callers without the console scope get 403 (the hub then checks XSRF)."""
        await super().prepare()
        if self.current_user is not None and SCOPE_SPE_ADMIN not in self.parsed_scopes:
            raise web.HTTPError(403, "the SPE admin console is for SPE admins (role spe-admin)")

    @property
    def actor(self) -> str:
        return self.current_user.name

    def refused(self, action: str, error: SPEError, *, project: str | None = None,
                target: str | None = None) -> str:
        """Audit a refused change (set_status audits its own) and return its message."""
        if not isinstance(error, InvalidStatusTransition):
            if project is not None and not _is_slug(project):
                project, target = None, target or project  # the audit's project column is a slug
            self.registry.audit.append(self.actor, action, project=project, target=target,
                                       outcome="denied", details={"reason": str(error),
                                                                  "via": CONSOLE})
        self.set_status(400)
        return str(error)

    async def page(self, template: str, **ns) -> None:
        self.finish(await self.render_template(template, console=CONSOLE, roles=policy.ROLES,
                                               **ns))


class ProjectsPage(ConsoleHandler):
    """/hub/spe-admin: every project, and the form to create one."""

    @web.authenticated
    async def get(self):
        await self.show()

    @web.authenticated
    async def post(self):
        form = {name: self.get_body_argument(name, "") for name in (
            "slug", "title", "description", "start", "end", "cpu", "mem", "pids", "image",
            "home_quota", "outputs_quota")}
        try:
            new = admin_forms.project_request(form)
            self.registry.create_project(
                new.slug, new.title, new.start, new.end, actor=self.actor,
                description=new.description, cpu_limit=new.cpu_limit, mem_limit=new.mem_limit,
                pids_limit=new.pids_limit, allowed_images=new.allowed_images,
                home_quota=new.home_quota, outputs_quota=new.outputs_quota)
        except SPEError as error:
            await self.show(error=self.refused("project.create", error, project=form["slug"]),
                            form=form)
            return
        self.redirect(f"{self.hub.base_url}{CONSOLE}/projects/{new.slug}?created=1")

    async def show(self, *, error: str = "", form: dict | None = None) -> None:
        await self.page("spe-admin.html", projects=self.registry.list_projects(), error=error,
                        form=form or {})


class ProjectPage(ConsoleHandler):
    """/hub/spe-admin/projects/<slug>: members, datasets, status; one form per change."""

    @web.authenticated
    async def get(self, slug: str):
        done = f"created project {slug}" if self.get_query_argument("created", "") else ""
        await self.show(slug, done=done)

    @web.authenticated
    async def post(self, slug: str):
        operation = self.get_body_argument("op", "")
        form = {name: self.get_body_argument(name, "") for name in (
            "username", "role", "name", "location", "sha256", "size", "outputs", "confirm",
            "home_quota", "outputs_quota")}
        try:
            # In a thread: closing archives home volumes, which must not stall the hub.
            done = await asyncio.to_thread(self.change, slug, operation, form, self.actor)
        except SPEError as error:
            await self.show(slug, error=self.refused(_ACTIONS.get(operation, "project.status"), error,
                                                     project=slug,
                                                     target=form["username"] or form["name"] or None))
            return
        sync_from_registry(self.db, self.registry)  # project groups and project-admin roles
        await self.show(slug, done=done)

    def change(self, slug: str, operation: str, form: dict, actor: str) -> str:
        """Make one change as `actor` (registry and lifecycle only, no hub state: it runs in a
        thread); the message the CLI prints for it."""
        if operation == "member-add":
            member = admin_forms.member_request(form, removing=False)
            self.registry.add_member(slug, member.username, member.role, actor=actor)
            return f"{member.username} is now {member.role} of {slug}"
        if operation == "member-remove":
            member = admin_forms.member_request(form, removing=True)
            removed = self.registry.remove_member(slug, member.username, member.role,
                                                  actor=actor)
            return f"removed {member.username} from {slug} ({', '.join(m.role for m in removed)})"
        if operation == "dataset-add":
            dataset = admin_forms.dataset_request(form)
            self.registry.add_dataset(slug, dataset.name, dataset.location, actor=actor,
                                      plaintext_sha256=dataset.plaintext_sha256,
                                      plaintext_size=dataset.plaintext_size)
            return f"dataset {dataset.name} registered to {slug}"
        if operation == "quotas":
            quotas = admin_forms.quota_request(form)
            info = self.registry.set_quotas(slug, actor=actor, home_quota=quotas.home_quota,
                                            outputs_quota=quotas.outputs_quota)
            return (f"project {slug}: home quota {info.home_quota}, outputs quota "
                    f"{info.outputs_quota}")
        if operation == "close":
            closed = close_project(self.registry, slug, actor=actor,
                                   state_dir=self.state_dir,
                                   outputs_policy=admin_forms.close_request(form))
            return closed.message(slug)
        status = admin_forms.status_request(operation)
        self.registry.set_status(slug, status, actor=actor)
        return f"project {slug} is now {status}"

    async def show(self, slug: str, *, done: str = "", error: str = "") -> None:
        try:
            project = self.registry.get_project(slug)
        except SPEError as error:
            raise web.HTTPError(404, str(error)) from None
        await self.page("spe-admin-project.html", project=project,
                        members=self.registry.members(slug), datasets=self.registry.datasets(slug),
                        done=done, error=error)


# The audit action a refused console operation is recorded under (the registry's own names).
_ACTIONS = {"member-add": "member.add", "member-remove": "member.remove",
            "dataset-add": "dataset.add", "quotas": "project.quota", "suspend": "project.status",
            "resume": "project.status", "close": "project.status"}


class AuditPage(ConsoleHandler):
    """/hub/spe-admin/audit: the audit log by project, person and dates; ?format=csv exports."""

    @web.authenticated
    async def get(self):
        query = {name: self.get_query_argument(name, "") for name in
                 ("project", "user", "since", "until")}
        try:
            wanted = admin_forms.audit_filter(query)
        except SPEError as error:
            self.set_status(400)
            await self.page("spe-admin-audit.html", events=[], query=query, error=str(error))
            return
        events = await asyncio.to_thread(self.registry.audit.query, project=wanted.project,
                                         user=wanted.user, since=wanted.since, until=wanted.until)
        if self.get_query_argument("format", "") == "csv":
            self.set_header("Content-Type", "text/csv; charset=utf-8")
            self.set_header("Content-Disposition", 'attachment; filename="spe-audit.csv"')
            self.finish(admin_forms.audit_csv(events))
            return
        await self.page("spe-admin-audit.html", events=events, query=query, error="")


def console_handlers(registry_url: str, state_dir: str) -> list[tuple]:
    """The console's routes for `c.JupyterHub.extra_handlers` (under the hub's /hub/)."""
    where = {"registry_url": registry_url, "state_dir": state_dir}
    return [(rf"/{CONSOLE}", ProjectsPage, where),
            (rf"/{CONSOLE}/projects/([a-z0-9-]+)", ProjectPage, where),
            (rf"/{CONSOLE}/audit", AuditPage, where)]
