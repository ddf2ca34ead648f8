"""The airlock as an HTTP API (FastAPI), run by JupyterHub as the service `airlock`.

Callers sign in through the hub (API token or the OAuth cookie of the pages); what they may do
is decided by the hub scopes custom:airlock:request / review / admin together with their roles in
the project registry. Every route is thin over lnds_spe.airlock.service.Airlock.
"""

import os
import stat
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field

from lnds_spe import __version__
from lnds_spe.airlock import exceptions as ex
from lnds_spe.airlock import policies
from lnds_spe.airlock.enums import FileKind, Vote
from lnds_spe.airlock.service import Airlock, Caller
from lnds_spe.services.hub_auth import HubSignIn, HubUser, NotSignedIn

STATUS_OF_ERROR = {
    ex.RequestNotFound: 404, ex.FileNotFound: 404, ex.RequestPermissionDenied: 403,
    ex.InvalidStateTransition: 409, ex.RequestNotReady: 409, ex.BadFile: 422,
    ex.ReleaseIntegrityError: 500,
}


def status_of(error: ex.AirlockError) -> int:
    """The HTTP status that answers an airlock refusal."""
    return next((code for cls, code in STATUS_OF_ERROR.items() if isinstance(error, cls)), 400)


class NewRequest(BaseModel):
    project: str = Field(max_length=30, description="the project's slug")
    title: str = Field(max_length=200, description="what is exported")
    purpose: str = Field("", max_length=10_000, description="why it is exported")
    disclosure_controls: str = Field("", max_length=10_000,
                                     description="disclosure controls applied (rounding, suppression…)")


class RequestEdit(BaseModel):
    title: str | None = Field(None, max_length=200)
    purpose: str | None = Field(None, max_length=10_000)
    disclosure_controls: str | None = Field(None, max_length=10_000)


class NewFile(BaseModel):
    name: str = Field(max_length=500, description="path inside the project's outputs folder")
    kind: FileKind = FileKind.OUTPUT


class NewVote(BaseModel):
    vote: Vote


class NewComment(BaseModel):
    text: str = Field(max_length=10_000)
    file: str | None = Field(None, max_length=500, description="the file commented on, if any")


def caller_of(user: HubUser) -> Caller:
    return Caller(user.name, user.scopes)


def list_outputs(root: Path, limit: int = 2000) -> list[dict]:
    """Regular files under a project's outputs folder (no symlink followed), by name."""
    found: list[dict] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(folder) / name
            info = path.lstat()
            if stat.S_ISREG(info.st_mode) and not name.startswith("."):
                found.append({"name": path.relative_to(root).as_posix(), "size": info.st_size,
                              "modified": int(info.st_mtime)})
                if len(found) >= limit:
                    return found
    return found


