"""Data ingress: encrypt and upload a dataset, and decrypt it on the hub into a workspace's data.

Upload (on the data holder's machine): a file, or a directory packed as a tar stream, is
encrypted with Crypt4GH for the SPE's public key (and optional extra recipients) while it streams
into the object store; the manifest (sizes, sha256 of the plaintext and of each file, recipients,
uploader, time) is bound to the object by an HMAC keyed from its session key and registered.

Fetch (on the hub): the object is streamed, its header opened with the SPE's private key, the
manifest's MAC checked, the payload decrypted into a hidden staging directory and unpacked, every
size and hash compared with the manifest, and only then is the staging directory renamed to its
final name and made read-only. On any mismatch the staging directory is deleted: nothing is
mounted. Every step writes an audit event.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import stat
import tarfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO

from lnds_spe import crypto
from lnds_spe.config import state_dir
from lnds_spe.errors import SPEError
from lnds_spe.policy import ProjectInfo, check_dataset_name
from lnds_spe.storage import LocalStore, S3Store, open_location

if TYPE_CHECKING:  # the registry (SQLAlchemy) stays out of the memory of upload-only processes
    from lnds_spe.projects import DatasetInfo, Registry

Progress = Callable[[int], None]
STAGING_MARK = ".partial-"
PASSPHRASE_ENV = "SPE_KEY_PASSPHRASE"


def _utc_now() -> str:
    """The current UTC time as ISO 8601 text (the audit log's format, without its database)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def keys_dir() -> Path:
    """Where the hub keeps the SPE's key pair: <state>/keys (mode 0700)."""
    return state_dir() / "keys"


def object_key(project: str, dataset: str) -> str:
    """Where a dataset's encrypted object lies in the store."""
    return f"{project}/{dataset}.c4gh"


# Packing

@dataclass(frozen=True)
class Entry:
    """One member of an upload: its path inside the dataset, and on disk."""

    name: str
    path: Path
    is_dir: bool


def list_entries(root: Path) -> list[Entry]:
    """A directory's members in a stable order; refuses links and special files."""
    entries: list[Entry] = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs) + sorted(files):
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode) or not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise SPEError(f"{path} is a link or special file: upload only regular files "
                               "and directories (copy the link's target in its place)")
            entries.append(Entry(relative, path, stat.S_ISDIR(mode)))
    return sorted(entries, key=lambda e: e.name)


class _HashingReader:
    """Reads a file for tar while hashing it, and reports progress."""

    def __init__(self, file: BinaryIO, progress: Progress | None):
        self.file = file
        self.digest = hashlib.sha256()
        self.size = 0
        self.progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self.digest.update(data)
        self.size += len(data)
        if self.progress:
            self.progress(len(data))
        return data


def _tar_info(entry: Entry, size: int) -> tarfile.TarInfo:
    """A tar header that keeps names, sizes and times, and drops owners and permissions."""
    info = tarfile.TarInfo(entry.name)
    info.mtime = int(entry.path.stat().st_mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if entry.is_dir:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    else:
        info.type, info.mode, info.size = tarfile.REGTYPE, 0o644, size
    return info


def _pack_directory(root: Path, sink: crypto.EncryptingWriter,
                    progress: Progress | None) -> list[dict]:
    """Stream `root` as a tar into the encrypting writer; return the per-file manifest list."""
    files: list[dict] = []
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT,
                      bufsize=crypto.CHUNK_SIZE) as tar:
        for entry in list_entries(root):
            if entry.is_dir:
                tar.addfile(_tar_info(entry, 0))
                continue
            with open(entry.path, "rb") as file:
                size = os.fstat(file.fileno()).st_size
                reader = _HashingReader(file, progress)
                try:
                    tar.addfile(_tar_info(entry, size), reader)
                except OSError as exc:
                    raise SPEError(f"{entry.path} changed while it was uploaded ({exc}): "
                                   "upload a copy that nobody writes to") from None
            files.append({"path": entry.name, "size": reader.size,
                          "sha256": reader.digest.hexdigest()})
    return files


