"""Timestamps: fixed-width layouts read with SWAR, the exact text parsers, epoch units, zones."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from tradingd.producer.loader.blocks import BACK
from tradingd.producer.loader.spec import NO_OFFSET, TIMESTAMP_UNITS, Rows
from tradingd.producer.loader.swar import HIGH, U64, Words, eight_digits, parse_integers

# ---------------------------------------------------------------------------------------
# timestamps
# ---------------------------------------------------------------------------------------

# Days since 1970-01-01 whose every nanosecond, give or take a day of UTC offset, fits in
# int64: 1677-09-23 .. 2262-04-10.
_MIN_DAY = -106_750
_MAX_DAY = 106_749
_EPOCH_ORDINAL = datetime(1970, 1, 1).toordinal()
_COMPONENTS = ("year", "month", "day", "hour", "minute", "second", "nanosecond")
_DEFAULTS = (1900, 1, 1, 0, 0, 0, 0)  # as strptime fills in what a pattern lacks


class Timestamps:
    """How a format's timestamp column is read: a fast vectorised path and the exact one."""

    absolute = False  # True: values are UTC instants (epoch numbers), no zone applies

    def parse_fast(self, data: Words, starts: np.ndarray,
                   ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(event ns as written, ok) for a column; ok False sends a row to parse_text."""
        raise NotImplementedError

    def parse_text(self, text: str) -> tuple[int, int | None]:
        """(event ns as written, UTC offset in seconds or None); ValueError says why not."""
        raise NotImplementedError


_Part = tuple[str, int] | bytes  # (component, digits) or the byte(s) allowed at one place
#: Parts read as letters, not digits: (kind, width).
_MONTH_NAME = ("month_name", 3)  # %b: jan .. dec, any case (as strptime in the C locale)
_AM_PM = ("am_pm", 2)  # %p: AM/PM, any case
_YEAR2 = ("year2", 2)  # %y: 69..99 -> 19xx, 00..68 -> 20xx (as strptime)
_HOUR12 = ("hour12", 2)  # %I: 01..12, needs %p
_LETTER_PARTS = (_MONTH_NAME, _AM_PM)
_MONTH_KEYS = np.array(sorted(int.from_bytes(name.encode(), "little") for name in (
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    np.int64)
_MONTH_OF_KEY = np.array([1 + [int.from_bytes(n.encode(), "little") for n in (
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
    "dec")].index(int(k)) for k in _MONTH_KEYS], np.int64)
#: A layout for the C parser: see _Layout.program.
Program = tuple[int, int, bytes, bytes, bytes, list[int], tuple[int, ...]]
#: Default components of a time-of-day column: the result is ns since midnight.
_TIME_OF_DAY = (1970, 1, 1, 0, 0, 0, 0)


class _Layout:
    """A fixed-width timestamp shape, e.g. ``YYYY-MM-DD HH:MM:SS``, parsed with SWAR.

    The field is loaded as the words at offsets 0, 8, 16 ... from its start and xor-ed
    with the expected text ('0' where a digit goes): a good field then has 0..9 in digit
    bytes and 0 in literal bytes, which one add-or-and per word checks. Each component's
    digits are then cut out of the word(s) holding them.
    """

    def __init__(self, parts: list[_Part], base: tuple[int, ...] = _DEFAULTS) -> None:
        self.width = sum(p[1] if isinstance(p, tuple) else 1 for p in parts)
        self.letters: list[tuple[str, int]] = []  # (kind, pos) of %b / %p
        self.year2 = _YEAR2 in parts
        self.count = (self.width + 7) // 8
        self.expected = [0] * self.count  # per word: '0' for digits, the literal bytes
        self.limit = [0] * self.count  # added to a byte: bit 7 set if it is too large
        self.checked = [0] * self.count  # bit 7 of the bytes that belong to the layout
        self.choices: list[tuple[int, int, bytes]] = []  # (word, byte, allowed) for [ T]
        self.chunks: list[tuple[int, int, int, int, int]] = []  # (comp, word, byte, n, mul)
        self.base = list(base)
        pos = 0
        for part in parts:
            if isinstance(part, bytes):
                self._literal(pos, part)
                pos += 1
            elif part in _LETTER_PARTS:
                self.letters.append((part[0], pos))
                if part == _MONTH_NAME:
                    self.base[1] = 0
                pos += part[1]
            else:
                name = {"year2": "year", "hour12": "hour"}.get(part[0], part[0])
                self._component(pos, name, part[1])
                pos += part[1]

    def _byte(self, pos: int, expected: int, limit: int) -> None:
        word, byte = divmod(pos, 8)
        self.expected[word] |= expected << (8 * byte)
        self.limit[word] |= limit << (8 * byte)
        self.checked[word] |= 0x80 << (8 * byte)

    def _literal(self, pos: int, allowed: bytes) -> None:
        if len(allowed) > 1:
            self.choices.append((*divmod(pos, 8), allowed))
        else:
            self._byte(pos, allowed[0], 0x7F)  # must xor to 0

    def _component(self, pos: int, name: str, width: int) -> None:
        k = _COMPONENTS.index(name)
        self.base[k] = 0
        unit = 10 ** (9 - width) if name == "nanosecond" else 1
        end = pos + width
        for p in range(pos, end):
            self._byte(p, ord("0"), 0x76)  # must xor to 0..9
        while pos < end:  # split the digits where a word ends
            word, byte = divmod(pos, 8)
            n = min(8 - byte, end - pos)
            self.chunks.append((k, word, byte, n, unit * 10 ** (end - pos - n)))
            pos += n

    def program(self) -> Program | None:
        """The layout byte by byte for the one-pass C parser (``_csvfast``): (width, year2,
        kinds (0 digit, 1 literal), components, four allowed bytes per place, weights,
        base components); None if it has letters (month names, AM/PM), which stay here."""
        if self.letters:
            return None
        kinds, comps, allowed = bytearray(self.width), bytearray(self.width), bytearray(
            4 * self.width)
        weights = [0] * self.width
        for pos in range(self.width):
            word, byte = divmod(pos, 8)
            kinds[pos] = 1
            allowed[4 * pos] = (self.expected[word] >> (8 * byte)) & 0xFF
        for word, byte, choices in self.choices:
            pos = 8 * word + byte
            if len(choices) > 4:
                return None
            allowed[4 * pos:4 * pos + 4] = choices[:4].ljust(4, b"\0")
        for k, word, byte, n, mul in self.chunks:
            for j in range(n):
                pos = 8 * word + byte + j
                kinds[pos], comps[pos], weights[pos] = 0, k, mul * 10 ** (n - 1 - j)
        if any(kinds[p] == 1 and not allowed[4 * p] for p in range(self.width)):
            return None  # a NUL literal: 0 means "no byte" to the C parser
        return (self.width, int(self.year2), bytes(kinds), bytes(comps), bytes(allowed),
                weights, tuple(int(b) for b in self.base))

    def parse(self, data: Words, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        words = data.at(starts, self.count)
        errors = np.zeros(len(starts), np.uint64)
        values: list[np.ndarray] = []
        for j in range(self.count):
            v = words[:, j] ^ U64(self.expected[j])
            if self.checked[j] != 0x8080_8080_8080_8080:  # a [ T] byte, bytes past the end
                v &= U64((self.checked[j] >> 7) * 0xFF)
            x = v + U64(self.limit[j])
            x |= v
            errors |= x
            values.append(v)
        errors &= HIGH
        ok = errors == 0
        for word, byte, allowed in self.choices:
            b = (words[:, word] >> U64(8 * byte)) & U64(0xFF)
            hit = b == allowed[0]
            for other in allowed[1:]:
                hit |= b == other
            ok &= hit
        comp = self._components(values)
        if self.letters:
            ok &= self._read_letters(data, starts, comp)
        if self.year2:
            year = comp[0]
            comp[0] = year + np.where(np.asarray(year) < 69, 2000, 1900)
        ns, valid = _civil_to_ns(*comp)
        ok &= valid
        return ns, ok

    def _read_letters(self, data: Words, starts: np.ndarray,
                      comp: list[np.ndarray | int]) -> np.ndarray:
        """Month names and AM/PM, compared ignoring case; returns which rows have them."""
        ok = np.ones(len(starts), bool)
        for kind, pos in self.letters:
            width = 3 if kind == "month_name" else 2
            key = np.zeros(len(starts), np.int64)
            for k in range(width):
                b = data.raw[starts + (pos + k)].astype(np.int64)
                ok &= ((b | 0x20) >= ord("a")) & ((b | 0x20) <= ord("z"))
                key |= (b | 0x20) << (8 * k)
            if kind == "month_name":
                j = np.searchsorted(_MONTH_KEYS, key).clip(max=11)
                ok &= _MONTH_KEYS[j] == key
                comp[1] = _MONTH_OF_KEY[j]
            else:
                first = key & 0xFF
                ok &= ((key >> 8) == ord("m")) & ((first == ord("a")) | (first == ord("p")))
                hour = np.asarray(comp[3])
                ok &= (hour >= 1) & (hour <= 12)
                comp[3] = hour % 12 + np.where(first == ord("p"), 12, 0)
        return ok

    def _components(self, values: list[np.ndarray]) -> list[np.ndarray | int]:
        comp: list[np.ndarray | int] = list(self.base)
        pairs: dict[int, np.ndarray] = {}
        for k, word, byte, n_digits, mul in self.chunks:
            v = values[word]
            if n_digits <= 2 or n_digits == 4:
                if word not in pairs:  # byte i: 10 * digit i + digit i+1
                    pairs[word] = v * U64(10) + (v >> U64(8))
                chunk = _pair_digits(v, pairs[word], byte, n_digits)
            else:
                chunk = eight_digits((v & U64(((1 << (8 * n_digits)) - 1) << (8 * byte)))
                                      << U64(8 * (8 - byte - n_digits)))
            part = chunk.view(np.int64) * mul if mul != 1 else chunk.view(np.int64)
            comp[k] = part if isinstance(comp[k], int) and comp[k] == 0 else comp[k] + part
        return comp


def _pair_digits(v: np.ndarray, pairs: np.ndarray, byte: int, n: int) -> np.ndarray:
    """The 1, 2 or 4 digits at ``byte`` of a digit word (``pairs``: its 2-digit values)."""
    if n == 1:
        return (v >> U64(8 * byte)) & U64(0xFF)
    high = (pairs >> U64(8 * byte)) & U64(0xFF)
    if n == 2:
        return high
    return high * U64(100) + ((pairs >> U64(8 * byte + 16)) & U64(0xFF))


_FIRST_YEAR = 1677
#: Days since 1970-01-01 of the first day of each month from 1677-01 to 2263-01.
_MONTH_STARTS = (np.arange(np.datetime64(f"{_FIRST_YEAR}-01"), np.datetime64("2263-02"))
                 .astype("datetime64[D]").astype(np.int64))
_MONTHS = len(_MONTH_STARTS) - 1


def _civil_to_ns(year: Any, month: Any, day: Any, hour: Any, minute: Any, second: Any,
                 nanos: Any) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised proleptic-Gregorian date-time -> ns since the epoch, and validity.

    Components are arrays or ints read from digits (never negative). A table of month
    starts gives both the day number and the month's length (leap years included).
    """
    index = np.asarray((year - _FIRST_YEAR) * 12 + month - 1, np.int64)
    ok = (index >= 0) & (index < _MONTHS) & (month >= 1) & (month <= 12)
    index = np.where(ok, index, 0)
    first = _MONTH_STARTS[index]
    days = first + (day - 1)
    ok &= (day >= 1) & (days < _MONTH_STARTS[index + 1]) & (hour <= 23) & (minute <= 59)
    ok &= (second <= 59) & (days >= _MIN_DAY) & (days <= _MAX_DAY)
    ns = (((days * 24 + hour) * 60 + minute) * 60 + second) * 10**9 + nanos
    return np.asarray(ns, np.int64), ok


def _naive_ns(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
              second: int = 0, nanos: int = 0) -> int:
    """Scalar twin of _civil_to_ns: ns since the epoch, or ValueError saying why not."""
    moment = datetime(year, month, day, hour, minute, second)  # ValueError if no such time
    days = moment.toordinal() - _EPOCH_ORDINAL
    if not _MIN_DAY <= days <= _MAX_DAY:
        raise ValueError(f"{moment:%Y-%m-%d} is outside 1677-09-23..2262-04-10, the range of"
                         " 64-bit nanosecond timestamps")
    return (((days * 24 + hour) * 60 + minute) * 60 + second) * 10**9 + nanos


class _LayoutTimestamps(Timestamps):
    """Timestamps whose common shapes have a fixed layout (ISO 8601, strptime patterns)."""

    def __init__(self, layouts: list[_Layout], parse_text: Callable[[str],
                                                                     tuple[int, int | None]]):
        self.layouts = {layout.width: layout for layout in layouts}
        self._parse_text = parse_text

    def parse_fast(self, data: Words, starts: np.ndarray,
                   ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        widths = ends - starts
        ns = np.zeros(len(starts), np.int64)
        ok = np.zeros(len(starts), bool)
        if not len(starts):
            return ns, ok
        if bool((widths == widths[0]).all()):  # the usual case: one shape throughout
            layout = self.layouts.get(int(widths[0]))
            return layout.parse(data, starts) if layout else (ns, ok)
        for width, layout in self.layouts.items():
            rows = np.flatnonzero(widths == width)
            if len(rows):
                ns[rows], ok[rows] = layout.parse(data, starts[rows])
        return ns, ok

    def parse_text(self, text: str) -> tuple[int, int | None]:
        return self._parse_text(text)


_ISO_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
                     r"(Z|[+-]\d{2}(?::?\d{2})?)?", re.ASCII)


def _iso_parse_text(text: str) -> tuple[int, int | None]:
    m = _ISO_RE.fullmatch(text)
    if not m:
        raise ValueError("expected an ISO 8601 date or date-time (YYYY-MM-DD[ HH:MM[:SS]])")
    y, mo, d, h, mi, s, frac, zone = m.groups()
    nanos = int(frac.ljust(9, "0")) if frac else 0
    ns = _naive_ns(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), nanos)
    if zone is None:
        return ns, None
    if zone == "Z":
        return ns, 0
    digits = zone[1:].replace(":", "").ljust(4, "0")
    offset = int(digits[:2]) * 3600 + int(digits[2:]) * 60
    return ns, -offset if zone[0] == "-" else offset


