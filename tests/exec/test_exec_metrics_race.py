"""exec's /metrics while the main loop closes a client's rings (the HTTP 500 seen once under
load in test_a_blocking_client_is_woken_by_exec): the collector must never raise.

In-process and deterministic: a real ExecService, a real order ring in /dev/shm, exec's real
report ring; the race is reproduced by closing the rings (as the main loop does, between
``close()`` and forgetting them) and scraping at that instant.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from exec_support import write_config
from prometheus_client import generate_latest

from tradingd.daemon.config import load_config
from tradingd.exec.metrics import make_registry
from tradingd.exec.service import ExecService
from tradingd.segment.channel import KIND_ORDERS, ChannelWriter, create_channel, orders_name


@pytest.fixture
def service(workdir: Path, segment_name: str) -> Iterator[ExecService]:
    config = load_config(write_config(workdir), segment_override=segment_name)
    s = ExecService(config, stop=threading.Event())
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def order_ring(segment_name: str) -> Iterator[ChannelWriter]:
    w = create_channel(orders_name(segment_name, "alice"), KIND_ORDERS, client="alice",
                       capacity=64, mode=0o600, heartbeat_interval_ns=10**8)
    try:
        yield w
    finally:
        w.close()


def _attached(service: ExecService) -> None:
    for _ in range(200):  # discovery runs in the first round; a few more are harmless
        service.round()
        link = service.links.get("alice")
        if link is not None and link.reports is not None:
            return
    raise AssertionError("exec did not attach the client's order ring")


def test_scrape_of_a_ring_closed_under_the_collector_does_not_fail(
        service: ExecService, order_ring: ChannelWriter) -> None:
    _attached(service)
    registry = make_registry(service, process=False)
    before = generate_latest(registry).decode()
    assert 'tradingd_exec_client_connected{client="alice"} 1.0' in before
    link = service.links["alice"]
    assert link.orders is not None and link.reports is not None
    link.orders.close()  # the main loop closed them; the link still names them
    link.reports.close(unlink=False)
    with service.lock:
        rows = service.ring_rows()
    assert rows[0]["connected"] is False and rows[0]["order_ring_depth"] == 0
    after = generate_latest(registry).decode()  # raised ValueError (HTTP 500) before
    assert 'tradingd_exec_client_connected{client="alice"} 0.0' in after
    assert 'tradingd_build_info{daemon="exec"' in after
    assert "_created" not in after
    link.orders = link.reports = None  # what the main loop does next


def test_discovery_holds_the_lock_the_collector_takes(
        service: ExecService, order_ring: ChannelWriter) -> None:
    """A scrape holding the lock keeps discovery (which closes and reopens rings) out."""
    _attached(service)
    entered = threading.Event()
    service.lock.acquire()
    try:
        t = threading.Thread(target=lambda: (service.discover(), entered.set()), daemon=True)
        t.start()
        assert not entered.wait(0.2), "discover() ran while a scrape held the lock"
    finally:
        service.lock.release()
    assert entered.wait(30)
    t.join(30)
