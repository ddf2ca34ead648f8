"""Data ingress: encrypt and upload a dataset, and decrypt it on the hub into a workspace's data.

Upload (on the data holder's machine, no registry or audit rights): a file, or a directory packed
as a tar stream, is encrypted with Crypt4GH for the SPE's public key (and optional extra
recipients) while it streams into the object store under a key of its own; the manifest (project,
dataset, sizes, sha256 of the plaintext and of each file, recipients, time) is bound to the object
by an HMAC keyed from its session key, signed with the holder's Ed25519 key and stored beside it.

Registration (on the SPE side): the signature, the recipients, the project and dataset and every
hash are checked (the object is decrypted to nowhere), then the dataset is registered with the
holder's key as its uploader. An admin of the SPE may also upload and register in one step.

Fetch (on the hub): the object is streamed, its header opened with the SPE's private key, the
manifest's MAC checked, the payload decrypted into a hidden staging directory and unpacked, every
size and hash compared with the manifest, and only then is the staging directory renamed to its
final name and made read-only. On any mismatch the staging directory is deleted: nothing is
mounted. Every step writes an audit event.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import stat
import tarfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO

from lnds_spe import crypto
from lnds_spe.clock import utc_now
from lnds_spe.config import state_dir
from lnds_spe.datasets import PrepareDatasets, make_read_only, remove_tree
from lnds_spe.errors import SPEError
from lnds_spe.policy import ProjectInfo, check_dataset_name, check_slug
from lnds_spe.storage import PARTIAL_MARK, ObjectStore, hold_credentials, open_location

if TYPE_CHECKING:  # the registry (SQLAlchemy) stays out of the memory of upload-only processes
    from lnds_spe.projects import DatasetInfo, Registry

Progress = Callable[[int], None]
PASSPHRASE_ENV = "SPE_KEY_PASSPHRASE"
HOLDER_PASSPHRASE_ENV = "SPE_HOLDER_PASSPHRASE"
DEMO_PASSPHRASE_FILE = "demo-passphrase"  # in the key dir; read by the hub in demo mode only
MANIFEST_SUFFIX = ".manifest.json"
MAX_MANIFEST_SIZE = 64 * 1024 * 1024
# An unfinished upload older than this was interrupted (a live one is never aborted by another).
STALE_UPLOAD_AGE = timedelta(days=1)


class ManifestMismatch(SPEError):
    """A manifest names another project or dataset than the registry row it is served under."""


class UnsafeMember(SPEError):
    """A tar member the SPE does not unpack: sparse, special, unlisted or of another size."""


class NoRoom(SPEError):
    """The destination has less free space than the dataset needs."""


class PlainDatasetRefused(SPEError):
    """A dataset without a manifest, where a key is configured (no plain downgrade)."""


def keys_dir() -> Path:
    """Where the hub keeps the SPE's key pair: <state>/keys (mode 0700)."""
    return state_dir() / "keys"


def new_object_key(project: str, dataset: str) -> str:
    """A fresh key for one upload: concurrent uploads under one name never share an object."""
    return f"{project}/{dataset}-{secrets.token_hex(8)}.c4gh"


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


