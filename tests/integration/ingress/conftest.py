"""A real S3-compatible server (nanio, disk-backed) on loopback for the ingress tests."""

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ACCESS_KEY = "spe-test-access"
SECRET_KEY = "spe-test-secret-key-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def nanio_command() -> str:
    beside = Path(sys.executable).parent / "nanio"
    found = str(beside) if beside.exists() else shutil.which("nanio")
    if not found:
        pytest.fail("the S3 test server `nanio` is missing: pip install 'nanio==0.1.7' "
                    "(the dev extra)")
    return found


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"nanio exited with status {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"nanio did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


@pytest.fixture(scope="session")
def nanio_endpoint(tmp_path_factory) -> Iterator[str]:
    """http://127.0.0.1:<port> of a nanio server storing its objects in a temporary directory."""
    data_dir = tmp_path_factory.mktemp("nanio-data")
    port = free_port()
    env = {**os.environ, "NANIO_ACCESS_KEY": ACCESS_KEY, "NANIO_SECRET_KEY": SECRET_KEY}
    process = subprocess.Popen(
        [nanio_command(), "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir",
         str(data_dir), "--log-level", "warning", "--no-access-log"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def s3_env(nanio_endpoint, monkeypatch) -> str:
    """Point the SPE's S3 settings at nanio; returns a fresh, empty bucket's name."""
    monkeypatch.setenv("SPE_S3_ENDPOINT", nanio_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    from lnds_spe.storage import S3Store

    bucket = f"spe-{uuid.uuid4().hex[:12]}"
    S3Store(bucket).client.create_bucket(Bucket=bucket)
    return bucket


PASSPHRASE = "integration passphrase"


@pytest.fixture(scope="session")
def spe_keys(tmp_path_factory) -> tuple[Path, Path, bytes, bytes]:
    """The SPE's key files and raw keys: (private path, public path, secret, public)."""
    from lnds_spe import crypto

    folder = tmp_path_factory.mktemp("keys") / "keys"
    secret_path, public_path = crypto.generate_keypair(folder, PASSPHRASE)
    secret = crypto.load_private_key(secret_path, lambda: PASSPHRASE)
    return secret_path, public_path, secret, crypto.load_public_key(public_path)


def make_tree(root: Path) -> Path:
    """A dataset directory: nested files of several sizes (one spans several S3 parts)."""
    (root / "nested" / "deeper").mkdir(parents=True)
    (root / "records.csv").write_text("id,value\n" + "".join(f"{i},{i * 7 % 13}\n"
                                                              for i in range(20_000)))
    (root / "nested" / "large.bin").write_bytes(os.urandom(20 * 1024 * 1024 + 17))
    (root / "nested" / "deeper" / "note.txt").write_text("hello from the data holder\n")
    (root / "empty.txt").write_bytes(b"")
    return root


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under `root`, by relative path."""
    import hashlib

    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}
