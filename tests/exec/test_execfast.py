"""exec's C byte work (tradingd.exec._execfast) against the pure-Python reference.

The C functions take order records out of a ring, frame them for the journal and publish
reports; the Python versions (``*_py`` in tradingd.exec.execfast) are ``poll_raw``,
``journal.encode`` and ``ChannelWriter.publish`` themselves. Both must give the same
records, the same journal bytes and the same report bytes; and an exec run through either
must journal and report the same, with the journal replaying to those reports.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
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
from tradingd.exec.protocol import OrderFields, Report
from tradingd.segment import layout as L
from tradingd.segment.channel import (
    KIND_ORDERS,
    KIND_REPORTS,
    ChannelReader,
    ChannelWriter,
    body_format,
    orders_name,
    reports_name,
)

ROOT = Path(__file__).resolve().parents[2]
needs_c = pytest.mark.skipif(execfast.FAST is None, reason="tradingd.exec._execfast not built")
U32, U64, I64 = st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1), st.integers(-2**63, 2**63 - 1)
F64 = st.floats(allow_nan=False)  # NaN != NaN: compared as bytes below anyway
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def name() -> Iterator[str]:
    seg = f"tdtest-{uuid.uuid4().hex[:10]}"
    yield seg
    remove_segment_files(seg)


def _order_ring(seg: str, client: str, capacity: int = 16) -> ChannelWriter:
    return ChannelWriter.create(orders_name(seg, client), KIND_ORDERS, client=client,
                                capacity=capacity)


@needs_c
@SETTINGS
@given(bodies=st.lists(st.binary(min_size=124, max_size=124), min_size=0, max_size=40),
       budget=st.integers(1, 20))
def test_take_orders_reads_what_poll_raw_reads(name: str, bodies: list[bytes],
                                               budget: int) -> None:
    """Random record bytes (garbage included), laps of the ring, a budget: same records."""
    w = _order_ring(name, "t")
    a = ChannelReader(orders_name(name, "t"), kind=KIND_ORDERS)
    b = ChannelReader(orders_name(name, "t"), kind=KIND_ORDERS)
    c = ChannelReader(orders_name(name, "t"), kind=KIND_ORDERS)
    body = J._ORDER_BODY
    try:
        seq = 0
        for chunk in (bodies[i:i + 12] for i in range(0, len(bodies), 12)):
            for raw in chunk:
                w.write_raw(seq, b"\0\0\0\0" + raw)
                seq += 1
            while True:
                got_c = execfast.take_orders(a, budget)
                got_py = execfast.take_orders_py(b, budget)
                assert got_c == got_py and a.position == b.position
                # and decoded in C as journal.apply decodes them (garbage, NaNs: as bytes)
                got = execfast.take_and_frame(c, budget, b"t", lambda: 1, lambda s: 1.0)
                assert (got is None) == (not got_c) and c.position == a.position
                if got is not None:
                    assert [body.pack(*f) for f in got[4]] == [
                        body.pack(*body.unpack(r)) for r in got_c]
                    assert all(type(f) is OrderFields for f in got[4])
                if not got_c:
                    break
        assert a.position == seq
        assert execfast.take_orders(a, budget) == []  # the next slot is not published
    finally:
        a.close()
        b.close()
        c.close()
        w.close()


@needs_c
@SETTINGS
@given(client=st.text("abcXYZ019_-", min_size=1, max_size=31), gen=U64,
       first=st.integers(0, 2**63), arrival=U64,
       records=st.lists(st.tuples(st.binary(min_size=J.ORDER_BODY_SIZE,
                                            max_size=J.ORDER_BODY_SIZE),
                                  st.floats(allow_nan=True, allow_infinity=True)),
                        max_size=10))
def test_encode_orders_frames_what_journal_encode_frames(
        client: str, gen: int, first: int, arrival: int,
        records: list[tuple[bytes, float]]) -> None:
    raws = [r for r, _ in records]
    refs = [f for _, f in records]
    c = execfast.encode_orders(client.encode(), gen, first, arrival, raws, refs)
    py = execfast.encode_orders_py(client.encode(), gen, first, arrival, raws, refs)
    assert c == py
    expected = [J.OrderIn(client, gen, first + i, arrival, ref, raw)
                for i, (raw, ref) in enumerate(records)]
    path = Path(f"/tmp/tdtest-journal-{uuid.uuid4().hex}")
    try:
        path.write_bytes(J.FILE_MAGIC + c)
        got = J.read_entries(str(path))
    finally:
        path.unlink()
    assert got.problem is None
    entries = [e for e in got.entries if isinstance(e, J.OrderIn)]
    assert len(entries) == len(got.entries)
    # refs as bytes: NaN != NaN
    assert [struct.pack("<d", e.ref_price) for e in entries] == [
        struct.pack("<d", e.ref_price) for e in expected]
    assert [e._replace(ref_price=0.0) for e in entries] == [
        e._replace(ref_price=0.0) for e in expected]


@needs_c
@SETTINGS
@given(records=st.lists(st.tuples(st.sampled_from([1, 2, 7]), st.sampled_from([0, 1, 2]),
                                  st.binary(min_size=8, max_size=8)), max_size=20),
       budget=st.integers(1, 25))
def test_take_and_frame_takes_prices_and_frames_as_the_reference(
        name: str, records: list[tuple[int, int, bytes]], budget: int) -> None:
    """Market new orders (and only they) priced by ref_of, arrival read once, same frames."""
    w = _order_ring(name, "t", capacity=32)
    a = ChannelReader(orders_name(name, "t"), kind=KIND_ORDERS)
    b = ChannelReader(orders_name(name, "t"), kind=KIND_ORDERS)
    asked: list[list[bytes]] = [[], []]
    ticks = iter(range(1000, 10**6))

    def ref_of(which: int) -> Callable[[bytes], float]:
        def ref(sym: bytes) -> float:
            asked[which].append(sym)
            return float(len(asked[which])) / 3
        return ref

    try:
        for i, (msg, ord_type, sym) in enumerate(records):
            w.publish(msg, i, i, 1, ord_type, 0, 5, 1.5, i, sym)
        while True:
            arrival = next(ticks)
            clock = (lambda t: lambda: t)(arrival)
            got_c = execfast.take_and_frame(a, budget, b"t", clock, ref_of(0))
            got_py = execfast.take_and_frame_py(b, budget, b"t", clock, ref_of(1))
            assert got_c == got_py and a.position == b.position
            if got_c is None:
                break
            assert got_c[0] and got_c[3] == arrival
        assert asked[0] == asked[1] == [sym.ljust(16, b"\0") for msg, t, sym in records
                                        if msg == 1 and t == 1]
    finally:
        a.close()
        b.close()
        w.close()


REPORTS = st.lists(st.tuples(U32, U64, U64, U32, U32, I64, F64, I64, I64, F64, I64, U64, U64,
                             U32, U32, st.binary(max_size=20), U64), min_size=1, max_size=12)


@needs_c
@SETTINGS
@given(batches=st.lists(REPORTS, min_size=1, max_size=4))
def test_publish_reports_writes_what_channel_publish_writes(
        name: str, batches: list[list[tuple[object, ...]]]) -> None:
    """Same ring bytes and cursor, over laps of a 64-record ring (every field's range)."""
    wc = ChannelWriter.create(reports_name(name, "c"), KIND_REPORTS, client="c", capacity=64)
    wp = ChannelWriter.create(reports_name(name, "p"), KIND_REPORTS, client="p", capacity=64)
    rc = ChannelReader(reports_name(name, "c"), kind=KIND_REPORTS)
    try:
        for reps in batches * 3:
            execfast.publish_reports(wc, reps)
            execfast.publish_reports_py(wp, reps)
            assert wc.cursor == wp.cursor
            ring = slice(L.CHANNEL_HEADER.size, None)
            assert wc.mapping[ring] == wp.mapping[ring]
            for rep in reps:  # and a reader takes them, in order, whole
                got = rc.poll()
                assert got is not None
                sym = rep[15]
                assert isinstance(sym, bytes)
                assert got == (*rep[:15], sym[:16].ljust(16, b"\0"), rep[16])
            assert rc.poll() is None
    finally:
        rc.close()
        wc.close()
        wp.close()


def test_publish_reports_refuses_a_bad_report_before_writing_it(name: str) -> None:
    if execfast.FAST is None:
        pytest.skip("tradingd.exec._execfast not built")
    w = ChannelWriter.create(reports_name(name, "c"), KIND_REPORTS, client="c", capacity=64)
    try:
        with pytest.raises(TypeError):
            execfast.publish_reports(w, [(1, 2)])
        with pytest.raises(OverflowError):
            execfast.publish_reports(w, [(2**32, *range(14), b"X", 0)])
        assert w.cursor == 0
    finally:
        w.close()


# ------------------------------------------------------------------ a whole exec, both ways
class _Never:
    def is_set(self) -> bool:
        return False

    def wait(self, timeout: float | None = None) -> bool:
        return False


def _orders(n: int) -> Iterator[tuple[object, ...]]:
    """New orders of every kind (accepted, rejected, garbage) and cancels, deterministic."""
    for i in range(1, n + 1):
        if i % 7 == 0:
            yield (2, i, i - 3, 0, 0, 0, 0, 0.0, i, b"")  # cancel an earlier one
        elif i % 11 == 0:
            yield (9, i, i, 1, 2, 1, 5, 1.0, i, b"AAPL")  # unknown message type
        elif i % 13 == 0:
            yield (1, i, i - 1, 1, 2, 1, 5, 1.0, i, b"AAPL")  # duplicate id
        else:
            yield (1, i, i, 1 + i % 2, 2, (0, 1, 3)[i % 3], 1 + i % 50, 10.0 + i % 5, i,
                   b"AAPL" if i % 17 else b"ZZZZ")


def _run_exec(tmp: Path, seg: str, pure: bool, monkeypatch: pytest.MonkeyPatch,
              report_ring: int = 1024, reads_per_round: int = 10**9
              ) -> tuple[bytes, list[Report]]:
    """An exec in this process, fed 300 orders in rounds; its journal and the reports.

    ``reads_per_round``: a slow client, when less than what a round produces (with a small
    ``report_ring`` the ring fills: exec keeps the rest in its backlog)."""
    with monkeypatch.context() as m:
        if pure:
            m.setattr(S, "take_and_frame", execfast.take_and_frame_py)
            m.setattr(S, "publish_reports", execfast.publish_reports_py)
            m.setattr(S, "take_accept", execfast.take_accept_py)
        journal = tmp / f"{'py' if pure else 'c'}.journal"
        cfg = parse_config(yaml.safe_dump({"exec": {
            "journal": str(journal), "report_ring_capacity": report_ring,
            "risk": {"max_order_qty": 40, "max_open_orders": 100, "max_notional": 5000.0},
            "metrics": {"enabled": False}}}), tmp / "x.yaml", segment_override=seg)
        clock = ManualClock()
        svc = S.ExecService(cfg, stop=_Never(), clock=clock)
        svc._record([J.SymbolsIn(1, ("AAPL",))])  # as a market attach journals it
        w = _order_ring(seg, "eq", capacity=64)
        reports: list[Report] = []
        try:
            svc.round()
            while "eq" not in svc.links or svc.links["eq"].reports is None:
                svc._next_discovery = 0
                svc.round()
            r = ChannelReader(reports_name(seg, "eq"), kind=KIND_REPORTS)
            w.set_word("peer_generation", r.generation)
            todo = list(_orders(300))
            taken = svc.links["eq"].orders
            assert taken is not None
            while todo or r.ready() or svc.links["eq"].backlog:
                for _ in range(min(len(todo), w.free(taken.position), 23)):
                    w.publish(*todo.pop(0))
                clock.advance(1e-6)
                svc.round()
                for _ in range(reads_per_round):
                    if (t := r.poll()) is None:
                        break
                    reports.append(Report._make(t))
                w.set_consumed(r.position)
            r.close()
        finally:
            w.close()
            svc.close()
        data = journal.read_bytes()
    return data, reports


@needs_c
def test_an_exec_journals_and_reports_the_same_through_c_and_python(
        tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    c_journal, c_reports = _run_exec(tmp_path, name, False, monkeypatch)
    remove_segment_files(name)
    py_journal, py_reports = _run_exec(tmp_path, name, True, monkeypatch)
    assert len(c_reports) >= 300
    assert c_reports == py_reports

    def entries_of(data: bytes) -> list[J.Entry]:  # ring generations are random per run
        path = tmp_path / "tmp.journal"
        path.write_bytes(data)
        return [e._replace(generation=0) if isinstance(e, J.OrderIn | J.AttachIn) else e
                for e in J.read_entries(str(path)).entries]

    assert entries_of(c_journal) == entries_of(py_journal)
    assert sum(isinstance(e, J.OrderIn) for e in entries_of(c_journal)) == 300
    # and the journal replays to exactly the reports the client read, bit for bit
    path = tmp_path / "replay.journal"
    path.write_bytes(c_journal)
    replayed = [rep for _e, out in J.replay(J.read_entries(str(path)).entries, Engine())
                for client, rep in out if client == "eq"]
    body = body_format(KIND_REPORTS)
    assert [body.pack(*x) for x in replayed] == [body.pack(*x) for x in c_reports]


def test_a_slow_client_gets_every_report_once_in_order(
        tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Report ring of 64, the client reading 5 per round: the ring fills, exec keeps the
    rest and delivers it as the client reads; nothing overwritten, lost or repeated."""
    got: list[list[Report]] = []
    for pure in ([False, True] if execfast.FAST is not None else [True]):
        _journal, reports = _run_exec(tmp_path, name, pure, monkeypatch, report_ring=64,
                                      reads_per_round=5)
        remove_segment_files(name)
        assert [rep.report_seq for rep in reports] == list(range(1, len(reports) + 1))
        assert len(reports) >= 300
        assert "client eq is slow" in caplog.text  # the ring did fill
        caplog.clear()
        got.append(reports)
    assert all(g == got[0] for g in got)


def test_execfast_stub_matches_the_built_extension() -> None:
    if execfast.FAST is None:
        pytest.skip("tradingd.exec._execfast not built: nothing to compare the stub with")
    env = dict(os.environ, MYPYPATH=str(ROOT / "stubs"))
    env.pop("TRADINGD_PURE_PYTHON", None)
    res = subprocess.run([sys.executable, "-m", "mypy.stubtest", "tradingd.exec._execfast"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