def encrypt_to_store(source: Path, store: ObjectStore, key: str, recipients: Recipients,
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


def _sealed_manifest(encrypted: Encrypted, project: str, dataset: str, uploader: str) -> dict:
    """The full manifest of an upload, bound to its object by the MAC."""
    manifest = {**encrypted.manifest, "project": project, "dataset": dataset, "uploader": uploader,
                "created_at": utc_now()}
    manifest["mac"] = crypto.manifest_mac(manifest, encrypted.session_key)
    return manifest


def _register(registry: Registry, project: str, dataset: str, store: ObjectStore,
              key: str, manifest: dict, *, actor: str, action: str,
              delete_on_failure: bool) -> DatasetInfo:
    """Register an uploaded object and audit `action`; optionally delete it if that fails."""
    encrypted_size = manifest["header_size"] + manifest["payload_size"]
    try:
        info = registry.add_dataset(project, dataset, store.location(key), actor=actor,
                                    encrypted_size=encrypted_size,
                                    plaintext_size=manifest["plaintext_size"],
                                    plaintext_sha256=manifest["plaintext_sha256"],
                                    manifest=manifest)
    except BaseException:
        if delete_on_failure:
            store.delete(key)  # this upload's own key: a concurrent upload's object is untouched
        raise
    registry.audit.append(actor, action, project=project, target=dataset, details={
        "location": info.location, "encrypted_size": encrypted_size,
        "plaintext_size": manifest["plaintext_size"],
        "plaintext_sha256": manifest["plaintext_sha256"], "files": len(manifest["files"]),
        "recipients": manifest["recipients"], "uploader": manifest["uploader"]})
    return info


def upload_dataset(registry: Registry, source: Path, project: str, dataset: str, *,
                   store: ObjectStore, recipients: Recipients, actor: str,
                   writer_secret_key: bytes | None = None,
                   progress: Progress | None = None) -> DatasetInfo:
    """The SPE side uploads and registers in one step (the demo, an admin); `dataset.upload`."""
    registry.get_project(project)
    check_dataset_name(dataset)
    if any(d.name == dataset for d in registry.datasets(project)):
        raise SPEError(f"project {project} already has a dataset {dataset!r}: choose another "
                       "name (or change who can read it with `spe data rekey`)")
    key = new_object_key(project, dataset)
    store.abort_incomplete(f"{project}/{dataset}-", older_than=STALE_UPLOAD_AGE)
    encrypted = encrypt_to_store(source, store, key, recipients,
                                 writer_secret_key=writer_secret_key, progress=progress)
    manifest = _sealed_manifest(encrypted, project, dataset, actor)
    return _register(registry, project, dataset, store, key, manifest, actor=actor,
                     action="dataset.upload", delete_on_failure=True)


@dataclass(frozen=True)
class SignedUpload:
    """What a data holder's upload left in the store: the object and its signed manifest."""

    location: str
    manifest_location: str
    manifest: dict


def upload_signed(source: Path, project: str, dataset: str, *, store: ObjectStore,
                  recipients: Recipients, signing_key,
                  progress: Progress | None = None) -> SignedUpload:
    """The data holder's upload: object and signed manifest into the store; no registry at all."""
    from cryptography.hazmat.primitives import serialization

    check_slug(project)
    check_dataset_name(dataset)
    key = new_object_key(project, dataset)
    store.abort_incomplete(f"{project}/{dataset}-", older_than=STALE_UPLOAD_AGE)
    encrypted = encrypt_to_store(source, store, key, recipients, progress=progress)
    public = signing_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                   serialization.PublicFormat.Raw)
    manifest = crypto.sign_manifest(
        _sealed_manifest(encrypted, project, dataset, crypto.signer_fingerprint(public)),
        signing_key)
    try:
        with store.writer(key + MANIFEST_SUFFIX) as sink:
            sink.write(json.dumps(manifest, sort_keys=True, indent=1).encode())
    except BaseException:
        store.delete(key)
        raise
    return SignedUpload(store.location(key), store.location(key + MANIFEST_SUFFIX), manifest)


def _read_manifest(store: ObjectStore, key: str, what: str) -> dict:
    """A manifest object as a dict (bounded in size); SPEError if it is not one."""
    with store.reader(key) as source:
        text = crypto.read_full(source, MAX_MANIFEST_SIZE + 1)
    if len(text) > MAX_MANIFEST_SIZE:
        raise SPEError(f"{what} is larger than {MAX_MANIFEST_SIZE} bytes: not a manifest")
    try:
        manifest = json.loads(text)
    except ValueError:
        raise SPEError(f"{what} is not a JSON manifest: give the .manifest.json location "
                       "`spe data upload` printed") from None
    if not isinstance(manifest, dict):
        raise SPEError(f"{what} is not a JSON manifest")
    return manifest


