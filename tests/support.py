"""Helpers more than one test module needs (importable as ``support`` from tests/)."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import uuid

import pytest

from tradingd.consumer.analytics import SymbolStats


def promtool_lint(text: str | bytes) -> None:
    """``promtool check metrics`` must print nothing on a scrape (skip without promtool)."""
    promtool = shutil.which("promtool") or (
        "/usr/bin/promtool" if os.path.exists("/usr/bin/promtool") else None)
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus): metrics not linted")
    data = text.encode() if isinstance(text, str) else text
    res = subprocess.run([promtool, "check", "metrics"], input=data, capture_output=True,
                         timeout=30)
    out = (res.stdout + res.stderr).decode()
    assert res.returncode == 0 and out.strip() == "", out


class ThreadStop:
    """A stop flag for code that takes ``tradingd.daemon.signals.StopFlag`` (no signals)."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def is_set(self) -> bool:
        return self.event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.event.wait(timeout)

    def set(self) -> None:
        self.event.set()


def symbol_stats(name: str, i: int, vwap: float = 101.5) -> SymbolStats:
    """A plausible SymbolStats for rendering and metrics tests."""
    return SymbolStats(
        symbol_id=i, name=name, records=10 + i, last_price=102.0, previous_price=101.0,
        first_price=100.0, change=1.0, change_pct=0.99, change_since_first=2.0,
        change_since_first_pct=2.0, vwap=vwap, return_mean=0.001, return_std=0.02,
        high=103.0, low=99.0, last_volume=5.0, window_volume=50.0, total_volume=60.0,
        window_records=10, tick_rate=3.5, last_event_ns=1_600_000_000 * 10**9,
        last_publish_ns=5)


def remove_segment_files(name: str) -> None:
    """Remove /dev/shm/NAME and every NAME.* beside it: the sleepers companion (.wait) and
    the order and report rings (.orders.<client>, .reports.<client>) named after it."""
    directory = "/dev/shm"
    for entry in os.listdir(directory):
        if entry == name or entry.startswith(name + "."):
            path = os.path.join(directory, entry)
            if os.path.lexists(path):
                os.unlink(path)


def new_segment_name(prefix: str = "tdtest") -> str:
    """A private segment name for one test (``tdtest-<hex>``)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
