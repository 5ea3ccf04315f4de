"""Guessing a CSV file's format from its text: ``format: auto`` and ``tradingd-data sniff``.

What it decides, from the first lines of the file (and the whole file to verify):

* the delimiter (``,`` ``;`` tab ``|``: the one giving most lines the same field count),
  banner lines above the table (``skip_rows``), and whether the first row is a header;
* the column roles: by name (``Date``, ``Open``/``o``/``<OPEN>``, ``Price`` for the close,
  ``Vol.``/``volumefrom``/``<VOL>`` ...), or, without names, by the values: the
  timestamp column parses as times, high is the largest and low the smallest price of
  every row; open and close are told apart only when each bar's open is clearly nearer
  the previous bar's close than the other way round;
* the timestamp format: ISO 8601, epoch seconds/ms/us/ns by magnitude, ``YYYYMMDD``, or a
  strptime pattern that reads every sampled value, day-first or month-first decided by
  the values (a day above 12), and a separate time column;
* how numbers are written (thousands separators, decimal comma, K/M/B volumes) and
  whether rows run oldest or newest first.

It refuses rather than guess where the text allows two readings that load different
values: every day <= 12 (``01/02/2020``), unnamed price columns that fit two orders,
more than one candidate volume column. The refusal says what to set by hand. The guess is
verified by loading the file with it; rejected rows lower the confidence, and a guess
under which most rows are rejected is refused.
"""

from __future__ import annotations

import csv
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tradingd.errors import DataError, DataRefused
from tradingd.producer.loader import CsvFormat, load_csv
from tradingd.producer.loader.blocks import UTF8_BOM

#: Bytes of the file's head read to guess (the whole file is loaded to verify).
HEAD_BYTES = 256 * 1024
SAMPLE_ROWS = 2000
DELIMITERS = (",", ";", "\t", "|")

#: Column names (normalised: lower case, without <> quotes spaces dots) per role.
NAMES: dict[str, tuple[str, ...]] = {
    "timestamp": ("date", "datetime", "timestamp", "time", "ts", "opentime", "unix",
                  "unixtimestamp", "datetimeutc", "gmttime", "localtime", "dtyyyymmdd",
                  "period", "day", "datum", "fecha", "data"),
    "time": ("time", "hour", "hhmmss", "zeit"),
    "open": ("open", "o", "openprice", "opening", "eroffnung", "eroeffnung", "apertura",
             "first"),
    "high": ("high", "h", "highprice", "max", "hoch", "maximo", "highest"),
    "low": ("low", "l", "lowprice", "min", "tief", "minimo", "lowest"),
    "close": ("close", "c", "closeprice", "price", "last", "schluss", "cierre", "closing",
              "zuletzt"),
    "volume": ("volume", "vol", "v", "volumefrom", "tickvol", "tickvolume", "volumen",
               "baseassetvolume", "qty", "quantity"),
}
#: Names that look like a role but are something else (never read).
NOT_ROLES = ("adjclose", "adjustedclose", "change", "changepercent", "volumeto",
             "quoteassetvolume", "trades", "numberoftrades", "spread", "realvolume")

_DATES = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d", "%d/%m/%Y", "%m/%d/%Y",
          "%d.%m.%Y", "%m.%d.%Y", "%d-%m-%Y", "%m-%d-%Y", "%d/%m/%y", "%m/%d/%y",
          "%d.%m.%y", "%d-%b-%Y", "%d-%b-%y", "%b %d, %Y", "%d %b %Y", "%Y-%b-%d")
_TIMES = ("", " %H:%M", " %H:%M:%S", " %H:%M:%S.%f", "T%H:%M:%S", " %I:%M %p",
          " %I:%M:%S %p", " %H%M%S", "%H%M%S", "-%H%M%S")
_TIME_ONLY = ("%H:%M", "%H:%M:%S", "%H:%M:%S.%f", "%H%M%S", "%H%M", "%I:%M %p")
_ISO_RE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?"
                     r"(?:Z|[+-]\d{2}(?::?\d{2})?)?")
_ISO_TIME_RE = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?")
_PLAIN = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")
_EPOCH_UNITS = ((1e8, 1e10, "unix_s"), (1e11, 1e13, "unix_ms"), (1e14, 1e16, "unix_us"),
                (1e17, 1e19, "unix_ns"))


