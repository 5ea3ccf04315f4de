"""The Prometheus recording and alerting rules, declared once, written as
``monitoring/prometheus/tradingd.rules.yml`` (``make monitoring``; a test fails when the
committed file is stale).

One :class:`Group` per daemon (plus ``tradingd-common`` for what every daemon shares): a
new daemon adds one function returning its group and one line in :func:`groups`. Each
alert links a section of docs/runbook.md (tests check the anchor exists and that every
alert has promtool unit tests firing and not firing in monitoring/prometheus/tests/).

The rules assume the scrape config's job names (monitoring/prometheus/prometheus.yml):
``tradingd-producer``, ``tradingd-consumer``, ``tradingd-<daemon>`` for later ones. Health
never comes from a producer series alone: a hung producer's scrapes fail and its own
series vanish, so "down" is ``up == 0`` and "heartbeat stale" is the consumers' view.

Usage: ``python -m tradingd.monitoring.rules [--runbook-url URL] > tradingd.rules.yml``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

import yaml

#: Where the runbook is read; alerts link ``RUNBOOK_URL#<anchor>``.
RUNBOOK_URL = "https://github.com/tradingd/tradingd/blob/main/docs/runbook.md"
SEVERITIES = ("critical", "warning", "info")


@dataclass(frozen=True)
class Record:
    """A recording rule: ``record`` follows ``level:metric:operations``."""

    record: str
    expr: str


@dataclass(frozen=True)
class Alert:
    """An alerting rule; ``runbook`` is the anchor of its section in docs/runbook.md."""

    name: str
    expr: str
    severity: str
    summary: str
    description: str
    runbook: str
    for_: str = "0s"


@dataclass(frozen=True)
class Group:
    name: str
    rules: tuple[Record | Alert, ...] = field(default_factory=tuple)
    interval: str | None = None


def common_group() -> Group:
    """What every tradingd daemon has: a scrape target and a process."""
    return Group("tradingd-common", (
        Alert("TradingdTargetDown",
              'up{job=~"tradingd-.*", job!~"tradingd-(producer|exec|bridge-.*)"} == 0',
              "warning", "{{ $labels.job }} on {{ $labels.instance }} is not answering scrapes",
              "Prometheus has not scraped {{ $labels.job }} at {{ $labels.instance }} for "
              "2 minutes: the daemon is stopped, crashed, hung, or its metrics port moved.",
              "tradingdtargetdown", "2m"),
        Alert("TradingdRestartLoop",
              'changes(process_start_time_seconds{job=~"tradingd-.*"}[15m]) > 2 '
              'or increase(tradingd_consumer_generation_changes_total[15m]) > 2',
              "warning", "{{ $labels.job }} on {{ $labels.instance }} keeps restarting",
              "More than 2 restarts in 15 minutes (the process start time changed, or a "
              "consumer saw that many new producer generations): systemd is restarting a "
              "daemon that keeps failing.",
              "tradingdrestartloop"),
    ))


def producer_group() -> Group:
    """The producer's rates, and the alerts about the producer itself."""
    return Group("tradingd-producer", (
        Record("tradingd:producer_records_published:rate1m",
               "rate(tradingd_producer_records_published_total[1m])"),
        Record("tradingd:producer_symbol_records_published:rate1m",
               "rate(tradingd_producer_symbol_records_published_total[1m])"),
        Alert("TradingdProducerDown", 'up{job="tradingd-producer"} == 0',
              "critical", "tradingd producer {{ $labels.instance }} is down",
              "Prometheus cannot scrape the producer at {{ $labels.instance }} for 1 minute: "
              "it is dead, hung (a hung producer cannot answer scrapes), or not started. "
              "Consumers get no new data.",
              "tradingdproducerdown", "1m"),
        Alert("TradingdRowsRejected",
              "sum by (job, instance, file) (tradingd_producer_rows_rejected_total) > 0",
              "info", "{{ $value }} bad rows skipped in {{ $labels.file }}",
              "The producer at {{ $labels.instance }} skipped {{ $value }} bad CSV rows of "
              "{{ $labels.file }} at load (non-strict mode): that symbol replays with gaps.",
              "tradingdrowsrejected"),
    ))


