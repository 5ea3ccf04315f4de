"""tradingd-demo's pieces without processes: the config it writes, parsing, the table.

The demo run end to end (real daemons, Ctrl-C, nothing left behind) is in
tests/test_consumer_e2e.py.
"""

from __future__ import annotations

import socket
from pathlib import Path

import yaml
from prometheus_client import generate_latest
from support import symbol_stats

from tradingd.consumer.latency import LatencyHistogram
from tradingd.consumer.metrics import ConsumerSnapshot, make_registry
from tradingd.daemon.config import load_config, parse_config
from tradingd.demo import demo_config, free_port, parse_metrics, render, set_rates

REPO = Path(__file__).resolve().parent.parent


def snapshot() -> ConsumerSnapshot:
    h = LatencyHistogram()
    return ConsumerSnapshot(
        segment="tradingd", wait_strategy="block", implementation="c", attached=True,
        generation=0x7F3A1C2B00000001, producer_up=True, producer_state="live",
        heartbeat_timestamp=1.7e9, last_data_timestamp=1.7e9, consumed=1000, lost=0,
        skipped=0, rejected=0, lag=0, generation_changes=0, attaches=1,
        latency_buckets=h.cumulative(), latency_sum=0.0,
        symbols=[symbol_stats("AAPL", 0, 101.5), symbol_stats("EURUSD", 1, float("nan"))],
        symbol_records={"AAPL": 10, "EURUSD": 11, "OLD": 4})


def test_demo_config_overrides_only_what_it_must(tmp_path: Path) -> None:
    base = load_config(REPO / "config" / "tradingd.yaml")
    data = demo_config(base, "tddemo-x", 40001, 40002, 3.0e7)
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = parse_config(path.read_text(), path)  # valid, and relative paths no longer matter
    assert cfg.segment.name == "tddemo-x"
    assert cfg.producer.data_dir == base.producer.data_dir
    assert (cfg.producer.metrics.port, cfg.consumer.metrics.port) == (40001, 40002)
    assert (cfg.producer.replay.mode, cfg.producer.replay.speed) == ("paced", 3.0e7)
    assert cfg.producer.symbols == base.producer.symbols
    assert cfg.consumer.wait == base.consumer.wait
    unchanged = demo_config(base, "tddemo-y", 40001, 40002, 0)
    assert unchanged["producer"].get("replay", {}) == yaml.safe_load(
        base.source_path.read_text())["producer"].get("replay", {})


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_parse_and_render_the_consumers_metrics() -> None:
    text = generate_latest(make_registry(snapshot, process=False)).decode()
    view = parse_metrics(text)
    assert view.generation == "7f3a1c2b00000001" and view.state == "live"
    assert view.scalars["records_consumed_total"] == 1000
    aapl = view.symbols["AAPL"]
    assert (aapl.price, aapl.previous, aapl.first) == (102.0, 101.0, 100.0)
    earlier = parse_metrics(text)
    earlier.symbols["AAPL"].records -= 7  # 7 records in the 2 s between the two scrapes
    set_rates(view, earlier, 2.0)
    assert aapl.rate == 3.5
    lines = render(view, {"AAPL": 2, "EURUSD": 5}, ["AAPL", "TSLA", "EURUSD"], 12.0, 250.0)
    assert lines[0].startswith("tradingd demo")
    assert "producer up" in lines[0] and "consumed 1,000 (250/s)" in lines[0]
    assert "SYMBOL" in lines[1] and "VWAP" in lines[1]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert list(rows) == ["AAPL", "TSLA", "EURUSD", "OLD"]  # config order, then the rest
    assert "2020-09-13 12:26" in rows["AAPL"] and "102.00" in rows["AAPL"]
    assert "+1.00 (+0.99%)" in rows["AAPL"] and "+2.00%" in rows["AAPL"]
    assert rows["TSLA"].split()[1:3] == ["-", "-"]  # configured, no data yet
    assert "102.00000" in rows["EURUSD"]  # its own decimals; NaN VWAP shown as -
