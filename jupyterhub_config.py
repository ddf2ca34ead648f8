"""JupyterHub configuration of the LNDS SPE: one locked-down workspace per (user, project).

Every deployment setting comes from an environment variable with a default fit for one machine
running Podman (see scripts/hub.sh). Read top to bottom: where things live, who may log in,
how workspaces start, which services run beside the hub.
"""

import os
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the lnds_spe package of this checkout, if not installed

from lnds_spe.airlock.policies import SCOPE_ADMIN, SCOPE_REQUEST, SCOPE_REVIEW  # noqa: E402
from lnds_spe.config import database_url, engine_host, setting, setting_on, state_dir  # noqa: E402
from lnds_spe.crypto import PRIVATE_KEY_NAME  # noqa: E402
from lnds_spe.datasets import remove_staging_leftovers  # noqa: E402
from lnds_spe.db import upgrade_database  # noqa: E402
from lnds_spe.demo import ACCOUNTS_FILE, DEMO_USERS, ensure_demo_accounts  # noqa: E402
from lnds_spe.hub.admin_console import console_handlers  # noqa: E402
from lnds_spe.hub.identity import (  # noqa: E402
    ADMINS_GROUP,
    AUTHENTICATORS,
    IDENTITY_SETTINGS,
    auth_state_key,
    authenticator_choice,
    check_oidc_settings,
    demo_mode_requested,
    discovery,
    native_settings,
    oidc_settings,
    shared_demo_password,
)
from lnds_spe.hub.roles import (  # noqa: E402
    CUSTOM_SCOPES,
    spe_admin_role,
    start_project_access_sync,
    without_hub_admins,
)
from lnds_spe.hub.spawner import registry_at  # noqa: E402
from lnds_spe.ingress import hub_passphrase, make_encrypted_preparer  # noqa: E402
from lnds_spe.policy import REVIEW_SERVER, can_review, startable_projects  # noqa: E402


def env(name: str, default: str = "") -> str:
    """A setting (environment, else the venv's settings file, else lnds_spe/defaults.env), with
    `default` when none of them sets it."""
    return setting(name) or default


c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)

