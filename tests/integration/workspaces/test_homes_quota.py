"""LC-quota and LC-close-homes through the real hub: the spawner gives each workspace a
quota-limited home, outputs over their quota stop a workspace and refuse its next start, and a
project closed while a workspace runs has the workspace stopped and its home settled by the
lifecycle enforcer. Each test makes its own project in the hub's registry."""

import json
import tarfile
import time
from datetime import date, timedelta

from lnds_spe import lifecycle
from lnds_spe.hub import homes, lockdown

from .conftest import IMAGE, start_workspace


def make_project(hub, slug: str, user: str, **quotas) -> None:
    registry = hub.registry()
    today = date.today()
    registry.create_project(slug, f"Project {slug}", today - timedelta(days=1),
                            today + timedelta(days=30), actor="test-setup", mem_limit="1G",
                            allowed_images=(IMAGE,), **quotas)
    registry.add_member(slug, user, "researcher", actor="test-setup")


def events(hub, action: str, project: str) -> list:
    return [e for e in hub.registry().audit.query(project=project) if e.action == action]


def volume_exists(name: str) -> bool:
    return bool(homes.engine_client().volumes(filters={"name": name}).get("Volumes"))


def test_lc_quota_a_workspace_cannot_write_past_its_home_quota(hub):
    make_project(hub, "qhome", "erin", home_quota="32M")
    workspace = start_workspace(hub, "erin", "qhome")
    volume = lockdown.home_volume_name(hub.prefix, "erin", "qhome")
    labels = homes.engine_client().inspect_volume(volume)["Labels"]
    assert labels[lockdown.LABEL_PROJECT] == "qhome" and labels[lockdown.LABEL_USER] == "erin"
    out = workspace.run(
        "import errno, pathlib\n"
        "home = pathlib.Path.home()\n"
        "(home / 'fits.bin').write_bytes(b'x' * 8 * 2**20)\n"
        "try:\n"
        "    with open(home / 'too-big.bin', 'wb') as f:\n"
        "        for _ in range(40):\n"
        "            f.write(b'y' * 2**20); f.flush()\n"
        "    print('wrote it all')\n"
        "except OSError as e:\n"
        "    print('refused', errno.errorcode[e.errno])\n"
        "(home / 'too-big.bin').unlink()\n"
        "print((home / 'fits.bin').stat().st_size)\n")
    assert out.split() == ["refused", "ENOSPC", str(8 * 2**20)], out
    hub.call("admin", "DELETE", "/users/erin/servers/qhome")
    hub.wait_gone("erin", "qhome", timeout=60)


def test_lc_quota_outputs_over_quota_stop_the_workspace_and_refuse_a_start(hub):
    make_project(hub, "qout", "frank", outputs_quota="16M")
    workspace = start_workspace(hub, "frank", "qout")
    workspace.run("import pathlib\n"
                  "(pathlib.Path.home() / 'outputs' / 'big.bin').write_bytes(b'z' * 17 * 2**20)\n")
    hub.wait_gone("frank", "qout", timeout=60)  # the enforcer's next round
    stopped = events(hub, "workspace.expire", "qout")
    assert len(stopped) == 1 and stopped[0].target == "frank"
    assert "over their quota of 16M" in json.loads(stopped[0].details)["reason"]
    answer = hub.spawn("frank", "qout", project="qout", image=IMAGE)
    assert answer.status_code == 403, answer.text
    assert "the outputs of project qout hold 17.0 MiB, over their quota of 16M" in \
        answer.json()["message"]
    assert hub.server("frank", "qout") is None
    denied = events(hub, "workspace.spawn_denied", "qout")
    assert denied and "over their quota" in json.loads(denied[-1].details)["reason"]
    # raising the quota lets the project start again
    hub.registry().set_quotas("qout", actor="test-admin", outputs_quota="64M")
    start_workspace(hub, "frank", "qout")
    hub.call("admin", "DELETE", "/users/frank/servers/qout")
    hub.wait_gone("frank", "qout", timeout=60)


def test_lc_close_homes_closing_while_a_workspace_runs(hub):
    make_project(hub, "qclose", "erin")
    workspace = start_workspace(hub, "erin", "qclose")
    workspace.run("import pathlib\n"
                  "(pathlib.Path.home() / 'notes.txt').write_text('erin was here')\n")
    volume = lockdown.home_volume_name(hub.prefix, "erin", "qclose")
    closed = lifecycle.close_project(hub.registry(), "qclose", actor="test-admin",
                                     state_dir=hub.state_dir)
    # Closing archives the outputs before it settles homes; the hub's enforcer may stop the
    # workspace in between (it sees the closed status), and then the home is settled at once by
    # whichever of the two takes the settle lock first. Either way it is archived exactly once.
    assert closed.homes_pending in ([volume], []), (closed, [
        (e.actor, e.outcome, e.details) for e in events(hub, "project.home", "qclose")])
    hub.wait_gone("erin", "qclose", timeout=60)  # the enforcer stops the workspace...
    deadline = time.monotonic() + 60
    while volume_exists(volume) and time.monotonic() < deadline:  # ...then settles its home
        time.sleep(1)
    assert not volume_exists(volume), hub.log_tail()
    done = [e for e in events(hub, "project.home", "qclose") if e.outcome == "ok"]
    assert len(done) == 1, done
    if closed.homes_pending:  # in use at close: only the enforcer may settle it
        assert done[0].actor == "system:lifecycle", done
    details = json.loads(done[0].details)
    assert details["policy"] == "archive" and details["volume"] == volume
    with tarfile.open(details["archive"]) as tar:
        assert tar.extractfile("notes.txt").read() == b"erin was here"
    assert not homes.image_path(hub.state_dir, "qclose", volume).exists()
