"""What a loaded file holds, and whether it is fit to replay: rows, range, interval, gaps.

One summary per file (:func:`summarise`), printed by ``tradingd-data check`` and logged by
the producer at load, and one rule (:func:`refusal`) the producer applies even when
``strict`` is off: a file with no data rows, or with more than ``max_reject_share`` of its
rows rejected, is a format that does not fit, not dirt; replaying the rest would publish a
symbol with almost nothing (or nothing) in it.

Gaps are missing bars beyond the file's own interval (the median step). Markets close,
so a step is only a gap where bars were due: daily and intraday data without weekend bars
skip weekends, and intraday data that trades in sessions (no bars in some hours of the
day) skips nights; a missing weekday or a hole inside a session counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from tradingd.producer.loader import BadRow, LoadResult

DAY_NS = 86_400 * 10**9
#: Gaps listed one by one (all are counted).
GAPS_LISTED = 5
#: Bad rows listed by the check command (all are counted).
BAD_ROWS_LISTED = 10
#: A step is a gap when it is more than this many intervals.
GAP_FACTOR = 1.5


@dataclass(frozen=True)
class Gap:
    """Bars missing between two consecutive bars."""

    after_ns: int  # the bar before the gap
    before_ns: int  # the bar after it
    missing: int  # bars that were due in between

    def __str__(self) -> str:
        return (f"{format_time(self.after_ns)} -> {format_time(self.before_ns)} "
                f"({self.missing} bar{'s' if self.missing != 1 else ''} missing)")


@dataclass(frozen=True)
class FileSummary:
    """A file's load, summed up."""

    path: str
    rows: int  # data rows read (bars + rejected)
    bars: int
    first_ns: int | None
    last_ns: int | None
    interval_ns: int  # median step; 0 if fewer than two bars
    gaps: int
    missing_bars: int
    first_gaps: tuple[Gap, ...]
    zero_volume: int
    rejected: int
    reject_counts: dict[str, int]  # reasons with at least one row, most first
    bad_rows: tuple[BadRow, ...] = field(default=())  # the first few
    newest_first: bool = False

    @property
    def reject_share(self) -> float:
        return self.rejected / self.rows if self.rows else 0.0

    def top_reasons(self, n: int = 3) -> str:
        return ", ".join(f"{reason} {count}" for reason, count in
                         list(self.reject_counts.items())[:n]) or "none"

    def line(self) -> str:
        """One line for the log: what was loaded and what is missing."""
        if not self.bars:
            return f"{self.path}: {self.rows} rows, no bars ({self.rejected} rejected)"
        assert self.first_ns is not None and self.last_ns is not None
        text = (f"{self.path}: {self.bars} bars of {self.rows} rows, "
                f"{format_time(self.first_ns)} .. {format_time(self.last_ns)}, interval "
                f"{format_interval(self.interval_ns)}, {self.gaps} gap"
                f"{'s' if self.gaps != 1 else ''}")
        if self.gaps:
            text += f" ({self.missing_bars} missing bars; first {self.first_gaps[0]})"
        text += f", {self.zero_volume} zero-volume, {self.rejected} rejected"
        if self.rejected:
            text += f" ({self.top_reasons()})"
        return text + (", newest first: reversed" if self.newest_first else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "rows": self.rows, "bars": self.bars,
            "first": None if self.first_ns is None else format_time(self.first_ns),
            "last": None if self.last_ns is None else format_time(self.last_ns),
            "interval_s": self.interval_ns / 1e9, "gaps": self.gaps,
            "missing_bars": self.missing_bars,
            "first_gaps": [{"after": format_time(g.after_ns),
                            "before": format_time(g.before_ns), "missing": g.missing}
                           for g in self.first_gaps],
            "zero_volume": self.zero_volume, "rejected": self.rejected,
            "reject_share": round(self.reject_share, 6),
            "rejects": self.reject_counts,
            "bad_rows": [str(row) for row in self.bad_rows],
            "newest_first": self.newest_first,
        }


def summary_to_json(s: FileSummary) -> dict[str, Any]:
    """The summary as plain JSON values (kept in the load cache beside the bars)."""
    return {"path": s.path, "rows": s.rows, "bars": s.bars, "first_ns": s.first_ns,
            "last_ns": s.last_ns, "interval_ns": s.interval_ns, "gaps": s.gaps,
            "missing_bars": s.missing_bars,
            "first_gaps": [[g.after_ns, g.before_ns, g.missing] for g in s.first_gaps],
            "zero_volume": s.zero_volume, "rejected": s.rejected,
            "reject_counts": s.reject_counts,
            "bad_rows": [[r.path, r.line, r.reason, r.text] for r in s.bad_rows],
            "newest_first": s.newest_first}


def summary_from_json(d: Any) -> FileSummary | None:
    """The summary stored by :func:`summary_to_json`, or None if it is not one."""
    try:
        return FileSummary(
            path=str(d["path"]), rows=int(d["rows"]), bars=int(d["bars"]),
            first_ns=None if d["first_ns"] is None else int(d["first_ns"]),
            last_ns=None if d["last_ns"] is None else int(d["last_ns"]),
            interval_ns=int(d["interval_ns"]), gaps=int(d["gaps"]),
            missing_bars=int(d["missing_bars"]),
            first_gaps=tuple(Gap(int(a), int(b), int(m)) for a, b, m in d["first_gaps"]),
            zero_volume=int(d["zero_volume"]), rejected=int(d["rejected"]),
            reject_counts={str(k): int(v) for k, v in d["reject_counts"].items()},
            bad_rows=tuple(BadRow(str(p), int(n), str(r), str(x))
                           for p, n, r, x in d["bad_rows"]),
            newest_first=bool(d["newest_first"]))
    except (KeyError, TypeError, ValueError):
        return None


