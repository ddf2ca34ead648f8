"""Ingress refuses bombs and lies (docs/security.md D8: I1, I2, I4): nothing is written, all audited."""

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tracemalloc
from collections import namedtuple
from pathlib import Path

import pytest

from lnds_spe import crypto, ingress
from lnds_spe.errors import SPEError

from .conftest import forge_dataset

MiB = 1024 * 1024


def assert_refused_cleanly(registry, secret_key, out: Path, error: type, pattern: str,
                           dataset: str) -> None:
    with pytest.raises(error, match=pattern) as caught:
        ingress.fetch_dataset(registry, "p1", dataset, out, secret_key, actor="hub")
    assert "\n" not in str(caught.value)
    assert not out.exists() or os.listdir(out) == []
    last = registry.audit.query(project="p1")[-1]
    assert (last.action, last.outcome, last.target) == ("dataset.decrypt", "failed", dataset)


def sparse_tar(tmp_path: Path, apparent: int) -> Path:
    """A GNU tar with one sparse member: `apparent` bytes long, 10 KiB of them data."""
    folder = tmp_path / "sparse-src"
    folder.mkdir()
    with open(folder / "big", "wb") as file:
        file.write(os.urandom(10 * 1024))
        file.truncate(apparent)
    archive = tmp_path / "sparse.tar"
    subprocess.run(["tar", "--sparse", "-cf", str(archive), "-C", str(folder), "big"], check=True)
    assert archive.stat().st_size < 64 * 1024
    return archive


# I1: sparse or oversized members, no room

def test_a_sparse_member_is_refused_before_anything_is_written(tmp_path, registry, store,
                                                              recipients, secret_key):
    archive = sparse_tar(tmp_path, 256 * MiB)
    forge_dataset(registry, store, recipients, "sparse", archive, kind="tar",
                  files=[{"path": "big", "size": 10 * 1024, "sha256": "0" * 64}])
    assert_refused_cleanly(registry, secret_key, tmp_path / "out", ingress.UnsafeMember,
                           "'big', a sparse file: refused", "sparse")


def test_a_manifest_claiming_more_than_its_plaintext_is_refused(tmp_path, registry, store,
                                                               recipients, secret_key):
    archive = sparse_tar(tmp_path, 256 * MiB)
    forge_dataset(registry, store, recipients, "bomb", archive, kind="tar",
                  files=[{"path": "big", "size": 256 * MiB, "sha256": "0" * 64}])
    assert_refused_cleanly(registry, secret_key, tmp_path / "out", SPEError,
                           "sizes do not add up", "bomb")


def _tar_with(tmp_path: Path, members: dict[str, bytes]) -> Path:
    archive = tmp_path / "plain.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def test_a_member_longer_than_the_manifest_says_is_not_extracted(tmp_path, registry, store,
                                                                recipients, secret_key):
    data = os.urandom(3 * MiB)
    archive = _tar_with(tmp_path, {"a.bin": data})
    forge_dataset(registry, store, recipients, "long", archive, kind="tar",
                  files=[{"path": "a.bin", "size": MiB, "sha256": hashlib.sha256(data).hexdigest()}])
    assert_refused_cleanly(registry, secret_key, tmp_path / "out", ingress.UnsafeMember,
                           f"'a.bin' has {3 * MiB} bytes, its manifest says {MiB}", "long")


def test_a_member_the_manifest_does_not_list_is_not_extracted(tmp_path, registry, store,
                                                             recipients, secret_key):
    archive = _tar_with(tmp_path, {"listed.txt": b"a", "extra.txt": b"b" * 1000})
    forge_dataset(registry, store, recipients, "extra", archive, kind="tar",
                  files=[{"path": "listed.txt", "size": 1,
                          "sha256": hashlib.sha256(b"a").hexdigest()}])
    assert_refused_cleanly(registry, secret_key, tmp_path / "out", ingress.UnsafeMember,
                           "'extra.txt', which its manifest does not list", "extra")