def consumer_group() -> Group:
    """The consumers' view: rates, loss, latency, lag, and the producer as they see it."""
    lat = "tradingd_consumer_publish_latency_seconds_bucket"
    lost = "tradingd_consumer_records_lost_total"
    consumed = "tradingd_consumer_records_consumed_total"
    return Group("tradingd-consumer", (
        Record("tradingd:consumer_records_consumed:rate1m", f"rate({consumed}[1m])"),
        Record("tradingd:consumer_records_lost:rate1m", f"rate({lost}[1m])"),
        Record("tradingd:consumer_records_lost:ratio_rate5m",
               f"rate({lost}[5m]) / (rate({lost}[5m]) + rate({consumed}[5m]))"),
        Record("tradingd:consumer_publish_latency_seconds:p50_rate5m",
               f"histogram_quantile(0.5, rate({lat}[5m]))"),
        Record("tradingd:consumer_publish_latency_seconds:p99_rate5m",
               f"histogram_quantile(0.99, rate({lat}[5m]))"),
        Record("tradingd:consumer_publish_latency_seconds:p999_rate5m",
               f"histogram_quantile(0.999, rate({lat}[5m]))"),
        Record("tradingd:consumer_producer_heartbeat_age_seconds",
               "time() - tradingd_consumer_producer_heartbeat_timestamp_seconds"),
        Record("tradingd:consumer_data_age_seconds",
               "time() - tradingd_consumer_last_receive_timestamp_seconds"),
        Record("tradingd:consumer_lag:ratio",
               "tradingd_consumer_lag_records / tradingd_consumer_ring_capacity"),
        Alert("TradingdHeartbeatStale",
              "tradingd:consumer_producer_heartbeat_age_seconds > 10",
              "critical", "consumer {{ $labels.instance }} sees no producer heartbeat",
              "The last producer heartbeat the consumer at {{ $labels.instance }} saw in the "
              "segment is {{ $value | humanizeDuration }} old: the producer is hung, dead, "
              "or gone (the segment removed and no new producer).",
              "tradingdheartbeatstale", "30s"),
        Alert("TradingdDataStale",
              "tradingd:consumer_data_age_seconds > 60 "
              'and on(job, instance) tradingd_consumer_segment_info{state="live"}',
              "warning", "consumer {{ $labels.instance }} receives no records",
              "The segment is live but the consumer at {{ $labels.instance }} has received "
              "no record for {{ $value | humanizeDuration }}: the replay is paused or stuck, "
              "or the consumer is.",
              "tradingddatastale", "1m"),
        Alert("TradingdGenerationMismatch",
              "(tradingd_consumer_segment_info unless on(segment, generation) "
              "tradingd_producer_segment_info) and on(segment) tradingd_producer_segment_info",
              "warning",
              "consumer {{ $labels.instance }} is not on the producer's generation",
              "The consumer at {{ $labels.instance }} follows generation "
              "'{{ $labels.generation }}' of segment {{ $labels.segment }}, which is not the "
              "generation the producer serves: it did not re-attach after a producer restart.",
              "tradingdgenerationmismatch", "2m"),
        Alert("TradingdRecordsLost", "tradingd:consumer_records_lost:ratio_rate5m > 0",
              "warning", "consumer {{ $labels.instance }} is losing records",
              "{{ $value | humanizePercentage }} of the records in the last 5 minutes were "
              "overwritten before the consumer at {{ $labels.instance }} read them (lapped).",
              "tradingdrecordslost", "2m"),
        Alert("TradingdRecordsRejected",
              "increase(tradingd_consumer_records_rejected_total[5m]) > 0",
              "critical", "consumer {{ $labels.instance }} rejected records",
              "Records whose sequence stamp did not match were dropped: a protocol "
              "violation (a second writer, or a layout mismatch). This should never happen.",
              "tradingdrecordsrejected"),
        Alert("TradingdLagNearRingCapacity", "tradingd:consumer_lag:ratio > 0.8",
              "warning", "consumer {{ $labels.instance }} lags near the ring's capacity",
              "The consumer at {{ $labels.instance }} is {{ $value | humanizePercentage }} of "
              "the ring behind the producer: a little more and it loses records.",
              "tradingdlagnearringcapacity", "1m"),
        Alert("TradingdLatencyHigh",
              "tradingd:consumer_publish_latency_seconds:p99_rate5m > 0.05",
              "warning", "publish->consume p99 latency of {{ $labels.instance }} is high",
              "p99 publish->consume latency at {{ $labels.instance }} is "
              "{{ $value | humanizeDuration }} (over 50 ms for 5 minutes).",
              "tradingdlatencyhigh", "5m"),
    ))


def gateway_group() -> Group:
    """tradingd-gateway's rates and send latency (its health: TradingdTargetDown)."""
    lat = "tradingd_gateway_send_latency_seconds_bucket"
    return Group("tradingd-gateway", (
        Record("tradingd:gateway_messages_sent:rate1m",
               "sum by (job, instance) (rate(tradingd_gateway_messages_sent_total[1m]))"),
        Record("tradingd:gateway_records_sent:rate1m",
               "rate(tradingd_gateway_records_sent_total[1m])"),
        Record("tradingd:gateway_send_latency_seconds:p99_rate5m",
               f"histogram_quantile(0.99, sum by (job, instance, le) (rate({lat}[5m])))"),
        Record("tradingd:gateway_slow_client_closes:rate5m",
               'rate(tradingd_gateway_clients_closed_total{reason="slow_client"}[5m])'),
    ))


