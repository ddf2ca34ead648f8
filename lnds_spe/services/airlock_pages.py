"""The airlock's pages in the hub: server-rendered HTML over the Airlock, without any script.

Browsers sign in through the hub's OAuth (HubSignIn) and every form echoes the session's CSRF
token. Checkers preview frozen files through Airlock.open_file (audited); requesters see names,
hashes and findings only, since nothing leaves the airlock unreviewed.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qsl

import pandas as pd
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.concurrency import run_in_threadpool

from lnds_spe.airlock import policies
from lnds_spe.airlock.enums import FileKind, Vote
from lnds_spe.airlock.exceptions import AirlockError
from lnds_spe.airlock.service import Airlock, Caller
from lnds_spe.services.airlock_api import caller_of, list_outputs, status_of
from lnds_spe.services.hub_auth import HubSignIn, HubUser, NotSignedIn

TEMPLATES = Path(__file__).parent / "templates" / "airlock"
CSRF_FIELD = "csrf_token"
MAX_FORM_BYTES = 64 * 1024
PREVIEW_ROWS = 500
PREVIEW_TEXT_BYTES = 200_000
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".svg"})
VOTE_LABELS = {Vote.APPROVE: "Approve", Vote.CHANGES_REQUESTED: "Changes requested",
               Vote.REJECT: "Reject"}
# The request's buttons: page path -> (Airlock method, `can` flag that shows it, label).
ACTIONS = {
    "submit": ("submit", "submit", "Submit for review"),
    "withdraw": ("withdraw", "withdraw", "Withdraw the request"),
    "review": ("submit_review", "submit_review", "Submit my review"),
    "return": ("return_request", "return", "Return to the requester for changes"),
    "reject": ("reject", "reject", "Reject the request"),
    "approve": ("approve", "approve", "Approve the request"),
    "release": ("release", "release", "Release the approved outputs"),
}


def security_headers(nonce: str) -> dict[str, str]:
    """No script at all; the one inline style block carries the response's nonce."""
    return {"Content-Security-Policy": f"default-src 'none'; style-src 'nonce-{nonce}'; "
                                       "img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                                       "base-uri 'none'",
            "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin", "Cache-Control": "no-store"}


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body (the only kind these pages send; none is an empty form), bounded."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, f"the form is above {MAX_FORM_BYTES} bytes: shorten the text")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if body and kind != "application/x-www-form-urlencoded":
        raise HTTPException(415, "send the page's form (application/x-www-form-urlencoded)")
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        raise HTTPException(400, "the form is not UTF-8") from None


def table_separator(name: str, head: bytes) -> str | None:
    """The separator lnds_spe.sdc.check_file reads this file's table with, or None."""
    suffix = Path(name).suffix.lower()
    if suffix == ".csv":
        return ","
    if suffix == ".tsv" or (suffix == ".txt" and b"\t" in head[:4096]):
        return "\t"
    return None


def preview(path: Path, name: str, flagged: dict[str, list[list[int]]]) -> dict:
    """What a checker sees of a frozen file: a table with flagged cells, text, an image, or none."""
    if Path(name).suffix.lower() in IMAGE_SUFFIXES:
        return {"kind": "image"}
    with open(path, "rb") as handle:
        data = handle.read(PREVIEW_TEXT_BYTES + 1)
    separator = table_separator(name, data)
    if separator is not None:
        try:
            # Read as check_file does (pandas, blank lines skipped) so flagged positions match.
            table = pd.read_csv(path, sep=separator, dtype=str, keep_default_na=False,
                                nrows=PREVIEW_ROWS + 1)
        except (ValueError, pd.errors.ParserError):
            separator = None
        else:
            rules_at: dict[tuple[int, int], list[str]] = {}
            for rule, cells in sorted(flagged.items()):
                for row, col in cells:
                    rules_at.setdefault((row, col), []).append(rule)
            rows = [[{"value": value, "rules": rules_at.get((i, j), [])}
                     for j, value in enumerate(values)]
                    for i, values in enumerate(table.head(PREVIEW_ROWS).itertuples(index=False))]
            return {"kind": "table", "columns": [str(c) for c in table.columns], "rows": rows,
                    "truncated": len(table) > PREVIEW_ROWS,
                    "hidden_flags": sum(1 for row, _ in rules_at if row >= PREVIEW_ROWS)}
    text = data[:PREVIEW_TEXT_BYTES].decode("utf-8", errors="replace")
    if "\x00" in text:
        return {"kind": "binary"}
    return {"kind": "text", "text": text, "truncated": len(data) > PREVIEW_TEXT_BYTES}


