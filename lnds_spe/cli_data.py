"""`spe keys` and `spe data`: the SPE's key pair, and encrypted dataset upload, fetch, re-keying."""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from lnds_spe import crypto, ingress
from lnds_spe.errors import SPEError
from lnds_spe.policy import check_username
from lnds_spe.storage import open_store

keys_app = typer.Typer(help="The SPE's Crypt4GH key pair, and a data holder's signing key.",
                       no_args_is_help=True)
data_app = typer.Typer(help="Encrypted datasets: upload, register, fetch, re-key.",
                       no_args_is_help=True)
err = Console(stderr=True)


def actor() -> str:
    """Who is acting: $SPE_ACTOR, else the login name; a user name the audit log can hold."""
    name = os.environ.get("SPE_ACTOR") or getpass.getuser()
    try:
        return check_username(name)
    except SPEError as exc:
        raise SPEError(f"{exc} (the acting user, from SPE_ACTOR or the login name)") from None


@contextmanager
def _user_errors() -> Iterator[None]:
    """A user error becomes one line on stderr and exit status 2; Ctrl-C exits 130."""
    try:
        yield
    except SPEError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: nothing was kept", err=True)
        raise typer.Exit(130) from None


def _open_registry():
    """The registry, imported only by the commands of the SPE side (SQLAlchemy is heavy)."""
    from lnds_spe.projects import open_registry

    return open_registry()


def _passphrase(confirm: bool = False, *, env: str = ingress.PASSPHRASE_ENV,
                what: str = "the SPE's private key") -> Callable[[], str]:
    """A key's passphrase: from `env`, else asked (once, when needed)."""
    def ask() -> str:
        value = os.environ.get(env)
        if value:
            return value
        return typer.prompt(f"Passphrase of {what}", hide_input=True,
                            confirmation_prompt=confirm, err=True)
    return ask


def _holder_passphrase(confirm: bool = False) -> Callable[[], str]:
    """The data holder's signing key passphrase: $SPE_HOLDER_PASSPHRASE, else asked."""
    return _passphrase(confirm, env=ingress.HOLDER_PASSPHRASE_ENV, what="your signing key")


@contextmanager
def _progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields the callback that advances it by n bytes."""
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def _source_size(path: Path) -> int | None:
    """Bytes to read for an upload (for the progress bar)."""
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return None


def _spe_public_key(path: Path | None) -> bytes:
    """The SPE's public key: the given file, else the hub's own <state>/keys/spe.pub."""
    return crypto.load_public_key(path or ingress.keys_dir() / crypto.PUBLIC_KEY_NAME)


# Keys

@keys_app.command("init")
def keys_init() -> None:
    """Generate the SPE's key pair once, on the hub (passphrase: SPE_KEY_PASSPHRASE, or asked)."""
    with _user_errors():
        secret, public = crypto.generate_keypair(ingress.keys_dir(), _passphrase(confirm=True)())
        fp = crypto.fingerprint(crypto.load_public_key(public))
        typer.echo(f"created {secret} (private, 0600) and {public} (fingerprint {fp}); "
                   "give data holders the output of `spe keys export`")


