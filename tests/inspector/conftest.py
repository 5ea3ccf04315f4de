"""Fixtures for the inspector tests (helpers in inspector_support.py).

``start_producer`` starts real producers on private segment names (killed by PID and their
segments removed afterwards, also when a test fails); ``live`` is one producer shared by
a module's read-only tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from inspector_support import Producer, new_name, write_config

LIVE_SPEED = 10 * 365 * 86400.0
LIVE_RING = 16384


@pytest.fixture
def start_producer(tmp_path: Path) -> Iterator[Callable[..., Producer]]:
    """Start real producers on private names; all killed and removed afterwards."""
    started: list[Producer] = []

    def _start(*, replay: dict | None = None, segment: dict | None = None,
               wrapper: Sequence[str] = (), name: str | None = None,
               wait: bool = True) -> Producer:
        p = Producer(write_config(tmp_path, replay=replay, segment=segment),
                     name or new_name(), tmp_path, wrapper)
        started.append(p)
        if wait:
            p.wait_live()
        return p

    yield _start
    for p in started:
        p.cleanup()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Producer]:
    """One producer shared by a module's read-only tests."""
    d = tmp_path_factory.mktemp("live")
    # Ten years of data a second: every symbol has data after ~4 s (BTC-USD starts in
    # 2019), about 5k records/s; a 16k ring keeps ~3 s of history.
    p = Producer(write_config(d, replay={"speed": LIVE_SPEED},
                              segment={"ring_capacity": LIVE_RING}), new_name(), d)
    try:
        p.wait_live()
        yield p
    finally:
        p.cleanup()


