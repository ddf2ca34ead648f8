"""Project configuration values, output alphabets and pseudonym lengths, identifier checks.

Lengths of the always-the-same, non-reversible pseudonyms (HMAC-SHA256 truncated into the
alphabet) and of the random tokens: among N = 1e7 people, the chance that any two of S equally
likely values collide is about N² / 2S (birthday bound), so S must exceed 5e19 to keep it
below 1e-6:

- numeric (radix 10): 20 digits, S = 1e20, p ≈ 5.0e-7 (19 digits give 5e-6);
- alphabetic (radix 26): 14 letters, S ≈ 6.5e19, p ≈ 7.8e-7 (13 give 2.0e-5);
- alphanumeric (radix 36): 13 characters, S ≈ 1.7e20, p ≈ 2.9e-7 (12 give 1.1e-5).

`collision_probability` computes the bound, and the unit tests check each length against it.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from datetime import date
from enum import StrEnum

from lnds_spe.pseudonym.errors import DomainTooSmall, MalformedIdentifier

PEOPLE = 10_000_000
MAX_COLLISION = 1e-6
MAX_IDENTIFIER_CHARS = 64
FF1_MIN_DOMAIN = 1_000_000  # NIST SP 800-38G Rev. 1: radix ** length >= 1e6
BRUTE_FORCE_SPACE = 1e12  # a space below this is enumerated in hours by whoever can query the service


class Method(StrEnum):
    REVERSIBLE = "reversible"
    NON_REVERSIBLE = "non-reversible"


class Treatment(StrEnum):
    ALWAYS_SAME = "always-same"
    ALWAYS_DIFFERENT = "always-different"


class OutputFormat(StrEnum):
    ALPHANUMERIC = "alphanumeric"
    NUMERIC = "numeric"
    ALPHABETIC = "alphabetic"


class Role(StrEnum):
    """Segregated roles of the token service's callers."""

    ISSUER = "issuer"
    HOLDER = "holder"
    REIDENTIFIER = "reidentifier"


ALPHABETS = {
    OutputFormat.NUMERIC: "0123456789",
    OutputFormat.ALPHABETIC: "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    OutputFormat.ALPHANUMERIC: "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
}
LENGTHS = {OutputFormat.NUMERIC: 20, OutputFormat.ALPHABETIC: 14, OutputFormat.ALPHANUMERIC: 13}


def collision_probability(people: int, space: float) -> float:
    """Birthday bound on the chance that two of `people` uniform draws from `space` values collide."""
    return min(1.0, people * (people - 1) / (2.0 * space))


def to_digits(value: int, alphabet: str, length: int) -> str:
    """`value` (< radix ** length) written with exactly `length` symbols of `alphabet`."""
    radix = len(alphabet)
    out = []
    for _ in range(length):
        value, rem = divmod(value, radix)
        out.append(alphabet[rem])
    return "".join(reversed(out))


def digest_pseudonym(digest: bytes, fmt: OutputFormat) -> str:
    """A keyed digest (HMAC or OPRF output, >= 32 bytes) reduced into the format's alphabet and length.

    The bias of the reduction is below radix ** length / 2 ** 256, far under any collision concern.
    """
    alphabet, length = ALPHABETS[fmt], LENGTHS[fmt]
    return to_digits(int.from_bytes(digest) % len(alphabet) ** length, alphabet, length)


def from_digits(text: str, alphabet: str) -> int:
    """The integer a string of `alphabet` symbols writes; ValueError on a foreign symbol."""
    radix = len(alphabet)
    value = 0
    for ch in text:
        index = alphabet.find(ch)
        if index < 0:
            raise ValueError(ch)
        value = value * radix + index
    return value


def digits_for_bytes(nbytes: int, radix: int) -> int:
    """How many symbols of a radix hold any `nbytes`-byte string."""
    return math.ceil(nbytes * 8 / math.log2(radix))


def normalise(identifier: str, position: int, what: str = "identifier",
              limit: int = MAX_IDENTIFIER_CHARS) -> str:
    """An identifier stripped of surrounding spaces, NFC; refused when empty, too long or with controls."""
    text = unicodedata.normalize("NFC", identifier.strip())
    if not text:
        raise MalformedIdentifier(f"{what} {position} is empty: remove the row or fill it")
    if len(text) > limit:
        raise MalformedIdentifier(f"{what} {position} is longer than {limit} "
                                  f"characters: is this the {what} column?")
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        raise MalformedIdentifier(f"{what} {position} holds control characters: clean the column")
    return text


