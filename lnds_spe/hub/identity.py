"""Who a person is: the SPE's sign-in (OIDC, or per-person accounts), its decisions and audit.

Two authenticators, chosen by `authenticator_choice`:
- `SPEOIDCAuthenticator`: the institution's OpenID Connect provider (code flow with PKCE). The
  groups claim decides who may sign in, who is an admin and who checks outputs; an `acr`/`amr`
  claim can be required as proof of multi-factor sign-in. At each refresh (after
  `auth_refresh_age`, at the person's next request) the provider is asked again; a person it
  refuses, or whose groups no longer allow them, loses the session and their servers stop.
- `SPENativeAuthenticator`: per-person accounts with bcrypt-hashed passwords (NativeAuthenticator)
  when there is no provider. Sign-up is closed to the public: only admins create accounts, on the
  sign-up page or in an accounts file (SPE_ACCOUNTS_FILE, mode 600) provisioned at each start,
  where the first admin's account comes from. In demo mode that file is the demo's, one generated
  password per account.
A shared password (JupyterHub's shared-password authenticator) runs only in explicit demo mode.
Sign-in, refused sign-in, sign-out and revoked access are written to the audit log.
"""

import json
import os
import secrets
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import jwt
from jupyterhub.handlers.login import LogoutHandler
from jupyterhub.scopes import needs_scope
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator.handlers import LoginHandler as NativeLoginHandler
from nativeauthenticator.handlers import SignUpHandler
from nativeauthenticator.orm import UserInfo
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthLogoutHandler
from tornado import web
from traitlets import Bool, Set, Unicode
from traitlets.config import LoggingConfigurable

from lnds_spe.errors import SPEError
from lnds_spe.hub.spawner import registry_at

DEMO_MODE_ENV = "SPE_DEMO_MODE"
AUTHENTICATOR_ENV = "SPE_AUTHENTICATOR"
SHARED_PASSWORD = "shared-password"
AUTHENTICATORS = {
    "native": "lnds_spe.hub.identity.SPENativeAuthenticator",
    "oidc": "lnds_spe.hub.identity.SPEOIDCAuthenticator",
    SHARED_PASSWORD: SHARED_PASSWORD,
}
IDENTITY_SETTINGS = (  # what the functions below read from the settings (lnds_spe.config.setting)
    DEMO_MODE_ENV, AUTHENTICATOR_ENV, "SPE_ACCOUNTS_FILE", "SPE_SHARED_PASSWORD", "SPE_OIDC_ISSUER",
    "SPE_OIDC_CLIENT_ID",
    "SPE_OIDC_CLIENT_SECRET", "SPE_OIDC_CALLBACK_URL", "SPE_OIDC_EXTRA_SCOPES",
    "SPE_OIDC_USERNAME_CLAIM", "SPE_OIDC_GROUPS_CLAIM", "SPE_OIDC_ALLOWED_GROUPS",
    "SPE_OIDC_ADMIN_GROUPS", "SPE_OIDC_CHECKER_GROUPS", "SPE_OIDC_REQUIRE_MFA", "SPE_OIDC_MFA_ACR",
    "SPE_OIDC_REFRESH_AGE",
)
CHECKERS_GROUP = "output-checkers"  # the hub group the airlock's checker role is granted to
ADMINS_GROUP = "spe-admins"  # the hub group the SPE admin roles are granted to (with OIDC)


class IdentityConfigError(SPEError):
    """The hub's sign-in settings are unsafe or incomplete."""


def demo_mode_requested(environ: Mapping[str, str]) -> bool:
    """Whether the demo mode was asked for explicitly (SPE_DEMO_MODE=1)."""
    return environ.get(DEMO_MODE_ENV, "") == "1"


def authenticator_choice(setting: str, demo_mode: bool) -> str:
    """The authenticator class for SPE_AUTHENTICATOR (empty: per-person accounts), or a refusal."""
    name = setting or "native"
    if name == SHARED_PASSWORD and not demo_mode:
        raise IdentityConfigError(
            f"{AUTHENTICATOR_ENV}={SHARED_PASSWORD} lets anyone holding one password sign in under "
            f"any name: use {AUTHENTICATOR_ENV}=oidc or native, or set {DEMO_MODE_ENV}=1 to run "
            "the demo")
    if name not in AUTHENTICATORS:
        raise IdentityConfigError(f"{AUTHENTICATOR_ENV}={name!r} is not known: use one of "
                                  f"{', '.join(sorted(AUTHENTICATORS))}")
    return AUTHENTICATORS[name]


