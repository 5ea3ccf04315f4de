"""The consumer's metrics: names, types and values from a snapshot; promtool-clean."""

from __future__ import annotations

import math
import urllib.request

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from support import promtool_lint, symbol_stats

from tradingd.consumer.latency import LatencyHistogram
from tradingd.consumer.metrics import ConsumerSnapshot, make_registry
from tradingd.daemon.metrics_http import MetricsServer
from tradingd.errors import MetricsUnavailable


def snapshot(**kw: object) -> ConsumerSnapshot:
    h = LatencyHistogram()
    h.observe_list_ns([150, 3_000, 40_000, 50_000_000])
    base: dict = dict(
        segment="tradingd", wait_strategy="block", implementation="c", attached=True,
        generation=0x7F3A1C2B00000001, producer_up=True, producer_state="live",
        heartbeat_timestamp=1.7e9, last_data_timestamp=1.7e9 + 0.5, consumed=1000, lost=7,
        skipped=3, rejected=0, lag=2, generation_changes=1, attaches=2,
        latency_buckets=h.cumulative(), latency_sum=h.sum_seconds,
        symbols=[symbol_stats("AAPL", 0), symbol_stats("EURUSD", 1, vwap=math.nan)],
        symbol_records={"AAPL": 10, "EURUSD": 11, "OLD": 4}, ring_capacity=4096)
    base.update(kw)
    return ConsumerSnapshot(**base)


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_values_from_the_snapshot() -> None:
    text = generate_latest(make_registry(snapshot, process=False)).decode()
    s = samples(text)
    p = "tradingd_consumer_"
    assert s[(p + "records_consumed_total", ())] == 1000
    assert s[(p + "records_lost_total", ())] == 7
    assert s[(p + "records_skipped_total", ())] == 3
    assert s[(p + "lag_records", ())] == 2
    assert s[(p + "producer_up", ())] == 1
    assert s[(p + "generation_changes_total", ())] == 1
    assert s[(p + "producer_heartbeat_timestamp_seconds", ())] == 1.7e9
    assert s[(p + "segment_info", (("generation", "7f3a1c2b00000001"), ("segment", "tradingd"),
                                   ("state", "live")))] == 1
    assert s[(p + "publish_latency_seconds_bucket", (("le", "1e-07"),))] == 0
    assert s[(p + "publish_latency_seconds_bucket", (("le", "2.5e-07"),))] == 1
    assert s[(p + "publish_latency_seconds_bucket", (("le", "0.01"),))] == 3
    assert s[(p + "publish_latency_seconds_bucket", (("le", "+Inf"),))] == 4
    assert s[(p + "publish_latency_seconds_count", ())] == 4
    assert s[(p + "symbol_price", (("symbol", "AAPL"),))] == 102.0
    assert s[(p + "symbol_volatility", (("symbol", "AAPL"),))] == 0.02
    assert math.isnan(s[(p + "symbol_vwap", (("symbol", "EURUSD"),))])
    assert s[(p + "symbol_records_consumed_total", (("symbol", "OLD"),))] == 4  # earlier generation
    assert s[(p + "symbol_data_timestamp_seconds", (("symbol", "AAPL"),))] == 1.6e9
    assert s[(p + "last_receive_timestamp_seconds", ())] == 1.7e9 + 0.5
    assert s[(p + "ring_capacity", ())] == 4096
    assert s[(p + "publish_latency_seconds_bucket", (("le", "10.0"),))] == 4  # 50 ms inside
    build = [labels for name, labels in s if name == "tradingd_build_info"]
    assert len(build) == 1 and ("daemon", "consumer") in build[0]
    assert not [name for name, _ in s if name.endswith("_created")]
    assert all(name.startswith(p) for name, _ in s if name != "tradingd_build_info")


def test_waiting_snapshot_omits_unknown_timestamps() -> None:
    snap = snapshot(attached=False, generation=0, producer_up=False, producer_state="none",
                    heartbeat_timestamp=None, last_data_timestamp=None, symbols=[],
                    symbol_records={}, ring_capacity=0)
    s = samples(generate_latest(make_registry(lambda: snap, process=False)).decode())
    names = {name for name, _ in s}
    assert "tradingd_consumer_producer_heartbeat_timestamp_seconds" not in names
    assert "tradingd_consumer_last_receive_timestamp_seconds" not in names
    assert "tradingd_consumer_ring_capacity" not in names
    assert s[("tradingd_consumer_segment_info", (("generation", ""), ("segment", "tradingd"),
                                                 ("state", "none")))] == 1
    assert s[("tradingd_consumer_producer_up", ())] == 0


def test_promtool_is_silent_with_process_collectors() -> None:
    registry = make_registry(snapshot)
    text = generate_latest(registry).decode()
    assert "process_cpu_seconds_total" in text and 'tradingd_build_info{daemon="consumer"' in text
    promtool_lint(text)


KEY = "consumer.metrics.port"


def test_server_binds_port_zero_and_releases_it() -> None:
    server = MetricsServer(make_registry(snapshot, process=False), "127.0.0.1", 0, KEY)
    try:
        assert server.port > 0
        with urllib.request.urlopen(server.url, timeout=5) as resp:
            assert b"tradingd_consumer_records_consumed_total 1000.0" in resp.read()
        with pytest.raises(MetricsUnavailable, match=f"127.0.0.1:{server.port}"):
            MetricsServer(make_registry(snapshot, process=False), "127.0.0.1", server.port, KEY)
    finally:
        server.close()
    again = MetricsServer(make_registry(snapshot, process=False), "127.0.0.1", server.port, KEY)
    again.close()
