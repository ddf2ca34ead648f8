"""Least privilege in the hub: who holds which JupyterHub scopes.

JupyterHub's built-in `admin` role cannot be redefined (`load_roles` refuses to change its
scopes) and carries `access:servers`, `shares` and `tokens`, so it opens, shares or impersonates
any researcher's workspace. SPE admins are therefore never JupyterHub admins: the authenticator
is wrapped so that nobody is one, and SPE admins hold the `spe-admin` role below instead. They
manage users, see and stop servers, run the admin console and administer the airlock; they
cannot open, share or make tokens for another person's server.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from jupyterhub import orm
from jupyterhub.auth import Authenticator
from jupyterhub.roles import assign_default_roles, create_role
from sqlalchemy.orm import object_session
from tornado.ioloop import IOLoop, PeriodicCallback

# Run the admin console (projects, members, datasets, status, audit log).
SCOPE_SPE_ADMIN = "custom:spe:admin"
CUSTOM_SCOPES = {SCOPE_SPE_ADMIN: {"description": "Provision projects and read the audit log "
                                                  "in the SPE admin console."}}

# What an SPE admin holds besides the console and airlock scopes: no access:servers, shares,
# tokens, proxy or admin:groups (a group can carry a role), and no start:servers.
SPE_ADMIN_HUB_SCOPES = (
    "admin-ui", "admin:users", "read:servers", "delete:servers", "list:groups", "read:groups",
    "list:services", "read:services", "read:hub", "read:roles", "read:metrics",
)


def spe_admin_role(admins, extra_scopes=()) -> dict:
    """The `spe-admin` role of `load_roles`, held by these users."""
    return {"name": "spe-admin", "description": "SPE admin: users, projects, audit; no access "
                                                "to researchers' servers",
            "users": sorted(admins),
            "scopes": [*SPE_ADMIN_HUB_SCOPES, SCOPE_SPE_ADMIN, *extra_scopes]}


class NoHubAdminsMixin:
    """Nobody is a JupyterHub admin: at startup (add_user, after admin_users were marked) and at
    each login (the authenticator's answer)."""

    def add_user(self, user):
        orm_user = getattr(user, "orm_user", user)
        orm_user.admin = False
        assign_default_roles(object_session(orm_user), entity=orm_user)  # drops the admin role
        return super().add_user(user)

    async def get_authenticated_user(self, handler, data):
        authenticated = await super().get_authenticated_user(handler, data)
        if authenticated is not None:
            authenticated["admin"] = False
        return authenticated


def without_hub_admins(authenticator_class: type | str) -> type:
    """This authenticator class (or entry-point name, e.g. "shared-password") with no hub admins.

    Its `admin_users` still do what the authenticator does with them (e.g. the shared-password
    login asks them for the admin password); they just never get JupyterHub's admin role.
    """
    base = authenticator_class
    if isinstance(base, str):
        from importlib.metadata import entry_points

        found = entry_points(group="jupyterhub.authenticators", name=base)
        base = next(iter(found)).load() if found else _import_class(base)
    if not (isinstance(base, type) and issubclass(base, Authenticator)):
        raise TypeError(f"{authenticator_class!r} is not a JupyterHub authenticator class")
    return type(f"SPE{base.__name__}", (NoHubAdminsMixin, base), {})


def _import_class(dotted: str) -> type:
    """A class from its dotted path, as JupyterHub's config accepts it."""
    from importlib import import_module

    module, _, name = dotted.rpartition(".")
    return getattr(import_module(module), name)


# --- Project admins ---------------------------------------------------------------------------
# A project's researchers form the hub group project-<slug>; its project admins hold the role
# project-admin-<slug>, which reads and stops that group's servers (read:servers, delete:servers:
# no access:servers, so they cannot open them). The registry is the source: sync_project_access
# writes it into the hub's database after every console change and every SYNC_EVERY seconds
# (members added with the `spe` command arrive then; hub users who never signed in are skipped).
SYNC_EVERY = 30
_PROJECT_GROUP = "project-"
_PROJECT_ADMIN_ROLE = "project-admin-"


@dataclass(frozen=True)
class ProjectAccess:
    """The hub groups and roles the registry's memberships call for."""

    groups: dict[str, frozenset[str]]  # group -> users
    roles: dict[str, tuple[tuple[str, ...], frozenset[str]]]  # role -> (scopes, users)


def project_access(memberships: Iterable[tuple[str, str, str]]) -> ProjectAccess:
    """From (project, user, role) triples: a group of researchers and an admin role per project."""
    groups: dict[str, set[str]] = {}
    admins: dict[str, set[str]] = {}
    for project, user, role in memberships:
        groups.setdefault(_PROJECT_GROUP + project, set())
        admins.setdefault(project, set())
        if role == "researcher":
            groups[_PROJECT_GROUP + project].add(user)
        elif role == "project_admin":
            admins[project].add(user)
    roles = {}
    for project, users in admins.items():
        group = _PROJECT_GROUP + project
        roles[_PROJECT_ADMIN_ROLE + project] = (
            (f"read:servers!group={group}", f"delete:servers!group={group}"), frozenset(users))
    return ProjectAccess({g: frozenset(u) for g, u in groups.items()}, roles)


def sync_project_access(db, access: ProjectAccess) -> None:
    """Make the hub's project groups and project-admin roles exactly what `access` says."""
    users = {u.name: u for u in db.query(orm.User)}
    for name, members in access.groups.items():
        group = orm.Group.find(db, name) or orm.Group(name=name)
        db.add(group)
        group.users = [users[m] for m in sorted(members) if m in users]
    for name, (scopes, holders) in access.roles.items():
        role = create_role(db, {"name": name, "scopes": list(scopes),
                                "description": "Read and stop the servers of one project's "
                                               "researchers"}, commit=False)
        role.users = [users[h] for h in sorted(holders) if h in users]
    db.commit()


def registry_memberships(registry) -> list[tuple[str, str, str]]:
    """(project, user, role) for every member of every project."""
    return [(p.slug, m.username, m.role) for p in registry.list_projects()
            for m in registry.members(p.slug)]


def sync_from_registry(db, registry) -> None:
    """Write the registry's project memberships into the hub's groups and roles."""
    sync_project_access(db, project_access(registry_memberships(registry)))


def start_project_access_sync(registry_url: str) -> PeriodicCallback:
    """From jupyterhub_config.py (loaded inside the hub's running loop): sync every SYNC_EVERY s
    once the hub's database is up; a failed round is logged and retried on the next."""
    from jupyterhub.app import JupyterHub

    from lnds_spe.hub.spawner import registry_at

    def sync_round() -> None:
        app = JupyterHub.instance()
        if getattr(app, "db", None) is None:
            return
        try:
            sync_from_registry(app.db, registry_at(registry_url))
        except Exception:  # noqa: BLE001 - the next round retries; the hub keeps serving
            app.db.rollback()
            app.log.exception("project groups and project-admin roles not synced this round")

    periodic = PeriodicCallback(sync_round, SYNC_EVERY * 1000)
    periodic.start()
    IOLoop.current().call_later(1, sync_round)
    return periodic