def shared_demo_password(environ: Mapping[str, str]) -> str:
    """The demo's shared password (SPE_SHARED_PASSWORD), or a refusal naming the setting."""
    password = environ.get("SPE_SHARED_PASSWORD", "")
    if len(password) < 12:
        raise IdentityConfigError(f"{AUTHENTICATOR_ENV}={SHARED_PASSWORD} needs SPE_SHARED_PASSWORD "
                                  "of at least 12 characters")
    return password


def auth_state_key(hub_state: Path) -> str:
    """The key that encrypts sign-in tokens in the hub database, made once (mode 600)."""
    path = hub_state / "auth_state.key"
    if not path.exists():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip()


# --- The decision: claims in, verdict out --------------------------------------------------------

@dataclass(frozen=True)
class IdentityPolicy:
    """What the provider's claims must show, and which of its groups mean what in the SPE."""

    groups_claim: str = "groups"
    allowed_groups: frozenset[str] = frozenset()  # empty: any group the SPE maps lets a person in
    admin_groups: frozenset[str] = frozenset()
    checker_groups: frozenset[str] = frozenset()
    require_mfa: bool = False
    mfa_acr_values: frozenset[str] = frozenset()  # an acr value that proves multi-factor sign-in
    mfa_amr_values: frozenset[str] = frozenset()  # or an amr method that does


@dataclass(frozen=True)
class IdentityDecision:
    """Whether a person may use the SPE, why not, and the roles their groups give them."""

    allowed: bool
    reason: str = ""
    admin: bool = False
    hub_groups: tuple[str, ...] = ()


def _strings(value) -> set[str]:
    """A claim read as a set of strings (a single string is one; anything else is none)."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, list | tuple):
        return {item for item in value if isinstance(item, str)}
    return set()


def identity_decision(claims: Mapping, policy: IdentityPolicy) -> IdentityDecision:
    """Allow or refuse a person from their provider's claims; their admin flag and hub groups."""
    groups = _strings(claims.get(policy.groups_claim))
    if policy.require_mfa:
        proven = (_strings(claims.get("acr")) & policy.mfa_acr_values
                  or _strings(claims.get("amr")) & policy.mfa_amr_values)
        if not proven:
            return IdentityDecision(False, "the identity provider did not confirm a multi-factor "
                                           "sign-in (acr/amr claim): sign in again with your "
                                           "second factor")
    known = policy.allowed_groups | policy.admin_groups | policy.checker_groups
    entry = policy.allowed_groups or known
    if not groups & entry:
        return IdentityDecision(False, f"your account is in none of the groups allowed to use "
                                       f"the SPE ({', '.join(sorted(entry)) or 'none configured'})"
                                       ": ask your institution's identity administrator")
    admin = bool(groups & policy.admin_groups)
    hub_groups = (groups & known
                  | ({CHECKERS_GROUP} if groups & policy.checker_groups else set())
                  | ({ADMINS_GROUP} if admin else set()))
    return IdentityDecision(True, admin=admin, hub_groups=tuple(sorted(hub_groups)))


def id_token_claims(token_response: Mapping, client_id: str) -> dict:
    """The ID token's claims, its audience checked. It came straight from the token endpoint, so
    its signature is not checked; nor its expiry: it is read for how the person signed in (acr,
    amr), while the access and refresh tokens decide whether the session still holds."""
    token = token_response.get("id_token")
    if not token:
        return {}
    return jwt.decode(token, audience=client_id,
                      options={"verify_signature": False, "verify_aud": True, "verify_exp": False})


