"""Crypt4GH (GA4GH) keys and streaming encryption, built on the `crypt4gh` library's primitives.

The library's own `lib.encrypt`/`lib.decrypt` stop silently at a short read and swallow OS
errors, so the segment loops are written here: every read fills its buffer, every error
propagates. Headers and key files come from `crypt4gh`; each segment is the IETF
ChaCha20-Poly1305 that Crypt4GH specifies (random 12-byte nonce, ciphertext, 16-byte MAC), done by
`cryptography` in place (`encrypt_into`/`decrypt_into`), about twice as fast here as the library's
libsodium binding, so the files are byte-compatible with the reference CLI. The plaintext sha256
runs in a helper thread (hashlib releases the GIL) while the calling thread encrypts or decrypts
the next chunk.

A manifest (plaintext size and sha256, file list) is bound to one encrypted object by an
HMAC-SHA256 keyed from that object's Crypt4GH session key: the uploader needs no SPE secret to
make it, only holders of a recipient private key can check or forge it, and a manifest moved to
another object, or an object swapped under a manifest, no longer verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import os
import stat
from base64 import b64encode
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import redirect_stderr
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from crypt4gh import SEGMENT_SIZE, sodium
from crypt4gh import header as c4gh_header

from lnds_spe.errors import SPEError

if TYPE_CHECKING:  # `cryptography` is imported when a stream first needs it
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

NONCE_SIZE = 12
CIPHER_DIFF = 28  # 12-byte nonce + 16-byte MAC per segment
CIPHER_SEGMENT_SIZE = SEGMENT_SIZE + CIPHER_DIFF
SEGMENTS_PER_CHUNK = 16  # work in 1 MiB plaintext chunks: few Python calls per byte
CHUNK_SIZE = SEGMENT_SIZE * SEGMENTS_PER_CHUNK
CIPHER_CHUNK_SIZE = CIPHER_SEGMENT_SIZE * SEGMENTS_PER_CHUNK
PRIVATE_KEY_NAME = "spe.sec"
PUBLIC_KEY_NAME = "spe.pub"
MANIFEST_FORMAT = "lnds-spe-manifest/1"
_MAC_LABEL = b"lnds-spe manifest mac v1"
# Header bounds, checked before anything is allocated: the SPE writes one 108-byte packet per
# recipient, so 64 packets of at most 1 KiB each is far beyond any header it accepts.
MAX_HEADER_PACKETS = 64
MAX_HEADER_PACKET_SIZE = 1024
_C4GH_MAGIC = b"crypt4gh"
HOLDER_KEY_NAME = "holder.sec"
HOLDER_PUBLIC_KEY_NAME = "holder.pub"

# The library logs each header packet that another recipient's key opens as an error; the SPE
# raises its own errors, so keep those lines out of the console and the hub's log.
logging.getLogger("crypt4gh").addHandler(logging.NullHandler())
logging.getLogger("crypt4gh").setLevel(logging.CRITICAL)


class Writable(Protocol):
    """Where ciphertext or plaintext goes: anything with a `write` that takes all it is given."""

    def write(self, data: bytes | memoryview) -> object: ...


# Keys

def fingerprint(public_key: bytes) -> str:
    """A short, stable name for a public key: the first 128 bits of its sha256, in hex."""
    return hashlib.sha256(public_key).hexdigest()[:32]


def public_key_pem(public_key: bytes) -> str:
    """A public key as a Crypt4GH public key file, as `crypt4gh-keygen` writes it."""
    return ("-----BEGIN CRYPT4GH PUBLIC KEY-----\n" + b64encode(public_key).decode()
            + "\n-----END CRYPT4GH PUBLIC KEY-----\n")


def _private_key_pem(secret_key: bytes, passphrase: str, comment: str) -> bytes:
    """A secret key as a passphrase-protected Crypt4GH private key file (scrypt + ChaCha20)."""
    from crypt4gh.keys import c4gh as c4gh_keyfile  # imported when needed: it loads `cryptography`

    body = c4gh_keyfile.encode_private_key(secret_key, passphrase.encode(), comment.encode())
    return (b"-----BEGIN CRYPT4GH PRIVATE KEY-----\n" + b64encode(body)
            + b"\n-----END CRYPT4GH PRIVATE KEY-----\n")


def _write_new_file(path: Path, content: bytes, mode: int) -> None:
    """Create a file with exactly this mode (never readable by others, even for a moment)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)