def normalise_all(identifiers: Iterable[str], start: int = 1, what: str = "identifier",
                  limit: int = MAX_IDENTIFIER_CHARS) -> list[str]:
    """`normalise` of a batch: checked all at once when it is printable ASCII without edge spaces."""
    texts = list(identifiers)
    joined = "".join(texts)
    if texts and joined.isascii() and joined.isprintable():  # ASCII is NFC; no controls
        sizes = list(map(len, texts))
        lines = "\n".join(texts)
        if (min(sizes) > 0 and max(sizes) <= limit and " \n" not in lines and "\n " not in lines
                and lines[0] != " " and lines[-1] != " "):
            return texts
    return [normalise(text, start + i, what, limit) for i, text in enumerate(texts)]


_SYMBOLS_TEST = {OutputFormat.NUMERIC: str.isdigit, OutputFormat.ALPHABETIC: str.isalpha,
                 OutputFormat.ALPHANUMERIC: str.isalnum}


def in_alphabet_all(texts: list[str], fmt: OutputFormat, start: int = 1,
                    what: str = "identifier") -> list[str]:
    """`in_alphabet` of a batch of normalised texts: checked all at once when they all fit."""
    joined = "".join(texts)
    upper = joined.upper()
    if texts and joined.isascii() and _SYMBOLS_TEST[fmt](upper) \
            and len(ALPHABETS[fmt]) ** min(map(len, texts)) >= FF1_MIN_DOMAIN:
        return texts if upper == joined else [text.upper() for text in texts]
    return [in_alphabet(text, fmt, start + i, what) for i, text in enumerate(texts)]


def in_alphabet(identifier: str, fmt: OutputFormat, position: int, what: str = "identifier") -> str:
    """An identifier upper-cased into the format's alphabet, for FF1; refused if a symbol is foreign."""
    text = identifier.upper() if fmt is not OutputFormat.NUMERIC else identifier
    alphabet = ALPHABETS[fmt]
    if any(ch not in alphabet for ch in text):
        raise MalformedIdentifier(f"{what} {position} has characters outside the {fmt} format "
                                  f"({alphabet[:3]}…): reversible always-the-same pseudonyms keep "
                                  "the identifier's format, so pick the format the identifiers use")
    check_ff1_domain(len(alphabet), len(text), position)
    return text


def check_ff1_domain(radix: int, length: int, position: int | None = None) -> None:
    """Refuse an FF1 domain radix ** length below 1e6 (SP 800-38G Rev. 1)."""
    if radix**length < FF1_MIN_DOMAIN:
        where = f"identifier {position}" if position is not None else "the identifiers"
        raise DomainTooSmall(f"{where}: {length} symbols of radix {radix} give {radix**length:,} values, "
                             f"below the {FF1_MIN_DOMAIN:,} FF1 requires: use a longer identifier "
                             "or a non-reversible method")


_CLASS_SIZES = (("0123456789", 10), ("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 26), ("abcdefghijklmnopqrstuvwxyz", 26))
_DATE_DAYS = (date(2030, 1, 1) - date(1900, 1, 1)).days


def _looks_like_date(text: str) -> bool:
    try:
        return 1900 <= int(text[:4]) < 2030 and bool(date(int(text[:4]), int(text[4:6]), int(text[6:8])))
    except ValueError:
        return False


def identifier_space(sample: Iterable[str]) -> float:
    """Rough count of possible identifiers shaped like the sample (per-position classes, date prefix)."""
    texts = [t for t in sample if t]
    if not texts:
        return 0.0
    width = max(len(t) for t in texts)
    space = 1.0
    start = 0
    if all(len(t) >= 8 and t[:8].isdigit() and _looks_like_date(t) for t in texts):
        space, start = float(_DATE_DAYS), 8  # YYYYMMDD: a birth date, not 1e8 free digits
    for pos in range(start, width):
        seen = {t[pos] for t in texts if pos < len(t)}
        size = 0
        for chars, n in _CLASS_SIZES:
            if seen & set(chars):
                size += n
        if seen - set("".join(c for c, _ in _CLASS_SIZES)):
            size += 33  # punctuation and the rest of printable ASCII
        space *= max(size, 1)
    return space


def small_space_warning(sample: Iterable[str]) -> str | None:
    """A warning when identifiers like these can be enumerated by anyone who can query the service."""
    space = identifier_space(sample)
    if space and space < BRUTE_FORCE_SPACE:
        return (f"the identifiers look like a space of about {space:.1e} values: whoever can query "
                "this token (or holds the key) can pseudonymise them all and re-identify by lookup. "
                "Keep the token secret, prefer blind mode or add a secret field to the identifier.")
    return None


_PROJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_project_id(project: str) -> str:
    """A project id usable as HKDF info and FF1 tweak: 1-64 of letters, digits, '.', '_', '-'."""
    if not isinstance(project, str) or not _PROJECT_ID.match(project):
        raise MalformedIdentifier(f"project id {project!r} is not 1-64 letters, digits, '.', '_' or '-'")
    return project
