"""CSV loading benchmark: the loader beside pandas.read_csv, per vendor format, and restarts.

    .venv/bin/python bench/bench_loader.py [--rows 3000000] [--format-rows 2000000]
        [--ready-rows 3000000] [--repeat 5] [--skip pandas,formats,ready,rss]

Prints, for this machine and this run (files generated in a temporary directory):
  1. a Yahoo-layout file (``Date,Open,High,Low,Close,Adj Close,Volume``, one-minute bars,
     ``YYYY-MM-DD HH:MM:SS``, 6-decimal prices): rows/s of ``load_csv`` (the C parser, and
     the numpy fast path it falls back to) and of
     ``pandas.read_csv(path, parse_dates=["Date"])`` (pip install '.[bench]'; also with
     ``usecols`` = the six columns the loader reads), best of --repeat with the runs
     taking turns, the ratio to the faster pandas run, and whether both read the same
     values (see bench_pandas for what each side does);
  2. rows/s of ``load_csv`` per format (bench/loader_data.py: strptime with a space,
     date and time in two columns, Investing.com's quoted ``42,742.1`` and ``131.48K``,
     European ``42.742,1234``, a fixed UTC offset);
  3. the real ``tradingd-producer`` on --ready-files copies of a --ready-rows Yahoo file
     (one symbol each): spawn to READY=1 with an empty load cache (cold: parse, check,
     merge, store) and again with the warm cache (mapped, checksummed);
  4. the producer's RSS with the bundled data (no cache), after READY.
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
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loader_data import VARIANTS

from tradingd.producer.loader import BUILTIN_FORMATS, load_csv
from tradingd.producer.loader.native import CSVFAST
from tradingd.segment import shm

ROOT = Path(__file__).resolve().parent.parent
AAPL = ROOT / "market_data" / "stocks" / "AAPL.csv"


def best(run: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    """(best wall seconds, CPU seconds of that run, its result)."""
    results = []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = run()
        results.append((time.perf_counter() - wall, time.process_time() - cpu, result))
        del result
    wall, cpu, result = min(results, key=lambda r: r[0])
    return wall, cpu, result


def report(name: str, rows: int, wall: float, cpu: float) -> None:
    print(f"  {name:40s} {rows / wall / 1e6:6.2f} M rows/s  ({wall * 1e3:7.0f} ms wall, "
          f"{cpu * 1e3:7.0f} ms CPU)")


def compare(bars: np.ndarray, frame: object) -> str:
    """How many values pandas and the loader read identically."""
    stamps = frame["Date"].to_numpy().astype("datetime64[ns]").astype(np.int64)  # type: ignore[index]
    same = [np.array_equal(bars["event_ns"], stamps)]
    for ours, theirs in (("open", "Open"), ("high", "High"), ("low", "Low"),
                         ("close", "Close"), ("volume", "Volume")):
        column = frame[theirs].to_numpy(np.float64)  # type: ignore[index]
        exact = int(np.count_nonzero(bars[ours] == column))
        same.append(exact == len(bars) or np.allclose(bars[ours], column, rtol=1e-15, atol=0))
    return "same values" if all(same) else "VALUES DIFFER"


def generated(tmp: Path, name: str, rows: int) -> Path:
    path = tmp / f"{name}-{rows}.csv"
    if not path.exists():
        t0 = time.perf_counter()
        VARIANTS[name][0](path, rows)
        print(f"  (generated {path.name}: {os.path.getsize(path) / 1e6:.0f} MB in "
              f"{time.perf_counter() - t0:.1f} s)")
    return path


def interleaved(runs: dict[str, Callable[[], object]], repeat: int
                ) -> dict[str, tuple[float, float, object]]:
    """Best (wall, CPU, result) of ``repeat`` rounds per run, the runs taking turns and
    each round in the opposite order of the last: neither side always runs first (the
    first run of a process pays for faulting in fresh memory) or right after the other."""
    results: dict[str, list[tuple[float, float, object]]] = {name: [] for name in runs}
    names = list(runs)
    for round_ in range(repeat):
        for name in names if round_ % 2 == 0 else names[::-1]:
            wall, cpu = time.perf_counter(), time.process_time()
            result = runs[name]()
            results[name].append((time.perf_counter() - wall, time.process_time() - cpu,
                                  result))
            del result
    return {name: min(rs, key=lambda r: r[0]) for name, rs in results.items()}


#: The columns the loader reads from the Yahoo layout (it skips Adj Close).
YAHOO_READ = ["Date", "Open", "High", "Low", "Close", "Volume"]


def bench_pandas(tmp: Path, rows: int, repeat: int) -> None:
    """The loader (C parser; and the numpy fast path it falls back to) beside pandas.

    What each side does, on the same file from the page cache: ``load_csv`` parses the
    timestamp to int64 ns and the five values exactly (correctly rounded, as float()),
    checks every row (prices > 0, low <= high, open/close within range, time order,
    duplicates), logs rejects with file:line and returns the bars; it skips Adj Close.
    ``pandas.read_csv(path, parse_dates=["Date"])`` (C engine, default float parser)
    parses all seven columns, dates included (to datetime64), into a DataFrame and
    checks nothing; with ``usecols`` it keeps the six columns the loader reads. pandas'
    default float parser is not always correctly rounded (compare() allows 1e-15
    relative); nothing is weakened on its side (no dtype hints, no engine change). The
    ratio is taken against the faster pandas run.
    """
    path = generated(tmp, "yahoo", rows)
    fmt = BUILTIN_FORMATS["yahoo"]
    runs: dict[str, Callable[[], object]] = {
        "tradingd.producer.loader.load_csv": lambda: load_csv(path, fmt),
        "  same, numpy fast path (no C parser)": lambda: load_csv(path, fmt,
                                                                  c_parser=False)}
    try:
        import pandas as pd
    except ImportError:
        pd = None
    else:
        runs[f"pandas {pd.__version__} read_csv(parse_dates)"] = lambda: pd.read_csv(
            path, parse_dates=["Date"])
        runs["  same, usecols= the loader's 6 columns"] = lambda: pd.read_csv(
            path, parse_dates=["Date"], usecols=YAHOO_READ)
    built = "built" if CSVFAST is not None else "NOT built: both loader runs are numpy"
    print(f"1. Yahoo-layout file, {rows:,} rows, best of {repeat} (runs taking turns; "
          f"C parser {built}):")
    best_of = interleaved(runs, repeat)
    for name, (wall, cpu, result) in best_of.items():
        if name.startswith("tradingd") or name.startswith("  same, numpy"):
            assert len(result.bars) == rows and result.rows_rejected == 0, result  # type: ignore[attr-defined]
        report(name, rows, wall, cpu)
    if pd is None:
        print("  pandas.read_csv  (pandas not installed: pip install '.[bench]')")
        return
    ours = best_of["tradingd.producer.loader.load_csv"]
    peers = [v for k, v in best_of.items() if k.startswith("pandas") or "usecols" in k]
    fastest = min(peers, key=lambda r: r[0])
    bars = ours[2].bars  # type: ignore[attr-defined]
    print(f"  loader / pandas speed: {fastest[0] / ours[0]:.2f}x (wall), "
          f"{fastest[1] / ours[1]:.2f}x (CPU) against the faster pandas run; "
          f"{compare(bars, fastest[2])}")


def bench_formats(tmp: Path, rows: int, repeat: int) -> None:
    print(f"2. load_csv per format, {rows:,} rows each, best of {repeat}:")
    for name, (_, fmt, what) in VARIANTS.items():
        path = generated(tmp, name, rows)
        wall, cpu, result = best(lambda fmt=fmt, path=path: load_csv(path, fmt), repeat)
        assert result.rows_rejected == 0 and len(result.bars) == rows, (  # type: ignore[attr-defined]
            name, result.bad_rows[:3])  # type: ignore[attr-defined]
        report(f"{name} ({what})", rows, wall, cpu)
        path.unlink()


class Producer:
    """A real tradingd-producer on a private segment, READY timed on a notify socket."""

    def __init__(self, config: Path, tmp: Path) -> None:
        self.segment = f"td14b-{uuid.uuid4().hex[:8]}"
        self.sock_path = str(tmp / f"notify-{self.segment}")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.sock_path)
        script = Path(sys.executable).parent / "tradingd-producer"
        cmd = [str(script)] if script.exists() else [sys.executable, "-m",
                                                      "tradingd.producer.daemon"]
        env = {k: v for k, v in os.environ.items()
               if k not in ("WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM",
                            "CACHE_DIRECTORY")}
        env["NOTIFY_SOCKET"] = self.sock_path
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen([*cmd, "--config", str(config), "--segment",
                                      self.segment, "--log-level", "warning"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def ready(self, timeout: float = 300.0) -> float:
        self.sock.settimeout(timeout)
        while True:
            msg = self.sock.recv(4096).decode()
            if "READY=1" in msg.splitlines():
                return time.monotonic() - self.t0

    def rss_mib(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(line.split()[1]) for line in f
                        if line.startswith("VmRSS:")) / 1024

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.sock.close()
        if os.path.exists(shm.segment_path(self.segment)):
            shm.unlink(self.segment)


def producer_config(tmp: Path, data: list[Path] | None, cache: Path | None) -> Path:
    raw: dict = {"producer": {"metrics": {"port": 0},
                              "replay": {"mode": "paced", "speed": 1.0}},
                 "segment": {"symbol_capacity": max(64, len(data or ()))},
                 "consumer": {"metrics": {"port": 0}}}
    if data is not None:
        raw["producer"].update(data_dir=str(data[0].parent), symbols=[
            {"name": f"GEN{i}", "file": p.name, "asset_class": "stock", "format": "yahoo"}
            for i, p in enumerate(data)], cache_dir=str(cache))
    else:
        raw["producer"]["data_dir"] = str(ROOT / "market_data")
    path = tmp / f"bench-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def bench_ready(tmp: Path, rows: int, files: int) -> None:
    path = generated(tmp, "yahoo", rows)
    paths = [path]
    for i in range(1, files):  # more symbols: copies of the file under other names
        paths.append(tmp / f"copy{i}-{path.name}")
        shutil.copyfile(path, paths[-1])
    cache = tmp / "cache"
    config = producer_config(tmp, paths, cache)
    print(f"3. tradingd-producer spawn -> READY=1, {files} file{'s' if files > 1 else ''} of "
          f"{rows:,} rows ({files * rows:,} rows):")
    times = []
    for label in ("cold (empty cache: parse, check, store)", "warm (cache mapped)",
                  "warm again"):
        p = Producer(config, tmp)
        try:
            ready = p.ready()
            rss = p.rss_mib()
        finally:
            p.stop()
        times.append(ready)
        print(f"  {label:40s} {ready:6.2f} s   RSS at READY {rss:7.1f} MiB")
    size = sum(f.stat().st_size for f in cache.iterdir())
    print(f"  cold / warm: {times[0] / min(times[1:]):.1f}x; cache {size / 1e6:.0f} MB")
    shutil.rmtree(cache, ignore_errors=True)
    for p in paths[1:]:
        p.unlink()


def bench_rss(tmp: Path) -> None:
    print("4. tradingd-producer with the bundled data (no cache):")
    p = Producer(producer_config(tmp, None, None), tmp)
    try:
        ready = p.ready()
        time.sleep(1.0)
        print(f"  READY after {ready:.2f} s, RSS 1 s later {p.rss_mib():.1f} MiB")
    finally:
        p.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--format-rows", type=int, default=2_000_000)
    parser.add_argument("--ready-rows", type=int, default=3_000_000)
    parser.add_argument("--ready-files", type=int, default=1,
                        help="symbols for the READY measurement (copies of the file)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip", default="", help="comma-separated: pandas,formats,ready,rss")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    with tempfile.TemporaryDirectory(prefix="tdbench-") as tmp_name:
        tmp = Path(tmp_name)
        if "pandas" not in skip:
            bench_pandas(tmp, args.rows, args.repeat)
        if "formats" not in skip:
            bench_formats(tmp, args.format_rows, args.repeat)
        if "ready" not in skip:
            bench_ready(tmp, args.ready_rows, args.ready_files)
        if "rss" not in skip:
            bench_rss(tmp)
    aapl = load_csv(AAPL, BUILTIN_FORMATS["yahoo"])
    wall, cpu, _ = best(lambda: load_csv(AAPL, BUILTIN_FORMATS["yahoo"]), 5)
    print(f"bundled {AAPL.relative_to(ROOT)} ({aapl.rows_read:,} rows), best of 5:")
    report("tradingd.producer.loader.load_csv", aapl.rows_read, wall, cpu)
    return 0


if __name__ == "__main__":
    sys.exit(main())
