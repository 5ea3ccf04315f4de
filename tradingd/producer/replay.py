"""Replay: every symbol's bars merged into one time-ordered stream, published into a segment.

Two parts, both free of daemon plumbing:

* :func:`build_timeline` merges the per-symbol bar arrays (from :mod:`tradingd.producer.loader`)
  ONCE into a single ``RECORD_DTYPE`` array ordered by event time. The sort is stable and
  the inputs are concatenated in configuration order, so records with equal timestamps
  keep a fixed order (by symbol, then file order): two runs publish identical streams.
* :class:`Replayer` walks that array and hands slices of it to a sink's ``publish_stream``
  (a :class:`tradingd.segment.writer.SegmentWriter`: the C fast path copies the slice
  straight into the ring, shifting event times by the loop's offset, so publishing is a
  copy plus the stamps; sinks without it get ``publish_batch`` of a shifted copy).
  ``fast`` publishes one batch of ``fast_batch_size`` records (65,536: large, so the
  per-call cost vanishes) per :meth:`Replayer.step`; ``paced`` publishes the records
  whose time has come, following the data's own timestamps times ``speed`` (data seconds
  per wall second). A paced batch holds every record due by now (at most ``batch_size``),
  found with one binary search, so pacing stays accurate without a call per record. At
  the end it either loops (timestamps keep increasing: each loop is shifted by the data's
  span plus one bar) or stops (segment state ``finished``; the producer keeps
  heartbeating).

Time comes from an injected clock, so pacing, looping and rates are unit-tested with
:class:`tradingd.clock.ManualClock`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from tradingd.clock import SYSTEM_CLOCK, Clock
from tradingd.segment import layout as L

MODES = ("fast", "paced")
AT_END = ("loop", "stop")
FLOW_CONTROL = ("none", "slowest")


class Sink(Protocol):
    """Where records go: the part of :class:`~tradingd.segment.writer.SegmentWriter` replay uses."""

    def publish_batch(self, records: np.ndarray) -> int: ...

    # optional: ``publish_stream(records, start, stop, event_shift_ns) -> int`` (used when
    # the sink has it: SegmentWriter)

    def set_counter(self, field: str, value: int) -> None: ...

    def set_state(self, state: int) -> None: ...


@dataclass(frozen=True)
class Timeline:
    """All symbols' records in publishing order, built once, plus what looping needs.

    ``records`` is ``RECORD_DTYPE`` with ``symbol_id``, ``event_ns`` and OHLCV filled
    (``seq_lo`` and ``publish_ns`` are the writer's). ``loop_shift_ns`` is added to every
    timestamp on each further loop: the data's span plus one bar, so the first record of
    loop k+1 comes one bar after the last record of loop k.
    """

    records: np.ndarray
    per_symbol: tuple[int, ...]  # records of each symbol id
    loop_shift_ns: int

    @property
    def total(self) -> int:
        return len(self.records)

    @property
    def span_ns(self) -> int:
        if not len(self.records):
            return 0
        ev = self.records["event_ns"]
        return int(ev[-1]) - int(ev[0])


def bar_interval_ns(event_ns: np.ndarray) -> int:
    """The nominal spacing of a symbol's bars: the median positive gap (0 if unknown).

    The median ignores weekends and holidays (daily stock bars: 1 day, not 1.4).
    """
    if len(event_ns) < 2:
        return 0
    gaps = np.diff(event_ns.astype(np.int64, copy=False))
    gaps = gaps[gaps > 0]
    return int(np.median(gaps)) if len(gaps) else 0


ALIGNS = ("none", "start")


def build_timeline(bars: Sequence[np.ndarray], align: str = "none") -> Timeline:
    """Merge per-symbol bars (``event_ns open high low close volume`` fields) by event time.

    ``bars[i]`` becomes symbol id ``i``. Equal timestamps keep configuration order, then
    file order (stable sort of the concatenation). Memory: one ``RECORD_DTYPE`` array
    (64 bytes a record) plus a transient index array.

    ``align="start"`` shifts each symbol's timestamps by a constant so every symbol's first
    bar falls on the earliest first bar: all symbols tick from the start of the replay
    (the bundled files cover different decades). ``"none"`` keeps the real history.
    """
    if align not in ALIGNS:
        raise ValueError(f"replay align must be one of {ALIGNS}, not {align!r}")
    counts = tuple(len(b) for b in bars)
    total = sum(counts)
    merged = np.zeros(total, L.RECORD_DTYPE)
    firsts = [int(b["event_ns"][0]) for b in bars if len(b)]
    origin = min(firsts) if firsts else 0
    pos = 0
    for symbol_id, b in enumerate(bars):
        n = len(b)
        part = merged[pos:pos + n]
        part["symbol_id"] = symbol_id
        for name in ("event_ns", "open", "high", "low", "close", "volume"):
            part[name] = b[name]
        if align == "start" and n:
            part["event_ns"] += origin - int(b["event_ns"][0])
        pos += n
    order = np.argsort(merged["event_ns"], kind="stable")
    records = merged[order]
    del merged, order
    intervals = [bar_interval_ns(b["event_ns"]) for b in bars if len(b)]
    positive = [i for i in intervals if i > 0]
    one_bar = min(positive) if positive else 1
    span = int(records["event_ns"][-1]) - int(records["event_ns"][0]) if total else 0
    return Timeline(records=records, per_symbol=counts, loop_shift_ns=span + one_bar)


@dataclass(frozen=True)
class ReplaySettings:
    """How to replay (``producer.replay`` in the config)."""

    mode: str = "paced"  # fast | paced
    speed: float = 86400.0  # data seconds per wall-clock second (paced)
    at_end: str = "loop"  # loop | stop
    batch_size: int = 256  # paced: most records per publish
    fast_batch_size: int = 65536  # fast: records per publish (large: the C copy dominates)
    flow_control: str = "none"  # slowest: publish through the sink's gate (publish_gated)
    gate_max_wait: float = 0.02  # s a gated publish may wait before returning to the loop

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"replay mode must be one of {MODES}, not {self.mode!r}")
        if self.at_end not in AT_END:
            raise ValueError(f"replay at_end must be one of {AT_END}, not {self.at_end!r}")
        if not self.speed > 0:
            raise ValueError(f"replay speed must be > 0, not {self.speed}")
        if self.batch_size < 1:
            raise ValueError(f"replay batch size must be >= 1, not {self.batch_size}")
        if self.fast_batch_size < 1:
            raise ValueError(f"replay fast batch size must be >= 1, not {self.fast_batch_size}")
        if self.flow_control not in FLOW_CONTROL:
            raise ValueError(f"replay flow_control must be one of {FLOW_CONTROL}, not "
                             f"{self.flow_control!r}")

    @property
    def step_records(self) -> int:
        """Most records one step publishes in this mode."""
        return self.fast_batch_size if self.mode == "fast" else self.batch_size


@dataclass(frozen=True)
class StepResult:
    """What one :meth:`Replayer.step` did.

    ``next_due_ns`` (paced, nothing left due now) is the monotonic time the next record
    is due: the caller may sleep until then. None means "call again at once" (more is due,
    or fast mode) or, when ``finished``, that nothing will ever be due again.
    """

    published: int
    duration_ns: int
    finished: bool
    next_due_ns: int | None
    gated: bool = False  # fewer published than due: the flow-control gate stayed shut


@dataclass(frozen=True)
class Progress:
    """Replay figures for STATUS lines and metrics."""

    published: int  # records published since start (all loops)
    position: int  # records published in the current loop
    total: int  # records in the data set (one loop)
    loops: int  # completed loops (header replay_loops)
    rate: float  # records per second, recently
    finished: bool

    def status_text(self) -> str:
        """``replaying 1.2M/3.4M ticks at 12k/s`` (``, loop 3`` once it has looped)."""
        if self.finished:
            return (f"replay finished: {human(self.published)} ticks published; "
                    f"heartbeating")
        text = (f"replaying {human(self.position)}/{human(self.total)} ticks at "
                f"{human(self.rate)}/s")
        return f"{text}, loop {self.loops + 1}" if self.loops else text


def human(n: float) -> str:
    """A count the way an operator reads it: 950, 12k, 1.2M (3 significant figures at most)."""
    n = float(n)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            v = n / scale
            return (f"{v:.1f}".rstrip("0").rstrip(".") if v < 100 else f"{v:.0f}") + unit
    return f"{n:.0f}"


class RateMeter:
    """Records per second over a sliding window (default 2 s), from samples 0.1 s apart.

    :meth:`add` keeps at most one sample per ``window/20``, so a loop that calls it
    thousands of times a second stores a couple of dozen samples, not thousands.
    """

    def __init__(self, window_s: float = 2.0) -> None:
        self._window_ns = int(window_s * 1e9)
        self._granularity_ns = self._window_ns // 20
        self._samples: deque[tuple[int, int]] = deque()

    def add(self, now_ns: int, count: int) -> None:
        """Note that ``count`` records had been published by ``now_ns``."""
        s = self._samples
        if s and now_ns - s[-1][0] < self._granularity_ns:
            return
        s.append((now_ns, count))
        while len(s) > 1 and now_ns - s[1][0] >= self._window_ns:
            s.popleft()

    def rate(self, now_ns: int, count: int) -> float:
        """The rate up to ``now_ns`` with ``count`` published (not stored: a pause decays it)."""
        s = self._samples
        if not s:
            return 0.0
        t0, c0 = s[0]
        for t, c in s:  # baseline: the newest sample at least a window old (or the first)
            if now_ns - t < self._window_ns:
                break
            t0, c0 = t, c
        if now_ns <= t0:
            return 0.0
        return (count - c0) * 1e9 / (now_ns - t0)


_INT64_MAX = int(np.iinfo(np.int64).max)


class Replayer:
    """Publishes a :class:`Timeline` into a :class:`Sink`; call :meth:`step` from the main loop.

    Single-threaded: the main loop steps it. The metrics thread only reads plain counters
    (:attr:`published`, :attr:`loops`, :attr:`position`, :attr:`published_by_symbol`),
    which are consistent enough for a scrape.

    Event times keep increasing across loops: loop k is shifted by k x
    ``timeline.loop_shift_ns``. int64 nanoseconds end in the year 2262, so a long data set
    can only be shifted a few times (45 years of AAPL: about 5). After the last loop that
    fits, the shift starts again from 0 (:attr:`time_wraps` counts it, and a warning is
    logged by the producer): timestamps jump back once, but the stream keeps flowing.
    """

    def __init__(self, timeline: Timeline, sink: Sink, settings: ReplaySettings, *,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.timeline = timeline
        self.settings = settings
        self._sink = sink
        self._clock = clock
        self._records = timeline.records
        self._event = timeline.records["event_ns"]
        total = timeline.total
        self._first_ns = int(self._event[0]) if total else 0
        self._last_ns = int(self._event[-1]) if total else 0
        self._shift = max(1, timeline.loop_shift_ns)
        #: shifted copies of the data that fit below the int64 limit (>= 1)
        self.shifts_that_fit = max(1, (_INT64_MAX - self._last_ns) // self._shift + 1)
        self._records = np.ascontiguousarray(self._records)
        # the sink's C stream path (SegmentWriter): no copy, no shift in Python
        self._stream = getattr(sink, "publish_stream", None)
        # flow control: the sink's gated stream path (never laps a gated consumer)
        self._gated = (getattr(sink, "publish_gated", None)
                       if settings.flow_control == "slowest" else None)
        # contiguous symbol ids (4 bytes a record): published_by_symbol's bincount reads
        # them, not the 64-byte records; a whole loop adds the per-symbol totals instead
        self._symbols = np.ascontiguousarray(self._records["symbol_id"])
        self._per_symbol = np.asarray(timeline.per_symbol, np.int64)
        self._scratch = np.empty(0, L.RECORD_DTYPE)
        self.position = 0  # index of the next record in the current loop
        self.loops = 0  # completed loops (header replay_loops)
        self.published = 0
        self.published_by_symbol = np.zeros(len(timeline.per_symbol), np.int64)
        self.finished = False
        self._start_ns: int | None = None  # monotonic time the first record was due
        self._rate = RateMeter()

    @property
    def total(self) -> int:
        """Records in one loop of the data."""
        return self.timeline.total

    @property
    def time_wraps(self) -> int:
        """Times the loop shift started again from 0 (int64 nanoseconds ran out)."""
        return self.loops // self.shifts_that_fit

    @property
    def offset_ns(self) -> int:
        """Added to the data's timestamps in the current loop."""
        return (self.loops % self.shifts_that_fit) * self._shift

    # ------------------------------------------------------------------ pacing
    def _due_index(self, now_ns: int) -> int:
        """Paced: how many records of the current loop are due at ``now_ns``."""
        assert self._start_ns is not None
        elapsed_data = int((now_ns - self._start_ns) * self.settings.speed)
        # the latest due timestamp, in the current loop's unshifted times (Python ints:
        # no overflow); +1 ns absorbs float rounding against due_ns()'s ceiling
        limit = self._first_ns + elapsed_data + 1 - self.loops * self._shift
        if limit >= self._last_ns:
            return self.timeline.total
        if limit < self._first_ns:
            return 0
        return int(np.searchsorted(self._event, limit, side="right"))

    def due_ns(self, index: int) -> int:
        """Monotonic time at which record ``index`` of the current loop is due (paced)."""
        assert self._start_ns is not None
        data_offset = int(self._event[index]) - self._first_ns + self.loops * self._shift
        return self._start_ns + math.ceil(data_offset / self.settings.speed)

    # ------------------------------------------------------------------ stepping
    def start(self, now_ns: int | None = None) -> None:
        """Anchor the pacing: the first record is due at ``now_ns`` (default: the clock)."""
        if self._start_ns is None:
            self._start_ns = self._clock.monotonic_ns() if now_ns is None else now_ns
            self._rate.add(self._start_ns, 0)

    def step(self, now_ns: int | None = None) -> StepResult:
        """Publish at most one batch of the records that are due; handle the end of data."""
        now = self._clock.monotonic_ns() if now_ns is None else now_ns
        if self._start_ns is None:
            self.start(now)
        if self.finished:
            return StepResult(0, 0, True, None)
        total = self.timeline.total
        if total == 0:
            return self._end_of_data()
        end = min(self.position + self.settings.step_records, total)
        if self.settings.mode == "paced":
            due = self._due_index(now)
            if due <= self.position:
                return StepResult(0, 0, False, max(self.due_ns(self.position), now + 1))
            end = min(end, due)
        t0 = self._clock.monotonic_ns()
        n = self._publish(self.position, end)
        duration = self._clock.monotonic_ns() - t0
        gated = self.position + n < end
        end = self.position + n
        self.position = end
        self.published += n
        self._rate.add(now, self.published)
        if end == total:
            return StepResult(n, duration, self._end_of_data().finished, None)
        return StepResult(n, duration, False, None, gated)

    def _publish(self, lo: int, hi: int) -> int:
        """Publish records [lo, hi) of the current loop; how many were (fewer: gated)."""
        offset = self.offset_ns
        if self._gated is not None:
            hi = lo + int(self._gated(self._records, lo, hi, offset,
                                      self.settings.gate_max_wait))
        elif self._stream is not None:
            self._stream(self._records, lo, hi, offset)
        else:
            chunk = self._records[lo:hi]
            if offset:
                if len(self._scratch) < hi - lo:
                    self._scratch = np.empty(hi - lo, L.RECORD_DTYPE)
                out = self._scratch[:hi - lo]
                out[...] = chunk
                out["event_ns"] += offset
                chunk = out
            self._sink.publish_batch(chunk)
        if lo == 0 and hi == self.timeline.total:
            self.published_by_symbol += self._per_symbol
        elif hi > lo:
            self.published_by_symbol += np.bincount(self._symbols[lo:hi],
                                                    minlength=len(self.published_by_symbol))
        return hi - lo

    def _end_of_data(self) -> StepResult:
        if self.settings.at_end == "loop" and self.timeline.total:
            self.loops += 1
            self.position = 0
            self._sink.set_counter("replay_loops", self.loops)
            return StepResult(0, 0, False, None)
        self.finished = True
        self._sink.set_state(L.STATE_FINISHED)
        return StepResult(0, 0, True, None)

    def progress(self, now_ns: int | None = None) -> Progress:
        """Figures for STATUS lines; the rate is over the last couple of seconds."""
        now = self._clock.monotonic_ns() if now_ns is None else now_ns
        rate = 0.0 if self.finished else self._rate.rate(now, self.published)
        return Progress(published=self.published, position=self.position,
                        total=self.timeline.total, loops=self.loops, rate=rate,
                        finished=self.finished)


__all__ = ["Progress", "ReplaySettings", "Replayer", "Sink", "StepResult", "Timeline",
           "bar_interval_ns", "build_timeline", "human"]
