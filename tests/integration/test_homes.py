"""LC-close-homes and LC-quota (homes): real volumes through the real engine (Podman), the
registry on SQLite and the real PostgreSQL.

A home is a labelled volume backed by an ext4 image of the project's home quota: a write past it
fails. At close it is archived to a tar readable by the hub only, or deleted, and the volume and
its image are gone, one audit event each; one in use by a workspace waits for the lifecycle
enforcer's next round, which settles it with the policy chosen at close.
"""

import json
import os
import stat
import subprocess
import sys
import tarfile
import uuid
from datetime import date

import pytest

from lnds_spe import lifecycle
from lnds_spe.config import setting
from lnds_spe.errors import SPEError
from lnds_spe.hub import homes, lockdown
from lnds_spe.projects import open_registry

IMAGE = setting("SPE_WORKSPACE_IMAGE")


@pytest.fixture
def engine():
    """The engine's API, or fail naming what to run."""
    client = homes.engine_client()
    try:
        client.version()
    except Exception as error:  # noqa: BLE001 - any way of not answering
        pytest.fail(f"the container engine does not answer ({error}): run "
                    "scripts/engine-setup.sh", pytrace=False)
    try:
        client.inspect_image(IMAGE)
    except Exception:  # noqa: BLE001
        pytest.fail(f"workspace image {IMAGE} is missing: run scripts/build-images.sh",
                    pytrace=False)
    return client


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("SPE_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture
def prefix(engine):
    """A container prefix of this test; its volumes and containers are removed after it."""
    name = f"spehome{uuid.uuid4().hex[:6]}"
    yield name
    for container in engine.containers(all=True, filters={"name": name}):
        engine.remove_container(container["Id"], force=True)
    for volume in engine.volumes().get("Volumes") or []:
        if volume["Name"].startswith(name):
            engine.remove_volume(volume["Name"], force=True)


@pytest.fixture
def registry(database_url, state):
    reg = open_registry(database_url)
    reg.create_project("p1", "One", date(2020, 1, 1), date(2099, 1, 1), actor="admin",
                       home_quota="16M")
    reg.add_member("p1", "ann", "researcher", actor="admin")
    reg.add_member("p1", "bob", "researcher", actor="admin")
    return reg


def home_of(engine, state, registry, prefix: str, user: str) -> str:
    """Make a user's home in p1 as the spawner does; its volume name."""
    volume = lockdown.home_volume_name(prefix, user, "p1")
    homes.ensure_home_volume(engine, state, volume, registry.get_project("p1"), user)
    return volume


def run_in_home(engine, prefix: str, volume: str, script: str, *, detach: bool = False):
    """Run a shell script as the workspace user with the home mounted, as a workspace would."""
    container = engine.create_container(
        IMAGE, command=["sh", "-c", script], user="1000:1000", name=f"{prefix}-{uuid.uuid4().hex[:6]}",
        labels={lockdown.LABEL_PROJECT: "p1"},
        host_config=engine.create_host_config(
            binds={volume: {"bind": str(lockdown.WORKSPACE_HOME), "mode": "rw"}},
            network_mode="none", read_only=True, cap_drop=["ALL"]))
    engine.start(container)
    if detach:
        return container
    status = engine.wait(container, timeout=120)["StatusCode"]
    logs = engine.logs(container).decode()
    engine.remove_container(container, force=True)
    return status, logs


def home_contents(engine, prefix: str, volume: str) -> dict:
    """Files and bytes in a home, counted inside a container (the engine copies the image's
    skeleton, .bashrc and the like, into a new home on its first mount)."""
    status, logs = run_in_home(engine, prefix, volume, "find ~ -type f -printf '%s\\n'")
    sizes = [int(line) for line in logs.split()]
    return {"files": len(sizes), "bytes": sum(sizes)}


def home_events(registry, outcome: str | None = None) -> list[dict]:
    return [{**json.loads(e.details), "outcome": e.outcome, "user": e.target}
            for e in registry.audit.query(project="p1") if e.action == "project.home"
            and (outcome is None or e.outcome == outcome)]


def volume_names(engine) -> set[str]:
    return {v["Name"] for v in engine.volumes().get("Volumes") or []}


def test_a_home_is_labelled_and_a_write_past_its_quota_fails(engine, state, registry, prefix):
    volume = home_of(engine, state, registry, prefix, "ann")
    info = engine.inspect_volume(volume)
    assert info["Labels"] == {lockdown.LABEL_PROJECT: "p1", lockdown.LABEL_USER: "ann",
                              homes.LABEL_STATE: str(state)}
    image = homes.image_path(state, "p1", volume)
    assert image.stat().st_size == 16 * 1024**2
    assert stat.S_IMODE(image.stat().st_mode) == 0o600
    assert stat.S_IMODE(image.parent.stat().st_mode) == 0o700
    status, logs = run_in_home(engine, prefix, volume,
                               "echo small > ~/small.txt && "
                               "dd if=/dev/zero of=$HOME/big bs=1M count=20 2>&1; echo rc=$?")
    assert status == 0, logs
    assert "No space left on device" in logs and "rc=1" in logs, logs
    # the small file the user wrote first is intact; the home holds at most its quota
    status, logs = run_in_home(engine, prefix, volume, "cat ~/small.txt; du -sk ~ | cut -f1")
    assert logs.splitlines()[0] == "small"
    assert int(logs.splitlines()[1]) <= 16 * 1024


def test_a_raised_home_quota_grows_the_home_at_its_next_start(engine, state, registry, prefix):
    volume = home_of(engine, state, registry, prefix, "ann")
    run_in_home(engine, prefix, volume, "echo kept > ~/kept.txt")
    registry.set_quotas("p1", actor="admin", home_quota="64M")
    homes.ensure_home_volume(engine, state, volume, registry.get_project("p1"), "ann")
    status, logs = run_in_home(engine, prefix, volume,
                               "cat ~/kept.txt; dd if=/dev/zero of=$HOME/big bs=1M count=40 "
                               "2>/dev/null; echo rc=$?")
    assert logs.split() == ["kept", "rc=0"], logs


def test_close_archives_each_home_out_of_reach_and_removes_it(engine, state, registry, prefix):
    ann = home_of(engine, state, registry, prefix, "ann")
    bob = home_of(engine, state, registry, prefix, "bob")
    run_in_home(engine, prefix, ann, "mkdir -p ~/work && printf 'ann wrote this' > ~/work/a.txt")
    held = home_contents(engine, prefix, ann)
    closed = lifecycle.close_project(registry, "p1", actor="admin", state_dir=state,
                                     outputs_policy="archive")
    assert closed.homes_settled == sorted([ann, bob]) and closed.homes_pending == []
    assert not {ann, bob} & volume_names(engine)
    assert not (state / "homes" / "p1").exists()  # the images went with their volumes
    events = {e["volume"]: e for e in home_events(registry)}
    archive = state / "archive" / "p1" / os.path.basename(events[ann]["archive"])
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert stat.S_IMODE(archive.parent.stat().st_mode) == 0o700
    with tarfile.open(archive) as tar:
        assert tar.extractfile("work/a.txt").read() == b"ann wrote this"
    assert events[ann] == {"policy": "archive", "volume": ann, "user": "ann", **held,
                           "archive": str(archive), "outcome": "ok"}
    assert events[bob]["files"] == 0 and events[bob]["outcome"] == "ok"
    assert registry.audit.check().problems == []


def test_close_deletes_the_homes_when_so_configured(engine, state, registry, prefix,
                                                    database_url):
    ann = home_of(engine, state, registry, prefix, "ann")
    run_in_home(engine, prefix, ann, "printf 'gone' > ~/x.txt")
    held = home_contents(engine, prefix, ann)
    env = {**os.environ, "SPE_DATABASE_URL": database_url, "SPE_ACTOR": "admin1",
           "SPE_STATE_DIR": str(state), "SPE_CLOSE_OUTPUTS": "delete"}
    result = subprocess.run([sys.executable, "-m", "lnds_spe", "project", "close", "p1"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "1 home volume(s) done" in result.stdout
    assert ann not in volume_names(engine)
    assert not (state / "archive").exists() and not (state / "homes" / "p1").exists()
    assert home_events(registry) == [{"policy": "delete", "volume": ann, "user": "ann", **held,
                                      "outcome": "ok"}]


def test_a_home_in_use_waits_for_the_enforcer_which_keeps_the_close_policy(
        engine, state, registry, prefix, monkeypatch):
    ann = home_of(engine, state, registry, prefix, "ann")
    running = run_in_home(engine, prefix, ann, "echo busy > ~/b.txt; sleep 600", detach=True)
    closed = lifecycle.close_project(registry, "p1", actor="admin", state_dir=state,
                                     outputs_policy="delete")
    assert closed.homes_pending == [ann] and ann in volume_names(engine)
    assert home_events(registry, "pending")[0]["policy"] == "delete"
    # A round while the workspace still runs changes nothing; the default policy (archive)
    # must not override the one chosen at close.
    monkeypatch.setenv("SPE_CLOSE_OUTPUTS", "archive")
    assert lifecycle.settle_closed_homes(registry, state, actor="system:lifecycle") == []
    assert ann in volume_names(engine)
    engine.remove_container(running, force=True)  # what stopping the workspace does
    assert lifecycle.settle_closed_homes(registry, state, actor="system:lifecycle") == []
    assert ann not in volume_names(engine) and not (state / "archive").exists()
    done = home_events(registry, "ok")
    assert [(e["policy"], e["volume"]) for e in done] == [("delete", ann)]
    assert registry.audit.query(project="p1")[-1].actor == "system:lifecycle"


def test_a_failed_archive_leaves_the_home_whole_and_is_audited(engine, state, registry, prefix):
    ann = home_of(engine, state, registry, prefix, "ann")
    run_in_home(engine, prefix, ann, "printf 'keep me' > ~/k.txt")
    (state / "archive").mkdir(parents=True)
    (state / "archive" / "p1").write_text("not a folder")  # the archive cannot be written
    with pytest.raises(Exception, match=rf"home volumes could not be archived: {ann} "):
        lifecycle.close_project(registry, "p1", actor="admin", state_dir=state)
    assert ann in volume_names(engine)
    assert homes.image_path(state, "p1", ann).exists()
    failed = home_events(registry, "failed")
    assert failed[0]["volume"] == ann and "FileExistsError" in failed[0]["reason"]
    # once the cause is gone, the enforcer's next round finishes the close
    (state / "archive" / "p1").unlink()
    assert lifecycle.settle_closed_homes(registry, state, actor="system:lifecycle") == []
    assert ann not in volume_names(engine)
    (archive,) = (state / "archive" / "p1").glob("home-*.tar")
    with tarfile.open(archive) as tar:
        assert tar.extractfile("k.txt").read() == b"keep me"


def test_close_touches_only_the_closed_projects_homes(engine, state, registry, prefix):
    registry.create_project("p2", "Two", date(2020, 1, 1), date(2099, 1, 1), actor="admin",
                            home_quota="16M")
    ann = home_of(engine, state, registry, prefix, "ann")
    other = lockdown.home_volume_name(prefix, "ann", "p2")
    homes.ensure_home_volume(engine, state, other, registry.get_project("p2"), "ann")
    closed = lifecycle.close_project(registry, "p1", actor="admin", state_dir=state)
    assert closed.homes_settled == [ann] and closed.homes_pending == []
    assert other in volume_names(engine) and homes.image_path(state, "p2", other).exists()
    assert lifecycle.settle_closed_homes(registry, state, actor="system:lifecycle") == []
    assert other in volume_names(engine)


def test_an_engine_that_does_not_answer_is_named_audited_and_left_to_the_enforcer(
        registry, state, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-engine.sock'}")
    with pytest.raises(SPEError, match="project p1 is closed, but the container engine did not "
                                       "answer .*: the lifecycle enforcer settles its home "
                                       r"volumes \(delete\) once it does"):
        lifecycle.close_project(registry, "p1", actor="admin", state_dir=state,
                                outputs_policy="delete")
    assert registry.get_project("p1").status == "closed"
    (failed,) = home_events(registry, "failed")
    assert failed["policy"] == "delete"
    assert lifecycle.recorded_close_policy(registry, "p1") == "delete"
