"""Project tokens: the project id and its pseudonymisation configuration, signed then sealed.

A token is `spe-pt1.` + base64url(nonce ‖ ChaCha20-Poly1305(Ed25519 signature ‖ payload)). Both
keys derive from the master key, so only the service that issued a token can open it, and a
holder can neither read nor change its method, format or project. Two tokens with the same
project id (one per holder) reach the same project keys, so their pseudonyms match.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from lnds_spe.pseudonym.errors import InvalidToken
from lnds_spe.pseudonym.formats import Method, OutputFormat, Treatment, check_project_id
from lnds_spe.pseudonym.keystore import derive_key

PREFIX = "spe-pt1."
_AAD = b"lnds-spe project token v1"
_SIGNATURE_BYTES = 64
_SERVICE = "service"


@dataclass(frozen=True)
class ProjectConfig:
    """What a token carries: the project and how its identifiers are pseudonymised."""

    project: str
    method: Method
    treatment: Treatment
    format: OutputFormat

    def __post_init__(self):
        check_project_id(self.project)
        object.__setattr__(self, "method", Method(self.method))
        object.__setattr__(self, "treatment", Treatment(self.treatment))
        object.__setattr__(self, "format", OutputFormat(self.format))

    @property
    def reversible(self) -> bool:
        return self.method is Method.REVERSIBLE


@dataclass(frozen=True)
class Token:
    """An opened token: its configuration, its id and to whom it was issued."""

    config: ProjectConfig
    token_id: str
    holder: str
    issued: str


def _keys(master: bytes) -> tuple[Ed25519PrivateKey, ChaCha20Poly1305]:
    signer = Ed25519PrivateKey.from_private_bytes(derive_key(master, "token-sign", _SERVICE))
    return signer, ChaCha20Poly1305(derive_key(master, "token-seal", _SERVICE))


def issue_token(master: bytes, config: ProjectConfig, holder: str) -> str:
    """A new sealed, signed token for `holder` (many per holder and per project are fine)."""
    if not holder or len(holder) > 200:
        raise InvalidToken("a token needs the holder's name (1-200 characters)")
    payload = {"v": 1, "tid": secrets.token_hex(8), "holder": holder,
               "issued": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
               **{k: str(v) for k, v in asdict(config).items()}}
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    signer, sealer = _keys(master)
    nonce = os.urandom(12)
    sealed = sealer.encrypt(nonce, signer.sign(body) + body, _AAD)
    return PREFIX + base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()


def open_token(master: bytes, text: str, project: str | None = None) -> Token:
    """The token's contents; InvalidToken if malformed, altered, foreign, or for another project."""
    text = (text or "").strip()
    if not text.startswith(PREFIX):
        raise InvalidToken(f"not a project token (it should start with {PREFIX!r}): pass the token "
                           "the service issued")
    try:
        body = text[len(PREFIX):]
        raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise InvalidToken("the project token is damaged (not base64url): copy it whole") from None
    signer, sealer = _keys(master)
    try:
        opened = sealer.decrypt(raw[:12], raw[12:], _AAD)
    except (InvalidTag, ValueError):
        raise InvalidToken("the project token was not issued by this service or was altered") from None
    signature, body = opened[:_SIGNATURE_BYTES], opened[_SIGNATURE_BYTES:]
    try:
        signer.public_key().verify(signature, body)
        fields = json.loads(body)
        config = ProjectConfig(fields["project"], fields["method"], fields["treatment"], fields["format"])
        token = Token(config, fields["tid"], fields["holder"], fields["issued"])
    except (InvalidSignature, ValueError, KeyError, TypeError):
        raise InvalidToken("the project token's signature or contents are invalid") from None
    if project is not None and token.config.project != project:
        raise InvalidToken(f"this token is for another project, not {project!r}: use that project's token")
    return token