def exec_group() -> Group:
    """tradingd-exec: down, illegal transitions, rejects, slow and disconnected clients."""
    rejects = "tradingd_exec_rejects_total"
    orders = "tradingd_exec_orders_total"
    lat = "tradingd_exec_order_report_latency_seconds_bucket"
    return Group("tradingd-exec", (
        Record("tradingd:exec_orders:rate5m",
               f"sum by (job, instance) (rate({orders}[5m]))"),
        Record("tradingd:exec_rejects:rate5m",
               f"sum by (job, instance) (rate({rejects}[5m]))"),
        Record("tradingd:exec_rejects:ratio_rate5m",
               "tradingd:exec_rejects:rate5m / tradingd:exec_orders:rate5m"),
        Record("tradingd:exec_fills:rate5m", "rate(tradingd_exec_fills_total[5m])"),
        Record("tradingd:exec_order_report_latency_seconds:p99_rate5m",
               f"histogram_quantile(0.99, sum by (job, instance, le) (rate({lat}[5m])))"),
        Alert("TradingdExecDown", 'up{job="tradingd-exec"} == 0',
              "critical", "tradingd-exec {{ $labels.instance }} is down",
              "Prometheus cannot scrape tradingd-exec at {{ $labels.instance }} for 1 minute: "
              "it is dead, hung or not started. Clients' orders are not taken and no reports "
              "come back.",
              "tradingdexecdown", "1m"),
        Alert("TradingdExecIllegalTransitions",
              "tradingd_exec_illegal_transitions_total > 0",
              "critical", "tradingd-exec {{ $labels.instance }} refused illegal order "
              "transitions",
              "The order engine at {{ $labels.instance }} refused {{ $value }} order state "
              "transitions its transition table does not allow: a bug in exec. Orders "
              "involved may be in a wrong state.",
              "tradingdexecillegaltransitions"),
        Alert("TradingdExecAcceptPredictionErrors",
              "tradingd_exec_accept_prediction_errors_total > 0",
              "critical", "tradingd-exec {{ $labels.instance }} published NEW reports its "
              "engine did not make",
              "The C accept path of tradingd-exec at {{ $labels.instance }} acknowledged "
              "{{ $value }} orders that the order engine then decided otherwise (rejected, or "
              "numbered differently): a bug in exec. The clients involved hold a NEW report "
              "for an order exec's state does not have; the log names them. Run exec with "
              "TRADINGD_PURE_PYTHON=1 (no prediction) until fixed.",
              "tradingdexecacceptpredictionerrors"),
        Alert("TradingdExecRejectsHigh",
              "tradingd:exec_rejects:ratio_rate5m > 0.2 and tradingd:exec_rejects:rate5m > 0.1",
              "warning", "tradingd-exec {{ $labels.instance }} rejects many orders",
              "{{ $value | humanizePercentage }} of the orders and cancels exec at "
              "{{ $labels.instance }} took in the last 5 minutes were rejected (risk limits, "
              "unknown symbols, bad records): a client misbehaves or the limits are too tight.",
              "tradingdexecrejectshigh", "5m"),
        Alert("TradingdExecSlowClient", "tradingd_exec_report_backlog > 0",
              "warning", "exec client {{ $labels.client }} does not read its reports",
              "Exec at {{ $labels.instance }} has kept {{ $value }} reports for client "
              "{{ $labels.client }} for 2 minutes: its report ring is full. Past "
              "exec.report_backlog the client is disconnected.",
              "tradingdexecslowclient", "2m"),
        Alert("TradingdExecClientDisconnected", "tradingd_exec_client_disconnected == 1",
              "warning", "exec disconnected client {{ $labels.client }}",
              "Exec at {{ $labels.instance }} disconnected client {{ $labels.client }} (slow "
              "consumer: its report backlog overflowed); its open orders were canceled. It "
              "gets no reports until it reconnects (a new OrderClient).",
              "tradingdexecclientdisconnected"),
    ))


