"""docs/websocket-api.md stays true to tradingd/gateway/protocol.py, the schema and the metrics."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import generate_latest

from tradingd.consumer.latency import LatencyHistogram
from tradingd.daemon.config import SCHEMA
from tradingd.daemon.schema import Map
from tradingd.gateway.metrics import PREFIX, GatewaySnapshot, make_registry
from tradingd.gateway.protocol import (
    CLOSE_REASONS,
    OPS,
    RECORD_FIELDS,
    CloseCode,
    ErrorCode,
)

DOC = (Path(__file__).resolve().parents[2] / "docs" / "websocket-api.md").read_text()


def test_error_and_close_code_tables() -> None:
    for code in ErrorCode:
        assert re.search(rf"^\| {code.value} \| `{code.name.lower()}` \|", DOC, re.M), code
    for close in CloseCode:
        assert re.search(rf"^\| {close.value} \| `{close.name}` \|", DOC, re.M), close
    for op in OPS:
        assert f"| `{op}` |" in DOC, op
    for reason in CLOSE_REASONS:
        assert reason in DOC.split("clients_closed_total{reason}")[-1], reason


def test_record_field_table_is_in_order() -> None:
    rows = re.findall(r"^\| (\d) \| `(\w+)` \|", DOC, re.M)
    assert [(int(i), name) for i, name in rows] == list(enumerate(RECORD_FIELDS))


def test_settings_table_lists_every_gateway_key_with_its_default() -> None:
    gateway = SCHEMA.fields["gateway"]
    assert isinstance(gateway, Map)
    for key, node in gateway.fields.items():
        if key == "metrics":
            assert "| `metrics` | 127.0.0.1:9103 |" in DOC
            continue
        default = node.default
        shown = ("null" if default is None else "[]" if default == [] else str(default))
        assert f"| `{key}` | {shown} |" in DOC, key


def test_every_metric_is_documented() -> None:
    h = LatencyHistogram()
    snap = GatewaySnapshot(
        segment="s", generation=1, attached=True, producer_up=True, connections=0, accepted=0,
        rejected={}, subscriptions={}, messages_sent={}, bytes_sent=0, records_read=0,
        records_sent=0, records_lapped=0, updates_conflated=0, updates_dropped=0,
        congestions=0, closes={}, errors={}, generation_changes=0,
        latency_buckets=h.cumulative(), latency_sum=0.0)
    text = generate_latest(make_registry(lambda: snap, process=False)).decode()
    families = set(re.findall(rf"^# TYPE {PREFIX}(\w+) ", text, re.M))
    assert families
    for name in families:
        assert f"`{name}" in DOC or f"`{name}_total" in DOC, name
