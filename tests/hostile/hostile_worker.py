"""Run in a subprocess by test_hostile_fastpath.py: hostile header values after attach.

``python hostile_worker.py MODE NAME`` with TRADINGD_PURE_PYTHON=1 (pure Python) or not
(the C fast path). Prints one JSON object. A call that never returns (the bug this
catches: the C reader spun forever holding the GIL) shows as the parent's timeout.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from tradingd.errors import SegmentError, TradingdError
from tradingd.segment import fastpath
from tradingd.segment import layout as L
from tradingd.segment.model import SymbolInfo
from tradingd.segment.reader import SegmentReader
from tradingd.segment.writer import SegmentWriter

SYMS = [SymbolInfo(name=f"S{i}", asset_class="stock", currency="USD", price_decimals=2,
                   bar_interval_ns=86_400 * 10**9, record_count=0) for i in range(4)]


def timed(fn, *args):  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    try:
        out = fn(*args)
        kind = "none" if out is None else type(out).__name__
    except TradingdError as exc:
        kind = f"error:{type(exc).__name__}"
    return {"result": kind, "seconds": time.monotonic() - t0}


def _count(ticks: list[int], stop: threading.Event) -> None:
    """Runs beside a wait: if the wait held the GIL throughout, ticks stays 0."""
    while not stop.is_set():
        ticks[0] += 1
        time.sleep(0.001)


def extreme_cursor(name: str) -> dict[str, object]:
    out: dict[str, object] = {"impl": fastpath.IMPLEMENTATION}
    with SegmentWriter.create(name, SYMS, symbol_capacity=4, ring_capacity=64) as w:
        for i in range(200):
            w.publish(i % 4, i, 1.0, 2.0, 0.5, 1.5, 1.0)
        with SegmentReader.attach(name) as r:
            for value in (2**63 - 3, 2**63, 2**63 + 17, 2**64 - 1):
                sub = r.subscribe("latest")
                w._words[L.HEADER.word("ring_cursor")] = value
                ticks = [0]
                stop = threading.Event()
                t = threading.Thread(target=_count, args=(ticks, stop))
                t.start()
                res = {"next": timed(sub.next, 0.3), "poll_one": timed(sub.poll_one),
                       "spin": timed(sub.spin, 0.05)}
                stop.set()
                t.join()
                res["batch"] = timed(sub.poll_batch, 64)
                res["other_thread_ran"] = ticks[0]
                out[str(value)] = res
    return out


def stuck_lock(name: str) -> dict[str, object]:
    out: dict[str, object] = {"impl": fastpath.IMPLEMENTATION}
    with SegmentWriter.create(name, SYMS, symbol_capacity=4, ring_capacity=64) as w:
        w.publish(1, 1, 1.0, 2.0, 0.5, 1.5, 1.0)
        with SegmentReader.attach(name) as r:
            w._words[w._latest_word0 + 1 * 8] = 2 * 7 + 1  # odd: "being written", forever
            t0 = time.monotonic()
            try:
                r.latest(1)
                out["latest"] = "no error"
            except SegmentError as exc:
                out["latest"] = type(exc).__name__
                out["message"] = str(exc)
                out["exit_code"] = exc.exit_code
            out["seconds"] = time.monotonic() - t0
            out["within"] = timed(r.latest_within, 1, 0.05)
            out["others"] = [r.latest(i) is None for i in (0, 2, 3)]
    return out


if __name__ == "__main__":
    mode, segment = sys.argv[1], sys.argv[2]
    print(json.dumps({"extreme-cursor": extreme_cursor, "stuck-lock": stuck_lock}[mode](segment)))
