"""The bridge's Prometheus metrics (both modes; names in docs/multi-host.md).

Counters move once per message, never per record (a ``prometheus_client`` call costs
about a microsecond: per record it would cost more than the bridging). The end-to-end
delay is a numpy histogram (:class:`~tradingd.consumer.latency.LatencyHistogram`, fed a
batch at a time) exported by a collector at scrape time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping

from prometheus_client import Counter, Gauge
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from tradingd.consumer.latency import LatencyHistogram
from tradingd.daemon.metrics import daemon_registry, prefix
from tradingd.daemon.metrics_http import MetricsServer

PREFIX = prefix("bridge").rstrip("_")
#: End-to-end delay buckets (origin publish -> mirror write): 100 us to 60 s.
DELAY_BUCKETS_SECONDS: tuple[float, ...] = (
    1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0)
GAP_CAUSES = ("origin_lapped", "retention", "no_symbol_table", "core_loss")


class _DelayCollector(Collector):
    def __init__(self, hist: LatencyHistogram, lock: threading.Lock) -> None:
        self._hist, self._lock = hist, lock

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            cumulative = self._hist.cumulative()
            total = self._hist.sum_seconds
        fam = HistogramMetricFamily(
            f"{PREFIX}_end_to_end_delay_seconds",
            "Origin producer publish -> mirror segment write, from the records' own "
            "timestamps (origin wall clock vs this host's: includes clock offset)")
        fam.add_metric([], [(("+Inf" if b == float("inf") else repr(b)), c)
                            for b, c in cumulative], total)
        yield fam


class BridgeMetrics:
    """Every metric of one bridge process, in its own registry.

    The registry is :func:`~tradingd.daemon.metrics.daemon_registry`'s: the shared
    ``tradingd_build_info{daemon="bridge", mode, ...}`` (``build``: feed, segment,
    transport), no ``_created`` series, the library's process collectors unless
    ``process=False``.
    """

    def __init__(self, mode: str, build: Mapping[str, str] | None = None, *,
                 process: bool = True) -> None:
        self.mode = mode
        r = self.registry = daemon_registry("bridge", build={"mode": mode, **(build or {})},
                                            process=process)
        self.records = Counter(f"{PREFIX}_records_total",
                               "Records bridged (publish: acknowledged; mirror: written)",
                               registry=r)
        self.bytes = Counter(f"{PREFIX}_bytes_total", "Message payload bytes bridged",
                             registry=r)
        self.messages = Counter(f"{PREFIX}_messages_total",
                                "NATS messages bridged (records and state)", registry=r)
        self.record_messages = Counter(f"{PREFIX}_record_messages_total",
                                       "Records messages bridged (batching ratio = "
                                       "records_total / record_messages_total)", registry=r)
        self.gap_records = Counter(f"{PREFIX}_gap_records_total",
                                   "Origin records that never reached the mirror, by cause",
                                   ["cause"], registry=r)
        for cause in GAP_CAUSES:
            self.gap_records.labels(cause=cause)
        self.duplicates = Counter(f"{PREFIX}_duplicate_records_total",
                                  "Records received again and dropped (never written twice)",
                                  registry=r)
        self.decode_errors = Counter(f"{PREFIX}_decode_errors_total",
                                     "Messages that did not decode (skipped, never applied)",
                                     registry=r)
        self.reconnects = Counter(f"{PREFIX}_reconnects_total",
                                  "Connections to NATS made again after a loss", registry=r)
        self.generations = Counter(f"{PREFIX}_upstream_generations_total",
                                   "Origin generations seen (origin producer restarts)",
                                   registry=r)
        self.connected = Gauge(f"{PREFIX}_nats_connected",
                               "1 while connected to a NATS server", registry=r)
        self.inflight_bytes = Gauge(f"{PREFIX}_inflight_bytes",
                                    "Bytes published but not yet acknowledged (publish)",
                                    registry=r)
        self.lag = Gauge(f"{PREFIX}_sequence_lag_messages",
                         "Publish: ring records + messages not yet acknowledged; mirror: "
                         "stream messages not yet applied (JetStream num_pending)", registry=r)
        self.upstream_up = Gauge(f"{PREFIX}_upstream_up",
                                 "Mirror: 1 while the upstream delivers (live or finished)",
                                 registry=r)
        self.applied_stream_seq = Gauge(f"{PREFIX}_applied_stream_sequence",
                                        "Mirror: JetStream sequence of the last message "
                                        "applied", registry=r)
        self._lock = threading.Lock()
        self.delay = LatencyHistogram(buckets_seconds=DELAY_BUCKETS_SECONDS)
        r.register(_DelayCollector(self.delay, self._lock))
        self.server: MetricsServer | None = None

    def observe_delays_ns(self, delays_ns: object) -> None:
        import numpy as np
        with self._lock:
            self.delay.observe_ns(np.asarray(delays_ns, dtype=np.int64))

    def serve(self, address: str, port: int) -> str:
        self.server = MetricsServer(self.registry, address, port,
                                    f"bridge.{self.mode}.metrics.port")
        return self.server.url

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


__all__ = ["DELAY_BUCKETS_SECONDS", "GAP_CAUSES", "PREFIX", "BridgeMetrics"]
