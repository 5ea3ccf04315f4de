"""Helpers for the inspector tests: real producers, and running tradingd-inspect.

A producer is the installed console script (``.venv/bin/tradingd-producer``) started on a
private segment name with a config in a temporary directory (metrics off, a fast
heartbeat, a paced replay of the bundled data). It counts as started once its segment is
live with its own PID in the header. Every process is killed by PID (SIGCONT first, in
case a test stopped it) and every segment removed afterwards, also when a test fails.

``inspect(...)`` runs ``tradingd-inspect`` in this process (fast: no interpreter start per
call) and returns its exit code, stdout and stderr; ``inspect_cli(...)`` runs the real
console script as a separate process.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from support import remove_segment_files

from tradingd.errors import SegmentError
from tradingd.inspector import cli
from tradingd.segment import layout as L
from tradingd.segment.reader import SegmentReader

REPO = Path(__file__).resolve().parents[2]
MARKET_DATA = REPO / "market_data"
BIN = Path(sys.executable).parent
PRODUCER = BIN / "tradingd-producer"
INSPECT = BIN / "tradingd-inspect"
TOOLS = REPO / "tools"
START_TIMEOUT = 15.0  # generous for a loaded 2-CPU box; READY normally takes < 1 s
#: The producers' heartbeat interval: its timeout is the 0.5 s floor (liveness).
HEARTBEAT_S = 0.05


def new_name() -> str:
    return f"tdtest-insp-{uuid.uuid4().hex[:8]}"


def remove_segment(name: str) -> None:
    remove_segment_files(name)


def write_config(directory: Path, *, replay: dict | None = None,
                 segment: dict | None = None) -> Path:
    """A producer config on the bundled data: metrics off, heartbeat every 50 ms."""
    cfg = {
        "segment": {"ring_capacity": 4096, "heartbeat_interval": HEARTBEAT_S,
                    **(segment or {})},
        "producer": {
            "data_dir": str(MARKET_DATA),
            # a year of data per second: a few hundred records/s, little CPU
            "replay": {"mode": "paced", "speed": 365 * 86400.0, "at_end": "loop",
                       **(replay or {})},
            "metrics": {"enabled": False, "port": 0},
        },
        "consumer": {"metrics": {"enabled": False, "port": 0}},
    }
    path = directory / f"tradingd-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM",
                         "TRADINGD_CONFIG")}


class Producer:
    """One real producer process (possibly under a wrapper such as strace)."""

    def __init__(self, config: Path, segment: str, workdir: Path,
                 wrapper: Sequence[str] = ()) -> None:
        self.config = config
        self.segment = segment
        self.log_path = workdir / f"{segment}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in cleanup)
        self.proc = subprocess.Popen(
            [*wrapper, str(PRODUCER), "--config", str(config), "--segment", segment],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, cwd=workdir,
            env=clean_env())
        self.pid = self.proc.pid  # the wrapper's PID until wait_live() reads the header

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_live(self, timeout: float = START_TIMEOUT) -> dict[str, int]:
        """Wait until the segment is live; return its header (sets :attr:`pid`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"producer exited with {self.proc.returncode}:\n{self.log}")
            try:
                with SegmentReader.attach(self.segment) as r:
                    h = r.header()
                    if r.cursor > 0:
                        self.pid = h["producer_pid"]
                        return h
            except SegmentError:
                pass
            time.sleep(0.02)
        raise AssertionError(f"segment {self.segment} not live after {timeout} s:\n{self.log}")

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def kill_and_reap(self) -> None:
        """SIGKILL the producer and wait for it: it leaves its segment behind."""
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(10)

    def cleanup(self) -> None:
        for pid in {self.pid, self.proc.pid}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._log.close()
        remove_segment(self.segment)


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> object:
        import json

        return json.loads(self.out)


def inspect(*argv: str) -> Result:
    """``tradingd-inspect ARGV`` in this process (stdout/stderr captured)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    result = Result(code, out.getvalue(), err.getvalue())
    assert "Traceback" not in result.err, result.err
    return result


def inspect_cli(*argv: str, timeout: float = 30) -> Result:
    """The real console script, as a separate process."""
    p = subprocess.run([str(INSPECT), *argv], capture_output=True, text=True,
                       timeout=timeout, env=clean_env(), cwd=REPO)
    assert "Traceback" not in p.stderr, p.stderr
    return Result(p.returncode, p.stdout, p.stderr)


def header_offset(field: str) -> int:
    return L.HEADER.offset(field)
