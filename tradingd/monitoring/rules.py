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
              'up{job=~"tradingd-.*", job!="tradingd-producer"} == 0',
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


def groups() -> list[Group]:
    """Every group, in file order (a new daemon: one line here)."""
    return [common_group(), producer_group(), consumer_group(), gateway_group()]


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
