"""publish_stream, the C batch read (read_into) and the sleepers companion (waiters.py).

The C paths are compared record for record with the pure-Python reference on the same
segment; the sleepers flag is checked through what the writer does with it (wake_seq only
moves when a reader announced its sleep) and with a blocked reader in another process.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

from tradingd.segment import layout as L
from tradingd.segment import shm, waiters
from tradingd.segment.fastpath import FAST
from tradingd.segment.model import SymbolInfo
from tradingd.segment.reader import SegmentReader
from tradingd.segment.writer import SegmentWriter

SYMS = [SymbolInfo(f"S{i}") for i in range(5)]
needs_c = pytest.mark.skipif(FAST is None, reason="C fast path not built")


def stream(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    recs = np.zeros(n, L.RECORD_DTYPE)
    recs["symbol_id"] = rng.integers(0, len(SYMS), n)
    recs["event_ns"] = np.arange(n) * 10 + 1
    recs["close"] = rng.uniform(1, 2, n)
    recs["open"], recs["high"], recs["low"] = recs["close"], recs["close"] + 1, recs["close"] - 1
    recs["volume"] = rng.integers(1, 100, n)
    recs["seq_lo"] = 12345  # ignored: the writer's
    recs["publish_ns"] = 999
    return recs


def published_both_ways(segment_name: str, recs: np.ndarray, lo: int, hi: int,
                        shift: int) -> list[tuple[np.ndarray, list]]:
    """The same slice published through the C path and the pure-Python path."""
    out = []
    for use_c in (True, False):
        name = f"{segment_name}{int(use_c)}"
        with SegmentWriter.create(name, SYMS, ring_capacity=1024) as w, \
                SegmentReader.attach(name) as r:
            fast = w._fast
            if not use_c:
                w._fast = None  # the pure-Python reference on the same segment
            try:
                assert w.publish_stream(recs, lo, hi, shift) == 0
            finally:
                w._fast = fast
            got = r.subscribe("oldest").poll_batch(1000).copy()
            out.append((got, [r.latest(i) for i in range(len(SYMS))]))
    return out


@needs_c
@pytest.mark.parametrize(("lo", "hi", "shift"), [(0, 200, 0), (17, 211, 10**12), (5, 5, 3)])
def test_publish_stream_matches_the_python_path(segment_name: str, lo: int, hi: int,
                                                shift: int) -> None:
    recs = stream(300)
    (c_recs, c_latest), (py_recs, py_latest) = published_both_ways(segment_name, recs, lo,
                                                                   hi, shift)
    assert len(c_recs) == hi - lo == len(py_recs)
    assert c_recs["seq_lo"].tolist() == list(range(hi - lo))
    for field in ("symbol_id", "event_ns", "open", "high", "low", "close", "volume"):
        assert np.array_equal(c_recs[field], py_recs[field]), field
    assert np.array_equal(c_recs["event_ns"], recs["event_ns"][lo:hi] + shift)
    assert (c_recs["publish_ns"] != 999).all()
    for a, b in zip(c_latest, py_latest, strict=True):
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            assert (a.seq, a.price, a.volume, a.event_ns) == (b.seq, b.price, b.volume,
                                                              b.event_ns)


def test_publish_stream_checks_its_arguments(segment_name: str) -> None:
    recs = stream(10)
    with SegmentWriter.create(segment_name, SYMS, ring_capacity=64) as w:
        with pytest.raises(IndexError):
            w.publish_stream(recs, 5, 11)
        with pytest.raises(TypeError):
            w.publish_stream(recs[::2], 0, 2)
        bad = recs.copy()
        bad["symbol_id"][3] = 64
        with pytest.raises(IndexError, match="symbol"):
            w.publish_stream(bad, 0, 10)
        assert w.cursor == 0  # nothing published from a bad stream


@needs_c
@pytest.mark.parametrize("lap", [False, True])
def test_c_batch_read_matches_the_python_poll_batch(segment_name: str, lap: bool) -> None:
    with SegmentWriter.create(segment_name, SYMS, ring_capacity=64, ring_window=16) as w, \
            SegmentReader.attach(segment_name) as r:
        c_sub, py_sub = r.subscribe("oldest"), r.subscribe("oldest")
        py_sub._read_into = None  # the pure-Python protocol
        w.publish_stream(stream(500), 0, 150 if lap else 40)
        for max_records in (7, 64, 1000):
            a, b = c_sub.poll_batch(max_records), py_sub.poll_batch(max_records)
            assert a.tobytes() == b.tobytes()
            assert (c_sub.position, c_sub.lost, c_sub.rejected) == \
                (py_sub.position, py_sub.lost, py_sub.rejected)
        assert (c_sub.lost > 0) == lap


# ------------------------------------------------------------------ sleepers companion
@needs_c
def test_companion_beside_the_segment_group_writable_and_removed(segment_name: str) -> None:
    path = shm.segment_path(segment_name + waiters.SUFFIX)
    with open(path, "wb") as leftover:  # a dead producer's companion: replaced
        leftover.write(b"x" * 7)
    old = os.stat(path).st_ino
    with SegmentWriter.create(segment_name, SYMS, mode=0o640) as w:
        st = os.stat(path)
        assert st.st_ino != old and st.st_size == waiters.SIZE
        assert stat.S_IMODE(st.st_mode) == 0o660
        assert stat.S_IMODE(os.stat(w.path).st_mode) == 0o640  # the data stays read-only
        comp = waiters.Companion.open(segment_name, w.generation, os.getuid())
        assert comp is not None and comp.sleepers == 0
        comp.close()
        assert waiters.Companion.open(segment_name, w.generation ^ 1, os.getuid()) is None
    assert not os.path.exists(path)


@needs_c
def test_writer_wakes_only_when_a_reader_announced_its_sleep(segment_name: str) -> None:
    with SegmentWriter.create(segment_name, SYMS) as w, SegmentReader.attach(segment_name) as r:
        assert w.sleepers_flag
        sub = r.subscribe("latest")
        wake0 = r.wake_seq
        for i in range(100):  # nobody sleeps: no wake at all
            w.publish(0, i, 1.0, 1.0, 1.0, 1.0, 1.0)
        w.publish_stream(stream(50), 0, 50)
        assert r.wake_seq == wake0
        sub.poll_batch(1000)
        assert not sub.wait_for_data(0.01)  # slept: the flag is set
        comp = r._companion
        assert comp is not None and comp.sleepers == 1
        w.publish(1, 0, 1.0, 1.0, 1.0, 1.0, 1.0)
        assert comp.sleepers == 0 and r.wake_seq == wake0 + 1  # seen, cleared, woken


@needs_c
def test_old_behaviour_without_a_companion(segment_name: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waiters.Companion, "create", classmethod(lambda cls, *a: None))
    with SegmentWriter.create(segment_name, SYMS) as w, SegmentReader.attach(segment_name) as r:
        assert not w.sleepers_flag
        wake0 = r.wake_seq
        w.publish(0, 0, 1.0, 1.0, 1.0, 1.0, 1.0)
        assert r.wake_seq == wake0 + 1  # woken on every publish
        assert r._sleep_setup() == "always"


BLOCKED_READER = """
import sys, time
from tradingd.segment.reader import SegmentReader
with SegmentReader.attach(sys.argv[1]) as r:
    sub = r.subscribe("latest")
    print("ready", flush=True)
    t = time.monotonic()
    ok = sub.wait_for_data(60.0)
    print(ok, time.monotonic() - t, r._sleep_setup(), flush=True)
