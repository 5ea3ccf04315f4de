"""docs/metrics.md is generated from the collectors and lists every metric they serve."""

from __future__ import annotations

from monitoring_support import REPO

from tradingd.monitoring import catalog, metrics_doc


def test_metrics_doc_is_up_to_date() -> None:
    assert (REPO / "docs" / "metrics.md").read_text() == metrics_doc.generate(), \
        "docs/metrics.md is stale: run `make docs`"


def test_catalog_covers_both_daemons_with_one_build_info() -> None:
    metrics = {m.name: m for m in catalog.catalog()}
    assert metrics["tradingd_build_info"].daemons == tuple(catalog.DAEMONS)  # every daemon
    assert metrics["tradingd_build_info"].daemons[:2] == ("producer", "consumer")
    assert "daemon" in metrics["tradingd_build_info"].labels
    assert "tradingd_consumer_build_info" not in metrics
    assert "tradingd_consumer_symbol_tick_rate" not in metrics
    assert metrics["tradingd_consumer_symbol_data_timestamp_seconds"].labels == ("symbol",)
    assert metrics["tradingd_producer_segment_info"].labels == (
        "segment", "generation", "layout_version")
    for m in metrics.values():
        assert m.name.startswith("tradingd_") and m.help, m
        assert m.name == "tradingd_build_info" or m.name.startswith(
            tuple(f"tradingd_{d}_" for d in m.daemons)), m
    text = (REPO / "docs" / "metrics.md").read_text()
    for name in metrics:
        assert f"| `{name}` |" in text
