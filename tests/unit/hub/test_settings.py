"""One configuration surface: SPE settings are traits read when a spawner is made, from one place."""

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from lnds_spe import config
from lnds_spe.hub.spawner import SPEDockerSpawner

ROOT = Path(__file__).resolve().parents[3]


def make_spawner(**traits) -> SPEDockerSpawner:
    return SPEDockerSpawner(user=SimpleNamespace(name="ann"),
                            orm_spawner=SimpleNamespace(name="p", server=None), **traits)


def test_settings_are_read_when_a_spawner_is_made_not_when_its_class_is_defined(monkeypatch,
                                                                                tmp_path):
    monkeypatch.setenv("SPE_WORKSPACE_IMAGE", "localhost/other-image:1")
    monkeypatch.setenv("SPE_HOST_FIREWALL", "no")
    monkeypatch.setenv("SPE_CONTAINER_PREFIX", "spe-x")
    monkeypatch.setenv("SPE_DATABASE_URL", f"sqlite:///{tmp_path / 'r.sqlite'}")
    spawner = make_spawner()
    assert spawner.default_workspace_image == "localhost/other-image:1"
    assert spawner.host_firewall is False
    assert spawner.prefix == "spe-x"
    assert spawner.registry_url == f"sqlite:///{tmp_path / 'r.sqlite'}"


def test_built_in_defaults_come_from_the_one_defaults_file(monkeypatch):
    for name in ("SPE_WORKSPACE_IMAGE", "SPE_HOST_FIREWALL", "SPE_CONTAINER_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(config, "settings_file", lambda: Path("/nonexistent/lnds-spe.env"))
    spawner = make_spawner()
    assert spawner.default_workspace_image == config.DEFAULT_IMAGE == config.BUILT_IN[
        "SPE_WORKSPACE_IMAGE"]
    assert spawner.host_firewall is True and spawner.prefix == "spe"
    assert config.setting("SPE_ENGINE_SOCKET").endswith(".sock")


def test_the_image_name_and_engine_socket_are_written_once():
    """Python reads lnds_spe/defaults.env, the scripts read it through scripts/defaults.sh."""
    for value in (config.BUILT_IN["SPE_WORKSPACE_IMAGE"], config.BUILT_IN["SPE_ENGINE_SOCKET"]):
        found = subprocess.run(["git", "grep", "-l", "-F", value, "--", ".", ":!*.md"], cwd=ROOT,
                               capture_output=True, text=True).stdout.split()
        assert found == ["lnds_spe/defaults.env"], f"{value} is written in {found}"


def test_jupyterhub_help_documents_the_spe_settings():
    """The spawners are JupyterHub entry points, so --help-all lists their settings."""
    out = subprocess.run([sys.executable, "-m", "jupyterhub", "--help-all"], capture_output=True,
                         text=True, timeout=120).stdout
    for name in ("SPEPolicyMixin.registry_url", "SPEPolicyMixin.default_workspace_image",
                 "SPEPolicyMixin.spe_state_dir", "SPEPolicyMixin.prepare_datasets",
                 "SPEDockerSpawner.host_firewall", "SPEKubeSpawner.state_claim"):
        assert f"--{name}=" in out, (f"jupyterhub --help-all does not list {name}: reinstall the "
                                     "package (./run setup) so its jupyterhub.spawners entry "
                                     "points are registered")
