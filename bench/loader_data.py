"""Generated market data files for the loader benchmarks: one layout per vendor style.

Vectorised (numpy byte matrices), a few seconds per million rows. Each variant is
(writer, CsvFormat) so the benchmark loads what it wrote with the format that describes it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from tradingd.producer.loader import BUILTIN_FORMATS, CsvFormat

HEADER_YAHOO = b"Date,Open,High,Low,Close,Adj Close,Volume\n"
START = np.datetime64("2000-01-03T00:00:00")


def digits(values: np.ndarray, width: int, pad_zeros: bool) -> np.ndarray:
    """(n, width) ASCII digits of non-negative integers; leading zeros become 0 bytes
    (removed later) unless ``pad_zeros``."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    out = (values[:, None] // powers % 10 + ord("0")).astype(np.uint8)
    if not pad_zeros:
        lead = (values[:, None] < powers) & (powers > 1)
        out[lead] = 0
    return out


def const(n: int, text: str) -> np.ndarray:
    return np.tile(np.frombuffer(text.encode(), np.uint8), (n, 1))


def price(values: np.ndarray, decimals: int = 6, mark: str = ".") -> list[np.ndarray]:
    scaled = np.round(values * 10**decimals).astype(np.int64)
    return [digits(scaled // 10**decimals, 6, False), const(len(values), mark),
            digits(scaled % 10**decimals, decimals, True)]


def grouped(values: np.ndarray, decimals: int, sep: str, mark: str) -> list[np.ndarray]:
    """Five-digit integer part written with a thousands separator: ``42,742.1``."""
    scaled = np.round(values * 10**decimals).astype(np.int64)
    whole = digits(scaled // 10**decimals, 5, True)
    n = len(values)
    return [whole[:, :2], const(n, sep), whole[:, 2:], const(n, mark),
            digits(scaled % 10**decimals, decimals, True)]


def stamp(times: np.ndarray, pattern: str) -> np.ndarray:
    """(n, w) bytes of ``times`` written with a strptime pattern of %Y %m %d %H %M %S."""
    iso = np.datetime_as_string(times).astype("S19").view(np.uint8).reshape(len(times), 19)
    cut = {"Y": (0, 4), "m": (5, 7), "d": (8, 10), "H": (11, 13), "M": (14, 16),
           "S": (17, 19)}
    parts: list[np.ndarray] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "%":
            a, b = cut[next(chars)]
            parts.append(iso[:, a:b])
        else:
            parts.append(const(len(times), ch))
    return np.hstack(parts)


def bars(rng: np.random.Generator, n: int, level: float) -> dict[str, np.ndarray]:
    walk = np.clip(np.cumsum(rng.normal(0, 0.0005, n)), -0.45, 0.45)
    close = level * np.exp(walk)
    opening = close * np.exp(rng.normal(0, 0.0003, n))
    high = np.maximum(opening, close) * (1 + rng.random(n) * 0.001)
    low = np.minimum(opening, close) * (1 - rng.random(n) * 0.001)
    return {"open": opening, "high": high, "low": low, "close": close}


def _write(path: Path, header: bytes, rows: int, chunk: int,
           make: Callable[[np.random.Generator, np.ndarray], list[np.ndarray]]) -> None:
    rng = np.random.default_rng(1)
    with open(path, "wb") as f:
        f.write(header)
        for first in range(0, rows, chunk):
            n = min(chunk, rows - first)
            times = START + np.arange(first, first + n) * np.timedelta64(60, "s")
            table = np.hstack([*make(rng, times), const(n, "\n")])
            f.write(table[table != 0].tobytes())


def _join(parts: list[list[np.ndarray] | np.ndarray], delimiter: str, n: int,
          quote: bool = False) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for i, part in enumerate(parts):
        if i:
            out.append(const(n, delimiter))
        cells = part if isinstance(part, list) else [part]
        out += [const(n, '"'), *cells, const(n, '"')] if quote else cells
    return out


def yahoo(path: Path, rows: int) -> None:
    def make(rng: np.random.Generator, times: np.ndarray) -> list[np.ndarray]:
        b, n = bars(rng, len(times), 50.0), len(times)
        volume = rng.integers(1_000, 10_000_000_000, n)
        cols = [stamp(times, "%Y-%m-%d %H:%M:%S"), *(price(b[k]) for k in
                                                     ("open", "high", "low", "close")),
                price(b["close"] * 0.9), digits(volume, 11, False)]
        return _join(cols, ",", n)
    _write(path, HEADER_YAHOO, rows, 500_000, make)


def compact(path: Path, rows: int) -> None:
    def make(rng: np.random.Generator, times: np.ndarray) -> list[np.ndarray]:
        b, n = bars(rng, len(times), 50.0), len(times)
        cols = [stamp(times, "%Y%m%d %H%M%S"), *(price(b[k], 4) for k in
                                                 ("open", "high", "low", "close")),
                digits(rng.integers(1, 10**7, n), 8, False)]
        return _join(cols, ",", n)
    _write(path, b"Date,Open,High,Low,Close,Volume\n", rows, 500_000, make)


def two_columns(path: Path, rows: int) -> None:
    def make(rng: np.random.Generator, times: np.ndarray) -> list[np.ndarray]:
        b, n = bars(rng, len(times), 1.1), len(times)
        cols = [stamp(times, "%d/%m/%Y"), stamp(times, "%H:%M"),
                *(price(b[k], 5) for k in ("open", "high", "low", "close")),
                digits(rng.integers(1, 10**5, n), 6, False)]
        return _join(cols, ";", n)
    _write(path, b"Date;Time;Open;High;Low;Close;Volume\n", rows, 500_000, make)


def investing(path: Path, rows: int) -> None:
    def make(rng: np.random.Generator, times: np.ndarray) -> list[np.ndarray]:
        b, n = bars(rng, len(times), 40_000.0), len(times)
        vol = rng.integers(10_000, 99_999, n)
        volume = [digits(vol // 100, 3, True), const(n, "."), digits(vol % 100, 2, True),
                  const(n, "K")]
        cols = [stamp(times, "%m/%d/%Y %H:%M"), grouped(b["close"], 1, ",", "."),
                *(grouped(b[k], 1, ",", ".") for k in ("open", "high", "low")), volume,
                const(n, "0.52%")]
        return _join(cols, ",", n, quote=True)
    _write(path, b'"Date","Price","Open","High","Low","Vol.","Change %"\n', rows, 250_000,
           make)


def european(path: Path, rows: int) -> None:
    def make(rng: np.random.Generator, times: np.ndarray) -> list[np.ndarray]:
        b, n = bars(rng, len(times), 40_000.0), len(times)
        cols = [stamp(times, "%d.%m.%Y %H:%M:%S"),
                *(grouped(b[k], 4, ".", ",") for k in ("open", "high", "low", "close")),
                digits(rng.integers(1, 10**6, n), 7, False)]
        return _join(cols, ";", n)
    _write(path, b"Datum;Eroeffnung;Hoch;Tief;Schluss;Volumen\n", rows, 250_000, make)


def offset(path: Path, rows: int) -> None:
    def make(rng: np.random.Generator, times: np.ndarray) -> list[np.ndarray]:
        b, n = bars(rng, len(times), 50.0), len(times)
        cols = [stamp(times, "%Y-%m-%dT%H:%M:%S"), *(price(b[k], 2) for k in
                                                     ("open", "high", "low", "close")),
                digits(rng.integers(1, 10**6, n), 7, False)]
        return _join(cols, ",", n)
    _write(path, b"Date,Open,High,Low,Close,Volume\n", rows, 500_000, make)


OHLCV = {"open": "Open", "high": "High", "low": "Low", "close": "Close", "volume": "Volume"}
VARIANTS: dict[str, tuple[Callable[[Path, int], None], CsvFormat, str]] = {
    "yahoo": (yahoo, BUILTIN_FORMATS["yahoo"], "Yahoo, ISO date-time"),
    "compact": (compact, CsvFormat(timestamp_format="%Y%m%d %H%M%S"),
                "strptime %Y%m%d %H%M%S"),
    "two_columns": (two_columns, CsvFormat(
        delimiter=";", columns={**OHLCV, "timestamp": "Date", "time": "Time"},
        timestamp_format="%d/%m/%Y", time_format="%H:%M"), "date;time in two columns"),
    "investing": (investing, CsvFormat(
        columns={"timestamp": "Date", "open": "Open", "high": "High", "low": "Low",
                 "close": "Price", "volume": "Vol."}, timestamp_format="%m/%d/%Y %H:%M",
        thousands=",", volume_suffixes=True), "quoted, 42,742.1 and 131.48K"),
    "european": (european, CsvFormat(
        delimiter=";", columns={"timestamp": "Datum", "open": "Eroeffnung", "high": "Hoch",
                                "low": "Tief", "close": "Schluss", "volume": "Volumen"},
        timestamp_format="%d.%m.%Y %H:%M:%S", thousands=".", decimal=","),
        "; and 42.742,1234"),
    "offset": (offset, CsvFormat(timezone="+05:30"), "ISO, timezone +05:30"),
}
