"""Every kind of bad input fails with a clear SPEError and leaves nothing at the destination."""

import os
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlparse

import pytest

from lnds_spe import crypto, ingress
from lnds_spe.errors import SPEError
from lnds_spe.projects import DatasetInfo

from .conftest import forge_dataset

SEG = crypto.CIPHER_SEGMENT_SIZE


@pytest.fixture
def uploaded(tmp_path, registry, store, recipients) -> tuple[DatasetInfo, Path]:
    """A 5-segment file dataset `f` and its object on disk."""
    source = tmp_path / "plain.bin"
    source.write_bytes(os.urandom(5 * crypto.SEGMENT_SIZE - 100))
    info = ingress.upload_dataset(registry, source, "p1", "f", store=store, recipients=recipients,
                                  actor="holder")
    return info, Path(urlparse(info.location).path)


def assert_fails_cleanly(registry, secret_key, destination: Path, pattern: str) -> None:
    with pytest.raises(SPEError, match=pattern) as caught:
        ingress.fetch_dataset(registry, "p1", "f", destination, secret_key, actor="hub")
    assert "\n" not in str(caught.value)
    assert not destination.exists() or os.listdir(destination) == []
    last = registry.audit.query(project="p1")[-1]
    assert (last.action, last.outcome) == ("dataset.decrypt", "failed")


def test_wrong_private_key(uploaded, registry, tmp_path):
    assert_fails_cleanly(registry, os.urandom(32), tmp_path / "out", "not encrypted for this SPE")


def test_not_a_crypt4gh_file(uploaded, registry, secret_key, tmp_path):
    uploaded[1].write_bytes(b"PK\x03\x04 this is a zip file, not crypt4gh" * 100)
    assert_fails_cleanly(registry, secret_key, tmp_path / "out", "not a Crypt4GH file")


def test_truncated_at_a_segment_boundary(uploaded, registry, secret_key, tmp_path):
    info, obj = uploaded
    blob = obj.read_bytes()
    obj.write_bytes(blob[:info.manifest["header_size"] + 3 * SEG])
    assert_fails_cleanly(registry, secret_key, tmp_path / "out", "truncated")


def test_truncated_inside_a_segment(uploaded, registry, secret_key, tmp_path):
    obj = uploaded[1]
    obj.write_bytes(obj.read_bytes()[:-1000])
    assert_fails_cleanly(registry, secret_key, tmp_path / "out", "fails authentication")


def test_two_segments_swapped(uploaded, registry, secret_key, tmp_path):
    info, obj = uploaded
    blob = obj.read_bytes()
    h = info.manifest["header_size"]
    first, second = blob[h:h + SEG], blob[h + SEG:h + 2 * SEG]
    obj.write_bytes(blob[:h] + second + first + blob[h + 2 * SEG:])
    assert_fails_cleanly(registry, secret_key, tmp_path / "out", "reordered")


def test_one_bit_flipped_in_the_payload(uploaded, registry, secret_key, tmp_path):
    obj = uploaded[1]
    blob = bytearray(obj.read_bytes())
    blob[-5000] ^= 0x01
    obj.write_bytes(bytes(blob))
    assert_fails_cleanly(registry, secret_key, tmp_path / "out", "segment 5 fails authentication")


def test_one_bit_flipped_in_the_header(uploaded, registry, secret_key, tmp_path):
    obj = uploaded[1]
    blob = bytearray(obj.read_bytes())
    blob[60] ^= 0x80
    obj.write_bytes(bytes(blob))
    assert_fails_cleanly(registry, secret_key, tmp_path / "out", "not encrypted for this SPE")


def test_manifest_edited(uploaded, secret_key, tmp_path):
    info = uploaded[0]
    forged = replace(info, manifest={**info.manifest, "plaintext_sha256": "0" * 64})
    with pytest.raises(SPEError, match="manifest does not match"):
        ingress.decrypt_dataset(forged, tmp_path / "out", secret_key, project="p1")
    assert os.listdir(tmp_path / "out") == []


def test_manifest_of_another_upload(uploaded, tmp_path, registry, store, recipients, secret_key):
    other = tmp_path / "other.bin"
    other.write_bytes(os.urandom(5 * crypto.SEGMENT_SIZE - 100))
    other_info = ingress.upload_dataset(registry, other, "p1", "g", store=store,
                                        recipients=recipients, actor="holder")
    swapped = replace(uploaded[0], manifest={**other_info.manifest, "dataset": "f"})
    with pytest.raises(SPEError, match="manifest does not match"):
        ingress.decrypt_dataset(swapped, tmp_path / "out", secret_key, project="p1")
    assert os.listdir(tmp_path / "out") == []


def test_object_replaced_by_another_upload(uploaded, tmp_path, registry, store, recipients,
                                          secret_key):
    other = tmp_path / "other.bin"
    other.write_bytes(os.urandom(100))
    other_info = ingress.upload_dataset(registry, other, "p1", "g", store=store,
                                        recipients=recipients, actor="holder")
    uploaded[1].write_bytes(Path(urlparse(other_info.location).path).read_bytes())
    assert_fails_cleanly(registry, secret_key, tmp_path / "out", "manifest does not match")


def test_dataset_without_a_manifest(registry, secret_key, tmp_path):
    registry.add_dataset("p1", "plain", (tmp_path / "x.c4gh").as_uri(), actor="admin")
    with pytest.raises(SPEError, match="no SPE manifest"):
        ingress.fetch_dataset(registry, "p1", "plain", tmp_path / "out", secret_key, actor="hub")


def test_unknown_project_or_dataset(uploaded, registry, secret_key, tmp_path):
    with pytest.raises(SPEError, match="unknown project 'nope'"):
        ingress.fetch_dataset(registry, "nope", "f", tmp_path / "out", secret_key, actor="hub")
    with pytest.raises(SPEError, match=r"no dataset 'nope' \(it has: f\)"):
        ingress.fetch_dataset(registry, "p1", "nope", tmp_path / "out", secret_key, actor="hub")
    assert not (tmp_path / "out").exists()


def test_missing_object(uploaded, registry, secret_key, tmp_path):
    uploaded[1].unlink()
    assert_fails_cleanly(registry, secret_key, tmp_path / "out", "not in the store")


def test_existing_destination_is_not_overwritten(uploaded, registry, secret_key, tmp_path):
    (tmp_path / "out" / "f").mkdir(parents=True)
    (tmp_path / "out" / "f" / "keep.txt").write_text("mine")
    with pytest.raises(SPEError, match="already exists"):
        ingress.fetch_dataset(registry, "p1", "f", tmp_path / "out", secret_key, actor="hub")
    assert (tmp_path / "out" / "f" / "keep.txt").read_text() == "mine"


def test_tar_with_unsafe_paths_is_refused(tmp_path, registry, store, recipients, secret_key):
    import io
    import tarfile

    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        data = b"owned"
        info = tarfile.TarInfo("../escape.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    forge_dataset(registry, store, recipients, "evil", evil, kind="tar",
                  files=[{"path": "../escape.txt", "size": 5, "sha256": "0" * 64}])
    with pytest.raises(SPEError, match="unsafe path"):
        ingress.fetch_dataset(registry, "p1", "evil", tmp_path / "hub" / "out", secret_key,
                              actor="hub")
    assert not (tmp_path / "hub" / "escape.txt").exists()
    assert os.listdir(tmp_path / "hub" / "out") == []
