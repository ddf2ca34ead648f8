"""Upload → fetch → delete through a local-directory store, re-keying, and the audit trail."""

import hashlib
import io
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import pytest

from lnds_spe import crypto, ingress
from lnds_spe.datasets import remove_tree
from lnds_spe.errors import SPEError
from lnds_spe.ingress import Recipients

from .conftest import make_tree, tree_hashes


def stored_object(location: str) -> Path:
    return Path(urlparse(location).path)


def payload_sha256(path: Path, header_size: int) -> str:
    return hashlib.sha256(path.read_bytes()[header_size:]).hexdigest()


def test_directory_upload_fetch_delete(tmp_path, registry, store, recipients, secret_key):
    source = make_tree(tmp_path / "src")
    info = ingress.upload_dataset(registry, source, "p1", "survey", store=store,
                                  recipients=recipients, actor="holder")
    manifest = info.manifest
    assert manifest["kind"] == "tar" and manifest["uploader"] == "holder"
    assert {f["path"]: f["sha256"] for f in manifest["files"]} == tree_hashes(source)
    assert manifest["recipients"] == [crypto.fingerprint(recipients.spe_public_key)]
    assert info.encrypted_size == stored_object(info.location).stat().st_size
    assert [d.name for d in registry.datasets("p1")] == ["survey"]

    out = tmp_path / "hub" / "server-1"
    path = ingress.fetch_dataset(registry, "p1", "survey", out, secret_key, actor="hub")
    assert path == out / "survey"
    assert tree_hashes(path) == tree_hashes(source)
    assert (path / "empty-dir").is_dir()
    assert sorted(os.listdir(out)) == ["survey"]  # no staging directory left
    for file in path.rglob("*"):
        if file.is_file():
            assert stat.S_IMODE(file.stat().st_mode) == 0o444

    ingress.delete_decrypted(registry, "p1", path, actor="hub")
    assert not path.exists()
    actions = [e.action for e in registry.audit.query(project="p1")]
    assert actions == ["project.create", "dataset.add", "dataset.upload", "dataset.fetch",
                       "dataset.decrypt", "dataset.delete"]
    assert registry.audit.verify()[1] is None


def test_single_file_upload_keeps_its_name(tmp_path, registry, store, recipients, secret_key):
    source = tmp_path / "records.csv"
    source.write_bytes(os.urandom(3 * crypto.SEGMENT_SIZE + 10))
    info = ingress.upload_dataset(registry, source, "p1", "records", store=store,
                                  recipients=recipients, actor="holder")
    assert info.manifest["kind"] == "file"
    assert info.plaintext_sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    path = ingress.fetch_dataset(registry, "p1", "records", tmp_path / "out", secret_key,
                                 actor="hub")
    assert (path / "records.csv").read_bytes() == source.read_bytes()


def test_rekey_reencrypts_so_a_removed_recipient_cannot_read_even_with_the_old_session_key(
        tmp_path, registry, store, recipients, secret_key):
    """I5: revoking re-encrypts the payload under a new session key and deletes the old object."""
    source = tmp_path / "f.bin"
    source.write_bytes(os.urandom(5 * crypto.SEGMENT_SIZE + 3))
    holder_secret = os.urandom(32)
    holder_public = crypto.derive_public_key(holder_secret)
    both = Recipients(recipients.spe_public_key, (holder_public,))
    info = ingress.upload_dataset(registry, source, "p1", "f", store=store, recipients=both,
                                  actor="holder")
    old = stored_object(info.location)
    with old.open("rb") as file:
        kept_session_key = crypto.read_header(file, holder_secret, "o").session_key
    old_payload = old.read_bytes()[info.manifest["header_size"]:]

    newcomer_secret = os.urandom(32)
    fingerprints = ingress.rekey_dataset(
        registry, "p1", "f", secret_key,
        Recipients(recipients.spe_public_key, (crypto.derive_public_key(newcomer_secret),)),
        actor="admin")
    assert crypto.fingerprint(holder_public) not in fingerprints
    assert not old.exists()  # the revoked key's ciphertext is gone from the store
    new_info = registry.datasets("p1")[0]
    new = stored_object(new_info.location)
    assert [p.name for p in new.parent.iterdir()] == [new.name]  # no temporary left
    payload = new.read_bytes()[new_info.manifest["header_size"]:]
    assert payload != old_payload
    # the removed holder still holds the old session key: it opens no segment of the new payload
    with pytest.raises(SPEError, match="fails authentication"), ThreadPoolExecutor(1) as pool:
        crypto.DecryptingReader(io.BytesIO(payload), kept_session_key, pool, "o").drain()
    with new.open("rb") as file, pytest.raises(SPEError, match="not encrypted for this SPE's key"):
        crypto.read_header(file, holder_secret, "o")
    with new.open("rb") as file:
        assert crypto.read_header(file, newcomer_secret, "o").session_key
    path = ingress.fetch_dataset(registry, "p1", "f", tmp_path / "out", secret_key, actor="hub")
    assert (path / "f.bin").read_bytes() == source.read_bytes()
    rekey = [e for e in registry.audit.query(project="p1") if e.action == "dataset.rekey"]
    assert len(rekey) == 1 and '"previous"' in rekey[0].details