def register_upload(registry: Registry, manifest_location: str, project: str, dataset: str,
                    secret_key: bytes, *, actor: str, signer: str | None = None,
                    progress: Progress | None = None) -> DatasetInfo:
    """The SPE side of a holder's upload: check it all, then register it; audited either way.

    Checked: the manifest's signature (and, if given, that `signer` made it), that it names this
    project and dataset, that the SPE's key is a recipient, and every size and hash of the object,
    decrypted without writing anything. The holder's key is recorded as the uploader.
    """
    registry.get_project(project)
    check_dataset_name(dataset)
    what = f"upload {manifest_location}"
    try:
        if any(d.name == dataset for d in registry.datasets(project)):
            raise SPEError(f"project {project} already has a dataset {dataset!r}: this upload "
                           "was made for that name; remove the registered one first, or ask the "
                           "holder to upload under another name")
        store, key = open_location(manifest_location)
        if not key.endswith(MANIFEST_SUFFIX):
            raise SPEError(f"{manifest_location} is not a manifest: give the .manifest.json "
                           "location `spe data upload` printed")
        manifest = _read_manifest(store, key, what)
        uploader = crypto.check_manifest_signature(manifest, what)
        if signer is not None and uploader != signer:
            raise crypto.BadSignature(f"{what} is signed by {uploader}, not by {signer}: "
                                      "not registered")
        if manifest.get("uploader") != uploader:
            raise crypto.BadSignature(f"{what} names uploader {manifest.get('uploader')!r} but is "
                                      f"signed by {uploader}: not registered")
        _check_manifest_shape(manifest, what)
        _check_binding(manifest, project, dataset, what)
        spe = crypto.fingerprint(crypto.derive_public_key(secret_key))
        if spe not in manifest["recipients"]:
            raise SPEError(f"{what} is not encrypted for this SPE's key ({spe}): the holder must "
                           "upload again with the key `spe keys export` prints")
        object_key = key.removesuffix(MANIFEST_SUFFIX)
        _decrypt_verified(store, object_key, manifest, secret_key, what, None, progress)
    except SPEError as exc:
        registry.audit.append(actor, "dataset.register", project=project, target=dataset,
                              outcome="denied", details={"reason": str(exc),
                                                         "manifest": manifest_location})
        raise
    # the holder's upload stays in the store if this fails (e.g. a concurrent registration)
    return _register(registry, project, dataset, store, object_key, manifest, actor=actor,
                     action="dataset.register", delete_on_failure=False)


# Fetch and decrypt

def _check_manifest_shape(manifest: dict, what: str) -> None:
    """The fields decryption relies on are present, of the right kind, and add up."""
    if manifest.get("format") != crypto.MANIFEST_FORMAT:
        raise SPEError(f"{what} has no SPE manifest (format {manifest.get('format')!r}): upload "
                       "it with `spe data upload`")
    files = manifest.get("files")
    sizes = ("plaintext_size", "payload_size", "header_size")
    if (manifest.get("kind") not in ("file", "tar") or not isinstance(files, list)
            or not all(_is_count(manifest.get(name)) for name in sizes)
            or not all(isinstance(f, dict) and isinstance(f.get("path"), str)
                       and _is_count(f.get("size")) and isinstance(f.get("sha256"), str)
                       for f in files)
            or not isinstance(manifest.get("recipients"), list)):
        raise SPEError(f"{what}: its manifest is malformed")
    if manifest["kind"] == "file" and len(files) != 1:
        raise SPEError(f"{what}: its manifest lists {len(files)} files for a single-file upload")
    if (sum(f["size"] for f in files) > manifest["plaintext_size"]
            or manifest["plaintext_size"] > manifest["payload_size"]):
        raise SPEError(f"{what}: its manifest's sizes do not add up (files larger than the "
                       "plaintext, or plaintext larger than the payload): refused")


