"""How the `spe pseudo` commands reach the token service: over HTTP, or in process on its host.

Both check the caller the same way (a bearer secret against the callers file), so the in-process
path grants nothing the HTTP one would not.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Protocol

from lnds_spe.pseudonym import errors as ex
from lnds_spe.pseudonym.service import Caller, PseudonymService, authenticate
from lnds_spe.pseudonym.tokens import ProjectConfig

_ERROR_OF_STATUS = {401: ex.RoleDenied, 403: ex.RoleDenied, 400: ex.InvalidToken, 409: ex.NotReversible,
                    422: ex.MalformedIdentifier}


class Backend(Protocol):
    def issue(self, config: ProjectConfig, holder: str) -> str: ...
    def pseudonymise(self, token: str, values: list[str], start: int,
                     project: str | None) -> tuple[list[str], str | None]: ...
    def evaluate_blinded(self, token: str, blinded: list[bytes],
                         project: str | None) -> tuple[list[bytes], str]: ...
    def reidentify(self, token: str, values: list[str], start: int, project: str | None) -> list[str]: ...
    def linkage_secret(self, token: str, project: str | None) -> bytes: ...


class LocalBackend:
    """The service's rules in this process (on the service host, with the key store)."""

    def __init__(self, service: PseudonymService, callers_file: Path, bearer: str | None):
        self.service = service
        self.caller: Caller = authenticate(callers_file, bearer)

    def issue(self, config: ProjectConfig, holder: str) -> str:
        return self.service.issue(self.caller, config, holder)

    def pseudonymise(self, token: str, values: list[str], start: int,
                     project: str | None) -> tuple[list[str], str | None]:
        return self.service.pseudonymise(self.caller, token, values, start, project)

    def evaluate_blinded(self, token: str, blinded: list[bytes],
                         project: str | None) -> tuple[list[bytes], str]:
        return self.service.evaluate_blinded(self.caller, token, blinded, project)

    def reidentify(self, token: str, values: list[str], start: int, project: str | None) -> list[str]:
        return self.service.reidentify(self.caller, token, values, start, project)

    def linkage_secret(self, token: str, project: str | None) -> bytes:
        return self.service.linkage_secret(self.caller, token, project)


class HttpBackend:
    """The token service's HTTP API, with a bearer secret."""

    def __init__(self, url: str, bearer: str | None, timeout: float = 120.0):
        if not bearer:
            raise ex.RoleDenied("no bearer secret given: set SPE_IPMS_BEARER")
        self.url, self.bearer, self.timeout = url.rstrip("/"), bearer, timeout

    def _post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(
            f"{self.url}/api/{path}", data=json.dumps(body).encode(), method="POST",
            headers={"Authorization": f"Bearer {self.bearer}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            try:
                detail = json.loads(err.read()).get("detail")
            except ValueError:
                detail = None
            raise _ERROR_OF_STATUS.get(err.code, ex.PseudonymError)(
                detail if isinstance(detail, str) else f"the token service refused the request ({err.code})"
            ) from None
        except (urllib.error.URLError, OSError) as err:
            raise ex.PseudonymError(f"cannot reach the token service at {self.url}: {err}") from None

    def issue(self, config: ProjectConfig, holder: str) -> str:
        body = {"project": config.project, "method": config.method, "treatment": config.treatment,
                "format": config.format, "holder": holder}
        return self._post("tokens", body)["token"]

    def pseudonymise(self, token: str, values: list[str], start: int,
                     project: str | None) -> tuple[list[str], str | None]:
        answer = self._post("pseudonymise", {"token": token, "values": values, "start": start,
                                             "project": project})
        return answer["pseudonyms"], answer.get("warning")

    def evaluate_blinded(self, token: str, blinded: list[bytes],
                         project: str | None) -> tuple[list[bytes], str]:
        answer = self._post("oprf/evaluate", {"token": token, "blinded": [b.hex() for b in blinded],
                                              "project": project})
        return [bytes.fromhex(e) for e in answer["evaluated"]], answer["format"]

    def reidentify(self, token: str, values: list[str], start: int, project: str | None) -> list[str]:
        body = {"token": token, "values": values, "start": start, "project": project}
        return self._post("reidentify", body)["identifiers"]

    def linkage_secret(self, token: str, project: str | None) -> bytes:
        body = {"token": token, "blinded": [], "project": project}
        return bytes.fromhex(self._post("linkage/secret", body)["secret"])
