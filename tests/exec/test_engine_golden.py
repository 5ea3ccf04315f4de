"""Golden test: a small bar series and an order script, with the expected reports written out.

Limits: max order qty 1000, max 3 open orders, max notional 50,000 per symbol;
participation 10 % of a bar's volume, shared by the orders on that bar in time priority.

Bar 1 (open 100, high 104, low 97, volume 2000 -> 200 may trade): the market buy of 300
takes all 200 at the open; the resting buy limit 98 and the IOC sell limit 103 find no
liquidity left, and the IOC is canceled. Bar 2 (open 99, low 97.5, volume 1500 -> 150):
the market order's last 100 at the open (99), the buy limit gets 50 at min(98, 99) = 98.
"""

from __future__ import annotations

from exec_support import bar, order_fields, submit

from tradingd.exec.engine import Engine, RiskLimits
from tradingd.exec.protocol import MsgType, OrdType, Side, TimeInForce

B, S = Side.BUY, Side.SELL
M, L = OrdType.MARKET, OrdType.LIMIT
DAY, GTC, IOC = TimeInForce.DAY, TimeInForce.GTC, TimeInForce.IOC

EXPECTED = [
    "a #1 EXECUTION id 1 AAPL NEW NEW cum 0 leaves 300 seq -1",
    "a #2 EXECUTION id 2 AAPL NEW NEW cum 0 leaves 100 seq -1",
    "a #3 EXECUTION id 3 AAPL NEW NEW cum 0 leaves 50 seq -1",
    "a #4 EXECUTION id 4 MSFT REJECTED REJECTED cum 0 leaves 0 reason unknown_symbol seq -1",
    "a #5 EXECUTION id 2 AAPL REJECTED REJECTED cum 0 leaves 0 reason duplicate_id seq -1",
    "a #6 EXECUTION id 5 AAPL REJECTED REJECTED cum 0 leaves 0 reason bad_quantity seq -1",
    "a #7 EXECUTION id 6 AAPL REJECTED REJECTED cum 0 leaves 0 reason bad_price seq -1",
    "a #8 EXECUTION id 7 AAPL REJECTED REJECTED cum 0 leaves 0 reason max_order_qty seq -1",
    "b #1 EXECUTION id 1 AAPL REJECTED REJECTED cum 0 leaves 0 reason max_notional seq -1",
    "a #9 EXECUTION id 1 AAPL TRADE PARTIALLY_FILLED 200 @ 100 cum 200 leaves 100 seq 1",
    "a #10 EXECUTION id 3 AAPL CANCELED CANCELED cum 0 leaves 0 seq 1",
    "a #11 EXECUTION id 1 AAPL TRADE FILLED 100 @ 99 cum 300 leaves 0 seq 2",
    "a #12 EXECUTION id 2 AAPL TRADE PARTIALLY_FILLED 50 @ 98 cum 50 leaves 50 seq 2",
    "a #13 EXECUTION id 2 AAPL CANCELED CANCELED cum 50 leaves 0 seq -1",
    "a #14 CANCEL_REJECT id 9 AAPL REJECTED REJECTED cum 0 leaves 0 reason unknown_order seq -1",
    "a #15 EXECUTION id 8 AAPL NEW NEW cum 0 leaves 5 seq -1",
    "a #16 EXECUTION id 8 AAPL EXPIRED EXPIRED cum 0 leaves 0 seq -1",
]


def run_script() -> list[str]:
    eng = Engine(RiskLimits(max_order_qty=1000, max_open_orders=3, max_notional=50_000.0),
                 0.1, symbols=["AAPL", "TSLA"])
    out = []
    out += submit(eng, "a", order_fields(1, B, M, DAY, 300), 100, ref=100.0)
    out += submit(eng, "a", order_fields(2, B, L, GTC, 100, 98.0), 110)
    out += submit(eng, "a", order_fields(3, S, L, IOC, 50, 103.0), 120)
    out += submit(eng, "a", order_fields(4, B, L, DAY, 10, 99.0, symbol="MSFT"), 130)
    out += submit(eng, "a", order_fields(2, B, L, DAY, 10, 99.0), 140)  # duplicate id
    out += submit(eng, "a", order_fields(5, B, L, DAY, 0, 99.0), 150)
    out += submit(eng, "a", order_fields(6, B, L, DAY, 10, -1.0), 160)
    out += submit(eng, "a", order_fields(7, B, L, DAY, 2000, 1.0), 170)
    out += submit(eng, "b", order_fields(1, S, L, DAY, 600, 90.0), 175)
    out += eng.on_bar(bar(1, 180, 100.0, 104.0, 97.0, 101.0, 2000.0), 181)
    out += eng.on_bar(bar(2, 190, 99.0, 100.0, 97.5, 98.0, 1500.0), 191)
    out += submit(eng, "a", order_fields(2, 0, 0, 0, 0, msg=MsgType.CANCEL), 200)
    out += submit(eng, "a", order_fields(9, 0, 0, 0, 0, msg=MsgType.CANCEL), 205)
    out += submit(eng, "a", order_fields(8, B, L, DAY, 5, 50.0), 206)
    out += eng.on_session_end(210)
    assert eng.counters.illegal_transitions == 0
    return [f"{c} {r.describe()} seq {r.market_seq}" for c, r in out]


def test_golden_reports() -> None:
    assert run_script() == EXPECTED


def test_bar_before_arrival_never_fills() -> None:
    """A bar published before the order arrived (already in the ring) cannot fill it."""
    eng = Engine(symbols=["AAPL"])
    submit(eng, "a", order_fields(1, B, M, DAY, 10), 100)
    assert eng.on_bar(bar(1, 99, 10.0, 11.0, 9.0, 10.0, 0.0), 101) == []
    (_, r), = eng.on_bar(bar(2, 101, 10.5, 11.0, 9.0, 10.0, 0.0), 102)
    assert (r.last_qty, r.last_px, r.market_seq) == (10, 10.5, 2)
