"""Upload → object store (a real nanio S3 server) → decrypt into a per-server dir → delete."""

import os
import subprocess
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest

from lnds_spe import crypto, ingress
from lnds_spe.errors import SPEError
from lnds_spe.ingress import Recipients
from lnds_spe.projects import open_registry
from lnds_spe.storage import S3Store, open_store

from .conftest import free_port, make_tree, tree_hashes


@pytest.fixture
def registry(database_url):
    reg = open_registry(database_url)
    reg.create_project("p1", "Project one", date(2020, 1, 1), date(2099, 1, 1), actor="admin")
    return reg


def test_upload_prepare_delete_end_to_end(s3_env, registry, spe_keys, tmp_path):
    source = make_tree(tmp_path / "holder" / "survey")
    store = open_store(f"s3://{s3_env}/incoming")
    info = ingress.upload_dataset(registry, source, "p1", "survey", store=store,
                                  recipients=Recipients(spe_keys[3]), actor="holder")
    key = info.location.removeprefix(f"s3://{s3_env}/incoming/")
    assert key.startswith("p1/survey-") and key.endswith(".c4gh")
    assert store.size(key) == info.encrypted_size
    assert store.client.list_multipart_uploads(Bucket=s3_env).get("Uploads", []) == []

    server_dir = tmp_path / "hub" / "prepared" / "alice-p1"
    server_dir.mkdir(parents=True)
    prepared = ingress.prepare_encrypted_datasets(
        registry.get_project("p1"), registry.datasets("p1"), server_dir, registry=registry,
        secret_key=spe_keys[2], actor="hub")
    assert prepared == {"survey": server_dir / "survey"}
    assert tree_hashes(prepared["survey"]) == tree_hashes(source)
    assert oct((prepared["survey"] / "records.csv").stat().st_mode & 0o777) == "0o444"

    ingress.delete_decrypted(registry, "p1", prepared["survey"], actor="hub")
    assert not prepared["survey"].exists() and os.listdir(server_dir) == []
    actions = [e.action for e in registry.audit.query(project="p1")]
    assert actions[1:] == ["dataset.add", "dataset.upload", "dataset.fetch", "dataset.decrypt",
                           "dataset.delete"]


def test_interrupted_upload_leaves_no_object_and_no_open_upload(s3_env, spe_keys, tmp_path):
    store = S3Store(s3_env)
    data = tmp_path / "big.bin"
    data.write_bytes(os.urandom(30 * 1024 * 1024))
    seen = []

    def interrupt(n: int) -> None:
        seen.append(n)
        if sum(seen) > 20 * 1024 * 1024:  # after several parts went out
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingress.encrypt_to_store(data, store, "p1/big.c4gh", Recipients(spe_keys[3]),
                                 progress=interrupt)
    assert store.client.list_multipart_uploads(Bucket=s3_env).get("Uploads", []) == []
    assert store.client.list_objects_v2(Bucket=s3_env).get("KeyCount", 0) == 0

    # a killed process leaves an open multipart upload: a later upload of the same name aborts
    # it once it is stale, never while it may still be another live upload
    store.client.create_multipart_upload(Bucket=s3_env, Key="p1/big-0123.c4gh")
    assert store.abort_incomplete("p1/big-", older_than=timedelta(days=1)) == 0
    assert len(store.client.list_multipart_uploads(Bucket=s3_env).get("Uploads", [])) == 1
    assert store.abort_incomplete("p1/big-", older_than=timedelta(0)) == 1
    assert store.client.list_multipart_uploads(Bucket=s3_env).get("Uploads", []) == []


def test_rekey_on_s3_replaces_the_object(s3_env, registry, spe_keys, tmp_path):
    source = tmp_path / "f.bin"
    source.write_bytes(os.urandom(9 * 1024 * 1024))
    store = S3Store(s3_env)
    info = ingress.upload_dataset(registry, source, "p1", "f", store=store,
                                  recipients=Recipients(spe_keys[3]), actor="holder")
    old_key = info.location.removeprefix(f"s3://{s3_env}/")
    partner_secret = os.urandom(32)
    ingress.rekey_dataset(registry, "p1", "f", spe_keys[2],
                          Recipients(spe_keys[3], (crypto.derive_public_key(partner_secret),)),
                          actor="admin")
    new_key = registry.datasets("p1")[0].location.removeprefix(f"s3://{s3_env}/")
    listed = [o["Key"] for o in store.client.list_objects_v2(Bucket=s3_env)["Contents"]]
    assert listed == [new_key] and new_key != old_key
    with store.reader(new_key) as body:
        assert crypto.read_header(body, partner_secret, "rekeyed object").session_key
    path = ingress.fetch_dataset(registry, "p1", "f", tmp_path / "out", spe_keys[2], actor="hub")
    assert (path / "f.bin").read_bytes() == source.read_bytes()