# Upload

@dataclass(frozen=True)
class Recipients:
    """Who can open the upload: the SPE's key first, then any extra public keys."""

    spe_public_key: bytes
    extra: tuple[bytes, ...] = ()

    def all(self) -> list[bytes]:
        return list(dict.fromkeys((self.spe_public_key, *self.extra)))


@dataclass(frozen=True)
class Encrypted:
    """What encrypting an upload measured (the manifest's core) and the session key used."""

    manifest: dict
    session_key: bytes


def encrypt_to_store(source: Path, store: LocalStore | S3Store, key: str, recipients: Recipients,
                     *, writer_secret_key: bytes | None = None,
                     progress: Progress | None = None) -> Encrypted:
    """Encrypt a file or directory into the store under `key`, measuring it for the manifest."""
    if not source.exists():
        raise SPEError(f"{source} does not exist: give a file or a directory to upload")
    is_dir = source.is_dir()
    if not is_dir and not source.is_file():
        raise SPEError(f"{source} is not a regular file or directory")
    session_key = os.urandom(32)
    writer_key = writer_secret_key or os.urandom(32)
    header = crypto.make_header(session_key, writer_key, recipients.all())
    expected = source.stat().st_size if not is_dir else 0
    with ThreadPoolExecutor(1, thread_name_prefix="sha256") as pool, \
            store.writer(key, expected_size=expected + expected // 2000) as sink:
        sink.write(header)
        if is_dir:
            encryptor = crypto.EncryptingWriter(sink, session_key, pool)
            files = _pack_directory(source, encryptor, progress)
            encryptor.finish()
        else:
            with open(source, "rb") as file:
                encryptor = crypto.encrypt_stream(file, sink, session_key, pool, progress)
            files = [{"path": source.name, "size": encryptor.plain.size,
                      "sha256": encryptor.plain.hexdigest()}]
    manifest = {
        "format": crypto.MANIFEST_FORMAT,
        "kind": "tar" if is_dir else "file",
        "plaintext_size": encryptor.plain.size,
        "plaintext_sha256": encryptor.plain.hexdigest(),
        "files": files,
        "header_size": len(header),
        "payload_size": encryptor.encrypted_size,
        "recipients": [crypto.fingerprint(k) for k in recipients.all()],
        "writer": crypto.fingerprint(crypto.derive_public_key(writer_key)),
    }
    return Encrypted(manifest, session_key)


def upload_dataset(registry: Registry, source: Path, project: str, dataset: str, *,
                   store: LocalStore | S3Store, recipients: Recipients, actor: str,
                   writer_secret_key: bytes | None = None,
                   progress: Progress | None = None) -> DatasetInfo:
    """Encrypt, store and register a dataset; audited as `dataset.upload`."""
    registry.get_project(project)
    check_dataset_name(dataset)
    if any(d.name == dataset for d in registry.datasets(project)):
        raise SPEError(f"project {project} already has a dataset {dataset!r}: choose another "
                       "name (or re-key it with `spe data reencrypt-header`)")
    key = object_key(project, dataset)
    store.abort_incomplete(key)
    encrypted = encrypt_to_store(source, store, key, recipients,
                                 writer_secret_key=writer_secret_key, progress=progress)
    manifest = {**encrypted.manifest, "project": project, "dataset": dataset, "uploader": actor,
                "created_at": _utc_now()}
    manifest["mac"] = crypto.manifest_mac(manifest, encrypted.session_key)
    encrypted_size = manifest["header_size"] + manifest["payload_size"]
    try:
        info = registry.add_dataset(project, dataset, store.location(key), actor=actor,
                                    encrypted_size=encrypted_size,
                                    plaintext_size=manifest["plaintext_size"],
                                    plaintext_sha256=manifest["plaintext_sha256"],
                                    manifest=manifest)
    except BaseException:
        store.delete(key)
        raise
    registry.audit.append(actor, "dataset.upload", project=project, target=dataset, details={
        "location": info.location, "encrypted_size": encrypted_size,
        "plaintext_size": manifest["plaintext_size"],
        "plaintext_sha256": manifest["plaintext_sha256"], "files": len(manifest["files"]),
        "recipients": manifest["recipients"]})
    return info


# Fetch and decrypt

def _check_manifest_shape(manifest: dict, what: str) -> None:
    """The fields decryption relies on are present and of the right kind."""
    if manifest.get("format") != crypto.MANIFEST_FORMAT:
        raise SPEError(f"{what} has no SPE manifest (format {manifest.get('format')!r}): upload "
                       "it with `spe data upload`")
    if manifest.get("kind") not in ("file", "tar") or not isinstance(manifest.get("files"), list):
        raise SPEError(f"{what}: its manifest is malformed")


def _safe_member_path(name: str, what: str) -> PurePosixPath:
    """A tar member name that stays inside the dataset directory."""
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or any(p in ("", ".", "..") for p in path.parts):
        raise SPEError(f"{what} contains an unsafe path {name!r}: refused")
    return path


def _write_plain(reader: crypto.DecryptingReader, target: Path) -> dict:
    """Write the decrypted stream to one new file; its size and sha256 come from the reader."""
    with open(target, "xb") as out:
        while chunk := reader.next_chunk():
            out.write(chunk)
    return {"path": target.name, "size": reader.plain.size, "sha256": reader.plain.hexdigest()}


def _unpack_tar(reader: crypto.DecryptingReader, staging: Path, what: str) -> list[dict]:
    """Extract regular files and directories from the decrypted tar stream, hashing each file."""
    files: list[dict] = []
    with tarfile.open(fileobj=reader, mode="r|", bufsize=crypto.CHUNK_SIZE) as tar:
        for member in tar:
            relative = _safe_member_path(member.name, what)
            target = staging.joinpath(*relative.parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if not member.isfile():
                raise SPEError(f"{what} contains {member.name!r}, not a regular file: refused")
            target.parent.mkdir(parents=True, exist_ok=True)
            digest, size = hashlib.sha256(), 0
            source = tar.extractfile(member)
            with open(target, "xb") as out:
                while data := source.read(crypto.CHUNK_SIZE):
                    digest.update(data)
                    out.write(data)
                    size += len(data)
            files.append({"path": member.name, "size": size, "sha256": digest.hexdigest()})
    return files


def _verify(manifest: dict, reader: crypto.DecryptingReader, files: list[dict], what: str) -> None:
    """Compare what was decrypted with the manifest; SPEError naming the first difference."""
    if reader.payload_size != manifest.get("payload_size"):
        raise SPEError(f"{what} is truncated or padded: {reader.payload_size} encrypted bytes, "
                       f"the manifest says {manifest.get('payload_size')}")
    if reader.plain.size != manifest["plaintext_size"]:
        raise SPEError(f"{what}: decrypted size {reader.plain.size} differs from the manifest's "
                       f"{manifest['plaintext_size']} (truncated or altered)")
    if reader.plain.hexdigest() != manifest["plaintext_sha256"]:
        raise SPEError(f"{what}: decrypted sha256 differs from the manifest (segments reordered "
                       "or altered)")
    expected = sorted(manifest["files"], key=lambda f: f["path"])
    if sorted(files, key=lambda f: f["path"]) != expected:
        raise SPEError(f"{what}: its files differ from the manifest's file list")


def set_read_only(root: Path) -> None:
    """Files 0444, directories 0755: the workspace user reads, nobody but the hub changes."""
    for folder, dirs, files in os.walk(root):
        for name in files:
            os.chmod(os.path.join(folder, name), 0o444)
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o755)
    os.chmod(root, 0o755)


def decrypt_dataset(dataset: DatasetInfo, destination: Path, secret_key: bytes, *,
                    project: str = "", progress: Progress | None = None) -> Path:
    """Fetch, decrypt and verify a dataset into `destination/<name>`; nothing left on failure."""
    what = f"dataset {dataset.name}" + (f" of project {project}" if project else "")
    manifest = dataset.manifest
    _check_manifest_shape(manifest, what)
    target = destination / dataset.name
    if target.exists():
        raise SPEError(f"{target} already exists: remove it or choose another directory")
    store, key = open_location(dataset.location)
    destination.mkdir(parents=True, exist_ok=True)
    staging = destination / f".{dataset.name}{STAGING_MARK}{secrets.token_hex(6)}"
    staging.mkdir(mode=0o700)
    try:
        with store.reader(key) as source, \
                ThreadPoolExecutor(1, thread_name_prefix="sha256") as pool:
            opened = crypto.read_header(source, secret_key, what)
            if not crypto.manifest_mac_matches(manifest, opened.session_key):
                raise SPEError(f"{what}: the manifest does not match the encrypted object (it "
                               "was altered, or belongs to another upload): nothing was used")
            reader = crypto.DecryptingReader(source, opened.session_key, pool, what, progress)
            if manifest["kind"] == "file":
                name = manifest["files"][0]["path"] if manifest["files"] else dataset.name
                files = [_write_plain(reader, staging / _safe_member_path(name, what).name)]
            else:
                files = _unpack_tar(reader, staging, what)
                reader.drain()
            _verify(manifest, reader, files, what)
        set_read_only(staging)
        os.rename(staging, target)
    except OSError as exc:
        remove_tree(staging)
        raise SPEError(f"could not write {what} into {destination}: "
                       f"{exc.strerror or exc} (free some space or choose another place)") from None
    except tarfile.TarError as exc:
        remove_tree(staging)
        raise SPEError(f"{what}: its decrypted tar stream is damaged ({exc})") from None
    except BaseException:
        remove_tree(staging)
        raise
    return target


def remove_tree(path: Path) -> None:
    """Delete a (possibly read-only) directory tree, if present."""
    if not path.exists():
        return
    for folder, dirs, _files in os.walk(path):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o700)
    os.chmod(path, 0o700)
    shutil.rmtree(path)


