"""The consumer's Prometheus metrics: a custom collector over a snapshot taken at scrape time.

Everything is exported from a :class:`ConsumerSnapshot` that the consumer builds when the
scrape arrives (under its locks), so state read from the segment (producer up, heartbeat,
lag) is fresh, as the exporter guidelines ask, and the hot loop never touches a metric
object. The publish->consume latency histogram is kept in numpy by
:class:`tradingd.consumer.latency.LatencyHistogram` and exported here.

Names: prefix ``tradingd_consumer_``, base units (seconds), ``_total`` on counters,
timestamps rather than ages (``..._timestamp_seconds``, Unix time; ``..._data_timestamp_seconds``
when the time is the market data's own event time, not the wall clock). The registry is the
consumer's own (:func:`tradingd.daemon.metrics.daemon_registry`: build info
``tradingd_build_info{daemon="consumer"}``, no ``_created`` series, the library's process,
platform and GC collectors). The full list is docs/metrics.md, generated from this module.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from tradingd.consumer.analytics import SymbolStats
from tradingd.daemon.metrics import daemon_registry, generation_label
from tradingd.segment import layout as L
from tradingd.segment.fastpath import IMPLEMENTATION

log = logging.getLogger(__name__)

PREFIX = "tradingd_consumer_"


@dataclass(frozen=True)
class ConsumerSnapshot:
    """The consumer's state at one instant, as the metrics collector needs it."""

    segment: str
    wait_strategy: str
    implementation: str  # "c" or "python": the segment fast path in use
    attached: bool
    generation: int  # 0 when not attached
    producer_up: bool
    producer_state: str  # live | finished | stopped | ... | none
    heartbeat_timestamp: float | None  # Unix time of the producer's last heartbeat
    last_data_timestamp: float | None  # Unix time the last record was received
    consumed: int
    lost: int
    skipped: int
    rejected: int
    lag: int
    generation_changes: int
    attaches: int
    latency_buckets: list[tuple[float, int]]  # cumulative (upper bound s, count), inf last
    latency_sum: float  # seconds
    symbols: list[SymbolStats] = field(default_factory=list)
    symbol_records: dict[str, int] = field(default_factory=dict)  # since start, all gens
    ring_capacity: int = 0  # records the attached segment's ring holds; 0 when not attached


class ConsumerCollector:
    """Turns the snapshot returned by ``snapshot()`` into metric families at each scrape."""

    def __init__(self, snapshot: Callable[[], ConsumerSnapshot]) -> None:
        self._snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        return []  # do not call snapshot() at registration time

    def collect(self) -> Iterator[Metric]:
        s = self._snapshot()
        yield from _process_metrics(s)
        yield from _symbol_metrics(s)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(PREFIX + name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, value=value)


def _process_metrics(s: ConsumerSnapshot) -> Iterator[Metric]:
    yield _counter("records_consumed", "Records read from the segment's ring.", s.consumed)
    yield _counter("records_lost", "Records the producer overwrote before this consumer read "
                                   "them (lapping).", s.lost)
    yield _counter("records_skipped", "Records already overwritten in the ring when the "
                                      "consumer attached (never readable by it).", s.skipped)
    yield _counter("records_rejected", "Records dropped because their sequence stamp did not "
                                       "match (protocol violation; should stay 0).", s.rejected)
    yield _gauge("lag_records", "Records published but not yet consumed (read fresh at "
                                "scrape time).", s.lag)
    yield _gauge("producer_up", "1 if the producer's heartbeat is younger than the timeout "
                                "derived from its own interval and its state is running.",
                 1 if s.producer_up else 0)
    yield _gauge("attached", "1 while the consumer is attached to a segment.",
                 1 if s.attached else 0)
    if s.heartbeat_timestamp is not None:
        yield _gauge("producer_heartbeat_timestamp_seconds",
                     "Unix time of the producer's last heartbeat seen in the segment.",
                     s.heartbeat_timestamp)
    if s.last_data_timestamp is not None:
        yield _gauge("last_receive_timestamp_seconds",
                     "Unix time (wall clock) this consumer last received a record.",
                     s.last_data_timestamp)
    if s.ring_capacity:
        yield _gauge("ring_capacity", "Records the followed segment's ring holds (lag beyond "
                                      "it means records lost).", s.ring_capacity)
    yield _counter("generation_changes", "Times the consumer re-attached to a segment of a "
                                         "new generation (producer restarts).",
                   s.generation_changes)
    yield _counter("attaches", "Times the consumer attached to a segment.", s.attaches)
    seg = InfoMetricFamily(PREFIX + "segment", "The segment followed and its generation "
                                               "(empty while waiting).",
                           value={"segment": s.segment,
                                  "generation": generation_label(s.generation),
                                  "state": s.producer_state})
    yield seg
    yield InfoMetricFamily(PREFIX + "wait_strategy", "How the consumer waits for records "
                                                     "(consumer.wait.strategy).",
                           value={"strategy": s.wait_strategy})
    hist = HistogramMetricFamily(
        PREFIX + "publish_latency_seconds",
        "Time from the producer publishing a record (its publish_ns) to this consumer "
        "having it in hand; records already in the ring when it attached are not counted.",
        buckets=[(_le(b), c) for b, c in s.latency_buckets], sum_value=s.latency_sum)
    yield hist


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)


