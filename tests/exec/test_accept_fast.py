"""exec's accept path in C (``execfast.take_accept``) against the pure-Python reference.

take_accept copies a batch's journal frames into the journal's mapping and publishes the
NEW reports of the batch's leading plain accepts before Python has applied anything; the
engine applies every record afterwards and stays the one that decides. The pure-Python
path predicts nothing (exec appends and publishes as it always did). Here whole execs run
the same scripts both ways (hypothesis: duplicates inside a batch, every reject reason,
garbage, cancels, fills, risk limits on and off, market orders with and without a reference
price, two clients): the same report bytes in the rings, the same journal, and the journal
replays to those reports bit for bit; and the C path did predict (it is exercised).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import remove_segment_files

from tradingd.clock import ManualClock
from tradingd.daemon.config import parse_config
from tradingd.exec import execfast
from tradingd.exec import journal as J
from tradingd.exec import service as S
from tradingd.exec.engine import Engine
from tradingd.exec.fsm import TRANSITIONS, Event
from tradingd.exec.protocol import Bar, OrdStatus, Report
from tradingd.segment.channel import (
    KIND_ORDERS,
    KIND_REPORTS,
    ChannelReader,
    ChannelWriter,
    body_format,
    orders_name,
    reports_name,
)

needs_c = pytest.mark.skipif(execfast.FAST is None, reason="tradingd.exec._execfast not built")
CLIENTS = ("a", "b")
Order = tuple[object, ...]
Script = list[tuple[int, list[Order]]]  # rounds: (client index, records published before it)
BAR = 2  # a "client index" that means: bars (fills) journaled and applied in that round
Limits = tuple[int, int, float]


class _Never:
    def is_set(self) -> bool:
        return False

    def wait(self, timeout: float | None = None) -> bool:
        return False


@pytest.fixture
def name() -> Iterator[str]:
    seg = f"tdtest-{uuid.uuid4().hex[:10]}"
    yield seg
    remove_segment_files(seg)


def _ref(sym: bytes) -> float:
    """A deterministic reference price per symbol (AAPL 10.0, MSFT none yet: 0.0)."""
    return {b"AAPL": 10.0}.get(sym.rstrip(b"\0"), 0.0)


def _run(tmp: Path, seg: str, script: Script, limits: Limits, pure: bool,
         monkeypatch: pytest.MonkeyPatch) -> tuple[bytes, dict[str, list[Report]], int]:
    """An exec in this process fed ``script``; its journal, the reports each client read
    (from the rings' bytes) and how many NEW reports take_accept published itself."""
    predicted = 0
    real_take_accept = execfast.take_accept

    def counting(*args: object) -> object:
        nonlocal predicted
        got = real_take_accept(*args)  # type: ignore[arg-type]
        if got is not None:
            predicted += got[6]
        return got

    with monkeypatch.context() as m:
        if pure:
            m.setattr(S, "take_accept", execfast.take_accept_py)
            m.setattr(S, "take_and_frame", execfast.take_and_frame_py)
            m.setattr(S, "publish_reports", execfast.publish_reports_py)
        else:
            m.setattr(S, "take_accept", counting)
        journal = tmp / f"{'py' if pure else 'c'}-{uuid.uuid4().hex[:6]}.journal"
        qty, open_, notional = limits
        cfg = parse_config(yaml.safe_dump({"exec": {
            "journal": str(journal), "report_ring_capacity": 1024,
            "risk": {"max_order_qty": qty, "max_open_orders": open_, "max_notional": notional},
            "metrics": {"enabled": False}}}), tmp / "x.yaml", segment_override=seg)
        svc = S.ExecService(cfg, stop=_Never(), clock=ManualClock())
        svc._ref_price = _ref  # type: ignore[method-assign]
        svc._record([J.SymbolsIn(1, ("AAPL", "MSFT"))])  # as a market attach journals it
        writers = {c: ChannelWriter.create(orders_name(seg, c), KIND_ORDERS, client=c,
                                           capacity=256) for c in CLIENTS}
        readers: dict[str, ChannelReader] = {}
        got: dict[str, list[Report]] = {c: [] for c in CLIENTS}
        try:
            while len(readers) < len(CLIENTS):
                svc._next_discovery = 0
                svc.round()
                for c in CLIENTS:
                    if c not in readers and c in svc.links and svc.links[c].reports:
                        readers[c] = ChannelReader(reports_name(seg, c), kind=KIND_REPORTS)
                        writers[c].set_word("peer_generation", readers[c].generation)
            for c in CLIENTS:  # the attach restatements
                while (t := readers[c].poll()) is not None:
                    got[c].append(Report._make(t))
            bars = 0
            for who, records in script:
                svc._clock.advance(1e-6)  # type: ignore[attr-defined]
                if who == BAR:  # a bar of each symbol: fills (partial: 5 of each) first
                    now = svc._clock.monotonic_ns()
                    for sym in ("AAPL", "MSFT"):
                        bars += 1
                        svc._pending.append(J.BarIn(Bar(bars, sym, bars, now, 10.0, 300.0,
                                                        0.005, 10.0, 50.0), now, 1))
                else:
                    for rec in records:
                        writers[CLIENTS[who]].publish(*rec)
                svc.round()
                for c2 in CLIENTS:
                    while (t := readers[c2].poll()) is not None:
                        got[c2].append(Report._make(t))
                    writers[c2].set_consumed(readers[c2].position)
            assert svc.prediction_errors == 0
        finally:
            for rd in readers.values():
                rd.close()
            for wr in writers.values():
                wr.close()
            svc.close()
        return journal.read_bytes(), got, predicted


def _entries(tmp: Path, data: bytes) -> list[J.Entry]:
    path = tmp / f"read-{uuid.uuid4().hex[:6]}.journal"
    path.write_bytes(data)
    try:  # ring generations are random per run
        return [e._replace(generation=0) if isinstance(e, J.OrderIn | J.AttachIn) else e
                for e in J.read_entries(str(path)).entries]
    finally:
        path.unlink()


def _compare(tmp: Path, seg: str, script: Script, limits: Limits,
             monkeypatch: pytest.MonkeyPatch) -> int:
    c_journal, c_got, predicted = _run(tmp, seg, script, limits, False, monkeypatch)
    remove_segment_files(seg)
    py_journal, py_got, none = _run(tmp, seg, script, limits, True, monkeypatch)
    remove_segment_files(seg)
    assert none == 0
    body = body_format(KIND_REPORTS)
    for c in CLIENTS:
        assert [body.pack(*x) for x in c_got[c]] == [body.pack(*x) for x in py_got[c]]
    c_entries = _entries(tmp, c_journal)
    assert c_entries == _entries(tmp, py_journal)
    # the journal replays to exactly the reports the clients read, bit for bit
    replayed: dict[str, list[bytes]] = {c: [] for c in CLIENTS}
    for _e, out in J.replay(c_entries, Engine()):
        for client, rep in out:
            replayed[client].append(body.pack(*rep))
    for c in CLIENTS:
        assert replayed[c] == [body.pack(*x) for x in c_got[c]]
    return predicted


BAD_SYMBOLS = st.sampled_from([b"ZZZZ", b"", b"AA PL", b"\x01\x02", b"AAPL\0X", b"A" * 16])
BAD_PRICES = st.sampled_from([0.0, -1.0, float("inf"), float("nan")])


@st.composite
def orders(draw: st.DrawFn, seq: list[int]) -> Order:
    """Mostly plain new orders (what the C path predicts), each at most one thing wrong."""
    seq[0] += 1
    kind = draw(st.sampled_from(["new"] * 8 + ["cancel", "garbage"]))
    oid = draw(st.integers(1, 60))  # a small id space: duplicates, in and across batches
    if kind == "cancel":
        return (2, seq[0], oid, 0, 0, 0, 0, 0.0, seq[0], b"")
    if kind == "garbage":
        return (draw(st.integers(0, 2**32 - 1)), seq[0], oid, draw(st.integers(0, 9)),
                draw(st.integers(0, 9)), draw(st.integers(0, 9)),
                draw(st.integers(-2**63, 2**63 - 1)), draw(st.floats()), seq[0],
                draw(st.binary(max_size=16)))
    rec = [1, seq[0], oid, draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 2, 2])),
           draw(st.sampled_from([0, 1, 3])), draw(st.sampled_from([1, 5, 10, 40, 41, 10**6])),
           draw(st.sampled_from([0.01, 1.0, 10.0, 99.5, 250.0])), seq[0],
           draw(st.sampled_from([b"AAPL", b"MSFT"]))]
    wrong = draw(st.sampled_from(["none"] * 6 + ["side", "type", "tif", "qty", "px", "sym"]))
    if wrong == "side":
        rec[3] = draw(st.sampled_from([0, 3, 2**32 - 1]))
    elif wrong == "type":
        rec[4] = draw(st.sampled_from([0, 3, 2**32 - 1]))
    elif wrong == "tif":
        rec[5] = draw(st.sampled_from([2, 4, 2**32 - 1]))
    elif wrong == "qty":
        rec[6] = draw(st.sampled_from([0, -3, -2**63]))
    elif wrong == "px":
        rec[7] = draw(BAD_PRICES)
    elif wrong == "sym":
        rec[9] = draw(BAD_SYMBOLS)
    return tuple(rec)


