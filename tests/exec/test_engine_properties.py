"""Property tests of the order engine: the transition table and the matching rules.

Random scripts of orders (good and bad), cancels, bars and session ends are run through
the engine; after every step the invariants must hold: no illegal transition applied,
cum qty <= qty, sum of fills = cum qty, every fill price inside its bar's low..high, IOC
orders never rest past their first eligible bar, report numbers contiguous per client.
"""

from __future__ import annotations

import itertools

from exec_support import bar, order_fields, submit
from hypothesis import given, settings
from hypothesis import strategies as st

from tradingd.exec.engine import Engine, Order, RiskLimits
from tradingd.exec.fsm import TRANSITIONS, Event, next_status
from tradingd.exec.protocol import (
    OPEN,
    ExecType,
    MsgType,
    OrdStatus,
    OrdType,
    ReportKind,
    Side,
    TimeInForce,
)

prices = st.floats(min_value=1.0, max_value=200.0, allow_nan=False)


@st.composite
def bars(draw: st.DrawFn) -> tuple[float, float, float, float, float]:
    lo = draw(prices)
    hi = lo + draw(st.floats(min_value=0.0, max_value=20.0))
    o = draw(st.floats(min_value=lo, max_value=hi))
    c = draw(st.floats(min_value=lo, max_value=hi))
    v = draw(st.sampled_from([0.0, 1.0, 10.0, 55.0, 1000.0, 123456.0]))
    return o, hi, lo, c, v


action = st.one_of(
    st.tuples(st.just("order"), st.sampled_from(["alice", "bob"]), st.sampled_from([1, 2, 7]),
              st.sampled_from([1, 2, 9]), st.sampled_from([0, 1, 3, 5]),
              st.integers(min_value=-3, max_value=400), st.one_of(prices, st.just(0.0),
                                                                   st.just(float("nan")))),
    st.tuples(st.just("cancel"), st.sampled_from(["alice", "bob"]),
              st.integers(min_value=1, max_value=40)),
    st.tuples(st.just("bar"), bars()),
    st.tuples(st.just("end")),
    st.tuples(st.just("garbage"), st.integers(min_value=0, max_value=2**32 - 1)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(action, max_size=60), st.sampled_from([0.05, 0.5, 1.0]))
def test_invariants_hold_for_any_script(script: list[tuple], participation: float) -> None:
    eng = Engine(RiskLimits(max_order_qty=300, max_open_orders=6, max_notional=20_000.0),
                 participation, symbols=["AAPL"])
    ids = itertools.count(1)
    bars_by_seq = {}
    fills: dict[tuple[str, int], int] = {}
    seqs: dict[str, int] = {}
    ns = 0
    bar_seq = 0
    for act in script:
        ns += 10
        if act[0] == "order":
            _, client, side, ord_type, tif, qty, px = act
            oid = next(ids) if qty != 7 else 1  # qty 7: reuse id 1 (duplicate)
            out = submit(eng, client, order_fields(oid, side, ord_type, tif, qty, px), ns,
                         ref=50.0)
        elif act[0] == "cancel":
            _, client, oid = act
            out = submit(eng, client, order_fields(oid, 0, 0, 0, 0, msg=MsgType.CANCEL), ns)
        elif act[0] == "bar":
            o, hi, lo, c, v = act[1]
            bar_seq += 1
            b = bar(bar_seq, ns, o, hi, lo, c, v)
            bars_by_seq[bar_seq] = b
            out = eng.on_bar(b, ns)
        elif act[0] == "garbage":
            out = submit(eng, "bob", order_fields(act[1], act[1] & 7, act[1] >> 3 & 3,
                                                  act[1] >> 5 & 3, act[1] >> 8, 1.0,
                                                  msg=act[1] % 5), ns)
        else:
            out = eng.on_session_end(ns)
        for client, r in out:
            assert r.report_seq == seqs.get(client, 0) + 1, "report numbers contiguous"
            seqs[client] = r.report_seq
            if r.exec_type == ExecType.TRADE:
                b = bars_by_seq[r.market_seq]
                assert b.low <= r.last_px <= b.high, (r, b)
                assert r.last_qty > 0
                key = (client, r.client_order_id)
                fills[key] = fills.get(key, 0) + r.last_qty
                assert fills[key] == r.cum_qty
        for c in eng.clients.values():
            for o in c.orders.values():
                assert 0 <= o.cum_qty <= max(o.quantity, 0)
                assert fills.get((o.client, o.client_order_id), 0) == o.cum_qty
                assert (o.client_order_id in c.open) == (o.status in OPEN)
                if o.status in OPEN:
                    assert o.leaves == o.quantity - o.cum_qty > 0
                if o.time_in_force == TimeInForce.IOC and any(
                        b.publish_ns > o.arrival_ns for b in bars_by_seq.values()):
                    assert o.status not in OPEN, "an IOC order rested past its first bar"
        assert eng.counters.illegal_transitions == 0


def test_transition_table_refuses_everything_else() -> None:
    """Every (status, event) pair outside the table is refused and the order left alone."""
    eng = Engine()
    eng.client("c")
    for status in OrdStatus:
        for event in Event:
            o = Order("c", 1, "AAPL", Side.BUY, OrdType.LIMIT, TimeInForce.DAY, 10, 1.0, 1.0,
                      0, 0, 1, status=status)
            before = eng.counters.illegal_transitions
            ok = eng._apply(o, event)
            assert ok == ((status, event) in TRANSITIONS)
            if ok:
                assert o.status == next_status(status, event)
            else:
                assert o.status == status
                assert eng.counters.illegal_transitions == before + 1


def test_terminal_states_have_no_way_out() -> None:
    for status in (OrdStatus.FILLED, OrdStatus.CANCELED, OrdStatus.REJECTED,
                   OrdStatus.EXPIRED):
        assert all(next_status(status, e) is None for e in Event)


def test_cancel_of_a_filled_order_is_a_cancel_reject_not_a_transition() -> None:
    eng = Engine(symbols=["AAPL"])
    submit(eng, "a", order_fields(1, Side.BUY, OrdType.MARKET, TimeInForce.DAY, 5), 10)
    eng.on_bar(bar(1, 20, 10.0, 11.0, 9.0, 10.5, 0.0), 20)
    out = submit(eng, "a", order_fields(1, 0, 0, 0, 0, msg=MsgType.CANCEL), 30)
    assert [(r.report_kind, r.ord_status, r.reject_reason) for _, r in out] == [
        (ReportKind.CANCEL_REJECT, OrdStatus.FILLED, 15)]
    assert eng.counters.illegal_transitions == 0
