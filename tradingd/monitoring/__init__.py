"""Monitoring that ships: what Prometheus and Grafana need to watch tradingd.

This wing owns the generators of the committed monitoring files, each one source of truth
with a staleness test: :mod:`.catalog` (every metric of every daemon, read from the
collectors themselves) and :mod:`.metrics_doc` (docs/metrics.md), :mod:`.rules`
(monitoring/prometheus/tradingd.rules.yml), :mod:`.dashboard`
(monitoring/grafana/dashboards/tradingd.json), and :mod:`.monitor` (``make monitor``: the
demo pair plus a local Prometheus with the rules). It sits above the daemons' wings (it
imports their metrics modules); nothing imports it. The dashboard builder needs the
``test`` extra (grafana-foundation-sdk); the daemons never import this wing.
"""

from tradingd.monitoring.catalog import MetricInfo, metric_names
from tradingd.monitoring.rules import Alert, alerts, groups

__all__ = ["Alert", "MetricInfo", "alerts", "groups", "metric_names"]
