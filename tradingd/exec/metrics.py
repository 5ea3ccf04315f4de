"""tradingd-exec's Prometheus metrics, collected fresh at scrape time from the service.

Names: prefix ``tradingd_exec_``, base units, ``_total`` on counters; the registry is
:func:`~tradingd.daemon.metrics.daemon_registry`'s (``tradingd_build_info{daemon="exec"}``).
Per-client series are labelled ``client`` (clients are few: one per strategy process).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from tradingd.daemon.metrics import daemon_registry, prefix
from tradingd.exec.protocol import reason_name
from tradingd.exec.service import LATENCY_BUCKETS, ExecService

PREFIX = prefix("exec")


class ExecCollector:
    """Reads the service under its lock at every scrape."""

    def __init__(self, service: ExecService) -> None:
        self._s = service

    def collect(self) -> Iterator[Metric]:
        s = self._s
        with s.lock:
            c = s.engine.counters
            orders = dict(c.orders)
            rejects = dict(c.rejects)
            fills, filled, illegal, expired, reports = (c.fills, c.filled_qty,
                                                        c.illegal_transitions, c.expired,
                                                        c.reports)
            open_orders = s.engine.open_orders()
            rows = s.ring_rows()
            lat = list(s.latency_counts)
            lat_sum = s.latency_sum
            journal_bytes = s.journal.bytes_written
            journal_entries = s.journal.entries_written
            attached = s.follower.attached
            mispredicted = s.prediction_errors
        m = CounterMetricFamily(PREFIX + "orders", "Order ring records taken, by type "
                                "(market, limit, cancel, bad)", labels=["type"])
        for k in ("market", "limit", "cancel", "bad"):
            m.add_metric([k], orders.get(k, 0))
        yield m
        m = CounterMetricFamily(PREFIX + "rejects", "Orders and cancels refused, by reason",
                                labels=["reason"])
        for code, n in sorted(rejects.items()):
            m.add_metric([reason_name(code)], n)
        yield m
        yield CounterMetricFamily(PREFIX + "fills", "Fills against the replayed bars",
                                  value=fills)
        yield CounterMetricFamily(PREFIX + "filled_quantity", "Quantity filled", value=filled)
        yield CounterMetricFamily(PREFIX + "expired_orders", "DAY orders expired at a "
                                  "session end", value=expired)
        yield CounterMetricFamily(PREFIX + "reports", "Execution reports produced",
                                  value=reports)
        yield CounterMetricFamily(PREFIX + "illegal_transitions", "Order state transitions "
                                  "refused by the transition table (a bug if not 0)",
                                  value=illegal)
        yield CounterMetricFamily(PREFIX + "accept_prediction_errors", "NEW reports the C "
                                  "accept path published that the engine did not make (a "
                                  "bug if not 0)", value=mispredicted)
        g = GaugeMetricFamily(PREFIX + "open_orders", "Orders resting (new or partially "
                              "filled), by client", labels=["client"])
        per: dict[str, int] = {}
        for o in open_orders:
            per[o.client] = per.get(o.client, 0) + 1
        for row in rows:
            g.add_metric([str(row["client"])], per.get(str(row["client"]), 0))
        yield g
        depth = GaugeMetricFamily(PREFIX + "ring_depth", "Records written but not yet read, "
                                  "by client and ring", labels=["client", "ring"])
        backlog = GaugeMetricFamily(PREFIX + "report_backlog", "Reports kept for a client "
                                    "whose report ring is full", labels=["client"])
        connected = GaugeMetricFamily(PREFIX + "client_connected", "1 while the client has "
                                      "a report ring (not disconnected)", labels=["client"])
        dropped = GaugeMetricFamily(PREFIX + "client_disconnected", "1 while exec has "
                                    "disconnected the client (slow consumer: its report "
                                    "backlog overflowed) and it has not reconnected",
                                    labels=["client"])
        slow = CounterMetricFamily(PREFIX + "slow_client_events", "Times a client's report "
                                   "ring was found full", labels=["client"])
        wakeups = CounterMetricFamily(PREFIX + "client_wakeups", "FUTEX_WAKEs sent to a "
                                      "client blocked on its report ring", labels=["client"])
        for row in rows:
            name = str(row["client"])
            depth.add_metric([name, "orders"], float(row["order_ring_depth"]))  # type: ignore[arg-type]
            depth.add_metric([name, "reports"], float(row["report_ring_depth"]))  # type: ignore[arg-type]
            backlog.add_metric([name], float(row["backlog"]))  # type: ignore[arg-type]
            connected.add_metric([name], 1.0 if row["connected"] and not row["disconnected"]
                                 else 0.0)
            dropped.add_metric([name], 1.0 if row["disconnected"] else 0.0)
            slow.add_metric([name], float(row["slow_events"]))  # type: ignore[arg-type]
            wakeups.add_metric([name], float(row["wakeups"]))  # type: ignore[arg-type]
        yield depth
        yield backlog
        yield connected
        yield dropped
        yield slow
        yield wakeups
        buckets = []
        acc = 0
        for bound, n in zip(LATENCY_BUCKETS, lat, strict=False):
            acc += n
            buckets.append((repr(bound), acc))
        buckets.append(("+Inf", acc + lat[-1]))
        yield HistogramMetricFamily(PREFIX + "order_report_latency_seconds", "Client submit "
                                    "to the answering report published (ack, reject, cancel)",
                                    buckets=buckets, sum_value=lat_sum)
        yield CounterMetricFamily(PREFIX + "journal_written_bytes", "Bytes appended to the "
                                  "journal", value=journal_bytes)
        yield CounterMetricFamily(PREFIX + "journal_entries", "Inputs appended to the journal",
                                  value=journal_entries)
        yield GaugeMetricFamily(PREFIX + "market_attached", "1 while the market segment is "
                                "attached", value=1.0 if attached else 0.0)


def make_registry(service: ExecService, *, process: bool = True) -> CollectorRegistry:
    """exec's own registry: the shared build info (``daemon="exec"``, no ``_created``
    series), its collector, the library's process/platform/GC collectors."""
    reg = daemon_registry("exec", process=process)
    reg.register(ExecCollector(service))
    return reg


__all__ = ["PREFIX", "ExecCollector", "make_registry"]
