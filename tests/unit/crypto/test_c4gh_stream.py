"""Streaming Crypt4GH encryption and decryption at every awkward size, and the manifest MAC."""

import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from lnds_spe import crypto
from lnds_spe.errors import SPEError

SEG = crypto.SEGMENT_SIZE
SIZES = [0, 1, SEG - 1, SEG, SEG + 1, crypto.CHUNK_SIZE, crypto.CHUNK_SIZE + 1,
         3 * crypto.CHUNK_SIZE + 777]


class Trickle(io.RawIOBase):
    """A source that hands out at most 1000 bytes per read, like a pipe or a socket."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(1000, len(buffer), len(self.data) - self.pos)
        buffer[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n


def encrypt_bytes(data: bytes, recipients: list[bytes], source=None) -> tuple[bytes, bytes]:
    session_key = os.urandom(32)
    out = io.BytesIO()
    out.write(crypto.make_header(session_key, os.urandom(32), recipients))
    with ThreadPoolExecutor(1) as pool:
        writer = crypto.encrypt_stream(source or io.BytesIO(data), out, session_key, pool)
        assert writer.plain.size == len(data)
        assert writer.plain.hexdigest() == hashlib.sha256(data).hexdigest()
    return out.getvalue(), session_key


def decrypt_bytes(blob: bytes, secret_key: bytes) -> tuple[bytes, crypto.DecryptingReader]:
    source = io.BytesIO(blob)
    opened = crypto.read_header(source, secret_key, "test object")
    with ThreadPoolExecutor(1) as pool:
        reader = crypto.DecryptingReader(source, opened.session_key, pool, "test object")
        plain = reader.read()
        reader.plain.wait()
    return plain, reader


@pytest.mark.parametrize("size", SIZES)
def test_roundtrip_every_boundary(size, spe_keys):
    data = os.urandom(size)
    blob, _ = encrypt_bytes(data, [spe_keys[3]])
    segments = -(-size // SEG)
    header_size = len(blob) - size - segments * crypto.CIPHER_DIFF
    assert header_size > 16
    plain, reader = decrypt_bytes(blob, spe_keys[2])
    assert plain == data
    assert reader.plain.hexdigest() == hashlib.sha256(data).hexdigest()
    assert reader.payload_size == size + segments * crypto.CIPHER_DIFF


def test_short_reads_never_truncate(spe_keys):
    data = os.urandom(2 * crypto.CHUNK_SIZE + 5)
    blob, _ = encrypt_bytes(data, [spe_keys[3]], source=Trickle(data))
    assert decrypt_bytes(blob, spe_keys[2])[0] == data


def test_several_recipients_each_decrypt(spe_keys):
    other_secret = os.urandom(32)
    other_public = crypto.derive_public_key(other_secret)
    blob, _ = encrypt_bytes(b"shared secret data", [spe_keys[3], other_public])
    assert decrypt_bytes(blob, spe_keys[2])[0] == b"shared secret data"
    assert decrypt_bytes(blob, other_secret)[0] == b"shared secret data"
    with pytest.raises(SPEError, match="not encrypted for this SPE's key"):
        decrypt_bytes(blob, os.urandom(32))


def test_rekeyed_header_keeps_session_key(spe_keys):
    blob, session_key = encrypt_bytes(b"x" * 100_000, [spe_keys[3]])
    opened = crypto.read_header(io.BytesIO(blob), spe_keys[2], "t")
    newcomer = os.urandom(32)
    newcomer_public = crypto.derive_public_key(newcomer)
    header = crypto.rekey_header(opened, spe_keys[2], [spe_keys[3], newcomer_public])
    rekeyed = header + blob[opened.size:]
    assert crypto.read_header(io.BytesIO(rekeyed), newcomer, "t").session_key == session_key
    assert decrypt_bytes(rekeyed, newcomer)[0] == b"x" * 100_000


def test_manifest_mac_binds_content_and_session_key():
    key = os.urandom(32)
    manifest = {"plaintext_sha256": "ab" * 32, "plaintext_size": 10, "files": [{"path": "a"}]}
    manifest["mac"] = crypto.manifest_mac(manifest, key)
    assert crypto.manifest_mac_matches(manifest, key)
    assert not crypto.manifest_mac_matches(manifest, os.urandom(32))
    assert not crypto.manifest_mac_matches({**manifest, "plaintext_size": 11}, key)
    assert not crypto.manifest_mac_matches({k: v for k, v in manifest.items() if k != "mac"}, key)
