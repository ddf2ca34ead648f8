"""`spe keys` and `spe data` end to end on a local store: results, one-line errors, exit 2."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lnds_spe.cli import app

from .conftest import make_tree, tree_hashes

PASS = "cli passphrase 123"
HOLDER_PASS = "holder passphrase 456"


@pytest.fixture
def spe(tmp_path, monkeypatch):
    """Run `spe ...` with a fresh state dir; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("SPE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("SPE_DATABASE_URL", raising=False)
    monkeypatch.delenv("SPE_STORE_URL", raising=False)
    monkeypatch.setenv("SPE_KEY_PASSPHRASE", PASS)
    monkeypatch.setenv("SPE_HOLDER_PASSPHRASE", HOLDER_PASS)
    monkeypatch.setenv("SPE_ACTOR", "tester")
    runner = CliRunner()

    def run(*args: str, **env: str):
        result = runner.invoke(app, list(args), env=env or None)
        return result.exit_code, result.stdout, result.stderr

    code, _, err = run("project", "create", "p1", "--title", "P", "--start", "2020-01-01",
                       "--end", "2099-12-31")
    assert code == 0, err
    return run


def assert_one_line_error(result, pattern: str) -> None:
    code, _, err = result
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and pattern in lines[0], err


def holder_upload(spe, tmp_path, source, dataset, *extra):
    """The data holder's side: a signing key once, then `spe data upload`; the manifest location."""
    holder = tmp_path / "holder"
    if not (holder / "holder.sec").exists():
        code, out, err = spe("keys", "holder-init", str(holder))
        assert code == 0 and "holder.sec" in out, err
    code, out, err = spe("data", "upload", str(source), "--project", "p1", "--dataset", dataset,
                         "--signing-key", str(holder / "holder.sec"), *extra)
    assert code == 0 and f"uploaded {dataset}" in out, err
    return out.split()[-1]


def test_keys_upload_register_fetch_rekey(spe, tmp_path):
    code, out, err = spe("keys", "init")
    assert code == 0 and "0600" in out, err
    assert_one_line_error(spe("keys", "init"), "already exists")
    code, pem, _ = spe("keys", "export")
    assert pem.startswith("-----BEGIN CRYPT4GH PUBLIC KEY-----")
    (tmp_path / "spe.pub").write_text(pem)

    source = make_tree(tmp_path / "src")
    manifest = holder_upload(spe, tmp_path, source, "survey", "--spe-key",
                             str(tmp_path / "spe.pub"), "--store", str(tmp_path / "bucket"))
    objects = sorted(p.name for p in (tmp_path / "bucket" / "p1").iterdir())
    assert len(objects) == 2 and objects[0].startswith("survey-") and objects[0].endswith(".c4gh")
    assert manifest.endswith(objects[1]) and objects[1] == objects[0] + ".manifest.json"
    code, out, err = spe("data", "register", manifest, "--project", "p1", "--dataset", "survey")
    assert code == 0 and "uploaded by ed25519:" in out, err

    code, out, err = spe("data", "fetch", "--project", "p1", "--dataset", "survey",
                         "--out", str(tmp_path / "hub"))
    assert code == 0, err
    assert tree_hashes(tmp_path / "hub" / "survey") == tree_hashes(source)

    code, out, err = spe("data", "rekey", "--project", "p1", "--dataset", "survey",
                         "--recipient-pk", str(tmp_path / "spe.pub"))
    assert code == 0 and "only these keys can decrypt it now" in out, err


def test_cli_bad_inputs_exit_2_with_one_line(spe, tmp_path):
    assert spe("keys", "init")[0] == 0
    source = tmp_path / "f.csv"
    source.write_text("a,b\n1,2\n")
    manifest = holder_upload(spe, tmp_path, source, "f")
    assert spe("data", "register", manifest, "--project", "p1", "--dataset", "f")[0] == 0
    hub = tmp_path / "hub"
    assert_one_line_error(spe("data", "fetch", "--project", "p1", "--dataset", "f", "--out",
                              str(hub), SPE_KEY_PASSPHRASE="wrong one!"), "wrong passphrase")
    assert_one_line_error(spe("data", "fetch", "--project", "zz", "--dataset", "f", "--out",
                              str(hub)), "unknown project 'zz'")
    assert_one_line_error(spe("data", "fetch", "--project", "p1", "--dataset", "zz", "--out",
                              str(hub)), "no dataset 'zz'")
    signing = ["--signing-key", str(tmp_path / "holder" / "holder.sec")]
    assert_one_line_error(spe("data", "upload", str(source), "--project", "Z!", "--dataset", "f",
                              *signing), "invalid project slug 'Z!'")
    assert_one_line_error(spe("data", "upload", str(tmp_path / "nothing"), "--project", "p1",
                              "--dataset", "g", *signing), "does not exist")
    assert_one_line_error(spe("data", "upload", str(source), "--project", "p1", "--dataset", "g",
                              "--spe-key", str(source), *signing), "not a Crypt4GH public key")
    assert_one_line_error(spe("data", "upload", str(source), "--project", "p1", "--dataset", "g",
                              *signing, SPE_HOLDER_PASSPHRASE="not this one"),
                          "check the passphrase")
    assert_one_line_error(spe("data", "register", manifest, "--project", "p1", "--dataset", "f"),
                          "already has a dataset 'f'")
    store_object = Path(manifest.removeprefix("file://").removesuffix(".manifest.json"))
    store_object.write_bytes(b"definitely not crypt4gh")
    assert_one_line_error(spe("data", "fetch", "--project", "p1", "--dataset", "f", "--out",
                              str(hub)), "not a Crypt4GH file")
    assert not hub.exists() or not any(hub.iterdir())