@dataclass
class SniffResult:
    """The guess: a format (None if refused), how sure, what was seen, what to set."""

    path: str
    format: CsvFormat | None = None
    confidence: float = 0.0
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # why refused, what to set by hand
    rows_checked: int = 0
    rows_rejected: int = 0

    @property
    def level(self) -> str:
        return ("high" if self.confidence >= 0.9 else "medium" if self.confidence >= 0.6
                else "low")

    def require(self) -> CsvFormat:
        """The format, or DataRefused (exit 65) saying what to set by hand."""
        if self.format is None:
            raise DataRefused(f"{self.path}: format: auto cannot decide: "
                              + "; ".join(self.problems)
                              + " (tradingd-data sniff FILE shows what it found)")
        return self.format

    def yaml(self, name: str | None = None) -> str:
        fmt = self.format
        if fmt is None:
            return ""
        name = name or _format_name(self.path)
        order = ("timestamp", "time", "open", "high", "low", "close", "volume")
        columns = ", ".join(f"{k}: {_yaml_scalar(fmt.columns[k])}" for k in order
                            if k in fmt.columns)
        if "volume" not in fmt.columns:
            columns += ", volume: null"
        lines = [f"{name}:", f"  delimiter: {_yaml_scalar(fmt.delimiter)}",
                 f"  header: {'true' if fmt.header else 'false'}"]
        if fmt.skip_rows:
            lines.append(f"  skip_rows: {fmt.skip_rows}")
        lines.append(f"  columns: {{{columns}}}")
        ts = "null" if fmt.timestamp_format == "iso" else _yaml_scalar(fmt.timestamp_format)
        lines.append(f"  timestamp_format: {ts}")
        if "time" in fmt.columns:
            tf = "null" if fmt.time_format == "iso" else _yaml_scalar(fmt.time_format)
            lines.append(f"  time_format: {tf}")
        lines.append(f"  timezone: {_yaml_scalar(fmt.timezone)}")
        if fmt.thousands is not None:
            lines.append(f"  thousands: {_yaml_scalar(fmt.thousands)}")
        if fmt.decimal != ".":
            lines.append(f"  decimal: {_yaml_scalar(fmt.decimal)}")
        if fmt.volume_suffixes:
            lines.append("  volume_suffixes: true")
        return "\n".join(lines) + "\n"

    def report(self) -> str:
        out = [f"# {self.path}"]
        out += [f"#   {note}" for note in self.notes]
        if self.format is None:
            out.append("# REFUSED: cannot decide; set by hand:")
            out += [f"#   - {p}" for p in self.problems]
            return "\n".join(out) + "\n"
        out.append(f"# confidence: {self.level} ({self.confidence:.2f}); loading the file "
                   f"with it: {self.rows_checked - self.rows_rejected} of "
                   f"{self.rows_checked} rows good")
        out.append("# paste under producer.formats, then give the symbol "
                   f"format: {_format_name(self.path)}")
        return "\n".join(out) + "\n" + self.yaml()

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "format": None if self.format is None else
                self.format.key(), "confidence": round(self.confidence, 3),
                "level": self.level if self.format else "refused", "notes": self.notes,
                "problems": self.problems, "rows_checked": self.rows_checked,
                "rows_rejected": self.rows_rejected, "yaml": self.yaml()}


def _format_name(path: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(path).stem).strip("_").lower()
    return (stem or "sniffed")[:64]


