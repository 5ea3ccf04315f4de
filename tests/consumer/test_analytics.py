"""Analytics figures against straightforward per-record computations.

The reference below walks the records one by one in plain Python (lists, math.log,
statistics.stdev) and knows nothing of ring buffers, argsort or numpy scatter: the
vectorised code must give the same figures for every batch split, window size and
symbol interleaving.
"""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
import pytest

from tradingd.clock import ManualClock
from tradingd.consumer.analytics import Analytics
from tradingd.segment import layout as L


def make_records(n: int, symbols: int, seed: int = 1) -> np.ndarray:
    """Random walk prices, random volumes, random symbol interleaving."""
    rng = np.random.default_rng(seed)
    recs = np.zeros(n, L.RECORD_DTYPE)
    recs["symbol_id"] = rng.integers(0, symbols, n)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    recs["close"] = close
    recs["open"] = close * (1 + rng.normal(0, 0.001, n))
    recs["high"] = close * (1 + rng.uniform(0, 0.02, n))
    recs["low"] = close * (1 - rng.uniform(0, 0.02, n))
    recs["volume"] = rng.integers(0, 10_000, n).astype(float)
    recs["event_ns"] = np.arange(n) * 1_000_000_000
    recs["publish_ns"] = np.arange(n) + 5
    return recs


def reference(recs: np.ndarray, window: int) -> dict[int, dict[str, float]]:
    """Per-symbol figures computed record by record, the obvious way."""
    per: dict[int, list[tuple]] = {}
    for r in recs.tolist():
        rec = dict(zip(L.RECORD_DTYPE.names, r, strict=True))
        per.setdefault(rec["symbol_id"], []).append(rec)
    out = {}
    for sym, rows in per.items():
        win = rows[-window:]
        closes = [r["close"] for r in win]
        vols = [r["volume"] for r in win]
        rets = [math.log(b / a) for a, b in itertools.pairwise(closes)]
        out[sym] = {
            "records": len(rows),
            "last_price": rows[-1]["close"],
            "previous_price": rows[-2]["close"] if len(rows) > 1 else math.nan,
            "first_price": rows[0]["close"],
            "vwap": (sum(c * v for c, v in zip(closes, vols, strict=True)) / sum(vols)
                     if sum(vols) else math.nan),
            "return_mean": statistics.fmean(rets) if rets else math.nan,
            "return_std": statistics.stdev(rets) if len(rets) >= 2 else math.nan,
            "high": max(r["high"] for r in win),
            "low": min(r["low"] for r in win),
            "last_volume": rows[-1]["volume"],
            "window_volume": sum(vols),
            "total_volume": sum(r["volume"] for r in rows),
            "window_records": len(win),
            "last_event_ns": rows[-1]["event_ns"],
            "last_publish_ns": rows[-1]["publish_ns"],
        }
    return out


def assert_matches(a: Analytics, ref: dict[int, dict[str, float]]) -> None:
    stats = {s.symbol_id: s for s in a.stats()}
    assert sorted(stats) == sorted(ref)
    for sym, want in ref.items():
        got = stats[sym]
        for key, value in want.items():
            assert getattr(got, key) == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), \
                (sym, key)
        assert got.change == pytest.approx(want["last_price"] - want["previous_price"],
                                           nan_ok=True)
        assert got.change_since_first_pct == pytest.approx(
            100 * (want["last_price"] / want["first_price"] - 1))


@pytest.mark.parametrize("symbols", [5, 20])  # grouped by masks / by a sort
@pytest.mark.parametrize("window", [2, 7, 64, 5000])
@pytest.mark.parametrize("split", ["one", "small", "mixed", "tuples", "whole"])
def test_figures_match_reference(window: int, split: str, symbols: int) -> None:
    recs = make_records(3000, symbols, seed=window)
    a = Analytics(32, window, clock=ManualClock(), stage_records=500)
    if split == "whole":
        a.update(recs)
    else:
        rng = np.random.default_rng(7)
        pos = 0
        while pos < len(recs):
            size = {"one": 1, "small": int(rng.integers(1, 9)), "tuples": 50,
                    "mixed": int(rng.choice([1, 3, 9, 100, 700]))}[split]
            chunk = recs[pos:pos + size]
            a.update(chunk.tolist() if split == "tuples" else chunk)  # tuples: poll_one
            pos += size
    assert a.records == len(recs)
    assert_matches(a, reference(recs, window))


