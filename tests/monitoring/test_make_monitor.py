"""``make monitor`` (python -m tradingd.monitoring.monitor): the demo pair plus a local
Prometheus; it prints the URL, shows both targets up, and removes everything at the end."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tradingd.monitoring.promserver import find_binary

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_monitor_runs_prometheus_with_the_rules_and_cleans_up() -> None:
    if find_binary("prometheus") is None:
        pytest.skip("prometheus not installed (Debian package prometheus; make test-deps)")
    proc = subprocess.Popen([sys.executable, "-m", "tradingd.monitoring.monitor",
                             "--duration", "14", "--refresh", "2"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        head = [proc.stdout.readline() for _ in range(4)]  # the banner
        first = "".join(head)
        assert "Prometheus on http://127.0.0.1:" in first, first
        url = first.split("Prometheus on ", 1)[1].split()[0]
        assert not url.endswith((":9090", ":9101", ":9102"))
        with urllib.request.urlopen(f"{url}/api/v1/rules", timeout=10) as resp:
            body = resp.read().decode()
        assert "TradingdProducerDown" in body and "tradingd:consumer_lag:ratio" in body
        out = proc.stdout.read()
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, out
    assert "tradingd-consumer up, tradingd-producer up" in out
    segment = next(w for w in (first + out).split() if w.startswith("/dev/shm/tdmon-"))
    assert not Path(segment.rstrip(",")).exists()