def _yaml_scalar(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = str(value)
    return '"\\t"' if text == "\t" else '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def normalise(name: str) -> str:
    return re.sub(r"[\s<>\"'._()/%-]+", "", name).casefold().replace("ö", "o")


# ---------------------------------------------------------------------------------------


def sniff_file(path: Path, *, verify_all: bool = True) -> SniffResult:
    """Guess ``path``'s format and verify it by loading the file (see the module doc);
    ``verify_all=False`` loads only the head it guessed from (the producer's ``format:
    auto``, which then loads the whole file once, with the load cache). DataError (66)
    if the file cannot be read at all."""
    result = SniffResult(str(path))
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError as exc:
        raise DataError(f"{path}: cannot open: {exc.strerror or exc}") from None
    text = head.removeprefix(UTF8_BOM).decode("utf-8", "replace")
    lines = text.splitlines()
    if len(head) == HEAD_BYTES and lines:
        lines = lines[:-1]  # the last line may be cut
    lines = [line for line in lines if line.strip()][:SAMPLE_ROWS + 50]
    if len(lines) < 2:
        result.problems.append("fewer than two lines: nothing to guess from")
        return result
    try:
        fmt = _guess(lines, result)
    except _Refuse as exc:
        result.problems.append(str(exc))
        return result
    if verify_all or len(head) < HEAD_BYTES:
        _verify(path, fmt, result)
    else:
        with tempfile.TemporaryDirectory(prefix="tdsniff-") as tmp:
            sample = Path(tmp) / path.name
            sample.write_bytes(head[:head.rfind(b"\n") + 1])
            _verify(sample, fmt, result)
        result.notes.append(f"verified on the first {len(head) // 1024} KiB")
    return result


class _Refuse(Exception):
    pass


def _guess(lines: list[str], result: SniffResult) -> CsvFormat:
    delimiter, ncols, skip = _delimiter(lines)
    rows = [next(csv.reader([line], delimiter=delimiter)) for line in lines[skip:]]
    rows = [[cell.strip() for cell in row] for row in rows if len(row) == ncols]
    shown = "tab" if delimiter == "\t" else repr(delimiter)
    result.notes.append(f"delimiter {shown}: {ncols} fields per line"
                        + (f"; {skip} banner line{'s' if skip != 1 else ''} above the "
                           "table (skip_rows)" if skip else ""))
    header = _is_header(rows)
    data = rows[1:] if header else rows
    if len(data) < 2:
        raise _Refuse("fewer than two data rows to guess from")
    columns_t = list(zip(*data, strict=True))
    result.confidence = 1.0
    if header:
        result.notes.append(f"header on line {skip + 1}: {', '.join(rows[0])}")
        roles = _roles_by_name(rows[0], columns_t, result)
    else:
        result.notes.append("no header: roles from the values")
        roles = _roles_by_values(columns_t, result)
        result.confidence -= 0.15
    ts_col = roles["timestamp"]
    stamp_values = list(columns_t[ts_col])
    time_col = roles.get("time")
    ts_format = _timestamp_format(stamp_values, "date" if time_col is not None else "any")
    time_format = "iso"
    if time_col is not None:
        time_format = _time_format(list(columns_t[time_col]))
    result.notes.append(f"timestamps: {_describe_ts(ts_format)}"
                        + (f", time of day in its own column ({_describe_ts(time_format)})"
                           if time_col is not None else ""))
    numbers = [columns_t[roles[k]] for k in ("open", "high", "low", "close") if k in roles]
    volume = columns_t[roles["volume"]] if "volume" in roles else ()
    thousands, decimal, suffixes = _number_style(numbers, volume, delimiter, result)
    where: dict[str, str | int] = {}
    for key, col in roles.items():
        where[key] = rows[0][col] if header else col
    if header and any(list(where.values()).count(v) > 1 for v in where.values()):
        raise _Refuse("two roles share a column name; set columns by index by hand")
    zone_note = "timezone UTC assumed: the timestamps carry no offset (set timezone if " \
                "they are local time, e.g. America/New_York or -05:00)"
    if ts_format.startswith("unix_"):
        zone_note = "epoch timestamps are UTC"
    elif ts_format == "iso" and any(re.search(r"(Z|[+-]\d{2}:?\d{2})$", v)
                                    for v in stamp_values[:50]):
        zone_note = "timestamps carry their UTC offset"
    result.notes.append(zone_note)
    return CsvFormat(delimiter=delimiter, header=header, columns=where,
                     timestamp_format=ts_format, skip_rows=skip, time_format=time_format,
                     thousands=thousands, decimal=decimal, volume_suffixes=suffixes)


def _delimiter(lines: list[str]) -> tuple[str, int, int]:
    """(delimiter, fields per row, banner lines) from the lines' field counts."""
    best: tuple[float, int, str] | None = None  # (share of lines, fields, delimiter)
    tail = lines[len(lines) // 4:] or lines  # below any banner
    for d in DELIMITERS:  # in order of preference: the first of equals wins
        counts = [len(next(csv.reader([line], delimiter=d))) for line in tail]
        mode, hits = Counter(counts).most_common(1)[0]
        if mode >= 3 and (best is None or (hits / len(tail), mode) > best[:2]):
            best = (hits / len(tail), mode, d)
    if best is None or best[0] < 0.8:
        raise _Refuse("no delimiter (, ; tab |) splits the lines into the same number of "
                      "fields: set delimiter by hand")
    _, ncols, d = best
    counts = [len(next(csv.reader([line], delimiter=d))) for line in lines]
    skip = 0
    while skip < len(lines) - 2 and not all(c == ncols for c in counts[skip:skip + 3]):
        skip += 1
    return d, ncols, skip


def _looks_like_value(cell: str) -> bool:
    text = cell.strip().strip('"')
    return bool(re.fullmatch(r"[+-]?[\d.,:/ TZ%kKmMbB-]+", text)) or _any_date(text)


def _any_date(text: str) -> bool:
    for pattern in ("%d-%b-%Y", "%d-%b-%y", "%b %d, %Y", "%d %b %Y"):
        try:
            datetime.strptime(text, pattern)
            return True
        except ValueError:
            continue
    return False


def _is_header(rows: list[list[str]]) -> bool:
    first = rows[0]
    names = sum(1 for cell in first if cell and not _looks_like_value(cell))
    return names >= max(1, len(first) // 2) or (first[0] == "" and names >= len(first) - 1)


def _roles_by_name(header: list[str], columns: list[tuple[str, ...]],
                   result: SniffResult) -> dict[str, int]:
    names = [normalise(n) for n in header]
    roles: dict[str, int] = {}
    for role in ("open", "high", "low", "close", "volume"):
        hits = [i for i, n in enumerate(names) if n in NAMES[role] and n not in NOT_ROLES]
        if role == "volume" and not hits:
            hits = [i for i, n in enumerate(names)
                    if n.startswith("volume") and n not in NOT_ROLES]
        if len(hits) > 1 and role == "volume":
            raise _Refuse(f"more than one volume column ({', '.join(header[i] for i in hits)})"
                          ": set columns.volume by hand")
        if len(hits) > 1:
            raise _Refuse(f"more than one {role} column: set columns.{role} by hand")
        if hits:
            roles[role] = hits[0]
    missing = [r for r in ("open", "high", "low", "close") if r not in roles]
    if missing:
        raise _Refuse(f"no column named like {', '.join(missing)} (header: "
                      f"{', '.join(header)}): set columns by hand")
    taken = set(roles.values())
    dates = [i for i, n in enumerate(names) if n in NAMES["timestamp"] and i not in taken]
    if not dates and names and names[0] == "":
        dates = [0]  # pandas: the unnamed index column
        result.notes.append("timestamps in the unnamed first column (a pandas index)")
    if not dates:
        raise _Refuse(f"no date or time column (header: {', '.join(header)}): set "
                      "columns.timestamp by hand")
    # prefer a date column over one named like a time of day ("Date" before "Time")
    dates.sort(key=lambda i: names[i] in NAMES["time"])
    roles["timestamp"] = dates[0]
    clocks = [i for i, n in enumerate(names) if n in NAMES["time"] and i not in taken
              and i != dates[0] and _time_format_or_none(list(columns[i])) is not None]
    if clocks and _date_only(list(columns[dates[0]])):
        roles["time"] = clocks[0]
    return roles


def _date_only(values: list[str]) -> bool:
    """The values are dates without a time of day (a time column may complete them)."""
    try:
        spec = _timestamp_format(values, "date")
    except _Refuse:
        return False
    return (spec == "iso" and all(len(v) == 10 for v in values[:SAMPLE_ROWS])) or (
        spec not in ("iso", "unix_s", "unix_ms", "unix_us", "unix_ns", "%Y%m%d%H%M%S"))


def _roles_by_values(columns: list[tuple[str, ...]], result: SniffResult) -> dict[str, int]:
    stamps = [i for i, col in enumerate(columns) if _timestamp_format_or_none(list(col))]
    if not stamps:
        raise _Refuse("no column reads as timestamps: set columns.timestamp and "
                      "timestamp_format by hand")
    roles = {"timestamp": stamps[0]}
    rest = [i for i in range(len(columns)) if i != stamps[0]]
    if (len(rest) and _time_format_or_none(list(columns[rest[0]])) is not None
            and not all(_PLAIN.fullmatch(v) for v in columns[rest[0]])):
        roles["time"] = rest[0]
        rest = rest[1:]
    values = {i: [_float(v) for v in columns[i]] for i in rest}
    numeric = [i for i, vs in values.items() if all(v is not None for v in vs)]
    if len(numeric) < 4:
        raise _Refuse("fewer than four numeric columns: set columns by hand")
    rows = list(zip(*(values[i] for i in numeric), strict=True))
    prices = numeric[:4]
    sub = [[r[numeric.index(i)] for i in prices] for r in rows]
    highs = [i for k, i in enumerate(prices) if all(r[k] == max(r) for r in sub)]
    lows = [i for k, i in enumerate(prices) if all(r[k] == min(r) for r in sub)]
    if len(highs) != 1 or len(lows) != 1 or highs == lows:
        raise _Refuse(f"columns {prices} do not show one high (the largest of every row) "
                      "and one low: set columns.open/high/low/close by hand")
    a, b = [i for i in prices if i not in (highs[0], lows[0])]
    va, vb = values[a], values[b]
    if _newest_first(list(columns[stamps[0]])):  # continuity runs the other way
        va, vb = va[::-1], vb[::-1]
    opening = _open_close(va, vb)
    if opening is None:
        raise _Refuse(f"columns {a} and {b} both fit open and close (unnamed prices that "
                      f"fit two orders): set columns.open and columns.close by hand")
    roles.update(high=highs[0], low=lows[0], open=a if opening == 0 else b,
                 close=b if opening == 0 else a)
    result.notes.append(f"open/close told apart by continuity (each open near the previous "
                        f"close): open {roles['open']}, close {roles['close']}")
    result.confidence -= 0.1
    others = numeric[4:]
    if len(others) > 1:
        raise _Refuse(f"columns {others} could each be the volume: set columns.volume "
                      "by hand (or null)")
    if others:
        roles["volume"] = others[0]
    else:
        result.notes.append("no volume column (volume 0 is published)")
    return roles


def _open_close(a: list[float | None], b: list[float | None]) -> int | None:
    """Which of two columns is the open: 0 (a), 1 (b), None (cannot tell). An open is the
    previous bar's close give or take a tick; the other pairing is a whole bar apart."""
    av = [x for x in a if x is not None]
    bv = [x for x in b if x is not None]
    n = min(len(av), len(bv))
    if n < 10:
        return None
    a_after_b = sum(abs(av[i] - bv[i - 1]) for i in range(1, n))
    b_after_a = sum(abs(bv[i] - av[i - 1]) for i in range(1, n))
    if a_after_b * 3 < b_after_a:
        return 0
    if b_after_a * 3 < a_after_b:
        return 1
    return None


def _newest_first(stamps: list[str]) -> bool:
    """Whether timestamps run newest first (parsed with their own format)."""
    try:
        spec = _timestamp_format(stamps, "any")
    except _Refuse:
        return False
    first, last = stamps[0], stamps[-1]
    if spec.startswith("unix_") or spec == "iso":
        return (float(first), first) > (float(last), last) if spec.startswith(
            "unix_") else first > last
    return datetime.strptime(first, spec) > datetime.strptime(last, spec)


def _float(text: str) -> float | None:
    t = text.strip().strip('"')
    try:
        return float(t) if _PLAIN.fullmatch(t) else None
    except ValueError:
        return None


def _timestamp_format_or_none(values: list[str]) -> str | None:
    try:
        return _timestamp_format(values, "any")
    except _Refuse:
        return None


def _timestamp_format(values: list[str], kind: str) -> str:
    """The one format reading every value (see the module doc); _Refuse if none or two."""
    values = [v for v in values if v][:SAMPLE_ROWS]
    if not values:
        raise _Refuse("the timestamp column is empty")
    if all(_ISO_RE.fullmatch(v) for v in values):
        return "iso"
    if all(re.fullmatch(r"\d+(\.\d+)?", v) for v in values):
        if all(len(v) == 8 for v in values) and _all_parse(values, "%Y%m%d"):
            return "%Y%m%d"
        if all(len(v) == 14 for v in values) and _all_parse(values, "%Y%m%d%H%M%S"):
            return "%Y%m%d%H%M%S"
        magnitude = [float(v) for v in values]
        for low, high, unit in _EPOCH_UNITS:
            if all(low <= m < high for m in magnitude):
                return unit
        raise _Refuse("numeric timestamps of no single epoch unit's magnitude: set "
                      "timestamp_format (unix_s, unix_ms, unix_us, unix_ns) by hand")
    times = ("",) if kind == "date" else _TIMES
    fits = [d + t for d in _DATES for t in times if _all_parse(values, d + t)]
    if not fits:
        raise _Refuse(f"timestamps like {values[0]!r} match no known pattern: set "
                      "timestamp_format (a strptime pattern) by hand")
    if len(fits) > 1:
        day_first = [f for f in fits if f.index("%d") < f.index("%m")] if all(
            "%m" in f for f in fits) else []
        if day_first and len(day_first) < len(fits):
            raise _Refuse(f"timestamps like {values[0]!r} read both day-first and "
                          f"month-first (every day is 12 or less): set timestamp_format "
                          f"by hand: {' or '.join(repr(f) for f in fits[:2])}")
        fits.sort(key=len)  # the same reading, e.g. %H:%M vs %I:%M %p cannot both fit
    return fits[0]


def _all_parse(values: list[str], pattern: str) -> bool:
    for v in values:
        try:
            datetime.strptime(v, pattern)
        except ValueError:
            return False
    return True


def _time_format_or_none(values: list[str]) -> str | None:
    values = [v for v in values if v][:SAMPLE_ROWS]
    if values and all(_ISO_TIME_RE.fullmatch(v) for v in values):
        return "iso"
    for pattern in _TIME_ONLY:
        if values and all(len(v) == len(values[0]) for v in values) and _all_parse(
                values, pattern):
            return pattern
    return None


def _time_format(values: list[str]) -> str:
    found = _time_format_or_none(values)
    if found is None:
        raise _Refuse("the time column matches no time format: set time_format by hand")
    return found


def _describe_ts(spec: str) -> str:
    return {"iso": "ISO 8601", "unix_s": "epoch seconds", "unix_ms": "epoch milliseconds",
            "unix_us": "epoch microseconds", "unix_ns": "epoch nanoseconds"}.get(spec, spec)


def _number_style(prices: list[tuple[str, ...]], volume: tuple[str, ...] | list[str],
                  delimiter: str, result: SniffResult) -> tuple[str | None, str, bool]:
    texts = [v for col in prices for v in col] + list(volume)
    grouped_dot = any(re.fullmatch(r"\d{1,3}(\.\d{3})+,\d*", v) for v in texts)
    comma_decimal = any(re.fullmatch(r"[+-]?\d+,\d+", v) for v in texts) and not any(
        re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d*)?", v) for v in texts)
    grouped_comma = any(re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d*)?", v) for v in texts)
    suffixes = any(re.fullmatch(r"[\d.,]+[kKmMbB]", v) for v in volume)
    thousands: str | None = None
    decimal = "."
    if grouped_dot or (comma_decimal and not grouped_comma):
        decimal = ","
        thousands = "." if grouped_dot else None
    elif grouped_comma:
        thousands = ","
    if decimal == "," and any(re.fullmatch(r"\d+\.\d+", v) for v in texts) and not grouped_dot:
        raise _Refuse("numbers with both '.' and ',' as the decimal mark: set thousands and "
                      "decimal by hand")
    parts = []
    if thousands:
        parts.append(f"thousands separator {thousands!r}")
    if decimal != ".":
        parts.append(f"decimal mark {decimal!r}")
    if suffixes:
        parts.append("K/M/B volume suffixes")
    result.notes.append("numbers: " + (", ".join(parts) if parts else "plain decimals"))
    return thousands, decimal, suffixes


def _verify(path: Path, fmt: CsvFormat, result: SniffResult) -> None:
    """Load the whole file with the guess; most rows rejected: refused."""
    try:
        loaded = load_csv(path, fmt)
    except Exception as exc:  # a DataError or a ValueError from the guess: say so
        result.problems.append(f"the guessed format does not load the file ({exc})")
        return
    result.rows_checked, result.rows_rejected = loaded.rows_read, loaded.rows_rejected
    share = loaded.rows_rejected / loaded.rows_read if loaded.rows_read else 1.0
    if share > 0.5 or not len(loaded.bars):
        top = max(loaded.reject_counts.items(), key=lambda kv: kv[1])[0]
        result.problems.append(f"with the guessed format {loaded.rows_rejected} of "
                               f"{loaded.rows_read} rows are rejected (mostly {top}): set "
                               "the format by hand (tradingd-data check FILE --format NAME "
                               "shows why)")
        return
    result.notes.append("rows run newest first (reversed into time order when loaded)"
                        if loaded.newest_first else "rows run oldest first")
    result.confidence = max(0.0, result.confidence * (1.0 - share))
    result.format = fmt
