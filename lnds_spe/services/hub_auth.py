"""Sign-in through the hub for a FastAPI service: API tokens in the Authorization header, and for
browsers JupyterHub's OAuth code flow ending in an HttpOnly cookie, with a CSRF token per session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import HTTPException, Request
from fastapi.responses import RedirectResponse
from jupyterhub.services.auth import HubOAuth

STATE_COOKIE = "spe-oauth-state"
TOKEN_COOKIE = "spe-token"


@dataclass(frozen=True)
class HubUser:
    """A user the hub vouched for, with the scopes of the token they used."""

    name: str
    scopes: frozenset[str]
    token: str
    from_cookie: bool


class NotSignedIn(Exception):
    """No valid hub token came with the request."""


class HubSignIn:
    """Identify callers with the hub; make and check CSRF tokens for cookie sessions."""

    def __init__(self, hub_auth: HubOAuth | None = None):
        self.hub_auth = hub_auth or HubOAuth()
        self._csrf_key = secrets.token_bytes(32)

    async def user(self, request: Request) -> HubUser:
        """The caller from `Authorization: token|Bearer …`, else from the session cookie."""
        header = request.headers.get("authorization", "")
        match = self.hub_auth.auth_header_pat.match(header)
        token, from_cookie = (match.group(1), False) if match else (request.cookies.get(TOKEN_COOKIE),
                                                                    True)
        if not token:
            raise NotSignedIn("no token: sign in through the hub, or send Authorization: token <token>")
        model = await self.hub_auth.user_for_token(token, sync=False)
        if not model or model.get("kind", "user") != "user" or not model.get("name"):
            raise NotSignedIn("the hub does not know this token: sign in again")
        scopes = frozenset(model.get("scopes", ()))
        if not (self.hub_auth.access_scopes & scopes) and "access:services" not in scopes:
            raise NotSignedIn(f"this token does not grant access to the service: ask for "
                              f"{sorted(self.hub_auth.access_scopes)}")
        return HubUser(model["name"], scopes, token, from_cookie)

    def csrf_token(self, user: HubUser) -> str:
        """A token bound to the session's hub token, put in every form."""
        return hmac.new(self._csrf_key, user.token.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, user: HubUser, supplied: str | None) -> None:
        """Cookie sessions must echo their CSRF token on every change; header tokens need not."""
        if user.from_cookie and not hmac.compare_digest(self.csrf_token(user), supplied or ""):
            raise HTTPException(403, "the form's security token is missing or stale: reload the page")

    def login_redirect(self, next_url: str) -> RedirectResponse:
        """Send a browser to the hub's authorize page, remembering where it was going."""
        state = self.hub_auth.generate_state(next_url)
        query = urlencode({"client_id": self.hub_auth.oauth_client_id,
                           "redirect_uri": self.hub_auth.oauth_redirect_uri,
                           "response_type": "code", "state": state})
        response = RedirectResponse(f"{self.hub_auth.oauth_authorization_url}?{query}", 302)
        response.set_cookie(STATE_COOKIE, state, httponly=True, samesite="lax",
                            path=self.hub_auth.base_url, max_age=self.hub_auth.oauth_state_max_age)
        return response

    async def callback(self, request: Request) -> RedirectResponse:
        """End the OAuth flow: check the state against the browser's cookie, get the token."""
        state = request.query_params.get("state", "")
        code = request.query_params.get("code", "")
        if not code or not state or not hmac.compare_digest(state, request.cookies.get(STATE_COOKIE, "")):
            raise HTTPException(400, "sign-in failed: the OAuth state does not match this browser; "
                                     "start again from the service's page")
        next_url = self.hub_auth.get_next_url(state) or self.hub_auth.base_url
        self.hub_auth.clear_oauth_state(state)
        token = await self.hub_auth.token_for_code(code, sync=False)
        if not next_url.startswith(self.hub_auth.base_url):
            next_url = self.hub_auth.base_url
        response = RedirectResponse(next_url, 302)
        response.delete_cookie(STATE_COOKIE, path=self.hub_auth.base_url)
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict",
                            path=self.hub_auth.base_url,
                            secure=request.url.scheme == "https")
        return response
