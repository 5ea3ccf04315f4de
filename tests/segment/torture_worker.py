"""Processes for test_torture.py: a full-speed writer and readers that check every record.

Each record's fields derive from its sequence number s, so a torn or mixed record cannot
pass: symbol = s % NSYM, event_ns = 3s+1, open = s, high = s+0.5, low = s-0.5,
close = s+0.25, volume = 2s. Run as ``python torture_worker.py writer NAME [RING]`` or
``python torture_worker.py ROLE NAME``. The writer publishes until it reads ``stop`` on stdin
(the test stops it once the readers have counted enough, however long that takes on a busy
machine); readers print a JSON line of their counts every ``PROGRESS_S`` (``"final":
false``) and one with ``"final": true`` when the writer has finished and they have read
everything.
"""

from __future__ import annotations

import json
import select
import sys
import time

import numpy as np

from tradingd.consumer.analytics import Analytics
from tradingd.consumer.latency import LatencyHistogram
from tradingd.segment import layout as L
from tradingd.segment.model import SymbolInfo
from tradingd.segment.reader import RingSubscription, SegmentReader
from tradingd.segment.writer import SegmentWriter

NSYM = 5
RING = 4096
#: Seconds between a reader's progress lines.
PROGRESS_S = 0.2


def records_for(first: int, n: int) -> np.ndarray:
    s = np.arange(first, first + n, dtype=np.int64)
    recs = np.zeros(n, L.RECORD_DTYPE)
    recs["symbol_id"] = s % NSYM
    recs["event_ns"] = 3 * s + 1
    recs["open"] = s
    recs["high"] = s + 0.5
    recs["low"] = s - 0.5
    recs["close"] = s + 0.25
    recs["volume"] = 2 * s
    return recs


def stop_requested() -> bool:
    """Has the test written ``stop`` (or closed our stdin)? Never blocks."""
    return bool(select.select([sys.stdin], [], [], 0)[0])


def writer(name: str, ring: int = RING) -> dict:
    w = SegmentWriter.create(name, [SymbolInfo(f"S{i}") for i in range(NSYM)],
                             symbol_capacity=NSYM, ring_capacity=ring, wake_readers=False)
    print("ready", flush=True)
    sys.stdin.readline()  # "go": the readers are attached
    publish = w.publish
    singles = batches = streamed = 0
    while not stop_requested():
        s = w.cursor
        for s in range(s, s + 2000):  # noqa: B020 - the single-record path
            publish(s % NSYM, 3 * s + 1, float(s), s + 0.5, s - 0.5, s + 0.25, 2.0 * s)
        singles += 2000
        for _ in range(20):  # the batch path, chunked by ring_window inside
            w.publish_batch(records_for(w.cursor, 3000))
            batches += 3000
        for _ in range(10):  # the replay's stream path: a prebuilt slice, event_ns shifted
            stream = records_for(w.cursor - 7, 307)
            stream["event_ns"] -= 5  # 5 short: publish_stream shifts it back
            w.publish_stream(stream, 7, 307, 5)  # records 7.. carry seq cursor.. fields
            streamed += 300
    w.set_state(L.STATE_FINISHED)
    stats = {"published": w.cursor, "singles": singles, "batched": batches,
             "streamed": streamed}
    print(json.dumps(stats), flush=True)
    sys.stdin.readline()  # "stop"
    sys.stdin.readline()  # the readers are done
    w.close()
    return stats


def check_tuple(rec: tuple) -> bool:
    s = rec[0]
    return (rec[1] == s % NSYM and rec[2] == 3 * s + 1 and rec[4] == s and rec[5] == s + 0.5
            and rec[6] == s - 0.5 and rec[7] == s + 0.25 and rec[8] == 2 * s)


def done(r: SegmentReader, position: int) -> bool:
    return r.state != L.STATE_LIVE and position >= r.cursor


class Progress:
    """Prints a reader's counts every PROGRESS_S; ``due()`` is cheap enough for every loop."""

    def __init__(self) -> None:
        self.calls = 0
        self.next_t = time.monotonic() + PROGRESS_S

    def due(self) -> bool:
        self.calls += 1
        return self.calls & 0x3FF == 0 and time.monotonic() >= self.next_t

    def report(self, counts: dict) -> None:
        print(json.dumps({**counts, "final": False}), flush=True)
        self.next_t = time.monotonic() + PROGRESS_S


def _counts(good: int, torn: int, sub: RingSubscription, start: int) -> dict:
    return {"read": good, "torn_accepted": torn, "lost": sub.lost, "rejected": sub.rejected,
            "span": sub.position - start, "stamp_reads": sub.stamp_reads,
            "trusted_reads": sub.trusted_reads}


def attach_oldest(name: str) -> tuple[SegmentReader, RingSubscription, int]:
    """Attach, subscribe at the oldest intact record, tell the parent we are ready."""
    r = SegmentReader.attach(name)
    sub = r.subscribe("oldest")
    print("ready", flush=True)
    return r, sub, sub.position


