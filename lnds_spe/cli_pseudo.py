"""`spe pseudo`: project tokens, pseudonyms and re-identification through the IPMS token service.

With --service URL the commands call the service over HTTP; without it they run the service's
rules in process (on the service host, which holds the master key). Either way the caller is
named by the bearer secret in $SPE_IPMS_BEARER and needs the role the command asks for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lnds_spe.cli_data import _progress
from lnds_spe.errors import SPEError
from lnds_spe.pseudonym.formats import Method, OutputFormat, Role, Treatment
from lnds_spe.pseudonym.keystore import FileKeyStore

if TYPE_CHECKING:  # the service (cryptography, libsodium, FF1) is imported by the commands that use it
    from lnds_spe.pseudonym.client import Backend

BEARER_ENV = "SPE_IPMS_BEARER"
TOKEN_ENV = "SPE_IPMS_TOKEN"

link_app = typer.Typer(help="Linkage by proximity: CLK encodings (holders), matching (the SPE).",
                       no_args_is_help=True)
pseudo_app = typer.Typer(help="Pseudonymisation (IPMS): project tokens, pseudonyms, re-identification.",
                         no_args_is_help=True)

Service = Annotated[str | None, typer.Option("--service", envvar="SPE_IPMS_SERVICE",
                                             help="token service URL; absent: in process, on its host")]
Token = Annotated[str, typer.Option("--token", envvar=TOKEN_ENV, help="the project token")]
Column = Annotated[str, typer.Option("--column", "-c", help="the CSV column to replace")]
Project = Annotated[str | None, typer.Option("--project", help="refuse a token of any other project")]


def _fail(exc: SPEError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


def _backend(service: str | None) -> Backend:
    from lnds_spe.pseudonym.client import HttpBackend, LocalBackend
    from lnds_spe.pseudonym.service import PseudonymService
    from lnds_spe.services.pseudonym import audit_file, callers_file

    bearer = os.environ.get(BEARER_ENV)
    if service:
        return HttpBackend(service, bearer)
    return LocalBackend(PseudonymService(FileKeyStore(), audit_file()), callers_file(), bearer)


def _stream(source: Path, target: Path, column: str, convert) -> int:
    from lnds_spe.pseudonym.csvstream import transform_column

    with _progress(f"{source.name}", source.stat().st_size if source.is_file() else None) as advance:
        return transform_column(source, target, column, convert, advance)


@pseudo_app.command("init")
def init() -> None:
    """Create the service's master key (once, 0600) on the token service host."""
    try:
        path = FileKeyStore().create()
    except SPEError as exc:
        raise _fail(exc) from None
    typer.echo(f"master key written to {path}: back it up offline; it is never in the registry")


@pseudo_app.command("caller")
def caller(name: str,
           role: Annotated[list[Role], typer.Option("--role", help="issuer, holder, reidentifier")]) -> None:
    """Add a caller with roles to the service's callers file and print its bearer secret once."""
    from lnds_spe.pseudonym.service import add_caller
    from lnds_spe.services.pseudonym import callers_file

    typer.echo(add_caller(callers_file(), name, role))


@pseudo_app.command("token")
def token(project: Annotated[str, typer.Option(help="project id, shared by every holder of the project")],
          holder: Annotated[str, typer.Option(help="the data holder the token is for")],
          method: Annotated[Method, typer.Option()] = Method.NON_REVERSIBLE,
          treatment: Annotated[Treatment, typer.Option()] = Treatment.ALWAYS_SAME,
          fmt: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.ALPHANUMERIC,
          service: Service = None) -> None:
    """Issue a sealed, signed project token (issuer role)."""
    from lnds_spe.pseudonym.tokens import ProjectConfig

    try:
        typer.echo(_backend(service).issue(ProjectConfig(project, method, treatment, fmt), holder))
    except SPEError as exc:
        raise _fail(exc) from None


