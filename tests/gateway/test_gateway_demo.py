"""`make demo` runs the gateway too: the printed page URL serves the page and the WebSocket API."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from daemons import command
from gateway_support import http_get
from websockets.sync.client import connect

from tradingd.segment import shm

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    """Running (a zombie not yet reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_demo_prints_the_page_url_and_serves_it() -> None:
    proc = subprocess.Popen([*command("demo"), "--duration", "6", "--refresh", "1",
                             "--speed", "1e9"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, cwd=REPO)
    out = ""
    pids: list[int] = []
    segment = None
    try:
        assert proc.stdout is not None
        out = proc.stdout.readline().decode() + proc.stdout.readline().decode()
        m = re.search(r"live page (http://127\.0\.0\.1:(\d+)/)", out)
        assert m, out
        url, port = m.group(1), int(m.group(2))
        segment = re.search(r"segment /dev/shm/(\S+);", out).group(1)  # type: ignore[union-attr]
        pids = [int(p) for p in re.findall(r"pid (\d+)", out)]
        assert len(pids) == 3, out
        deadline = time.monotonic() + 20
        while True:
            try:
                code, body = http_get(url)
                break
            except OSError:
                assert time.monotonic() < deadline, out
                time.sleep(0.1)
        assert code == 200 and b"tradingd live" in body
        with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=10) as ws:
            assert json.loads(ws.recv(10))["type"] == "welcome"
        out += proc.communicate(timeout=60)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if segment:
            with contextlib.suppress(OSError):
                shm.unlink(segment)
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    assert not any(alive(pid) for pid in pids), out
