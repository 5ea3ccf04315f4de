"""Flow control for fast replays: the producer's side of the gate (``replay.flow_control``).

In a market-data feed the producer never waits: a slow consumer is lapped and counts
what it lost. A backtest replay wants every record in every consumer, so with
``replay.flow_control: slowest`` the producer's writes go through the segment's gate
(:mod:`tradingd.segment.waiters`, ``SegmentWriter.publish_gated``): gated consumers
publish their read positions and the replay never overwrites a record one of them has
not read, like LMAX Disruptor gating sequences or Aeron's min flow control.

The C publish does the waiting; :class:`GateSupervisor` keeps a dead or stuck consumer
from holding the replay forever, from the main loop, between publishes:

* **exited**: the slot's PID is gone (or is another process now: start ticks differ):
  the slot is freed at once;
* **stalled**: the slot held the replay (its position at the ring's edge while a publish
  was cut short by the gate) without moving for ``flow_control_timeout``: it is marked
  dropped; the consumer notices, logs, and reads on in feed mode.

Each drop is logged and counted (``tradingd_producer_flow_control_drops_total``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tradingd.segment import waiters
from tradingd.segment.liveness import pid_alive
from tradingd.segment.waiters import GateSlot

log = logging.getLogger(__name__)

#: How often slot PIDs are checked for liveness (reading /proc/PID/stat each): ns.
PID_CHECK_NS = 200_000_000


class GatedWriter(Protocol):
    """What the supervisor needs of a :class:`~tradingd.segment.writer.SegmentWriter`."""

    @property
    def cursor(self) -> int: ...

    def gate_slots(self) -> list[GateSlot]: ...

    def gate_cas(self, slot: int, expected: int, new: int) -> bool: ...


@dataclass
class _Progress:
    position: int
    since_ns: int  # when the position last moved, or the slot last stopped holding


class GateSupervisor:
    """Drops exited and stalled consumers from the gate; counts the live ones.

    ``lead`` is how far the gated publish may run ahead of the slowest consumer
    (``SegmentWriter.gate_lead``): a slot whose consumer is more than ``lead - window``
    records behind the cursor is what holds the replay. ``on_drop(reason)`` counts a drop
    (the metric); ``alive(pid, start_ticks)`` is injectable for tests.
    """

    def __init__(self, writer: GatedWriter, *, lead: int, ring_window: int,
                 timeout_s: float, on_drop: Callable[[str], None] = lambda reason: None,
                 alive: Callable[[int, int], bool] = pid_alive) -> None:
        self._writer = writer
        self._hold = lead - 2 * ring_window
        self._timeout_ns = int(timeout_s * 1e9)
        self._on_drop = on_drop
        self._alive = alive
        self._progress: dict[int, _Progress] = {}
        self._claimed: set[int] = set()  # slots seen half-joined at the last PID check
        self._next_pid_check = 0
        self.consumers = 0  # active gated consumers at the last check
        self.drops = {"exited": 0, "stalled": 0}

    def check(self, now_ns: int, held: bool) -> int:
        """One look at the slots; ``held``: the last publish was cut short by the gate.

        Returns the number of active gated consumers.
        """
        writer = self._writer
        cursor = writer.cursor
        pid_check = now_ns >= self._next_pid_check
        if pid_check:
            self._next_pid_check = now_ns + PID_CHECK_NS
        active = 0
        seen = set()
        claimed = set()
        for slot in writer.gate_slots():
            seen.add(slot.index)
            if slot.state == waiters.GATE_CLAIMED:  # a consumer between its two stores...
                if pid_check:
                    # ...or killed there: still half-joined one check later, PID unset or
                    # gone: free the slot (else it is lost until the producer restarts)
                    if slot.index in self._claimed and not (
                            slot.pid and self._alive(slot.pid, slot.start_ticks)):
                        writer.gate_cas(slot.index, waiters.GATE_CLAIMED, waiters.GATE_FREE)
                    else:
                        claimed.add(slot.index)
                continue
            if pid_check and slot.state in (waiters.GATE_ACTIVE, waiters.GATE_DROPPED) \
                    and not self._alive(slot.pid, slot.start_ticks):
                if writer.gate_cas(slot.index, slot.state, waiters.GATE_FREE) \
                        and slot.state == waiters.GATE_ACTIVE:
                    self._drop("exited", slot, cursor, "exited (PID gone)")
                continue
            if slot.state != waiters.GATE_ACTIVE:
                continue
            active += 1
            prog = self._progress.get(slot.index)
            holding = held and cursor - slot.position > self._hold
            if prog is None or prog.position != slot.position or not holding:
                self._progress[slot.index] = _Progress(slot.position, now_ns)
                continue
            if now_ns - prog.since_ns >= self._timeout_ns and writer.gate_cas(
                    slot.index, waiters.GATE_ACTIVE, waiters.GATE_DROPPED):
                active -= 1
                self._drop("stalled", slot, cursor,
                           f"made no progress for {(now_ns - prog.since_ns) / 1e9:.1f} s "
                           f"while holding the replay (replay.flow_control_timeout)")
        for index in list(self._progress):
            if index not in seen:
                del self._progress[index]
        if pid_check:
            self._claimed = claimed
        self.consumers = active
        return active

    def _drop(self, reason: str, slot: GateSlot, cursor: int, why: str) -> None:
        self.drops[reason] += 1
        self._progress.pop(slot.index, None)
        self._on_drop(reason)
        log.warning("flow control: dropped consumer PID %d (gate slot %d) from the gate: it "
                    "%s; at position %d, %d records behind the cursor; the replay goes on "
                    "without waiting for it", slot.pid, slot.index, why, slot.position,
                    cursor - slot.position)


__all__ = ["PID_CHECK_NS", "GateSupervisor", "GatedWriter"]
