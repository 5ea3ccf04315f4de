"""tradingd-consumer: follow the producer's segment, analyse the stream, report.

The daemon is a loop around a :class:`~tradingd.consumer.follower.Follower` (attach, follow
restarts, health), a wait strategy (:mod:`tradingd.consumer.waiting`), the per-symbol
:class:`~tradingd.consumer.analytics.Analytics` and the publish->consume
:class:`~tradingd.consumer.latency.LatencyHistogram`; it exports all of it on the metrics endpoint
(:mod:`tradingd.consumer.metrics`) and reports to systemd and the log.

Daemon behaviour (as the producer's): one YAML config, ``--config``/``--segment``;
``READY=1`` once started (waiting for a producer counts as started: the unit must not fail
while the producer is down), ``STATUS=`` lines (``attached gen 7f3a1c2b, 12.3k rec/s,
lag 0`` / ``waiting for segment /dev/shm/tradingd``), ``WATCHDOG=1`` from the main loop,
``STOPPING=1`` and exit 0 on SIGTERM/SIGINT, a report line every
``consumer.report_interval``.

``TRADINGD_CONSUMER_TEST_DELAY=SECONDS`` makes the consumer sleep that long after each
batch it reads: a deliberately slow consumer, for the lapping tests. Never set it in
production (a warning is logged when it is set).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from tradingd.clock import SYSTEM_CLOCK, Clock
from tradingd.consumer.analytics import Analytics
from tradingd.consumer.follower import DEFAULT_CHECK_INTERVAL, Follower
from tradingd.consumer.latency import LatencyHistogram, format_ns
from tradingd.consumer.metrics import ConsumerSnapshot, make_registry
from tradingd.consumer.waiting import StopLike, make_strategy
from tradingd.daemon.cli import config_from_args, daemon_parser, log_level, run_main
from tradingd.daemon.config import Config, resolve_owner
from tradingd.daemon.logs import setup_logging
from tradingd.daemon.metrics_http import MetricsServer
from tradingd.daemon.notify import Notifier
from tradingd.daemon.signals import StopFlag
from tradingd.segment import layout as L
from tradingd.segment import shm
from tradingd.segment.fastpath import IMPLEMENTATION
from tradingd.segment.model import Record
from tradingd.segment.reader import RingSubscription, SegmentReader

PROG = "tradingd-consumer"
log = logging.getLogger("tradingd.consumer.daemon")

#: Most records read per poll (one numpy copy; 1 MiB): big batches when behind amortise
#: the per-batch cost, so a consumer that falls behind catches up faster.
MAX_BATCH = 16384
#: Most records the C batch path (``read_analyse``) takes per call: it copies nothing out,
#: so a larger batch costs no memory and spreads the main loop's per-batch Python work
#: (~10 us) over 4x the records.
C_BATCH = 65536
#: How often STATUS= is refreshed (systemd shows it; the Notifier rate-limits too).
STATUS_INTERVAL = 1.0
#: Longest sleep of the main loop: housekeeping (segment checks, watchdog) runs this often.
MAX_SLEEP = DEFAULT_CHECK_INTERVAL
TEST_DELAY_ENV = "TRADINGD_CONSUMER_TEST_DELAY"


@dataclass
class _Mark:
    """Counters at the previous report/status, for rates over the interval."""

    t_ns: int
    consumed: int
    lost: int
    latency_mark: int


class ConsumerService:
    """The consumer's state and main loop (no process plumbing: testable in-process).

    ``stop`` ends :meth:`run`; ``notifier`` gets STATUS/WATCHDOG (None: not notified).
    """

    def __init__(self, config: Config, *, stop: StopLike, notifier: Notifier | None = None,
                 clock: Clock = SYSTEM_CLOCK, test_delay: float = 0.0) -> None:
        c = config.consumer
        self.config = config
        self.segment = config.segment.name
        self._stop = stop
        self._notifier = notifier
        self._clock = clock
        self._test_delay = test_delay
        self.strategy = make_strategy(c.wait.strategy, stop, c.wait.poll_interval)
        self._window = c.analysis.window
        self._report_ns = int(c.report_interval * 1e9)
        self._status_ns = int(STATUS_INTERVAL * 1e9)
        self._lock = threading.Lock()  # analytics and latency: main loop vs scrape thread
        self.analytics = Analytics(config.segment.symbol_capacity, self._window, clock=clock)
        self.latency = LatencyHistogram()
        self._symbol_base: dict[str, int] = {}  # records per symbol in earlier generations
        self._last_heartbeat_wall: float | None = None
        self.follower = Follower(
            self.segment, self._on_batch, clock=clock,
            attach_retry_interval=c.attach_retry_interval,
            heartbeat_timeout_factor=c.heartbeat_timeout_factor,
            data_stale_after=c.data_stale_after, on_attach=self._on_attach,
            logger=logging.getLogger("tradingd.consumer.follower"),
            owner=resolve_owner(config), batch_reader=self._read_batch,
            join_gate=c.flow_control)
        now = clock.monotonic_ns()
        self._report_mark = _Mark(now, 0, 0, 0)
        self._status_mark = _Mark(now, 0, 0, 0)
        self._next_report = now + self._report_ns
        self._next_status = now

    # ------------------------------------------------------------------ data path
    def _on_attach(self, reader: SegmentReader, new_generation: bool) -> None:
        names = [s.name for s in reader.symbols()]
        with self._lock:
            if new_generation:
                for st in self.analytics.stats():
                    self._symbol_base[st.name] = self._symbol_base.get(st.name, 0) + st.records
                capacity = reader.geometry.symtab_capacity
                if capacity != self.analytics.symbol_capacity:
                    self.analytics = Analytics(capacity, self._window, clock=self._clock)
                self.analytics.reset(names)
            else:
                self.analytics.set_names(names)

    def _on_batch(self, records: np.ndarray | list[Record], first_seq: int) -> None:
        now = self._clock.monotonic_ns()
        backlog = self.follower.attach_cursor - first_seq  # records older than our attach
        with self._lock:
            self.analytics.update(records)
            if backlog >= len(records):
                return
            if isinstance(records, list):
                self.latency.observe_list_ns([now - r[3] for r in records
                                              if r[0] >= self.follower.attach_cursor])
            else:
                fresh = records[backlog:] if backlog > 0 else records
                self.latency.observe_records(now, fresh)

    def _read_batch(self, sub: RingSubscription, max_records: int) -> int:
        """The C batch path: read, analyse and bin latencies in one pass over the ring.

        Records stay in the ring (each read in place and checked before it is applied):
        no batch array, no copy, no Python per record or per field. The same
        figures as :meth:`_on_batch` of the same records (tests/consumer compare them).
        """
        analyse = sub.read_analyse
        assert analyse is not None
        max_records = max(max_records, C_BATCH)
        now = self._clock.monotonic_ns()
        with self._lock:
            analytics, latency = self.analytics, self.latency
            state = analytics.c_state()
            if state is None:  # the C analytics off (use_c=False): the reference path
                records = sub.poll_batch(MAX_BATCH)
                n = len(records)
                if n:
                    self._on_batch(records, sub.position - n)
                return n
            got, ignored, lat_n, lat_sum = analyse(max_records, now,
                                                   self.follower.attach_cursor, state,
                                                   latency.c_state(), latency.recent_n)
            analytics.applied_in_place(got, ignored, now)
            if lat_n:
                latency.observed_in_place(lat_n, lat_sum)
        return got

    # ------------------------------------------------------------------ main loop
    def run(self) -> None:
        """Read until ``stop`` is set (the caller closes the service afterwards)."""
        follower, stop, clock = self.follower, self._stop, self._clock
        delay = self._test_delay
        while not stop.is_set():
            # read first: a strategy's wait just returned because data arrived
            n = follower.poll(MAX_BATCH)
            now = clock.monotonic_ns()
            follower.tick(now)
            self._housekeeping(now)
            if n:
                if delay:
                    time.sleep(delay)
                continue
            if follower.subscription is None:
                stop.wait(min(follower.seconds_until_due(now), MAX_SLEEP))
                continue
            sub, reader = follower.subscription, follower.reader
            if sub is None or reader is None:
                continue
            if reader.state == L.STATE_STOPPED:  # the producer is leaving: follow at once
                follower.tick(force=True)
                continue
            self.strategy.wait(sub, min(MAX_SLEEP, follower.seconds_until_due()))

    def _housekeeping(self, now: int) -> None:
        if self._notifier is not None:
            self._notifier.maybe_watchdog(now)
        if now >= self._next_status:
            self._next_status = now + self._status_ns
            text = self.status_text(now)
            if self._notifier is not None:
                self._notifier.status(text)
        if now >= self._next_report:
            self._next_report = now + self._report_ns
            self.report(now)

    def close(self) -> None:
        """Let go of the segment."""
        self.follower.close()

    # ------------------------------------------------------------------ reporting
    def _rate(self, mark: _Mark, now: int) -> float:
        dt = (now - mark.t_ns) / 1e9
        return (self.follower.consumed - mark.consumed) / dt if dt > 0 else 0.0

    def status_text(self, now: int | None = None) -> str:
        """The STATUS= line: ``attached gen 7f3a1c2b, 12.3k rec/s, lag 0`` or waiting."""
        now = self._clock.monotonic_ns() if now is None else now
        f = self.follower
        rate = self._rate(self._status_mark, now)
        self._status_mark = _Mark(now, f.consumed, f.lost, 0)
        if not f.attached:
            return f"{f.waiting_text()}; consumed {f.consumed}, lost {f.lost}"
        h = f.health(now)
        state = L.STATE_NAMES.get(f.reader.state if f.reader else 0, "?")
        parts = [f"attached gen {f.generation >> 32:08x}",
                 f"{_si(rate)} rec/s", f"lag {f.lag()}", f"lost {f.lost}"]
        if state != "live":
            parts.append(f"producer {state}")
        parts.append("producer up" if h.producer_alive else "PRODUCER DOWN")
        parts.append("data fresh" if h.data_fresh else "data stale")
        return ", ".join(parts)

    def report(self, now: int | None = None) -> None:
        """Log the periodic report: throughput, loss, lag, latency, health, symbols."""
        now = self._clock.monotonic_ns() if now is None else now
        f, mark = self.follower, self._report_mark
        rate = self._rate(mark, now)
        with self._lock:
            pct = self.latency.percentiles_since(mark.latency_mark)
            latency_mark = self.latency.mark()
            stats = self.analytics.stats()
        self._report_mark = _Mark(now, f.consumed, f.lost, latency_mark)
        lat = (f"latency p50 {format_ns(pct[0])} p99 {format_ns(pct[1])}" if pct
               else "latency n/a")
        h = f.health(now)
        where = (f"gen {f.generation:016x}" if f.attached else f.waiting_text())
        log.info("report: %s; consumed %d (%s rec/s), lost %d (+%d), lag %d, %s; producer %s, "
                 "data %s", where, f.consumed, _si(rate), f.lost, f.lost - mark.lost, f.lag(),
                 lat, "up" if h.producer_alive else "down",
                 "fresh" if h.data_fresh else "stale")
        if stats:
            log.info("symbols: %s", "; ".join(
                f"{s.name} {s.last_price:.6g} ({s.change_since_first_pct:+.2f}%) "
                f"vwap {s.vwap:.6g} vol {s.return_std:.3g} {s.tick_rate:.3g}/s"
                for s in stats))

    def snapshot(self) -> ConsumerSnapshot:
        """Everything the metrics export, read now (called from the scrape thread)."""
        f = self.follower
        now_mono = self._clock.monotonic_ns()
        now_wall = self._clock.wall_ns()
        with f.lock:
            reader = f.reader
            attached = reader is not None
            ring_capacity = reader.geometry.ring_capacity if reader is not None else 0
            if reader is not None:
                hb = reader.heartbeat_ns
                self._last_heartbeat_wall = (now_wall - (now_mono - hb)) / 1e9
                state = L.STATE_NAMES.get(reader.state, "unknown")
            else:
                state = "none"
            # The counters before the lag: the main loop moves the position, then counts, so
            # read the other way round a scrape could show every record consumed and a lag.
            consumed, lost, rejected = f.consumed, f.lost, f.rejected
            lag = f.lag()
            generation = f.generation
        health = f.health(now_mono)
        last_data = (None if f.last_data_ns is None
                     else (now_wall - (now_mono - f.last_data_ns)) / 1e9)
        with self._lock:
            blocks = self.analytics.stats_blocks()
            buckets = self.latency.cumulative()
            latency_sum = self.latency.sum_seconds
            base = dict(self._symbol_base)
        stats = []
        while True:  # the lock per block of symbols: the data path waits ms, not a scrape
            with self._lock:
                block = next(blocks, None)
            if block is None:
                break
            stats += block
        for st in stats:
            base[st.name] = base.get(st.name, 0) + st.records
        return ConsumerSnapshot(
            segment=self.segment, wait_strategy=self.strategy.name,
            implementation=IMPLEMENTATION, attached=attached, generation=generation,
            producer_up=health.producer_alive, producer_state=state,
            heartbeat_timestamp=self._last_heartbeat_wall, last_data_timestamp=last_data,
            consumed=consumed, lost=lost, skipped=f.skipped, rejected=rejected, lag=lag,
            generation_changes=f.generation_changes, attaches=f.attaches,
            latency_buckets=buckets, latency_sum=latency_sum, symbols=stats,
            symbol_records=base, ring_capacity=ring_capacity)


def _si(x: float) -> str:
    """``12345.6`` -> ``12.3k``."""
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def _test_delay() -> float:
    text = os.environ.get(TEST_DELAY_ENV, "")
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        log.warning("ignoring %s=%r: not a number of seconds", TEST_DELAY_ENV, text)
        return 0.0
    log.warning("%s=%s: sleeping %.3f s after every batch (a test setting: never in "
                "production)", TEST_DELAY_ENV, text, value)
    return max(0.0, value)


def _run() -> int:
    parser = daemon_parser(PROG, "Follow the tradingd segment, analyse the stream and "
                                 "serve the figures as Prometheus metrics.", "consumer")
    args = parser.parse_args()
    config = config_from_args(args)
    setup_logging(PROG, log_level(args, config))
    shm.check_platform()  # permanent: refuse at start rather than wait forever
    c = config.consumer
    with StopFlag(ignore_sighup=True) as stop, Notifier() as notifier:
        service = ConsumerService(config, stop=stop, notifier=notifier,
                                  test_delay=_test_delay())
        server = None
        try:
            if c.metrics.enabled:
                server = MetricsServer(make_registry(service.snapshot), c.metrics.address,
                                       c.metrics.port, "consumer.metrics.port")
                log.info("metrics on %s", server.url)
            log.info("consumer starting: segment %s, wait strategy %s%s, window %d records, "
                     "fast path %s", config.segment.name, c.wait.strategy,
                     f" ({c.wait.poll_interval * 1e3:g} ms)" if c.wait.strategy == "poll"
                     else "", c.analysis.window, IMPLEMENTATION)
            service.follower.tick()
            notifier.ready(service.status_text())
            service.run()
            log.info("stopping (%s): consumed %d, lost %d, generation changes %d",
                     stop.reason, service.follower.consumed, service.follower.lost,
                     service.follower.generation_changes)
            notifier.stopping("stopping")
        finally:
            service.close()
            if server is not None:
                server.close()
    return 0


def main() -> None:
    """Console script ``tradingd-consumer``."""
    run_main(_run, PROG)


if __name__ == "__main__":
    main()