def fetch_dataset(registry: Registry, project: str, dataset: str, destination: Path,
                  secret_key: bytes, *, actor: str, progress: Progress | None = None) -> Path:
    """Decrypt a registered dataset into `destination/<dataset>`; audited either way."""
    info = find_dataset(registry, project, dataset)
    try:
        path = decrypt_dataset(info, destination, secret_key, project=project, progress=progress)
    except SPEError as exc:
        registry.audit.append(actor, "dataset.decrypt", project=project, target=dataset,
                              outcome="failed", details={"reason": str(exc)})
        raise
    registry.audit.append(actor, "dataset.fetch", project=project, target=dataset,
                          details={"location": info.location})
    registry.audit.append(actor, "dataset.decrypt", project=project, target=dataset,
                          details={"path": str(path), "plaintext_sha256": info.plaintext_sha256})
    return path


def find_dataset(registry: Registry, project: str, dataset: str) -> DatasetInfo:
    """A project's dataset by name; SPEError naming the project's datasets if unknown."""
    datasets = registry.datasets(project)
    for info in datasets:
        if info.name == dataset:
            return info
    known = ", ".join(d.name for d in datasets) or "none"
    raise SPEError(f"project {project} has no dataset {dataset!r} (it has: {known})")


def delete_decrypted(registry: Registry, project: str, path: Path, *, actor: str) -> None:
    """Delete a decrypted copy from the hub (after its workspace stops); audited."""
    existed = path.exists()
    remove_tree(path)
    if existed:
        registry.audit.append(actor, "dataset.delete", project=project, target=path.name,
                              details={"path": str(path)})


