"""The spawner's policy glue against a real (SQLite) registry: form, refusals, audit, data hook."""

import asyncio
import threading
import time
from datetime import date, timedelta
from types import SimpleNamespace

import pytest

from lnds_spe.hub.readiness import WorkspaceNotReady
from lnds_spe.hub.spawner import SpawnRefused, SPEDockerSpawner
from lnds_spe.projects import DEFAULT_IMAGE, open_registry
from tests.support.hubs import free_port


@pytest.fixture
def registry(tmp_path):
    url = f"sqlite:///{tmp_path / 'spe.sqlite'}"
    registry = open_registry(url)
    today = date.today()
    registry.create_project("live", "Live", today - timedelta(days=1), today + timedelta(days=9),
                            actor="t", allowed_images=(DEFAULT_IMAGE,))
    registry.create_project("over", "Over", today - timedelta(days=9), today - timedelta(days=1),
                            actor="t", allowed_images=(DEFAULT_IMAGE,))
    for slug in ("live", "over"):
        registry.add_member(slug, "ann", "researcher", actor="t")
    registry.add_dataset("live", "ds", "file://x", actor="t")
    folder = tmp_path / "datasets" / "live" / "ds"
    folder.mkdir(parents=True)
    (folder / "f.csv").write_text("a\n1\n")
    return registry


def spawner(registry, tmp_path, name: str, options: dict | None = None) -> SPEDockerSpawner:
    return SPEDockerSpawner(registry_url=registry.url, spe_state_dir=str(tmp_path),
                            user=SimpleNamespace(name="ann"),
                            orm_spawner=SimpleNamespace(name=name, server=None),
                            user_options=options or {})


def test_form_lists_only_active_projects(registry, tmp_path):
    form = spawner(registry, tmp_path, "live").render_options_form()
    assert 'value="live" selected' in form and 'value="over"' not in form
    assert f'value="{DEFAULT_IMAGE}"' in form


def test_refusals_are_audited_with_reason(registry, tmp_path):
    cases = [("over", {}, "ended on"), ("live", {"image": "other:1"}, "not allowed"),
             ("", {}, "choose a project"), ("nope", {}, "no project nope"),
             ("live", {"project": "over"}, "belongs to project live")]
    for name, options, reason in cases:
        with pytest.raises(SpawnRefused) as refusal:
            spawner(registry, tmp_path, name, options).authorize_spawn()
        assert reason in refusal.value.jupyterhub_message
    denied = [e for e in registry.audit.events() if e.action == "workspace.spawn_denied"]
    assert len(denied) == len(cases)


def test_prepare_data_default_and_hook(registry, tmp_path):
    live = spawner(registry, tmp_path, "live")
    project = live.authorize_spawn()
    prepared = live.prepare_data(project)
    assert (live.workspace_data_dir() / "ds" / "f.csv").read_text() == "a\n1\n"
    assert prepared == {"ds": str(live.workspace_data_dir() / "ds")}
    calls = []

    def hook(project, datasets, destination):
        calls.append((project.slug, [d.name for d in datasets]))
        (destination / "ds").mkdir()
        return {"ds": destination / "ds"}

    live.prepare_datasets = hook
    assert live.prepare_data(project) == {"ds": str(live.workspace_data_dir() / "ds")}
    assert calls == [("live", ["ds"])]


def test_a_failure_after_decryption_leaves_no_plaintext(registry, tmp_path, monkeypatch):
    """The audit write after decryption fails, or the engine fails: the prepared data is gone."""
    live = spawner(registry, tmp_path, "live")
    real_audit = live.audit

    def broken_audit(action, **kwargs):
        if action == "dataset.mount":
            raise RuntimeError("audit log unavailable")
        return real_audit(action, **kwargs)

    monkeypatch.setattr(live, "audit", broken_audit)
    with pytest.raises(RuntimeError, match="audit log unavailable"):
        asyncio.run(live.start())
    assert not live.workspace_data_dir().exists()

    engine_down = spawner(registry, tmp_path, "live")
    decrypting, decrypted = threading.Event(), threading.Event()

    def slow_decryption(project, datasets, destination):
        decrypting.set()
        time.sleep(0.3)  # still writing when the engine fails
        (destination / "ds").mkdir(parents=True)  # as fetch_dataset does, per dataset
        (destination / "ds" / "f.csv").write_text("secret\n")
        decrypted.set()
        return {"ds": destination / "ds"}

    async def engine_fails(project):
        for _ in range(100):  # the engine side runs while the data is being decrypted
            if decrypting.is_set() and not decrypted.is_set():
                raise ConnectionError("engine unreachable")
            await asyncio.sleep(0.01)
        raise AssertionError("the data was not being prepared while the engine was")

    engine_down.prepare_datasets = slow_decryption
    monkeypatch.setattr(engine_down, "prepare_engine", engine_fails)
    with pytest.raises(ConnectionError):
        asyncio.run(engine_down.start())
    assert not engine_down.workspace_data_dir().exists()
    errors = [e for e in registry.audit.events() if e.action == "workspace.spawn"]
    assert [e.outcome for e in errors] == ["error", "error"]
    assert "engine unreachable" in errors[-1].details