def discovery(issuer: str) -> dict:
    """The provider's discovery document (/.well-known/openid-configuration)."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 (configured URL)
            return json.load(answer)
    except (OSError, ValueError) as error:
        raise IdentityConfigError(f"the OIDC provider's discovery document {url} cannot be read "
                                  f"({error}): check SPE_OIDC_ISSUER and that the provider is up "
                                  "before the hub starts") from None


# --- Audit ----------------------------------------------------------------------------------------

class AuditedSignInMixin(LoggingConfigurable):
    """Sign-in, refused sign-in and sign-out written to the registry's audit log."""

    registry_url = Unicode("", config=True, help="The SPE registry whose audit log records sign-ins.")

    def audit(self, actor: str, action: str, *, outcome: str = "ok", details: dict | None = None):
        """Append one audit event about a person's session."""
        registry_at(self.registry_url).audit.append(actor or "(unknown)", action, target=actor,
                                                    outcome=outcome, details=details)

    async def get_authenticated_user(self, handler, data):
        """Authenticate as the base class does; audit the outcome."""
        try:
            model = await super().get_authenticated_user(handler, data)
        except SignInRefused as refusal:
            self.audit(refusal.username, "auth.login_refused", outcome="denied",
                       details={"reason": refusal.reason})
            raise
        if model is None:
            attempted = (data or {}).get("username", "") if isinstance(data, dict) else ""
            self.audit(attempted, "auth.login_failed", outcome="denied",
                       details={"reason": "wrong user name, password or second factor"})
        else:
            self.audit(model["name"], "auth.login", details={"admin": bool(model.get("admin"))})
        return model


class AuditedLogoutMixin:
    """A logout handler that records the sign-out."""

    async def default_handle_logout(self):
        """Log out as JupyterHub does, then audit it."""
        user = self.current_user
        await super().default_handle_logout()
        if user is not None:
            self.authenticator.audit(user.name, "auth.logout")


class SignInRefused(web.HTTPError):
    """A person the provider vouched for whom the SPE's policy refuses (403 with the reason)."""

    def __init__(self, username: str, reason: str):
        super().__init__(403, f"{username}: {reason}")
        self.username = username
        self.reason = reason
        self.reason_phrase = None


# --- OIDC -----------------------------------------------------------------------------------------

class SPEOAuthLogoutHandler(AuditedLogoutMixin, OAuthLogoutHandler):
    """OAuthenticator's logout, audited."""


class SPEOIDCAuthenticator(AuditedSignInMixin, GenericOAuthenticator):
    """GenericOAuthenticator deciding with `identity_decision`, ending access the provider revokes."""

    logout_handler = SPEOAuthLogoutHandler
    groups_claim = Unicode("groups", config=True, help="The claim that lists a person's groups.")
    checker_groups = Set(config=True, help="Provider groups whose members check outputs.")
    require_mfa = Bool(False, config=True, help="Refuse sign-ins without a multi-factor acr/amr.")
    mfa_acr_values = Set(config=True, help="acr values that prove a multi-factor sign-in.")
    mfa_amr_values = Set({"mfa", "otp", "hwk", "swk"}, config=True,
                         help="amr methods that prove a multi-factor sign-in.")

    @property
    def policy(self) -> IdentityPolicy:
        """The configured policy as plain values."""
        return IdentityPolicy(
            groups_claim=self.groups_claim,
            allowed_groups=frozenset(self.allowed_groups), admin_groups=frozenset(self.admin_groups),
            checker_groups=frozenset(self.checker_groups), require_mfa=self.require_mfa,
            mfa_acr_values=frozenset(self.mfa_acr_values),
            mfa_amr_values=frozenset(self.mfa_amr_values))

    def claims_of(self, auth_model: Mapping) -> dict:
        """The ID token's claims overlaid with userinfo's (fresher: read at each refresh)."""
        state = auth_model.get("auth_state") or {}
        return {**id_token_claims(state.get("token_response") or {}, self.client_id),
                **(state.get(self.user_auth_state_key) or {})}

    async def update_auth_model(self, auth_model):
        """Record the decision in the auth state: admin flag and hub groups come from it."""
        decision = identity_decision(self.claims_of(auth_model), self.policy)
        auth_model["auth_state"]["spe_hub_groups"] = list(decision.hub_groups)
        if decision.admin:
            auth_model["admin"] = True
        return auth_model

    async def get_user_groups(self, auth_state):
        """The hub groups `identity_decision` gave (refreshed at each sign-in and refresh)."""
        return set(auth_state.get("spe_hub_groups", []))

    async def check_allowed(self, username, auth_model):
        """Allow what `identity_decision` allows; otherwise refuse with its reason (403)."""
        if auth_model is None:
            return True
        decision = identity_decision(self.claims_of(auth_model), self.policy)
        if not decision.allowed:
            raise SignInRefused(username, decision.reason)
        return True

    async def get_authenticated_user(self, handler, data):
        """Sign in; a person now refused who still has servers running has them stopped."""
        try:
            return await super().get_authenticated_user(handler, data)
        except SignInRefused as refusal:
            user = handler.find_user(refusal.username) if handler is not None else None
            if user is not None and any(spawner.active for spawner in user.spawners.values()):
                await self.end_access(user, handler, refusal.reason)
            raise

    async def refresh_user(self, user, handler=None, **kwargs):
        """Ask the provider again; if it or the policy refuses, end the session and stop servers."""
        refreshed = await super().refresh_user(user, handler, **kwargs)
        if refreshed is True:
            return True
        if refreshed is False:
            reason = "the identity provider no longer accepts this person's session"
        else:
            decision = identity_decision(self.claims_of(refreshed), self.policy)
            if decision.allowed:
                return refreshed
            reason = decision.reason
        await self.end_access(user, handler, reason)
        return False

    async def end_access(self, user, handler, reason: str) -> None:
        """Stop the person's running servers and audit the revoked access."""
        running = [name for name, spawner in user.spawners.items() if spawner.active]
        self.audit(user.name, "auth.access_revoked", outcome="denied",
                   details={"reason": reason, "stopped_servers": sorted(running)})
        for name in running:
            if handler is not None:
                await handler.stop_single_user(user, name)
            else:
                await user.stop(name)