_ISO_TIME_RE = re.compile(r"(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?", re.ASCII)


def _iso_time_parse_text(text: str) -> tuple[int, int | None]:
    m = _ISO_TIME_RE.fullmatch(text)
    if not m:
        raise ValueError("expected a time of day HH:MM[:SS[.fraction]]")
    h, mi, s, frac = m.groups()
    if int(h) > 23 or int(mi) > 59 or int(s or 0) > 59:
        raise ValueError("no such time of day")
    nanos = int(frac.ljust(9, "0")) if frac else 0
    return ((int(h) * 60 + int(mi)) * 60 + int(s or 0)) * 10**9 + nanos, None


def _iso_time_timestamps() -> _LayoutTimestamps:
    minutes: list[_Part] = [("hour", 2), b":", ("minute", 2)]
    seconds = [*minutes, b":", ("second", 2)]
    layouts = [_Layout(minutes, _TIME_OF_DAY), _Layout(seconds, _TIME_OF_DAY)]
    layouts += [_Layout([*seconds, b".", ("nanosecond", k)], _TIME_OF_DAY)
                for k in range(1, 10)]
    return _LayoutTimestamps(layouts, _iso_time_parse_text)


def _iso_timestamps() -> _LayoutTimestamps:
    date: list[tuple[str, int] | bytes] = [("year", 4), b"-", ("month", 2), b"-", ("day", 2)]
    minutes = [*date, b" T", ("hour", 2), b":", ("minute", 2)]
    seconds = [*minutes, b":", ("second", 2)]
    layouts = [_Layout(date), _Layout(minutes), _Layout(seconds)]
    layouts += [_Layout([*seconds, b".", ("nanosecond", k)]) for k in range(1, 10)]
    return _LayoutTimestamps(layouts, _iso_parse_text)


