"""Helpers for the hostile-host suite: tiny data, configs, planted files, bounded runs.

Every daemon or tool runs as a real process with a timeout (a hang fails the test instead
of stalling the suite) and its output is checked for tracebacks. Planted files live under
the test's private segment name (``tdtest-<hex>``), which the ``segment_name`` fixture
removes afterwards whatever it is (file, FIFO, symlink; :func:`remove_planted` handles a
directory).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from tradingd.inspector import cli
from tradingd.segment import layout as L
from tradingd.segment import shm
from tradingd.segment.model import SymbolInfo
from tradingd.segment.reader import HEADER_INT_FIELDS
from tradingd.segment.writer import SegmentWriter

BIN = Path(sys.executable).parent
PRODUCER = str(BIN / "tradingd-producer")
CONSUMER = str(BIN / "tradingd-consumer")
INSPECT = str(BIN / "tradingd-inspect")
RUN_TIMEOUT = 30.0  # generous for a loaded 2-CPU box; a hang is what it catches
_SCRUB = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM",
          "TRADINGD_CONFIG")

CSV_HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    out.update(extra)
    return out


def tiny_csv(path: Path, rows: int = 40, *, start_year: int = 2000, step_years: int = 0) -> Path:
    """A small valid Yahoo-layout CSV (loads in milliseconds)."""
    lines = [CSV_HEADER]
    for i in range(rows):
        year = start_year + i * step_years if step_years else start_year + i // 300
        day = f"{year:04d}-{1 + (i // 28) % 12:02d}-{1 + i % 28:02d}"
        p = 100.0 + i
        lines.append(f"{day},{p},{p + 1},{p - 1},{p + 0.5},{p + 0.5},{1000 + i}\n")
    path.write_text("".join(lines))
    return path


def write_config(workdir: Path, *, segment: dict | None = None, producer: dict | None = None,
                 replay: dict | None = None, csv: str = "T.csv", name: str = "td.yaml") -> Path:
    """A config on one tiny symbol: fast heartbeat, metrics on a free port."""
    if not (workdir / csv).exists():
        tiny_csv(workdir / csv)
    cfg: dict = {
        "segment": {"ring_capacity": 1024, "symbol_capacity": 8, "heartbeat_interval": 0.05,
                    **(segment or {})},
        "producer": {
            "data_dir": str(workdir),
            "symbols": [{"name": "T", "file": csv, "asset_class": "stock", "format": "yahoo"}],
            "replay": {"mode": "paced", "speed": 86400.0 * 30, "at_end": "loop",
                       **(replay or {})},
            "metrics": {"enabled": True, "address": "127.0.0.1", "port": 0},
            **(producer or {}),
        },
        "consumer": {"metrics": {"enabled": True, "address": "127.0.0.1", "port": 0},
                     "attach_retry_interval": 0.05},
    }
    path = workdir / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def run(args: list[str], *, timeout: float = RUN_TIMEOUT, extra_env: dict[str, str] | None = None,
        input_: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command to its end (bounded); fail on a timeout or a Python traceback."""
    try:
        res = subprocess.run(args, capture_output=True, timeout=timeout,
                             env=env(**(extra_env or {})), text=True,
                             input=input_.decode("latin-1") if input_ is not None else None,
                             stdin=None if input_ is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{args} did not finish within {timeout} s (a hang): "
                             f"{exc.stdout!r} {exc.stderr!r}") from None
    assert "Traceback" not in res.stdout + res.stderr, res.stdout + res.stderr
    return res


