"""The four pseudonymisation methods, chosen by (method, treatment) of a project token.

- non-reversible, always the same: HMAC-SHA256(project key, identifier) reduced into the output
  alphabet at the length `formats.LENGTHS` justifies (collisions < 1e-6 among 1e7 people);
- non-reversible, always different: a random string of that length (the identifier only checked);
- reversible, always the same: FF1 (NIST SP 800-38G, via `fastfpe`), AES-256 project key, the
  project id as tweak and the output alphabet as radix; same length as the identifier, domain
  radix ** length >= 1e6 enforced;
- reversible, always different: ChaCha20-Poly1305 with a random nonce (the project id as
  associated data), the identifier padded to a multiple of 32 bytes, written in the alphabet.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from functools import partial

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from fastfpe import ff1

from lnds_spe.pseudonym.batch import HmacDigits
from lnds_spe.pseudonym.errors import MalformedIdentifier, NotReversible
from lnds_spe.pseudonym.formats import (
    ALPHABETS,
    LENGTHS,
    Method,
    Treatment,
    digits_for_bytes,
    from_digits,
    in_alphabet_all,
    normalise_all,
    to_digits,
)
from lnds_spe.pseudonym.keystore import derive_key
from lnds_spe.pseudonym.tokens import ProjectConfig

NONCE_BYTES = 12
TAG_BYTES = 16
PAD_BLOCK = 32
MAX_PSEUDONYM_CHARS = 1024
KIND_OF = {(Method.NON_REVERSIBLE, Treatment.ALWAYS_SAME): "hmac",
           (Method.NON_REVERSIBLE, Treatment.ALWAYS_DIFFERENT): "random",
           (Method.REVERSIBLE, Treatment.ALWAYS_SAME): "ff1",
           (Method.REVERSIBLE, Treatment.ALWAYS_DIFFERENT): "aead"}


def _pad(data: bytes) -> bytes:
    """ISO/IEC 7816-4 padding to a multiple of PAD_BLOCK, so only the length class shows."""
    data += b"\x80"
    return data + b"\x00" * (-len(data) % PAD_BLOCK)


def _unpad(data: bytes) -> bytes:
    end = data.rstrip(b"\x00")
    if not end.endswith(b"\x80"):
        raise ValueError("bad padding")
    return end[:-1]


def ff1_encrypt(key: bytes, tweak: bytes, alphabet: str, texts: Iterable[str]) -> list[str]:
    """FF1 (SP 800-38G) encryption of numeral strings over `alphabet` (radix = its length)."""
    return list(map(partial(ff1.encrypt, key.hex(), tweak.hex(), alphabet), texts))


def ff1_decrypt(key: bytes, tweak: bytes, alphabet: str, texts: Iterable[str]) -> list[str]:
    """FF1 decryption, the inverse of `ff1_encrypt`."""
    return list(map(partial(ff1.decrypt, key.hex(), tweak.hex(), alphabet), texts))


class Pseudonymiser:
    """Pseudonyms of one project configuration; keys derived once from the master key."""

    def __init__(self, config: ProjectConfig, master: bytes):
        self.config = config
        self.alphabet = ALPHABETS[config.format]
        self.length = LENGTHS[config.format]
        self.kind = KIND_OF[(config.method, config.treatment)]
        key = derive_key(master, self.kind, config.project)
        self._key = key
        self._tweak = config.project.encode()
        self._aead = ChaCha20Poly1305(key)
        self._aad = f"{config.project}\x00{config.format}".encode()
        self._space = len(self.alphabet) ** self.length
        self._hmac = HmacDigits(key, self.alphabet, self.length) if self.kind == "hmac" else None

    def apply(self, identifiers: Iterable[str], start: int = 1) -> list[str]:
        """Pseudonyms of identifiers (numbered from `start` in errors); all checked before any is made."""
        texts = normalise_all(identifiers, start)
        if self.kind == "ff1":
            texts = in_alphabet_all(texts, self.config.format, start)
            return ff1_encrypt(self._key, self._tweak, self.alphabet, texts)
        if self.kind == "hmac":
            return self._hmac(texts)
        if self.kind == "random":
            return [to_digits(secrets.randbelow(self._space), self.alphabet, self.length) for _ in texts]
        return [self._seal(text) for text in texts]

    def _seal(self, text: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, _pad(text.encode()), self._aad)
        width = digits_for_bytes(len(sealed), len(self.alphabet))
        return to_digits(int.from_bytes(sealed), self.alphabet, width)

    def reverse(self, pseudonyms: Iterable[str], start: int = 1) -> list[str]:
        """Identifiers back from reversible pseudonyms; MalformedIdentifier names the first bad one."""
        if not self.config.reversible:
            raise NotReversible(f"project {self.config.project}'s token is non-reversible: its "
                                "pseudonyms cannot be re-identified, by design")
        texts = normalise_all(pseudonyms, start, "pseudonym", MAX_PSEUDONYM_CHARS)
        if self.kind == "ff1":
            texts = in_alphabet_all(texts, self.config.format, start, "pseudonym")
            return ff1_decrypt(self._key, self._tweak, self.alphabet, texts)
        return [self._open(text, start + i) for i, text in enumerate(texts)]

    def _open(self, text: str, position: int) -> str:
        radix = len(self.alphabet)
        sizes = [n for n in range(NONCE_BYTES + TAG_BYTES + PAD_BLOCK, 1024, PAD_BLOCK)
                 if digits_for_bytes(n, radix) == len(text)]
        try:
            raw = from_digits(text.upper() if radix > 10 else text, self.alphabet).to_bytes(sizes[0])
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], self._aad)
            return _unpad(plain).decode()
        except (ValueError, IndexError, OverflowError, InvalidTag, UnicodeDecodeError):
            raise MalformedIdentifier(f"pseudonym {position} was not made with this project's token "
                                      "(or was altered)") from None
