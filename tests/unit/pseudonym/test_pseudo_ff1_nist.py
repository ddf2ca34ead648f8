"""FF1 against the nine sample vectors of NIST SP 800-38G (FF1samples.pdf), as transcribed."""

import pytest

from lnds_spe.pseudonym.methods import ff1_decrypt, ff1_encrypt

K128 = "2B7E151628AED2A6ABF7158809CF4F3C"
K192 = K128 + "EF4359D8D580AA4F"
K256 = K192 + "7F036D6F04FC6A94"
T_DIGITS = "39383736353433323130"
T_MIXED = "3737373770717273373737"
RADIX10 = "0123456789"
RADIX36 = "0123456789abcdefghijklmnopqrstuvwxyz"
P19 = "0123456789abcdefghi"

SAMPLES = [
    (1, K128, "", RADIX10, "0123456789", "2433477484"),
    (2, K128, T_DIGITS, RADIX10, "0123456789", "6124200773"),
    (3, K128, T_MIXED, RADIX36, P19, "a9tv40mll9kdu509eum"),
    (4, K192, "", RADIX10, "0123456789", "2830668132"),
    (5, K192, T_DIGITS, RADIX10, "0123456789", "2496655549"),
    (6, K192, T_MIXED, RADIX36, P19, "xbj3kv35jrawxv32ysr"),
    (7, K256, "", RADIX10, "0123456789", "6657667009"),
    (8, K256, T_DIGITS, RADIX10, "0123456789", "1001623463"),
    (9, K256, T_MIXED, RADIX36, P19, "xs8a0azh2avyalyzuwd"),
]


@pytest.mark.parametrize("sample,key,tweak,alphabet,plain,cipher", SAMPLES,
                         ids=[f"sample{s[0]}" for s in SAMPLES])
def test_ff1_nist_sample(sample, key, tweak, alphabet, plain, cipher):
    k, t = bytes.fromhex(key), bytes.fromhex(tweak)
    assert ff1_encrypt(k, t, alphabet, [plain]) == [cipher]
    assert ff1_decrypt(k, t, alphabet, [cipher]) == [plain]
