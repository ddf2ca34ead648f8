"""I7: the demo's passphrase file is read only in demo mode; the hub's children inherit no secret."""

import json
import os
import subprocess
import sys

import pytest

from lnds_spe import ingress, storage
from lnds_spe.errors import SPEError

from .conftest import PASSPHRASE

SECRETS = {"SPE_KEY_PASSPHRASE": PASSPHRASE, "SPE_HOLDER_PASSPHRASE": "holder secret",
           "AWS_ACCESS_KEY_ID": "access-id", "AWS_SECRET_ACCESS_KEY": "very secret",
           "AWS_SESSION_TOKEN": "token"}


@pytest.fixture
def key_dir(spe_keys, tmp_path):
    """The SPE's key pair with the demo's passphrase file beside it."""
    (spe_keys[0].parent / ingress.DEMO_PASSPHRASE_FILE).write_text(PASSPHRASE)
    yield spe_keys[0].parent
    (spe_keys[0].parent / ingress.DEMO_PASSPHRASE_FILE).unlink()


def test_outside_demo_mode_the_passphrase_file_beside_the_key_is_never_read(key_dir,
                                                                           monkeypatch):
    monkeypatch.delenv("SPE_KEY_PASSPHRASE", raising=False)
    assert ingress.hub_passphrase(key_dir, demo_mode=False) is None
    with pytest.raises(SPEError, match="set SPE_KEY_PASSPHRASE"):
        ingress.load_hub_secret_key(key_dir / "spe.sec",
                                    ingress.hub_passphrase(key_dir, demo_mode=False))


def test_in_demo_mode_the_file_serves_only_when_the_variable_is_unset(key_dir, monkeypatch):
    monkeypatch.delenv("SPE_KEY_PASSPHRASE", raising=False)
    assert ingress.hub_passphrase(key_dir, demo_mode=True)() == PASSPHRASE
    monkeypatch.setenv("SPE_KEY_PASSPHRASE", "from the environment")
    assert ingress.hub_passphrase(key_dir, demo_mode=True) is None


def test_loading_the_hubs_key_takes_every_secret_out_of_its_environment(spe_keys, tmp_path,
                                                                       registry, monkeypatch):
    monkeypatch.setattr(storage, "_HELD_CREDENTIALS", {})
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    ingress.make_encrypted_preparer(registry, private_key_path=spe_keys[0])
    assert not set(SECRETS) & set(os.environ)
    # a child started now (as JupyterHub starts configurable-http-proxy) sees none of them
    child = subprocess.run([sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
                           capture_output=True, text=True, check=True)
    inherited = json.loads(child.stdout)
    assert not set(SECRETS) & set(inherited)
    assert not any(value in child.stdout for value in SECRETS.values())
    # the hub's own S3 clients still have the credentials
    client = storage._s3_client("http://127.0.0.1:1")
    credentials = client._request_signer._credentials
    assert (credentials.access_key, credentials.secret_key) == ("access-id", "very secret")
