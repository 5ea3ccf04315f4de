"""Every metric every daemon serves, read from the daemons' own collectors.

Each daemon's registry is built as the daemon builds it, fed example sources that make
every family appear (an attached segment, one symbol, one loaded file), and walked with
``collect()``: names, types, labels and help texts come from the code that serves them,
so docs/metrics.md (:mod:`.metrics_doc`) cannot drift from it.

A new daemon adds one ``_<daemon>_registry()`` function and one entry in :data:`DAEMONS`.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from prometheus_client import CollectorRegistry

from tradingd.consumer.analytics import SymbolStats
from tradingd.consumer.latency import LatencyHistogram
from tradingd.consumer.metrics import ConsumerSnapshot, make_registry
from tradingd.daemon.metrics import BUILD_INFO, daemon_registry
from tradingd.producer.metrics import ProducerMetrics
from tradingd.segment import layout as L

#: Families the client library's collectors add (process_, python_): listed apart.
LIBRARY_PREFIXES = ("process_", "python_")


@dataclass(frozen=True)
class MetricInfo:
    """One metric family as a query names it."""

    name: str  # as queried: counters with _total, info with _info
    type: str  # counter | gauge | histogram | info
    labels: tuple[str, ...]  # without le
    help: str
    daemons: tuple[str, ...]


class _Header(defaultdict[str, int]):
    """A segment header with every field present (0 unless set)."""

    def header(self) -> dict[str, int]:
        return self


class _Replay:
    published = 10
    position = 5
    loops = 0
    published_by_symbol = np.array([10], np.int64)
    total = 20


def _producer_registry() -> CollectorRegistry:
    m = ProducerMetrics(process=False)
    m.record_load("stocks/AAPL.csv", 10, {"null_value": 1})
    m.load_duration.set(0.1)
    m.batch_duration.observe(1e-5)
    header = _Header(int, state=L.STATE_LIVE, generation=0x451E, layout_major=L.LAYOUT_MAJOR,
                     layout_minor=L.LAYOUT_MINOR, ring_capacity=4096, heartbeat_interval_ns=10**8)
    m.attach(segment_name="tradingd", symbols=["AAPL"], header=header, replay=_Replay())
    return m.registry


def _example_stats() -> SymbolStats:
    values: dict[str, object] = {}
    for f in dataclasses.fields(SymbolStats):
        values[f.name] = "AAPL" if f.type in ("str", str) else (
            1 if f.type in ("int", int) else 1.0)
    return SymbolStats(**values)  # type: ignore[arg-type]


def _consumer_registry() -> CollectorRegistry:
    h = LatencyHistogram()
    h.observe_list_ns([1000])
    snap = ConsumerSnapshot(
        segment="tradingd", wait_strategy="block", implementation="c", attached=True,
        generation=0x451E, producer_up=True, producer_state="live", heartbeat_timestamp=1.0,
        last_data_timestamp=1.0, consumed=1, lost=0, skipped=0, rejected=0, lag=0,
        generation_changes=0, attaches=1, latency_buckets=h.cumulative(),
        latency_sum=h.sum_seconds, symbols=[_example_stats()], symbol_records={"AAPL": 1},
        ring_capacity=4096)
    return make_registry(lambda: snap, process=False)


def _gateway_registry() -> CollectorRegistry:
    from tradingd.gateway.hub import MESSAGE_TYPES, Counters
    from tradingd.gateway.metrics import GatewaySnapshot
    from tradingd.gateway.metrics import make_registry as gateway_registry
    from tradingd.gateway.server import REJECTIONS

    h = LatencyHistogram()
    h.observe_list_ns([1000])
    c = Counters()
    snap = GatewaySnapshot(
        segment="tradingd", generation=0x451E, attached=True, producer_up=True, connections=1,
        accepted=1, rejected=dict.fromkeys(REJECTIONS, 0),
        subscriptions={"ticks": 1, "latest": 0, "status": 0},
        messages_sent=dict.fromkeys(MESSAGE_TYPES, 1), bytes_sent=1, records_read=1,
        records_sent=1, records_lapped=0, updates_conflated=0, updates_dropped=0,
        congestions=0, closes=c.closes, errors=c.errors, generation_changes=0,
        latency_buckets=h.cumulative(), latency_sum=h.sum_seconds)
    return gateway_registry(lambda: snap, process=False)


def _exec_registry() -> CollectorRegistry:
    import threading
    from types import SimpleNamespace

    from tradingd.exec.engine import Counters
    from tradingd.exec.metrics import make_registry as exec_registry
    from tradingd.exec.service import LATENCY_BUCKETS

    row = {"client": "alice", "order_ring_depth": 0, "report_ring_depth": 0, "backlog": 0,
           "slow_events": 0, "connected": True, "disconnected": False, "wakeups": 0}
    engine = SimpleNamespace(counters=Counters(orders={"limit": 1}, rejects={3: 1}),
                             open_orders=lambda: [])
    service = SimpleNamespace(
        lock=threading.Lock(), engine=engine, ring_rows=lambda: [row],
        latency_counts=[1] + [0] * len(LATENCY_BUCKETS), latency_sum=1e-6,
        journal=SimpleNamespace(bytes_written=1, entries_written=1),
        follower=SimpleNamespace(attached=True), prediction_errors=0)
    return exec_registry(service, process=False)  # type: ignore[arg-type]


def _bridge_registry() -> CollectorRegistry:
    from tradingd.bridge.metrics import BridgeMetrics

    m = BridgeMetrics("mirror", {"feed": "tradingd", "segment": "tradingd",
                                 "transport": "jetstream"}, process=False)
    m.observe_delays_ns([1000])
    return m.registry


#: Each daemon and how to build its registry with every family present.
DAEMONS: dict[str, Callable[[], CollectorRegistry]] = {
    "producer": _producer_registry,
    "consumer": _consumer_registry,
}
DAEMONS["gateway"] = _gateway_registry
DAEMONS["exec"] = _exec_registry
DAEMONS["bridge"] = _bridge_registry


def _query_name(name: str, typ: str) -> str:
    return {"counter": f"{name}_total", "info": f"{name}_info"}.get(typ, name)


def _families(registry: CollectorRegistry) -> Iterable[MetricInfo]:
    for fam in registry.collect():
        labels: dict[str, None] = {}
        for s in fam.samples:
            labels.update(dict.fromkeys(k for k in s.labels if k != "le"))
        yield MetricInfo(_query_name(fam.name, fam.type), fam.type, tuple(labels),
                         fam.documentation, ())


def catalog() -> list[MetricInfo]:
    """tradingd's own metrics (not the library's), sorted by name, with their daemons."""
    seen: dict[str, MetricInfo] = {}
    for daemon, build in DAEMONS.items():
        for info in _families(build()):
            old = seen.get(info.name)
            daemons = (*old.daemons, daemon) if old else (daemon,)
            labels = tuple(dict.fromkeys((*(old.labels if old else ()), *info.labels)))
            seen[info.name] = dataclasses.replace(info, labels=labels, daemons=daemons)
    return sorted(seen.values(), key=lambda m: (m.name != f"{BUILD_INFO}_info", m.name))


def library_metrics() -> list[MetricInfo]:
    """The process/platform/GC collectors' families (every daemon has them)."""
    reg = daemon_registry("x")
    out = [m for m in _families(reg) if m.name.startswith(LIBRARY_PREFIXES)]
    return sorted((dataclasses.replace(m, daemons=tuple(DAEMONS)) for m in out),
                  key=lambda m: m.name)


def metric_names() -> set[str]:
    """Every series name a query may use (a histogram's _bucket/_sum/_count)."""
    names: set[str] = set()
    for m in (*catalog(), *library_metrics()):
        if m.type == "histogram":
            names.update(f"{m.name}{s}" for s in ("_bucket", "_sum", "_count"))
        else:
            names.add(m.name)
    return names


__all__ = ["DAEMONS", "MetricInfo", "catalog", "library_metrics", "metric_names"]