# The spawner's hook

def prepare_encrypted_datasets(project: ProjectInfo, datasets: Sequence[DatasetInfo],
                               destination: Path, *, registry: Registry, secret_key: bytes,
                               actor: str = "hub",
                               plain_state_dir: Path | None = None) -> dict[str, Path]:
    """Decrypt and verify each dataset into `destination/<name>` (the spawner's hook).

    Datasets registered without a manifest (plain demo data) are copied from
    `plain_state_dir`/datasets/<project>/<name> when that is given, else refused. On any
    failure everything prepared so far is deleted and SPEError says which dataset failed.
    """
    from lnds_spe.hub.datasets import prepare_plain_datasets

    prepared: dict[str, Path] = {}
    try:
        for dataset in datasets:
            if not dataset.manifest and plain_state_dir is not None:
                prepared |= prepare_plain_datasets(project, [dataset], destination,
                                                   state_dir=plain_state_dir)
                continue
            prepared[dataset.name] = fetch_dataset(registry, project.slug, dataset.name,
                                                   destination, secret_key, actor=actor)
    except BaseException:
        for path in prepared.values():
            remove_tree(path)
        raise
    return prepared


def load_hub_secret_key(private_key_path: Path | None = None,
                        passphrase: Callable[[], str] | None = None) -> bytes:
    """The SPE's private key for the hub: <state>/keys/spe.sec, passphrase $SPE_KEY_PASSPHRASE."""
    def from_env() -> str:
        value = os.environ.get(PASSPHRASE_ENV)
        if not value:
            raise SPEError(f"set {PASSPHRASE_ENV} to the passphrase of the SPE's private key")
        return value

    return crypto.load_private_key(private_key_path or keys_dir() / crypto.PRIVATE_KEY_NAME,
                                   passphrase or from_env)


