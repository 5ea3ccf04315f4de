"""Wait strategies against a real segment: wake on data, time out, stop on request.

"At once" and "woken" are told from "waited out its timeout" by a long timeout (LONG) and a
bound of half of it, so a slow or busy machine cannot fail them; no bound is tighter than
what tells a correct strategy from a wrong one.
"""

from __future__ import annotations

import threading
import time

import pytest
from support import ThreadStop

from tradingd.consumer.waiting import STRATEGIES, BlockWait, PollWait, SpinWait, make_strategy
from tradingd.segment.model import SymbolInfo
from tradingd.segment.reader import SegmentReader
from tradingd.segment.writer import SegmentWriter

#: A timeout no correct wait comes near: returning within LONG / 2 means it did not wait it out.
LONG = 60.0


@pytest.fixture
def segment(segment_name: str, impl: str):
    w = SegmentWriter.create(segment_name, [SymbolInfo("A")], ring_capacity=64)
    r = SegmentReader.attach(segment_name)
    yield w, r.subscribe("latest")
    r.close()
    w.close()


@pytest.mark.parametrize("name", STRATEGIES)
def test_returns_at_once_when_data_is_there(segment, name: str) -> None:
    w, sub = segment
    w.publish(0, 1, 1.0, 1.0, 1.0, 1.0, 1.0)
    t0 = time.monotonic()
    assert make_strategy(name, ThreadStop(), 0.5).wait(sub, LONG)
    assert time.monotonic() - t0 < LONG / 2


@pytest.mark.parametrize("name", STRATEGIES)
def test_times_out_without_data(segment, name: str) -> None:
    _, sub = segment
    t0 = time.monotonic()
    assert not make_strategy(name, ThreadStop(), 0.01).wait(sub, 0.1)
    assert 0.09 <= time.monotonic() - t0 < LONG / 2  # returns after its timeout, not never


@pytest.mark.parametrize("name", STRATEGIES)
def test_wakes_when_the_writer_publishes(segment, name: str) -> None:
    w, sub = segment
    timer = threading.Timer(0.1, w.publish, (0, 1, 1.0, 1.0, 1.0, 1.0, 1.0))
    timer.start()
    t0 = time.monotonic()
    try:
        assert make_strategy(name, ThreadStop(), 0.005).wait(sub, LONG)
    finally:
        timer.join()
    assert time.monotonic() - t0 < LONG / 2


def test_spin_sees_a_stop_request(segment) -> None:
    _, sub = segment
    stop = ThreadStop()
    threading.Timer(0.05, stop.event.set).start()
    t0 = time.monotonic()
    assert not SpinWait(stop).wait(sub, LONG)
    assert time.monotonic() - t0 < LONG / 2


def test_poll_sleeps_its_interval(segment) -> None:
    _, sub = segment
    slept: list[float] = []
    p = PollWait(ThreadStop(), 0.002, sleep=lambda s: (slept.append(s), time.sleep(s)))
    assert not p.wait(sub, 0.2)
    # each sleep lasts at least what it asked for: at most timeout / interval + 1 of them
    # (a busy machine makes them longer, so fewer: at least one)
    assert 1 <= len(slept) <= 0.2 / 0.002 + 1
    assert max(slept) == 0.002
    assert all(s <= 0.002 for s in slept)  # never beyond the interval or the timeout


def test_block_returns_when_stopped(segment) -> None:
    _, sub = segment
    stop = ThreadStop()
    stop.event.set()
    t0 = time.monotonic()
    assert not BlockWait(stop).wait(sub, LONG)
    assert time.monotonic() - t0 < LONG / 2


def test_unknown_strategy() -> None:
    with pytest.raises(ValueError, match="spin, poll, block"):
        make_strategy("sleepy", ThreadStop())