def _is_count(value: object) -> bool:
    """A non-negative int (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_binding(manifest: dict, project: str, dataset: str, what: str) -> None:
    """The manifest was made for this project and dataset, not moved here from another."""
    if (manifest.get("project"), manifest.get("dataset")) != (project, dataset):
        raise ManifestMismatch(
            f"{what}: its manifest was made for dataset {manifest.get('dataset')!r} of project "
            f"{manifest.get('project')!r}, not this one: nothing was used (register each upload "
            "under the project and dataset it was made for)")


def _check_room(destination: Path, manifest: dict, what: str) -> None:
    """Refuse before decrypting when the destination cannot hold the plaintext."""
    free = shutil.disk_usage(destination).free
    if manifest["plaintext_size"] > free:
        raise NoRoom(f"{what} needs {manifest['plaintext_size']} bytes, {destination} has "
                     f"{free} free: free some space or choose another place")


def _safe_member_path(name: str, what: str) -> PurePosixPath:
    """A tar member name that stays inside the dataset directory."""
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or any(p in ("", ".", "..") for p in path.parts):
        raise UnsafeMember(f"{what} contains an unsafe path {name!r}: refused")
    return path


def _copy_exactly(source: BinaryIO, size: int, target: Path | None) -> str:
    """Copy `size` bytes of `source` into a new file (or nowhere); their sha256."""
    digest = hashlib.sha256()
    out = open(target, "xb") if target is not None else None  # noqa: SIM115 (closed below)
    try:
        left = size
        while left and (data := source.read(min(crypto.CHUNK_SIZE, left))):
            digest.update(data)
            if out is not None:
                out.write(data)
            left -= len(data)
    finally:
        if out is not None:
            out.close()
    return digest.hexdigest()


def _write_plain(reader: crypto.DecryptingReader, target: Path | None, name: str) -> dict:
    """Write the decrypted stream to one new file (or nowhere); its size and sha256."""
    out = open(target, "xb") if target is not None else None  # noqa: SIM115 (closed below)
    try:
        while chunk := reader.next_chunk():
            if out is not None:
                out.write(chunk)
    finally:
        if out is not None:
            out.close()
    return {"path": name, "size": reader.plain.size, "sha256": reader.plain.hexdigest()}


def _unpack_tar(reader: crypto.DecryptingReader, staging: Path | None, manifest: dict,
                what: str) -> list[dict]:
    """Extract (or only hash) the files of the decrypted tar stream the manifest lists.

    Each member must be a directory or a regular, non-sparse file the manifest lists once with
    exactly its size; nothing beyond that size is ever written.
    """
    expected = {f["path"]: f["size"] for f in manifest["files"]}
    files: list[dict] = []
    with tarfile.open(fileobj=reader, mode="r|", bufsize=crypto.CHUNK_SIZE) as tar:
        for member in tar:
            relative = _safe_member_path(member.name, what)
            target = staging.joinpath(*relative.parts) if staging is not None else None
            if member.isdir():
                if target is not None:
                    target.mkdir(parents=True, exist_ok=True)
                continue
            if not member.isfile() or member.issparse():
                kind = "a sparse file" if member.issparse() else "not a regular file"
                raise UnsafeMember(f"{what} contains {member.name!r}, {kind}: refused")
            declared = expected.pop(member.name, None)
            if declared is None:
                raise UnsafeMember(f"{what} contains {member.name!r}, which its manifest does not "
                                   "list (or lists once): refused")
            if member.size != declared:
                raise UnsafeMember(f"{what}: member {member.name!r} has {member.size} bytes, its "
                                   f"manifest says {declared}: refused")
            if target is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
            sha256 = _copy_exactly(tar.extractfile(member), declared, target)
            files.append({"path": member.name, "size": declared, "sha256": sha256})
    return files


def _verify(manifest: dict, reader: crypto.DecryptingReader, files: list[dict], what: str) -> None:
    """Compare what was decrypted with the manifest; SPEError naming the first difference."""
    _verify_stream(manifest, reader, what)
    expected = sorted(manifest["files"], key=lambda f: f["path"])
    if sorted(files, key=lambda f: f["path"]) != expected:
        raise SPEError(f"{what}: its files differ from the manifest's file list")


def _verify_stream(manifest: dict, reader: crypto.DecryptingReader, what: str) -> None:
    """The payload and plaintext read to the end match the manifest's sizes and sha256."""
    if reader.payload_size != manifest.get("payload_size"):
        raise SPEError(f"{what} is truncated or padded: {reader.payload_size} encrypted bytes, "
                       f"the manifest says {manifest.get('payload_size')}")
    if reader.plain.size != manifest["plaintext_size"]:
        raise SPEError(f"{what}: decrypted size {reader.plain.size} differs from the manifest's "
                       f"{manifest['plaintext_size']} (truncated or altered)")
    if reader.plain.hexdigest() != manifest["plaintext_sha256"]:
        raise SPEError(f"{what}: decrypted sha256 differs from the manifest (segments reordered "
                       "or altered)")


