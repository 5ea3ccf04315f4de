"""Fixtures for the gateway tests: real producers and gateways, killed by PID afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_support import Stack


@pytest.fixture
def stack(workdir: Path, segment_name: str) -> Iterator[Stack]:
    s = Stack(workdir, segment_name)
    try:
        yield s
    finally:
        s.cleanup()