_PATTERN_PARTS: dict[str, tuple[str, int]] = {
    "Y": ("year", 4), "m": ("month", 2), "d": ("day", 2), "H": ("hour", 2),
    "M": ("minute", 2), "S": ("second", 2), "y": _YEAR2, "b": _MONTH_NAME, "p": _AM_PM,
    "I": _HOUR12}


def _pattern_layouts(pattern: str, base: tuple[int, ...] = _DEFAULTS) -> list[_Layout]:
    """The fixed-width layouts of a strptime pattern (one per width of ``%f``, 1..6
    digits), or none if it has a directive of variable width (``%B``, ``%j``, ``%z`` ...).

    Every literal, a space included, must then be that exact byte: strptime also accepts
    other case and runs of whitespace, which the exact path (strptime itself) decides.
    """
    parts: list[_Part] = []
    fraction_at: int | None = None
    chars = iter(pattern)
    for ch in chars:
        if ch == "%":
            directive = next(chars, "")
            part = _PATTERN_PARTS.get(directive)
            if directive == "%":
                parts.append(b"%")
            elif directive == "f" and fraction_at is None:
                fraction_at = len(parts)
                parts.append(b"")  # placeholder
            elif part is None or part in parts:
                return []
            else:
                parts.append(part)
        elif ch.isascii() and ch not in "\r\n":
            parts.append(ch.encode())
        else:
            return []
    if (_HOUR12 in parts) != (_AM_PM in parts) or (_HOUR12 in parts and ("hour", 2) in parts):
        return []  # %I without %p (or with %H): strptime's rules, not worth a layout
    if fraction_at is None:
        variants = [parts]
    else:
        variants = [[*parts[:fraction_at], ("nanosecond", k), *parts[fraction_at + 1:]]
                    for k in range(1, 7)]
    layouts = [_Layout(v, base) for v in variants]
    return [layout for layout in layouts if layout.width <= BACK]


