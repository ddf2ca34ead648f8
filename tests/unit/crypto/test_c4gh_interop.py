"""Interoperability with the reference `crypt4gh` command, in both directions."""

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import pytest

from lnds_spe import crypto, ingress

from .conftest import PASSPHRASE, make_tree


def reference_cli() -> str:
    """The `crypt4gh` command installed with the crypt4gh package, next to this Python."""
    beside = Path(sys.executable).parent / "crypt4gh"
    found = str(beside) if beside.exists() else shutil.which("crypt4gh")
    if not found:
        pytest.fail("the reference `crypt4gh` command is missing: pip install crypt4gh")
    return found


def run_cli(args: list[str], stdin: Path, stdout: Path) -> None:
    env = {**os.environ, "C4GH_PASSPHRASE": PASSPHRASE}
    with stdin.open("rb") as source, stdout.open("wb") as sink:
        done = subprocess.run([reference_cli(), *args], stdin=source, stdout=sink,
                              stderr=subprocess.PIPE, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()


def test_spe_upload_decrypts_with_reference_cli(tmp_path, registry, store, recipients, spe_keys):
    source = tmp_path / "data.bin"
    source.write_bytes(os.urandom(3 * crypto.CHUNK_SIZE + 4321))
    info = ingress.upload_dataset(registry, source, "p1", "f", store=store, recipients=recipients,
                                  actor="holder")
    out = tmp_path / "by-cli.bin"
    run_cli(["decrypt", "--sk", str(spe_keys[0])], Path(urlparse(info.location).path), out)
    assert out.read_bytes() == source.read_bytes()


def test_spe_directory_upload_is_a_tar_for_reference_cli(tmp_path, registry, store, recipients,
                                                         spe_keys):
    source = make_tree(tmp_path / "src")
    info = ingress.upload_dataset(registry, source, "p1", "d", store=store, recipients=recipients,
                                  actor="holder")
    out = tmp_path / "by-cli.tar"
    run_cli(["decrypt", "--sk", str(spe_keys[0])], Path(urlparse(info.location).path), out)
    with tarfile.open(out) as tar:
        names = sorted(m.name for m in tar.getmembers() if m.isfile())
        assert tar.extractfile("sub/b.bin").read() == (source / "sub" / "b.bin").read_bytes()
    assert names == sorted(f["path"] for f in info.manifest["files"])


def test_reference_cli_file_decrypts_with_spe(tmp_path, spe_keys):
    plain = tmp_path / "plain.bin"
    plain.write_bytes(os.urandom(2 * crypto.CHUNK_SIZE + 99))
    encrypted = tmp_path / "plain.bin.c4gh"
    run_cli(["encrypt", "--recipient_pk", str(spe_keys[1])], plain, encrypted)
    with encrypted.open("rb") as source, ThreadPoolExecutor(1) as pool:
        opened = crypto.read_header(source, spe_keys[2], "cli file")
        reader = crypto.DecryptingReader(source, opened.session_key, pool, "cli file")
        out = io.BytesIO()
        while chunk := reader.next_chunk():
            out.write(chunk)
        digest = reader.plain.hexdigest()
    assert out.getvalue() == plain.read_bytes()
    assert digest == hashlib.sha256(plain.read_bytes()).hexdigest()


def test_reference_cli_reencrypt_of_spe_object_still_decrypts(tmp_path, registry, store,
                                                               recipients, spe_keys):
    source = tmp_path / "data.bin"
    source.write_bytes(os.urandom(100_000))
    info = ingress.upload_dataset(registry, source, "p1", "f", store=store, recipients=recipients,
                                  actor="holder")
    obj = Path(urlparse(info.location).path)
    rekeyed = tmp_path / "rekeyed.c4gh"
    run_cli(["reencrypt", "--sk", str(spe_keys[0]), "--recipient_pk", str(spe_keys[1])], obj,
            rekeyed)
    shutil.copyfile(rekeyed, obj)
    path = ingress.fetch_dataset(registry, "p1", "f", tmp_path / "out", spe_keys[2], actor="hub")
    assert (path / "data.bin").read_bytes() == source.read_bytes()
