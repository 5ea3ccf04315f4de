"""Producer benchmark: load speed per bundled file, replay publish rate, RSS, time to READY.

    .venv/bin/python bench/bench_producer.py [--seconds 3] [--config config/tradingd.yaml]

Prints, for this machine and this run:
  1. loading each configured CSV with the producer's own code path (best of 5): rows/s,
     and the time to merge every symbol into one time-ordered stream;
  2. replaying that stream in fast mode (looping) into a private segment, in process,
     for ``--seconds``: records/s at the configured fast_batch_size and at 1024
     (bench_endtoend.py has ring sizes, symbol counts and the C ring beside it);
  3. the real ``tradingd-producer`` process on a private segment, fast mode, looping:
     time from spawn to READY=1 (received on a notify socket), its RSS after
     ``--seconds`` of replay, and its publish rate read from the segment's cursor.
Absolute figures drift between runs on a shared VM; compare within one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

from tradingd.clock import ManualClock
from tradingd.daemon.config import load_config
from tradingd.producer.daemon import load_symbol
from tradingd.producer.replay import Replayer, ReplaySettings, bar_interval_ns, build_timeline
from tradingd.segment import shm
from tradingd.segment.model import SymbolInfo
from tradingd.segment.reader import SegmentReader
from tradingd.segment.writer import SegmentWriter

REPO = Path(__file__).resolve().parent.parent


def _name() -> str:
    return f"tdbench-{uuid.uuid4().hex[:8]}"


def bench_load(config_path: str) -> list:
    """Load every file (best of 5); return the bars per symbol."""
    cfg = load_config(config_path)
    print(f"1. loading ({cfg.source_path}, strict={cfg.producer.strict})")
    all_bars = []
    for sym in cfg.producer.symbols:
        best = float("inf")
        result = None
        for _ in range(5):
            t0 = time.perf_counter()
            result = load_symbol(cfg, sym)
            best = min(best, time.perf_counter() - t0)
        assert result is not None
        size = os.path.getsize(sym.path)
        print(f"   {sym.file:22s} {result.rows_read:8d} rows {len(result.bars):8d} kept "
              f"{best * 1e3:7.2f} ms  {result.rows_read / best / 1e6:6.2f} M rows/s  "
              f"{size / best / 2**20:6.1f} MiB/s")
        all_bars.append(result.bars)
    t0 = time.perf_counter()
    tl = build_timeline(all_bars)
    took = time.perf_counter() - t0
    print(f"   merge of {tl.total} records by event time: {took * 1e3:.2f} ms")
    return all_bars


def bench_replay(all_bars: list, seconds: float, batch: int) -> float:
    """Fast-mode replay into a private segment in process: records/s."""
    tl = build_timeline(all_bars)
    syms = [SymbolInfo(f"S{i}", bar_interval_ns=bar_interval_ns(b["event_ns"]),
                       record_count=len(b)) for i, b in enumerate(all_bars)]
    name = _name()
    with SegmentWriter.create(name, syms, ring_capacity=65536) as w:
        rp = Replayer(tl, w, ReplaySettings(mode="fast", fast_batch_size=batch, at_end="loop"),
                      clock=ManualClock())
        step = rp.step
        t0 = time.perf_counter()
        end = t0 + seconds
        while time.perf_counter() < end:
            for _ in range(100):
                step()
        took = time.perf_counter() - t0
        rate = w.cursor / took
    print(f"   batch {batch:5d}: {rate / 1e6:6.2f} M records/s ({rp.loops} loops of "
          f"{tl.total} records in {took:.1f} s)")
    return rate


def bench_process(config_path: str, seconds: float) -> None:
    """The real producer: time to READY, RSS, publish rate from the segment cursor."""
    raw = yaml.safe_load(Path(config_path).read_text()) or {}
    cfg = load_config(config_path)
    raw.setdefault("producer", {})["data_dir"] = str(cfg.producer.data_dir)
    raw["producer"].setdefault("replay", {}).update({"mode": "fast", "at_end": "loop"})
    raw["producer"]["metrics"] = {"enabled": True, "address": "127.0.0.1", "port": 0}
    raw.setdefault("consumer", {})["metrics"] = {"port": 0}
    tmp = tempfile.mkdtemp(prefix="tdb-")
    name = _name()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    proc = None
    try:
        cfg_file = Path(tmp) / "bench.yaml"
        cfg_file.write_text(yaml.safe_dump(raw))
        sock_path = os.path.join(tmp, "notify")
        sock.bind(sock_path)
        script = Path(sys.executable).parent / "tradingd-producer"
        cmd = ([str(script)] if script.exists()
               else [sys.executable, "-m", "tradingd.producer.daemon"])
        env = {**os.environ, "NOTIFY_SOCKET": sock_path}
        for key in ("WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"):
            env.pop(key, None)
        t0 = time.monotonic()
        proc = subprocess.Popen([*cmd, "--config", str(cfg_file), "--segment", name,
                                 "--log-level", "warning"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        sock.settimeout(30)
        while True:
            msg = sock.recv(4096).decode()
            if "READY=1" in msg.splitlines():
                break
        ready = time.monotonic() - t0
        with SegmentReader.attach(name) as r:
            c0, t1 = r.cursor, time.monotonic()
            time.sleep(seconds)
            c1, t2 = r.cursor, time.monotonic()
        with open(f"/proc/{proc.pid}/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        with open(f"/proc/{proc.pid}/status") as f:
            hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(15)
        print("3. the tradingd-producer process (fast mode, looping)")
        print(f"   time from spawn to READY=1: {ready * 1e3:.0f} ms")
        print(f"   RSS after {seconds:.0f} s of replay: {rss / 1024:.1f} MiB "
              f"(peak {hwm / 1024:.1f} MiB)")
        print(f"   publish rate (segment cursor): {(c1 - c0) / (t2 - t1) / 1e6:.2f} M "
              f"records/s")
        print(f"   SIGTERM -> exit {code}; segment left behind: "
              f"{os.path.exists(shm.segment_path(name))}")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
        shutil.rmtree(tmp, ignore_errors=True)
        if os.path.exists(shm.segment_path(name)):
            shm.unlink(name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="replay time per measurement")
    ap.add_argument("--config", default=str(REPO / "config" / "tradingd.yaml"))
    args = ap.parse_args()
    all_bars = bench_load(args.config)
    print("2. fast-mode replay into a private segment, in process")
    for batch in (load_config(args.config).producer.replay.fast_batch_size, 1024):
        bench_replay(all_bars, args.seconds, batch)
    bench_process(args.config, args.seconds)


if __name__ == "__main__":
    main()
