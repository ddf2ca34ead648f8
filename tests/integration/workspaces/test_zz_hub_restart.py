"""A hub restart leaves running workspaces running, with their state, reachable again after."""

import requests


def test_hub_restart_keeps_workspace_and_state(hub, ws_alice_pa):
    """Stop and start the hub: the same kernel, with its variables, answers through the proxy."""
    kernel = ws_alice_pa.start_kernel()
    ws_alice_pa.run("remembered = 'state-before-restart'", kernel_id=kernel)
    container_before = ws_alice_pa.container
    hub.stop()
    hub.start()
    model = hub.server("alice", "pa")
    assert model is not None and model["ready"]
    assert ws_alice_pa.container == container_before
    out = ws_alice_pa.run("print(remembered)", kernel_id=kernel)
    assert out.strip() == "state-before-restart"
    status = requests.get(f"{ws_alice_pa.base}/api/status", timeout=30,
                          headers={"Authorization": f"token {hub.token('alice')}"})
    assert status.status_code == 200
