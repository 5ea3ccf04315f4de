"""tradingd-exec end to end: a real producer, a real exec, real client processes.

Each test writes a config into a scratch directory (private segment name, metrics on free
ports, the journal in the scratch directory), starts the processes and kills every one by
PID afterwards; the segment_name fixture and the cleanup below remove every ring.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from daemons import DaemonProcess
from exec_support import write_config
from support import promtool_lint

from tradingd.exec import OrderClient
from tradingd.exec import journal as J
from tradingd.exec.engine import Engine
from tradingd.exec.protocol import OrdStatus, RejectReason, ReportKind
from tradingd.segment.channel import orders_name

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("exec_client_worker.py")


class Client:
    """One worker process (tests/exec/exec_client_worker.py) and its output file."""

    def __init__(self, workdir: Path, segment: str, name: str, *args: str) -> None:
        n = len(list(workdir.glob(f"client-{name}-*.jsonl")))
        self.out = workdir / f"client-{name}-{n}.jsonl"
        self.out.touch()
        self.err = open(workdir / f"client-{name}-{n}.err", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), "--segment", segment, "--name", name,
             "--out", str(self.out), *args], stdout=self.err, stderr=self.err,
            cwd=workdir)

    def lines(self) -> list[dict]:
        if not self.out.exists():
            return []
        out = []
        for line in self.out.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by kill -9
                break
        return out

    def reports(self) -> list[list]:
        return [d["report"] for d in self.lines() if "report" in d]

    def done(self) -> dict | None:
        return next((d["done"] for d in self.lines() if "done" in d), None)

    def wait_reports(self, n: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.reports()) < n:
            assert time.monotonic() < deadline, f"only {len(self.reports())} reports"
            assert self.proc.poll() is None, f"client exited {self.proc.returncode}"
            time.sleep(0.02)

    def wait(self, timeout: float = 90.0) -> dict:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"client {self.out.name} still running after {timeout} s; "
                                 f"last lines {self.lines()[-3:]}") from None
        assert code == 0, (self.err.name, Path(self.err.name).read_text())
        done = self.done()
        assert done is not None
        return done

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.err.close()


@pytest.fixture
def system(workdir: Path, segment_name: str) -> Iterator[Callable[..., object]]:
    """Start producer, exec and clients; everything killed and every ring removed after."""
    procs: list[DaemonProcess] = []
    clients: list[Client] = []

    class System:
        segment = segment_name

        def __init__(self) -> None:
            self.config = write_config(workdir)

        def configure(self, **exec_extra: object) -> None:
            self.config = write_config(workdir, exec_extra)

        def producer(self) -> DaemonProcess:
            p = DaemonProcess("producer", self.config, workdir, segment=segment_name)
            procs.append(p)
            p.wait_ready()
            return p

        def exec(self) -> DaemonProcess:
            p = DaemonProcess("exec", self.config, workdir, segment=segment_name)
            procs.append(p)
            p.wait_ready()
            return p

        def client(self, name: str, *args: str) -> Client:
            c = Client(workdir, segment_name, name, *args)
            clients.append(c)
            return c

    yield System
    for c in clients:
        c.kill()
    for p in procs:
        p.cleanup()
    for entry in os.listdir("/dev/shm"):
        if entry.startswith(segment_name + "."):
            os.unlink(f"/dev/shm/{entry}")


def _seqs(reports: list[list]) -> list[int]:
    return [r[1] for r in reports]


def replayed_reports(journal: Path, client: str) -> list[list]:
    """The reports the journal reproduces for ``client``, in the workers' JSON form."""
    out = []
    for _e, reps in J.replay(J.read_entries(str(journal)).entries, Engine()):
        for c, r in reps:
            if c == client:
                sym = r.symbol.ljust(16, b"\0").decode("latin1")  # as the ring carries it
                out.append(json.loads(json.dumps([*r[:15], sym, r[16]])))
    return out


