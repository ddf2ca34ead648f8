"""Blind mode: the OPRF of RFC 9497, suite ristretto255-SHA512, base mode (mode 0).

The holder blinds each identifier (`blind`), the service multiplies by the project's secret
scalar (`blind_evaluate`) without learning the identifier, and the holder unblinds and hashes
(`finalize`) without ever holding the key. The group arithmetic is libsodium's ristretto255,
through `rbcl` (which bundles its own libsodium); hashing follows RFC 9380 expand_message_xmd.
"""

from __future__ import annotations

import hashlib

import rbcl

from lnds_spe.pseudonym.errors import ProofError
from lnds_spe.pseudonym.keystore import derive_key

MODE_OPRF = 0
SUITE = b"ristretto255-SHA512"
CONTEXT = b"OPRFV1-" + bytes([MODE_OPRF]) + b"-" + SUITE
ELEMENT_BYTES = 32
_IDENTITY = bytes(32)


def _i2osp(value: int, length: int) -> bytes:
    return value.to_bytes(length, "big")


def expand_message_xmd(msg: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 §5.3.1 with SHA-512 (64-byte blocks, 128-byte input block)."""
    if len(dst) > 255 or length > 255 * 64:
        raise ValueError("expand_message_xmd: DST or length too long")
    dst_prime = dst + _i2osp(len(dst), 1)
    b0 = hashlib.sha512(bytes(128) + msg + _i2osp(length, 2) + b"\x00" + dst_prime).digest()
    blocks = [hashlib.sha512(b0 + b"\x01" + dst_prime).digest()]
    while len(blocks) * 64 < length:
        mixed = bytes(x ^ y for x, y in zip(b0, blocks[-1], strict=True))
        blocks.append(hashlib.sha512(mixed + _i2osp(len(blocks) + 1, 1) + dst_prime).digest())
    return b"".join(blocks)[:length]


def hash_to_group(msg: bytes) -> bytes:
    """hash_to_ristretto255 with DST 'HashToGroup-' + context string."""
    return rbcl.crypto_core_ristretto255_from_hash(expand_message_xmd(msg, b"HashToGroup-" + CONTEXT, 64))


def hash_to_scalar(msg: bytes, dst: bytes | None = None) -> bytes:
    """A scalar mod L from 64 uniform bytes (DST 'HashToScalar-' + context string by default)."""
    dst = dst if dst is not None else b"HashToScalar-" + CONTEXT
    return rbcl.crypto_core_ristretto255_scalar_reduce(expand_message_xmd(msg, dst, 64))


def derive_key_pair(seed: bytes, info: bytes) -> tuple[bytes, bytes]:
    """RFC 9497 §3.2.1 DeriveKeyPair: (secret scalar, public element) from a 32-byte seed and info."""
    derive_input = seed + _i2osp(len(info), 2) + info
    for counter in range(256):
        secret = hash_to_scalar(derive_input + _i2osp(counter, 1), b"DeriveKeyPair" + CONTEXT)
        if secret != _IDENTITY:
            return secret, rbcl.crypto_scalarmult_ristretto255_base(secret)
    raise ProofError("DeriveKeyPair: no non-zero scalar in 256 tries")


def project_key_pair(master: bytes, project: str) -> tuple[bytes, bytes]:
    """The project's OPRF key pair, derived from the master key (nothing stored)."""
    return derive_key_pair(derive_key(master, "oprf", project), project.encode())


def blind(identifier: bytes, scalar: bytes | None = None) -> tuple[bytes, bytes]:
    """(blind scalar, blinded element) for one input; the scalar is random unless given (tests)."""
    r = scalar if scalar is not None else rbcl.crypto_core_ristretto255_scalar_random()
    element = hash_to_group(identifier)
    if element == _IDENTITY:
        raise ProofError("the input hashes to the identity element: it cannot be blinded")
    return r, rbcl.crypto_scalarmult_ristretto255(r, element)


def blind_evaluate(secret: bytes, blinded: bytes) -> bytes:
    """The service's step: secret × blinded element; refuses anything not a valid element."""
    if len(blinded) != ELEMENT_BYTES or not rbcl.crypto_core_ristretto255_is_valid_point(blinded):
        raise ProofError("a blinded element is not a valid ristretto255 encoding: send what blind() made")
    return rbcl.crypto_scalarmult_ristretto255(secret, blinded)


def _finish(identifier: bytes, element: bytes) -> bytes:
    return hashlib.sha512(_i2osp(len(identifier), 2) + identifier + _i2osp(len(element), 2) + element
                          + b"Finalize").digest()


def finalize(identifier: bytes, r: bytes, evaluated: bytes) -> bytes:
    """The holder's step: unblind and hash into the 64-byte OPRF output."""
    if len(evaluated) != ELEMENT_BYTES or not rbcl.crypto_core_ristretto255_is_valid_point(evaluated):
        raise ProofError("an evaluated element is not a valid ristretto255 encoding")
    inverse = rbcl.crypto_core_ristretto255_scalar_invert(r)
    return _finish(identifier, rbcl.crypto_scalarmult_ristretto255(inverse, evaluated))


def evaluate(secret: bytes, identifier: bytes) -> bytes:
    """The same output computed with the key and no blinding (RFC 9497 Evaluate)."""
    element = hash_to_group(identifier)
    if element == _IDENTITY:
        raise ProofError("the input hashes to the identity element")
    return _finish(identifier, rbcl.crypto_scalarmult_ristretto255(secret, element))