@pseudo_app.command("apply")
def apply(source: Path, target: Path, column: Column, token: Token, project: Project = None,
          service: Service = None,
          blind: Annotated[bool, typer.Option(help="blind mode: the service sees no identifier")] = False,
          ) -> None:
    """Replace a CSV column of identifiers by pseudonyms (holder role), streaming any size."""
    from lnds_spe.pseudonym.service import blind_pseudonyms

    try:
        backend = _backend(service)
        warnings: list[str] = []

        def convert(values: list[str], start: int) -> list[str]:
            if blind:
                return blind_pseudonyms(values, lambda b: backend.evaluate_blinded(token, b, project), start)
            out, warning = backend.pseudonymise(token, values, start, project)
            warnings.extend([warning] if warning else [])
            return out

        rows = _stream(source, target, column, convert)
    except SPEError as exc:
        raise _fail(exc) from None
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"{rows} pseudonyms written to {target}")


@pseudo_app.command("reverse")
def reverse(source: Path, target: Path, column: Column, token: Token, project: Project = None,
            service: Service = None) -> None:
    """Replace a CSV column of reversible pseudonyms by identifiers (reidentifier role, audited)."""
    try:
        backend = _backend(service)
        rows = _stream(source, target, column,
                       lambda values, start: backend.reidentify(token, values, start, project))
    except SPEError as exc:
        raise _fail(exc) from None
    typer.echo(f"{rows} identifiers written to {target}")


@link_app.command("encode")
def link_encode(source: Path, target: Path, token: Token,
                schema: Annotated[Path, typer.Option(help="clkhash v3 linkage schema (JSON)")],
                id_column: Annotated[str, typer.Option("--id-column", help="the holder's record id")],
                hardening: Annotated[str, typer.Option(help="none, xor-fold or balance")] = "none",
                project: Project = None, service: Service = None) -> None:
    """Encode a CSV's records as CLKs (holder role); writes `id,clk` (base64) rows."""
    import csv
    import json

    from lnds_spe.pseudonym.clk import Encoder, Hardening, parse_schema, to_text
    from lnds_spe.pseudonym.errors import EmptyInput, LinkageSchemaError

    try:
        try:
            parsed = parse_schema(json.loads(schema.read_text()))
            harden = Hardening(hardening)
        except (OSError, ValueError) as exc:
            raise LinkageSchemaError(f"{schema}: {exc}") from None
        with source.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh, skipinitialspace=True))
        missing = [f for f in (*parsed.fields, id_column) if f is not None and rows and f not in rows[0]]
        if not rows or missing:
            raise EmptyInput(f"{source}: no records, or no column(s) {missing} the schema names")
        secret = _backend(service).linkage_secret(token, project)
        filters = Encoder(parsed, secret, harden).encode([[r.get(f or "", "") or "" for f in parsed.fields]
                                                           for r in rows])
        _write_rows(target, ["id", "clk"], zip([r[id_column] for r in rows], to_text(filters), strict=True))
    except SPEError as exc:
        raise _fail(exc) from None
    typer.echo(f"{len(rows)} encodings written to {target}")


@link_app.command("match")
def link_match(encodings_a: Path, encodings_b: Path, keys_a: Path, keys_b: Path,
               threshold: Annotated[float, typer.Option(help="Dice threshold")] = 0.8) -> None:
    """Match two holders' CLKs 1:1 at Dice >= threshold; each gets `id,linkage_key` for its own ids."""
    import csv

    from lnds_spe.pseudonym.clk import from_text
    from lnds_spe.pseudonym.match import linkage_keys, match

    try:
        sides = []
        for path in (encodings_a, encodings_b):
            with path.open(newline="") as fh:
                rows = list(csv.DictReader(fh))
            sides.append(([r["id"] for r in rows], from_text([r["clk"] for r in rows])))
        (ids_a, fa), (ids_b, fb) = sides
        side_a, side_b = linkage_keys(match(fa, fb, threshold), ids_a, ids_b)
        _write_rows(keys_a, ["id", "linkage_key"], side_a)
        _write_rows(keys_b, ["id", "linkage_key"], side_b)
    except (SPEError, KeyError, OSError) as exc:
        raise _fail(SPEError(f"cannot match: {exc}")) from None
    typer.echo(f"{len(side_a)} linked pairs; keys written to {keys_a} and {keys_b}")


def _write_rows(path: Path, header: list[str], rows) -> None:
    """A CSV written under a temporary name, then renamed."""
    import csv

    tmp = path.with_name(f".{path.name}.partial")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)