def test_two_clients_and_a_client_killed_and_restarted(system, workdir: Path) -> None:
    s = system()
    s.producer()
    ex = s.exec()
    a = s.client("steady", "--orders", "120", "--interval", "0.003")
    b = s.client("victim", "--orders", "100000", "--interval", "0.003")
    b.wait_reports(30)
    b.kill()  # kill -9 mid-stream
    got_before = b.reports()
    b2 = s.client("victim", "--orders", "40", "--interval", "0.003")
    done_b = b2.wait()
    done_a = a.wait()
    assert ex.alive()
    # the steady client: every report once, in order, nothing disturbed by the victim
    ra = a.reports()
    assert _seqs(ra) == list(range(1, len(ra) + 1)) and done_a["gaps"] == 0
    assert not [r for r in ra if r[4] == RejectReason.DUPLICATE_ID]
    ids_a = {r[2] for r in ra if r[14] == ReportKind.EXECUTION}
    assert set(done_a["sent"]) <= ids_a
    assert any(r[0] == ord("F") for r in ra), "some orders filled against the bars"
    # the restarted victim: resumed its ids after the old ones, got its open orders restated
    lines = b2.lines()
    start = lines[0]["start"]
    old_ids = {r[2] for r in got_before if r[14] == ReportKind.EXECUTION}
    assert start["first_id"] > max(old_ids)
    rb = b2.reports()
    assert _seqs(rb) == list(range(rb[0][1], rb[0][1] + len(rb))) and done_b["gaps"] == 0
    assert rb[0][1] > got_before[-1][1], "report numbers continue past the killed run's"
    assert not [r for r in rb if r[4] == RejectReason.DUPLICATE_ID]
    assert set(done_b["sent"]) <= {r[2] for r in rb}
    # what both received is exactly what the journal reproduces
    assert replayed_reports(workdir / "exec.journal", "steady") == ra


def test_exec_killed_and_restarted_recovers_from_the_journal(system, workdir: Path) -> None:
    s = system()
    s.producer()
    ex = s.exec()
    c = s.client("survivor", "--orders", "160", "--interval", "0.004")
    c.wait_reports(40)
    os.kill(ex.pid, signal.SIGKILL)
    ex.proc.wait(10)
    time.sleep(0.3)  # the client keeps submitting into its ring meanwhile
    ex2 = s.exec()
    assert "inputs replayed" in ex2.log and " 0 inputs replayed" not in ex2.log
    done = c.wait()
    reports = c.reports()
    seqs = _seqs(reports)
    assert seqs == list(range(1, len(seqs) + 1)), "a report lost or repeated"
    assert done["gaps"] == 0
    assert set(done["sent"]) <= {r[2] for r in reports}
    terminal = {r[2]: r[3] for r in reports if r[14] == ReportKind.EXECUTION}
    assert all(st not in (OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED)
               for st in terminal.values())
    # replaying the journal reproduces every report, bit for bit
    assert replayed_reports(workdir / "exec.journal", "survivor") == reports
    assert ex2.alive()


def test_a_flooding_client_is_limited_and_the_other_is_not_stalled(system) -> None:
    s = system()
    s.configure(poll_budget=8, report_backlog=2000, risk={"max_open_orders": 0})
    s.producer()
    ex = s.exec()
    flood = s.client("flood", "--mode", "flood", "--orders", "200000", "--capacity", "256")
    deadline = time.monotonic() + 30
    with OrderClient("polite", segment=s.segment, connect_timeout=30) as c:
        for _ in range(50):  # round trips while the flood goes on
            oid = c.submit("AAPL", "buy", 1, price=0.5, tif="gtc", timeout=30)
            r = c.wait_for(lambda r, oid=oid: r.client_order_id == oid, timeout=30)
            assert r.ord_status == OrdStatus.NEW
            c.cancel(oid)
            c.wait_for(lambda r, oid=oid: r.client_order_id == oid, timeout=30)
        assert c.gaps == 0
        assert time.monotonic() < deadline
    done = flood.wait(timeout=40)
    # the flood was held back by its own ring (credit), then cut off for not reading
    assert done["credit_waits"] > 0
    assert "disconnected" in done["disconnected"], done
    assert ex.alive()
    text = urllib.request.urlopen(ex.metrics_url(), timeout=10).read().decode()
    assert 'tradingd_exec_client_connected{client="flood"} 0.0' in text
    assert 'tradingd_exec_slow_client_events_total{client="flood"}' in text
    promtool_lint(text)


