"""The batch paths give exactly what the per-identifier paths give: pseudonyms, checks and errors."""

import hashlib
import hmac
import random

import pytest

from lnds_spe.pseudonym.batch import HmacDigits
from lnds_spe.pseudonym.errors import DomainTooSmall, MalformedIdentifier
from lnds_spe.pseudonym.formats import (
    ALPHABETS,
    LENGTHS,
    OutputFormat,
    digest_pseudonym,
    in_alphabet,
    in_alphabet_all,
    normalise,
    normalise_all,
)

KEY = bytes(range(32))


def _texts(seed: int, n: int, symbols: str) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(symbols) for _ in range(rng.randint(1, 64))) for _ in range(n)]


@pytest.mark.parametrize("fmt", list(OutputFormat))
@pytest.mark.parametrize("symbols", ["0123456789", "aé€𝄞 Z-9"])  # 1 to 4 UTF-8 bytes: up to 5 blocks
@pytest.mark.parametrize("n", [1, 7, 8, 9, 1001])
def test_batch_hmac_is_the_per_identifier_hmac(fmt, symbols, n):
    texts = _texts(n, n, symbols)
    want = [digest_pseudonym(hmac.digest(KEY, t.encode(), hashlib.sha256), fmt) for t in texts]
    assert HmacDigits(KEY, ALPHABETS[fmt], LENGTHS[fmt])(texts) == want


def test_batch_hmac_of_an_empty_message_and_a_block_boundary():
    texts = ["", "x" * 55, "x" * 56, "x" * 64, "x" * 119, "x" * 120]
    fmt = OutputFormat.ALPHANUMERIC
    want = [digest_pseudonym(hmac.digest(KEY, t.encode(), hashlib.sha256), fmt) for t in texts]
    assert HmacDigits(KEY, ALPHABETS[fmt], LENGTHS[fmt])(texts) == want


@pytest.mark.parametrize("texts", [["  AB12 ", "CD34"], ["ab", "Cé\u0301"], ["x\ty"], ["ok", ""], ["a" * 65],
                                   ["plain", "ascii", "with inner space"]])
def test_normalise_all_matches_normalise(texts):
    def each():
        return [normalise(t, 1 + i) for i, t in enumerate(texts)]

    try:
        want = each()
    except MalformedIdentifier as exc:
        with pytest.raises(MalformedIdentifier, match=str(exc)):
            normalise_all(texts)
    else:
        assert normalise_all(texts) == want


@pytest.mark.parametrize(("texts", "fmt"), [(["abcdef", "GHIJKL"], OutputFormat.ALPHABETIC),
                                            (["ab12cd", "0000000"], OutputFormat.ALPHANUMERIC),
                                            (["1234567", "123456"], OutputFormat.NUMERIC),
                                            (["12345", "1234567"], OutputFormat.NUMERIC),
                                            (["123a567"], OutputFormat.NUMERIC),
                                            (["١٢٣٤٥٦٧"], OutputFormat.NUMERIC)])
def test_in_alphabet_all_matches_in_alphabet(texts, fmt):
    try:
        want = [in_alphabet(t, fmt, 1 + i) for i, t in enumerate(texts)]
    except (MalformedIdentifier, DomainTooSmall) as exc:
        with pytest.raises(type(exc), match=str(exc)[:20]):
            in_alphabet_all(texts, fmt)
    else:
        assert in_alphabet_all(texts, fmt) == want
