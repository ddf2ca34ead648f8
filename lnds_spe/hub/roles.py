"""Least privilege in the hub: who holds which JupyterHub scopes.

JupyterHub's built-in `admin` role cannot be redefined (`load_roles` refuses to change its
scopes) and carries `access:servers`, `shares` and `tokens`, so it opens, shares or impersonates
any researcher's workspace. SPE admins are therefore never JupyterHub admins: the authenticator
is wrapped so that nobody is one, and SPE admins hold the `spe-admin` role below instead. They
manage users, see and stop servers, run the admin console and administer the airlock; they
cannot open, share or make tokens for another person's server.
"""

from jupyterhub.auth import Authenticator
from jupyterhub.roles import assign_default_roles
from sqlalchemy.orm import object_session

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
