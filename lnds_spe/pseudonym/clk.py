"""Cryptographic long-term keys (CLK): records as Bloom filters for linkage by proximity.

Reads clkhash's v3 linkage schema (`clkConfig.l`, `kdf`, `features` with `ngram` comparisons,
`bitsPerToken` or `bitsPerFeature`, `case`, `missingValue`, `ignored`). Each feature gets its own
HMAC key, HKDF-SHA256 of the project's linkage secret with the schema's salt and info plus the
feature name (per-field salting), so equal q-grams in two fields set unrelated bits. A token's k
bits are double hashing of HMAC-SHA256(key, token): (h1 + i·h2) mod l. Optional hardening: XOR
folding (l → l/2) or balancing (the filter and its complement, permuted by a keyed shuffle).
Encodings are not bit-identical to clkhash's (which hashes with HMAC-SHA1/MD5 and other padding).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from lnds_spe.pseudonym.errors import LinkageSchemaError


class Hardening(StrEnum):
    NONE = "none"
    XOR_FOLD = "xor-fold"
    BALANCE = "balance"


@dataclass(frozen=True)
class Feature:
    name: str
    n: int
    positional: bool
    bits_per_token: int | None
    bits_per_feature: int | None
    case: str
    missing: tuple[str, str] | None  # (sentinel, replacement)


@dataclass(frozen=True)
class Schema:
    bits: int
    salt: bytes
    info: bytes
    fields: tuple[str | None, ...]  # one per column; None for ignored columns
    features: tuple[Feature, ...]


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def parse_schema(doc: dict) -> Schema:
    """A clkhash v3 schema (the dict of its JSON); LinkageSchemaError on what this encoder lacks."""
    try:
        if int(doc.get("version", 0)) != 3:
            raise LinkageSchemaError("only clkhash linkage schema version 3 is supported")
        config = doc["clkConfig"]
        bits = int(config["l"])
        kdf = config.get("kdf", {})
        if kdf.get("type", "HKDF") != "HKDF" or kdf.get("hash", "SHA256") != "SHA256":
            raise LinkageSchemaError("kdf: only HKDF with SHA256 is supported")
        fields, features = [], []
        for entry in doc["features"]:
            if entry.get("ignored"):
                fields.append(None)
                continue
            hashing = entry["hashing"]
            comparison = hashing.get("comparison", {"type": "ngram", "n": 2})
            if comparison.get("type") != "ngram":
                raise LinkageSchemaError(f"feature {entry['identifier']}: only ngram comparisons "
                                         "are supported")
            strategy = hashing["strategy"]
            missing = hashing.get("missingValue")
            features.append(Feature(
                entry["identifier"], int(comparison["n"]), bool(comparison.get("positional", False)),
                strategy.get("bitsPerToken"), strategy.get("bitsPerFeature"),
                entry.get("format", {}).get("case", "mixed"),
                (missing["sentinel"], missing.get("replaceWith", "")) if missing else None))
            fields.append(entry["identifier"])
    except (KeyError, TypeError, ValueError) as exc:
        raise LinkageSchemaError(f"not a clkhash v3 linkage schema: {exc!r}") from None
    if bits <= 0 or bits % 64:
        raise LinkageSchemaError(f"clkConfig.l = {bits}: use a positive multiple of 64 bits")
    return Schema(bits, _b64(kdf.get("salt")), _b64(kdf.get("info")), tuple(fields), tuple(features))


def tokens(value: str, feature: Feature) -> list[str]:
    """The feature's q-grams of one value (padded with a space each side; positional ones numbered)."""
    if feature.missing is not None and value == feature.missing[0]:
        value = feature.missing[1]
    value = value.lower() if feature.case == "lower" else value.upper() if feature.case == "upper" else value
    if not value:
        return []
    text = f" {value} " if feature.n > 1 else value
    grams = [text[i:i + feature.n] for i in range(len(text) - feature.n + 1)]
    return [f"{i} {g}" for i, g in enumerate(grams)] if feature.positional else grams


class Encoder:
    """Encodes records with one schema and secret; token positions are cached per feature."""

    def __init__(self, schema: Schema, secret: bytes, hardening: Hardening = Hardening.NONE):
        self.schema, self.hardening = schema, Hardening(hardening)
        self._keys = [HKDF(hashes.SHA256(), 32, schema.salt or None,
                           schema.info + b"\x00" + f.name.encode()).derive(secret) for f in schema.features]
        self._cache: list[dict[tuple[str, int], np.ndarray]] = [{} for _ in schema.features]
        self._perm_key = HKDF(hashes.SHA256(), 32, None, b"lnds-spe clk balance").derive(secret)

    def _positions(self, index: int, token: str, k: int) -> np.ndarray:
        cache = self._cache[index]
        found = cache.get((token, k))
        if found is None:
            digest = hmac.digest(self._keys[index], token.encode(), hashlib.sha256)
            h1, h2 = int.from_bytes(digest[:8]), int.from_bytes(digest[8:16]) | 1
            found = np.array([(h1 + i * h2) % self.schema.bits for i in range(k)], dtype=np.int64)
            cache[(token, k)] = found
        return found

    def encode(self, records: Iterable[Sequence[str]]) -> np.ndarray:
        """Filters (records × bytes, uint8) of records given as one value per schema column."""
        bits, width = self.schema.bits, len(self.schema.fields)
        parts: list[np.ndarray] = []
        n = 0
        for n, record in enumerate(records, 1):
            if len(record) != width:
                raise LinkageSchemaError(f"record {n} has {len(record)} values; the schema has "
                                         f"{width} columns")
            values = [v for v, f in zip(record, self.schema.fields, strict=True) if f is not None]
            offset = (n - 1) * bits
            for index, (value, feature) in enumerate(zip(values, self.schema.features, strict=True)):
                grams = tokens(value, feature)
                if grams:
                    k = feature.bits_per_token or max(1, math.ceil((feature.bits_per_feature or 0)
                                                                   / len(grams)))
                    parts.extend(self._positions(index, gram, k) + offset for gram in grams)
        dense = np.zeros(n * bits, dtype=np.uint8)
        if parts:
            dense[np.concatenate(parts)] = 1
        return np.packbits(self._harden(dense.reshape(n, bits)), axis=1, bitorder="little")

    def _harden(self, dense: np.ndarray) -> np.ndarray:
        if self.hardening is Hardening.XOR_FOLD:
            half = dense.shape[1] // 2
            if half % 64:
                raise LinkageSchemaError("xor folding needs l to be a multiple of 128")
            return dense[:, :half] ^ dense[:, half:]
        if self.hardening is Hardening.BALANCE:
            both = np.concatenate([dense, 1 - dense], axis=1)
            seed = int.from_bytes(self._perm_key[:8])
            return both[:, np.random.default_rng(seed).permutation(both.shape[1])]
        return dense


def to_text(filters: np.ndarray) -> list[str]:
    """Filters as base64 strings (one per record), as clkhash writes them."""
    return [base64.b64encode(row.tobytes()).decode() for row in filters]


def from_text(texts: Sequence[str]) -> np.ndarray:
    """Base64 filters back to a (records × bytes) uint8 array; all must have one length."""
    rows = [base64.b64decode(t) for t in texts]
    if not rows or len({len(r) for r in rows}) != 1:
        raise LinkageSchemaError("encodings are empty or of different lengths: encode both sides "
                                 "with one schema")
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), -1)
