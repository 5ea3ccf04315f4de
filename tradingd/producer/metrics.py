"""The producer's Prometheus metrics: what it loaded, what it published, how its segment is.

Everything lives in a registry built here (never the client library's global REGISTRY),
so each producer, and each test, has its own. Three kinds of sources:

* events the main loop records as they happen: rows loaded and rejected per file and
  reason (counters), the duration of each publish batch (histogram), load time;
* state collected fresh at scrape time by :class:`_ProducerCollector`: the segment's
  header read through the producer's own read-only :class:`SegmentReader` (heartbeat
  timestamp and count, state, records published, loops, size, ring capacity) and the
  replayer's counters (records per symbol, data set size, progress). The exporter
  guidance is to collect state from elsewhere at scrape time, and to export timestamps
  (``..._timestamp_seconds``), not ages;
* the client library's process, platform and GC collectors, on this registry.

Names start with ``tradingd_producer_`` (build info: ``tradingd_build_info{daemon="producer"}``,
the family every daemon shares; conventions in :mod:`tradingd.daemon.metrics`) and pass
``promtool check metrics``. The full list is docs/metrics.md, generated from this module.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol
from wsgiref.simple_server import WSGIServer

import numpy as np
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tradingd.clock import SYSTEM_CLOCK, Clock
from tradingd.daemon.metrics import daemon_registry, generation_label
from tradingd.daemon.metrics_http import start_metrics_server
from tradingd.errors import MetricsUnavailable
from tradingd.segment import layout as L
from tradingd.segment.fastpath import IMPLEMENTATION

log = logging.getLogger(__name__)

PREFIX = "tradingd_producer"
#: Publish-batch duration buckets (seconds): a 256-record batch takes tens of microseconds;
#: the top ones catch a host that stalls the producer (swapping, a stopped VM).
BATCH_BUCKETS = (5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2,
                 2.5e-2, 0.1, 1.0, 10.0)


class HeaderSource(Protocol):
    """What the collector reads the segment through (a :class:`SegmentReader`)."""

    def header(self) -> dict[str, int]: ...


class ReplaySource(Protocol):
    """What the collector reads from the replay (a :class:`tradingd.producer.replay.Replayer`)."""

    published: int
    position: int
    loops: int
    published_by_symbol: np.ndarray

    @property
    def total(self) -> int: ...


@dataclass
class Sources:
    """What the scrape-time collector reads; filled in once the segment exists."""

    segment_name: str = ""
    symbols: tuple[str, ...] = ()
    header: HeaderSource | None = None
    replay: ReplaySource | None = None


class _ProducerCollector(Collector):
    """Collects the segment's and the replay's state at scrape time."""

    def __init__(self, sources: Sources, clock: Clock) -> None:
        self._sources = sources
        self._clock = clock
        self._lock = threading.Lock()

    def describe(self) -> Iterable[Metric]:
        return []  # families vary with the symbols; collect() is cheap enough to run

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            yield from self._segment_metrics()
            yield from self._replay_metrics()

    def _segment_metrics(self) -> Iterable[Metric]:
        src = self._sources
        if src.header is None:
            return
        h = src.header.header()
        mono, wall = self._clock.monotonic_ns(), self._clock.wall_ns()
        hb_wall = (wall - (mono - h["heartbeat_ns"])) / 1e9
        yield _gauge("heartbeat_timestamp_seconds",
                     "Wall-clock time of the producer's last heartbeat in the segment "
                     "(Unix seconds)", hb_wall)
        yield _counter("heartbeats", "Heartbeats written into the segment",
                       h["heartbeat_count"])
        yield _gauge("heartbeat_interval_seconds", "Configured time between heartbeats",
                     h["heartbeat_interval_ns"] / 1e9)
        yield _counter("records_published", "Records published into the segment's ring "
                       "(its cursor)", h["ring_cursor"])
        yield _counter("replay_loops", "Times the replay wrapped around to the start of "
                       "the data", h["replay_loops"])
        yield _gauge("segment_size_bytes", "Size of the shared-memory segment",
                     h["total_size"])
        yield _gauge("ring_capacity", "Records the segment's ring holds", h["ring_capacity"])
        yield _gauge("ring_window", "Most records the producer writes before advancing "
                     "the cursor", h["ring_window"])
        yield _gauge("symbols", "Symbols in the segment's symbol table", h["symbol_count"])
        yield _gauge("start_time_seconds", "Wall-clock time the producer created the "
                     "segment (Unix seconds)", h["producer_start_ns"] / 1e9)
        state = GaugeMetricFamily(f"{PREFIX}_segment_state",
                                  "Segment state: 1 for the current one", labels=["state"])
        for code, name in L.STATE_NAMES.items():
            state.add_metric([name], 1.0 if h["state"] == code else 0.0)
        yield state
        info = GaugeMetricFamily(f"{PREFIX}_segment_info",
                                 "The segment this producer owns (value 1)",
                                 labels=["segment", "generation", "layout_version"])
        info.add_metric([src.segment_name, generation_label(h["generation"]),
                         f"{h['layout_major']}.{h['layout_minor']}"], 1.0)
        yield info

    def _replay_metrics(self) -> Iterable[Metric]:
        src = self._sources
        rp = src.replay
        if rp is None:
            return
        ticks = CounterMetricFamily(f"{PREFIX}_symbol_records_published",
                                    "Records (bars) published, per symbol", labels=["symbol"])
        counts = rp.published_by_symbol.tolist()
        for name, n in zip(src.symbols, counts, strict=False):
            ticks.add_metric([name], float(n))
        yield ticks
        total = rp.total
        yield _gauge("replay_records", "Records in the data set (one loop)", total)
        yield _gauge("replay_progress_ratio", "Position in the current loop of the "
                     "replay, 0 to 1", rp.position / total if total else 1.0)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=float(value))


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"{PREFIX}_{name}", doc, value=float(value))


class ProducerMetrics:
    """The producer's registry, its instruments, and the HTTP endpoint serving them."""

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK, process: bool = True) -> None:
        reg = daemon_registry("producer", process=process, build={
            "layout_version": f"{L.LAYOUT_MAJOR}.{L.LAYOUT_MINOR}",
            "fastpath": IMPLEMENTATION})
        self.registry = reg
        self.sources = Sources()
        self._collector = _ProducerCollector(self.sources, clock)
        reg.register(self._collector)
        self.rows_loaded = Counter(f"{PREFIX}_rows_loaded", "Good CSV rows loaded, per file",
                                   ["file"], registry=reg)
        self.rows_rejected = Counter(f"{PREFIX}_rows_rejected",
                                     "Bad CSV rows skipped while loading, per file and reason",
                                     ["file", "reason"], registry=reg)
        self.load_duration = Gauge(f"{PREFIX}_load_duration_seconds",
                                   "Time spent loading and merging the market data",
                                   registry=reg)
        self.data_gaps = Gauge(f"{PREFIX}_data_gaps",
                               "Gaps (missing bars beyond the file's interval) per file",
                               ["file"], registry=reg)
        self.batch_duration = Histogram(f"{PREFIX}_publish_batch_duration_seconds",
                                        "Time to publish one batch of records into the ring",
                                        buckets=BATCH_BUCKETS, registry=reg)
        self.flow_control_consumers = Gauge(
            f"{PREFIX}_flow_control_consumers",
            "Gated consumers the replay waits for (replay.flow_control: slowest)",
            registry=reg)
        self.flow_control_drops = Counter(
            f"{PREFIX}_flow_control_drops",
            "Gated consumers dropped from the flow-control gate, per reason (exited: its "
            "PID is gone; stalled: no progress for replay.flow_control_timeout)",
            ["reason"], registry=reg)
        for reason in ("exited", "stalled"):
            self.flow_control_drops.labels(reason=reason)
        self.flow_control_sleeps = Counter(
            f"{PREFIX}_flow_control_sleeps",
            "Times the gated replay slept waiting for its slowest consumer", registry=reg)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    def record_load(self, file: str, rows_loaded: int, rejects: dict[str, int],
                    reasons: Iterable[str] = ()) -> None:
        """Count one file's good rows and its bad rows by reason.

        Every reason in ``reasons`` gets a series even at 0, so ``increase()`` over it
        works from the first scrape.
        """
        self.rows_loaded.labels(file=file).inc(rows_loaded)
        for reason in dict.fromkeys([*reasons, *rejects]):
            self.rows_rejected.labels(file=file, reason=reason).inc(rejects.get(reason, 0))

    def record_gaps(self, file: str, gaps: int) -> None:
        """The number of gaps found in one file at load (see tradingd.producer.quality)."""
        self.data_gaps.labels(file=file).set(gaps)

    def attach(self, *, segment_name: str, symbols: Iterable[str], header: HeaderSource,
               replay: ReplaySource) -> None:
        """Start collecting the segment's and the replay's state (once the segment is live)."""
        with self._collector._lock:
            self.sources.segment_name = segment_name
            self.sources.symbols = tuple(symbols)
            self.sources.header = header
            self.sources.replay = replay

    def detach(self) -> None:
        """Stop reading the segment (before its reader is closed)."""
        with self._collector._lock:
            self.sources.header = None
            self.sources.replay = None

    def serve(self, address: str, port: int) -> int:
        """Serve ``/metrics`` on ``address:port`` in a thread; return the bound port."""
        try:
            server, thread = start_metrics_server(port, address, self.registry)
        except OSError as exc:
            raise MetricsUnavailable(f"cannot serve metrics on {address}:{port}: "
                                     f"{exc.strerror or exc} (producer.metrics.port or "
                                     f"--metrics-port: 0 picks a free port; --no-metrics)"
                                     ) from None
        self._server, self._thread = server, thread
        self.port = int(server.server_port)
        return self.port

    def close(self) -> None:
        """Stop the endpoint and release its port (shutdown, then server_close)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


__all__ = ["BATCH_BUCKETS", "ProducerMetrics", "Sources"]
