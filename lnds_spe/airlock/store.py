"""The airlock's store: files copied out of a project's outputs folder on the hub side and kept
under their sha256, so later edits in the workspace change nothing that is reviewed or released.

The outputs folder is written by untrusted code, so a path is walked one component at a time
with O_NOFOLLOW: a symlink anywhere, a device, a FIFO or a path leaving the folder is refused.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lnds_spe.airlock.exceptions import BadFile, FileNotFound, ReleaseIntegrityError

MAX_FILE_BYTES = 100 * 1024 * 1024
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class FrozenFile:
    """A file as stored: its name in the request, content hash and size."""

    name: str
    sha256: str
    size: int


def file_sha256(path: Path) -> str:
    """The sha256 of a file's content, read in chunks."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def check_relative_name(name: str) -> str:
    """A file name relative to the outputs folder: no absolute path, no '..', no empty parts."""
    if not name or "\x00" in name or "\\" in name or len(name) > 500:
        raise BadFile(f"invalid file name {name!r}: give a path inside your outputs folder, "
                      "e.g. tables/counts.csv")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts) or "//" in name:
        raise BadFile(f"invalid file name {name!r}: give a path inside your outputs folder "
                      "without '..' or a leading '/', e.g. tables/counts.csv")
    return "/".join(parts)


def _open_inside(root: Path, name: str) -> int:
    """A read-only descriptor of root/name, following no symlink on the way."""
    flags_dir = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    parts = name.split("/")
    try:
        fd = os.open(root, flags_dir)
    except FileNotFoundError:
        raise FileNotFound(f"no outputs folder for this project yet: save {name} under ~/outputs "
                           "in the workspace first") from None
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, flags_dir, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                       dir_fd=fd)
    except FileNotFoundError:
        raise FileNotFound(f"no file {name} in the project's outputs folder: save it under "
                           "~/outputs in the workspace") from None
    except (NotADirectoryError, OSError) as error:
        raise BadFile(f"{name} cannot be exported: it or a folder on its path is a symlink or not a "
                      f"regular file ({error.strerror}); save a plain file under ~/outputs") from None
    finally:
        os.close(fd)


class FileStore:
    """Content-addressed copies: <root>/<sha[:2]>/<sha>/<base name>, read-only once written."""

    def __init__(self, root: Path, max_bytes: int = MAX_FILE_BYTES):
        self.root = Path(root)
        self.max_bytes = max_bytes

    def path(self, sha256: str, name: str) -> Path:
        """Where a frozen file lives (its base name kept, so checks see its type)."""
        return self.root / sha256[:2] / sha256 / PurePosixPath(name).name

    def freeze(self, outputs_root: Path, name: str) -> FrozenFile:
        """Copy outputs_root/name into the store, hashing as it copies; never through a link."""
        name = check_relative_name(name)
        fd = _open_inside(Path(outputs_root), name)
        with os.fdopen(fd, "rb") as source:
            info = os.fstat(source.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise BadFile(f"{name} is not a regular file: only plain files can be exported")
            if info.st_size > self.max_bytes:
                raise BadFile(f"{name} is {info.st_size} bytes, above the airlock's limit of "
                              f"{self.max_bytes}: export a smaller summary")
            self.root.mkdir(parents=True, exist_ok=True)
            digest, size = hashlib.sha256(), 0
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".incoming-", delete=False) as tmp:
                try:
                    while chunk := source.read(_CHUNK):
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise BadFile(f"{name} grew beyond the airlock's limit of "
                                          f"{self.max_bytes} bytes while being copied")
                        digest.update(chunk)
                        tmp.write(chunk)
                    tmp.flush()
                    os.fsync(tmp.fileno())
                except BaseException:
                    os.unlink(tmp.name)
                    raise
        sha = digest.hexdigest()
        target = self.path(sha, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp.name, 0o440)
        os.replace(tmp.name, target)
        return FrozenFile(name, sha, size)

    def verified_path(self, sha256: str, name: str) -> Path:
        """The stored copy, after checking it still hashes to sha256."""
        path = self.path(sha256, name)
        try:
            found = file_sha256(path)
        except FileNotFoundError:
            raise ReleaseIntegrityError(f"the stored copy of {name} ({sha256[:12]}) is missing: "
                                        "the airlock store was tampered with; tell an admin") from None
        if found != sha256:
            raise ReleaseIntegrityError(f"the stored copy of {name} no longer matches its sha256 "
                                        f"{sha256[:12]}: the airlock store was tampered with")
        return path
