"""CSV loading benchmark: tradingd.producer.loader side by side with pandas.read_csv, in one run.

    .venv/bin/python bench/bench_loader.py [--rows 3000000] [--repeat 3] [--keep DIR]

Generates a Yahoo-layout file (``Date,Open,High,Low,Close,Adj Close,Volume``, prices with
6 decimals, integer volumes) of N one-minute bars (``YYYY-MM-DD HH:MM:SS``: a few million
daily bars would not fit in 64-bit nanoseconds) in a temporary directory, then prints:
  * rows/s of ``load_csv`` (best of --repeat, wall clock, and the CPU time of that run);
  * rows/s of ``pandas.read_csv(path, parse_dates=["Date"])`` on the same file, if pandas
    is installed (``pip install '.[bench]'``), and whether both read the same values;
  * rows/s of ``load_csv`` on the largest bundled file, market_data/stocks/AAPL.csv.
Absolute figures drift between runs on a shared VM; compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tradingd.producer.loader import BUILTIN_FORMATS, load_csv

ROOT = Path(__file__).resolve().parent.parent
AAPL = ROOT / "market_data" / "stocks" / "AAPL.csv"
HEADER = b"Date,Open,High,Low,Close,Adj Close,Volume\n"


def digits(values: np.ndarray, width: int, pad_zeros: bool) -> np.ndarray:
    """(n, width) ASCII digits of non-negative integers; leading zeros become 0 bytes
    (removed later) unless ``pad_zeros``."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    out = (values[:, None] // powers % 10 + ord("0")).astype(np.uint8)
    if not pad_zeros:
        lead = (values[:, None] < powers) & (powers > 1)
        out[lead] = 0
    return out


def price(values: np.ndarray) -> list[np.ndarray]:
    micros = np.round(values * 1e6).astype(np.int64)
    dot = np.full((len(values), 1), ord("."), np.uint8)
    return [digits(micros // 10**6, 6, False), dot, digits(micros % 10**6, 6, True)]


def generate(path: Path, rows: int, seed: int = 1, chunk: int = 500_000) -> None:
    """Write a Yahoo-layout file of ``rows`` one-minute bars (vectorised, ~3 s per M rows)."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2000-01-03T00:00:00")
    level = 50.0
    comma = np.full((chunk, 1), ord(","), np.uint8)
    newline = np.full((chunk, 1), ord("\n"), np.uint8)
    with open(path, "wb") as f:
        f.write(HEADER)
        for first in range(0, rows, chunk):
            n = min(chunk, rows - first)
            close = level * np.exp(np.cumsum(rng.normal(0, 0.0005, n)))
            level = float(close[-1])
            opening = close * np.exp(rng.normal(0, 0.0003, n))
            high = np.maximum(opening, close) * (1 + rng.random(n) * 0.001)
            low = np.minimum(opening, close) * (1 - rng.random(n) * 0.001)
            volume = rng.integers(1_000, 10_000_000_000, n)
            times = start + np.arange(first, first + n) * np.timedelta64(60, "s")
            stamp = np.datetime_as_string(times).astype("S19").view(np.uint8).reshape(n, 19)
            stamp = stamp.copy()
            stamp[:, 10] = ord(" ")
            parts = [stamp]
            for column in (opening, high, low, close, close * 0.9):
                parts += [comma[:n], *price(column)]
            parts += [comma[:n], digits(volume, 11, False), newline[:n]]
            table = np.hstack(parts)
            f.write(table[table != 0].tobytes())


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
    print(f"  {name:34s} {rows / wall / 1e6:6.2f} M rows/s  ({wall * 1e3:7.0f} ms wall, "
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the generated file here instead")
    args = parser.parse_args(argv)
    yahoo = BUILTIN_FORMATS["yahoo"]
    with tempfile.TemporaryDirectory(prefix="tdbench-") as tmp:
        path = (args.keep or Path(tmp)) / f"generated-{args.rows}.csv"
        t0 = time.perf_counter()
        generate(path, args.rows)
        size = os.path.getsize(path)
        print(f"generated {path.name}: {args.rows:,} rows, {size / 1e6:.0f} MB in "
              f"{time.perf_counter() - t0:.1f} s")
        print(f"generated Yahoo-layout file, best of {args.repeat}:")
        wall, cpu, result = best(lambda: load_csv(path, yahoo), args.repeat)
        bars = result.bars  # type: ignore[attr-defined]
        assert len(bars) == args.rows and result.rows_rejected == 0, result  # type: ignore[attr-defined]
        report("tradingd.producer.loader.load_csv", args.rows, wall, cpu)
        try:
            import pandas as pd
        except ImportError:
            print("  pandas.read_csv                    (pandas not installed: "
                  "pip install '.[bench]')")
        else:
            wall_pd, cpu_pd, frame = best(lambda: pd.read_csv(path, parse_dates=["Date"]),
                                          args.repeat)
            report(f"pandas {pd.__version__} read_csv(parse_dates)", args.rows, wall_pd,
                   cpu_pd)
            print(f"  loader / pandas speed: {wall_pd / wall:.2f}x; {compare(bars, frame)}")
        del result, bars
    aapl = load_csv(AAPL, yahoo)
    wall, cpu, _ = best(lambda: load_csv(AAPL, yahoo), max(5, args.repeat))
    print(f"bundled {AAPL.relative_to(ROOT)} ({aapl.rows_read:,} rows), best of "
          f"{max(5, args.repeat)}:")
    report("tradingd.producer.loader.load_csv", aapl.rows_read, wall, cpu)
    return 0


if __name__ == "__main__":
    sys.exit(main())
