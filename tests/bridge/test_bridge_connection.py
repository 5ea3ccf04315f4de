"""The bridge's asyncio exception handler: the NATS client's leftovers of a dropped
connection are one log line, without a traceback; anything else is asyncio's as before."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest
from nats.aio.client import Client as NATS

from tradingd.bridge.connection import quiet_nats_client_tasks


class _Task:
    """What asyncio passes as the context's ``future``: here only ``get_coro`` matters."""

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._coro = coro

    def get_coro(self) -> Coroutine[Any, Any, Any]:
        return self._coro


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


@pytest.fixture
def nats_read_loop() -> Iterator[Coroutine[Any, Any, Any]]:
    coro = NATS()._read_loop()  # the task that ends with the socket error (never started)
    yield coro
    coro.close()


async def _ours() -> None:
    pass


def test_a_socket_error_of_the_nats_read_loop_is_one_warning(
        loop: asyncio.AbstractEventLoop, nats_read_loop: Coroutine[Any, Any, Any],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    exc = ConnectionResetError(104, "Connection reset by peer")
    quiet_nats_client_tasks(loop, {"message": "Task exception was never retrieved",
                                   "exception": exc, "future": _Task(nats_read_loop)})
    [rec] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert rec.levelno == logging.WARNING and rec.exc_info is None
    assert "Client._read_loop" in rec.getMessage()
    assert "ConnectionResetError" in rec.getMessage()
    assert "reconnects" in rec.getMessage()


def test_a_pending_nats_task_destroyed_is_debug_only(
        loop: asyncio.AbstractEventLoop, nats_read_loop: Coroutine[Any, Any, Any],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    quiet_nats_client_tasks(loop, {"message": "Task was destroyed but it is pending!",
                                   "task": _Task(nats_read_loop)})
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]


@pytest.mark.parametrize("which", ["ours", "nats-bug"])
def test_anything_else_goes_to_asyncio_with_its_traceback(
        loop: asyncio.AbstractEventLoop, nats_read_loop: Coroutine[Any, Any, Any],
        caplog: pytest.LogCaptureFixture, which: str) -> None:
    """Our own tasks' errors, and a NATS task's that is not a connection error (a bug),
    keep asyncio's ERROR with the traceback."""
    coro = _ours() if which == "ours" else nats_read_loop
    try:
        try:
            raise (ConnectionResetError(104, "reset") if which == "ours"
                   else TypeError("can't extend bytearray with int"))
        except Exception as e:
            exc = e
        quiet_nats_client_tasks(loop, {"message": "Task exception was never retrieved",
                                       "exception": exc, "future": _Task(coro)})
    finally:
        if which == "ours":
            coro.close()
    [rec] = [r for r in caplog.records if r.name == "asyncio"]
    assert rec.levelno == logging.ERROR and rec.exc_info is not None