def generate_keypair(directory: Path, passphrase: str,
                     comment: str = "lnds-spe") -> tuple[Path, Path]:
    """Make the SPE's X25519 key pair once: private key 0600 (passphrase-protected), public 0644."""
    if len(passphrase) < 8:
        raise SPEError("the key passphrase is too short: use at least 8 characters")
    secret_path, public_path = directory / PRIVATE_KEY_NAME, directory / PUBLIC_KEY_NAME
    if secret_path.exists() or public_path.exists():
        raise SPEError(f"a key pair already exists in {directory}: keep it (datasets are "
                       "encrypted for it), or move it away deliberately first")
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    secret_key = os.urandom(32)
    _write_new_file(secret_path, _private_key_pem(secret_key, passphrase, comment), 0o600)
    _write_new_file(public_path, public_key_pem(sodium.derive_pk(secret_key)).encode(), 0o644)
    return secret_path, public_path


def load_public_key(path: Path) -> bytes:
    """The raw 32-byte X25519 key of a Crypt4GH (or OpenSSH ed25519) public key file."""
    from crypt4gh.keys import get_public_key

    try:
        key = get_public_key(os.fspath(path))
    except FileNotFoundError:
        raise SPEError(f"public key file {path} not found: pass the key `spe keys export` "
                       "printed") from None
    except (ValueError, NotImplementedError, OSError, IndexError) as exc:
        raise SPEError(f"{path} is not a Crypt4GH public key ({exc}): pass the file "
                       "`spe keys export` printed") from None
    if len(key) != 32:
        raise SPEError(f"{path} is not an X25519 public key (it has {len(key)} bytes)")
    return key


def load_private_key(path: Path, passphrase: Callable[[], str]) -> bytes:
    """The raw secret key of a passphrase-protected key file that only its owner can read."""
    from crypt4gh.keys import get_private_key

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise SPEError(f"private key {path} not found: run `spe keys init` on the hub "
                       "first") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SPEError(f"private key {path} is readable by other users: chmod 600 {path}")
    secret = passphrase()  # asked here, not inside the library, which hides errors and stderr
    try:
        with redirect_stderr(io.StringIO()):  # the library prints its own line before exiting
            key = get_private_key(os.fspath(path), lambda: secret)
    except SystemExit:  # the library exits (status 2) on a wrong passphrase
        raise SPEError(f"wrong passphrase for private key {path}: "
                       "check SPE_KEY_PASSPHRASE") from None
    except (ValueError, OSError) as exc:
        raise SPEError(f"{path} is not a Crypt4GH private key ({exc})") from None
    if len(key) != 32:
        raise SPEError(f"{path} is not an X25519 private key")
    return bytes(key)


def derive_public_key(secret_key: bytes) -> bytes:
    """The X25519 public key of a secret key."""
    return sodium.derive_pk(secret_key)


# Headers

def make_header(session_key: bytes, writer_secret_key: bytes,
                recipient_public_keys: Sequence[bytes]) -> bytes:
    """A Crypt4GH header giving `session_key` to each recipient (duplicates dropped)."""
    recipients = list(dict.fromkeys(recipient_public_keys))
    if not recipients:
        raise SPEError("no recipient public key: pass the SPE's key (`spe keys export`)")
    packet = c4gh_header.make_packet_data_enc(0, session_key)
    keys = [(0, writer_secret_key, pk) for pk in recipients]
    return c4gh_header.serialize(c4gh_header.encrypt(packet, keys))


