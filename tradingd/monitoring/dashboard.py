"""The Grafana dashboard, built with grafana-foundation-sdk, written as
``monitoring/grafana/dashboards/tradingd.json`` (``make monitoring``; a test fails when the
committed file is stale).

Why the foundation SDK: it is Grafana's own builder library, generated from Grafana's
dashboard schema (typed builders per panel type, so a misspelt option is a type error
under ``mypy --strict`` and the JSON has the shape the schema says), and it is kept in
step with Grafana releases (the pinned build targets Grafana 11.6). grafanalib is
hand-maintained and lags the schema; hand-kept JSON would need a schema we cannot fetch
here. It is a build-time dependency only (the ``test`` extra): the daemons never import it.

Every row is one function returning a :class:`Row` of :class:`PanelSpec`; a new daemon
adds one function and one entry in :func:`rows`. Every query selects with
``{job=~"$job", instance=~"$instance"}`` (:data:`SEL`) and every range is
``$__rate_interval``: tests/monitoring re-state the dashboard linter's rules and evaluate
every query against a real Prometheus.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import heatmap, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    GridPos,
    ValueMap,
    ValueMappingResult,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

UID = "tradingd"
#: The datasource every panel uses: the dashboard's datasource variable.
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
#: The selector every query carries (the dashboard linter's job/instance rules).
SEL = 'job=~"$job", instance=~"$instance"'
RATE = "$__rate_interval"
WIDTH = 24  # Grafana's grid


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str = ""
    heatmap: bool = False  # format: heatmap (le buckets as cells)


@dataclass(frozen=True)
class PanelSpec:
    title: str
    description: str
    targets: tuple[Target, ...]
    unit: str = "short"
    kind: str = "timeseries"  # timeseries | stat | table | heatmap
    width: int = 8
    height: int = 7
    #: value -> (text, color) shown instead of the number (e.g. 0 DOWN red, 1 UP green)
    mappings: tuple[tuple[str, str, str], ...] = ()


#: 0/1 health values as words.
UP_DOWN = (("0", "DOWN", "red"), ("1", "UP", "green"))


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[PanelSpec, ...] = field(default_factory=tuple)


def _t(expr: str, legend: str = "{{instance}}") -> Target:
    return Target(expr, legend)


def producer_row() -> Row:
    p = f"{{{SEL}}}"
    return Row("Producer", (
        PanelSpec("Up", "1 while Prometheus can scrape the daemon (a hung producer cannot "
                  "answer: this is its health, not its own heartbeat series).",
                  (_t(f"up{p}", "{{job}} {{instance}}"),), "none", "stat",
                  mappings=UP_DOWN),
        PanelSpec("Segment state", "The producer's segment state (live, finished, ...).",
                  (_t(f"tradingd_producer_segment_state{p} == 1", "{{instance}} {{state}}"),),
                  "none", "table"),
        PanelSpec("Heartbeat age", "Age of the producer's last heartbeat: as the producer "
                  "reports it (vanishes when it hangs) and as each consumer sees it in the "
                  "segment (keeps growing: what the alerts use).",
                  (_t(f"time() - tradingd_producer_heartbeat_timestamp_seconds{p}",
                      "producer {{instance}}"),
                   _t(f"time() - tradingd_consumer_producer_heartbeat_timestamp_seconds{p}",
                      "seen by consumer {{instance}}")), "s"),
        PanelSpec("Publish rate per symbol", "Records (ticks) published per second, per "
                  "symbol.",
                  (_t(f"sum by (instance, symbol) (rate("
                      f"tradingd_producer_symbol_records_published_total{p}[{RATE}]))",
                      "{{symbol}} {{instance}}"),), "ops"),
        PanelSpec("Publish batch duration", "Time to publish one batch into the ring "
                  "(p50, p99).",
                  tuple(_t(f"histogram_quantile({q}, sum by (instance, le) (rate("
                           f"tradingd_producer_publish_batch_duration_seconds_bucket{p}"
                           f"[{RATE}])))", f"p{name} {{{{instance}}}}")
                        for q, name in ((0.5, "50"), (0.99, "99"))), "s"),
        PanelSpec("Replay progress", "Position in the current loop of the data (0 to 1) and "
                  "loops completed.",
                  (_t(f"tradingd_producer_replay_progress_ratio{p}", "progress {{instance}}"),
                   _t(f"tradingd_producer_replay_loops_total{p}", "loops {{instance}}")),
                  "percentunit"),
        PanelSpec("Restarts and generations", "Producer generations the consumers followed "
                  "(one per producer restart) and the process start times.",
                  (_t(f"tradingd_consumer_generation_changes_total{p}",
                      "generation changes seen by {{instance}}"),
                   _t(f"changes(process_start_time_seconds{p}[{RATE}])",
                      "restarts {{job}} {{instance}}")), "short"),
        PanelSpec("Generation served", "The segment and generation each producer serves.",
                  (_t(f"tradingd_producer_segment_info{p}",
                      "{{segment}} {{generation}} v{{layout_version}}"),), "none", "table"),
        PanelSpec("Rows rejected at load", "Bad CSV rows skipped at load, per file and reason "
                  "(non-strict mode).",
                  (_t(f"sum by (instance, file, reason) (tradingd_producer_rows_rejected_total"
                      f"{p})", "{{file}} {{reason}}"),), "short", "table"),
    ))


def consumer_row() -> Row:
    p = f"{{{SEL}}}"
    bucket = f"tradingd_consumer_publish_latency_seconds_bucket{p}"
    return Row("Consumers", (
        PanelSpec("Lag vs ring capacity", "Records published but not yet read, as a share "
                  "of the ring: at 100 % the consumer starts losing records.",
                  (_t(f"tradingd_consumer_lag_records{p} / tradingd_consumer_ring_capacity{p}"),),
                  "percentunit"),
        PanelSpec("Records consumed and lost", "Records read per second, and records lost "
                  "(overwritten before read) per second.",
                  (_t(f"rate(tradingd_consumer_records_consumed_total{p}[{RATE}])",
                      "consumed {{instance}}"),
                   _t(f"rate(tradingd_consumer_records_lost_total{p}[{RATE}])",
                      "lost {{instance}}")), "ops"),
        PanelSpec("Publish->consume latency", "p50, p99 and p99.9 of the time from publish "
                  "to the consumer having the record.",
                  tuple(_t(f"histogram_quantile({q}, sum by (instance, le) (rate({bucket}"
                           f"[{RATE}])))", f"p{name} {{{{instance}}}}")
                        for q, name in ((0.5, "50"), (0.99, "99"), (0.999, "99.9"))), "s"),
        PanelSpec("Latency heatmap", "Publish->consume latency distribution over time.",
                  (Target(f"sum by (le) (rate({bucket}[{RATE}]))", "{{le}}", heatmap=True),),
                  "s", "heatmap"),
        PanelSpec("Producer as seen by the consumers", "1 when the consumer sees a live "
                  "producer heartbeating; whether it is on the producer's generation.",
                  (_t(f"tradingd_consumer_producer_up{p}", "producer up, {{instance}}"),
                   _t(f"count by (instance) (tradingd_consumer_segment_info{p} and "
                      f"on(segment, generation) tradingd_producer_segment_info{p})",
                      "on the producer's generation, {{instance}}")), "none"),
        PanelSpec("Wait strategy", "How each consumer waits for records, and its segment.",
                  (_t(f"tradingd_consumer_wait_strategy_info{p}", "{{instance}} {{strategy}}"),
                   _t(f"tradingd_consumer_segment_info{p}",
                      "{{instance}} {{segment}} {{generation}} {{state}}")), "none", "table"),
    ))


def market_row() -> Row:
    p = f"{{{SEL}}}"
    sym = "{{symbol}} ({{instance}})"
    return Row("Market (per symbol)", (
        PanelSpec("Price", "Close of each symbol's last record.",
                  (_t(f"tradingd_consumer_symbol_price{p}", sym),), "short"),
        PanelSpec("VWAP", "Volume-weighted average close over the analysis window (empty "
                  "without volume, e.g. forex).",
                  (_t(f"tradingd_consumer_symbol_vwap{p}", sym),), "short"),
        PanelSpec("Volatility", "Standard deviation of log returns per record over the "
                  "analysis window.",
                  (_t(f"tradingd_consumer_symbol_volatility{p}", sym),), "percentunit"),
        PanelSpec("Ticks received per symbol", "Records per second per symbol (rate() of "
                  "the counter: the same figure the producer publishes).",
                  (_t(f"rate(tradingd_consumer_symbol_records_consumed_total{p}[{RATE}])", sym),),
                  "ops"),
        PanelSpec("Data time", "Event time carried by each symbol's last record (replay "
                  "time, shifted under align: start; not the wall clock).",
                  (_t(f"tradingd_consumer_symbol_data_timestamp_seconds{p} * 1000", sym),),
                  "dateTimeAsIso", width=16),
    ))


def gateway_row() -> Row:
    p = f"{{{SEL}}}"
    bucket = f"tradingd_gateway_send_latency_seconds_bucket{p}"
    return Row("Gateway (WebSocket)", (
        PanelSpec("Gateway connections", "WebSocket clients connected, and subscriptions by "
                  "channel kind (ticks, latest, status).",
                  (_t(f"tradingd_gateway_connections{p}", "connections {{instance}}"),
                   _t(f"tradingd_gateway_subscriptions{p}", "{{kind}} {{instance}}")),
                  "short"),
        PanelSpec("Gateway messages and bytes sent", "Messages per second by type, and bytes "
                  "per second, to all clients.",
                  (_t(f"sum by (instance, type) (rate(tradingd_gateway_messages_sent_total{p}"
                      f"[{RATE}]))", "{{type}} {{instance}}"),
                   _t(f"rate(tradingd_gateway_sent_bytes_total{p}[{RATE}])",
                      "bytes {{instance}}")), "ops"),
        PanelSpec("Gateway send latency", "p50 and p99 of producer publish -> the gateway "
                  "writing the frame (per frame, its oldest record).",
                  tuple(_t(f"histogram_quantile({q}, sum by (instance, le) (rate({bucket}"
                           f"[{RATE}])))", f"p{name} {{{{instance}}}}")
                        for q, name in ((0.5, "50"), (0.99, "99"))), "s"),
        PanelSpec("Gateway slow clients", "Updates conflated (latest instead of ticks) and "
                  "dropped for slow clients, per second; records the gateway itself lost to "
                  "lapping.",
                  (_t(f"rate(tradingd_gateway_updates_conflated_total{p}[{RATE}])",
                      "conflated {{instance}}"),
                   _t(f"rate(tradingd_gateway_updates_dropped_total{p}[{RATE}])",
                      "dropped {{instance}}"),
                   _t(f"rate(tradingd_gateway_records_lapped_total{p}[{RATE}])",
                      "lapped {{instance}}")), "ops"),
        PanelSpec("Gateway closes and errors", "Clients closed per second by reason, refused "
                  "handshakes by reason, and request errors by code.",
                  (_t(f"sum by (instance, reason) (rate(tradingd_gateway_clients_closed_total"
                      f"{p}[{RATE}]))", "closed {{reason}} {{instance}}"),
                   _t(f"sum by (instance, reason) (rate("
                      f"tradingd_gateway_connections_rejected_total{p}[{RATE}]))",
                      "refused {{reason}} {{instance}}"),
                   _t(f"sum by (instance, code) (rate(tradingd_gateway_request_errors_total{p}"
                      f"[{RATE}]))", "error {{code}} {{instance}}")), "ops"),
        PanelSpec("Gateway producer view", "1 when the gateway sees the producer up, and "
                  "whether it serves the producer's generation.",
                  (_t(f"tradingd_gateway_producer_up{p}", "producer up, {{instance}}"),
                   _t(f"count by (instance) (tradingd_gateway_segment_info{p} and "
                      f"on(segment, generation) tradingd_producer_segment_info{p})",
                      "on the producer's generation, {{instance}}")), "none"),
    ))


def exec_row() -> Row:
    p = f"{{{SEL}}}"
    bucket = f"tradingd_exec_order_report_latency_seconds_bucket{p}"
    return Row("Exec (orders)", (
        PanelSpec("Exec orders and fills", "Order ring records taken per second by type, and "
                  "fills per second.",
                  (_t(f"sum by (instance, type) (rate(tradingd_exec_orders_total{p}[{RATE}]))",
                      "{{type}} {{instance}}"),
                   _t(f"rate(tradingd_exec_fills_total{p}[{RATE}])", "fills {{instance}}")),
                  "ops"),
        PanelSpec("Exec rejects", "Orders and cancels refused per second, by reason; illegal "
                  "transitions (a bug if not 0).",
                  (_t(f"sum by (instance, reason) (rate(tradingd_exec_rejects_total{p}"
                      f"[{RATE}]))", "{{reason}} {{instance}}"),
                   _t(f"tradingd_exec_illegal_transitions_total{p}",
                      "illegal transitions {{instance}}")), "ops"),
        PanelSpec("Exec order -> report latency", "p50 and p99 of a client's submit to the "
                  "answering report published.",
                  tuple(_t(f"histogram_quantile({q}, sum by (instance, le) (rate({bucket}"
                           f"[{RATE}])))", f"p{name} {{{{instance}}}}")
                        for q, name in ((0.5, "50"), (0.99, "99"))), "s"),
        PanelSpec("Exec clients", "Per client: connected (has a report ring), disconnected by "
                  "exec (slow consumer), open orders.",
                  (_t(f"tradingd_exec_client_connected{p}", "connected {{client}}"),
                   _t(f"tradingd_exec_client_disconnected{p}", "disconnected {{client}}"),
                   _t(f"tradingd_exec_open_orders{p}", "open orders {{client}}")), "short"),
        PanelSpec("Exec slow clients", "Reports kept for clients whose report ring is full, "
                  "ring depths, and slow-client events per second.",
                  (_t(f"tradingd_exec_report_backlog{p}", "backlog {{client}}"),
                   _t(f"tradingd_exec_ring_depth{p}", "{{ring}} depth {{client}}"),
                   _t(f"rate(tradingd_exec_slow_client_events_total{p}[{RATE}])",
                      "slow events {{client}}")), "short"),
        PanelSpec("Exec market and journal", "1 while the market segment is attached; journal "
                  "bytes appended per second.",
                  (_t(f"tradingd_exec_market_attached{p}", "market attached {{instance}}"),
                   _t(f"rate(tradingd_exec_journal_written_bytes_total{p}[{RATE}])",
                      "journal B/s {{instance}}")), "short"),
    ))


def bridge_row() -> Row:
    p = f"{{{SEL}}}"
    bucket = f"tradingd_bridge_end_to_end_delay_seconds_bucket{p}"
    who = "{{job}} {{instance}}"
    return Row("Bridge (NATS)", (
        PanelSpec("Bridge records", "Records bridged per second (publish: acknowledged; "
                  "mirror: written), and NATS messages per second.",
                  (_t(f"rate(tradingd_bridge_records_total{p}[{RATE}])", f"records {who}"),
                   _t(f"rate(tradingd_bridge_messages_total{p}[{RATE}])", f"messages {who}")),
                  "ops"),
        PanelSpec("Bridge health", "NATS connected, and the mirror's upstream delivering "
                  "(1 = yes).",
                  (_t(f"tradingd_bridge_nats_connected{p}", f"NATS {who}"),
                   _t(f"tradingd_bridge_upstream_up{p} and on(job, instance) "
                      f'tradingd_build_info{{{SEL}, mode="mirror"}}', f"upstream {who}")),
                  "none"),
        PanelSpec("Bridge sequence lag", "Publish: ring records and messages not yet "
                  "acknowledged; mirror: stream messages not yet applied (num_pending).",
                  (_t(f"tradingd_bridge_sequence_lag_messages{p}", who),), "short"),
        PanelSpec("Bridge gaps and reconnects", "Origin records lost per second by cause, "
                  "duplicates dropped, reconnections to NATS.",
                  (_t(f"sum by (job, instance, cause) (rate(tradingd_bridge_gap_records_total"
                      f"{p}[{RATE}]))", "lost {{cause}} {{instance}}"),
                   _t(f"rate(tradingd_bridge_duplicate_records_total{p}[{RATE}])",
                      f"duplicates {who}"),
                   _t(f"rate(tradingd_bridge_reconnects_total{p}[{RATE}])",
                      f"reconnects {who}")), "ops"),
        PanelSpec("Bridge end-to-end delay", "p50 and p99 of origin publish -> mirror write "
                  "(across hosts it includes the clocks' offset).",
                  tuple(_t(f"histogram_quantile({q}, sum by (instance, le) (rate({bucket}"
                           f"[{RATE}])))", f"p{name} {{{{instance}}}}")
                        for q, name in ((0.5, "50"), (0.99, "99"))), "s"),
    ))


def process_row() -> Row:
    p = f"{{{SEL}}}"
    who = "{{job}} {{instance}}"
    return Row("Process", (
        PanelSpec("Resident memory", "RSS of each daemon (the segment's mapped pages count).",
                  (_t(f"process_resident_memory_bytes{p}", who),), "bytes"),
        PanelSpec("CPU", "CPU time per second (1 = one core; a spinning consumer shows 1).",
                  (_t(f"rate(process_cpu_seconds_total{p}[{RATE}])", who),), "percentunit"),
        PanelSpec("Open file descriptors", "Open fds and the limit.",
                  (_t(f"process_open_fds{p}", "open {{job}} {{instance}}"),
                   _t(f"process_max_fds{p}", "max {{job}} {{instance}}")), "short"),
    ))


def rows() -> list[Row]:
    """Every row, top to bottom (a new daemon: one line here)."""
    return [producer_row(), consumer_row(), market_row(), gateway_row(), exec_row(),
            bridge_row(), process_row()]


def _target(t: Target, ref: str, kind: str) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(t.expr).legend_format(t.legend).ref_id(ref)
    if t.heatmap:
        q = q.format(PromQueryFormat.HEATMAP)
    if kind == "table":  # the current values, one line per series
        q = q.format(PromQueryFormat.TABLE).instant()
    return q.datasource(DATASOURCE)


_AnyPanel = timeseries.Panel | stat.Panel | table.Panel | heatmap.Panel
_KINDS: dict[str, Callable[[], _AnyPanel]] = {
    "timeseries": timeseries.Panel, "stat": stat.Panel, "table": table.Panel,
    "heatmap": heatmap.Panel}


def _panel(spec: PanelSpec, pid: int, pos: GridPos) -> _AnyPanel:
    panel = (_KINDS[spec.kind]().id(pid).title(spec.title).description(spec.description)
             .datasource(DATASOURCE).unit(spec.unit).grid_pos(pos))
    if spec.mappings:
        panel = panel.mappings([ValueMap(options={
            value: ValueMappingResult(text=text, color=color, index=i)
            for i, (value, text, color) in enumerate(spec.mappings)})])
    if isinstance(panel, heatmap.Panel):
        panel = panel.calculate(False)  # the buckets are Prometheus' own (format: heatmap)
    for i, t in enumerate(spec.targets):
        panel = panel.with_target(_target(t, chr(ord("A") + i), spec.kind))
    return panel


def _variables() -> list[object]:
    return [
        gd.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        gd.QueryVariable("job").label("Job").datasource(DATASOURCE)
        .query("label_values(tradingd_build_info, job)").multi(True).include_all(True)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC),
        gd.QueryVariable("instance").label("Instance").datasource(DATASOURCE)
        .query('label_values(tradingd_build_info{job=~"$job"}, instance)').multi(True)
        .include_all(True).refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC),
    ]


def build() -> dict[str, object]:
    """The dashboard as a JSON-ready dict."""
    d = (gd.Dashboard("tradingd").uid(UID).tags(["tradingd"]).refresh("10s")
         .time("now-1h", "now").timezone("browser").editable()
         .description("tradingd producer, consumers, market view and processes. Generated by "
                      "tradingd/monitoring/dashboard.py."))
    for v in _variables():
        d = d.with_variable(v)  # type: ignore[arg-type]
    y, pid = 0, 1
    for row in rows():
        d = d.with_row(gd.Row(row.title).id(pid).grid_pos(GridPos(h=1, w=WIDTH, x=0, y=y)))
        pid, y, x, line_h = pid + 1, y + 1, 0, 0
        for spec in row.panels:
            if x + spec.width > WIDTH:
                x, y, line_h = 0, y + line_h, 0
            pos = GridPos(h=spec.height, w=spec.width, x=x, y=y)
            d = d.with_panel(_panel(spec, pid, pos))
            pid, x, line_h = pid + 1, x + spec.width, max(line_h, spec.height)
        y += line_h
    out: dict[str, object] = json.loads(JSONEncoder(sort_keys=True, indent=2).encode(d.build()))
    return out


def render() -> str:
    """The dashboard file's text (deterministic)."""
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    print(render(), end="")


if __name__ == "__main__":
    main()


__all__ = ["SEL", "UID", "PanelSpec", "Row", "Target", "build", "render", "rows"]
