"""Jupyter server extension (runs inside the workspace): raw files never leave it (case E1).

Results leave a workspace only through an export request (the airlock), reviewed by two output
checkers. This extension refuses, with HTTP 403, every route of the Jupyter server that hands a
file out as a file:

- the raw-file routes `/files/...` and `/view/...` (the lab's Download and "Open in New Browser
  Tab" use them), with any method, HEAD included;
- any request carrying a `download` query parameter, whatever its value or letter case (Jupyter
  turns `download=<anything>` into an attachment);
- every nbconvert route `/nbconvert/...` ("Save and Export Notebook As");
- the contents API handing out a file's bytes: `/api/contents/...?format=base64`, and any contents
  answer that would carry base64 content (a binary file asked for without a format).

Notebooks and text files still open and save in the lab: the contents API with `format=text`,
notebooks as JSON, directory listings, and every PUT/PATCH/POST keep working.

The decision is the pure function `refusal(method, path, query, base_url)`, applied to the path
as the server would see it after percent-decoding (repeatedly), with repeated and trailing slashes
collapsed and dot segments resolved, so that `/%66iles/`, `//files`, `/lab/../files` and
`?DOWNLOAD=1` are refused like their plain forms. The tornado plumbing below wraps the server's
`find_handler`: a refused request never reaches the route it asked for.

Each refusal is logged by this server (container log, `lnds_spe.egress refused ...`). The hub's
hash-chained audit log is not written from here: this code runs inside the untrusted container,
as the same user as the researcher's kernels, so it cannot hold a credential for the audit log,
and what it logs is only as trustworthy as the container.
"""

from __future__ import annotations

import ctypes
import json
import os
import posixpath
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

MESSAGE = ("Files cannot be downloaded from a workspace. Results leave only through an export "
           "request (the airlock): put the file in ~/outputs and request its export; two output "
           "checkers review it before it is released.")

RAW_FILE_ROUTES = frozenset({"files", "view", "nbconvert"})
MAX_DECODE_ROUNDS = 8


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: a short rule name and a sentence for the log."""

    rule: str
    detail: str


def _decoded_forms(text: str) -> list[str]:
    """The text and each successive percent-decoding of it, until it stops changing (at most
    MAX_DECODE_ROUNDS decodings: check `_over_encoded` for what is left)."""
    forms = [text]
    for _ in range(MAX_DECODE_ROUNDS):
        decoded = unquote(forms[-1], errors="replace")
        if decoded == forms[-1]:
            break
        forms.append(decoded)
    return forms


def _over_encoded(text: str) -> bool:
    """True if the text still changes after MAX_DECODE_ROUNDS percent-decodings."""
    last = _decoded_forms(text)[-1]
    return unquote(last, errors="replace") != last


def normalize_segments(path: str) -> list[str]:
    """Path segments with empty ones dropped (`//`, trailing `/`) and `.`/`..` resolved."""
    resolved = posixpath.normpath("/" + path.replace("\\", "/"))
    return [segment for segment in resolved.split("/") if segment]


def _relative(segments: list[str], base: list[str]) -> list[str]:
    """Segments below the server's base URL (case-insensitive prefix), else all of them."""
    lowered = [segment.lower() for segment in segments]
    if base and lowered[:len(base)] == base:
        return lowered[len(base):]
    return lowered


def _query_pairs(query: str) -> list[tuple[str, str]]:
    """Query parameters (decoded, as the server parses them) with lower-case, stripped names."""
    pairs = []
    for form in _decoded_forms(query)[:2]:  # as sent, and once more decoded (double encoding)
        pairs += [(name.strip().lower(), value.strip().lower())
                  for name, value in parse_qsl(form, keep_blank_values=True)]
    return pairs


def _is_contents_api(rel: list[str]) -> bool:
    """True for the contents API (`api/contents/...`, wherever it is mounted)."""
    return any(rel[i:i + 2] == ["api", "contents"] for i in range(len(rel)))


def refusal(method: str, path: str, query: str = "", base_url: str = "/") -> Refusal | None:
    """Whether a request to the workspace's Jupyter server hands out a file; None if allowed.

    `path` is the URL path as received (still percent-encoded), `query` the raw query string,
    `base_url` the server's prefix (e.g. `/user/alice/cohort/`). Pure: no I/O.
    """
    base = [segment.lower() for segment in normalize_segments(base_url)]
    for name, _ in _query_pairs(query):
        if name == "download":
            return Refusal("download-parameter", f"{method} {path}: a `download` parameter")
    if _over_encoded(path):
        return Refusal("over-encoded", f"{method} {path}: still encoded after "
                       f"{MAX_DECODE_ROUNDS} decodings")
    for form in _decoded_forms(path):
        rel = _relative(normalize_segments(form), base)
        if rel and rel[0] in RAW_FILE_ROUTES:
            return Refusal(f"{rel[0]}-route", f"{method} {path}: the /{rel[0]}/ route")
        if _is_contents_api(rel) and any(name == "format" and value == "base64"
                                         for name, value in _query_pairs(query)):
            return Refusal("contents-base64", f"{method} {path}: contents as base64")
    return None