@dataclass(frozen=True)
class OpenedHeader:
    """A header read and decrypted: its raw packets, its length, and the session key inside."""

    packets: list[bytes]
    size: int
    session_key: bytes
    writer_public_key: bytes


class HeaderTooLarge(SPEError):
    """A Crypt4GH header declares more packets, or longer ones, than the SPE accepts."""


def parse_header_packets(source: BinaryIO, what: str) -> tuple[list[bytes], int]:
    """The header's encrypted packets and its length in bytes; every declared length is bounded."""
    start = read_full(source, 16)
    if len(start) != 16 or start[:8] != _C4GH_MAGIC:
        raise SPEError(f"{what} is not a Crypt4GH file (no Crypt4GH magic number): upload it "
                       "with `spe data upload`")
    if int.from_bytes(start[8:12], "little") != 1:
        raise SPEError(f"{what} is not a Crypt4GH version 1 file: upload it with `spe data upload`")
    count = int.from_bytes(start[12:16], "little")
    if count > MAX_HEADER_PACKETS:
        raise HeaderTooLarge(f"{what} declares {count} header packets (at most "
                             f"{MAX_HEADER_PACKETS} accepted): refused before reading them")
    packets, size = [], 16
    for index in range(count):
        length = int.from_bytes(read_full(source, 4), "little")
        if not 4 < length <= MAX_HEADER_PACKET_SIZE:
            raise HeaderTooLarge(f"{what} declares a header packet of {length} bytes (at most "
                                 f"{MAX_HEADER_PACKET_SIZE} accepted): refused before reading it")
        packet = read_full(source, length - 4)
        if len(packet) != length - 4:
            raise SPEError(f"{what} is not a Crypt4GH file (header packet {index} is cut short)")
        packets.append(packet)
        size += length
    return packets, size


def read_header(source: BinaryIO, secret_key: bytes, what: str) -> OpenedHeader:
    """Read a Crypt4GH header from `source` (left at the payload) and open it with our key."""
    packets, size = parse_header_packets(source, what)
    opened, _ignored = c4gh_header.decrypt(packets, [(0, secret_key, None)])
    if not opened:
        raise SPEError(f"{what} is not encrypted for this SPE's key (wrong private key, or the "
                       "uploader used another public key): re-upload with the key from "
                       "`spe keys export`")
    try:
        data_packets, edit_list = c4gh_header.partition_packets(opened)
        session_keys = [c4gh_header.parse_enc_packet(p) for p in data_packets]
    except ValueError as exc:
        raise SPEError(f"{what} has an unsupported Crypt4GH header ({exc})") from None
    if edit_list is not None or len(session_keys) != 1:
        raise SPEError(f"{what} uses Crypt4GH edit lists or several session keys, which the "
                       "SPE does not accept: encrypt the whole file once")
    writer = _writer_public_key(packets, secret_key)
    return OpenedHeader(packets, size, bytes(session_keys[0]), writer)


def _writer_public_key(packets: list[bytes], secret_key: bytes) -> bytes:
    """The writer's public key named in the first header packet we can open."""
    for packet in packets:
        if c4gh_header.decrypt_packet(packet, [(0, secret_key, None)]) is not None:
            return bytes(packet[4:36])
    raise SPEError("no header packet opens with this key")


def rekey_header(opened: OpenedHeader, secret_key: bytes,
                 recipient_public_keys: Sequence[bytes]) -> bytes:
    """A new header with the same session key for exactly these recipients (payload untouched)."""
    return make_header(opened.session_key, secret_key, recipient_public_keys)


# Full reads

def readinto_full(source: BinaryIO, view: memoryview) -> int:
    """Fill `view` from `source`, looping over short reads; fewer bytes only at EOF."""
    filled, total = 0, len(view)
    while filled < total:
        n = source.readinto(view[filled:])
        if not n:
            break
        filled += n
    return filled


def read_full(source: BinaryIO, size: int) -> bytes:
    """Read exactly `size` bytes unless EOF comes first."""
    buffer = bytearray(size)
    n = readinto_full(source, memoryview(buffer))
    return bytes(buffer[:n])


