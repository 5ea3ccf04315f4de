"""Fixtures for the systemd tests: one sandboxed systemd per module, ended even on failure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from systemd_sandbox import Sandbox, skip_reason

#: The checkout under test (the sandbox runs `make install` from it).
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A booted systemd in private namespaces; its PID 1 is killed when the module ends."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    box = Sandbox(tmp_path_factory.mktemp("systemd-sandbox"), REPO)
    try:
        box.boot()
        yield box
    finally:
        box.close()
