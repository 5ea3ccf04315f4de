"""Attaching to the producer's segment and staying attached through the producer's life.

A :class:`Follower` is either *waiting* (no usable segment: it retries every
``attach_retry_interval``) or *attached* (a read-only mapping and a ring subscription).
While attached it checks, every ``check_interval``, what an operator would check by hand:

* does the name still point at the file we mapped (``name_status()``)? ``"replaced"``: a
  restarted producer created a new segment -> re-attach to it at once; ``"gone"``: the
  producer removed it -> back to waiting;
* the header's state: ``stopped`` -> back to waiting (the producer is shutting down);
* the header's generation (a new one counts as a generation change).

Before letting go of a segment it drains the records still in the ring, so a clean stop
loses nothing. The consumer never writes to a segment and never unlinks one.

Two health signals are kept apart, as iceoryx2 does:

* **producer alive**: the heartbeat is younger than ``heartbeat_timeout_factor`` times
  the producer's own interval (from the header;
  :func:`tradingd.segment.liveness.heartbeat_timeout_ns`)
  and the state is live or finished. The PID is not consulted: a consumer in another
  user or PID namespace (systemd's ``ProtectProc=invisible``) cannot see it;
* **data fresh**: a record was received within ``data_stale_after`` seconds.

Each is logged on its transitions only. Waiting is logged the first time and then on
changes of the reason (no segment -> initialising -> foreign ...), never every retry.

What an operator wants from a segment the consumer cannot use (foreign file, another
layout version, corrupt header, no permission): the message in the log (error, once) and
in STATUS=, and the consumer still waiting, so that the fix (an upgraded or restarted
producer, a corrected group) is picked up without restarting the consumer. Exiting 76 would
put the consumer in RestartPreventExitStatus= limbo until someone restarts it by hand,
even after the producer side is fixed. :attr:`Follower.problem` exposes the error for
STATUS= and the metrics.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tradingd.clock import SYSTEM_CLOCK, Clock
from tradingd.daemon.logs import OnceLogger
from tradingd.errors import (
    SegmentError,
    SegmentNotFound,
    SegmentNotReady,
    SegmentStopped,
    TradingdError,
)
from tradingd.segment import layout as L
from tradingd.segment import liveness, shm, waiters
from tradingd.segment.model import Record
from tradingd.segment.reader import RingSubscription, SegmentReader

log = logging.getLogger(__name__)

#: How often an attached follower checks the name, state, generation and health (seconds).
DEFAULT_CHECK_INTERVAL = 0.05
#: How often the header's generation word is compared with the attached one (ns).
_GENERATION_CHECK_NS = 1_000_000_000
#: Errors that mean "not there yet / going away": waiting is normal, logged at info.
_TRANSIENT = (SegmentNotFound, SegmentNotReady, SegmentStopped)

#: With at most this many records waiting, :meth:`Follower.poll` reads them one by one
#: (``poll_one``, ~0.1 us each in C) instead of one numpy copy (~10 us fixed cost).
SMALL_POLL = 8

Sink = Callable[[np.ndarray | list[Record], int], None]
"""Receives the records read and the sequence number of the first: a ``RECORD_DTYPE``
array (``poll_batch``) or, for a few records, a list of tuples in Record order."""

BatchReader = Callable[[RingSubscription, int], int]
"""Reads AND processes up to ``max_records`` records of a subscription itself (the
consumer's C path: ``Cursor.read_analyse``, no copy out to Python); returns how many."""


@dataclass(frozen=True)
class Health:
    """The two health signals at one instant."""

    attached: bool
    producer_alive: bool
    heartbeat_age_ns: int | None  # None when not attached
    heartbeat_timeout_ns: int | None
    data_fresh: bool
    data_age_ns: int | None  # None until the first record


class Follower:
    """Attach to segment ``name``, follow its producer, poll its ring into ``sink``.

    Times come from ``clock`` (a :class:`~tradingd.clock.ManualClock` in tests); the
    heartbeat the producer writes is CLOCK_MONOTONIC, so a real follower needs the real
    clock. Call :meth:`tick` every main-loop turn (cheap unless a check is due) and
    :meth:`poll` to read records. :attr:`lock` is held while the reader is swapped: hold
    it to read segment state from another thread (the metrics scrape).
    """

    def __init__(self, name: str, sink: Sink, *, clock: Clock = SYSTEM_CLOCK,
                 attach_retry_interval: float = 0.25, heartbeat_timeout_factor: float = 5.0,
                 data_stale_after: float = 5.0,
                 check_interval: float = DEFAULT_CHECK_INTERVAL,
                 on_attach: Callable[[SegmentReader, bool], None] | None = None,
                 logger: logging.Logger = log, owner: int | None = shm.OWNER_SELF,
                 batch_reader: BatchReader | None = None, join_gate: bool = False) -> None:
        self.name = name
        self._batch_reader = batch_reader
        self._join_gate = join_gate
        #: our slot in the producer's flow-control gate (None: not gated)
        self.gate_slot: int | None = None
        self.gate_drops = 0  # times the producer dropped us from its gate
        self._owner = owner  # uid the segment file must belong to (segment.owner)
        self.path = f"/dev/shm/{name}"
        self._sink = sink
        self._clock = clock
        self._retry_ns = int(attach_retry_interval * 1e9)
        self._factor = heartbeat_timeout_factor
        self._stale_ns = int(data_stale_after * 1e9)
        self._check_ns = int(check_interval * 1e9)
        self._on_attach = on_attach
        self._log = logger
        self._once = OnceLogger(logger)
        self.lock = threading.RLock()
        self.reader: SegmentReader | None = None
        self.subscription: RingSubscription | None = None
        self.generation = 0  # of the attached segment; 0 when none yet
        self.last_generation = 0  # of the last segment attached (kept while waiting)
        self.generation_changes = 0
        self.attaches = 0
        self.consumed = 0
        self._lost_before = 0  # records lost in earlier subscriptions
        self._rejected_before = 0
        self.attach_cursor = 0  # records published before the current attach (backlog)
        self.skipped = 0  # records already overwritten when we attached (never readable)
        self.problem: TradingdError | None = None  # why we are waiting (None: attached)
        self.last_data_ns: int | None = None  # consumer's clock, last record received
        self.heartbeat_interval_ns = 0
        self.producer_alive = False
        self.data_fresh = False
        self._next_attempt_ns = 0  # attempt at once
        self._next_check_ns = 0
        self._next_generation_check_ns = 0

    # ------------------------------------------------------------------ state
    @property
    def attached(self) -> bool:
        return self.reader is not None

    @property
    def lost(self) -> int:
        """Records lost to lapping, over every subscription so far."""
        sub = self.subscription
        return self._lost_before + (sub.lost if sub is not None else 0)

    @property
    def rejected(self) -> int:
        """Records that failed the sequence stamp check (protocol violations), in total."""
        sub = self.subscription
        return self._rejected_before + (sub.rejected if sub is not None else 0)

    def lag(self) -> int:
        """Records published but not consumed yet (0 when not attached)."""
        sub = self.subscription
        return max(0, sub.available) if sub is not None else 0

    def waiting_text(self) -> str:
        """Why we are waiting, for STATUS= (e.g. ``waiting for segment /dev/shm/X``)."""
        p = self.problem
        if p is None or isinstance(p, SegmentNotFound):
            return f"waiting for segment {self.path}"
        if isinstance(p, SegmentError):
            return f"waiting: {self.path}: {p.detail}"
        return f"waiting: {p}"

    def health(self, now_ns: int | None = None) -> Health:
        """Both health signals now (computed fresh: for the metrics scrape and reports)."""
        now = self._clock.monotonic_ns() if now_ns is None else now_ns
        with self.lock:
            reader = self.reader
            hb_age = timeout = None
            alive = False
            if reader is not None:
                hb_age = now - reader.heartbeat_ns
                timeout = liveness.heartbeat_timeout_ns(self.heartbeat_interval_ns,
                                                        self._factor)
                alive = reader.state in L.RUNNING_STATES and hb_age <= timeout
        data_age = None if self.last_data_ns is None else now - self.last_data_ns
        return Health(
            attached=reader is not None, producer_alive=alive, heartbeat_age_ns=hb_age,
            heartbeat_timeout_ns=timeout,
            data_fresh=data_age is not None and data_age <= self._stale_ns,
            data_age_ns=data_age)

    # ------------------------------------------------------------------ driving
    def tick(self, now_ns: int | None = None, *, force: bool = False) -> None:
        """Housekeeping: attach when waiting and due; check the segment when attached.

        ``force`` checks an attached segment now (the reader saw the state change).
        """
        now = self._clock.monotonic_ns() if now_ns is None else now_ns
        if force:
            self._next_check_ns = now
        if self.reader is None:
            if now >= self._next_attempt_ns:
                self._next_attempt_ns = now + self._retry_ns
                self._try_attach(now)
            self._update_health(now)
            return
        if now < self._next_check_ns:
            return
        self._next_check_ns = now + self._check_ns
        self._check_segment(now)
        self._update_health(now)

    def seconds_until_due(self, now_ns: int | None = None) -> float:
        """How long the main loop may sleep before :meth:`tick` has work (>= 0)."""
        now = self._clock.monotonic_ns() if now_ns is None else now_ns
        due = self._next_check_ns if self.reader is not None else self._next_attempt_ns
        return max(0.0, (due - now) / 1e9)

    def poll(self, max_records: int = 4096) -> int:
        """Read up to ``max_records`` new records into the sink; return how many."""
        sub = self.subscription
        if sub is None:
            return 0
        available = sub.available
        if available <= 0:
            return 0
        if available > SMALL_POLL and self._batch_reader is not None \
                and sub.read_analyse is not None:
            n = self._batch_reader(sub, max_records)
            if n:
                self.consumed += n
                self.last_data_ns = self._clock.monotonic_ns()
            return n
        if available <= SMALL_POLL:
            few: list[Record] = []
            for _ in range(available):
                rec = sub.poll_one()
                if rec is None:
                    break
                few.append(rec)
            first = few[0][0] if few else 0
            records: np.ndarray | list[Record] = few
        else:
            records = sub.poll_batch(max_records)
            first = sub.position - len(records)
        n = len(records)
        if n:
            self.consumed += n
            self.last_data_ns = self._clock.monotonic_ns()
            self._sink(records, first)
        return n

    def close(self) -> None:
        """Let go of the segment (no drain: the daemon is stopping)."""
        self._detach(drain=False)

    # ------------------------------------------------------------------ attaching
    def _try_attach(self, now: int) -> None:
        try:
            reader = SegmentReader.attach(self.name, owner=self._owner)
        except TradingdError as exc:
            self._waiting(exc)
            return
        except OSError as exc:  # e.g. mmap failing: report, keep waiting
            self._waiting(SegmentError(self.path, f"cannot map: {exc.strerror or exc}"))
            return
        self._attached(reader, now)

    def _waiting(self, exc: TradingdError) -> None:
        self.problem = exc
        key = (type(exc).__name__, getattr(exc, "detail", str(exc)))
        if isinstance(exc, _TRANSIENT):
            self._once.transition("attach", key, logging.INFO, "waiting for segment %s: %s; "
                                  "retrying every %.2f s", self.path,
                                  getattr(exc, "detail", exc), self._retry_ns / 1e9)
        else:
            self._once.transition("attach", key, logging.ERROR,
                                  "cannot use %s: %s; waiting for a usable segment (retrying "
                                  "every %.2f s)", self.path, exc, self._retry_ns / 1e9)

    def _attached(self, reader: SegmentReader, now: int) -> None:
        header = reader.header()
        new_generation = reader.generation != self.last_generation
        changed = new_generation and self.last_generation != 0
        with self.lock:
            self.reader = reader
            self.subscription = reader.subscribe("oldest")
            self.gate_slot = (reader.join_gate(self.subscription)
                              if self._join_gate and reader.gate_on else None)
            self.attach_cursor = reader.cursor
            self.skipped += self.subscription.position
            self.generation = reader.generation
            self.heartbeat_interval_ns = header["heartbeat_interval_ns"]
        if changed:
            self.generation_changes += 1
        self.last_generation = reader.generation
        self.attaches += 1
        self.problem = None
        self._next_check_ns = now + self._check_ns
        geo = reader.geometry
        self._once.transition(
            "attach", ("attached", reader.generation), logging.INFO,
            "attached to %s: generation %016x%s, producer pid %d, %d symbols, ring %d records, "
            "state %s, cursor %d", self.path, reader.generation,
            " (new generation: producer restarted)" if changed else "",
            header["producer_pid"], header["symbol_count"], geo.ring_capacity,
            L.STATE_NAMES.get(header["state"], "?"), self.attach_cursor)
        if self._join_gate and reader.gate_on:
            if self.gate_slot is not None:
                self._log.info("joined the producer's flow-control gate (slot %d): the replay "
                               "waits for this consumer, nothing is lost", self.gate_slot)
            else:
                self._log.warning("the producer runs flow control but this consumer could "
                                  "not join its gate (all slots taken, or no C fast path): "
                                  "reading without it, records may be lost")
        if self._on_attach is not None:
            self._on_attach(reader, new_generation)

    def _check_gate(self) -> None:
        """Notice that the producer dropped us from its gate (we stalled): log, read on."""
        reader, sub, slot = self.reader, self.subscription, self.gate_slot
        if reader is None or sub is None or slot is None:
            return
        if reader.gate_slot_state(slot) != waiters.GATE_DROPPED:
            return
        self.gate_drops += 1
        self._log.warning("the producer dropped this consumer from its flow-control gate "
                          "(it made no progress for longer than replay.flow_control_timeout);"
                          " reading on without flow control: records may now be lost")
        reader.leave_gate(sub, slot)
        self.gate_slot = None

    def _check_segment(self, now: int) -> None:
        reader = self.reader
        assert reader is not None
        self._check_gate()
        status = reader.name_status()
        state = reader.state
        if status == "same" and state != L.STATE_STOPPED:
            # A producer never reuses a file (a restart makes a new one: "replaced"), so an
            # in-place change is a foreign writer's doing; header() costs ~40 us: 1/s.
            if now < self._next_generation_check_ns:
                return
            self._next_generation_check_ns = now + _GENERATION_CHECK_NS
            generation = reader.header()["generation"]
            if generation == self.generation:
                return
            why = f"generation changed to {generation:016x} in place"
        elif status == "same":
            why = "the producer stopped (state stopped)"
        elif status == "gone":
            why = "the segment was removed"
        else:
            why = "the name now points at a new segment (producer restarted)"
        self._log.info("leaving %s generation %016x: %s", self.path, self.generation, why)
        self._detach(drain=True)
        # a replaced segment is attached at once; otherwise wait for the next one
        self._next_attempt_ns = now
        self._try_attach(now)
        if self.reader is None:
            self._next_attempt_ns = now + self._retry_ns

    def _detach(self, *, drain: bool) -> None:
        sub = self.subscription
        if sub is not None and drain and self.reader is not None:
            # bounded: a writer still publishing into an orphaned segment cannot hold us
            budget = 2 * self.reader.geometry.ring_capacity
            while budget > 0 and (n := self.poll()):
                budget -= n
        with self.lock:
            if sub is not None:
                self._lost_before += sub.lost
                self._rejected_before += sub.rejected
                if self.reader is not None and self.gate_slot is not None:
                    self.reader.leave_gate(sub, self.gate_slot)
            self.gate_slot = None
            reader, self.reader, self.subscription = self.reader, None, None
            self.generation = 0
            if reader is not None:
                reader.close()
        self.problem = SegmentNotFound(self.path, "not attached")

    # ------------------------------------------------------------------ health
    def _update_health(self, now: int) -> None:
        h = self.health(now)
        if h.producer_alive != self.producer_alive or self._once.state("producer") is None:
            self.producer_alive = h.producer_alive
            if h.producer_alive:
                self._once.transition("producer", "up", logging.INFO,
                                      "producer up: heartbeat %.3f s old (timeout %.3f s)",
                                      (h.heartbeat_age_ns or 0) / 1e9,
                                      (h.heartbeat_timeout_ns or 0) / 1e9)
            elif h.attached:
                self._once.transition("producer", "down", logging.WARNING,
                                      "producer down: heartbeat %.3f s old (timeout %.3f s), "
                                      "state %s", (h.heartbeat_age_ns or 0) / 1e9,
                                      (h.heartbeat_timeout_ns or 0) / 1e9,
                                      L.STATE_NAMES.get(self._state(), "?"))
            else:
                self._once.transition("producer", "down", logging.WARNING,
                                      "producer down: not attached to a segment")
        if h.data_fresh != self.data_fresh or self._once.state("data") is None:
            self.data_fresh = h.data_fresh
            if h.data_fresh:
                self._once.transition("data", "fresh", logging.INFO, "data fresh: records "
                                      "arriving")
            elif h.data_age_ns is None:
                self._once.transition("data", "stale", logging.INFO,
                                      "no data received yet")
            elif self._state() == L.STATE_FINISHED:  # announced: nothing more is coming
                self._once.transition("data", "stale", logging.INFO,
                                      "data stale: no record for %.1f s (limit %.1f s); the "
                                      "producer has finished its replay",
                                      h.data_age_ns / 1e9, self._stale_ns / 1e9)
            else:
                self._once.transition("data", "stale", logging.WARNING,
                                      "data stale: no record for %.1f s (limit %.1f s)",
                                      h.data_age_ns / 1e9, self._stale_ns / 1e9)

    def _state(self) -> int:
        reader = self.reader
        return reader.state if reader is not None else L.STATE_EMPTY


__all__ = ["DEFAULT_CHECK_INTERVAL", "SMALL_POLL", "BatchReader", "Follower", "Health", "Sink"]
