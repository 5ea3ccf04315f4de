"""The Grafana dashboard: generated, every panel query valid PromQL (promtool, as the Ceph
mixin checks its dashboards), and the dashboard linter's rules re-stated as tests
(Grafana and dashboard-linter are not installable here; the live queries are in
test_monitoring_live.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from monitoring_support import (
    DASHBOARD,
    MONITORING,
    dashboard,
    metric_names,
    panel_queries,
    panels,
    ranges,
    run_promtool,
    selectors,
)

from tradingd.monitoring import catalog, rules
from tradingd.monitoring import dashboard as gen

QUERIES = panel_queries()


def test_the_committed_dashboard_is_generated_from_the_code() -> None:
    assert DASHBOARD.read_text() == gen.render(), \
        "monitoring/grafana/dashboards/tradingd.json is stale: run `make monitoring`"


def test_the_rows_the_issue_asks_for() -> None:
    titles = [p["title"] for p in dashboard()["panels"] if p["type"] == "row"]
    assert titles == ["Producer", "Consumers", "Market (per symbol)", "Gateway (WebSocket)",
                      "Exec (orders)", "Bridge (NATS)", "Process"]
    names = {p["title"] for p in panels()}
    for want in ("Up", "Segment state", "Heartbeat age", "Publish rate per symbol",
                 "Publish batch duration", "Replay progress", "Restarts and generations",
                 "Rows rejected at load", "Lag vs ring capacity", "Records consumed and lost",
                 "Publish->consume latency", "Latency heatmap", "Wait strategy", "Price",
                 "VWAP", "Volatility", "Resident memory", "CPU", "Open file descriptors"):
        assert want in names


def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    """Each query, variables substituted, as a recording rule: promtool parses them all."""
    assert len(QUERIES) >= 30
    doc = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:q{i}", "expr": q.substituted()} for i, q in enumerate(QUERIES)]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(doc))
    res = run_promtool("check", "rules", str(path))
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"SUCCESS: {len(QUERIES)} rules found" in res.stdout


def test_a_broken_query_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": [
        {"record": "dashboard:bad", "expr": "rate(tradingd_consumer_records_lost_total{)"}]}]}))
    assert run_promtool("check", "rules", str(path)).returncode != 0


# -- the dashboard linter's rules (grafana/dashboard-linter), re-stated -------------------


def test_template_datasource_rule() -> None:
    """A datasource variable of type prometheus, and every panel and target uses it."""
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for p in panels():
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", p["title"]


@pytest.mark.parametrize("name", ["job", "instance"])
def test_template_job_and_instance_rules(name: str) -> None:
    v = {v["name"]: v for v in dashboard()["templating"]["list"]}[name]
    assert v["type"] == "query" and v["datasource"]["uid"] == "${datasource}"
    assert v["multi"] is True and v["includeAll"] is True
    assert v["query"].startswith("label_values(tradingd_build_info")
    assert v["query"].endswith(f", {name})")
    if name == "instance":
        assert 'job=~"$job"' in v["query"]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: f"{q.panel}/{q.ref}")
def test_target_job_instance_and_rate_interval_rules(query: object) -> None:
    """Every selector has job=~"$job" and instance=~"$instance"; every range is
    $__rate_interval; every metric exists (served by a daemon or the client library)."""
    expr = query.expr  # type: ignore[attr-defined]
    names = metric_names(expr)
    assert names, expr
    assert names <= catalog.metric_names() | {"up"}, names - catalog.metric_names()
    for name in names:
        for sel in selectors(expr, name):
            assert 'job=~"$job"' in sel and 'instance=~"$instance"' in sel, (name, expr)
    assert all(r == "$__rate_interval" for r in ranges(expr)), expr


def test_the_linter_checks_are_not_vacuous() -> None:
    expr = 'rate(tradingd_consumer_records_lost_total{job=~"$job"}[5m]) / up'
    assert metric_names(expr) == {"tradingd_consumer_records_lost_total", "up"}
    assert selectors(expr, "up") == [""]
    assert ranges(expr) == ["5m"]
    assert metric_names('sum by (instance, le) (rate(x_bucket{a="b"}[$__rate_interval]))') \
        == {"x_bucket"}


def test_panel_title_description_units_and_unique_ids() -> None:
    ids = [p["id"] for p in dashboard()["panels"]]
    assert len(ids) == len(set(ids))
    for p in panels():
        assert p["title"] and p.get("description"), p
        assert p["fieldConfig"]["defaults"].get("unit"), p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)), p["title"]
        grid = p["gridPos"]
        assert grid["x"] + grid["w"] <= 24


def test_no_rows_overlap() -> None:
    cells: set[tuple[int, int]] = set()
    for p in dashboard()["panels"]:
        g = p["gridPos"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, p["title"]
        cells |= mine


def test_provisioning_files() -> None:
    ds = yaml.safe_load((MONITORING / "grafana/provisioning/datasources/tradingd.yaml")
                        .read_text())
    assert ds["apiVersion"] == 1 and ds["datasources"][0]["type"] == "prometheus"
    prov = yaml.safe_load((MONITORING / "grafana/provisioning/dashboards/tradingd.yaml")
                          .read_text())
    provider = prov["providers"][0]
    assert prov["apiVersion"] == 1 and provider["type"] == "file"
    assert provider["options"]["path"]
    assert dashboard()["uid"] == gen.UID


def test_alert_names_and_dashboard_agree_on_jobs() -> None:
    """The rules' job names are the ones the example scrape config defines."""
    cfg = yaml.safe_load((MONITORING / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"] for j in cfg["scrape_configs"]}
    assert jobs == {"tradingd-producer", "tradingd-consumer", "tradingd-gateway",
                    "tradingd-exec", "tradingd-bridge-publish", "tradingd-bridge-mirror"}
    assert cfg["rule_files"] == ["tradingd.rules.yml"]
    text = " ".join(a.expr for a in rules.alerts())
    assert 'job="tradingd-producer"' in text
    assert 'job="tradingd-exec"' in text and 'job=~"tradingd-bridge-.*"' in text
