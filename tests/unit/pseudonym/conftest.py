"""Shared fixtures: a fresh master key file per test."""

import pytest

from lnds_spe.pseudonym.keystore import FileKeyStore


@pytest.fixture
def store(tmp_path):
    keystore = FileKeyStore(tmp_path / "ipms" / "master.key")
    keystore.create()
    return keystore


@pytest.fixture
def master(store):
    return store.master_key()
