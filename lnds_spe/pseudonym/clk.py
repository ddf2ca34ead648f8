"""Cryptographic long-term keys (CLK): records as Bloom filters for linkage by proximity.

Reads clkhash's v3 linkage schema and encodes as clkhash 0.18 does, bit for bit, so anonlink users
can move over: `kdf` (HKDF-SHA256/512 with the schema's salt and info) gives two `keySize`-byte
keys per column (per-field salting: equal q-grams in two fields set unrelated bits); `ngram`
(padded with n-1 spaces, positional ones numbered from 1) or `exact` comparisons; `doubleHash`
(bit i of a token is (HMAC-SHA1 + i·HMAC-MD5) mod l, `prevent_singularity` optional) or
`blakeHash` (the default: keyed BLAKE2b slices); `bitsPerToken` or `bitsPerFeature`;
`missingValue`; `integer` and `date` value formats; `xor_folds`; bits in clkhash's (big-endian)
order. Two departures: `case` converts (clkhash only validates, so valid input agrees) and
optional hardening after clkhash's steps (XOR folding l → l/2, or balancing: the filter and its
complement, permuted by a keyed shuffle).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache
from itertools import chain
from operator import add

import numpy as np
import pandas as pd
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from lnds_spe.pseudonym.errors import LinkageSchemaError

_KDF_HASHES = {"SHA256": hashes.SHA256, "SHA512": hashes.SHA512}
_DATE_OUTPUT = "%Y%m%d"
CHUNK_RECORDS = 8192  # distinct values are encoded per chunk: memory stays bounded


class Hardening(StrEnum):
    NONE = "none"
    XOR_FOLD = "xor-fold"
    BALANCE = "balance"


@dataclass(frozen=True)
class Feature:
    name: str
    column: int
    n: int | None  # None: exact comparison (the whole value is one token)
    positional: bool
    bits_per_token: int | None
    bits_per_feature: int | None
    blake: bool
    non_singular: bool
    case: str
    kind: str  # string, enum, integer or date
    date_format: str
    encoding: str
    missing: tuple[str, str] | None  # (sentinel, replacement)


@dataclass(frozen=True)
class Schema:
    bits: int
    xor_folds: int
    kdf_hash: str
    salt: bytes | None
    info: bytes | None
    key_size: int
    fields: tuple[str | None, ...]  # one per column; None for ignored columns
    features: tuple[Feature, ...]


def _b64(value: str | None) -> bytes | None:
    return base64.b64decode(value) if value else None


def _feature(entry: dict, column: int) -> Feature:
    hashing, fmt = entry["hashing"], entry.get("format", {})
    comparison = hashing["comparison"]
    if comparison.get("type") not in ("ngram", "exact"):
        raise LinkageSchemaError(f"feature {entry['identifier']}: only ngram and exact comparisons "
                                 "are supported")
    hash_type = hashing.get("hash", {"type": "blakeHash"})
    if hash_type["type"] not in ("doubleHash", "blakeHash"):
        raise LinkageSchemaError(f"feature {entry['identifier']}: unknown hash {hash_type['type']!r}")
    strategy, missing = hashing["strategy"], hashing.get("missingValue")
    return Feature(
        entry["identifier"], column,
        int(comparison["n"]) if comparison["type"] == "ngram" else None,
        bool(comparison.get("positional", False)),
        strategy.get("bitsPerToken"), strategy.get("bitsPerFeature"),
        hash_type["type"] == "blakeHash", bool(hash_type.get("prevent_singularity", False)),
        fmt.get("case", "mixed"), fmt.get("type", "string"), fmt.get("format", ""),
        fmt.get("encoding", "utf-8"),
        (missing["sentinel"], missing.get("replaceWith", "")) if missing else None)


def parse_schema(doc: dict) -> Schema:
    """A clkhash v3 schema (the dict of its JSON); LinkageSchemaError on what this encoder lacks."""
    try:
        if int(doc.get("version", 0)) != 3:
            raise LinkageSchemaError("only clkhash linkage schema version 3 is supported")
        config = doc["clkConfig"]
        bits, folds = int(config["l"]), int(config.get("xor_folds", 0))
        kdf = config.get("kdf", {})
        if kdf.get("type", "HKDF") != "HKDF" or kdf.get("hash", "SHA256") not in _KDF_HASHES:
            raise LinkageSchemaError("kdf: only HKDF with SHA256 or SHA512 is supported")
        fields, features = [], []
        for column, entry in enumerate(doc["features"]):
            if entry.get("ignored"):
                fields.append(None)
                continue
            features.append(_feature(entry, column))
            fields.append(entry["identifier"])
    except (KeyError, TypeError, ValueError) as exc:
        raise LinkageSchemaError(f"not a clkhash v3 linkage schema: {exc!r}") from None
    if bits <= 0 or bits % 64:
        raise LinkageSchemaError(f"clkConfig.l = {bits}: use a positive multiple of 64 bits")
    if any(f.blake for f in features) and (bits & (bits - 1)):
        raise LinkageSchemaError(f"clkConfig.l = {bits}: blakeHash needs a power of two")
    return Schema(bits, folds, kdf.get("hash", "SHA256"), _b64(kdf.get("salt")), _b64(kdf.get("info")),
                  int(kdf.get("keySize", 64)), tuple(fields), tuple(features))


def _formatted(value: str, feature: Feature) -> str:
    if feature.missing is not None and value == feature.missing[0]:
        return feature.missing[1]
    try:
        if feature.kind == "integer":
            return str(int(value))
        if feature.kind == "date":
            return datetime.strptime(value, feature.date_format).strftime(_DATE_OUTPUT)
    except ValueError:
        raise LinkageSchemaError(f"feature {feature.name}: {feature.kind} value not in the schema's "
                                 "format") from None
    return value.lower() if feature.case == "lower" else value.upper() if feature.case == "upper" else value


@cache
def _prefixes(count: int) -> tuple[str, ...]:
    return tuple(f"{i} " for i in range(1, count + 1))


def tokens(value: str, feature: Feature) -> list[str]:
    """The feature's tokens of one value: n-grams (padded with n-1 spaces) or the whole value."""
    value = _formatted(value, feature)
    if not value:
        return []
    n = feature.n
    if n is None:
        return [value]
    if n == 1:
        grams = list(value)
    else:
        pad = " " * (n - 1)
        text = f"{pad}{value}{pad}"
        grams = (list(map(add, text, text[1:])) if n == 2
                 else [text[i:i + n] for i in range(len(text) - n + 1)])
    return list(map(add, _prefixes(len(grams)), grams)) if feature.positional else grams