def test_batch_larger_than_window_keeps_the_newest() -> None:
    recs = make_records(500, 1)
    a = Analytics(1, 10, clock=ManualClock())
    a.update(recs)
    np.testing.assert_array_equal(a.window_of(0), recs["close"][-10:])
    a.update(recs[:3])  # wraps the ring buffer once more
    np.testing.assert_array_equal(a.window_of(0), np.concatenate((recs["close"][-7:],
                                                                   recs["close"][:3])))


def test_single_record_and_no_volume() -> None:
    recs = make_records(1, 1)
    recs["volume"] = 0
    a = Analytics(4, 16, clock=ManualClock())
    a.update(recs)
    (s,) = a.stats()
    assert s.last_price == recs["close"][0]
    assert math.isnan(s.previous_price) and math.isnan(s.change)
    assert math.isnan(s.vwap)  # no volume: VWAP undefined, not 0 or a division error
    assert math.isnan(s.return_mean) and math.isnan(s.return_std)
    assert s.window_records == 1


def test_symbol_ids_outside_capacity_are_counted_not_stored() -> None:
    recs = make_records(10, 1)
    recs["symbol_id"][3] = 9
    a = Analytics(2, 8, clock=ManualClock())
    a.update(recs)
    a.flush()
    assert a.ignored == 1
    assert a.records == 9
    assert [s.records for s in a.stats()] == [9]


def test_names_and_reset() -> None:
    a = Analytics(4, 8, clock=ManualClock())
    a.set_names(["AAPL", "TSLA"])
    recs = make_records(20, 2)
    a.update(recs)
    assert {s.name for s in a.stats()} == {"AAPL", "TSLA"}
    a.reset(["BTC-USD"])
    assert a.stats() == []
    assert a.records == 0
    a.update(recs[:1])
    assert a.stats()[0].name == ("BTC-USD" if recs["symbol_id"][0] == 0 else "#1")


def test_tick_rate_uses_the_injected_clock() -> None:
    clock = ManualClock()
    a = Analytics(2, 8, clock=clock, rate_interval=1.0)
    recs = make_records(10, 1)
    for _ in range(20):  # 10 records every 0.1 s on symbol 0: 100 records/s
        clock.advance(0.1)
        a.update(recs)
    assert a.tick_rates()[0] == pytest.approx(100.0, rel=0.01)
    assert a.tick_rates()[1] == 0.0
    clock.advance(0.5)  # quiet for half the interval: about half the rate
    assert a.tick_rates()[0] == pytest.approx(50.0, rel=0.15)
    clock.advance(2.0)  # quiet for longer than the interval: 0
    assert a.tick_rates()[0] == 0.0


def test_rate_before_a_full_interval() -> None:
    clock = ManualClock()
    a = Analytics(1, 8, clock=clock, rate_interval=10.0)
    clock.advance(0.5)
    a.update(make_records(50, 1))
    assert a.tick_rates()[0] == pytest.approx(100.0)  # 50 records in the 0.5 s since start


def test_staged_records_are_applied_in_order_and_on_demand() -> None:
    clock = ManualClock()
    a = Analytics(4, 32, clock=clock, stage_records=100, stage_max_age=1.0)
    recs = make_records(400, 3)
    a.update(recs[:50])  # staged
    assert a._staged == 50 and a.records == 50
    a.update(recs[50:53].tolist())  # a few tuples: the staged ones go first
    assert a._staged == 0
    a.update(recs[53:120])  # staged (67 of 100)
    a.update(recs[120:180])  # would overflow the stage: the 67 are applied first
    assert a._staged == 60
    clock.advance(2.0)
    a.update(recs[180:200])  # the stage is older than stage_max_age: applied now
    assert a._staged == 0
    a.update(recs[200:400])  # larger than the whole stage: applied directly
    assert a._staged == 0
    a.update(recs[:0])
    assert_matches(a, reference(recs, 32))


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="window"):
        Analytics(1, 1)
    with pytest.raises(ValueError, match="capacity"):
        Analytics(0, 8)
