"""The flow-control gate in the companion segment (waiters.py): the writer's gated
publish never overwrites what a joined reader has not read, and stops short (bounded)
while the gate is shut; joining, leaving, being dropped; what cannot join.

In one process (the end-to-end tests with real daemons are tests/consumer/
test_flow_control_e2e.py): the writer is called with a short ``max_wait_s`` and the
reader reads in between, so every step is deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest
from support import remove_segment_files

from tradingd.segment import layout as L
from tradingd.segment import reader as reader_mod
from tradingd.segment import waiters
from tradingd.segment.fastpath import FAST
from tradingd.segment.model import SymbolInfo
from tradingd.segment.reader import SegmentReader
from tradingd.segment.writer import SegmentWriter

pytestmark = pytest.mark.skipif(FAST is None, reason="the gate needs the C fast path")

RING = 1 << 12
SYMS = [SymbolInfo("A"), SymbolInfo("B")]


def stream(n: int) -> np.ndarray:
    recs = np.zeros(n, L.RECORD_DTYPE)
    recs["symbol_id"] = np.arange(n) % 2
    recs["event_ns"] = np.arange(n)
    recs["close"] = np.arange(n, dtype=float)
    return recs


def gated_writer(name: str) -> SegmentWriter:
    w = SegmentWriter.create(name, SYMS, ring_capacity=RING,
                             before_ready=lambda w: w.enable_gate())
    assert w.gated
    return w


def test_the_gate_holds_the_writer_at_the_slowest_reader(segment_name: str) -> None:
    recs = stream(20 * RING)
    with gated_writer(segment_name) as w, SegmentReader.attach(segment_name) as r:
        assert r.gate_on
        fast, slow = r.subscribe("oldest"), r.subscribe("oldest")
        assert r.join_gate(fast) == 0 and r.join_gate(slow) == 1
        lag = RING - w.geometry.ring_window
        done = w.publish_gated(recs, 0, len(recs), 0, 0.005)  # nobody reads: stops short
        assert done == lag and w.cursor == lag
        got = []
        for _ in range(200):
            fast.poll_batch(RING)
            got.append(slow.poll_batch(97).copy())  # the slow one takes little at a time
            done += w.publish_gated(recs, done, len(recs), 0, 0.001)
            assert w.cursor - slow.position <= lag  # never lapped
        got.append(slow.poll_batch(RING).copy())
        seqs = np.concatenate([g["seq_lo"] for g in got])
        np.testing.assert_array_equal(seqs, np.arange(len(seqs), dtype=np.uint32))
        assert slow.lost == fast.lost == 0 and len(seqs) > 2 * RING
        assert w.gate_waits > 0  # it slept on the gate (and was woken or timed out)
        # the slow reader leaves: the writer runs on as far as the fast one allows
        r.leave_gate(slow, 1)
        fast.poll_batch(RING)
        before = w.cursor
        w.publish_gated(recs, done, len(recs), 0, 0.001)
        assert w.cursor - before > 0
        assert [s.index for s in w.gate_slots()] == [0]


def test_a_dropped_reader_no_longer_holds_the_writer(segment_name: str) -> None:
    recs = stream(4 * RING)
    with gated_writer(segment_name) as w, SegmentReader.attach(segment_name) as r:
        sub = r.subscribe("oldest")
        slot = r.join_gate(sub)
        assert slot is not None
        lag = RING - w.geometry.ring_window
        assert w.publish_gated(recs, 0, len(recs), 0, 0.002) == lag
        assert w.gate_cas(slot, waiters.GATE_ACTIVE, waiters.GATE_DROPPED)
        assert not w.gate_cas(slot, waiters.GATE_ACTIVE, waiters.GATE_DROPPED)  # already
        assert r.gate_slot_state(slot) == waiters.GATE_DROPPED
        assert w.publish_gated(recs, lag, len(recs), 0, 0.002) == len(recs) - lag
        sub.poll_batch(RING)
        assert sub.lost > 0  # lapped, and counted: it reads as from a feed now
        r.leave_gate(sub, slot)
        assert w.gate_slots() == []


def test_joining_moves_past_what_a_chunk_in_flight_may_overwrite(segment_name: str) -> None:
    recs = stream(3 * RING)
    with gated_writer(segment_name) as w, SegmentReader.attach(segment_name) as r:
        w.publish_stream(recs, 0, 2 * RING, 0)  # before anyone joined
        sub = r.subscribe("oldest")
        oldest = sub.position
        assert r.join_gate(sub) is not None
        assert sub.position == w.cursor + 2 * w.geometry.ring_window - RING > oldest
        w.publish_gated(recs, 2 * RING, 3 * RING, 0, 0.002)
        sub.poll_batch(RING)
        assert sub.lost == 0


def test_who_cannot_join(segment_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with SegmentWriter.create(segment_name, SYMS, ring_capacity=RING) as w, \
            SegmentReader.attach(segment_name) as r:  # no flow control: nothing to join
        assert not w.gated and not r.gate_on
        assert r.join_gate(r.subscribe("oldest")) is None
    remove = segment_name + "b"
    try:
        with gated_writer(remove) as w, SegmentReader.attach(remove) as r:
            subs = [r.subscribe("oldest") for _ in range(waiters.GATE_SLOTS + 1)]
            slots = [r.join_gate(s) for s in subs]
            assert slots[:-1] == list(range(waiters.GATE_SLOTS)) and slots[-1] is None
            for s, i in zip(subs[:-1], slots[:-1], strict=True):
                assert i is not None
                r.leave_gate(s, i)
            assert w.gate_slots() == []
            monkeypatch.setattr(reader_mod, "FAST", None)  # the pure-Python reader
            with SegmentReader.attach(remove) as py:
                assert py.join_gate(py.subscribe("oldest")) is None
    finally:
        remove_segment_files(remove)


def test_closing_a_reader_releases_its_gated_cursors(segment_name: str) -> None:
    with gated_writer(segment_name) as w:
        r = SegmentReader.attach(segment_name)
        sub = r.subscribe("oldest")
        assert r.join_gate(sub) == 0
        r.close()  # the companion is unmapped: the cursor no longer points into it
        assert w.gate_slots()[0].state == waiters.GATE_ACTIVE  # a clean stop leaves it...
        assert w.gate_cas(0, waiters.GATE_ACTIVE, waiters.GATE_FREE)  # ...to the follower


def test_the_lead_bounds_how_far_the_writer_runs_ahead(segment_name: str) -> None:
    recs = stream(20 * RING)
    window = L.default_window(RING)
    with SegmentWriter.create(segment_name, SYMS, ring_capacity=RING,
                              before_ready=lambda w: w.enable_gate(2 * window)) as w, \
            SegmentReader.attach(segment_name) as r:
        assert w.gate_lead == 2 * window
        sub = r.subscribe("oldest")
        assert r.join_gate(sub) is not None
        done = w.publish_gated(recs, 0, len(recs), 0, 0.002)
        assert done == 2 * window  # not the whole ring
        for _ in range(50):
            sub.poll_batch(300)
            done += w.publish_gated(recs, done, len(recs), 0, 0.001)
            assert w.cursor - sub.position <= 2 * window
        assert sub.lost == 0 and sub.position > 4 * window