def _pattern_timestamps(pattern: str) -> _LayoutTimestamps:
    def parse_text(text: str) -> tuple[int, int | None]:
        moment = datetime.strptime(text, pattern)
        ns = _naive_ns(moment.year, moment.month, moment.day, moment.hour, moment.minute,
                       moment.second, moment.microsecond * 1000)
        offset = moment.utcoffset()
        return ns, None if offset is None else int(offset.total_seconds())

    return _LayoutTimestamps(_pattern_layouts(pattern), parse_text)


def _time_pattern_timestamps(pattern: str) -> _LayoutTimestamps:
    def parse_text(text: str) -> tuple[int, int | None]:
        moment = datetime.strptime(text, pattern)
        if moment.date() != datetime(1900, 1, 1).date():
            raise ValueError(f"expected only a time of day ({pattern})")
        ns = ((moment.hour * 60 + moment.minute) * 60 + moment.second) * 10**9
        return ns + moment.microsecond * 1000, None

    return _LayoutTimestamps(_pattern_layouts(pattern, _TIME_OF_DAY), parse_text)


@functools.lru_cache(maxsize=32)
def time_parser(spec: str) -> Timestamps:
    """The parser of a time-of-day column (``time_format``): ns since midnight."""
    return _iso_time_timestamps() if spec == "iso" else _time_pattern_timestamps(spec)