def test_no_room_is_refused_before_decrypting(tmp_path, registry, store, recipients, secret_key,
                                              monkeypatch):
    source = tmp_path / "f.bin"
    source.write_bytes(os.urandom(MiB))
    ingress.upload_dataset(registry, source, "p1", "f", store=store, recipients=recipients,
                           actor="holder")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(2 * MiB, MiB, 1000))
    assert_refused_cleanly(registry, secret_key, tmp_path / "out", ingress.NoRoom,
                           f"needs {MiB} bytes, .* has 1000 free", "f")


# I2: header lengths beyond the format's bounds

@pytest.mark.parametrize(("count", "length"), [(1, 2**30), (1, 2**32 - 1), (2**31, 108), (1, 3)])
def test_a_tiny_object_declaring_a_huge_header_allocates_nothing(count, length, tmp_path,
                                                                  registry, store, recipients,
                                                                  secret_key):
    blob = b"crypt4gh" + (1).to_bytes(4, "little") + count.to_bytes(4, "little")
    blob += length.to_bytes(4, "little")
    assert len(blob) == 20
    tracemalloc.start()
    try:
        with pytest.raises(SPEError, match="header packet"):
            crypto.read_header(io.BytesIO(blob), secret_key, "object")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MiB


def test_a_huge_header_through_fetch_is_refused_and_audited(tmp_path, registry, store,
                                                           recipients, secret_key):
    source = tmp_path / "f.bin"
    source.write_bytes(b"x" * 100)
    info = ingress.upload_dataset(registry, source, "p1", "f", store=store,
                                  recipients=recipients, actor="holder")
    obj = Path(info.location.removeprefix("file://"))
    obj.write_bytes(b"crypt4gh" + (1).to_bytes(4, "little") + (1).to_bytes(4, "little")
                    + (2**30).to_bytes(4, "little"))
    assert_refused_cleanly(registry, secret_key, tmp_path / "out", crypto.HeaderTooLarge,
                           "1073741824 bytes", "f")


# I4: a manifest under another project or dataset; no plain downgrade

def test_an_object_and_manifest_moved_to_another_project_do_not_decrypt_there(
        tmp_path, registry, store, recipients, secret_key):
    from datetime import date

    source = tmp_path / "a.csv"
    source.write_text("secret of project one\n")
    info = ingress.upload_dataset(registry, source, "p1", "a", store=store,
                                  recipients=recipients, actor="holder")
    registry.create_project("p2", "Two", date(2020, 1, 1), date(2099, 1, 1), actor="admin")
    registry.add_dataset("p2", "a", info.location, actor="admin", manifest=info.manifest)
    registry.add_dataset("p1", "b", info.location, actor="admin", manifest=info.manifest)
    for project, dataset in (("p2", "a"), ("p1", "b")):
        with pytest.raises(ingress.ManifestMismatch, match="made for dataset 'a' of project 'p1'"):
            ingress.fetch_dataset(registry, project, dataset, tmp_path / project, secret_key,
                                  actor="hub")
        assert not (tmp_path / project).exists()
        last = registry.audit.query(project=project)[-1]
        assert (last.action, last.outcome) == ("dataset.decrypt", "failed")


def test_with_a_key_a_dataset_without_manifest_is_refused_not_served_plain(
        tmp_path, registry, store, recipients, secret_key):
    staged = tmp_path / "state" / "datasets" / "p1" / "plain"
    staged.mkdir(parents=True)
    (staged / "x.csv").write_text("unverified")
    registry.add_dataset("p1", "plain", store.location("p1/plain.c4gh"), actor="admin")
    destination = tmp_path / "server"
    destination.mkdir()
    with pytest.raises(ingress.PlainDatasetRefused, match="dataset plain of project p1 has no "
                                                          "manifest"):
        ingress.prepare_encrypted_datasets(registry.get_project("p1"), registry.datasets("p1"),
                                           destination, registry=registry, secret_key=secret_key,
                                           plain_state_dir=tmp_path / "state")
    assert os.listdir(destination) == []
    last = registry.audit.query(project="p1")[-1]
    assert (last.action, last.outcome, last.target) == ("dataset.decrypt", "denied", "plain")