def bits_per_token(feature: Feature, count: int) -> list[int]:
    """k of each of `count` tokens: bitsPerToken, or bitsPerFeature spread (the first get one more)."""
    if feature.bits_per_token is not None:
        return [feature.bits_per_token] * count
    if not count:
        return []
    k, residue = divmod(feature.bits_per_feature or 0, count)
    return [k + 1] * residue + [k] * (count - residue)


_CODE_BITS = 21  # a Unicode code point


def ngram_codes(values: list[str], feature: Feature) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """All values' n-grams at once: (grams per value, code of each gram, the gram of each code).

    Each gram is packed into an int64 (21 bits a character, then its position) and factorised;
    None when that does not fit (exact comparisons, n > 3, positional n > 2, NUL in a value).
    """
    n = feature.n
    if n is None or n > 3 or (feature.positional and n > 2):
        return None
    pad = " " * (n - 1)
    padded = [f"{pad}{v}{pad}" if v else "" for v in (_formatted(value, feature) for value in values)]
    joined = "\x00".join(padded)
    if joined.count("\x00") != len(padded) - 1:
        return None
    points = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    sizes = np.fromiter(map(len, padded), dtype=np.int64, count=len(padded))
    counts = np.maximum(sizes - n + 1, 0)
    owner = np.repeat(np.arange(len(padded)), counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    at = (np.cumsum(sizes + 1) - sizes - 1)[owner] + within
    keys = np.zeros(len(at), dtype=np.int64)
    for t in range(n):
        keys = (keys << _CODE_BITS) | points[at + t]
    if feature.positional:
        keys |= (within + 1) << (_CODE_BITS * n)
    codes, distinct = pd.factorize(keys)
    mask = (1 << _CODE_BITS) - 1
    grams = ["".join(chr((int(k) >> (_CODE_BITS * (n - 1 - t))) & mask) for t in range(n)) for k in distinct]
    if feature.positional:
        grams = [f"{int(k) >> (_CODE_BITS * n)} {g}" for k, g in zip(distinct, grams, strict=True)]
    return counts, codes, grams


class Encoder:
    """Encodes records with one schema and secret; token positions are cached per feature."""

    def __init__(self, schema: Schema, secret: bytes, hardening: Hardening = Hardening.NONE):
        self.schema, self.hardening = schema, Hardening(hardening)
        size, width = schema.key_size, len(schema.fields)
        material = HKDF(_KDF_HASHES[schema.kdf_hash](), 2 * width * size, schema.salt,
                        schema.info).derive(secret)
        self._keys = [(material[2 * f.column * size:(2 * f.column + 1) * size],
                       material[(2 * f.column + 1) * size:(2 * f.column + 2) * size])
                      for f in schema.features]
        self._hash_bits = schema.bits << schema.xor_folds
        self._cache: list[dict[tuple[str, int], np.ndarray]] = [{} for _ in schema.features]
        self._ids: list[dict[str, int]] = [{} for _ in schema.features]
        self._masks = [np.zeros((0, self._hash_bits // 8), dtype=np.uint8) for _ in schema.features]
        self._hmacs = [(hmac.new(sha1, digestmod=hashlib.sha1), hmac.new(md5, digestmod=hashlib.md5))
                       for sha1, md5 in self._keys]
        self._perm_key = HKDF(hashes.SHA256(), 32, None, b"lnds-spe clk balance").derive(secret)

    def _positions(self, index: int, grams: list[str], k: int) -> np.ndarray:
        """Bit positions (grams × k) of tokens of one feature, as clkhash's hash for it sets them."""
        feature, bits = self.schema.features[index], self._hash_bits
        if feature.blake:
            rows = []
            for gram in grams:
                data, shorts = gram.encode(feature.encoding), []
                for i in range((k + 31) // 32):
                    digest = hashlib.blake2b(data, key=self._keys[index][0], salt=str(i).encode()).digest()
                    shorts.extend(struct.unpack("<32H", digest))
                rows.append(shorts[:k])
            return np.array(rows, dtype=np.int64).reshape(len(grams), k) % bits
        sha1, md5 = self._hmacs[index]
        first, second = [], []
        for gram in grams:
            data = gram.encode(feature.encoding)
            mac1, mac2 = sha1.copy(), md5.copy()
            mac1.update(data)
            mac2.update(data)
            first.append(int.from_bytes(mac1.digest()) % bits)
            h2, extra = int.from_bytes(mac2.digest()) % bits, 0
            while feature.non_singular and h2 == 0:
                retry = md5.copy()
                retry.update(data + chr(extra).encode())
                h2, extra = int.from_bytes(retry.digest()) % bits, extra + 1
            second.append(h2)
        h1 = np.array(first, dtype=np.int64)[:, None]
        h2 = np.array(second, dtype=np.int64)[:, None]
        return (h1 + np.arange(k, dtype=np.int64)[None, :] * h2) % bits

    def _value_bits(self, index: int, values: list[str]) -> np.ndarray:
        """Packed filters (values × bytes) of one feature's distinct values, each alone."""
        feature = self.schema.features[index]
        out = np.zeros((len(values), self._hash_bits // 8), dtype=np.uint8)
        if feature.bits_per_token is None:  # k varies by token: bit by bit
            return self._value_bits_slow(index, values, out)
        grouped = ngram_codes(values, feature)
        if grouped is None:
            grams = [tokens(value, feature) for value in values]
            counts = np.fromiter(map(len, grams), dtype=np.int64, count=len(grams))
            flat = np.array(list(chain.from_iterable(grams)), dtype=object)
            codes, distinct = pd.factorize(flat) if len(flat) else (flat, [])
            distinct = list(distinct)
        else:
            counts, codes, distinct = grouped
        if not counts.any():
            return out
        ids = self._ids[index]
        new = [gram for gram in distinct if gram not in ids]
        if new:
            ids.update(zip(new, range(len(ids), len(ids) + len(new)), strict=True))
            positions = self._positions(index, new, feature.bits_per_token)
            dense = np.zeros((len(new), self._hash_bits), dtype=np.uint8)
            np.put_along_axis(dense, positions, 1, axis=1)
            self._masks[index] = np.concatenate([self._masks[index],
                                                 np.packbits(dense, axis=1, bitorder="big")])
        table = self._masks[index][np.fromiter(map(ids.__getitem__, distinct), dtype=np.int64,
                                               count=len(distinct))]
        some = counts > 0
        starts = (np.cumsum(counts) - counts)[some]
        out[some] = np.bitwise_or.reduceat(table[codes].view(np.uint64), starts, axis=0).view(np.uint8)
        return out

    def _value_bits_slow(self, index: int, values: list[str], out: np.ndarray) -> np.ndarray:
        bits, parts = self._hash_bits, []
        feature, cache = self.schema.features[index], self._cache[index]
        grams = [tokens(value, feature) for value in values]
        ks = chain.from_iterable(bits_per_token(feature, len(g)) for g in grams)
        for gram, k in zip(chain.from_iterable(grams), ks, strict=True):
            if (gram, k) not in cache:
                cache[(gram, k)] = self._positions(index, [gram], k)[0]
            parts.append(cache[(gram, k)])
        if not parts:
            return out
        counts = np.fromiter(map(len, grams), dtype=np.int64, count=len(grams))
        rows = np.repeat(np.repeat(np.arange(len(values)), counts), [len(p) for p in parts])
        dense = np.zeros((len(values), bits), dtype=np.uint8)
        dense.reshape(-1)[rows * bits + np.concatenate(parts)] = 1
        return np.packbits(dense, axis=1, bitorder="big")

    def _encode_chunk(self, records: list[Sequence[str]]) -> np.ndarray:
        out = np.zeros((len(records), self._hash_bits // 8), dtype=np.uint8)
        columns = list(zip(*records, strict=True))
        for index, feature in enumerate(self.schema.features):
            codes, distinct = pd.factorize(np.array(columns[feature.column], dtype=object))
            out |= self._value_bits(index, distinct.tolist())[codes]
        for _ in range(self.schema.xor_folds):
            half = out.shape[1] // 2
            out = out[:, :half] ^ out[:, half:]
        return out

    def encode(self, records: Iterable[Sequence[str]]) -> np.ndarray:
        """Filters (records × bytes, uint8) of records given as one value per schema column.

        Each feature's distinct values are encoded once per chunk of records, then ORed by record.
        """
        rows = list(records)
        width = len(self.schema.fields)
        for n, record in enumerate(rows, 1):
            if len(record) != width:
                raise LinkageSchemaError(f"record {n} has {len(record)} values; the schema has "
                                         f"{width} columns")
        chunks = [self._encode_chunk(rows[i:i + CHUNK_RECORDS]) for i in range(0, len(rows), CHUNK_RECORDS)]
        packed = np.concatenate(chunks) if chunks else np.zeros((0, self.schema.bits // 8), dtype=np.uint8)
        if self.hardening is Hardening.NONE:
            return packed
        dense = np.unpackbits(packed, axis=1, bitorder="big")
        return np.packbits(self._harden(dense), axis=1, bitorder="big")

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
