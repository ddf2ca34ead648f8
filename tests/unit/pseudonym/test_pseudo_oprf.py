"""Blind mode against RFC 9497 Appendix A.1.1 (OPRF(ristretto255, SHA-512), mode 0), as transcribed."""

import pytest

from lnds_spe.pseudonym import oprf
from lnds_spe.pseudonym.errors import ProofError

SEED = bytes.fromhex("a3" * 32)
KEY_INFO = bytes.fromhex("74657374206b6579")  # "test key"
SK = "5ebcea5ee37023ccb9fc2d2019f9d7737be85591ae8652ffa9ef0f4d37063b0e"
BLIND = bytes.fromhex("64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706")
VECTORS = [
    ("00", "609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c",
     "7ec6578ae5120958eb2db1745758ff379e77cb64fe77b0b2d8cc917ea0869c7e",
     "527759c3d9366f277d8c6020418d96bb393ba2afb20ff90df23fb7708264e2f3"
     "ab9135e3bd69955851de4b1f9fe8a0973396719b7912ba9ee8aa7d0b5e24bcf6"),
    ("5a" * 17, "da27ef466870f5f15296299850aa088629945a17d1f5b7f5ff043f76b3c06418",
     "b4cbf5a4f1eeda5a63ce7b77c7d23f461db3fcab0dd28e4e17cecb5c90d02c25",
     "f4a74c9c592497375e796aa837e907b1a045d34306a749db9f34221f7e750cb4"
     "f2a6413a6bf6fa5e19ba6348eb673934a722a7ede2e7621306d18951e7cf2c73"),
]


def test_derive_key_pair_rfc9497():
    secret, public = oprf.derive_key_pair(SEED, KEY_INFO)
    assert secret.hex() == SK and len(public) == 32


@pytest.mark.parametrize("inp,blinded,evaluated,output", VECTORS, ids=["vector1", "vector2"])
def test_blind_evaluate_finalize_rfc9497(inp, blinded, evaluated, output):
    secret = bytes.fromhex(SK)
    identifier = bytes.fromhex(inp)
    r, element = oprf.blind(identifier, BLIND)
    assert element.hex() == blinded
    assert oprf.blind_evaluate(secret, element).hex() == evaluated
    assert oprf.finalize(identifier, r, bytes.fromhex(evaluated)).hex() == output
    assert oprf.evaluate(secret, identifier).hex() == output


def test_expand_message_xmd_rfc9380_sha512():
    # RFC 9380 K.3, expand_message_xmd(SHA-512), DST QUUX-V01-CS02-with-expander-SHA512-256, msg "abc"
    out = oprf.expand_message_xmd(b"abc", b"QUUX-V01-CS02-with-expander-SHA512-256", 0x80)
    assert out.hex().startswith("7f1dddd13c08b543f2e2037b14cefb255b44c83cc397c1786d975653e36a6b11")


def test_random_blinds_hide_the_input_and_unblind_to_the_same_output(master):
    secret, _ = oprf.project_key_pair(master, "cross-border")
    (r1, e1), (r2, e2) = oprf.blind(b"198501021234"), oprf.blind(b"198501021234")
    assert e1 != e2
    out1 = oprf.finalize(b"198501021234", r1, oprf.blind_evaluate(secret, e1))
    out2 = oprf.finalize(b"198501021234", r2, oprf.blind_evaluate(secret, e2))
    assert out1 == out2 == oprf.evaluate(secret, b"198501021234")
    other, _ = oprf.project_key_pair(master, "other-project")
    assert oprf.evaluate(other, b"198501021234") != out1


def test_invalid_elements_refused():
    with pytest.raises(ProofError, match="not a valid ristretto255"):
        oprf.blind_evaluate(bytes.fromhex(SK), b"\xff" * 32)
    with pytest.raises(ProofError):
        oprf.blind_evaluate(bytes.fromhex(SK), b"short")
