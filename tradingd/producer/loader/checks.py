"""Checks on parsed rows (values, time order), the reject log, and the output array."""

from __future__ import annotations

import io
import mmap
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from tradingd.producer.loader.blocks import Block, file_size
from tradingd.producer.loader.spec import (
    BAR_DTYPE,
    FIELDS,
    MAX_BAD_ROW_DETAILS,
    REJECT_REASONS,
    BadRow,
    Rows,
)

# ---------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------

_CODE = {reason: i + 1 for i, reason in enumerate(REJECT_REASONS)}


def check_values(rows: Rows) -> np.ndarray:
    """Reject code per row (0: fine); the earliest failing check in REJECT_REASONS wins."""
    o, h, lo, c, v = (rows[k] for k in FIELDS[1:])
    codes = np.zeros(len(o), np.uint8)
    codes[(o < lo) | (o > h) | (c < lo) | (c > h)] = _CODE["price_outside_range"]
    codes[h < lo] = _CODE["high_below_low"]
    codes[v < 0] = _CODE["negative_volume"]
    codes[(o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0)] = _CODE["non_positive_price"]
    return codes


def describe_values(rows: Rows, i: int, reason: str) -> str:
    o, h, lo, c, v = (float(rows[k][i]) for k in FIELDS[1:])
    if reason == "non_positive_price":
        name, value = next((n, x) for n, x in zip(FIELDS[1:5], (o, h, lo, c), strict=True)
                           if x <= 0)
        return f"{name} {value!r} <= 0"
    if reason == "negative_volume":
        return f"volume {v!r} < 0"
    if reason == "high_below_low":
        return f"high {h!r} < low {lo!r}"
    name, value = ("open", o) if not lo <= o <= h else ("close", c)
    return f"{name} {value!r} outside [low {lo!r}, high {h!r}]"


class OrderCheck:
    """Event times must run one way across the whole file (carried from block to block).

    Most sources write the oldest row first; some (Alpha Vantage, Investing.com exports)
    the newest first. The first two different times decide which (by majority over the
    first block, so one stray row cannot turn a file around); a newest-first file is checked
    against its own order and its bars reversed once loaded. Times are compared as
    ``sign * event_ns``, which runs upwards either way.
    """

    def __init__(self, out: Output) -> None:
        self.sign = 0  # +1 oldest first, -1 newest first, 0 undecided (all times equal)
        self.last: int | None = None  # the last kept time (all equal while undecided)
        self.out = out  # the bars kept from earlier blocks

    @property
    def newest_first(self) -> bool:
        return self.sign < 0

    def check(self, event: np.ndarray) -> np.ndarray:
        codes = np.zeros(len(event), np.uint8)
        if not len(event):
            return codes
        if not self.sign:
            self._decide(event)
        s = self.sign or 1
        t = event * s
        first = np.iinfo(np.int64).min if self.last is None else self.last * s
        before = np.empty_like(t)  # the latest time (in file order) of the rows above
        before[0] = first
        np.maximum(np.maximum.accumulate(t)[:-1], first, out=before[1:])
        late = np.flatnonzero(t <= before)
        if len(late):
            seen = self._seen(t[late], np.delete(t, late), s) | (t[late] == before[late])
            codes[late] = np.where(seen, _CODE["duplicate_timestamp"], _CODE["out_of_order"])
        self.last = s * max(first, int(before[-1]), int(t[-1]))
        return codes

    def _decide(self, event: np.ndarray) -> None:
        times = event if self.last is None else np.concatenate(([self.last], event))
        steps = np.diff(times)
        up, down = np.count_nonzero(steps > 0), np.count_nonzero(steps < 0)
        if up or down:
            self.sign = -1 if down > up else 1

    def _seen(self, times: np.ndarray, kept: np.ndarray, s: int) -> np.ndarray:
        """Which ``times`` equal a kept time of this block (``kept``) or an earlier one;
        both as ``sign * event_ns``. The earlier ones are searched as stored, through an
        ascending view (no copy of the file's bars for each block)."""
        earlier = self.out.event_times()
        seen = np.zeros(len(times), bool)
        for ascending, wanted in ((kept, times),
                                  (earlier if s > 0 else earlier[::-1], times * s)):
            if len(ascending):
                j = np.searchsorted(ascending, wanted).clip(max=len(ascending) - 1)
                seen |= ascending[j] == wanted
        return seen

    def describe(self, rows: Rows, i: int, reason: str) -> str:
        when = _format_ns(int(rows["event_ns"][i]))
        if reason == "duplicate_timestamp":
            return f"{when} is the time of an earlier row (the first one is kept)"
        if self.newest_first:
            return f"{when} is after the time of an earlier row (the file runs newest first)"
        return f"{when} is before the time of an earlier row"


def _format_ns(ns: int) -> str:
    seconds, nanos = divmod(ns, 10**9)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{nanos:09d}".rstrip("0") + " UTC" if nanos else f"{text} UTC"