def model_hands_out_bytes(model: dict) -> bool:
    """True if a contents API answer carries a file's content as base64 (a binary file)."""
    return (model.get("type") == "file" and model.get("format") == "base64"
            and model.get("content") is not None)


def refusal_body(rule: str) -> str:
    """The JSON body of a refusal (the shape of Jupyter's API errors)."""
    return json.dumps({"message": MESSAGE, "reason": f"egress refused ({rule})"})


# --- Tornado plumbing (only imported inside the Jupyter server) -------------------------------

def _caller(handler) -> str:
    """The authenticated caller's name if the server already knows it, for the log."""
    user = getattr(handler, "_jupyter_current_user", None)
    return getattr(user, "username", None) or "unauthenticated-or-unknown"


def _log_refusal(log, rule: str, request, caller: str) -> None:
    """One log line per refusal (the server's own log: the container's output)."""
    log.warning("lnds_spe.egress refused rule=%s owner=%s caller=%s method=%s uri=%s "
                "remote_ip=%s", rule, os.environ.get("JUPYTERHUB_USER", "?"), caller,
                request.method, request.uri, request.remote_ip)


def _refused_handler_class():
    """A handler that answers every method with the 403 refusal."""
    from jupyter_server.base.handlers import JupyterHandler

    class EgressRefusedHandler(JupyterHandler):
        """Answers 403 with the airlock message, whatever the method."""

        SUPPORTED_METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")

        def initialize(self, rule: str) -> None:
            self.rule = rule

        def check_xsrf_cookie(self) -> None:
            """Nothing is done for anyone: no XSRF check needed to refuse."""

        async def prepare(self) -> None:
            caller = "unauthenticated-or-unknown"
            try:
                user = self.identity_provider.get_user(self)
                if hasattr(user, "__await__"):
                    user = await user
                caller = getattr(user, "username", None) or caller
            except Exception:  # noqa: BLE001 - the refusal never depends on who asks
                pass
            _log_refusal(self.log, self.rule, self.request, caller)
            self.set_status(403)
            self.set_header("Content-Type", "application/json")
            self.set_header("Cache-Control", "no-store")
            self.finish("" if self.request.method == "HEAD" else refusal_body(self.rule))

    return EgressRefusedHandler


_GUARDED: dict[type, type] = {}


def _guarded_contents_class(handler_class: type) -> type:
    """The contents handler class, refusing any answer that carries base64 content."""
    if handler_class not in _GUARDED:
        def _finish_model(self, model, location=True):
            if model_hands_out_bytes(model):
                _log_refusal(self.log, "contents-binary", self.request, _caller(self))
                self.set_status(403)
                self.set_header("Content-Type", "application/json")
                self.finish(refusal_body("contents-binary"))
                return
            handler_class._finish_model(self, model, location)

        _GUARDED[handler_class] = type(f"EgressGuarded{handler_class.__name__}",
                                       (handler_class,), {"_finish_model": _finish_model})
    return _GUARDED[handler_class]


def install(web_app, base_url: str) -> None:
    """Wrap the tornado application's routing with the egress decision."""
    from jupyter_server.services.contents.handlers import ContentsHandler

    refused_class = _refused_handler_class()
    route = web_app.find_handler

    def find_handler(request, **kwargs):
        verdict = refusal(request.method or "", request.path, request.query, base_url)
        if verdict is not None:
            return web_app.get_handler_delegate(request, refused_class, {"rule": verdict.rule})
        delegate = route(request, **kwargs)
        handler_class = getattr(delegate, "handler_class", None)
        if isinstance(handler_class, type) and issubclass(handler_class, ContentsHandler):
            delegate.handler_class = _guarded_contents_class(handler_class)
        return delegate

    web_app.find_handler = find_handler


def _ensure_notary_folder(serverapp) -> None:
    """Create the notebook-trust folder if missing (the image moves Jupyter's data directory out
    of the home volume and points the notary back at one in it; without the folder, opening a
    notebook fails)."""
    folder = getattr(getattr(serverapp.contents_manager, "notary", None), "data_dir", None)
    if folder:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as error:
            serverapp.log.warning("lnds_spe: cannot create %s: %s", folder, error)


PR_SET_DUMPABLE = 4


def make_undumpable() -> None:
    """Keep the researcher's processes (same uid) out of this server's memory: a non-dumpable
    process's /proc/<pid>/mem, environ and fds are root's, so the guard cannot be patched from a
    kernel. Kernels are started with execve, which makes them dumpable again."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def _load_jupyter_server_extension(serverapp) -> None:
    """Refuse raw-file egress in this Jupyter server, and keep its memory out of reach."""
    make_undumpable()
    install(serverapp.web_app, serverapp.base_url)
    _ensure_notary_folder(serverapp)
    serverapp.log.info("lnds_spe: raw file downloads refused (/files, /view, /nbconvert, "
                       "download=, binary contents); results leave through the airlock")


def _jupyter_server_extension_points() -> list[dict]:
    """The extension point Jupyter server looks for."""
    return [{"module": "lnds_spe.workspace.egress"}]