# --- Where state lives ------------------------------------------------------------------------
STATE = state_dir()
HUB_STATE = STATE / "hub"
HUB_STATE.mkdir(parents=True, exist_ok=True)
remove_staging_leftovers(STATE)  # half-decrypted folders a crash left: no decryption runs yet
c.JupyterHub.db_url = env("SPE_HUB_DB_URL", f"sqlite:///{HUB_STATE / 'jupyterhub.sqlite'}")
c.JupyterHub.cookie_secret_file = str(HUB_STATE / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(HUB_STATE / "proxy.pid")
REGISTRY_URL = database_url()
upgrade_database(REGISTRY_URL)  # migrations run at setup and here, never behind a running hub

# --- Where the hub listens ----------------------------------------------------------------------
# Users reach the proxy; the hub API listens on all addresses so that each project's workspaces
# reach it on their network's gateway, which exists only while a workspace is attached (so no
# fixed address can be bound). The host firewall lets workspaces reach nothing else there, and
# guards this port from every other interface (see the airlock below, N8).
c.JupyterHub.bind_url = env("SPE_HUB_BIND_URL", "http://127.0.0.1:8000")
c.JupyterHub.hub_ip = env("SPE_HUB_API_IP", "0.0.0.0")
c.JupyterHub.hub_port = int(env("SPE_HUB_API_PORT", "8081"))
c.JupyterHub.hub_connect_ip = env("SPE_HUB_CONNECT_IP", "127.0.0.1")
c.ConfigurableHTTPProxy.api_url = env("SPE_PROXY_API_URL", "http://127.0.0.1:8001")
c.JupyterHub.cleanup_servers = False  # a hub restart leaves running workspaces running
c.JupyterHub.template_paths = [str(ROOT / "hub" / "templates")]


def projects_for_home_page(user) -> list:
    """The projects the home page offers this user: those they may start a workspace for today."""
    if user is None:
        return []
    return startable_projects(registry_at(REGISTRY_URL).projects_of(user.name, "researcher"), date.today())


def review_server_for_home_page(user) -> str:
    """The review server's name if the home page offers it to this user (an output checker)."""
    if user is None:
        return ""
    checked = registry_at(REGISTRY_URL).projects_of(user.name, "output_checker")
    image = c.SPEPolicyMixin.default_workspace_image
    return REVIEW_SERVER if can_review(checked, image, image) else ""


c.JupyterHub.template_vars = {"spe_projects": projects_for_home_page,
                              "spe_review_server": review_server_for_home_page}

# --- Who may log in -----------------------------------------------------------------------------
# Each person signs in as themselves (lnds_spe/hub/identity.py): SPE_AUTHENTICATOR=oidc through the
# institution's OpenID Connect provider (SPE_OIDC_*: groups claim -> admin, output checker and
# allowed groups, optional multi-factor acr/amr, access ended and servers stopped when the
# provider stops vouching), or by default per-person accounts with their own hashed passwords,
# created by admins (on the sign-up page, or in SPE_ACCOUNTS_FILE, provisioned at each start).
# SPE_DEMO_MODE=1 (./run up, test fixtures) provisions the demo's accounts, one generated password
# each, from <state>/demo-accounts.json (mode 600; `spe demo init`), and is the only mode in which
# a shared password (SPE_AUTHENTICATOR=shared-password) may run.
IDENTITY = {name: setting(name) for name in IDENTITY_SETTINGS}
DEMO_MODE = demo_mode_requested(IDENTITY)
ADMINS = {name for name in env("SPE_ADMIN_USERS", "admin").split(",") if name}
c.Authenticator.admin_users = ADMINS
c.JupyterHub.authenticator_class = authenticator_choice(IDENTITY["SPE_AUTHENTICATOR"], DEMO_MODE)
GROUPS_FROM_PROVIDER = c.JupyterHub.authenticator_class == AUTHENTICATORS["oidc"]
ADMIN_HUB_GROUPS = [ADMINS_GROUP] if GROUPS_FROM_PROVIDER else []  # the provider's admin groups
c.SPEOIDCAuthenticator.registry_url = c.SPENativeAuthenticator.registry_url = REGISTRY_URL
if GROUPS_FROM_PROVIDER:
    hub_url = env("SPE_HUB_PUBLIC_URL", c.JupyterHub.bind_url).rstrip("/")
    provider = discovery(check_oidc_settings(IDENTITY))
    for name, value in oidc_settings(IDENTITY, hub_url, provider).items():
        setattr(c.SPEOIDCAuthenticator, name, value)
    c.CryptKeeper.keys = [auth_state_key(HUB_STATE)]  # tokens in auth_state, encrypted at rest
elif c.JupyterHub.authenticator_class == AUTHENTICATORS["native"]:
    accounts_file = str(STATE / ACCOUNTS_FILE) if DEMO_MODE else IDENTITY["SPE_ACCOUNTS_FILE"]
    if DEMO_MODE:
        ensure_demo_accounts(STATE)
    for name, value in native_settings(accounts_file).items():
        setattr(c.SPENativeAuthenticator, name, value)
else:  # the shared password, demo mode only (authenticator_choice refuses it otherwise)
    c.SharedPasswordAuthenticator.user_password = shared_demo_password(IDENTITY)
    c.Authenticator.allow_all = True  # project membership, checked at each spawn, gates workspaces

# --- Who may do what in the airlock ------------------------------------------------------------
# Three hub scopes gate the airlock service; the registry then says which projects a user
# researches or checks. Every user may file requests; members of the hub group output-checkers
# review (SPE_OUTPUT_CHECKERS, or the demo's checkers; with OIDC the group comes from the
# identity provider); hub admins administer the airlock (see requests, download releases).
AIRLOCK_SCOPES = [SCOPE_REQUEST, SCOPE_REVIEW, SCOPE_ADMIN]
AIRLOCK_ACCESS = "access:services!service=airlock"
c.JupyterHub.custom_scopes = {
    SCOPE_REQUEST: {"description": "File export requests for your projects' outputs."},
    SCOPE_REVIEW: {"description": "Review export requests of projects you check."},
    SCOPE_ADMIN: {"description": "See every export request and download released bundles."},
    **CUSTOM_SCOPES,
}
DEMO_CHECKERS = ",".join(u for u, roles in DEMO_USERS.items() if "output_checker" in roles)
OUTPUT_CHECKERS = [u for u in env("SPE_OUTPUT_CHECKERS", DEMO_CHECKERS).split(",") if u]
c.JupyterHub.load_groups = {} if GROUPS_FROM_PROVIDER else {  # with OIDC: the provider's groups
    "output-checkers": {"users": OUTPUT_CHECKERS}}

# --- How workspaces start -----------------------------------------------------------------------
# One named server per project, named by the project slug; the default server is refused.
c.JupyterHub.allow_named_servers = True
c.JupyterHub.redirect_to_server = False  # after login, the home page lists the user's projects
c.JupyterHub.named_server_limit_per_user = int(env("SPE_NAMED_SERVER_LIMIT", "0"))
SPAWNERS = {"docker": "lnds_spe.hub.spawner.SPEDockerSpawner",
            "kube": "lnds_spe.hub.kube.SPEKubeSpawner"}
c.JupyterHub.spawner_class = SPAWNERS[env("SPE_SPAWNER", "docker")]
if engine_host():  # the Docker client of the spawner reads DOCKER_HOST
    os.environ["DOCKER_HOST"] = engine_host()  # $DOCKER_HOST, else scripts/engine-setup.sh's socket
c.SPEPolicyMixin.registry_url = REGISTRY_URL
c.SPEPolicyMixin.spe_state_dir = str(STATE)
c.SPEPolicyMixin.default_workspace_image = env("SPE_WORKSPACE_IMAGE")
c.SPEPolicyMixin.hub_port_for_workspaces = c.JupyterHub.hub_port
# Datasets are decrypted on the hub side with the SPE's private key (`spe keys init`; passphrase
# from SPE_KEY_PASSPHRASE, or the demo's generated one) into a per-server directory, verified
# against their manifest, and mounted read-only; before any key exists only plain data is served.
KEY_DIR = STATE / "keys"
if (KEY_DIR / PRIVATE_KEY_NAME).exists():
    c.SPEPolicyMixin.prepare_datasets = make_encrypted_preparer(
        registry_at(REGISTRY_URL), private_key_path=KEY_DIR / PRIVATE_KEY_NAME,
        passphrase=hub_passphrase(KEY_DIR, demo_mode=DEMO_MODE), plain_state_dir=STATE)
c.SPEDockerSpawner.prefix = env("SPE_CONTAINER_PREFIX")
c.SPEDockerSpawner.host_firewall = setting_on("SPE_HOST_FIREWALL")
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = int(env("SPE_START_TIMEOUT", "180"))
c.Spawner.http_timeout = int(env("SPE_HTTP_TIMEOUT", "120"))
ACTIVITY_INTERVAL = env("SPE_ACTIVITY_INTERVAL", "60")
c.Spawner.environment = {"JUPYTERHUB_ACTIVITY_INTERVAL": ACTIVITY_INTERVAL}
c.JupyterHub.last_activity_interval = int(env("SPE_HUB_ACTIVITY_INTERVAL", "300"))

# --- Services beside the hub --------------------------------------------------------------------
# The lifecycle enforcer stops workspaces of projects that expired or were suspended, or whose
# user lost the researcher role; the idle culler stops idle ones (and any past their max age).
SERVICE_ENV = {
    "SPE_STATE_DIR": str(STATE),
    "SPE_DATABASE_URL": REGISTRY_URL,
    "SPE_ENFORCE_EVERY": env("SPE_ENFORCE_EVERY", "20"),
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
}
# The airlock listens, like the hub API, on all addresses: workspaces (and checkers' review
# servers) reach it on their network's gateway, where the host firewall opens its port beside the
# hub's and nothing else; the proxy reaches it on loopback. Each server's own hub token
# (JUPYTERHUB_API_TOKEN) carries the airlock scope of its kind (SPEPolicyMixin.token_scopes: request
# in a project workspace, review in a review server), and the lab extension's server part calls
# the airlock with it; SPE_AIRLOCK_API_URL tells the server where the airlock is.
AIRLOCK_PORT = int(env("SPE_AIRLOCK_PORT", "8010"))
AIRLOCK_BIND_IP = env("SPE_AIRLOCK_BIND_IP", "0.0.0.0")
# Hub API and airlock listen on all addresses: the host firewall rejects new connections to their
# ports from anything but loopback and the project networks (whose own chains accept these two
# ports first), before either listens. The rules installed are the hub log's record (N8).
if c.JupyterHub.spawner_class == SPAWNERS["docker"] and c.SPEDockerSpawner.host_firewall:
    from lnds_spe.hub.firewall import guard_hub_ports

    for rule in guard_hub_ports(c.SPEDockerSpawner.prefix, [c.JupyterHub.hub_port, AIRLOCK_PORT],
                                os.getpid()):
        print(f"[spe] host firewall guards the hub's ports: {rule}", file=sys.stderr)
AIRLOCK_URL = f"http://127.0.0.1:{AIRLOCK_PORT}"
c.SPEPolicyMixin.airlock_port_for_workspaces = AIRLOCK_PORT
c.JupyterHub.services = [
    {"name": "airlock", "url": AIRLOCK_URL, "display": True, "oauth_no_confirm": True,
     "command": [sys.executable, "-m", "lnds_spe.services.airlock"],
     "environment": {**SERVICE_ENV, "SPE_AIRLOCK_BIND_IP": AIRLOCK_BIND_IP},
     "oauth_client_allowed_scopes": AIRLOCK_SCOPES},
    {"name": "spe-lifecycle", "command": [sys.executable, "-m", "lnds_spe.hub.enforcer"],
     "environment": SERVICE_ENV},
    {"name": "idle-culler", "command": [
        sys.executable, "-m", "jupyterhub_idle_culler",
        f"--timeout={env('SPE_CULL_IDLE_TIMEOUT', '3600')}",
        f"--cull-every={env('SPE_CULL_EVERY', '300')}",
        f"--max-age={env('SPE_CULL_MAX_AGE', '43200')}",
    ]},
]
# --- Who may do what in the hub ----------------------------------------------------------------
# JupyterHub's own admin role opens, shares and makes tokens for anyone's server, and load_roles
# cannot narrow it; so nobody is a JupyterHub admin, and SPE admins (ADMINS) hold spe-admin:
# users, servers seen and stopped, the admin console at /hub/spe-admin (lnds_spe/hub/roles.py).
# A project's project_admins see and stop (not open) the servers of its researchers' group.
c.JupyterHub.authenticator_class = without_hub_admins(c.JupyterHub.authenticator_class)
c.JupyterHub.extra_handlers = console_handlers(REGISTRY_URL, str(STATE))
start_project_access_sync(REGISTRY_URL)  # project-<slug> groups, project-admin-<slug> roles
c.JupyterHub.load_roles = [
    {**spe_admin_role(ADMINS), "groups": ADMIN_HUB_GROUPS},
    {"name": "user", "scopes": ["self", AIRLOCK_ACCESS, SCOPE_REQUEST]},
    {"name": "airlock-checker", "groups": ["output-checkers"], "scopes": [AIRLOCK_ACCESS, SCOPE_REVIEW]},
    {"name": "airlock-admin", "users": sorted(ADMINS), "groups": ADMIN_HUB_GROUPS,
     "scopes": [AIRLOCK_ACCESS, SCOPE_ADMIN]},
    {"name": "spe-lifecycle", "services": ["spe-lifecycle"],
     "scopes": ["list:users", "read:users", "read:servers", "delete:servers"]},
    {"name": "idle-culler", "services": ["idle-culler"],
     "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]},
]