def drop_rows(rows: Rows, codes: np.ndarray, log: RejectLog, phase: str,
          describe: Callable[[Rows, int, str], str]) -> Rows:
    """Log the rows with a non-zero code and return the others."""
    bad = np.flatnonzero(codes)
    if not len(bad):
        return rows
    log.add_many(phase, rows, bad, codes, describe)
    keep = codes == 0
    return {k: v[keep] for k, v in rows.items()}


def size_hint(f: io.BufferedIOBase, first: Block | None) -> int:
    """Expected bar count: the file's size over the first block's bytes per line."""
    size = file_size(f)
    if first is None or not size:
        return 1024
    sample = min(first.stop, first.start + 65536)
    lines = max(1, first.buf.count(b"\n", first.start, sample))
    return int(size / ((sample - first.start) / lines) * 1.05) + 1024


class Output:
    """The file's bars, written block by block into one array that grows when needed.

    Saves the copy (and the second large allocation) a final concatenation would cost.
    """

    def __init__(self, capacity: int) -> None:
        self._bars = _empty_bars(capacity)
        self.size = 0

    def append(self, rows: Rows) -> None:
        n = len(rows["event_ns"])
        if self.size + n > len(self._bars):
            self._grow(max(2 * len(self._bars), self.size + n))
        dest = self._bars[self.size:self.size + n]
        for name in BAR_DTYPE.names or ():
            dest[name] = rows[name]
        self.size += n

    def reserve(self, n: int) -> np.ndarray:
        """The free records after the bars so far, at most ``n`` (at least one: grows when
        full): the C parser writes bars there, and :meth:`commit` keeps them."""
        if self.size >= len(self._bars):
            self._grow(max(2 * len(self._bars), self.size + n))
        return self._bars[self.size:self.size + n]

    def commit(self, rows: Rows, views: Rows) -> None:
        """Keep ``rows``: if every column is still the view of :meth:`reserve`'s records
        that ``views`` holds (an all-good block), they are already in place; else they are
        copied there, as :meth:`append` does."""
        if all(rows[name] is views[name] for name in BAR_DTYPE.names or ()):
            self.size += len(rows["event_ns"])
        else:
            self.append(rows)

    def _grow(self, capacity: int) -> None:
        grown = _empty_bars(capacity)
        grown[:self.size] = self._bars[:self.size]
        self._bars = grown

    def event_times(self) -> np.ndarray:
        return self._bars["event_ns"][:self.size]

    def bars(self) -> np.ndarray:
        bars, self._bars = self._bars, np.empty(0, BAR_DTYPE)
        if bars.flags.owndata:
            bars.resize(self.size, refcheck=False)  # gives the unused tail back, no copy
            return bars
        return bars[:self.size]  # a mapping: its tail was never touched, holds no memory


#: Output arrays from this size on get a mapping of their own (see _empty_bars).
_MAPPED_BYTES = 4 << 20


def _empty_bars(n: int) -> np.ndarray:
    """``n`` uninitialised bars. A large array gets an anonymous private mapping of its own:
    numpy asks for transparent huge pages, and on a VM the first touch of fresh huge pages
    costs from 10 ms to over 300 ms per 150 MB, varying run to run (the kernel gathers and
    zeroes 2 MiB pages); 4 KiB pages cost a steady ~35 ms. The bars written by the C parser
    then fault in at that steady rate, and pages past the last bar are never touched."""
    if n * BAR_DTYPE.itemsize < _MAPPED_BYTES:
        return np.empty(n, BAR_DTYPE)
    memory = mmap.mmap(-1, n * BAR_DTYPE.itemsize, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(memory, BAR_DTYPE, count=n)


class RejectLog:
    """Counts every rejected row by reason; keeps the first MAX_BAD_ROW_DETAILS in detail.

    Rows are rejected in three phases (parse, values, order) that each meet the file in
    line order, so keeping the first N of each phase keeps the file's first N overall.
    """

    def __init__(self, path: str, limit: int = MAX_BAD_ROW_DETAILS) -> None:
        self.path = path
        self.limit = limit
        self.counts = dict.fromkeys(REJECT_REASONS, 0)
        self._rows: dict[str, list[BadRow]] = {}

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, phase: str, line: int, reason: str, text: str) -> None:
        self.counts[reason] += 1
        rows = self._rows.setdefault(phase, [])
        if len(rows) < self.limit:
            rows.append(BadRow(self.path, line, reason, text))

    def add_many(self, phase: str, table: Rows, bad: np.ndarray, codes: np.ndarray,
                 describe: Callable[[Rows, int, str], str]) -> None:
        tally = np.bincount(codes[bad], minlength=len(REJECT_REASONS) + 1)
        for reason, n in zip(REJECT_REASONS, tally[1:].tolist(), strict=True):
            self.counts[reason] += n
        rows = self._rows.setdefault(phase, [])
        for i in bad[:max(0, self.limit - len(rows))].tolist():
            reason = REJECT_REASONS[codes[i] - 1]
            rows.append(BadRow(self.path, int(table["line"][i]), reason,
                               describe(table, i, reason)))

    def bad_rows(self) -> list[BadRow]:
        every = [row for rows in self._rows.values() for row in rows]
        return sorted(every, key=lambda row: row.line)[:self.limit]