def test_prepare_hook_decrypts_all_and_cleans_up_on_failure(tmp_path, registry, store, recipients,
                                                            secret_key):
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.txt").write_text(name)
        ingress.upload_dataset(registry, tmp_path / name, "p1", name, store=store,
                               recipients=recipients, actor="holder")
    project = registry.get_project("p1")
    datasets = registry.datasets("p1")
    destination = tmp_path / "server"
    destination.mkdir()
    prepared = ingress.prepare_encrypted_datasets(project, datasets, destination,
                                                  registry=registry, secret_key=secret_key)
    assert {n: (p / "x.txt").read_text() for n, p in prepared.items()} == {"one": "one",
                                                                          "two": "two"}
    for path in prepared.values():
        remove_tree(path)
    obj = stored_object(datasets[1].location)
    obj.write_bytes(obj.read_bytes()[:-1])  # damage the second dataset
    with pytest.raises(SPEError, match="dataset two"):
        ingress.prepare_encrypted_datasets(project, datasets, destination, registry=registry,
                                           secret_key=secret_key)
    assert os.listdir(destination) == []  # the first one, already decrypted, was removed too


def test_make_preparer_loads_key_once_from_env(tmp_path, registry, store, recipients, spe_keys,
                                               monkeypatch):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_text("a")
    ingress.upload_dataset(registry, tmp_path / "d", "p1", "d", store=store,
                           recipients=recipients, actor="holder")
    monkeypatch.setenv(ingress.PASSPHRASE_ENV, "wrong passphrase")
    with pytest.raises(SPEError, match="wrong passphrase"):
        ingress.make_encrypted_preparer(registry, private_key_path=spe_keys[0])
    monkeypatch.setenv(ingress.PASSPHRASE_ENV, "correct horse battery")
    prepare = ingress.make_encrypted_preparer(registry, private_key_path=spe_keys[0])
    (tmp_path / "dest").mkdir()
    prepared = prepare(registry.get_project("p1"), registry.datasets("p1"), tmp_path / "dest")
    assert (prepared["d"] / "a").read_text() == "a"


def test_links_in_a_directory_are_refused(tmp_path, registry, store, recipients):
    source = make_tree(tmp_path / "src")
    (source / "link").symlink_to(source / "a.csv")
    with pytest.raises(SPEError, match="link or special file"):
        ingress.upload_dataset(registry, source, "p1", "s", store=store, recipients=recipients,
                               actor="holder")
    assert registry.datasets("p1") == []
    assert not any(store.root.rglob("*.c4gh*"))


def test_failed_upload_leaves_no_object(tmp_path, registry, store, recipients):
    source = tmp_path / "missing"
    with pytest.raises(SPEError, match="does not exist"):
        ingress.upload_dataset(registry, source, "p1", "m", store=store, recipients=recipients,
                               actor="holder")

    class Boom(Exception):
        pass

    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(3 * crypto.CHUNK_SIZE))
    calls = []

    def interrupt(n: int) -> None:
        calls.append(n)
        if len(calls) == 2:
            raise Boom

    with pytest.raises(Boom):
        ingress.upload_dataset(registry, data, "p1", "m", store=store, recipients=recipients,
                               actor="holder", progress=interrupt)
    assert list(store.root.rglob("*")) == [store.root / "p1"]  # no object, no temporary
    assert registry.datasets("p1") == []
