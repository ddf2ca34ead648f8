"""CLI2: every entry point of a set-up checkout sees one state dir, and `spe where` names it."""

import pytest
from typer.testing import CliRunner

from lnds_spe import config
from lnds_spe.cli import app


@pytest.fixture
def setup_settings(tmp_path, monkeypatch):
    """The settings file `./run setup` writes into the venv, naming a state dir; env unset."""
    state = tmp_path / "checkout" / ".state"
    settings = tmp_path / "venv" / config.SETTINGS_FILE_NAME
    settings.parent.mkdir()
    settings.write_text(f"# written by ./run setup\nSPE_STATE_DIR={state}\n")
    monkeypatch.setattr(config, "settings_file", lambda: settings)
    for name in ("SPE_STATE_DIR", "SPE_DATABASE_URL", "SPE_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    return state


def test_without_the_environment_the_setup_state_dir_is_used(setup_settings):
    assert config.state_dir() == setup_settings
    assert config.database_url() == f"sqlite:///{setup_settings / 'spe.sqlite'}"


def test_the_environment_still_wins(setup_settings, tmp_path, monkeypatch):
    monkeypatch.setenv("SPE_STATE_DIR", str(tmp_path / "elsewhere"))
    assert config.state_dir() == tmp_path / "elsewhere"


def test_spe_where_prints_the_state_dir_registry_and_keys(setup_settings):
    result = CliRunner().invoke(app, ["where"])
    assert result.exit_code == 0, result.output
    assert f"state dir: {setup_settings}" in result.stdout
    assert f"keys: {setup_settings / 'keys'}" in result.stdout
    assert "registry: sqlite:///" in result.stdout


def test_spe_where_hides_a_database_password(setup_settings, monkeypatch):
    monkeypatch.setenv("SPE_DATABASE_URL", "postgresql+psycopg://spe:s3cret@db:5432/spe")
    result = CliRunner().invoke(app, ["where"])
    assert "s3cret" not in result.stdout and "spe:***@db" in result.stdout

