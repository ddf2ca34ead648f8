"""Jupyter server extension (runs inside the workspace): a busy kernel counts as activity.

Jupyter counts a kernel's messages as activity, not a long silent computation; without this the
idle culler would stop a workspace in the middle of a long run. Every `interval` seconds, if any
kernel is busy, the `spe_busy_last_activity` setting (summed up by the server's
`last_activity()`, which jupyterhub-singleuser reports to the hub) is set to now.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tornado.ioloop import PeriodicCallback

CHECK_EVERY_S = 15.0


def any_kernel_busy(kernel_states: list[str]) -> bool:
    """True if at least one kernel is executing."""
    return "busy" in kernel_states


def _load_jupyter_server_extension(serverapp) -> None:
    """Start the periodic busy-kernel check in this Jupyter server."""
    settings = serverapp.web_app.settings
    kernels = serverapp.kernel_manager

    def mark_busy() -> None:
        states = [getattr(kernel, "execution_state", "") for kernel in kernels._kernels.values()]
        if any_kernel_busy(states):
            settings["spe_busy_last_activity"] = datetime.now(UTC)

    PeriodicCallback(mark_busy, CHECK_EVERY_S * 1000).start()
    serverapp.log.info("lnds_spe: busy kernels count as activity (checked every %.0f s)",
                       CHECK_EVERY_S)


def _jupyter_server_extension_points() -> list[dict]:
    """The extension point Jupyter server looks for."""
    return [{"module": "lnds_spe.workspace.busy_activity"}]
