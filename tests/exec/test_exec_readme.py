"""The README's "placing an order from Python" example runs as written against real daemons."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from daemons import DaemonProcess
from exec_support import write_config

pytestmark = pytest.mark.slow
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    section = text[text.index("### Placing an order from Python against the demo"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def test_readme_order_example(workdir: Path, segment_name: str) -> None:
    cfg = write_config(workdir)
    procs = [DaemonProcess("producer", cfg, workdir, segment=segment_name)]
    try:
        procs[0].wait_ready()
        procs.append(DaemonProcess("exec", cfg, workdir, segment=segment_name))
        procs[1].wait_ready()
        code = f"SEGMENT = {segment_name!r}\n" + readme_example()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60, cwd=workdir)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0] == "#1 EXECUTION id 1 AAPL NEW NEW cum 0 leaves 10"
        assert any("reason bad_quantity" in ln for ln in lines)
        assert any("TRADE FILLED 10 @" in ln for ln in lines)
        assert lines[-1].startswith("{'AAPL': Position(qty=10, avg_px=")
    finally:
        for p in procs:
            p.cleanup()
        for e in os.listdir("/dev/shm"):
            if e.startswith(segment_name + "."):
                os.unlink(f"/dev/shm/{e}")