def check_oidc_settings(environ: Mapping[str, str]) -> str:
    """The issuer URL, or a refusal naming the SPE_OIDC_* settings that are missing."""
    missing = [name for name in ("SPE_OIDC_ISSUER", "SPE_OIDC_CLIENT_ID", "SPE_OIDC_CLIENT_SECRET")
               if not environ.get(name)]
    if missing:
        raise IdentityConfigError(f"{AUTHENTICATOR_ENV}=oidc needs {', '.join(missing)}: set "
                                  "them to the provider's issuer URL and this hub's client")
    return environ["SPE_OIDC_ISSUER"]


def oidc_settings(environ: Mapping[str, str], hub_url: str, document: Mapping) -> dict:
    """SPEOIDCAuthenticator's settings from SPE_OIDC_* (unset or empty: the default) and the
    provider's discovery document."""
    check_oidc_settings(environ)

    def names(var: str, default: str = "") -> set[str]:
        return {name for name in (environ.get(var) or default).split(",") if name}

    return {
        "authorize_url": document["authorization_endpoint"],
        "token_url": document["token_endpoint"],
        "userdata_url": document["userinfo_endpoint"],
        "client_id": environ["SPE_OIDC_CLIENT_ID"],
        "client_secret": environ["SPE_OIDC_CLIENT_SECRET"],
        "oauth_callback_url": environ.get("SPE_OIDC_CALLBACK_URL") or f"{hub_url}/hub/oauth_callback",
        "scope": ["openid", "profile", *names("SPE_OIDC_EXTRA_SCOPES", "groups")],
        "username_claim": environ.get("SPE_OIDC_USERNAME_CLAIM") or "preferred_username",
        "groups_claim": environ.get("SPE_OIDC_GROUPS_CLAIM") or "groups",
        "allowed_groups": names("SPE_OIDC_ALLOWED_GROUPS"),
        "admin_groups": names("SPE_OIDC_ADMIN_GROUPS"),
        "checker_groups": names("SPE_OIDC_CHECKER_GROUPS", CHECKERS_GROUP),
        "require_mfa": environ.get("SPE_OIDC_REQUIRE_MFA", "") == "1",
        "mfa_acr_values": names("SPE_OIDC_MFA_ACR"),
        "manage_groups": True,
        "enable_auth_state": True,
        "enable_pkce": True,
        "auth_refresh_age": int(environ.get("SPE_OIDC_REFRESH_AGE") or 300),
        "auth_refresh_strict": True,  # API tokens of a person the provider refuses stop working too
        "refresh_pre_spawn": True,
        "extra_authorize_params": {"prompt": "login"},  # no silent sign-in after a sign-out
    }


