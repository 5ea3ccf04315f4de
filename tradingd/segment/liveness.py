"""Is the producer behind a segment alive? Two independent signals, as Aeron does.

* its PID: alive if the process exists and (when the header has it) its start time in
  ``/proc/PID/stat`` matches, so a PID reused by an unrelated process does not count;
* its heartbeat: fresh if younger than a timeout derived from the producer's own interval.

The producer uses these to decide whether a leftover segment may be reclaimed, the
consumer to report "producer up", and the inspector's ``check`` and ``cleanup``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from tradingd.segment.layout import MAX_PRODUCER_PID, RUNNING_STATES

#: A heartbeat older than this many producer intervals means the producer is not beating.
DEFAULT_TIMEOUT_FACTOR = 5.0
#: Floor for the heartbeat timeout, so scheduling hiccups on a loaded box are not deaths.
MIN_TIMEOUT_NS = 500_000_000


def process_start_ticks(pid: int) -> int:
    """Field 22 of ``/proc/PID/stat`` (start time in clock ticks since boot); 0 if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = data[data.rfind(b")") + 2:].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return 0


def pid_alive(pid: int, start_ticks: int = 0) -> bool:
    """True if ``pid`` runs and, when ``start_ticks`` is given, is the same process."""
    if not 0 < pid <= MAX_PRODUCER_PID:  # os.kill would raise OverflowError beyond 2^31
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    if start_ticks:
        now = process_start_ticks(pid)
        if now and now != start_ticks:
            return False
        # a zombie has exited: do not count it as a live producer
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
            if data[data.rfind(b")") + 2:][:1] == b"Z":
                return False
        except OSError:
            return False
    return True


def heartbeat_timeout_ns(interval_ns: int, factor: float = DEFAULT_TIMEOUT_FACTOR) -> int:
    """How old a heartbeat may be before the producer counts as not beating."""
    return max(int(interval_ns * factor), MIN_TIMEOUT_NS)


@dataclass(frozen=True)
class Liveness:
    """The producer's state as seen from a header at one instant."""

    pid_alive: bool
    heartbeat_age_ns: int
    heartbeat_fresh: bool
    running_state: bool  # header.state is live or finished

    @property
    def alive(self) -> bool:
        """Owner alive: running state and either signal says so (the reclaim rule)."""
        return self.running_state and (self.heartbeat_fresh or self.pid_alive)

    @property
    def healthy(self) -> bool:
        """Running state, process alive and heartbeat fresh."""
        return self.running_state and self.heartbeat_fresh and self.pid_alive


def assess(header: dict[str, int], now_ns: int,
           factor: float = DEFAULT_TIMEOUT_FACTOR) -> Liveness:
    """Judge liveness from a header snapshot (``SegmentReader.header()``) at ``now_ns``."""
    age = now_ns - int(header["heartbeat_ns"])
    fresh = age <= heartbeat_timeout_ns(int(header["heartbeat_interval_ns"]), factor)
    return Liveness(
        pid_alive=pid_alive(int(header["producer_pid"]), int(header["producer_start_ticks"])),
        heartbeat_age_ns=age,
        heartbeat_fresh=fresh,
        running_state=int(header["state"]) in RUNNING_STATES,
    )