def _open_payload(source: BinaryIO, manifest: dict, secret_key: bytes, what: str,
                  pool: ThreadPoolExecutor, progress: Progress | None) -> crypto.DecryptingReader:
    """Open the header with our key, check the manifest's MAC, and read the payload from here."""
    opened = crypto.read_header(source, secret_key, what)
    if not crypto.manifest_mac_matches(manifest, opened.session_key):
        raise SPEError(f"{what}: the manifest does not match the encrypted object (it "
                       "was altered, or belongs to another upload): nothing was used")
    return crypto.DecryptingReader(source, opened.session_key, pool, what, progress)


def _decrypt_verified(store: ObjectStore, key: str, manifest: dict, secret_key: bytes,
                      what: str, staging: Path | None, progress: Progress | None) -> None:
    """Decrypt an object into `staging` (None: nowhere, only hashing) and check it all."""
    with store.reader(key) as source, \
            ThreadPoolExecutor(1, thread_name_prefix="sha256") as pool:
        reader = _open_payload(source, manifest, secret_key, what, pool, progress)
        if manifest["kind"] == "file":
            name = _safe_member_path(manifest["files"][0]["path"], what).name
            files = [_write_plain(reader, staging / name if staging is not None else None, name)]
        else:
            try:
                files = _unpack_tar(reader, staging, manifest, what)
            except tarfile.TarError as exc:
                raise SPEError(f"{what}: its decrypted tar stream is damaged ({exc})") from None
            reader.drain()
        _verify(manifest, reader, files, what)


