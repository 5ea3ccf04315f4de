"""The gateway's Prometheus metrics: a snapshot built in the event loop, exported at scrape time.

The hub's state belongs to the asyncio thread; the scrape runs in prometheus_client's HTTP
thread. So the collector asks the loop for a :class:`GatewaySnapshot`
(``run_coroutine_threadsafe``) rather than reading the hub's dicts while the loop mutates
them. Names: prefix ``tradingd_gateway_``, base units, ``_total`` on counters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from tradingd.daemon.metrics import daemon_registry, generation_label, prefix
from tradingd.segment import layout as L
from tradingd.segment.fastpath import IMPLEMENTATION

PREFIX = prefix("gateway")


@dataclass(frozen=True)
class GatewaySnapshot:
    """The gateway's figures at one instant."""

    segment: str
    generation: int
    attached: bool
    producer_up: bool
    connections: int
    accepted: int
    rejected: dict[str, int]
    subscriptions: dict[str, int]
    messages_sent: dict[str, int]
    bytes_sent: int
    records_read: int
    records_sent: int
    records_lapped: int
    updates_conflated: int
    updates_dropped: int
    congestions: int
    closes: dict[str, int]
    errors: dict[str, int]
    generation_changes: int
    latency_buckets: list[tuple[float, int]]
    latency_sum: float


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)


def _labelled(name: str, doc: str, label: str, values: dict[str, int],
              gauge: bool = False) -> Metric:
    fam: CounterMetricFamily | GaugeMetricFamily = (
        GaugeMetricFamily(PREFIX + name, doc, labels=[label]) if gauge
        else CounterMetricFamily(PREFIX + name, doc, labels=[label]))
    for key, value in sorted(values.items()):
        fam.add_metric([key], value)
    return fam


class GatewayCollector:
    """Metric families from the snapshot ``snapshot()`` returns at each scrape."""

    def __init__(self, snapshot: Callable[[], GatewaySnapshot]) -> None:
        self._snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        s = self._snapshot()
        yield GaugeMetricFamily(PREFIX + "connections", "WebSocket clients connected now.",
                                value=s.connections)
        yield CounterMetricFamily(PREFIX + "connections_accepted", "WebSocket connections "
                                  "accepted since start.", value=s.accepted)
        yield _labelled("connections_rejected", "Handshakes refused, by reason (origin, auth, "
                        "limit, not_found).", "reason", s.rejected)
        yield _labelled("subscriptions", "Channels subscribed now, by kind (ticks, latest, "
                        "status; ticks.* counts once).", "kind", s.subscriptions, gauge=True)
        yield _labelled("messages_sent", "Messages (text frames) sent to clients, by type.",
                        "type", s.messages_sent)
        yield CounterMetricFamily(PREFIX + "sent_bytes", "Bytes of messages sent to clients "
                                  "(payloads).", value=s.bytes_sent)
        yield CounterMetricFamily(PREFIX + "records_read", "Records read from the segment's "
                                  "ring.", value=s.records_read)
        yield CounterMetricFamily(PREFIX + "records_sent", "Records delivered in ticks "
                                  "messages, summed over clients.", value=s.records_sent)
        yield CounterMetricFamily(PREFIX + "records_lapped", "Records the producer overwrote "
                                  "before the gateway read them (sent as gap messages).",
                                  value=s.records_lapped)
        yield CounterMetricFamily(PREFIX + "updates_conflated", "Latest values sent to slow "
                                  "clients in place of their ticks.", value=s.updates_conflated)
        yield CounterMetricFamily(PREFIX + "updates_dropped", "Records and latest values slow "
                                  "clients did not get (reported to them as gaps).",
                                  value=s.updates_dropped)
        yield CounterMetricFamily(PREFIX + "slow_client_episodes", "Times a client went over "
                                  "gateway.send_buffer_limit.", value=s.congestions)
        yield _labelled("clients_closed", "Client connections ended, by reason (client, "
                        "slow_client, flood, too_big, protocol, shutdown, gone).", "reason",
                        s.closes)
        yield _labelled("request_errors", "Client messages answered with an error, by "
                        "code.", "code", s.errors)
        yield GaugeMetricFamily(PREFIX + "producer_up", "1 if the producer's heartbeat is "
                                "fresh.", value=1 if s.producer_up else 0)
        yield GaugeMetricFamily(PREFIX + "attached", "1 while attached to a segment.",
                                value=1 if s.attached else 0)
        yield CounterMetricFamily(PREFIX + "generation_changes", "Producer restarts followed "
                                  "(new segment generations).", value=s.generation_changes)
        yield InfoMetricFamily(PREFIX + "segment", "The segment served and its generation "
                               "(empty while waiting).",
                               value={"segment": s.segment,
                                      "generation": generation_label(s.generation)})
        yield HistogramMetricFamily(
            PREFIX + "send_latency_seconds",
            "Time from the producer publishing a record (publish_ns) to the gateway writing "
            "the frame holding it (per frame, its oldest record).",
            buckets=[(_le(b), c) for b, c in s.latency_buckets], sum_value=s.latency_sum)


def make_registry(snapshot: Callable[[], GatewaySnapshot], *,
                  process: bool = True) -> CollectorRegistry:
    """The gateway's own registry: the shared build info (``daemon="gateway"``), its
    collector, the library's process/platform/GC collectors."""
    registry = daemon_registry("gateway", process=process, build={
        "layout_version": f"{L.LAYOUT_MAJOR}.{L.LAYOUT_MINOR}", "fastpath": IMPLEMENTATION})
    registry.register(GatewayCollector(snapshot))
    return registry


__all__ = ["PREFIX", "GatewayCollector", "GatewaySnapshot", "make_registry"]
