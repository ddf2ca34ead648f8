"""Fixtures for the Crypt4GH ingress tests: keys, a registry with a project, a local store."""

from datetime import date
from pathlib import Path

import pytest

from lnds_spe import crypto
from lnds_spe.ingress import Recipients
from lnds_spe.projects import Registry, open_registry
from lnds_spe.storage import LocalStore

PASSPHRASE = "correct horse battery"


@pytest.fixture(scope="session")
def spe_keys(tmp_path_factory) -> tuple[Path, Path, bytes, bytes]:
    """The SPE's key files and raw keys: (private path, public path, secret, public)."""
    folder = tmp_path_factory.mktemp("keys") / "keys"
    secret_path, public_path = crypto.generate_keypair(folder, PASSPHRASE)
    secret = crypto.load_private_key(secret_path, lambda: PASSPHRASE)
    return secret_path, public_path, secret, crypto.load_public_key(public_path)


@pytest.fixture
def secret_key(spe_keys) -> bytes:
    return spe_keys[2]


@pytest.fixture
def recipients(spe_keys) -> Recipients:
    return Recipients(spe_keys[3])


@pytest.fixture
def registry(tmp_path) -> Registry:
    """A fresh SQLite registry with an active project `p1`."""
    reg = open_registry(f"sqlite:///{tmp_path / 'spe.sqlite'}")
    reg.create_project("p1", "Project one", date(2020, 1, 1), date(2099, 1, 1), actor="admin")
    return reg


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def make_tree(root: Path, seed: int = 1) -> Path:
    """A small dataset directory: nested files, an empty file, an empty folder, a 1 MiB+ file."""
    import random

    rng = random.Random(seed)
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (root / "a.csv").write_text("id,value\n" + "".join(f"{i},{rng.random()}\n" for i in range(500)))
    (root / "sub" / "b.bin").write_bytes(rng.randbytes(crypto.CHUNK_SIZE + 12_345))
    (root / "sub" / "deeper" / "c.txt").write_text("hello\n")
    (root / "zero.txt").write_bytes(b"")
    return root


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under `root`, by relative path."""
    import hashlib

    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def forge_dataset(registry: Registry, store: LocalStore, recipients: Recipients, name: str,
                  plain: Path, *, project: str = "p1", kind: str = "file",
                  files: list[dict] | None = None, **fields) -> dict:
    """What a dishonest uploader can do: encrypt any bytes as `plain` and register a manifest of
    their choosing (its MAC made with the real session key, so it verifies); returns it."""
    from lnds_spe import ingress

    key = ingress.new_object_key(project, name)
    encrypted = ingress.encrypt_to_store(plain, store, key, recipients)
    manifest = {**encrypted.manifest, "kind": kind, "project": project, "dataset": name,
                "uploader": "forger", **fields}
    if files is not None:
        manifest["files"] = files
    manifest["mac"] = crypto.manifest_mac(manifest, encrypted.session_key)
    registry.add_dataset(project, name, store.location(key), actor="forger", manifest=manifest,
                         plaintext_size=manifest["plaintext_size"])
    return manifest
