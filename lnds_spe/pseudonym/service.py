"""The token service's rules: who may issue, pseudonymise and re-identify, and its audit file.

Callers are named in a callers file (JSON, 0600): each with roles and the sha256 of a bearer
secret, never the secret itself. Roles are segregated: an issuer makes project tokens, a holder
pseudonymises (or has blinded elements evaluated), and only a re-identifier may reverse reversible
pseudonyms. Every issue and re-identification, allowed or denied, is appended to a hash-chained
audit file (HMAC under a key derived from the master key) holding counts, never identifiers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from lnds_spe.clock import utc_now
from lnds_spe.pseudonym import oprf
from lnds_spe.pseudonym.errors import EmptyInput, InvalidToken, PseudonymError, RoleDenied
from lnds_spe.pseudonym.formats import (
    Method,
    OutputFormat,
    Role,
    Treatment,
    digest_pseudonym,
    normalise,
    small_space_warning,
)
from lnds_spe.pseudonym.keystore import KeyStore, derive_key
from lnds_spe.pseudonym.methods import Pseudonymiser
from lnds_spe.pseudonym.tokens import ProjectConfig, Token, issue_token, open_token

MAX_BATCH = 10_000


class AuditAction(StrEnum):
    ISSUE = "token.issue"
    REIDENTIFY = "pseudonym.reidentify"


@dataclass(frozen=True)
class Caller:
    name: str
    roles: frozenset[Role]


def check_can(caller: Caller, role: Role, what: str) -> None:
    """RoleDenied unless the caller holds `role`."""
    if role not in caller.roles:
        raise RoleDenied(f"{caller.name} may not {what}: that needs the {role} role")


def _digest(bearer: str) -> str:
    return hashlib.sha256(bearer.encode()).hexdigest()


def add_caller(path: Path, name: str, roles: Sequence[Role]) -> str:
    """Add (or replace) a caller in the callers file; returns its new bearer secret, shown once."""
    callers = _read_callers(path) if path.exists() else {}
    bearer = secrets.token_urlsafe(32)
    callers[name] = {"roles": sorted(Role(r).value for r in roles), "bearer_sha256": _digest(bearer)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(callers, out, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return bearer


def _read_callers(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise PseudonymError(f"no callers file at {path}: add callers with `spe pseudo caller`") from None
    except ValueError:
        raise PseudonymError(f"{path} is not a callers file (JSON)") from None


def authenticate(path: Path, bearer: str | None) -> Caller:
    """The caller whose bearer secret this is; RoleDenied when unknown or missing."""
    if not bearer:
        raise RoleDenied("no bearer secret given: set SPE_IPMS_BEARER (or send Authorization: Bearer …)")
    digest = _digest(bearer)
    for name, entry in _read_callers(path).items():
        if hmac.compare_digest(entry.get("bearer_sha256", ""), digest):
            return Caller(name, frozenset(Role(r) for r in entry.get("roles", [])))
    raise RoleDenied("unknown bearer secret: ask the service operator for yours")


class AuditFile:
    """Append-only JSON lines, each carrying an HMAC over the previous line's MAC and itself."""

    def __init__(self, path: Path, key: bytes):
        self.path, self.key = path, key

    def _last_mac(self) -> str:
        try:
            with self.path.open("rb") as fh:
                lines = fh.read().splitlines()
        except FileNotFoundError:
            return "0" * 64
        return json.loads(lines[-1])["mac"] if lines else "0" * 64

    def append(self, **event: object) -> None:
        event = {"time": utc_now(), **event}
        body = json.dumps(event, sort_keys=True, separators=(",", ":"))
        mac = hmac.new(self.key, (self._last_mac() + body).encode(), hashlib.sha256).hexdigest()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as out:
            out.write(json.dumps({**event, "mac": mac}, sort_keys=True) + "\n")

    def verify(self) -> bool:
        """True when every line's MAC chains from the one before."""
        prev = "0" * 64
        for line in self.path.read_text().splitlines():
            event = json.loads(line)
            mac = event.pop("mac")
            body = json.dumps(event, sort_keys=True, separators=(",", ":"))
            if not hmac.compare_digest(mac, hmac.new(self.key, (prev + body).encode(),
                                                     hashlib.sha256).hexdigest()):
                return False
            prev = mac
        return True


