"""Helpers of the loader tests: writing small CSV files, loading them every way, references."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from tradingd.producer.loader import (
    BAR_DTYPE,
    BUILTIN_FORMATS,
    REJECT_REASONS,
    CsvFormat,
    LoadResult,
    load_csv,
)

YAHOO = BUILTIN_FORMATS["yahoo"]


def ns(text: str, zone: str = "UTC") -> int:
    """Reference event time: the text read by datetime, in ``zone`` (fold=0)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def write(tmp_path: Path, lines: list[str], *, name: str = "data.csv", newline: str = "\n",
          final_newline: bool = True, prefix: bytes = b"") -> Path:
    path = tmp_path / name
    text = newline.join(lines) + (newline if final_newline else "")
    path.write_bytes(prefix + text.encode())
    return path


def load_every_way(path: Path, fmt: CsvFormat = YAHOO, small_block: int = 64) -> LoadResult:
    """Load with the fast path (the C parser where built, and the numpy one), the per-row
    parser and tiny blocks (both fast paths); all must agree."""
    results = [load_csv(path, fmt), load_csv(path, fmt, fast_path=False),
               load_csv(path, fmt, block_size=small_block),
               load_csv(path, fmt, c_parser=False),
               load_csv(path, fmt, block_size=small_block, c_parser=False)]
    first = results[0]
    for other in results[1:]:
        assert np.array_equal(other.bars, first.bars)
        assert other.rows_read == first.rows_read
        assert other.reject_counts == first.reject_counts
        assert other.bad_rows == first.bad_rows
    assert first.bars.dtype == BAR_DTYPE
    assert np.all(np.diff(first.bars["event_ns"]) > 0)
    return first


def rejected(result: LoadResult) -> list[tuple[int, str]]:
    return [(row.line, row.reason) for row in result.bad_rows]


def counts(**expected: int) -> dict[str, int]:
    return {reason: expected.get(reason, 0) for reason in REJECT_REASONS}