def producer(config: Path, segment: str, *, timeout: float = RUN_TIMEOUT,
             prefix: list[str] | None = None,
             extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A producer expected to exit by itself (refusal), run to its end."""
    return run([*(prefix or []), PRODUCER, "--config", str(config), "--segment", segment],
               timeout=timeout, extra_env=extra_env)


def inspect(*args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """The real ``tradingd-inspect`` console script, as a process (bounded)."""
    return run([INSPECT, *args], timeout=timeout)


def inspect_here(*argv: str) -> subprocess.CompletedProcess[str]:
    """``tradingd-inspect ARGV`` in this process (no interpreter start: fast)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    res = subprocess.CompletedProcess(list(argv), code, out.getvalue(), err.getvalue())
    assert "Traceback" not in res.stdout + res.stderr, res.stderr
    return res


def segment_bytes(name: str, *, records: int = 100, symbols: int = 4, ring: int = 64,
                  finish: bool = True) -> bytes:
    """The bytes of a real, live segment (a few records published), then removed."""
    syms = [SymbolInfo(name=f"S{i}", asset_class="stock", currency="USD", price_decimals=2,
                       bar_interval_ns=86_400 * 10**9, record_count=records)
            for i in range(symbols)]
    w = SegmentWriter.create(name, syms, symbol_capacity=max(symbols, 1), ring_capacity=ring)
    try:
        for i in range(records):
            w.publish(i % symbols, 1_600_000_000 * 10**9 + i, 1.0, 2.0, 0.5, 1.5, 10.0)
        with open(shm.segment_path(name), "rb") as f:
            data = f.read()
    finally:
        w.close()  # unlinks it
    return set_word(data, "producer_pid", dead_pid())  # a dead producer's leftover


def dead_pid() -> int:
    """The PID of a process that has just exited (not reused within a test, in practice)."""
    p = subprocess.run(["true"], check=True)
    del p
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def set_word(data: bytes, field: str, value: int) -> bytes:
    """``data`` with header field ``field`` (an aligned u64) set to ``value``."""
    b = bytearray(data)
    off = L.HEADER.offset(field)
    b[off:off + 8] = (value & (2**64 - 1)).to_bytes(8, "little")
    return bytes(b)


def write_file(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def remove_planted(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def plant(kind: str, path: str, name_for_bytes: str) -> None:
    """Put a hostile thing at ``path`` (see HOSTILE_KINDS)."""
    if kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "symlink":
        os.symlink("/etc/passwd", path)
    elif kind == "directory":
        os.mkdir(path, 0o700)
    elif kind == "sparse":  # a valid header on a 2 GiB sparse file: never mapped or faulted
        write_file(path, segment_bytes(name_for_bytes))
        os.truncate(path, 2 * 2**30)
    elif kind == "odd_size":  # a real segment plus 3 bytes: cast("Q") used to raise TypeError
        write_file(path, segment_bytes(name_for_bytes) + b"xyz")
    elif kind == "truncated_odd":
        write_file(path, segment_bytes(name_for_bytes)[:L.HEADER.size + 13])
    elif kind == "huge_pid":  # os.kill used to raise OverflowError
        write_file(path, set_word(segment_bytes(name_for_bytes), "producer_pid", 2**31 + 7))
    elif kind == "extreme_cursor":
        write_file(path, set_word(segment_bytes(name_for_bytes), "ring_cursor", 2**63 - 3))
    else:
        raise ValueError(kind)


#: kind -> (reader error class name, a phrase of its message)
HOSTILE_KINDS = {
    "fifo": ("SegmentForeign", "is a FIFO (named pipe)"),
    "symlink": ("SegmentForeign", "is a symbolic link: refusing to follow it"),
    "directory": ("SegmentForeign", "is a directory"),
    "sparse": ("SegmentCorrupt", "more than the header's total_size"),
    "odd_size": ("SegmentCorrupt", "more than the header's total_size"),
    "truncated_odd": ("SegmentCorrupt", "truncated"),
    "huge_pid": ("SegmentCorrupt", "producer_pid"),
    "extreme_cursor": ("SegmentCorrupt", "ring_cursor"),
}


def header_of(data: bytes) -> dict[str, int]:
    row = np.frombuffer(data[:L.HEADER.size], L.HEADER_DTYPE, count=1)[0]
    return {n: int(row[n]) for n in HEADER_INT_FIELDS}