class _UnixTimestamps(Timestamps):
    """Epoch numbers in a unit (s, ms, us, ns); a fraction down to 1 ns is allowed."""

    absolute = True
    _RE = re.compile(r"([+-]?)(\d+)(?:\.(\d*))?", re.ASCII)
    _MAX = 2**63 - 1

    def __init__(self, exponent: int) -> None:
        self.exponent = exponent

    def parse_fast(self, data: Words, starts: np.ndarray,
                   ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        digits, ok = parse_integers(data, starts, ends, 19)
        ok &= digits <= U64(self._MAX // 10**self.exponent)
        return (digits * U64(10**self.exponent)).view(np.int64), ok

    def parse_text(self, text: str) -> tuple[int, int | None]:
        m = self._RE.fullmatch(text)
        if not m:
            raise ValueError("expected a number of seconds/ms/us/ns since 1970-01-01 UTC")
        sign, whole, frac = m.groups()
        frac = (frac or "").rstrip("0")
        if len(frac) > self.exponent:
            raise ValueError("finer than a nanosecond")
        ns = int(whole) * 10**self.exponent + int(frac.ljust(self.exponent, "0") or 0)
        ns = -ns if sign == "-" else ns
        if not -self._MAX - 1 <= ns <= self._MAX:
            raise ValueError("outside the range of 64-bit nanosecond timestamps")
        return ns, 0


@functools.lru_cache(maxsize=32)
def timestamp_parser(spec: str) -> Timestamps:
    if spec == "iso":
        return _iso_timestamps()
    if spec in TIMESTAMP_UNITS:
        return _UnixTimestamps(TIMESTAMP_UNITS[spec])
    return _pattern_timestamps(spec)


class ZoneConverter:
    """Local wall-clock ns -> UTC ns for a whole column, as zoneinfo does it (fold=0).

    zoneinfo gives no list of transitions, so the UTC offset is probed once a day over the
    column's span and each change is located to the second by bisection (no zone changes
    its offset twice within a day). A wall time in a gap or a repeated hour gets the offset
    in force before the transition, as ``datetime(..., tzinfo=zone)`` does.
    """

    _STEP = 86_400

    def __init__(self, zone: ZoneInfo | int) -> None:
        """``zone``: an IANA zone, or a fixed offset in seconds east of UTC."""
        self.zone = zone

    def offset_at(self, utc_s: int) -> int:
        if isinstance(self.zone, int):
            return self.zone
        delta = datetime.fromtimestamp(utc_s, self.zone).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    def to_utc(self, wall_ns: np.ndarray) -> np.ndarray:
        if not len(wall_ns):
            return wall_ns
        if isinstance(self.zone, int):
            shifted: np.ndarray = wall_ns - self.zone * 10**9
            return shifted
        lo = int(wall_ns.min()) // 10**9 - 2 * self._STEP
        hi = int(wall_ns.max()) // 10**9 + 2 * self._STEP
        initial = self.offset_at(lo)
        thresholds, offsets = self._transitions(lo, hi, initial)
        if not thresholds:
            return wall_ns - initial * 10**9
        idx = np.searchsorted(np.array(thresholds, np.int64) * 10**9, wall_ns, side="right")
        table = np.array([initial, *offsets], np.int64) * 10**9
        return wall_ns - table[idx]

    def _transitions(self, lo: int, hi: int, initial: int) -> tuple[list[int], list[int]]:
        """Wall-clock instants (s) from which each new offset applies, and the offsets."""
        thresholds: list[int] = []
        offsets: list[int] = []
        t, before = lo, initial
        while t < hi:
            nxt = min(t + self._STEP, hi)
            after = self.offset_at(nxt)
            if after != before:
                a, b = t, nxt  # offset_at(a) == before, offset_at(b) == after
                while b - a > 1:
                    mid = (a + b) // 2
                    a, b = (mid, b) if self.offset_at(mid) == before else (a, mid)
                thresholds.append(b + max(before, after))
                offsets.append(after)
            t, before = nxt, after
        return thresholds, offsets


def to_utc(rows: Rows, zone: ZoneConverter | None) -> None:
    """Event times as written -> UTC: subtract a written offset, else apply the zone."""
    offset = rows.pop("offset", None)  # only rows from the slow path can carry one
    event = rows["event_ns"]
    wall = np.ones(len(event), bool) if offset is None else offset == NO_OFFSET
    if offset is not None and not bool(wall.all()):
        event[~wall] -= offset[~wall]
    if zone is None or not bool(wall.any()):
        return
    if bool(wall.all()):
        rows["event_ns"] = zone.to_utc(event)
    else:
        event[wall] = zone.to_utc(event[wall])