def bridge_group() -> Group:
    """tradingd-bridge publish|mirror: down, upstream down, gaps, lag, reconnect loops."""
    mirror = 'on(job, instance) tradingd_build_info{daemon="bridge", mode="mirror"}'
    lag = "tradingd_bridge_sequence_lag_messages"
    return Group("tradingd-bridge", (
        Record("tradingd:bridge_records:rate1m", "rate(tradingd_bridge_records_total[1m])"),
        Record("tradingd:bridge_gap_records:increase5m",
               "sum by (job, instance, cause) "
               "(increase(tradingd_bridge_gap_records_total[5m]))"),
        Record("tradingd:bridge_sequence_lag_messages:deriv5m", f"deriv({lag}[5m])"),
        Alert("TradingdBridgeDown", 'up{job=~"tradingd-bridge-.*"} == 0',
              "critical", "{{ $labels.job }} on {{ $labels.instance }} is down",
              "Prometheus cannot scrape {{ $labels.job }} at {{ $labels.instance }} for 1 "
              "minute: it is dead, hung or not started. Records do not cross to the other "
              "hosts (publish) or the local mirror segment goes stale (mirror).",
              "tradingdbridgedown", "1m"),
        Alert("TradingdBridgeUpstreamDown", f"tradingd_bridge_upstream_up == 0 and {mirror}",
              "critical", "mirror {{ $labels.instance }} gets nothing from its upstream",
              "The mirror bridge at {{ $labels.instance }} has received nothing from the "
              "origin for 1 minute (bridge.mirror.upstream_timeout passed): the origin's "
              "publish bridge, producer or NATS is down. The local segment is marked "
              "upstream_down.",
              "tradingdbridgeupstreamdown", "1m"),
        Alert("TradingdBridgeRecordsLost", "tradingd:bridge_gap_records:increase5m > 0",
              "warning", "mirror {{ $labels.instance }} lost records ({{ $labels.cause }})",
              "{{ $value | humanize }} origin records never reached the mirror at "
              "{{ $labels.instance }} in the last 5 minutes (cause {{ $labels.cause }}): the "
              "mirror segment has gaps.",
              "tradingdbridgerecordslost"),
        Alert("TradingdBridgeLagGrowing",
              f"tradingd:bridge_sequence_lag_messages:deriv5m > 0 and {lag} > 1000",
              "warning", "{{ $labels.job }} on {{ $labels.instance }} falls behind",
              "The JetStream sequence lag of {{ $labels.job }} at {{ $labels.instance }} has "
              "been growing for 5 minutes (by {{ $value | humanize }} messages a second): it "
              "bridges slower than the records arrive and will lose records to retention or "
              "lapping.",
              "tradingdbridgelaggrowing", "5m"),
        Alert("TradingdBridgeReconnectLoop",
              "increase(tradingd_bridge_reconnects_total[15m]) > 3",
              "warning", "{{ $labels.job }} on {{ $labels.instance }} keeps reconnecting to "
              "NATS",
              "{{ $value | humanize }} reconnections to NATS in 15 minutes by {{ $labels.job }} at "
              "{{ $labels.instance }}: the NATS server restarts, the network drops, or a "
              "slow-consumer limit on the server cuts the bridge off.",
              "tradingdbridgereconnectloop"),
    ))


def groups() -> list[Group]:
    """Every group, in file order (a new daemon: one line here)."""
    return [common_group(), producer_group(), consumer_group(), gateway_group(),
            exec_group(), bridge_group()]


def alerts() -> list[Alert]:
    return [r for g in groups() for r in g.rules if isinstance(r, Alert)]


def rule_dict(rule: Record | Alert, runbook_url: str = RUNBOOK_URL) -> dict[str, object]:
    """One rule as the rules file writes it."""
    if isinstance(rule, Record):
        return {"record": rule.record, "expr": rule.expr}
    out: dict[str, object] = {"alert": rule.name, "expr": rule.expr}
    if rule.for_ != "0s":
        out["for"] = rule.for_
    out["labels"] = {"severity": rule.severity}
    out["annotations"] = {"summary": rule.summary, "description": rule.description,
                          "runbook_url": f"{runbook_url}#{rule.runbook}"}
    return out


def render(runbook_url: str = RUNBOOK_URL) -> str:
    """The rules file's text."""
    doc = {"groups": [
        {"name": g.name, **({"interval": g.interval} if g.interval else {}),
         "rules": [rule_dict(r, runbook_url) for r in g.rules]} for g in groups()]}
    head = ("# Generated by `python -m tradingd.monitoring.rules` (make monitoring) from\n"
            "# tradingd/monitoring/rules.py: edit that, not this file.\n")
    return head + yaml.safe_dump(doc, sort_keys=False, width=1000, allow_unicode=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tradingd.monitoring.rules",
                                     description="Print tradingd's Prometheus rules file.")
    parser.add_argument("--runbook-url", default=RUNBOOK_URL,
                        help="where docs/runbook.md is served (default: %(default)s)")
    args = parser.parse_args(argv)
    sys.stdout.write(render(args.runbook_url))


if __name__ == "__main__":
    main()


__all__ = ["RUNBOOK_URL", "SEVERITIES", "Alert", "Group", "Record", "alerts", "groups",
           "render", "rule_dict"]
