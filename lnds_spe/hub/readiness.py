"""Knowing at once when a starting workspace listens.

JupyterHub checks a started server with exponential backoff and random jitter (waits up to
0.2 * 2**k seconds, capped at 5): a few seconds into a start its waits are seconds long, so
a workspace already serving waits for the hub's next try, up to a third of a start on the
benchmark machine. The spawner instead asks every READY_POLL_S (longer while many starts wait
together) whether the workspace accepts connections and returns when it does; the hub's own
check, whose first try is immediate, then finds it up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

READY_POLL_S = 0.05  # between two connection attempts of a start waiting alone
MAX_POLL_S = 1.0  # at most between two attempts of one start, however many wait
EXIT_CHECK_S = 5.0  # between two checks that the workspace still runs (an engine API call)
CONNECT_TIMEOUT_S = 1.0  # for one attempt: an address not up yet may drop the connection
START_MARGIN_S = 2.0  # the wait ends this long before the hub's start_timeout would stop it


class WorkspaceNotReady(RuntimeError):
    """The workspace exited, or did not listen in time, while starting."""


def server_address(started: tuple[str, int] | str) -> tuple[str, int]:
    """Host and port from what a spawner's start returned: (ip, port) or a URL."""
    if isinstance(started, tuple):
        host, port = started
        return host, int(port)
    parts = urlsplit(started)
    if not parts.hostname:
        raise ValueError(f"the spawner returned {started!r}, neither (ip, port) nor a URL")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


async def accepts_connections(host: str, port: int, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """Whether host:port accepts a TCP connection now (closed at once)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except OSError:  # refused, unreachable, or timed out (TimeoutError is an OSError)
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


_waiting = 0  # starts waiting in wait_listening, in this process


def poll_interval(waiting: int) -> float:
    """Seconds between one start's connection attempts while `waiting` starts wait: the
    process makes 1 / READY_POLL_S attempts a second in all, and each start one at least
    every MAX_POLL_S (so more while over MAX_POLL_S / READY_POLL_S starts wait).

    32 starts at once on 2 cores, three rounds: p50 72.0, 68.3 and 77.2 s with an attempt
    every READY_POLL_S each (640 a second), 71.3, 64.5 and 66.0 s with this.
    """
    return min(MAX_POLL_S, READY_POLL_S * max(1, waiting))


def wait_budget(http_timeout: float, start_timeout: float, elapsed: float) -> tuple[float, bool]:
    """How long a start may wait for its workspace to listen, and whether not listening by
    then fails the start.

    The hub would wait http_timeout for the server after the start, and stops a start that
    runs past start_timeout: the wait ends before either, and fails the start only where the
    hub's own check would have given up as well; otherwise the hub's check takes over.
    """
    remaining = start_timeout - elapsed - START_MARGIN_S
    if http_timeout <= remaining:
        return float(http_timeout), True
    return max(0.0, remaining), False


async def wait_listening(host: str, port: int, timeout: float,
                         poll: Callable[[], Awaitable[int | None]]) -> bool:
    """True once host:port accepts a connection, False when it has not after `timeout`
    seconds. Raise WorkspaceNotReady when `poll` (a spawner's: None while running, else the
    exit status) says the workspace stopped."""
    global _waiting
    loop = asyncio.get_running_loop()
    started = loop.time()
    next_exit_check = started + EXIT_CHECK_S
    _waiting += 1
    try:
        while not await accepts_connections(host, port):
            now = loop.time()
            if now - started >= timeout:
                return False
            if now >= next_exit_check:
                status = await poll()
                if status is not None:
                    raise WorkspaceNotReady(f"the workspace exited while starting (status "
                                            f"{status}); an admin can read its log")
                next_exit_check = now + EXIT_CHECK_S
            await asyncio.sleep(poll_interval(_waiting))
    finally:
        _waiting -= 1
    return True
