"""The shipped Prometheus rules: promtool-clean, unit-tested alert by alert, linked to the
runbook, and the committed file equal to its generator's output."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from monitoring_support import MONITORING, RULE_TESTS, RULES, RUNBOOK, run_promtool

from tradingd.monitoring import rules


def test_the_committed_rules_file_is_generated_from_the_code() -> None:
    assert RULES.read_text() == rules.render(), \
        "monitoring/prometheus/tradingd.rules.yml is stale: run `make monitoring`"


def test_promtool_check_rules_and_config() -> None:
    res = run_promtool("check", "rules", str(RULES))
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"SUCCESS: {sum(len(g.rules) for g in rules.groups())} rules found" in res.stdout
    res = run_promtool("check", "config", str(MONITORING / "prometheus" / "prometheus.yml"))
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_unit_tests_pass() -> None:
    assert RULE_TESTS, "no promtool tests in monitoring/prometheus/tests"
    res = run_promtool("test", "rules", *map(str, RULE_TESTS))
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """A test expecting the wrong thing fails: the suite above is not vacuous."""
    doc = yaml.safe_load(RULE_TESTS[0].read_text())
    doc["rule_files"] = [str(RULES)]
    case = next(t for t in doc["tests"] if any(a["exp_alerts"] for a in t["alert_rule_test"]))
    for a in case["alert_rule_test"]:
        a["exp_alerts"] = [] if a["exp_alerts"] else [{"exp_labels": {"severity": "critical"}}]
    doc["tests"] = [case]
    broken = tmp_path / "broken.test.yml"
    broken.write_text(yaml.safe_dump(doc))
    res = run_promtool("test", "rules", str(broken))
    assert res.returncode != 0 and "FAILED" in res.stdout + res.stderr


def alerts_under_test(test_files: list[Path]) -> tuple[set[str], set[str]]:
    """Alert names tested firing (non-empty exp_alerts) and not firing (empty)."""
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in test_files:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for a in case.get("alert_rule_test", []):
                (firing if a.get("exp_alerts") else quiet).add(a["alertname"])
    return firing, quiet


def untested(alert_names: set[str], test_files: list[Path]) -> list[str]:
    """Problems: alerts without a firing or a not-firing test, tests of unknown alerts."""
    firing, quiet = alerts_under_test(test_files)
    problems = [f"{a}: no test where it fires" for a in sorted(alert_names - firing)]
    problems += [f"{a}: no test where it stays quiet" for a in sorted(alert_names - quiet)]
    problems += [f"{a}: tested but not in the rules" for a in sorted((firing | quiet)
                                                                    - alert_names)]
    return problems


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    names = {a.name for a in rules.alerts()}
    assert len(names) == len(rules.alerts()), "duplicate alert names"
    assert untested(names, RULE_TESTS) == []


def test_an_alert_without_a_test_is_caught() -> None:
    names = {a.name for a in rules.alerts()} | {"TradingdBrandNew"}
    assert untested(names, RULE_TESTS) == [
        "TradingdBrandNew: no test where it fires",
        "TradingdBrandNew: no test where it stays quiet"]


def anchors(markdown: str) -> set[str]:
    """GitHub-style anchors of the document's headings."""
    out = set()
    for line in markdown.splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(slug)
    return out


@pytest.mark.parametrize("alert", rules.alerts(), ids=lambda a: a.name)
def test_alert_has_severity_annotations_and_a_runbook_section(alert: rules.Alert) -> None:
    assert alert.severity in rules.SEVERITIES
    assert alert.summary and alert.description
    assert alert.runbook in anchors(RUNBOOK.read_text()), \
        f"docs/runbook.md has no section #{alert.runbook}"
    section = RUNBOOK.read_text().split(f"## {alert.name}", 1)
    assert len(section) == 2, f"docs/runbook.md: no '## {alert.name}' heading"
    body = section[1].split("\n## ", 1)[0]
    assert "tradingd-inspect" in body or "journalctl" in body, \
        f"the runbook section of {alert.name} names no command to run"


def test_rule_file_shape() -> None:
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                assert re.fullmatch(r"tradingd:[a-z0-9_]+(:[a-z0-9_]+)?", rule["record"]), rule
                assert set(rule) == {"record", "expr"}
            else:
                assert re.fullmatch(r"Tradingd[A-Za-z]+", rule["alert"])
                assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
                assert rule["annotations"]["runbook_url"].startswith(rules.RUNBOOK_URL + "#")


def test_rule_metric_names_exist() -> None:
    """Every metric a rule reads is served by a daemon, the library, or is a rule's output."""
    from monitoring_support import metric_names

    from tradingd.monitoring.catalog import metric_names as served

    recorded = {r.record for g in rules.groups() for r in g.rules
                if isinstance(r, rules.Record)}
    known = served() | recorded | {"up"}
    for g in rules.groups():
        for r in g.rules:
            assert metric_names(r.expr) <= known, (r, metric_names(r.expr) - known)


def test_readme_alert_table_lists_every_alert_with_its_severity() -> None:
    text = (MONITORING.parent / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(Tradingd\w+)` \| (\w+) \|", text, re.M))
    assert rows == {a.name: a.severity for a in rules.alerts()}
