"""Helpers of tests/monitoring: the dashboard's queries, PromQL name/selector scans, promtool.

Importable as ``monitoring_support`` from the test modules beside it (pytest puts a test
file's directory on sys.path).
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tradingd.monitoring.promserver import find_binary

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"
RULES = MONITORING / "prometheus" / "tradingd.rules.yml"
RULE_TESTS = sorted((MONITORING / "prometheus" / "tests").glob("*.yml"))
DASHBOARD = MONITORING / "grafana" / "dashboards" / "tradingd.json"
RUNBOOK = REPO / "docs" / "runbook.md"
#: What Grafana would put in for the dashboard's variables ("All" selected).
VARIABLES = {"$__rate_interval": "1m", "$job": ".+", "$instance": ".+"}


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    ref: str
    expr: str

    def substituted(self, values: dict[str, str] | None = None) -> str:
        expr = self.expr
        for var, value in {**VARIABLES, **(values or {})}.items():
            expr = expr.replace(var, value)
        return expr


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(dash: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every panel that is not a row (rows nested in collapsed rows included)."""
    out: list[dict[str, Any]] = []
    for p in (dash or dashboard())["panels"]:
        if p["type"] == "row":
            out.extend(p.get("panels", []))
        else:
            out.append(p)
    return out


def panel_queries(dash: dict[str, Any] | None = None) -> list[PanelQuery]:
    """Every target's expression, as written in the JSON."""
    return [PanelQuery(p["title"], t["refId"], t["expr"])
            for p in panels(dash) for t in p.get("targets", [])]


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
             "unless", "bool", "offset", "inf", "nan"}
_IDENT = re.compile(r"(?<![\w:.$])([a-zA-Z_:][\w:]*)(?![\w:])\s*(\()?")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels left out)."""
    text = _STRINGS.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = _GROUPING.sub(" ", text)
    return {m.group(1) for m in _IDENT.finditer(text)
            if m.group(2) is None and m.group(1).lower() not in _KEYWORDS}


def selectors(expr: str, name: str) -> list[str]:
    """The ``{...}`` matcher sets written after each occurrence of metric ``name`` ("" if none)."""
    pattern = re.compile(rf"(?<![\w:]){re.escape(name)}(?![\w:(])\s*(\{{[^}}]*\}})?")
    return [m.group(1) or "" for m in pattern.finditer(expr)]


def ranges(expr: str) -> list[str]:
    """Every ``[range]`` of the expression."""
    return re.findall(r"\[([^\]]+)\]", expr)


def promtool() -> str:
    path = find_binary("promtool")
    if path is None:
        pytest.skip("promtool not installed (Debian package prometheus; make test-deps)")
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60)