# --- Per-person accounts without a provider --------------------------------------------------------

class AdminSignUpHandler(SignUpHandler):
    """NativeAuthenticator's sign-up page, for admins creating accounts only."""

    @needs_scope("admin:users")
    async def get(self):
        return await super().get()

    @needs_scope("admin:users")
    async def post(self):
        return await super().post()


class SPENativeLoginHandler(NativeLoginHandler):
    """NativeAuthenticator's login page; its POST without the statsd timer JupyterHub 5 removed."""

    async def post(self):
        data = {name: self.get_argument(name, strip=False) for name in self.request.arguments}
        user = await self.login_user(data)
        if user:
            self._jupyterhub_user = user
            self.redirect(self.get_next_url(user))
            return
        self.finish(await self._render(login_error="Invalid user name, password or 2FA code.",
                                       username=data.get("username", "")))


class AuditedLogoutHandler(AuditedLogoutMixin, LogoutHandler):
    """JupyterHub's logout, audited."""


class SPENativeAuthenticator(AuditedSignInMixin, NativeAuthenticator):
    """Per-person accounts (bcrypt), created by admins; the demo's provisioned in demo mode."""

    accounts_file = Unicode("", config=True, help="JSON file {\"passwords\": {name: password}} of "
                                                  "accounts to provision (the demo's, or an admin's).")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.accounts_file:
            self.provision(read_accounts(Path(self.accounts_file)))

    def get_handlers(self, app):
        """Native handlers with an admins-only sign-up page, a working login and an audited logout."""
        ours = {r"/signup": AdminSignUpHandler, r"/login": SPENativeLoginHandler}
        handlers = [(path, ours.get(path, handler)) for path, handler in super().get_handlers(app)]
        return [(r"/logout", AuditedLogoutHandler), *handlers]

    def create_user(self, username, password, **kwargs):
        """An account made by an admin on the sign-up page is authorized at once."""
        info = super().create_user(username, password, **kwargs)
        if info is not None and not info.is_authorized:
            info.is_authorized = True
            self.db.commit()
        return info

    def provision(self, passwords: Mapping[str, str]) -> None:
        """Make each (name, password) an authorized account; reset a password that differs."""
        for username, password in passwords.items():
            name = self.normalize_username(username)
            info = UserInfo.find(self.db, name)
            if info is None:
                self.db.add(UserInfo(username=name, is_authorized=True,
                                     password=bcrypt.hashpw(password.encode(), bcrypt.gensalt())))
            elif not info.is_valid_password(password):
                info.password = bcrypt.hashpw(password.encode(), bcrypt.gensalt())
        self.db.commit()


def read_accounts(path: Path) -> dict[str, str]:
    """The {name: password} of an accounts file, refused if others may read it or it is malformed."""
    try:
        if path.stat().st_mode & 0o077:
            raise IdentityConfigError(f"{path} holds passwords and others may read it: chmod 600 it")
        passwords = json.loads(path.read_text()).get("passwords")
    except (OSError, ValueError, AttributeError) as error:
        raise IdentityConfigError(f"{path} cannot be read as an accounts file ({error}): it must "
                                  'be JSON {"passwords": {"name": "password", ...}}') from None
    if not isinstance(passwords, dict) or not all(
            isinstance(name, str) and isinstance(word, str) and word for name, word in passwords.items()):
        raise IdentityConfigError(f'{path} must be JSON {{"passwords": {{"name": "password", ...}}}}')
    return passwords


def native_settings(accounts_file: str | None) -> dict:
    """SPENativeAuthenticator's settings: sign-up closed, lockout, optional TOTP, demo accounts."""
    return {
        "enable_signup": True,  # the sign-up page exists, for admins only (AdminSignUpHandler)
        "open_signup": False,
        "allow_all": True,  # only authorized accounts authenticate; the registry gates workspaces
        "allow_2fa": True,
        "minimum_password_length": 10,
        "check_common_password": True,
        "allowed_failed_logins": 5,
        "seconds_before_next_try": 60,
        "accounts_file": accounts_file or "",
    }