@keys_app.command("export")
def keys_export(
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the SPE's public key, for data holders to encrypt for."""
    with _user_errors():
        pem = crypto.public_key_pem(_spe_public_key(None))
        if out is None:
            typer.echo(pem, nl=False)
        else:
            out.write_text(pem)


@keys_app.command("holder-init")
def keys_holder_init(
    directory: Annotated[Path, typer.Argument(help="Where to write holder.sec and holder.pub.")],
) -> None:
    """Make a data holder's Ed25519 signing key (passphrase: SPE_HOLDER_PASSPHRASE, or asked)."""
    with _user_errors():
        secret, public = crypto.generate_signing_key(directory, _holder_passphrase(True)())
        typer.echo(f"created {secret} (private, 0600) and {public}; sign uploads with "
                   f"`spe data upload --signing-key {secret}`")


# Data

@data_app.command("upload")
def data_upload(
    path: Annotated[Path, typer.Argument(help="A file or a directory (sent as a tar).")],
    project: Annotated[str, typer.Option(help="Project slug.")],
    dataset: Annotated[str, typer.Option(help="Dataset name (becomes ~/data/<name>).")],
    signing_key: Annotated[Path, typer.Option(
        help="Your signing key (`spe keys holder-init`); passphrase SPE_HOLDER_PASSPHRASE.")],
    store: Annotated[str | None, typer.Option(
        help="s3://BUCKET\\[/PREFIX], file:///DIR or a directory (default $SPE_STORE_URL).")] = None,
    spe_key: Annotated[Path | None, typer.Option(
        help="The SPE's public key file (default the hub's own).")] = None,
    recipient_pk: Annotated[list[Path] | None, typer.Option(
        help="Another public key that may decrypt (e.g. your own); repeatable.")] = None,
) -> None:
    """Data holder: encrypt for the SPE, stream to the store, sign the manifest (no registry)."""
    with _user_errors():
        recipients = ingress.Recipients(
            _spe_public_key(spe_key), tuple(crypto.load_public_key(p) for p in recipient_pk or ()))
        key = crypto.load_signing_key(signing_key, _holder_passphrase())
        with _progress(f"encrypting {path.name}", _source_size(path)) as advance:
            upload = ingress.upload_signed(path, project, dataset, store=open_store(store),
                                           recipients=recipients, signing_key=key,
                                           progress=advance)
        manifest = upload.manifest
        typer.echo(f"uploaded {dataset} to {upload.location}: {manifest['plaintext_size']} bytes, "
                   f"sha256 {manifest['plaintext_sha256']}, signed by {manifest['uploader']}")
        typer.echo(f"ask the SPE to run: spe data register --project {project} --dataset "
                   f"{dataset} {upload.manifest_location}")


@data_app.command("register")
def data_register(
    manifest: Annotated[str, typer.Argument(help="The manifest location `spe data upload` printed.")],
    project: Annotated[str, typer.Option(help="Project slug.")],
    dataset: Annotated[str, typer.Option(help="Dataset name.")],
    signer: Annotated[str | None, typer.Option(
        help="Accept only this holder's key (ed25519:… as upload printed).")] = None,
) -> None:
    """SPE side: check a holder's upload (signature, recipients, every hash) and register it."""
    with _user_errors():
        reg = _open_registry()
        secret_key = ingress.load_hub_secret_key(passphrase=_passphrase())
        with _progress(f"verifying {dataset}", None) as advance:
            info = ingress.register_upload(reg, manifest, project, dataset, secret_key,
                                           actor=actor(), signer=signer, progress=advance)
        typer.echo(f"registered {dataset} to {project} (uploaded by {info.manifest['uploader']}): "
                   f"{info.plaintext_size} bytes, sha256 {info.plaintext_sha256}")


@data_app.command("fetch")
def data_fetch(
    project: Annotated[str, typer.Option(help="Project slug.")],
    dataset: Annotated[str, typer.Option(help="Dataset name.")],
    out: Annotated[Path, typer.Option(help="Directory to decrypt into (as OUT/<dataset>).")],
) -> None:
    """Download, decrypt and verify a dataset on the hub (read-only copy in OUT/<dataset>)."""
    with _user_errors():
        reg = _open_registry()
        info = ingress.find_dataset(reg, project, dataset)
        secret_key = ingress.load_hub_secret_key(passphrase=_passphrase())
        with _progress(f"decrypting {dataset}", info.encrypted_size or None) as advance:
            path = ingress.fetch_dataset(reg, project, dataset, out, secret_key,
                                         actor=actor(), progress=advance)
        typer.echo(f"decrypted and verified {dataset} into {path}")


@data_app.command("rekey")
def data_rekey(
    project: Annotated[str, typer.Option(help="Project slug.")],
    dataset: Annotated[str, typer.Option(help="Dataset name.")],
    recipient_pk: Annotated[list[Path] | None, typer.Option(
        help="A public key that may decrypt besides the SPE's; repeatable. Keys not listed "
             "lose access.")] = None,
) -> None:
    """Set who can decrypt a dataset: re-encrypt it under a new session key, delete the old object."""
    with _user_errors():
        reg = _open_registry()
        secret_key = ingress.load_hub_secret_key(passphrase=_passphrase())
        recipients = ingress.Recipients(
            crypto.derive_public_key(secret_key),
            tuple(crypto.load_public_key(p) for p in recipient_pk or ()))
        info = ingress.find_dataset(reg, project, dataset)
        with _progress(f"re-encrypting {dataset}", info.encrypted_size or None) as advance:
            fingerprints = ingress.rekey_dataset(reg, project, dataset, secret_key, recipients,
                                                 actor=actor(), progress=advance)
        typer.echo(f"{dataset} re-encrypted; only these keys can decrypt it now: "
                   f"{', '.join(fingerprints)}")
