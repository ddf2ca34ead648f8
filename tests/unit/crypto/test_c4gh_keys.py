"""The SPE's key pair: created once, private key 0600 and passphrase-protected."""

import os
import stat

import pytest

from lnds_spe import crypto
from lnds_spe.errors import SPEError

from .conftest import PASSPHRASE


def test_keypair_files_have_owner_only_private_key(spe_keys):
    secret_path, public_path, secret, public = spe_keys
    assert stat.S_IMODE(secret_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret_path.parent.stat().st_mode) == 0o700
    assert crypto.derive_public_key(secret) == public
    assert b"PRIVATE KEY" in secret_path.read_bytes() and secret not in secret_path.read_bytes()
    assert public_path.read_text() == crypto.public_key_pem(public)


def test_generate_refuses_to_overwrite_and_short_passphrases(spe_keys, tmp_path):
    secret_path = spe_keys[0]
    before = secret_path.read_bytes()
    with pytest.raises(SPEError, match="already exists"):
        crypto.generate_keypair(secret_path.parent, PASSPHRASE)
    assert secret_path.read_bytes() == before
    with pytest.raises(SPEError, match="too short"):
        crypto.generate_keypair(tmp_path / "k", "short")
    assert not (tmp_path / "k").exists()


def test_wrong_passphrase_is_an_spe_error_not_an_exit(spe_keys, capsys):
    with pytest.raises(SPEError, match="wrong passphrase"):
        crypto.load_private_key(spe_keys[0], lambda: "not the passphrase")
    assert capsys.readouterr().err == ""


def test_private_key_readable_by_others_is_refused(tmp_path):
    secret_path, _ = crypto.generate_keypair(tmp_path / "k", PASSPHRASE)
    os.chmod(secret_path, 0o644)
    with pytest.raises(SPEError, match="readable by other users"):
        crypto.load_private_key(secret_path, lambda: PASSPHRASE)


def test_bad_public_key_files(tmp_path, spe_keys):
    junk = tmp_path / "junk.pub"
    junk.write_text("hello\n")
    with pytest.raises(SPEError, match="not a Crypt4GH public key"):
        crypto.load_public_key(junk)
    with pytest.raises(SPEError, match="not found"):
        crypto.load_public_key(tmp_path / "missing.pub")
    with pytest.raises(SPEError, match="not found"):
        crypto.load_private_key(tmp_path / "missing.sec", lambda: PASSPHRASE)


def test_fingerprint_is_stable_and_distinguishes_keys(spe_keys):
    public = spe_keys[3]
    other = crypto.derive_public_key(os.urandom(32))
    assert crypto.fingerprint(public) == crypto.fingerprint(bytes(public))
    assert crypto.fingerprint(public) != crypto.fingerprint(other)
    assert len(crypto.fingerprint(public)) == 32