def _batch(values: Sequence[str], what: str) -> list[str]:
    if not values:
        raise EmptyInput(f"no {what} given: send at least one")
    if len(values) > MAX_BATCH:
        raise EmptyInput(f"{len(values)} {what} in one batch: send at most {MAX_BATCH:,} per call")
    return list(values)


class PseudonymService:
    """Issue tokens, pseudonymise, evaluate blinded elements, re-identify: each checked, some audited."""

    def __init__(self, keystore: KeyStore, audit_path: Path):
        self._master = keystore.master_key()
        self.audit = AuditFile(audit_path, derive_key(self._master, "audit", "service"))

    def issue(self, caller: Caller, config: ProjectConfig, holder: str) -> str:
        check_can(caller, Role.ISSUER, "issue project tokens")
        token = issue_token(self._master, config, holder)
        opened = open_token(self._master, token)
        self.audit.append(actor=caller.name, action=AuditAction.ISSUE.value, project=config.project,
                          token_id=opened.token_id, holder=holder, method=config.method.value,
                          treatment=config.treatment.value, format=config.format.value, outcome="ok")
        return token

    def open(self, text: str, project: str | None = None) -> Token:
        return open_token(self._master, text, project)

    def pseudonymise(self, caller: Caller, token: str, identifiers: Sequence[str], start: int = 1,
                     project: str | None = None) -> tuple[list[str], str | None]:
        """Pseudonyms of a batch and, for the first batch, a warning if the identifier space is small."""
        check_can(caller, Role.HOLDER, "pseudonymise")
        opened = self.open(token, project)
        values = _batch(identifiers, "identifiers")
        out = Pseudonymiser(opened.config, self._master).apply(values, start)
        return out, small_space_warning(v.strip() for v in values[:1000]) if start == 1 else None

    def evaluate_blinded(self, caller: Caller, token: str, blinded: Sequence[bytes],
                         project: str | None = None) -> tuple[list[bytes], str]:
        """Blind mode: the OPRF evaluations and the output format; the service sees no identifier."""
        check_can(caller, Role.HOLDER, "pseudonymise")
        config = self.open(token, project).config
        if (config.method, config.treatment) != (Method.NON_REVERSIBLE, Treatment.ALWAYS_SAME):
            raise InvalidToken("blind mode gives non-reversible, always-the-same pseudonyms: use a token "
                               "with that method and treatment")
        secret, _ = oprf.project_key_pair(self._master, config.project)
        return [oprf.blind_evaluate(secret, b) for b in _batch(blinded, "blinded elements")], config.format

    def linkage_secret(self, caller: Caller, token: str, project: str | None = None) -> bytes:
        """The project's CLK secret, for holders only: the matching party never gets it."""
        check_can(caller, Role.HOLDER, "encode records for linkage")
        return derive_key(self._master, "clk", self.open(token, project).config.project)

    def reidentify(self, caller: Caller, token: str, pseudonyms: Sequence[str], start: int = 1,
                   project: str | None = None) -> list[str]:
        """Identifiers back from reversible pseudonyms, for re-identifiers only; audited either way."""
        opened = self.open(token, project)
        event = {"actor": caller.name, "action": AuditAction.REIDENTIFY.value,
                 "project": opened.config.project, "token_id": opened.token_id, "count": len(pseudonyms)}
        try:
            check_can(caller, Role.REIDENTIFIER, "re-identify")
            out = Pseudonymiser(opened.config, self._master).reverse(_batch(pseudonyms, "pseudonyms"), start)
        except PseudonymError as exc:
            self.audit.append(**event, outcome=f"denied: {type(exc).__name__}")
            raise
        self.audit.append(**event, outcome="ok")
        return out


def blind_pseudonyms(identifiers: Sequence[str], evaluate: Callable[[list[bytes]], tuple[list[bytes], str]],
                     start: int = 1) -> list[str]:
    """The holder's side of blind mode: blind, have `evaluate(blinded) -> (evaluated, format)`, unblind."""
    texts = [normalise(t, start + i).encode() for i, t in enumerate(identifiers)]
    blinds = [oprf.blind(t) for t in texts]
    evaluated, fmt = evaluate([e for _, e in blinds])
    return [digest_pseudonym(oprf.finalize(t, r, ev), OutputFormat(fmt))
            for t, (r, _), ev in zip(texts, blinds, evaluated, strict=True)]