# Manifest MAC

def manifest_mac(manifest: dict, session_key: bytes) -> str:
    """HMAC-SHA256 of the manifest (without `mac` and `signature`), keyed from the session key."""
    body = {k: v for k, v in manifest.items() if k not in ("mac", "signature")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    mac_key = hmac.new(session_key, _MAC_LABEL, hashlib.sha256).digest()
    return "hmac-sha256:" + hmac.new(mac_key, text, hashlib.sha256).hexdigest()


def manifest_mac_matches(manifest: dict, session_key: bytes) -> bool:
    """Was this manifest made for the object whose session key this is, and left unchanged?"""
    return hmac.compare_digest(str(manifest.get("mac", "")), manifest_mac(manifest, session_key))


# Streaming encryption

class _BackgroundHash:
    """A sha256 fed in a helper thread, one chunk in flight, so hashing overlaps the cipher."""

    def __init__(self, pool: ThreadPoolExecutor):
        self.digest = hashlib.sha256()
        self.size = 0
        self._pool = pool
        self._pending: Future | None = None

    def submit(self, chunk: memoryview) -> None:
        """Start hashing `chunk`; it must stay unchanged until `wait` returns."""
        self.wait()
        self.size += len(chunk)
        self._pending = self._pool.submit(self.digest.update, chunk)

    def wait(self) -> None:
        """Block until the chunk in flight is hashed."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def hexdigest(self) -> str:
        """The sha256 of everything submitted."""
        self.wait()
        return self.digest.hexdigest()


def _segment_cipher(session_key: bytes) -> ChaCha20Poly1305:
    """The per-segment AEAD of a Crypt4GH payload (IETF ChaCha20-Poly1305) for this session key."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305  # loaded when used

    return ChaCha20Poly1305(session_key)


def _encrypt_segments(cipher: ChaCha20Poly1305, plain: memoryview, out: memoryview) -> int:
    """Encrypt `plain` as Crypt4GH segments (nonce, ciphertext, MAC) into `out`; bytes written."""
    count = -(-len(plain) // SEGMENT_SIZE)
    nonces = memoryview(os.urandom(NONCE_SIZE * count))  # one system call for all the nonces
    produced = 0
    for index in range(count):
        segment = plain[index * SEGMENT_SIZE:(index + 1) * SEGMENT_SIZE]
        nonce = nonces[index * NONCE_SIZE:(index + 1) * NONCE_SIZE]
        end = produced + CIPHER_DIFF + len(segment)
        out[produced:produced + NONCE_SIZE] = nonce
        cipher.encrypt_into(nonce, segment, None, out[produced + NONCE_SIZE:end])
        produced = end
    return produced


class EncryptingWriter:
    """Take plaintext by `write` (or `fill_from`), send Crypt4GH segments to `sink`, hash meanwhile.

    Call `finish()` once after the last write; it flushes the last (short) segment.
    """

    def __init__(self, sink: Writable, session_key: bytes, pool: ThreadPoolExecutor):
        self.sink = sink
        self.session_key = session_key
        self.plain = _BackgroundHash(pool)
        self.encrypted_size = 0
        self._segment_cipher = _segment_cipher(session_key)
        self._buffers = [bytearray(CHUNK_SIZE), bytearray(CHUNK_SIZE)]
        self._current = 0
        self._filled = 0
        self._cipher = bytearray(CIPHER_CHUNK_SIZE)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Accept plaintext; encrypt and emit every full 1 MiB chunk."""
        view = memoryview(data).cast("B")
        taken = 0
        while taken < len(view):
            buffer = self._buffers[self._current]
            n = min(CHUNK_SIZE - self._filled, len(view) - taken)
            buffer[self._filled:self._filled + n] = view[taken:taken + n]
            self._filled += n
            taken += n
            if self._filled == CHUNK_SIZE:
                self._emit()
        return taken

    def fill_from(self, source: BinaryIO) -> int:
        """Read plaintext from `source` straight into the chunk buffer (no copy); 0 at EOF."""
        free = memoryview(self._buffers[self._current])[self._filled:]
        n = readinto_full(source, free)
        self._filled += n
        if self._filled == CHUNK_SIZE:
            self._emit()
        return n

    def _emit(self) -> None:
        """Hash (in the helper thread) and encrypt the current chunk, then switch buffers."""
        chunk = memoryview(self._buffers[self._current])[:self._filled]
        self.plain.submit(chunk)
        out = memoryview(self._cipher)
        produced = _encrypt_segments(self._segment_cipher, chunk, out)
        self.sink.write(out[:produced])
        self.encrypted_size += produced
        self._current ^= 1  # the other buffer: submit() waited for its hash to finish
        self._filled = 0

    def finish(self) -> None:
        """Encrypt what is left (the last, short segment) and finish hashing."""
        if self._filled:
            self._emit()
        self.plain.wait()


def encrypt_stream(source: BinaryIO, sink: Writable, session_key: bytes, pool: ThreadPoolExecutor,
                   progress: Callable[[int], None] | None = None) -> EncryptingWriter:
    """Encrypt all of `source` (a payload only; write the header first) into `sink`."""
    writer = EncryptingWriter(sink, session_key, pool)
    while n := writer.fill_from(source):
        if progress:
            progress(n)
    writer.finish()
    return writer


class DecryptingReader(io.RawIOBase):
    """A readable plaintext stream over a Crypt4GH payload, hashed (in a helper thread) as read.

    Every segment is authenticated; a bad one raises SPEError naming its number. A payload cut at
    a segment boundary, or with segments reordered, reads "fine": the caller must compare size and
    sha256 with the manifest after reading to EOF.
    """

    def __init__(self, source: BinaryIO, session_key: bytes, pool: ThreadPoolExecutor, what: str,
                 progress: Callable[[int], None] | None = None):
        super().__init__()
        self.source = source
        self.session_key = session_key
        self.what = what
        self.plain = _BackgroundHash(pool)
        self.payload_size = 0
        self._progress = progress
        self._segment_cipher = _segment_cipher(session_key)
        self._cipher = bytearray(CIPHER_CHUNK_SIZE)
        self._buffers = [bytearray(CHUNK_SIZE), bytearray(CHUNK_SIZE)]
        self._current = 1
        self._view = memoryview(b"")
        self._segment_number = 0
        self._eof = False

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        """Read and decrypt the next 1 MiB of payload into the free buffer, and hash it."""
        got = readinto_full(self.source, memoryview(self._cipher))
        if got == 0:
            self._eof = True
            self.plain.wait()
            return
        self.payload_size += got
        self._current ^= 1
        # the buffer about to be overwritten was submitted two chunks ago; submit() waited on it
        out = memoryview(self._buffers[self._current])
        produced = self._decrypt_segments(memoryview(self._cipher)[:got], out)
        self._view = out[:produced]
        self.plain.submit(self._view)
        if self._progress:
            self._progress(got)

    def _decrypt_segments(self, cipher: memoryview, out: memoryview) -> int:
        """Authenticate and decrypt whole segments of `cipher` into `out`; plaintext bytes."""
        from cryptography.exceptions import InvalidTag

        produced = 0
        for start in range(0, len(cipher), CIPHER_SEGMENT_SIZE):
            piece = cipher[start:start + CIPHER_SEGMENT_SIZE]
            self._segment_number += 1
            if len(piece) <= CIPHER_DIFF:
                raise SPEError(f"{self.what} is truncated inside segment {self._segment_number}")
            size = len(piece) - CIPHER_DIFF
            try:
                self._segment_cipher.decrypt_into(piece[:NONCE_SIZE], piece[NONCE_SIZE:], None,
                                                  out[produced:produced + size])
            except InvalidTag:
                raise SPEError(f"{self.what}: segment {self._segment_number} fails authentication "
                               "(corrupted or tampered): nothing was used") from None
            produced += size
        return produced

    def readinto(self, target) -> int:
        """Copy decrypted bytes into `target`; 0 only at the end of the payload."""
        while not self._view and not self._eof:
            self._fill()
        n = min(len(target), len(self._view))
        memoryview(target).cast("B")[:n] = self._view[:n]
        self._view = self._view[n:]
        return n

    def next_chunk(self) -> memoryview:
        """The next decrypted piece as a view (valid until the next call); empty at the end."""
        while not self._view and not self._eof:
            self._fill()
        chunk, self._view = self._view, memoryview(b"")
        return chunk

    def drain(self) -> None:
        """Read (and hash) to the end of the payload."""
        while self.next_chunk():
            pass


# Data holders' signatures

class BadSignature(SPEError):
    """A manifest's signature is missing, malformed, or does not match its content."""


def _signed_text(manifest: dict) -> bytes:
    """The bytes a holder signs: the manifest without its `signature`, as canonical JSON."""
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def generate_signing_key(directory: Path, passphrase: str) -> tuple[Path, Path]:
    """A data holder's Ed25519 key pair: holder.sec (0600, passphrase-protected PEM), holder.pub."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if len(passphrase) < 8:
        raise SPEError("the key passphrase is too short: use at least 8 characters")
    secret_path, public_path = directory / HOLDER_KEY_NAME, directory / HOLDER_PUBLIC_KEY_NAME
    if secret_path.exists() or public_path.exists():
        raise SPEError(f"a signing key already exists in {directory}: keep using it, or move "
                       "it away deliberately first")
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(passphrase.encode()))
    _write_new_file(secret_path, pem, 0o600)
    public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
    _write_new_file(public_path, (b64encode(public).decode() + "\n").encode(), 0o644)
    return secret_path, public_path


def load_signing_key(path: Path, passphrase: Callable[[], str]):
    """A data holder's Ed25519 private key from its passphrase-protected PEM file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        raise SPEError(f"signing key {path} not found: make one with `spe keys holder-init`") from None
    try:
        key = serialization.load_pem_private_key(pem, passphrase().encode())
    except (ValueError, TypeError) as exc:
        raise SPEError(f"cannot open signing key {path} ({exc}): check the passphrase "
                       "(SPE_HOLDER_PASSPHRASE)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SPEError(f"{path} is not an Ed25519 signing key: make one with `spe keys holder-init`")
    return key


def signer_fingerprint(public_key: bytes) -> str:
    """How a data holder's signing key is named in manifests and the audit log."""
    return "ed25519:" + fingerprint(public_key)


def sign_manifest(manifest: dict, signing_key) -> dict:
    """The manifest with an Ed25519 `signature` over everything else in it."""
    from cryptography.hazmat.primitives import serialization

    public = signing_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                   serialization.PublicFormat.Raw)
    signature = signing_key.sign(_signed_text(manifest))
    return {**manifest, "signature": {"alg": "ed25519", "public_key": b64encode(public).decode(),
                                      "value": b64encode(signature).decode()}}


def check_manifest_signature(manifest: dict, what: str) -> str:
    """The signer's fingerprint if the manifest's signature holds; BadSignature otherwise."""
    from base64 import b64decode

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    block = manifest.get("signature")
    if not isinstance(block, dict) or block.get("alg") != "ed25519":
        raise BadSignature(f"{what}: its manifest is not signed by a data holder's key: upload it "
                           "with `spe data upload --signing-key`")
    try:
        public = b64decode(block["public_key"], validate=True)
        Ed25519PublicKey.from_public_bytes(public).verify(b64decode(block["value"], validate=True),
                                                          _signed_text(manifest))
    except (KeyError, TypeError, ValueError, InvalidSignature):
        raise BadSignature(f"{what}: its manifest's signature does not match its content (altered "
                           "after signing): not registered") from None
    return signer_fingerprint(public)
