"""The IPMS token service as an HTTP API (FastAPI), run apart from the hub.

Callers authenticate with `Authorization: Bearer <secret>`; the callers file maps the sha256 of
each secret to a name and roles (issuer, holder, reidentifier). Bodies carry identifiers and
pseudonyms; nothing of them is logged or stored. Routes are thin over PseudonymService.
"""

from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from lnds_spe import __version__
from lnds_spe.pseudonym import errors as ex
from lnds_spe.pseudonym.formats import Method, OutputFormat, Treatment
from lnds_spe.pseudonym.service import MAX_BATCH, Caller, PseudonymService, authenticate
from lnds_spe.pseudonym.tokens import ProjectConfig

STATUS_OF_ERROR = {ex.RoleDenied: 403, ex.InvalidToken: 400, ex.NotReversible: 409,
                   ex.MalformedIdentifier: 422, ex.DomainTooSmall: 422, ex.EmptyInput: 422,
                   ex.ProofError: 422}


class NewToken(BaseModel):
    project: str = Field(max_length=64, description="the project id (shared by every holder of the project)")
    method: Method
    treatment: Treatment
    format: OutputFormat
    holder: str = Field(max_length=200, description="the data holder the token is for")


class Batch(BaseModel):
    token: str = Field(max_length=2000)
    values: list[str] = Field(max_length=MAX_BATCH, description="identifiers, or pseudonyms to reverse")
    start: int = Field(1, ge=1, description="row number of the first value, for error messages")
    project: str | None = Field(None, max_length=64, description="refuse a token of any other project")


class Blinded(BaseModel):
    token: str = Field(max_length=2000)
    blinded: list[str] = Field(max_length=MAX_BATCH, description="hex ristretto255 elements")
    project: str | None = Field(None, max_length=64, description="refuse a token of any other project")


def create_app(service: PseudonymService, callers_file: Path) -> FastAPI:
    """The token service's app: JSON API under /api, OpenAPI schema at /api/openapi.json."""
    app = FastAPI(title="LNDS SPE pseudonymisation (IPMS)", version=__version__,
                  description="Project tokens, pseudonyms (HMAC, FF1, AEAD, random, blind OPRF), "
                              "re-identification under its own role.",
                  openapi_url="/api/openapi.json", docs_url="/api/docs", redoc_url=None)

    @app.exception_handler(ex.PseudonymError)
    async def pseudonym_error(request: Request, error: ex.PseudonymError):
        status = next((code for cls, code in STATUS_OF_ERROR.items() if isinstance(error, cls)), 400)
        if isinstance(error, ex.RoleDenied) and "bearer" in str(error):
            status = 401
        return JSONResponse({"detail": str(error)}, status_code=status)

    def caller(authorization: Annotated[str | None, Header()] = None) -> Caller:
        scheme, _, secret = (authorization or "").partition(" ")
        return authenticate(callers_file, secret if scheme.lower() == "bearer" else None)

    Who = Annotated[Caller, Depends(caller)]

    @app.get("/api/whoami")
    def whoami(who: Who) -> dict:
        """The caller's name and roles."""
        return {"name": who.name, "roles": sorted(who.roles)}

    @app.post("/api/tokens")
    def issue(body: NewToken, who: Who) -> dict:
        """A sealed, signed project token (issuer role)."""
        config = ProjectConfig(body.project, body.method, body.treatment, body.format)
        return {"token": service.issue(who, config, body.holder)}

    @app.post("/api/pseudonymise")
    def pseudonymise(body: Batch, who: Who) -> dict:
        """Pseudonyms of a batch of identifiers (holder role), in order."""
        out, warning = service.pseudonymise(who, body.token, body.values, body.start, body.project)
        return {"pseudonyms": out, "warning": warning}

    @app.post("/api/oprf/evaluate")
    def evaluate(body: Blinded, who: Who) -> dict:
        """Blind mode: RFC 9497 evaluations of blinded elements (holder role)."""
        try:
            blinded = [bytes.fromhex(b) for b in body.blinded]
        except ValueError:
            raise ex.ProofError("blinded elements must be hex strings") from None
        evaluated, fmt = service.evaluate_blinded(who, body.token, blinded, body.project)
        return {"evaluated": [e.hex() for e in evaluated], "format": fmt}

    @app.post("/api/linkage/secret")
    def linkage_secret(body: Blinded, who: Who) -> dict:
        """The project's secret for CLK encodings (holder role; `blinded` is ignored)."""
        return {"secret": service.linkage_secret(who, body.token, body.project).hex()}

    @app.post("/api/reidentify")
    def reidentify(body: Batch, who: Who) -> dict:
        """Identifiers back from reversible pseudonyms (reidentifier role, audited)."""
        return {"identifiers": service.reidentify(who, body.token, body.values, body.start, body.project)}

    return app
