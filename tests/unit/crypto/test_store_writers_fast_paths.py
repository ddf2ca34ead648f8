"""The fast paths of upload: in-place segment encryption, the local store's background flush,
the S3 writer's parts in flight and the shared S3 client."""

import io
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from crypt4gh import sodium

from lnds_spe import crypto, storage
from lnds_spe.storage import LocalStore


def test_segments_match_the_reference_binding_both_ways():
    key = os.urandom(32)
    plain = os.urandom(3 * crypto.SEGMENT_SIZE + 17)
    out = io.BytesIO()
    with ThreadPoolExecutor(1) as pool:
        writer = crypto.EncryptingWriter(out, key, pool)
        writer.write(plain[:1000])  # mixed: a copied write, then reads straight into the buffer
        assert writer.fill_from(io.BytesIO(plain[1000:])) == len(plain) - 1000
        writer.finish()
    blob = out.getvalue()
    assert len(blob) == len(plain) + 4 * crypto.CIPHER_DIFF
    segments = [blob[i:i + crypto.CIPHER_SEGMENT_SIZE]
                for i in range(0, len(blob), crypto.CIPHER_SEGMENT_SIZE)]
    assert len({s[:crypto.NONCE_SIZE] for s in segments}) == 4  # a fresh nonce per segment
    recovered = bytearray()
    for segment in segments:
        target = bytearray(len(segment) - crypto.CIPHER_DIFF)
        sodium.chacha20poly1305_decrypt(target, segment, key)
        recovered += target
    assert bytes(recovered) == plain

    theirs = bytearray(crypto.CIPHER_SEGMENT_SIZE)
    n = sodium.chacha20poly1305_encrypt(theirs, plain[:crypto.SEGMENT_SIZE], key)
    with ThreadPoolExecutor(1) as pool:
        reader = crypto.DecryptingReader(io.BytesIO(bytes(theirs[:n])), key, pool, "segment")
        assert reader.read() == plain[:crypto.SEGMENT_SIZE]


def test_local_writer_flushes_in_background_and_commits_exact_bytes(tmp_path):
    store = LocalStore(tmp_path / "store")
    piece = os.urandom(1024 * 1024 + 3)
    pieces = storage.FLUSH_EVERY // len(piece) + 2  # crosses the background flush threshold
    with store.writer("p/big.c4gh") as sink:
        for _ in range(pieces):
            sink.write(piece)
    assert (tmp_path / "store" / "p" / "big.c4gh").read_bytes() == piece * pieces
    assert os.listdir(tmp_path / "store" / "p") == ["big.c4gh"]


def test_interrupted_after_a_background_flush_leaves_nothing(tmp_path):
    store = LocalStore(tmp_path / "store")
    piece = os.urandom(4 * 1024 * 1024)
    with pytest.raises(KeyboardInterrupt), store.writer("p/big.c4gh") as sink:
        for _ in range(storage.FLUSH_EVERY // len(piece) + 1):
            sink.write(piece)
        raise KeyboardInterrupt
    assert os.listdir(tmp_path / "store" / "p") == []


def test_failed_commit_removes_the_temporary_file(tmp_path):
    store = LocalStore(tmp_path / "store")
    blocker = tmp_path / "store" / "p" / "x.c4gh"
    (blocker / "inside").mkdir(parents=True)  # a non-empty directory: the final rename fails
    with pytest.raises(OSError), store.writer("p/x.c4gh") as sink:
        sink.write(b"data")
    assert os.listdir(tmp_path / "store" / "p") == ["x.c4gh"]
    assert blocker.is_dir()


class _SlowPartsClient:
    """A stand-in S3 client that records each part and how many were being sent at once."""

    def __init__(self):
        self.parts, self.completed, self.busy, self.most_busy = {}, None, 0, 0
        self.lock = threading.Lock()

    def create_multipart_upload(self, **_):
        return {"UploadId": "u1"}

    def upload_part(self, PartNumber, Body, **_):  # noqa: N803 (boto's argument names)
        with self.lock:
            self.busy += 1
            self.most_busy = max(self.most_busy, self.busy)
        time.sleep(0.05)
        with self.lock:
            self.busy -= 1
            self.parts[PartNumber] = bytes(Body)
        return {"ETag": f'"{PartNumber}"'}

    def complete_multipart_upload(self, MultipartUpload, **_):  # noqa: N803
        self.completed = MultipartUpload["Parts"]


def test_s3_writer_sends_parts_concurrently_in_order_and_completes_once():
    client = _SlowPartsClient()
    store = SimpleNamespace(client=client, bucket="b", prefix="", endpoint=None)
    data = os.urandom(7 * 1024 + 5)
    writer = storage._S3Writer(store, "p/x.c4gh", part_size=1024)
    for start in range(0, len(data), 700):
        writer.write(data[start:start + 700])
    writer.commit()
    assert client.most_busy == storage.MAX_PARTS_IN_FLIGHT
    assert b"".join(client.parts[n] for n in sorted(client.parts)) == data
    assert [p["PartNumber"] for p in client.completed] == list(range(1, 9))


def test_stores_share_one_s3_client_per_endpoint_and_credentials(monkeypatch):
    monkeypatch.setattr(storage, "_HELD_CREDENTIALS", {})
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "first-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "first secret")
    first = storage.S3Store("b1", endpoint="http://127.0.0.1:1").client
    assert storage.S3Store("b2", endpoint="http://127.0.0.1:1").client is first
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "second-id")
    second = storage.S3Store("b1", endpoint="http://127.0.0.1:1").client
    assert second is not first
    assert second._request_signer._credentials.access_key == "second-id"
    assert storage.S3Store("b1", endpoint="http://127.0.0.1:2").client is not second
