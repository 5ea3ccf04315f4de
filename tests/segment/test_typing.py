"""The hand-written stubs of the C extensions say what the built modules really have.

mypy checks every caller of the C fast path and of posix_ipc against
``tradingd/segment/_fastpath.pyi`` and ``stubs/posix_ipc.pyi``; a stub that drifts from the
extension (a method renamed in ``_fastpath.c``, an argument added) would make those checks
lie. ``mypy.stubtest`` imports the real module and compares it with its stub.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tradingd.segment import fastpath

ROOT = Path(__file__).resolve().parents[2]


def _stubtest(module: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MYPYPATH=str(ROOT / "stubs"))
    env.pop("TRADINGD_PURE_PYTHON", None)
    return subprocess.run([sys.executable, "-m", "mypy.stubtest", module, *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_fastpath_stub_matches_the_built_extension() -> None:
    if fastpath.FAST is None:
        pytest.skip("C fast path not built: nothing to compare the stub with")
    res = _stubtest("tradingd.segment._fastpath")
    assert res.returncode == 0, res.stdout + res.stderr


def test_posix_ipc_stub_matches_what_it_declares() -> None:
    # the stub declares only what tradingd uses: what it declares must be right
    res = _stubtest("posix_ipc", "--ignore-missing-stub")
    assert res.returncode == 0, res.stdout + res.stderr
