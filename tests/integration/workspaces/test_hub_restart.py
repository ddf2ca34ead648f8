"""A hub restart leaves running workspaces running, with their state, reachable again after.

The test restarts a hub of its own (own state dir, container prefix and workspace), so it runs in
any order beside the tests that share the session's hub.
"""

from collections.abc import Iterator

import pytest
import requests

from .conftest import Hub, Workspace, running_hub, start_workspace


@pytest.fixture
def own_hub(tmp_path_factory) -> Iterator[Hub]:
    """A hub for this test alone."""
    with running_hub(tmp_path_factory.mktemp("spe-restart-state"), "restart") as hub:
        yield hub


@pytest.fixture
def own_workspace(own_hub) -> Workspace:
    """alice's workspace of project pa on the test's own hub."""
    return start_workspace(own_hub, "alice", "pa")


def test_hub_restart_keeps_workspace_and_state(own_hub, own_workspace):
    """Stop and start the hub: the same kernel, with its variables, answers through the proxy."""
    hub, workspace = own_hub, own_workspace
    kernel = workspace.start_kernel()
    workspace.run("remembered = 'state-before-restart'", kernel_id=kernel)
    container_before = workspace.container
    hub.stop()
    hub.start()
    model = hub.server("alice", "pa")
    assert model is not None and model["ready"]
    assert workspace.container == container_before
    out = workspace.run("print(remembered)", kernel_id=kernel)
    assert out.strip() == "state-before-restart"
    status = requests.get(f"{workspace.base}/api/status", timeout=30,
                          headers={"Authorization": f"token {hub.token('alice')}"})
    assert status.status_code == 200
