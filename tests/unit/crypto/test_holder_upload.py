"""L5, I6: a data holder uploads with no registry rights; the SPE side checks, then registers."""

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from lnds_spe import crypto, ingress
from lnds_spe.errors import SPEError
from lnds_spe.ingress import Recipients

from .conftest import make_tree, tree_hashes

HOLDER_PASS = "holder passphrase"


@pytest.fixture(scope="module")
def holder_key(tmp_path_factory):
    folder = tmp_path_factory.mktemp("holder")
    secret, _public = crypto.generate_signing_key(folder, HOLDER_PASS)
    return crypto.load_signing_key(secret, lambda: HOLDER_PASS)


def manifest_path(upload: ingress.SignedUpload) -> Path:
    return Path(upload.manifest_location.removeprefix("file://"))


def rewrite(upload: ingress.SignedUpload, manifest: dict) -> None:
    manifest_path(upload).write_text(json.dumps(manifest))


def test_holder_upload_then_spe_registration(tmp_path, registry, store, recipients, secret_key,
                                            holder_key):
    source = make_tree(tmp_path / "src")
    upload = ingress.upload_signed(source, "p1", "survey", store=store, recipients=recipients,
                                   signing_key=holder_key)
    assert registry.datasets("p1") == []  # the holder wrote nothing to the registry
    signer = upload.manifest["uploader"]
    assert signer.startswith("ed25519:")
    info = ingress.register_upload(registry, upload.manifest_location, "p1", "survey",
                                   secret_key, actor="steward", signer=signer)
    assert info.location == upload.location and info.manifest["uploader"] == signer
    event = registry.audit.query(project="p1")[-1]
    assert (event.actor, event.action, event.outcome) == ("steward", "dataset.register", "ok")
    assert json.loads(event.details)["uploader"] == signer
    path = ingress.fetch_dataset(registry, "p1", "survey", tmp_path / "hub", secret_key,
                                 actor="hub")
    assert tree_hashes(path) == tree_hashes(source)


def refused(registry, upload, secret_key, pattern, *, project="p1", dataset="f", **kwargs):
    with pytest.raises(SPEError, match=pattern) as caught:
        ingress.register_upload(registry, upload.manifest_location, project, dataset, secret_key,
                                actor="steward", **kwargs)
    assert "\n" not in str(caught.value)
    assert [d.name for d in registry.datasets(project)] == []
    event = registry.audit.query(project=project)[-1]
    assert (event.action, event.outcome) == ("dataset.register", "denied")
    assert json.loads(event.details)["reason"] == str(caught.value)


@pytest.fixture
def upload(tmp_path, store, recipients, holder_key) -> ingress.SignedUpload:
    source = tmp_path / "f.csv"
    source.write_text("id,value\n1,2\n")
    return ingress.upload_signed(source, "p1", "f", store=store, recipients=recipients,
                                 signing_key=holder_key)


def test_a_second_registration_of_a_name_is_refused_and_keeps_the_upload(registry, upload,
                                                                         secret_key):
    ingress.register_upload(registry, upload.manifest_location, "p1", "f", secret_key,
                            actor="steward")
    with pytest.raises(SPEError, match="already has a dataset 'f'"):
        ingress.register_upload(registry, upload.manifest_location, "p1", "f", secret_key,
                                actor="steward")
    event = registry.audit.query(project="p1")[-1]
    assert (event.action, event.outcome) == ("dataset.register", "denied")
    assert Path(upload.location.removeprefix("file://")).exists()
    assert manifest_path(upload).exists()


def test_an_edited_manifest_fails_its_signature(registry, upload, secret_key):
    rewrite(upload, {**upload.manifest, "plaintext_sha256": "0" * 64})
    refused(registry, upload, secret_key, "signature does not match its content")


def test_an_unsigned_manifest_is_refused(registry, upload, secret_key):
    rewrite(upload, {k: v for k, v in upload.manifest.items() if k != "signature"})
    refused(registry, upload, secret_key, "not signed by a data holder's key")


def test_another_holder_is_refused_when_the_signer_is_pinned(registry, upload, secret_key):
    refused(registry, upload, secret_key, "is signed by ed25519:.*, not by ed25519:" + "a" * 32,
            signer="ed25519:" + "a" * 32)


def test_a_manifest_for_another_project_or_dataset_is_refused(registry, upload, secret_key):
    registry.create_project("p2", "Two", date(2020, 1, 1), date(2099, 1, 1), actor="admin")
    refused(registry, upload, secret_key, "made for dataset 'f' of project 'p1'", project="p2")
    refused(registry, upload, secret_key, "made for dataset 'f' of project 'p1'", dataset="g")


def test_an_upload_not_for_this_spe_is_refused(tmp_path, registry, store, secret_key,
                                               holder_key):
    source = tmp_path / "f.csv"
    source.write_text("x\n")
    other = Recipients(crypto.derive_public_key(os.urandom(32)))
    upload = ingress.upload_signed(source, "p1", "f", store=store, recipients=other,
                                   signing_key=holder_key)
    refused(registry, upload, secret_key, "not encrypted for this SPE's key")


def test_a_signed_manifest_whose_hashes_lie_is_refused(tmp_path, registry, store, recipients,
                                                       secret_key, holder_key):
    """The holder signs a manifest with a MAC that verifies but a false sha256 of the content."""
    source = tmp_path / "f.csv"
    source.write_text("id,value\n1,2\n")
    key = ingress.new_object_key("p1", "f")
    encrypted = ingress.encrypt_to_store(source, store, key, recipients)
    lie = {**encrypted.manifest, "plaintext_sha256": "0" * 64, "project": "p1", "dataset": "f"}
    raw = holder_key.public_key().public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw)
    lie["uploader"] = crypto.signer_fingerprint(raw)
    lie["mac"] = crypto.manifest_mac(lie, encrypted.session_key)
    store_path = Path(store.location(key + ingress.MANIFEST_SUFFIX).removeprefix("file://"))
    store_path.write_text(json.dumps(crypto.sign_manifest(lie, holder_key)))
    upload = ingress.SignedUpload(store.location(key), store.location(key + ingress.MANIFEST_SUFFIX),
                                  lie)
    refused(registry, upload, secret_key, "decrypted sha256 differs from the manifest")


def test_spe_data_upload_needs_no_registry(tmp_path, spe_keys, holder_key):
    """The holder's process runs with a registry URL that cannot work, and never opens it."""
    folder = tmp_path / "holder"
    crypto.generate_signing_key(folder, HOLDER_PASS)
    source = tmp_path / "f.csv"
    source.write_text("a,b\n1,2\n")
    env = {**os.environ, "SPE_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none",
           "SPE_STATE_DIR": str(tmp_path / "no-state"), "SPE_HOLDER_PASSPHRASE": HOLDER_PASS}
    code = ("import sys, runpy; sys.argv = ['spe'] + sys.argv[1:]\n"
            "try:\n    runpy.run_module('lnds_spe', run_name='__main__')\n"
            "except SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
            "assert 'sqlalchemy' not in sys.modules, 'the registry was imported'\n"
            "sys.exit(code)")
    done = subprocess.run(
        [sys.executable, "-c", code, "data", "upload", str(source), "--project", "p1",
         "--dataset", "f", "--signing-key", str(folder / "holder.sec"), "--spe-key",
         str(spe_keys[1]), "--store", str(tmp_path / "bucket")],
        env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "spe data register --project p1 --dataset f file://" in done.stdout
    assert not (tmp_path / "no-state" / "spe.sqlite").exists()
