"""Follower: waiting, attaching, following restarts, the two health signals.

Real segments in /dev/shm written by SegmentWriter; time from a ManualClock shared by the
writer (heartbeats) and the follower, so every timeout is crossed deterministically.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from tradingd.clock import ManualClock
from tradingd.consumer.follower import Follower
from tradingd.errors import SegmentForeign, SegmentNotFound, SegmentNotReady
from tradingd.segment import layout as L
from tradingd.segment import shm
from tradingd.segment.model import SymbolInfo
from tradingd.segment.writer import SegmentWriter

SYMBOLS = [SymbolInfo("AAA"), SymbolInfo("BBB", price_decimals=4)]
HB_INTERVAL = 0.1  # producer heartbeat interval (s); timeout = max(5 x 0.1, 0.5) = 0.5 s


@pytest.fixture
def name(segment_name: str, impl: str) -> str:
    """A private segment name (removed afterwards), each test run on both read paths."""
    return segment_name


class Sink:
    """Collects what the follower hands over."""

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.closes: list[float] = []
        self.small = self.large = 0  # batches read one by one / as numpy copies

    def __call__(self, batch: np.ndarray | list[tuple], first_seq: int) -> None:
        if isinstance(batch, list):  # a few records, read one by one (Record tuples)
            assert batch[0][0] == first_seq
            self.seqs.extend(r[0] for r in batch)
            self.closes.extend(r[7] for r in batch)
            self.small += 1
        else:
            self.seqs.extend(range(first_seq, first_seq + len(batch)))
            self.closes.extend(batch["close"].tolist())
            self.large += 1


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(monotonic_ns=10**12)


def make_writer(name: str, clock: ManualClock, ring: int = 256) -> SegmentWriter:
    return SegmentWriter.create(name, SYMBOLS, symbol_capacity=4, ring_capacity=ring,
                                heartbeat_interval_ns=int(HB_INTERVAL * 1e9), clock=clock)


def make_follower(name: str, clock: ManualClock, sink: Sink, **kw: object) -> Follower:
    opts: dict = {"attach_retry_interval": 0.25, "heartbeat_timeout_factor": 5.0,
                  "data_stale_after": 2.0, "check_interval": 0.05}
    opts.update(kw)
    return Follower(name, sink, clock=clock, **opts)


def publish(w: SegmentWriter, n: int, start: float = 1.0) -> None:
    for i in range(n):
        w.publish(i % 2, i, start + i, start + i, start + i, start + i, 10.0)


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def test_waits_quietly_then_attaches(name: str, clock: ManualClock,
                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    sink = Sink()
    f = make_follower(name, clock, sink)
    for _ in range(20):  # 5 s of retries with no segment
        f.tick()
        clock.advance(0.25)
    assert not f.attached
    assert isinstance(f.problem, SegmentNotFound)
    assert f.waiting_text() == f"waiting for segment /dev/shm/{name}"
    assert len(messages(caplog, "waiting for segment")) == 1  # first failure only
    assert f.poll() == 0
    w = make_writer(name, clock)
    try:
        publish(w, 5)
        f.tick()  # the retry is due
        assert f.attached and f.generation == w.generation and f.attaches == 1
        assert f.generation_changes == 0  # a first attach is not a change
        assert f.problem is None
        assert f.poll() == 5
        assert sink.seqs == [0, 1, 2, 3, 4]
        assert (sink.small, sink.large) == (1, 0)  # a few records: read one by one
        assert f.consumed == 5 and f.lost == 0 and f.lag() == 0
        assert len(messages(caplog, "attached to /dev/shm")) == 1
    finally:
        f.close()
        w.close()


def test_retry_interval_is_respected(name: str, clock: ManualClock) -> None:
    f = make_follower(name, clock, Sink(), attach_retry_interval=1.0)
    f.tick()
    assert f.seconds_until_due() == pytest.approx(1.0)
    w = make_writer(name, clock)
    try:
        clock.advance(0.9)
        f.tick()
        assert not f.attached  # not due yet: no attach attempt
        clock.advance(0.1)
        f.tick()
        assert f.attached
    finally:
        f.close()
        w.close()


def test_producer_alive_and_data_fresh_are_separate(name: str, clock: ManualClock,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    f = make_follower(name, clock, Sink())
    w = make_writer(name, clock)
    try:
        f.tick()
        assert f.producer_alive and not f.data_fresh  # beating, nothing published yet
        publish(w, 3)
        f.poll()
        clock.advance(0.05)
        f.tick()
        assert f.producer_alive and f.data_fresh
        # heartbeats go on, data stops: alive but stale after data_stale_after (2 s)
        for _ in range(25):
            clock.advance(0.1)
            w.heartbeat()
            f.tick()
        assert f.producer_alive and not f.data_fresh
        h = f.health()
        assert h.data_age_ns == pytest.approx(2.55e9, rel=0.01)
        # heartbeats stop: down once the heartbeat is older than 5 x 0.1 s (floor 0.5 s)
        clock.advance(0.45)
        f.tick()
        assert f.producer_alive
        for _ in range(10):
            clock.advance(0.1)
            f.tick()
        assert not f.producer_alive
        assert f.attached  # a silent producer is not a reason to let go of its segment
        assert f.health().heartbeat_timeout_ns == 500_000_000
        w.heartbeat()
        f.poll()
        publish(w, 1)
        clock.advance(0.05)
        f.poll()
        f.tick()
        assert f.producer_alive and f.data_fresh
        # each transition logged once, however many ticks saw the same state
        assert len(messages(caplog, "producer down")) == 1
        assert len(messages(caplog, "producer up")) == 2
        assert len(messages(caplog, "data stale")) == 1
        assert len(messages(caplog, "data fresh")) == 2
    finally:
        f.close()
        w.close()


def test_clean_stop_drains_then_waits(name: str, clock: ManualClock) -> None:
    sink = Sink()
    f = make_follower(name, clock, sink)
    w = make_writer(name, clock)
    f.tick()
    publish(w, 7)
    w.close()  # state stopped, unlinked: the records are still in our mapping
    clock.advance(0.05)
    f.tick()
    assert not f.attached
    assert sink.seqs == list(range(7))  # drained before letting go
    assert f.consumed == 7 and f.lost == 0
    assert not f.producer_alive
    assert f.last_generation == w.generation and f.generation == 0


def test_restart_reattaches_at_once_and_counts_generation(
        name: str, clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    sink = Sink()
    f = make_follower(name, clock, sink)
    w1 = make_writer(name, clock)
    w2 = None
    try:
        f.tick()
        publish(w1, 4)
        f.poll()
        publish(w1, 2, start=100.0)  # not read yet when the producer "dies"
        # a SIGKILLed producer leaves its segment; the next one removes it and creates anew
        shm.unlink(name)
        w2 = make_writer(name, clock)
        publish(w2, 3, start=1000.0)
        clock.advance(0.05)
        f.tick()  # one check: drain the old segment, attach the new one
        assert f.attached and f.generation == w2.generation
        assert f.generation_changes == 1 and f.attaches == 2
        assert len(messages(caplog, "new segment (producer restarted)")) == 1
        f.poll()
        assert sink.closes == [1, 2, 3, 4, 100, 101, 1000, 1001, 1002]
        assert sink.seqs == [0, 1, 2, 3, 4, 5, 0, 1, 2]  # sequence restarts with the segment
        assert f.consumed == 9
    finally:
        f.close()
        w1.close(unlink=False)
        if w2 is not None:
            w2.close()


def test_generation_changed_in_place_is_followed(name: str, clock: ManualClock) -> None:
    f = make_follower(name, clock, Sink())
    w = make_writer(name, clock)
    try:
        f.tick()
        old = w.generation
        w._header[0]["generation"] = old ^ 0xFFFF  # only a foreign writer would do this
        clock.advance(1.0)
        f.tick()
        assert f.attached and f.generation == old ^ 0xFFFF
        assert f.generation_changes == 1 and f.attaches == 2
    finally:
        f.close()
        w.close()


def test_restart_while_waiting_counts_generation(name: str, clock: ManualClock) -> None:
    f = make_follower(name, clock, Sink())
    w1 = make_writer(name, clock)
    f.tick()
    g1 = w1.generation
    w1.close()
    clock.advance(0.05)
    f.tick()
    assert not f.attached
    w2 = make_writer(name, clock)
    try:
        clock.advance(0.25)
        f.tick()
        assert f.attached and f.generation == w2.generation != g1
        assert f.generation_changes == 1
    finally:
        f.close()
        w2.close()


def test_lapping_is_counted_exactly(name: str, clock: ManualClock) -> None:
    sink = Sink()
    f = make_follower(name, clock, sink)
    w = make_writer(name, clock, ring=64)  # window 16: up to 48 records kept readable
    try:
        f.tick()
        publish(w, 10)
        f.poll()
        publish(w, 200)  # far more than the ring holds
        while f.poll():
            pass
        assert f.lost > 0
        assert sink.large >= 1  # a backlog: numpy batches
        assert f.consumed + f.lost == w.cursor == 210
        assert sink.seqs[:10] == list(range(10))
        assert sink.seqs[10:] == list(range(210 - len(sink.seqs) + 10, 210))  # the newest
        assert f.lag() == 0
    finally:
        f.close()
        w.close()


def test_records_overwritten_before_attach_are_skipped_not_lost(name: str,
                                                               clock: ManualClock) -> None:
    w = make_writer(name, clock, ring=64)
    try:
        publish(w, 100)  # wrapped before anyone attached
        f = make_follower(name, clock, Sink())
        f.tick()
        while f.poll():
            pass
        assert f.skipped == 100 - 64 + 16  # cursor - capacity + window: oldest intact
        assert f.lost == 0
        assert f.consumed + f.skipped == w.cursor
        f.close()
    finally:
        w.close()


def test_foreign_file_is_reported_once_and_replaced_file_attached(
        name: str, clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    path = shm.segment_path(name)
    with open(path, "wb") as fh:
        fh.write(b"NOTOURS!" + bytes(L.HEADER.size))
    f = make_follower(name, clock, Sink())
    for _ in range(8):
        f.tick()
        clock.advance(0.25)
    assert isinstance(f.problem, SegmentForeign)
    assert "not a tradingd segment" in f.waiting_text()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "cannot use" in errors[0].getMessage()
    os.unlink(path)
    w = make_writer(name, clock)
    try:
        f.tick()
        assert f.attached
    finally:
        f.close()
        w.close()


def test_initialising_segment_waits(name: str, clock: ManualClock) -> None:
    with open(shm.segment_path(name), "wb") as fh:  # as left by ftruncate: all zeros
        fh.write(bytes(4096))
    f = make_follower(name, clock, Sink())
    f.tick()
    assert not f.attached and isinstance(f.problem, SegmentNotReady)
    assert "initialising" in f.waiting_text()


def test_never_unlinks_or_writes(name: str, clock: ManualClock) -> None:
    w = make_writer(name, clock)
    try:
        publish(w, 5)
        before = bytes(w._mm)  # the writer's own mapping: every byte of the segment
        f = make_follower(name, clock, Sink())
        f.tick()
        while f.poll():
            pass
        clock.advance(5)
        f.tick()
        f.close()
        assert os.path.exists(shm.segment_path(name))
        assert bytes(w._mm) == before
    finally:
        w.close()
