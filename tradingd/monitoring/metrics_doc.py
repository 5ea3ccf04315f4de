"""Generate docs/metrics.md from the daemons' collectors (:mod:`.catalog`).

The committed document is compared with this output by tests/monitoring/test_metrics_doc.py;
regenerate it with ``make docs``.
"""

from __future__ import annotations

from tradingd import constants as C
from tradingd.consumer.latency import BUCKETS_SECONDS
from tradingd.monitoring.catalog import DAEMONS, MetricInfo, catalog, library_metrics
from tradingd.producer.metrics import BATCH_BUCKETS

_PORTS = (f"producer {C.DEFAULT_PRODUCER_METRICS_PORT}, "
          f"consumer {C.DEFAULT_CONSUMER_METRICS_PORT}")
CONVENTIONS = f"""\
## Conventions (for every daemon, present and future)

- **Names**: `tradingd_<daemon>_<what>_<unit>`, base units (`_seconds`, `_bytes`,
  `_ratio`), `_total` on counters, and `promtool check metrics` silent on a scrape (the
  tests run it). A daemon's own metrics carry its prefix (`tradingd_producer_`,
  `tradingd_consumer_`, later `tradingd_gateway_`, `tradingd_bridge_`, `tradingd_exec_`).
- **Shared facts are one family with a `daemon` label**, not one name per daemon:
  `tradingd_build_info{{daemon="producer", version, python_version, layout_version,
  fastpath}}` is served by every daemon (`tradingd/daemon/metrics.py`: `daemon_registry()`).
- **One spelling per label value**: a segment generation is 16 lowercase hex digits
  without `0x` (`generation_label()`), empty while there is none; so producer and consumer
  series join with `on(segment, generation)`.
- **Timestamps, not ages**: `..._timestamp_seconds` is Unix wall-clock time; compute ages
  in PromQL (`time() - x`, recorded as `tradingd:consumer_..._age_seconds`). A time taken
  from the market data itself is named `..._data_timestamp_seconds`: under
  `producer.replay.align: start` it is shifted replay time (the 1980s), so `time() - x`
  means nothing; it tells how far the replay has got.
- **No rate gauges**: rates are `rate()` of the counters (`..._records_total`), so the
  dashboard and the alerts agree with each other; there is no tick-rate gauge.
- **No `_created` series** (`daemon_registry()` disables them process-wide).
- **State read from elsewhere is collected at scrape time** by a custom collector (the
  segment's header, the consumer's snapshot), never updated from the hot loop.
- **Health is never a daemon's own series alone**: a hung producer cannot answer its
  scrapes, so its heartbeat series vanishes instead of going stale. "Down" is `up == 0`;
  "heartbeat stale" is the consumers' view
  (`tradingd_consumer_producer_heartbeat_timestamp_seconds`).
- **Ports**: {_PORTS} on 127.0.0.1 (`<daemon>.metrics` in the config;
  `--metrics-port PORT` / `--no-metrics` on every daemon's command line). New daemons take
  the next ports (9103 gateway, 9104/9105 bridge, 9106 exec) and a Prometheus job
  `tradingd-<daemon>`.
- **A new daemon**: builds its registry with `daemon_registry("<daemon>")`, adds a
  `_<daemon>_registry()` example to `tradingd/monitoring/catalog.py` (this document then
  lists it), its rules group to `tradingd/monitoring/rules.py`, its dashboard row to
  `tradingd/monitoring/dashboard.py`, and its scrape job to `monitoring/prometheus/prometheus.yml`.
"""


def _row(m: MetricInfo) -> str:
    labels = ", ".join(f"`{label}`" for label in m.labels) or "–"
    text = m.help.replace("|", "\\|").replace("\n", " ")
    return f"| `{m.name}` | {m.type} | {labels} | {', '.join(m.daemons)} | {text} |"


def _table(metrics: list[MetricInfo]) -> list[str]:
    return ["| metric | type | labels | served by | meaning |", "|---|---|---|---|---|",
            *(_row(m) for m in metrics)]


def _buckets(bounds: tuple[float, ...]) -> str:
    return ", ".join(f"{b:g}" for b in bounds) + ", +Inf"


def generate() -> str:
    """The Markdown document (deterministic)."""
    metrics = catalog()
    out = [
        "# tradingd metrics",
        "",
        "Generated from the daemons' collectors by `tradingd/monitoring/metrics_doc.py`",
        "(`make docs`): do not edit by hand. Each daemon's registry is built as the daemon",
        "builds it and walked with `collect()`; a test fails when this file is stale.",
        "Alerts and recording rules: `monitoring/prometheus/tradingd.rules.yml`, explained in",
        "[runbook.md](runbook.md).",
        "",
        CONVENTIONS,
        "## Shared by every daemon",
        "",
        *_table([m for m in metrics if len(m.daemons) > 1]),
        "",
    ]
    for daemon in DAEMONS:
        own = [m for m in metrics if m.daemons == (daemon,)]
        out += [f"## {daemon}", "", *_table(own), ""]
    out += [
        "Histogram buckets (upper bounds, seconds):",
        "",
        f"- `tradingd_consumer_publish_latency_seconds`: {_buckets(BUCKETS_SECONDS)}",
        f"- `tradingd_producer_publish_batch_duration_seconds`: {_buckets(BATCH_BUCKETS)}",
        "",
        "## From the client library (every daemon)",
        "",
        "The process, platform and GC collectors of `prometheus_client` (the dashboard's",
        "process row uses `process_*`).",
        "",
        *_table(library_metrics()),
        "",
    ]
    return "\n".join(out)


def main() -> None:
    print(generate(), end="")


if __name__ == "__main__":
    main()
