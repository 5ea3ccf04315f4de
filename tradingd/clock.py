"""Clocks: one interface, the real monotonic clock and a clock tests control.

Heartbeats and staleness are measured with CLOCK_MONOTONIC, which every process on the
machine shares, so a timestamp written by the producer is comparable with the consumer's
own reading. Wall-clock time is only for display.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """What time-dependent logic asks for: monotonic and wall-clock nanoseconds."""

    def monotonic_ns(self) -> int: ...

    def wall_ns(self) -> int: ...


class SystemClock:
    """The real clocks (CLOCK_MONOTONIC and CLOCK_REALTIME)."""

    monotonic_ns = staticmethod(time.monotonic_ns)
    wall_ns = staticmethod(time.time_ns)


class ManualClock:
    """A clock that only moves when told to, for tests of heartbeat and staleness logic."""

    def __init__(self, monotonic_ns: int = 1_000_000_000, wall_ns: int = 1_700_000_000 * 10**9):
        self._mono = monotonic_ns
        self._wall = wall_ns

    def monotonic_ns(self) -> int:
        return self._mono

    def wall_ns(self) -> int:
        return self._wall

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds``."""
        step = int(seconds * 1e9)
        self._mono += step
        self._wall += step


SYSTEM_CLOCK = SystemClock()