def test_concurrent_uploads_under_one_name_keep_the_winner_fetchable(s3_env, registry, spe_keys,
                                                                     tmp_path):
    """I3: both pass the name check, both upload; the loser deletes only its own object."""
    store = S3Store(s3_env)
    both_started = threading.Barrier(2, timeout=60)
    sources, outcomes = [], {}
    for name in ("one", "two"):
        source = tmp_path / f"{name}.bin"
        source.write_bytes(os.urandom(2 * 1024 * 1024))
        sources.append(source)

    def upload(source: Path) -> None:
        started = []

        def progress(_n: int) -> None:
            if not started:
                started.append(True)
                both_started.wait()

        try:
            ingress.upload_dataset(registry, source, "p1", "same", store=store,
                                   recipients=Recipients(spe_keys[3]), actor="holder",
                                   progress=progress)
            outcomes[source.name] = "ok"
        except SPEError as exc:
            outcomes[source.name] = str(exc)

    threads = [threading.Thread(target=upload, args=(s,)) for s in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    ok, refused = sorted(outcomes.values())
    assert ok == "ok" and refused.startswith("project p1 already has a dataset 'same'")
    winner = next(s for s in sources if outcomes[s.name] == "ok")
    registered = registry.datasets("p1")[0]
    listed = [o["Key"] for o in store.client.list_objects_v2(Bucket=s3_env)["Contents"]]
    assert listed == [registered.location.removeprefix(f"s3://{s3_env}/")]
    path = ingress.fetch_dataset(registry, "p1", "same", tmp_path / "out", spe_keys[2],
                                 actor="hub")
    assert (path / winner.name).read_bytes() == winner.read_bytes()


def test_unreachable_store(registry, spe_keys, tmp_path, monkeypatch):
    monkeypatch.setenv("SPE_S3_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    source = tmp_path / "f.csv"
    source.write_text("a\n1\n")
    with pytest.raises(SPEError, match="unreachable"):
        ingress.upload_dataset(registry, source, "p1", "f", store=open_store("s3://bucket"),
                               recipients=Recipients(spe_keys[3]), actor="holder")
    assert registry.datasets("p1") == []
    manifest_stub = {"format": crypto.MANIFEST_FORMAT, "kind": "file", "project": "p1",
                     "dataset": "g", "files": [{"path": "g", "size": 0, "sha256": ""}],
                     "plaintext_size": 0, "payload_size": 0, "header_size": 0, "recipients": []}
    registry.add_dataset("p1", "g", "s3://bucket/p1/g.c4gh", actor="admin",
                         manifest=manifest_stub)
    with pytest.raises(SPEError, match="unreachable"):
        ingress.fetch_dataset(registry, "p1", "g", tmp_path / "out", spe_keys[2], actor="hub")
    assert not (tmp_path / "out" / "g").exists()


@pytest.fixture
def tiny_tmpfs(tmp_path) -> Path:
    """A 1 MiB tmpfs (root only), unmounted afterwards."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.fail("the full-disk test mounts a tmpfs and needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
                   check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_full_disk_during_decryption(s3_env, registry, spe_keys, tmp_path, tiny_tmpfs):
    source = tmp_path / "f.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024))
    ingress.upload_dataset(registry, source, "p1", "f", store=S3Store(s3_env),
                           recipients=Recipients(spe_keys[3]), actor="holder")
    with pytest.raises(ingress.NoRoom, match=r"needs 3145728 bytes, .* has \d+ free") as caught:
        ingress.fetch_dataset(registry, "p1", "f", tiny_tmpfs / "server", spe_keys[2],
                              actor="hub")
    assert "\n" not in str(caught.value)
    assert os.listdir(tiny_tmpfs / "server") == []
    assert registry.audit.query(project="p1")[-1].outcome == "failed"