_SYMBOL_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("symbol_price", "last_price", "Close of the symbol's last record."),
    ("symbol_previous_price", "previous_price", "Close of the record before the last."),
    ("symbol_first_price", "first_price", "First close received from this producer "
                                          "generation."),
    ("symbol_vwap", "vwap", "Volume-weighted average close over the analysis window "
                            "(consumer.analysis.window records; NaN without volume)."),
    ("symbol_volatility", "return_std", "Sample standard deviation of the log returns over "
                                        "the analysis window (per record, not annualised)."),
    ("symbol_log_return_mean", "return_mean", "Mean log return per record over the analysis "
                                              "window."),
    ("symbol_window_high", "high", "Highest high over the analysis window."),
    ("symbol_window_low", "low", "Lowest low over the analysis window."),
    ("symbol_volume", "last_volume", "Volume of the symbol's last record."),
    ("symbol_window_volume", "window_volume", "Volume summed over the analysis window."),
    # No tick-rate gauge: rate(tradingd_consumer_symbol_records_consumed_total[...]) is the
    # rate, and a gauge averaged over another window disagreed with it.
    ("symbol_data_timestamp_seconds", "last_event_seconds",
     "Data time: the event time (Unix seconds) carried by the symbol's last record, i.e. how "
     "far the replay has got; shifted replay time, not the wall clock (time() - it means "
     "nothing under producer.replay.align: start)."),
)


def _symbol_metrics(s: ConsumerSnapshot) -> Iterator[Metric]:
    families: list[tuple[str, GaugeMetricFamily]] = []
    for name, attr, doc in _SYMBOL_GAUGES:
        families.append((attr, GaugeMetricFamily(PREFIX + name, doc, labels=["symbol"])))
    for st in s.symbols:
        for attr, fam in families:
            fam.add_metric([st.name], float(getattr(st, attr)))
    for _, fam in families:
        yield fam
    records = CounterMetricFamily(PREFIX + "symbol_records_consumed",
                                  "Records received per symbol (over every generation).",
                                  labels=["symbol"])
    for sym, n in sorted(s.symbol_records.items()):
        records.add_metric([sym], n)
    yield records


def make_registry(snapshot: Callable[[], ConsumerSnapshot], *,
                  process: bool = True) -> CollectorRegistry:
    """The consumer's own registry: build info, its collector, process/platform/GC collectors."""
    registry = daemon_registry("consumer", process=process, build={
        "layout_version": f"{L.LAYOUT_MAJOR}.{L.LAYOUT_MINOR}", "fastpath": IMPLEMENTATION})
    registry.register(ConsumerCollector(snapshot))
    return registry


def snapshot_as_dict(s: ConsumerSnapshot) -> dict[str, Any]:
    """The snapshot's scalar fields as a dict (for reports and debugging)."""
    return {k: v for k, v in s.__dict__.items() if k not in ("symbols", "latency_buckets")}


__all__ = ["PREFIX", "ConsumerCollector", "ConsumerSnapshot",
           "make_registry"]
