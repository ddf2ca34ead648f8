"""Pure decisions of the airlock proxy: which calls the lab may make, and where they go. No I/O."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import quote

KIND_WORKSPACE = "workspace"
KIND_REVIEW = "review"
ACTIONS = ("submit", "withdraw", "review", "return", "reject", "approve", "release")
_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,80}"

# (method, pattern of the path under the airlock's api/, server kinds allowed)
ROUTES: tuple[tuple[str, re.Pattern, frozenset[str]], ...] = tuple(
    (method, re.compile(pattern), frozenset(kinds)) for method, pattern, kinds in (
        ("GET", r"whoami", (KIND_WORKSPACE, KIND_REVIEW)),
        ("GET", r"requests", (KIND_WORKSPACE, KIND_REVIEW)),
        ("POST", r"requests", (KIND_WORKSPACE,)),
        ("GET", rf"requests/{_ID}", (KIND_WORKSPACE, KIND_REVIEW)),
        ("PATCH", rf"requests/{_ID}", (KIND_WORKSPACE,)),
        ("POST", rf"requests/{_ID}/files", (KIND_WORKSPACE,)),
        ("DELETE", rf"requests/{_ID}/files/.+", (KIND_WORKSPACE,)),
        ("GET", rf"requests/{_ID}/files/.+", (KIND_REVIEW,)),
        ("PUT", rf"requests/{_ID}/files/.+/vote", (KIND_REVIEW,)),
        ("POST", rf"requests/{_ID}/comments", (KIND_WORKSPACE, KIND_REVIEW)),
        ("POST", rf"requests/{_ID}/(submit|withdraw)", (KIND_WORKSPACE,)),
        ("POST", rf"requests/{_ID}/(review|return|reject|approve|release)", (KIND_REVIEW,)),
        ("GET", r"projects/[a-z][a-z0-9-]{0,29}/outputs", (KIND_WORKSPACE,)),
    ))


class ProxyRefused(Exception):
    """A call the lab may not make through this server."""


@dataclass(frozen=True)
class Settings:
    """What this server knows of itself: its kind, its project, the airlock's API URL."""

    kind: str
    project: str
    airlock_url: str


def check_call(method: str, path: str, settings: Settings) -> None:
    """Refuse a call outside the allow-list for this kind of server (ProxyRefused)."""
    if ".." in path.split("/") or path.startswith("/"):
        raise ProxyRefused(f"{path!r} is not an airlock API path")
    for allowed_method, pattern, kinds in ROUTES:
        if method == allowed_method and pattern.fullmatch(path):
            if settings.kind not in kinds:
                raise ProxyRefused(f"{method} {path} is not offered in a {settings.kind} server")
            if path.startswith("projects/") and path.split("/")[1] != settings.project:
                raise ProxyRefused(f"this workspace belongs to project {settings.project}")
            return
    if method == "GET" and re.fullmatch(rf"requests/{_ID}/release", path):
        raise ProxyRefused("released bundles are downloaded from the hub's airlock pages, "
                           "never into a workspace")
    raise ProxyRefused(f"{method} {path} is not an airlock call this extension makes")


def target_url(path: str, settings: Settings) -> str:
    """The airlock URL of an API path (each segment percent-encoded)."""
    if not settings.airlock_url:
        raise ProxyRefused("this server was not told where the airlock is (SPE_AIRLOCK_API_URL)")
    return settings.airlock_url.rstrip("/") + "/" + quote(path, safe="/")


def outgoing_body(method: str, path: str, body: bytes, settings: Settings) -> bytes:
    """The body sent on: a new request is always filed in this workspace's own project."""
    if method == "POST" and path == "requests":
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise ProxyRefused("the request body is not JSON") from None
        if not isinstance(data, dict):
            raise ProxyRefused("the request body is not a JSON object")
        data["project"] = settings.project
        return json.dumps(data).encode()
    return body