def decrypt_dataset(dataset: DatasetInfo, destination: Path, secret_key: bytes, *, project: str,
                    progress: Progress | None = None) -> Path:
    """Fetch, decrypt and verify a dataset into `destination/<name>`; nothing left on failure."""
    what = f"dataset {dataset.name} of project {project}"
    manifest = dataset.manifest
    _check_manifest_shape(manifest, what)
    _check_binding(manifest, project, dataset.name, what)
    target = destination / dataset.name
    if target.exists():
        raise SPEError(f"{target} already exists: remove it or choose another directory")
    store, key = open_location(dataset.location)
    destination.mkdir(parents=True, exist_ok=True)
    _check_room(destination, manifest, what)
    staging = destination / f".{dataset.name}{PARTIAL_MARK}{secrets.token_hex(6)}"
    staging.mkdir(mode=0o700)
    try:
        _decrypt_verified(store, key, manifest, secret_key, what, staging, progress)
        make_read_only(staging)
        os.rename(staging, target)
    except OSError as exc:
        remove_tree(staging)
        raise SPEError(f"could not write {what} into {destination}: "
                       f"{exc.strerror or exc} (free some space or choose another place)") from None
    except BaseException:
        remove_tree(staging)
        raise
    return target


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

    With a key configured every dataset must have a manifest: a plain one (even if staged under
    `plain_state_dir`) is refused, audited, so nothing is served unverified. On any failure
    everything prepared so far is deleted and SPEError says which dataset failed.
    """
    prepared: dict[str, Path] = {}
    try:
        for dataset in datasets:
            if not dataset.manifest:
                staged = f" (staged under {plain_state_dir})" if plain_state_dir else ""
                reason = (f"dataset {dataset.name} of project {project.slug} has no manifest"
                          f"{staged}, and this SPE serves only encrypted, verified data: upload "
                          "it with `spe data upload` and register it")
                registry.audit.append(actor, "dataset.decrypt", project=project.slug,
                                      target=dataset.name, outcome="denied",
                                      details={"reason": reason})
                raise PlainDatasetRefused(reason)
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


def scrub_hub_environment() -> None:
    """Take the hub's secrets out of its environment, so no child process inherits them.

    The key passphrases are dropped (the key is loaded by then); the S3 credentials are held
    in memory for this process's own S3 clients.
    """
    for name in (PASSPHRASE_ENV, HOLDER_PASSPHRASE_ENV):
        os.environ.pop(name, None)
    hold_credentials()


def hub_passphrase(key_dir: Path, *, demo_mode: bool) -> Callable[[], str] | None:
    """Where the hub reads its key's passphrase: None means $SPE_KEY_PASSPHRASE (required).

    The demo's generated passphrase file is used only in demo mode and when the variable is
    unset; outside demo mode a passphrase file beside the key is never read.
    """
    demo_file = key_dir / DEMO_PASSPHRASE_FILE
    if demo_mode and not os.environ.get(PASSPHRASE_ENV) and demo_file.exists():
        return demo_file.read_text
    return None


def make_encrypted_preparer(registry: Registry, *, private_key_path: Path | None = None,
                            passphrase: Callable[[], str] | None = None, actor: str = "hub",
                            plain_state_dir: Path | None = None
                            ) -> PrepareDatasets:
    """A `PrepareDatasets` hook with the key loaded once (a wrong passphrase fails at start).

    Once the key is loaded the hub's secrets leave its environment (`scrub_hub_environment`).
    """
    secret_key = load_hub_secret_key(private_key_path, passphrase)
    scrub_hub_environment()

    def prepare(project: ProjectInfo, datasets: Sequence[DatasetInfo],
                destination: Path) -> dict[str, Path]:
        return prepare_encrypted_datasets(project, datasets, destination, registry=registry,
                                          secret_key=secret_key, actor=actor,
                                          plain_state_dir=plain_state_dir)

    return prepare


# Re-keying

def rekey_dataset(registry: Registry, project: str, dataset: str, secret_key: bytes,
                  recipients: Recipients, *, actor: str,
                  progress: Progress | None = None) -> list[str]:
    """Re-encrypt a dataset for exactly these recipients, under a new session key.

    The payload is decrypted and encrypted again into a new object (checked against the manifest
    before it is kept), the registry then points at it, and the old object is deleted: a removed
    recipient who kept the old session key has nothing left to read. Returns the fingerprints.
    """
    info = find_dataset(registry, project, dataset)
    what = f"dataset {dataset} of project {project}"
    _check_manifest_shape(info.manifest, what)
    _check_binding(info.manifest, project, dataset, what)
    store, old_key = open_location(info.location)
    new_key = new_object_key(project, dataset)
    session_key = os.urandom(32)
    writer_key = os.urandom(32)
    header = crypto.make_header(session_key, writer_key, recipients.all())
    with store.reader(old_key) as source, \
            ThreadPoolExecutor(2, thread_name_prefix="sha256") as pool:
        reader = _open_payload(source, info.manifest, secret_key, what, pool, progress)
        with store.writer(new_key, expected_size=info.encrypted_size) as sink:
            sink.write(header)
            encryptor = crypto.EncryptingWriter(sink, session_key, pool)
            while chunk := reader.next_chunk():
                encryptor.write(chunk)
            encryptor.finish()
            _verify_stream(info.manifest, reader, what)  # raising here drops the new object
    fingerprints = [crypto.fingerprint(k) for k in recipients.all()]
    manifest = {k: v for k, v in info.manifest.items() if k not in ("mac", "signature")}
    manifest |= {"header_size": len(header), "payload_size": encryptor.encrypted_size,
                 "recipients": fingerprints,
                 "writer": crypto.fingerprint(crypto.derive_public_key(writer_key)),
                 "rekeyed_at": utc_now(), "rekeyed_by": actor}
    manifest["mac"] = crypto.manifest_mac(manifest, session_key)
    try:
        registry.replace_dataset_object(project, dataset, store.location(new_key), manifest,
                                        actor=actor, details={"recipients": fingerprints})
    except BaseException:
        store.delete(new_key)
        raise
    store.delete(old_key)
    return fingerprints