"""


@pytest.mark.parametrize("pure_reader", [False, True])
def test_a_blocked_reader_in_another_process_is_woken(segment_name: str,
                                                      pure_reader: bool) -> None:
    env = {**os.environ, "TRADINGD_PURE_PYTHON": "1" if pure_reader else "0"}
    with SegmentWriter.create(segment_name, SYMS) as w:
        p = subprocess.Popen([sys.executable, "-c", BLOCKED_READER, segment_name], env=env,
                             stdout=subprocess.PIPE, text=True)
        try:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
            time.sleep(0.3)  # let it block
            w.publish(0, 0, 1.0, 1.0, 1.0, 1.0, 1.0)
            ok, waited, mode = p.stdout.readline().split()
        finally:
            p.kill()
            p.wait()
    assert ok == "True"
    assert mode == ("flag" if FAST is not None else "always")
    assert float(waited) < 30  # woken by the publish, not by the 60 s timeout


@needs_c
def test_a_name_too_long_for_the_companion_falls_back(segment_name: str) -> None:
    name = segment_name + "x" * (199 - len(segment_name))  # + ".wait" is over 200
    try:
        with SegmentWriter.create(name, SYMS) as w, SegmentReader.attach(name) as r:
            assert not w.sleepers_flag
            assert r._sleep_setup() == "always"
    finally:
        shm.unlink(name)
