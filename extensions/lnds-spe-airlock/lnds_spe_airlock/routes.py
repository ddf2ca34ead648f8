"""Tornado handlers: the lab's airlock calls, forwarded with the server's hub token."""

from __future__ import annotations

import json
import os

import tornado
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .proxy import KIND_REVIEW, KIND_WORKSPACE, ProxyRefused, Settings, check_call, outgoing_body, target_url

NAMESPACE = "lnds-spe-airlock"
UNREACHABLE = ("the airlock service is unreachable from this server: try again in a minute; if "
               "it persists, tell an administrator")


def settings_from_env(env: dict[str, str]) -> Settings:
    """This server's kind, project and airlock URL, as the spawner set them."""
    kind = env.get("SPE_SERVER_KIND", KIND_WORKSPACE)
    return Settings(kind=kind if kind in (KIND_WORKSPACE, KIND_REVIEW) else KIND_WORKSPACE,
                    project=env.get("SPE_PROJECT", ""), airlock_url=env.get("SPE_AIRLOCK_API_URL", ""))


class ConfigHandler(APIHandler):
    """What the lab needs to know: this server's kind and project, and whether an airlock is set."""

    @tornado.web.authenticated
    def get(self):
        settings: Settings = self.settings["lnds_spe_airlock"]
        self.finish(json.dumps({"kind": settings.kind, "project": settings.project,
                                "configured": bool(settings.airlock_url)}))


class AirlockHandler(APIHandler):
    """One allow-listed airlock API call, sent on with this server's token."""

    async def _forward(self, path: str) -> None:
        settings: Settings = self.settings["lnds_spe_airlock"]
        method = self.request.method
        try:
            check_call(method, path, settings)
            url = target_url(path, settings)
            body = outgoing_body(method, path, self.request.body, settings)
        except ProxyRefused as refused:
            self.set_status(403 if settings.airlock_url else 503)
            self.finish(json.dumps({"detail": str(refused)}))
            return
        token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
        headers = {"Authorization": f"token {token}", "Accept": "application/json"}
        if method in ("POST", "PUT", "PATCH"):
            headers["Content-Type"] = "application/json"
        request = HTTPRequest(url, method=method, headers=headers,
                              body=body if method in ("POST", "PUT", "PATCH") else None,
                              request_timeout=120, follow_redirects=False)
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, HTTPClientError) as error:
            self.log.warning("lnds_spe_airlock: %s %s failed: %s", method, url, error)
            self.set_status(502)
            self.finish(json.dumps({"detail": UNREACHABLE}))
            return
        if response.code == 599:
            self.set_status(502)
            self.finish(json.dumps({"detail": UNREACHABLE}))
            return
        self.set_status(response.code)
        content_type = response.headers.get("Content-Type", "application/json")
        self.set_header("Content-Type", content_type)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "default-src 'none'; sandbox")
        self.finish(response.body or b"")

    @tornado.web.authenticated
    async def get(self, path: str):
        await self._forward(path)

    @tornado.web.authenticated
    async def post(self, path: str):
        await self._forward(path)

    @tornado.web.authenticated
    async def put(self, path: str):
        await self._forward(path)

    @tornado.web.authenticated
    async def patch(self, path: str):
        await self._forward(path)

    @tornado.web.authenticated
    async def delete(self, path: str):
        await self._forward(path)


def setup_handlers(web_app, log=None) -> None:
    """Mount the handlers under <base_url>lnds-spe-airlock/."""
    web_app.settings["lnds_spe_airlock"] = settings_from_env(dict(os.environ))
    web_app.settings["lnds_spe_airlock_url"] = web_app.settings["lnds_spe_airlock"].airlock_url
    base = url_path_join(web_app.settings["base_url"], NAMESPACE)
    web_app.add_handlers(".*$", [
        (url_path_join(base, "config"), ConfigHandler),
        (url_path_join(base, "api", "(.+)"), AirlockHandler),
    ])