def make_encrypted_preparer(registry: Registry, *, private_key_path: Path | None = None,
                            passphrase: Callable[[], str] | None = None, actor: str = "hub",
                            plain_state_dir: Path | None = None
                            ) -> Callable[[ProjectInfo, Sequence[DatasetInfo], Path],
                                          dict[str, Path]]:
    """A `PrepareDatasets` hook with the key loaded once (a wrong passphrase fails at start)."""
    secret_key = load_hub_secret_key(private_key_path, passphrase)

    def prepare(project: ProjectInfo, datasets: Sequence[DatasetInfo],
                destination: Path) -> dict[str, Path]:
        return prepare_encrypted_datasets(project, datasets, destination, registry=registry,
                                          secret_key=secret_key, actor=actor,
                                          plain_state_dir=plain_state_dir)

    return prepare


# Re-keying

def reencrypt_header(registry: Registry, project: str, dataset: str, secret_key: bytes,
                     recipients: Recipients, *, actor: str,
                     progress: Progress | None = None) -> list[str]:
    """Give a dataset's object a new header for exactly these recipients; payload copied as is.

    Only the header changes (the session key is the same, so the manifest's MAC still holds);
    the payload bytes are streamed unchanged into a new object that replaces the old one only
    when complete. Returns the new recipients' fingerprints.
    """
    info = find_dataset(registry, project, dataset)
    what = f"dataset {dataset} of project {project}"
    _check_manifest_shape(info.manifest, what)
    store, key = open_location(info.location)
    with store.reader(key) as source:
        opened = crypto.read_header(source, secret_key, what)
        if not crypto.manifest_mac_matches(info.manifest, opened.session_key):
            raise SPEError(f"{what}: the manifest does not match the encrypted object: "
                           "not re-keying it")
        header = crypto.rekey_header(opened, secret_key, recipients.all())
        copied = 0
        with store.writer(key, expected_size=info.encrypted_size) as sink:
            sink.write(header)
            buffer = bytearray(crypto.CIPHER_CHUNK_SIZE)
            view = memoryview(buffer)
            while n := crypto.readinto_full(source, view):
                sink.write(view[:n])
                copied += n
                if progress:
                    progress(n)
            if copied != info.manifest.get("payload_size"):
                raise SPEError(f"{what}: the stored payload has {copied} bytes, the manifest "
                               f"says {info.manifest.get('payload_size')}: not re-keying it")
    fingerprints = [crypto.fingerprint(k) for k in recipients.all()]
    registry.audit.append(actor, "dataset.rekey", project=project, target=dataset,
                          details={"recipients": fingerprints, "header_size": len(header)})
    return fingerprints
