"""A starting workspace is seen as up as soon as it listens: real sockets on loopback."""

import asyncio
import time

import pytest

from lnds_spe.hub import readiness
from lnds_spe.hub.readiness import (
    EXIT_CHECK_S,
    MAX_POLL_S,
    READY_POLL_S,
    START_MARGIN_S,
    WorkspaceNotReady,
    poll_interval,
    server_address,
    wait_budget,
    wait_listening,
)
from tests.support.hubs import free_port


async def running() -> None:
    return None


def test_server_address_from_ip_and_port_or_a_url():
    assert server_address(("10.89.0.2", "8888")) == ("10.89.0.2", 8888)
    assert server_address("http://jupyter-ann.spe.svc:8888") == ("jupyter-ann.spe.svc", 8888)
    assert server_address("http://10.0.0.5") == ("10.0.0.5", 80)
    assert server_address("https://10.0.0.5") == ("10.0.0.5", 443)
    with pytest.raises(ValueError, match="neither"):
        server_address("8888")


def test_returns_within_a_poll_of_the_workspace_listening():
    """JupyterHub's own check would wait up to 1.6 s more at this point of a start."""
    port = free_port()

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        listening_from = {}

        async def listen_later():
            await asyncio.sleep(1.5)
            listening_from["t"] = loop.time()
            return await asyncio.start_server(lambda reader, writer: writer.close(),
                                              "127.0.0.1", port)

        later = asyncio.ensure_future(listen_later())
        assert await wait_listening("127.0.0.1", port, 10, running)
        seen = loop.time()
        server = await later
        server.close()
        await server.wait_closed()
        return seen - listening_from["t"]

    lag = asyncio.run(scenario())
    assert 0 <= lag < 0.3  # the poll is READY_POLL_S; slack for a busy machine


def test_a_workspace_that_exits_while_starting_fails_the_start_with_its_status():
    async def exited() -> int:
        return 3

    began = time.monotonic()
    with pytest.raises(WorkspaceNotReady, match=r"exited while starting \(status 3\)"):
        asyncio.run(wait_listening("127.0.0.1", free_port(), 60, exited))
    assert time.monotonic() - began < EXIT_CHECK_S + 3  # at its first check, not the timeout


def test_a_workspace_that_never_listens_is_given_up_after_the_timeout():
    began = time.monotonic()
    assert asyncio.run(wait_listening("127.0.0.1", free_port(), 0.5, running)) is False
    assert 0.5 <= time.monotonic() - began < 3


def test_the_wait_fails_a_start_only_where_the_hubs_own_check_would():
    # http_timeout bounds it: not listening by then fails the start, as the hub would
    assert wait_budget(http_timeout=120, start_timeout=180, elapsed=1) == (120, True)
    # the start would be stopped first: wait until just before, then the hub's check goes on
    assert wait_budget(http_timeout=300, start_timeout=60, elapsed=10) == (
        60 - 10 - START_MARGIN_S, False)
    assert wait_budget(http_timeout=30, start_timeout=20, elapsed=25) == (0.0, False)


def test_starts_waiting_together_share_the_connection_attempts():
    assert poll_interval(1) == READY_POLL_S
    shared = round(MAX_POLL_S / READY_POLL_S)
    for waiting in range(1, shared + 1):  # 1 / READY_POLL_S attempts a second in all
        assert waiting / poll_interval(waiting) == pytest.approx(1 / READY_POLL_S)
    for waiting in range(shared + 1, 100):  # then one a second each, at least
        assert poll_interval(waiting) == MAX_POLL_S


def test_concurrent_waits_space_out_their_attempts_and_are_counted_until_they_end(monkeypatch):
    attempts = []
    real = readiness.accepts_connections

    async def counted(host, port):
        attempts.append(port)
        return await real(host, port)

    monkeypatch.setattr(readiness, "accepts_connections", counted)

    async def exited() -> int:
        return 1

    async def scenario() -> list:
        waits = [wait_listening("127.0.0.1", free_port(), 1.0, running) for _ in range(8)]
        return await asyncio.gather(*waits, return_exceptions=True)

    assert asyncio.run(scenario()) == [False] * 8
    # 8 waiting for 1 s: about 20 attempts in all, where 20 each would make 160
    assert 8 <= len(attempts) <= 8 + 1.5 / READY_POLL_S
    assert readiness._waiting == 0
    monkeypatch.setattr(readiness, "EXIT_CHECK_S", 0.2)
    with pytest.raises(WorkspaceNotReady):  # a wait that raises is no longer counted either
        asyncio.run(wait_listening("127.0.0.1", free_port(), 5, exited))
    assert readiness._waiting == 0