def _read_singly(name: str, how: str) -> dict:
    """Read record by record with ``poll_one`` or ``next`` (the spin path, stamp-first in
    C), checking each; stop when the writer is done and everything was read."""
    r, sub, start = attach_oldest(name)
    good = torn = 0
    last = -1
    read = sub.poll_one if how == "poll_one" else lambda: sub.next(0.01)
    progress = Progress()
    while True:
        if progress.due():
            progress.report(_counts(good, torn, sub, start))
        rec = read()
        if rec is None:
            if done(r, sub.position):
                break
            continue
        if check_tuple(rec) and rec[0] > last:
            good += 1
        else:
            torn += 1
        last = rec[0]
    return _counts(good, torn, sub, start)


def reader_single(name: str) -> dict:
    return _read_singly(name, "poll_one")


def reader_next(name: str) -> dict:
    return _read_singly(name, "next")


def reader_batch(name: str) -> dict:
    r, sub, start = attach_oldest(name)
    good = torn = 0
    last = -1
    progress = Progress()
    while True:
        if progress.due():
            progress.report(_counts(good, torn, sub, start))
        b = sub.poll_batch(8192)
        if len(b) == 0:
            if done(r, sub.position):
                break
            continue
        s = (b["event_ns"] - 1) // 3
        ok = ((b["seq_lo"] == (s & 0xFFFFFFFF)) & (b["symbol_id"] == s % NSYM)
              & (b["event_ns"] == 3 * s + 1) & (b["open"] == s) & (b["high"] == s + 0.5)
              & (b["low"] == s - 0.5) & (b["close"] == s + 0.25) & (b["volume"] == 2 * s))
        ok &= np.concatenate(([s[0] > last], np.diff(s) == 1))  # consecutive, no repeats
        good += int(ok.sum())
        torn += int(len(b) - ok.sum())
        last = int(s[-1])
    return _counts(good, torn, sub, start)


def _torn_in_window(a: Analytics) -> int:
    """Slots of the analytics' windows whose high/low/close/volume are not one record's."""
    n = np.minimum(a._count[:NSYM], a.window)
    bad = 0
    for sym in range(NSYM):
        w = a._buf[sym, :n[sym]]  # high, low, close, volume
        s = w[:, 2] - 0.25
        ok = ((w[:, 0] == s + 0.5) & (w[:, 1] == s - 0.5) & (w[:, 3] == 2 * s)
              & (s % NSYM == sym))
        bad += int(len(w) - ok.sum())
    return bad


def reader_analyse(name: str) -> dict:
    """The consumer daemon's batch path: ``read_analyse`` (C: read, analytics, latency in
    one pass, nothing copied out) or, pure Python, ``poll_batch`` + the numpy analytics.
    Every call's records stay in the analytics windows (a window longer than a call reads
    per symbol), where each slot is checked; records read = the analytics' count."""
    r, sub, start = attach_oldest(name)
    # a call takes at most `window` records, so each stays in its symbol's window until
    # checked; small on a small ring (a call there takes a few records: a cheap check)
    window = max(16, min(2048, 2 * r.geometry.ring_capacity))
    a = Analytics(NSYM, window, use_c=sub.read_analyse is not None)
    lat = LatencyHistogram()
    torn = 0
    progress = Progress()
    last_close = np.full(NSYM, -1.0)
    while True:
        if progress.due():
            progress.report(_counts(a.records, torn, sub, start))
        if sub.read_analyse is not None:
            got, ignored, lat_n, lat_sum = sub.read_analyse(
                window, time.monotonic_ns(), 0, a.c_state(), lat.c_state(), lat.recent_n)
            a.applied_in_place(got, ignored, 0)
            lat.observed_in_place(lat_n, lat_sum)
            assert lat_n == got and ignored == 0
        else:
            b = sub.poll_batch(window)
            got = len(b)
            a.update(b)
            a.flush()
        if got == 0:
            if done(r, sub.position):
                break
            continue
        torn += _torn_in_window(a)
        closes = a._last[:NSYM]
        seen = a._count[:NSYM] > 0
        torn += int((seen & (closes < last_close)).sum())  # a symbol's records in order
        last_close = np.where(seen, closes, last_close)
    assert lat.total == (a.records if sub.read_analyse is not None else 0)
    return _counts(a.records, torn, sub, start)


def reader_latest(name: str) -> dict:
    r = SegmentReader.attach(name)
    print("ready", flush=True)
    good = torn = 0
    read = r.latest_tuple
    progress = Progress()
    while r.state == L.STATE_LIVE:
        if progress.due():
            progress.report({"read": good, "torn_accepted": torn})
        for sym in range(NSYM):
            t = read(sym)
            if t is None:
                continue
            seq, price, volume, event_ns, _pub, valid = t
            if (seq % NSYM == sym and price == seq + 0.25 and volume == 2 * seq
                    and event_ns == 3 * seq + 1 and valid == 1):
                good += 1
            else:
                torn += 1
    return {"read": good, "torn_accepted": torn}


if __name__ == "__main__":
    role, seg = sys.argv[1], sys.argv[2]
    if role == "writer":
        writer(seg, *map(int, sys.argv[3:4]))
    else:
        fn = {"single": reader_single, "next": reader_next, "batch": reader_batch,
              "latest": reader_latest, "analyse": reader_analyse}[role]
        print(json.dumps({**fn(seg), "final": True}), flush=True)
