"""Fixtures shared by the whole suite: private segment names, cleanup, implementations.

Every test gets its own segment name (``tdtest-<hex>``) and whatever it leaves in
/dev/shm under that name is removed afterwards, also when the test fails.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from daemons import DaemonProcess
from support import new_segment_name, remove_segment_files

from tradingd.segment import fastpath, reader, writer


@pytest.fixture
def segment_name() -> Iterator[str]:
    """A fresh segment name; /dev/shm/<name> and every <name>.* beside it (the sleepers
    companion, order and report rings) are removed after the test."""
    name = new_segment_name()
    yield name
    remove_segment_files(name)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short-named scratch directory for a daemon's config and logs, removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="tdw-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def start(workdir: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start daemons; each is SIGKILLed by PID afterwards, a stopped one too (segments:
    see segment_name)."""
    started: list[DaemonProcess] = []

    def _start(kind: str, config: Path, env: dict[str, str] | None = None) -> DaemonProcess:
        d = DaemonProcess(kind, config, workdir, env=env)
        started.append(d)
        return d

    yield _start
    for d in reversed(started):
        d.cleanup()


@pytest.fixture(params=["c", "python"])
def impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test against the C fast path and against the pure-Python reference."""
    if request.param == "c":
        if fastpath.FAST is None:
            pytest.skip("C fast path not built (tradingd.segment._fastpath missing)")
    else:
        monkeypatch.setattr(writer, "FAST", None)
        monkeypatch.setattr(reader, "FAST", None)
    return request.param
