"""Bounded, seeded fuzzing of both readers (fuzz_worker.py in a subprocess each).

3,000 mutants of real segments per implementation through attach, snapshots and every ring
read, before and after further mutation under the live mapping. Fails on any exception
that is not a TradingdError, on a crash (negative return code: SIGSEGV/SIGBUS) and on a
hang (the timeout). The same seed gives both implementations the same mutants: their
attach verdicts must agree exactly.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_support import env

from tradingd.segment import fastpath

WORKER = Path(__file__).with_name("fuzz_worker.py")
SEED = 20261201
MUTANTS = 3000


def test_fuzzed_segments_only_ever_give_typed_errors(segment_name: str) -> None:
    impls = ["python"] + (["c"] if fastpath.FAST is not None else [])
    procs = {}
    for impl in impls:
        extra = {"TRADINGD_PURE_PYTHON": "1"} if impl == "python" else {}
        procs[impl] = subprocess.Popen(
            [sys.executable, str(WORKER), str(SEED), str(MUTANTS), f"{segment_name}-{impl}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(**extra))
    results = {}
    try:
        for impl, proc in procs.items():
            try:
                out, err = proc.communicate(timeout=180)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"{impl} fuzz run hung (no answer in 180 s)") from None
            assert proc.returncode >= 0, f"{impl} reader crashed (signal {-proc.returncode})"
            res = json.loads(out)
            assert res["failure_count"] == 0, json.dumps(res["failures"], indent=1)
            assert proc.returncode == 0, err
            results[impl] = res
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for impl, res in results.items():
        stats = res["stats"]
        print(f"\n[{impl}] {MUTANTS} mutants, seed {SEED}: " + ", ".join(
            f"{k} {v}" for k, v in stats.items() if k.startswith(("refused", "accepted",
                                                                  "records", "typed"))))
        refused = sum(v for k, v in stats.items() if k.startswith("refused:"))
        assert refused + stats["accepted"] == MUTANTS
        assert stats["accepted"] > 100 and stats["records"] > 0  # the read paths ran
        assert len([k for k in stats if k.startswith("refused:")]) >= 4  # varied damage
    if len(results) == 2:
        verdicts = [{k: v for k, v in r["stats"].items()
                     if k.startswith(("refused:", "accepted"))} for r in results.values()]
        assert verdicts[0] == verdicts[1], verdicts


@pytest.fixture(autouse=True)
def _no_leftovers(segment_name: str) -> Iterator[None]:
    """A killed worker leaves its current mutant: remove every /dev/shm/NAME-* file."""
    yield
    for path in glob.glob(f"/dev/shm/{segment_name}-*"):
        os.unlink(path)
