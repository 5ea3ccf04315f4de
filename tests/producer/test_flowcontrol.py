"""The producer's flow-control supervisor: which gated consumers it drops, and when.

A stand-in writer holds the slots (the real gate is tests/segment/test_gate.py, the real
daemons tests/consumer/test_flow_control_e2e.py); time is passed in, so the timeout is
exact.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tradingd.daemon.config import ConfigInvalid, default_config, load_config
from tradingd.producer.flowcontrol import PID_CHECK_NS, GateSupervisor
from tradingd.segment import waiters
from tradingd.segment.waiters import GateSlot

RING, WINDOW = 4096, 1024
S = 1_000_000_000


class FakeWriter:
    def __init__(self) -> None:
        self.cursor = 100_000
        self.slots: dict[int, GateSlot] = {}

    def put(self, i: int, position: int, pid: int = 1000 + 1,
            state: int = waiters.GATE_ACTIVE) -> None:
        self.slots[i] = GateSlot(i, state, position, pid, 7)

    def gate_slots(self) -> list[GateSlot]:
        return [s for s in self.slots.values() if s.state != waiters.GATE_FREE]

    def gate_cas(self, slot: int, expected: int, new: int) -> bool:
        s = self.slots[slot]
        if s.state != expected:
            return False
        self.slots[slot] = GateSlot(slot, new, s.position, s.pid, s.start_ticks)
        return True


def supervisor(w: FakeWriter, dead: set[int], drops: list[str]) -> GateSupervisor:
    return GateSupervisor(w, lead=RING - WINDOW, ring_window=WINDOW, timeout_s=2.0,
                          on_drop=drops.append, alive=lambda pid, ticks: pid not in dead)


def test_a_consumer_holding_the_replay_without_progress_is_dropped_after_the_timeout(
        caplog: pytest.LogCaptureFixture) -> None:
    w, drops = FakeWriter(), []
    w.put(0, w.cursor - RING + WINDOW)  # at the ring's edge: it holds the replay
    w.put(1, w.cursor - 10)  # keeping up
    g = supervisor(w, set(), drops)
    assert g.check(0, held=True) == 2
    assert g.check(int(1.9 * S), held=True) == 2 and drops == []
    with caplog.at_level(logging.WARNING):
        assert g.check(2 * S, held=True) == 1
    assert drops == ["stalled"] and w.slots[0].state == waiters.GATE_DROPPED
    assert "dropped consumer PID 1001 (gate slot 0)" in caplog.text
    assert "no progress for 2.0 s" in caplog.text
    assert w.slots[1].state == waiters.GATE_ACTIVE


def test_progress_or_not_holding_resets_the_clock() -> None:
    w, drops = FakeWriter(), []
    edge = w.cursor - RING + WINDOW
    w.put(0, edge)
    g = supervisor(w, set(), drops)
    g.check(0, held=True)
    w.put(0, edge + 1)  # it moved
    g.check(int(1.5 * S), held=True)
    g.check(int(3.0 * S), held=False)  # the replay was not held: not its fault
    g.check(int(4.9 * S), held=True)
    assert drops == []
    g.check(int(5.0 * S), held=True)  # held without progress since 3.0 s: 2 s
    assert drops == ["stalled"]


def test_a_consumer_whose_pid_is_gone_is_freed_at_once() -> None:
    w, drops = FakeWriter(), []
    w.put(0, w.cursor, pid=4242)
    w.put(1, w.cursor, pid=4343, state=waiters.GATE_DROPPED)  # dropped earlier, then died
    g = supervisor(w, {4242, 4343}, drops)
    assert g.check(0, held=False) == 0
    assert drops == ["exited"]  # the dropped one was counted when it was dropped
    assert w.gate_slots() == []


def test_pids_are_checked_at_most_every_pid_check_interval() -> None:
    w, drops = FakeWriter(), []
    dead: set[int] = set()
    w.put(0, w.cursor, pid=4242)
    g = supervisor(w, dead, drops)
    g.check(0, held=False)
    dead.add(4242)
    g.check(PID_CHECK_NS - 1, held=False)
    assert drops == []
    g.check(PID_CHECK_NS, held=False)
    assert drops == ["exited"]


def test_a_slot_left_half_joined_by_a_killed_consumer_is_freed() -> None:
    w, drops = FakeWriter(), []
    w.put(0, 0, pid=0, state=waiters.GATE_CLAIMED)  # killed between claim and activation
    w.put(1, 0, pid=1001, state=waiters.GATE_CLAIMED)  # a live one, joining right now
    g = supervisor(w, set(), drops)
    g.check(0, held=False)
    assert w.slots[0].state == waiters.GATE_CLAIMED  # not on the first sighting
    g.check(PID_CHECK_NS, held=False)
    assert w.slots[0].state == waiters.GATE_FREE
    assert w.slots[1].state == waiters.GATE_CLAIMED and drops == []


def test_the_flow_control_keys(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("producer:\n  replay:\n    flow_control: slowest\n"
                    "    flow_control_timeout: 0.5\n    flow_control_wait_for: 2\n"
                    "consumer:\n  flow_control: false\n")
    cfg = load_config(str(path))
    r = cfg.producer.replay
    assert (r.flow_control, r.flow_control_timeout, r.flow_control_wait_for) == ("slowest", 0.5, 2)
    assert cfg.consumer.flow_control is False
    d = default_config()
    assert (d.producer.replay.flow_control, d.consumer.flow_control) == ("none", True)
    path.write_text("producer:\n  replay:\n    flow_control: fastest\n")
    with pytest.raises(ConfigInvalid) as info:
        load_config(str(path))
    assert "producer.replay.flow_control" in str(info.value) and ":3" in str(info.value)