def create_app(airlock: Airlock, sign_in: HubSignIn, prefix: str = "/services/airlock/") -> FastAPI:
    """The airlock service's app: JSON API under `<prefix>api/`, pages under `<prefix>`."""
    app = FastAPI(title="LNDS SPE airlock", version=__version__,
                  description="Export requests, review by two output checkers, release.",
                  openapi_url=f"{prefix}api/openapi.json", docs_url=f"{prefix}api/docs",
                  redoc_url=None)
    app.state.airlock = airlock
    app.state.sign_in = sign_in

    @app.exception_handler(ex.AirlockError)
    async def airlock_error(request: Request, error: ex.AirlockError):
        return JSONResponse({"detail": str(error)}, status_code=status_of(error))

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, error: NotSignedIn):
        return JSONResponse({"detail": str(error)}, status_code=401,
                            headers={"WWW-Authenticate": "token"})

    async def api_user(request: Request) -> HubUser:
        return await sign_in.user(request)

    async def changing_user(request: Request,
                            x_csrf_token: Annotated[str | None, Header()] = None) -> HubUser:
        user = await sign_in.user(request)
        sign_in.check_csrf(user, x_csrf_token)
        return user

    User = Annotated[HubUser, Depends(api_user)]
    Changer = Annotated[HubUser, Depends(changing_user)]
    api = APIRouter(prefix=f"{prefix}api")

    @api.get("/whoami")
    def whoami(user: User) -> dict:
        """The signed-in user and the airlock scopes their token holds."""
        return {"name": user.name, "scopes": sorted(s for s in user.scopes if s.startswith("custom:airlock")),
                "csrf_token": sign_in.csrf_token(user)}

    @api.get("/requests")
    def list_requests(user: User) -> list[dict]:
        """Requests this user made, may review, or (admins) all."""
        return airlock.list_requests(caller_of(user))

    @api.post("/requests", status_code=201)
    def create_request(body: NewRequest, user: Changer) -> dict:
        """Start a draft request in a project you are a researcher of."""
        return airlock.create(caller_of(user), body.project, body.title, body.purpose,
                              body.disclosure_controls)

    @api.get("/requests/{request_id}")
    def get_request(request_id: str, user: User) -> dict:
        """One request, with votes and comments as far as you may see them."""
        return airlock.detail(caller_of(user), request_id)

    @api.patch("/requests/{request_id}")
    def edit_request(request_id: str, body: RequestEdit, user: Changer) -> dict:
        """Change the title, purpose or disclosure controls of a draft or returned request."""
        return airlock.edit(caller_of(user), request_id, title=body.title, purpose=body.purpose,
                            disclosure_controls=body.disclosure_controls)

    @api.post("/requests/{request_id}/files", status_code=201)
    def add_file(request_id: str, body: NewFile, user: Changer) -> dict:
        """Freeze a file of the project's outputs folder into the request (replacing resets votes)."""
        return airlock.add_file(caller_of(user), request_id, body.name, body.kind)

    @api.delete("/requests/{request_id}/files/{name:path}")
    def remove_file(request_id: str, name: str, user: Changer) -> dict:
        """Take a file out of a draft or returned request."""
        return airlock.remove_file(caller_of(user), request_id, name)

    @api.get("/requests/{request_id}/files/{name:path}", response_class=FileResponse)
    def read_file(request_id: str, name: str, user: User):
        """A frozen file's content, for the project's output checkers."""
        path = airlock.open_file(caller_of(user), request_id, name)
        return FileResponse(path, headers={"Content-Security-Policy": "default-src 'none'; sandbox",
                                           "X-Content-Type-Options": "nosniff"},
                            content_disposition_type="inline")

    @api.put("/requests/{request_id}/files/{name:path}/vote")
    def vote(request_id: str, name: str, body: NewVote, user: Changer) -> dict:
        """Your vote on one output file in this review round."""
        return airlock.vote(caller_of(user), request_id, name, body.vote)

    @api.post("/requests/{request_id}/comments", status_code=201)
    def comment(request_id: str, body: NewComment, user: Changer) -> dict:
        """A comment on the request or one of its files."""
        return airlock.comment(caller_of(user), request_id, body.text, body.file)

    actions = {"submit": airlock.submit, "withdraw": airlock.withdraw,
               "review": airlock.submit_review, "return": airlock.return_request,
               "reject": airlock.reject, "approve": airlock.approve, "release": airlock.release}

    for action_name, method in actions.items():
        def make(method=method):
            def act(request_id: str, user: Changer) -> dict:
                return method(caller_of(user), request_id)
            act.__doc__ = method.__doc__
            return act
        api.add_api_route(f"/requests/{{request_id}}/{action_name}", make(), methods=["POST"],
                          name=f"{action_name}_request", summary=f"{action_name.capitalize()} a request")

    @api.get("/requests/{request_id}/release", response_class=FileResponse)
    def download_release(request_id: str, user: User):
        """The released bundle (approved outputs + disclosure-record.json): requester and admins."""
        path = airlock.open_release(caller_of(user), request_id)
        return FileResponse(path, media_type="application/zip", filename=f"{request_id}.zip")

    @api.get("/projects/{project}/outputs")
    def project_outputs(project: str, user: User) -> list[dict]:
        """Files in a project's outputs folder that could join a request (its researchers only)."""
        roles = airlock.registry.roles_of(project, user.name)
        if policies.SCOPE_REQUEST not in user.scopes or policies.RESEARCHER_ROLE not in roles:
            raise HTTPException(403, f"only researchers of project {project} list its outputs")
        return list_outputs(airlock.outputs_root / project)

    app.include_router(api)
    from lnds_spe.services.airlock_pages import pages_router  # imports this module's helpers
    app.include_router(pages_router(airlock, sign_in, prefix))

    @app.get(f"{prefix}oauth_callback", include_in_schema=False)
    async def oauth_callback(request: Request) -> RedirectResponse:
        return await sign_in.callback(request)

    return app