def test_bad_records_are_rejected_with_a_reason(system) -> None:
    s = system()
    s.producer()
    ex = s.exec()
    with OrderClient("prober", segment=s.segment, connect_timeout=30) as c:
        w = c._w
        body = w._body

        def raw(*fields: object) -> None:
            data = b"\0\0\0\0" + body.pack(*fields)
            w.write_raw(w.cursor, data)

        raw(9, 1, 101, 1, 2, 0, 10, 1.0, 0, b"AAPL")  # unknown message type
        raw(1, 2, 102, 1, 2, 0, 0, 1.0, 0, b"AAPL")  # quantity 0
        raw(1, 3, 103, 1, 2, 0, -5, 1.0, 0, b"AAPL")  # negative quantity
        raw(1, 4, 104, 1, 2, 0, 10, float("nan"), 0, b"AAPL")  # NaN limit price
        raw(1, 5, 105, 1, 2, 0, 10, 1.0, 0, b"\xff\xfe\x01")  # symbol garbage
        raw(1, 6, 106, 7, 2, 0, 10, 1.0, 0, b"AAPL")  # side 7
        w.write_raw(w.cursor, os.urandom(128))  # garbage bytes
        oid = c.submit("AAPL", "buy", 1, price=1.0)  # and then a good order
        got = {}
        for _ in range(8):
            r = c.next_report(10.0)
            assert r is not None
            got[r.client_order_id] = r
        reasons = {k: RejectReason(v.reject_reason).name for k, v in got.items()
                   if k in range(101, 107)}
        assert reasons == {101: "UNKNOWN_MSG_TYPE", 102: "BAD_QUANTITY", 103: "BAD_QUANTITY",
                           104: "BAD_PRICE", 105: "BAD_SYMBOL", 106: "BAD_SIDE"}
        garbage = [r for k, r in got.items() if k not in range(101, 107) and k != oid]
        assert len(garbage) == 1 and garbage[0].ord_status == OrdStatus.REJECTED
        assert garbage[0].reject_reason != 0
        assert got[oid].ord_status == OrdStatus.NEW
    assert ex.alive()
    assert orders_name(s.segment, "prober") not in os.listdir("/dev/shm")
    text = urllib.request.urlopen(ex.metrics_url(), timeout=10).read().decode()
    assert 'tradingd_exec_rejects_total{reason="bad_quantity"} 2.0' in text
    assert 'tradingd_exec_illegal_transitions_total 0.0' in text
    promtool_lint(text)


def test_a_blocking_client_is_woken_by_exec(system) -> None:
    """wait="block": the client sleeps on its report ring's futex; exec wakes it."""
    s = system()
    s.producer()
    ex = s.exec()
    with OrderClient("sleeper", segment=s.segment, wait="block", connect_timeout=30) as c:
        for _ in range(20):
            oid = c.submit("AAPL", "buy", 1, price=0.5, tif="gtc")
            r = c.wait_for(lambda r, oid=oid: r.client_order_id == oid, timeout=30)
            assert r.ord_status == OrdStatus.NEW
        assert c.gaps == 0
    text = urllib.request.urlopen(ex.metrics_url(), timeout=10).read().decode()
    line = next(ln for ln in text.splitlines()
                if ln.startswith('tradingd_exec_client_wakeups_total{client="sleeper"}'))
    assert float(line.split()[-1]) >= 1