def pages_router(airlock: Airlock, sign_in: HubSignIn, prefix: str) -> APIRouter:
    """The list page at `prefix`, request pages at `prefix`requests/<id>, and their forms."""
    templates = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                            undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    router = APIRouter(include_in_schema=False)

    def render(template: str, user: HubUser, status: int = 200, **context) -> HTMLResponse:
        nonce = secrets.token_urlsafe(18)
        html = templates.get_template(template).render(
            prefix=prefix, hub_home=f"{sign_in.hub_auth.hub_prefix}home", nonce=nonce, user=user,
            csrf_field=CSRF_FIELD, csrf=sign_in.csrf_token(user), **context)
        return HTMLResponse(html, status_code=status, headers=security_headers(nonce))

    async def respond(request: Request, next_url: str,
                      work: Callable[[HubUser], Awaitable[Response]]) -> Response:
        """Sign the browser in through the hub, run `work`, show any refusal as a page."""
        try:
            user = await sign_in.user(request)
        except NotSignedIn:
            return sign_in.login_redirect(next_url)
        try:
            return await work(user)
        except HTTPException as error:
            return render("error.html", user, error.status_code, error=error.detail)
        except AirlockError as error:
            return render("error.html", user, status_of(error), error=str(error))

    def list_context(caller: Caller) -> dict:
        listed = airlock.list_requests(caller)
        researches = []
        if policies.SCOPE_REQUEST in caller.scopes:
            researches = [p for p in airlock.registry.projects_of(caller.username,
                                                                   policies.RESEARCHER_ROLE)
                          if p.status != "closed"]
        return {"to_review": [r for r in listed if r["to_review"]],
                "mine": [r for r in listed if r["author"] == caller.username],
                "others": [r for r in listed if not r["to_review"] and r["author"] != caller.username],
                "is_admin": policies.SCOPE_ADMIN in caller.scopes,
                "is_checker": policies.SCOPE_REVIEW in caller.scopes,
                "projects": researches}

    def request_context(caller: Caller, request_id: str) -> dict:
        detail = airlock.detail(caller, request_id)
        files = []
        for f in detail["files"]:
            shown = None
            if detail["can"]["read_files"]:
                path = airlock.open_file(caller, request_id, f["name"])
                shown = preview(path, f["name"], f["checks"].get("flagged", {}))
            files.append({**f, "preview": shown,
                          "comments": [c for c in detail["comments"] if c["file"] == f["name"]]})
        outputs = (list_outputs(airlock.outputs_root / detail["project"])
                   if detail["can"]["edit"] else [])
        return {"request": detail, "files": files, "outputs": outputs, "output_kind": FileKind.OUTPUT,
                "general_comments": [c for c in detail["comments"] if c["file"] is None],
                "votes": VOTE_LABELS, "actions": ACTIONS}

    async def list_page(user: HubUser, error: str = "", status: int = 200) -> Response:
        context = await run_in_threadpool(list_context, caller_of(user))
        return render("list.html", user, status, error=error, **context)

    async def request_page(user: HubUser, request_id: str, error: str = "",
                           status: int = 200) -> Response:
        context = await run_in_threadpool(request_context, caller_of(user), request_id)
        return render("request.html", user, status, error=error, **context)

    @router.get(prefix)
    async def home(request: Request) -> Response:
        return await respond(request, prefix, list_page)

    @router.post(f"{prefix}requests")
    async def create(request: Request) -> Response:
        async def work(user: HubUser) -> Response:
            form = await read_form(request)
            sign_in.check_csrf(user, form.get(CSRF_FIELD))
            try:
                made = await run_in_threadpool(
                    airlock.create, caller_of(user), form.get("project", ""), form.get("title", ""),
                    form.get("purpose", ""), form.get("disclosure_controls", ""))
            except AirlockError as error:
                return await list_page(user, str(error), status_of(error))
            return RedirectResponse(f"{prefix}requests/{made['id']}", 303)

        return await respond(request, prefix, work)

    @router.get(prefix + "requests/{request_id}")
    async def show(request: Request, request_id: str) -> Response:
        return await respond(request, f"{prefix}requests/{request_id}",
                             lambda user: request_page(user, request_id))

    def form_route(path: str, change: Callable[[Caller, str, dict[str, str]], object]) -> None:
        """POST `prefix`requests/<id>/<path>: check the CSRF field, change, go back (303)."""

        async def handler(request: Request, request_id: str) -> Response:
            here = f"{prefix}requests/{request_id}"

            async def work(user: HubUser) -> Response:
                form = await read_form(request)
                sign_in.check_csrf(user, form.get(CSRF_FIELD))
                try:
                    await run_in_threadpool(change, caller_of(user), request_id, form)
                except AirlockError as error:
                    return await request_page(user, request_id, str(error), status_of(error))
                return RedirectResponse(here, 303)

            return await respond(request, here, work)

        router.add_api_route(prefix + "requests/{request_id}/" + path, handler, methods=["POST"],
                             name=f"page_{path.replace('/', '_')}")

    form_route("edit", lambda caller, rid, form: airlock.edit(
        caller, rid, title=form.get("title", ""), purpose=form.get("purpose", ""),
        disclosure_controls=form.get("disclosure_controls", "")))
    form_route("files", lambda caller, rid, form: airlock.add_file(
        caller, rid, form.get("name", ""), form.get("kind", FileKind.OUTPUT)))
    form_route("files/remove", lambda caller, rid, form: airlock.remove_file(
        caller, rid, form.get("name", "")))
    form_route("vote", lambda caller, rid, form: airlock.vote(
        caller, rid, form.get("file", ""), form.get("vote", "")))
    form_route("comments", lambda caller, rid, form: airlock.comment(
        caller, rid, form.get("text", ""), form.get("file") or None))
    for action, (method, _, _) in ACTIONS.items():
        form_route(action, lambda caller, rid, form, method=method: getattr(airlock, method)(
            caller, rid))

    return router
