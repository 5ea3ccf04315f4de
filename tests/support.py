"""Helpers more than one test module needs (importable as ``support`` from tests/)."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading

import pytest


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
