"""Hostile header values after attach, in both implementations (C and pure Python).

A ring cursor near 2^63 used to make the C reader's ``next(timeout)``/``poll_one()`` spin
forever holding the GIL (int64 overflow in ``c1 + margin``; the timeout checked only in
the inner spin); a latest slot whose seqlock stays odd raised ``RuntimeError`` from C.
Both run here in a subprocess with a timeout (a hang holding the GIL cannot be
interrupted in-process), against the same bad values, and must agree: timeouts honoured,
other threads running meanwhile, the same typed error with the same message.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostile_support import INSPECT, env, write_config

from tradingd.inspector.source import STUCK_BUDGET_S
from tradingd.segment import fastpath
from tradingd.segment.model import SymbolInfo
from tradingd.segment.writer import SegmentWriter

WORKER = Path(__file__).with_name("hostile_worker.py")
IMPLS = ["c", "python"]


def run_worker(mode: str, impl: str, name: str) -> dict:
    if impl == "c" and fastpath.FAST is None:
        pytest.skip("C fast path not built")
    extra = {"TRADINGD_PURE_PYTHON": "1"} if impl == "python" else {}
    try:
        res = subprocess.run([sys.executable, str(WORKER), mode, name], capture_output=True,
                             text=True, timeout=60, env=env(**extra))
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{impl} reader hung in {mode}") from None
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["impl"] == impl
    return out


@pytest.mark.parametrize("impl", IMPLS)
def test_extreme_cursor_returns_within_its_timeouts(impl: str, segment_name: str) -> None:
    out = run_worker("extreme-cursor", impl, segment_name)
    for value in (2**63 - 3, 2**63, 2**63 + 17, 2**64 - 1):
        r = out[str(value)]
        assert r["next"]["result"] == "none" and r["next"]["seconds"] < 0.3 + 2.0, r
        assert r["poll_one"]["result"] == "none" and r["poll_one"]["seconds"] < 1.0, r
        assert r["spin"]["result"] == "bool" and r["spin"]["seconds"] < 0.05 + 2.0, r
        assert r["batch"]["result"] == "ndarray", r
        assert r["other_thread_ran"] > 0, r  # the GIL was released while it waited


def test_stuck_lock_same_typed_error_in_both(segment_name: str) -> None:
    outs = {impl: run_worker("stuck-lock", impl, f"{segment_name}-{impl}") for impl in IMPLS
            if impl == "python" or fastpath.FAST is not None}
    for out in outs.values():
        assert out["latest"] == "SegmentStuck", out
        assert out["exit_code"] == 76 and 0.9 < out["seconds"] < 5.0, out
        assert "latest slot 1 (offset" in out["message"] and "not stable for 1 s" in out["message"]
        assert out["within"]["result"] == "error:SegmentStuck", out
        assert out["within"]["seconds"] < 1.0, out
        assert out["others"] == [True, True, True], out  # never-written slots: None
    if len(outs) == 2:
        assert (outs["c"]["message"].replace(f"{segment_name}-c", "NAME")
                == outs["python"]["message"].replace(f"{segment_name}-python", "NAME"))


@pytest.mark.parametrize("impl", IMPLS)
def test_inspector_bounds_its_wait_on_many_stuck_slots(impl: str, segment_name: str,
                                                       workdir: Path) -> None:
    """64 stuck slots used to cost the pure-Python inspector 64 s (1 s each)."""
    if impl == "c" and fastpath.FAST is None:
        pytest.skip("C fast path not built")
    syms = [SymbolInfo(name=f"S{i}", asset_class="stock", currency="USD", price_decimals=2,
                       bar_interval_ns=86_400 * 10**9, record_count=1) for i in range(64)]
    with SegmentWriter.create(segment_name, syms, symbol_capacity=64, ring_capacity=1024) as w:
        for i in range(64):
            w.publish(i, i, 1.0, 2.0, 0.5, 1.5, 1.0)
        for i in range(64):
            w._words[w._latest_word0 + i * 8] = 2 * i + 1  # every lock odd: a frozen writer
        extra = {"TRADINGD_PURE_PYTHON": "1"} if impl == "python" else {}
        t0 = time.monotonic()
        res = subprocess.run([INSPECT, "latest", "--config", str(write_config(workdir)),
                              "--segment", segment_name], capture_output=True, text=True,
                             timeout=60, env=env(**extra))
        took = time.monotonic() - t0
    out = res.stdout + res.stderr
    assert "Traceback" not in out
    assert out.count("the writer is stuck mid-update") == 64, out
    assert took < STUCK_BUDGET_S + 8.0, took  # the budget plus an interpreter start