@st.composite
def scripts(draw: st.DrawFn) -> Script:
    seq = [0]
    return [(draw(st.sampled_from([0, 0, 1, 1, BAR])),
             draw(st.lists(orders(seq), min_size=0, max_size=16)))
            for _ in range(draw(st.integers(1, 14)))]


LIMITS = st.tuples(st.sampled_from([0, 40]), st.sampled_from([0, 3, 20]),
                   st.sampled_from([0.0, 500.0, 1e6]))


@needs_c
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=scripts(), limits=LIMITS)
def test_c_accept_path_reports_and_journals_as_python(
        tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch, script: Script,
        limits: Limits) -> None:
    _compare(tmp_path, name, script, limits, monkeypatch)


@needs_c
def test_c_accept_path_predicts_the_plain_accepts(
        tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lone orders and batches (a duplicate id inside one, a limit reached in one, market
    orders priced and not): the C path published the accepts' NEWs itself, the rest not."""
    script: Script = []
    seq = 0

    def new(oid: int, qty: int = 1, px: float = 10.0, typ: int = 2, sym: bytes = b"AAPL"
            ) -> Order:
        nonlocal seq
        seq += 1
        return (1, seq, oid, 1, typ, 1, qty, px, seq, sym)

    script += [(0, [new(i)]) for i in range(1, 6)]  # 5 lone accepts: predicted
    script += [(1, [new(1), new(2), new(2), new(3)])]  # 2 predicted, then a duplicate
    script += [(0, [new(10, typ=1), new(11, typ=1, sym=b"MSFT"), new(12)])]  # no ref: 1
    script += [(1, [new(20, qty=30, px=20.0), new(21, qty=30, px=20.0)])]  # 2nd: notional
    script += [(BAR, []), (1, [new(22, qty=20, px=20.0)])]  # fits after 5 of order 20 filled
    predicted = _compare(tmp_path, name, script, (40, 20, 1000.0), monkeypatch)
    assert predicted == 5 + 2 + 1 + 1 + 1


def test_the_predicted_status_is_the_transition_tables() -> None:
    """The C path publishes NEW with the status the caller gives it: fsm's ACCEPT target."""
    eng = Engine()
    eng.client("x")
    ctx = eng.accept_context("x")
    assert ctx is not None
    assert ctx[7] == int(TRANSITIONS[(OrdStatus.PENDING_NEW, Event.ACCEPT)])
    assert Engine().accept_context("nobody") is None


@pytest.mark.parametrize("impl", ["c", "python"])
def test_wait_ready_returns_at_a_record_or_at_the_deadline(name: str, impl: str) -> None:
    """exec's idle spin: False at the deadline with nothing published; True at once for a
    record already there; True soon after another thread publishes one (in C the GIL is
    released meanwhile, so that thread can run at all)."""
    if impl == "c" and execfast.FAST is None:
        pytest.skip("tradingd.exec._execfast not built")
    wait = execfast.wait_ready if impl == "c" else execfast.wait_ready_py
    writers = [ChannelWriter.create(orders_name(name, c), KIND_ORDERS, client=c, capacity=16)
               for c in CLIENTS]
    readers = [ChannelReader(orders_name(name, c), kind=KIND_ORDERS) for c in CLIENTS]
    try:
        t0 = time.monotonic_ns()
        assert wait(readers, t0 + 20_000_000) is False
        assert time.monotonic_ns() - t0 >= 20_000_000
        assert wait([], time.monotonic_ns() + 1_000_000) is False
        writers[1].publish(1, 1, 1, 1, 2, 1, 1, 1.0, 0, b"AAPL")
        assert wait(readers, time.monotonic_ns() + 60 * 10**9) is True
        assert readers[1].poll_raw() is not None  # taken: the next position waits again
        assert wait(readers, time.monotonic_ns() + 1_000_000) is False
        later = threading.Timer(0.05, writers[0].publish, (1, 2, 2, 1, 2, 1, 1, 1.0, 0, b"X"))
        later.start()
        t0 = time.monotonic_ns()
        assert wait(readers, t0 + 60 * 10**9) is True
        later.join()
        assert readers[0].ready()
    finally:
        for rd in readers:
            rd.close()
        for wr in writers:
            wr.close()
