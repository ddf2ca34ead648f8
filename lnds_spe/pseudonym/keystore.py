"""The master key of the pseudonymisation service and the per-project keys derived from it.

The master key is 32 random bytes in a file (mode 0600, in a 0700 folder) named by
$SPE_IPMS_KEY_FILE, else `<state dir>/ipms/master.key`; it is never written to the registry.
Every project key is HKDF-SHA256(master, info = purpose + project id), so nothing per project is
stored and a second holder's token for the same project reaches the same keys.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from lnds_spe.config import setting, state_path
from lnds_spe.pseudonym.errors import KeyStoreError
from lnds_spe.pseudonym.formats import check_project_id

MASTER_KEY_BYTES = 32
KEY_FILE_ENV = "SPE_IPMS_KEY_FILE"
_INFO_PREFIX = b"lnds-spe ipms v1\x00"


class KeyStore(Protocol):
    """Where the master key lives (a file here; an HSM or KMS adapter would give the same bytes)."""

    def master_key(self) -> bytes: ...


def default_key_file() -> Path:
    """$SPE_IPMS_KEY_FILE, else `<state dir>/ipms/master.key`."""
    return Path(setting(KEY_FILE_ENV) or state_path() / "ipms" / "master.key")


class FileKeyStore:
    """A master key file that only its owner may read; `create` makes it once."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path is not None else default_key_file()

    def create(self) -> Path:
        """Write a new random master key (0600) unless one exists; refuse to overwrite."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeyStoreError(f"a master key already exists at {self.path}: pseudonyms depend on it, "
                                "keep it (or move it away deliberately first)") from None
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, os.urandom(MASTER_KEY_BYTES).hex().encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        return self.path

    def master_key(self) -> bytes:
        """The 32-byte master key; refused when absent, readable by others or malformed."""
        try:
            mode = self.path.stat().st_mode
            text = self.path.read_text().strip()
        except FileNotFoundError:
            raise KeyStoreError(f"no master key at {self.path}: run `spe pseudo init` on the "
                                "pseudonymisation host") from None
        except OSError as exc:
            raise KeyStoreError(f"cannot read the master key {self.path}: {exc.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyStoreError(f"master key {self.path} is readable by other users: chmod 600 {self.path}")
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = b""
        if len(key) != MASTER_KEY_BYTES:
            raise KeyStoreError(f"{self.path} is not a master key (expected {MASTER_KEY_BYTES} bytes in hex)")
        return key


def derive_key(master: bytes, purpose: str, project: str, length: int = 32) -> bytes:
    """HKDF-SHA256 of the master key for one purpose ('hmac', 'ff1', 'aead', 'oprf', 'clk', …) and project."""
    info = _INFO_PREFIX + purpose.encode() + b"\x00" + check_project_id(project).encode()
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(master)