def summarise(result: LoadResult, *, shown: str | None = None,
              has_volume: bool = True) -> FileSummary:
    """The summary of one load; ``shown`` names the file as the operator wrote it."""
    bars = result.bars
    times = np.asarray(bars["event_ns"], np.int64)
    interval = _interval(times)
    gaps, missing, first = find_gaps(times, interval)
    counts = {reason: n for reason, n in sorted(result.reject_counts.items(),
                                                key=lambda kv: -kv[1]) if n}
    zero = int(np.count_nonzero(bars["volume"] == 0)) if has_volume else 0
    return FileSummary(
        path=shown or result.path, rows=result.rows_read, bars=len(bars),
        first_ns=int(times[0]) if len(times) else None,
        last_ns=int(times[-1]) if len(times) else None, interval_ns=interval, gaps=gaps,
        missing_bars=missing, first_gaps=tuple(first), zero_volume=zero,
        rejected=result.rows_rejected, reject_counts=counts,
        bad_rows=tuple(result.bad_rows[:BAD_ROWS_LISTED]), newest_first=result.newest_first)


def refusal(summary: FileSummary, max_reject_share: float) -> str | None:
    """Why the producer must not start on this file, or None if it may."""
    if summary.rows == 0:
        return (f"{summary.path}: no data rows (only a header, or nothing below it): "
                "nothing to replay for this symbol")
    if summary.bars == 0 or summary.reject_share > max_reject_share:
        first = f"; first: {summary.bad_rows[0]}" if summary.bad_rows else ""
        return (f"{summary.path}: {summary.rejected} of {summary.rows} rows rejected "
                f"({summary.reject_share:.0%}, more than producer.max_reject_share "
                f"{max_reject_share:.0%}): the format does not fit the file? Top reasons: "
                f"{summary.top_reasons()}{first}. Check it with: tradingd-data check "
                f"{summary.path}")
    return None


def _interval(times: np.ndarray) -> int:
    if len(times) < 2:
        return 0
    steps = np.diff(times)
    steps = steps[steps > 0]
    return int(np.median(steps)) if len(steps) else 0


def find_gaps(times: np.ndarray, interval: int) -> tuple[int, int, list[Gap]]:
    """(gaps, missing bars, the first GAPS_LISTED) of ascending event times."""
    if len(times) < 3 or interval <= 0:
        return 0, 0, []
    steps = np.diff(times)
    candidates = np.flatnonzero(steps > GAP_FACTOR * interval)
    if not len(candidates):
        return 0, 0, []
    days = times // DAY_NS
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    weekends = bool(np.count_nonzero(weekday >= 5) > 0)
    before, after = times[candidates], times[candidates + 1]
    d0, d1 = days[candidates], days[candidates + 1]
    if interval >= DAY_NS:
        missing = _missing_days(d0, d1, weekends) * (DAY_NS // max(interval, 1) or 1)
    else:
        hours = np.bincount(((times % DAY_NS) // (3600 * 10**9)).astype(np.int64),
                            minlength=24)
        sessions = int(np.count_nonzero(hours)) < 23  # bars only in some hours of the day
        plain = np.rint((after - before) / interval).astype(np.int64) - 1
        if sessions:
            same_day = d0 == d1
            per_day = max(1, int(np.median(np.bincount(days - days[0])[np.bincount(
                days - days[0]) > 0])))
            missing = np.where(same_day, plain, _missing_days(d0, d1, weekends) * per_day)
        else:
            missing = plain
            if not bool(np.count_nonzero(weekday == 5)):  # closed on Saturdays (forex)
                spans_weekend = _missing_days(d0 - 1, d1 + 1, False) < (d1 - d0 + 1)
                missing = np.where(spans_weekend & (d1 - d0 <= 3), 0, plain)
    missing = np.maximum(missing, 0)
    real = np.flatnonzero(missing > 0)
    listed = [Gap(int(before[i]), int(after[i]), int(missing[i])) for i in real[:GAPS_LISTED]]
    return len(real), int(missing[real].sum()), listed


def _missing_days(d0: np.ndarray, d1: np.ndarray, weekends: bool) -> np.ndarray:
    """Days strictly between d0 and d1 on which bars were due (weekdays only unless the
    data trades at weekends)."""
    if weekends:
        return np.asarray(d1 - d0 - 1, np.int64)
    start = (d0 + 1).astype("datetime64[D]")
    stop = d1.astype("datetime64[D]")
    return np.asarray(np.busday_count(start, np.maximum(start, stop)), np.int64)


def format_time(ns: int) -> str:
    seconds, nanos = divmod(ns, 10**9)
    moment = datetime.fromtimestamp(seconds, UTC)
    if not nanos and moment.hour == moment.minute == moment.second == 0:
        return moment.strftime("%Y-%m-%d")
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{nanos:09d}".rstrip("0") if nanos else text


def format_interval(ns: int) -> str:
    if ns <= 0:
        return "unknown"
    for unit, size in (("day", DAY_NS), ("h", 3600 * 10**9), ("min", 60 * 10**9),
                       ("s", 10**9), ("ms", 10**6)):
        if ns >= size and ns % size == 0:
            value = ns // size
            return f"{value} {unit}{'s' if unit == 'day' and value != 1 else ''}"
    return f"{ns / 1e9:g} s"