def test_a_start_cancelled_while_decrypting_leaves_no_plaintext(registry, tmp_path, monkeypatch):
    """Cancelling a start does not stop the decryption thread: the deletion waits for it."""
    live = spawner(registry, tmp_path, "live")
    decrypting, release = threading.Event(), threading.Event()

    def blocked_decryption(project, datasets, destination):
        decrypting.set()
        assert release.wait(10)
        (destination / "ds").mkdir(parents=True)  # as fetch_dataset does, per dataset
        (destination / "ds" / "f.csv").write_text("secret\n")
        return {"ds": destination / "ds"}

    async def engine_ready(project):
        return None

    live.prepare_datasets = blocked_decryption
    monkeypatch.setattr(live, "prepare_engine", engine_ready)

    async def cancel_while_decrypting():
        start = asyncio.ensure_future(live.start())
        await asyncio.to_thread(decrypting.wait, 10)
        start.cancel()
        await asyncio.sleep(0.1)
        release.set()  # the thread writes its plaintext only now, after the cancellation
        with pytest.raises(asyncio.CancelledError):
            await start

    asyncio.run(cancel_while_decrypting())
    assert decrypting.is_set()
    assert not live.workspace_data_dir().exists()
    [spawn] = [e for e in registry.audit.events() if e.action == "workspace.spawn"]
    assert spawn.outcome == "error" and "CancelledError" in spawn.details


def test_staging_leftovers_of_a_crash_are_removed_at_hub_start(tmp_path):
    from lnds_spe.datasets import remove_staging_leftovers

    data = tmp_path / "workspaces" / "ann" / "live" / "data"
    half = data / ".ds.partial-0a1b2c"
    half.mkdir(parents=True)
    (half / "f.csv").write_text("secret\n")
    kept = data / "ds"
    kept.mkdir()
    assert remove_staging_leftovers(tmp_path) == [half]
    assert not half.exists() and kept.exists()


def test_prepared_data_folders_never_shared_between_users(registry, tmp_path):
    """D5: `j.smith` and `j_smith` fold to one safe name, never to one data folder."""
    folders = {SPEDockerSpawner(registry_url=registry.url, spe_state_dir=str(tmp_path),
                                user=SimpleNamespace(name=name),
                                orm_spawner=SimpleNamespace(name="live", server=None),
                                user_options={}).workspace_data_dir()
               for name in ("j.smith", "j_smith", "J@Smith")}
    assert len(folders) == 3


def test_a_failing_registry_is_not_read_as_no_project(registry, tmp_path, monkeypatch):
    """Only ProjectNotFound means "there is no project"; another registry error is not a refusal
    blaming the project, and the start still does not happen."""
    from lnds_spe.errors import SPEError

    live = spawner(registry, tmp_path, "live")

    def unavailable(slug):
        raise SPEError(f"registry unavailable while reading {slug}")

    monkeypatch.setattr(live.registry, "get_project", unavailable)
    with pytest.raises(SPEError, match="registry unavailable"):
        live.authorize_spawn()


def test_deleting_prepared_data_is_audited_per_dataset(registry, tmp_path):
    """The spawner deletes a workspace's data through the one audited deletion."""
    live = spawner(registry, tmp_path, "live")
    live.prepare_data(live.authorize_spawn())
    live.delete_prepared_data()
    assert not live.workspace_data_dir().exists()
    deleted = [(e.actor, e.project, e.target) for e in registry.audit.events()
               if e.action == "dataset.delete"]
    assert deleted == [("ann", "live", "ds")]


@pytest.mark.parametrize("status, http_timeout, reason", [
    (1, 60, "exited while starting (status 1)"),
    (None, 1, "did not listen on 127.0.0.1"),
])
def test_a_workspace_that_never_listens_fails_the_start_without_plaintext(
        registry, tmp_path, monkeypatch, status, http_timeout, reason):
    """The start waits for the workspace to listen (readiness); one that exits, or does not
    listen within http_timeout, fails the start: the prepared data is deleted and the
    failure audited with the reason."""
    from dockerspawner import DockerSpawner

    live = spawner(registry, tmp_path, "live")
    live.http_timeout = http_timeout
    port = free_port()  # nothing listens on it

    async def engine_ready(project):
        return None

    async def container_started(self):
        return "127.0.0.1", port

    async def poll():
        return status

    monkeypatch.setattr(live, "prepare_engine", engine_ready)
    monkeypatch.setattr(DockerSpawner, "start", container_started)
    monkeypatch.setattr(live, "poll", poll)
    with pytest.raises(WorkspaceNotReady):
        asyncio.run(live.start())
    assert not live.workspace_data_dir().exists()
    [spawn] = [e for e in registry.audit.events() if e.action == "workspace.spawn"]
    assert spawn.outcome == "error" and reason in spawn.details
