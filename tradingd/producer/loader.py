"""Market data CSV files -> numpy bars: fast on clean rows, exact about dirty ones.

Why it is built this way: the producer loads millions of rows and must still report every
bad row with its file, line and reason. Parsing row by row in Python manages ~0.3 M rows/s,
so the loader works on blocks of whole lines (about 1 MiB each) with numpy:

1. **Tokenise.** One vectorised scan finds every delimiter and newline of the block. A line
   with the expected number of fields and no quote is a candidate for the fast path.
2. **Fast path.** A numeric field is read as little-endian 64-bit words ending at its last
   byte; eight ASCII digits become a number with three multiply-shift steps (SWAR, "SIMD
   within a register", one numpy operation for the whole column). The result is exact:
   the decimal's digits form an integer below 2**53 that is divided once by an exact power
   of ten, which rounds correctly, as ``float()`` does (longer fields go to the slow
   path). Timestamps of a fixed layout (ISO 8601, or a strptime pattern of fixed-width
   fields) are read the same way, checked against the expected text in one step per word,
   and turned into days through a table of month starts.
3. **Slow path.** Whatever the fast path cannot vouch for (wrong field count, empty or null
   fields, exponents, spaces, quotes, blank lines, other timestamp shapes) is parsed alone
   by plain Python, which decides whether the row is good and, if not, why. The slow path
   is the reference: the fast one only accepts rows it would parse identically.
4. **Checks.** Prices > 0, volume >= 0, low <= high, open and close within [low, high];
   then event times must run one way: a duplicate time (the first row wins) or a row that
   goes against the file's order is skipped. Files may run oldest first or newest first
   (as Alpha Vantage and Investing.com exports do; the first rows decide, by majority);
   a newest-first file's bars are reversed, so every result runs oldest first.

Each skipped row is counted per reason (``REJECT_REASONS``, used as metric label values)
and the first ``MAX_BAD_ROW_DETAILS`` are kept with their line number (1-based, as an
editor shows it). Pure domain code: no logging, metrics or configuration parsing here.
"""

from __future__ import annotations

import csv
import functools
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, BinaryIO, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from tradingd.errors import ConfigError, DataError, StrictDataError

# ---------------------------------------------------------------------------------------
# public names
# ---------------------------------------------------------------------------------------

#: One bar: event time in UTC nanoseconds since the epoch, then OHLCV.
BAR_DTYPE = np.dtype([("event_ns", "<i8"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"),
                      ("close", "<f8"), ("volume", "<f8")])

#: Why a row was skipped, in the order the checks run (also Prometheus label values).
REJECT_REASONS: tuple[str, ...] = (
    "wrong_field_count",  # not as many fields as the header (or the first rows) has
    "empty_field",  # a field the format reads is empty
    "null_value",  # null, NaN, NA, N/A, None ... (Yahoo writes "null" for missing days)
    "bad_number",  # not a decimal number, or not finite
    "bad_timestamp",  # not in the format's timestamp format, no such date, out of range
    "non_positive_price",  # open, high, low or close <= 0
    "negative_volume",
    "high_below_low",
    "price_outside_range",  # open or close outside [low, high]
    "duplicate_timestamp",  # same event time as an earlier row (the first one is kept)
    "out_of_order",  # event time against the file's order (oldest or newest first)
)

#: Bad rows kept with full detail per file; all of them are counted.
MAX_BAD_ROW_DETAILS = 1000

#: Field texts read as "no value" (compared case-insensitively).
NULL_TOKENS = frozenset({"null", "nan", "na", "n/a", "#n/a", "none", "nil"})

#: ``timestamp_format`` values for numeric epoch timestamps -> power of ten to nanoseconds.
TIMESTAMP_UNITS: Mapping[str, int] = MappingProxyType(
    {"unix_s": 9, "unix_ms": 6, "unix_us": 3, "unix_ns": 0})

#: The fields a format locates; volume may be left out (bars then carry volume 0).
FIELDS = ("timestamp", "open", "high", "low", "close", "volume")

#: Bytes read per block (whole lines are parsed together; 1-2 MiB measured fastest: the
#: per-call overhead of numpy is spread over ~30k rows, the temporaries stay in cache).
BLOCK_SIZE = 2 << 20

_YAHOO_COLUMNS = {"timestamp": "Date", "open": "Open", "high": "High", "low": "Low",
                  "close": "Close", "volume": "Volume"}
_BAD_DELIMITERS = set("\r\n\"0123456789.+-")


@dataclass(frozen=True)
class CsvFormat:
    """Where a CSV file keeps each field, and how its timestamps are written.

    ``columns`` maps timestamp, open, high, low, close and (optionally) volume to a header
    name (matched ignoring case and surrounding spaces) or a 0-based column index.
    ``timestamp_format`` is ``"iso"`` (``YYYY-MM-DD``, optionally ``[T ]HH:MM[:SS[.f]]``
    and an offset ``Z``/``+HH:MM``), a strptime pattern, or a ``TIMESTAMP_UNITS`` name.
    ``timezone`` (IANA) applies to timestamps that carry no offset; epoch numbers are UTC.
    Invalid values raise ValueError naming the field.
    """

    delimiter: str = ","
    header: bool = True
    columns: Mapping[str, str | int] = field(default_factory=lambda: dict(_YAHOO_COLUMNS))
    timestamp_format: str = "iso"
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if len(self.delimiter) != 1 or self.delimiter in _BAD_DELIMITERS:
            raise ValueError(f"delimiter {self.delimiter!r}: expected one character that "
                             "cannot occur in a number or a line end, such as , ; | or tab")
        object.__setattr__(self, "columns", MappingProxyType(_checked_columns(self)))
        _check_timestamp_format(self.timestamp_format)
        _zone(self.timezone)

    def __hash__(self) -> int:
        return hash((self.delimiter, self.header, tuple(self.columns.items()),
                     self.timestamp_format, self.timezone))


def _checked_columns(fmt: CsvFormat) -> dict[str, str | int]:
    """The column mapping without absent volume, or ValueError saying what is wrong."""
    columns = {k: v for k, v in dict(fmt.columns).items() if not (k == "volume" and v is None)}
    unknown = sorted(set(columns) - set(FIELDS))
    missing = [k for k in FIELDS[:5] if k not in columns]
    if unknown or missing:
        raise ValueError(f"columns: unknown {unknown} / missing {missing}; expected keys "
                         f"{', '.join(FIELDS)} (volume may be left out)")
    for key, where in columns.items():
        if isinstance(where, bool) or not isinstance(where, str | int) or (
                isinstance(where, int) and where < 0):
            raise ValueError(f"columns.{key}: expected a header name or a 0-based index, "
                             f"not {where!r}")
        if isinstance(where, str) and not fmt.header:
            raise ValueError(f"columns.{key}: {where!r} is a column name but the format "
                             "has no header: use a 0-based index")
    return columns


def _check_timestamp_format(spec: str) -> None:
    if spec == "iso" or spec in TIMESTAMP_UNITS:
        return
    sample = datetime(2001, 2, 3, 4, 5, 6)
    try:
        if "%" not in spec:
            raise ValueError("no % directive")
        datetime.strptime(sample.strftime(spec), spec)
    except ValueError as exc:
        raise ValueError(f"timestamp_format {spec!r}: expected 'iso', a strptime pattern "
                         f"or one of {', '.join(TIMESTAMP_UNITS)} ({exc})") from None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone {name!r}: not an IANA time zone known here "
                         "(e.g. UTC, America/New_York)") from None


#: Layouts known by name (``format: yahoo`` in the configuration).
BUILTIN_FORMATS: Mapping[str, CsvFormat] = MappingProxyType({
    # Date,Open,High,Low,Close,Adj Close,Volume (Adj Close is not read)
    "yahoo": CsvFormat(),
    # pandas DataFrame.to_csv with a DatetimeIndex: ",Open,High,Low,Close,Volume"
    "pandas_index": CsvFormat(columns={**_YAHOO_COLUMNS, "timestamp": ""}),
})


def csv_format(spec: str | CsvFormat | Any) -> CsvFormat:
    """A CsvFormat from a built-in name, a CsvFormat, or an object with its fields.

    The object form takes the configuration's format section (attributes delimiter,
    header, columns, timestamp_format (None: ISO) and timezone; columns a mapping or an
    object with one attribute per field, volume None when the data has none). Raises
    ConfigError for an unknown name or a layout the loader cannot use.
    """
    if isinstance(spec, CsvFormat):
        return spec
    if isinstance(spec, str):
        try:
            return BUILTIN_FORMATS[spec]
        except KeyError:
            raise ConfigError(f"unknown CSV format {spec!r}: expected "
                              f"{' or '.join(BUILTIN_FORMATS)} or a custom format") from None
    columns = spec.columns
    if not isinstance(columns, Mapping):
        columns = {k: getattr(columns, k, None) for k in FIELDS}
    try:
        return CsvFormat(delimiter=spec.delimiter, header=spec.header, columns=columns,
                         timestamp_format=spec.timestamp_format or "iso",
                         timezone=spec.timezone)
    except ValueError as exc:
        raise ConfigError(f"CSV format: {exc}") from None


@dataclass(frozen=True)
class BadRow:
    """One skipped row: ``str()`` gives ``path:line: reason: text``."""

    path: str
    line: int  # 1-based, as an editor shows it
    reason: str  # one of REJECT_REASONS
    text: str  # what exactly is wrong, e.g. "high 1.0 < low 2.0"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}: {self.text}"

    @property
    def message(self) -> str:
        return str(self)


@dataclass
class LoadResult:
    """What ``load_csv`` read from one file."""

    path: str
    bars: np.ndarray  # BAR_DTYPE, strictly ascending event_ns
    rows_read: int  # data rows seen: bars + rejected (header and blank lines not counted)
    bad_rows: list[BadRow]  # the first MAX_BAD_ROW_DETAILS, by line
    reject_counts: dict[str, int]  # every reason in REJECT_REASONS -> rows (0 included)
    newest_first: bool = False  # the file ran newest first (bars are reversed into order)

    @property
    def rows_rejected(self) -> int:
        return sum(self.reject_counts.values())


# ---------------------------------------------------------------------------------------
# the entry point
# ---------------------------------------------------------------------------------------


def load_csv(path: str | os.PathLike[str], fmt: CsvFormat, *, strict: bool = False,
             block_size: int = BLOCK_SIZE, fast_path: bool = True) -> LoadResult:
    """Read one CSV file into bars, skipping (and reporting) bad rows.

    Raises DataError (exit 66) when the file cannot be used at all: missing, unreadable,
    empty, not UTF-8, or its header does not have the format's columns. With ``strict``,
    the first bad row raises StrictDataError (exit 65) naming its file:line and reason.
    ``block_size`` and ``fast_path=False`` (every row through the exact per-row parser)
    exist for tests.
    """
    name = os.fspath(path)
    log = _RejectLog(name)
    rows_read = 0
    with _open(name) as f:
        blocks = _read_blocks(f, name, block_size)
        plan, first = _plan(name, fmt, f, blocks)
        out = _Output(_size_hint(f, first))
        order = _OrderCheck(out)
        scratch = _Scratch()
        line = first.first_line if first else 2
        for block in _chain(first, blocks):
            block = block._replace(first_line=line)
            _check_utf8(block, name)
            seen, nlines = _load_block(block, plan, log, order, out, fast_path, scratch)
            rows_read += seen
            line += nlines
            if strict and log.total:
                raise StrictDataError(_strict_message(log))
    bars = out.bars()
    if order.newest_first:
        bars = np.ascontiguousarray(bars[::-1])
    return LoadResult(name, bars, rows_read, log.bad_rows(), dict(log.counts),
                      newest_first=order.newest_first)


def _chain(first: _Block | None, rest: Iterator[_Block]) -> Iterator[_Block]:
    if first is not None:
        yield first
    yield from rest


def _strict_message(log: _RejectLog) -> str:
    first = log.bad_rows()[0]
    counts = ", ".join(f"{r} {n}" for r, n in log.counts.items() if n)
    return (f"{first} (strict mode: refusing the file; bad rows so far: {counts}; fix the "
            "file or turn strict off to skip them)")


def _load_block(block: _Block, plan: _Plan, log: _RejectLog, order: _OrderCheck,
                out: _Output, fast_path: bool, scratch: _Scratch) -> tuple[int, int]:
    """Parse, check and order one block into ``out``; returns how many data rows and how
    many lines it held."""
    lines = _tokenize(block, plan, fast_path, scratch)
    fast, ok = _parse_fast(block, lines, plan, scratch)
    # lines the fast path could not vouch for go through the exact per-row parser
    todo = np.union1d(np.flatnonzero(~lines.fast), np.flatnonzero(lines.fast)[~ok])
    slow, seen_slow = _parse_slow(block, lines, todo, plan, log)
    rows = _merge(fast, ok, slow)
    _to_utc(rows, plan.zone)
    rows = _drop(rows, _check_values(rows), log, "values", _describe_values)
    rows = _drop(rows, order.check(rows["event_ns"]), log, "order", order.describe)
    out.append(rows)
    return int(np.count_nonzero(ok)) + seen_slow, len(lines.starts)


# ---------------------------------------------------------------------------------------
# reading the file in blocks of whole lines
# ---------------------------------------------------------------------------------------

_FRONT = 32  # zero bytes before the data: loads of a field's last 24 bytes start before it
_BACK = 64  # slack after the data: a timestamp's words (up to 64 bytes) may end past it
_UTF8_BOM = b"\xef\xbb\xbf"
_OTHER_BOMS = {b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16", b"\x00\x00\xfe\xff": "UTF-32"}


class _Block(NamedTuple):
    """Whole lines of the file (each ending in \\n) with padding around them."""

    buf: bytearray
    raw: np.ndarray  # uint8 view of buf
    start: int  # offset of the first line to parse
    stop: int  # offset just past the last \n
    first_line: int  # 1-based line number of the line at ``start``


def _open(path: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise DataError(f"{path}: cannot open: {exc.strerror or exc}") from None


def _read_blocks(f: BinaryIO, path: str, block_size: int) -> Iterator[_Block]:
    """Yield the file as blocks of whole lines; a last line without \\n gets one.

    One buffer is reused: the partial line after a block's last newline moves to its front
    once the block has been processed. ``first_line`` is 1; the caller numbers the rest.
    """
    buf = bytearray()
    carry = 0  # bytes of a partial line at buf[_FRONT:]
    first = True
    size_now = _file_size(f)
    if size_now is not None:  # a small file: one read, no larger buffer than needed
        block_size = max(1, min(block_size, size_now + 1))
    while True:
        size = _FRONT + carry + block_size + _BACK
        if len(buf) < size:  # a new buffer (a line longer than a block makes it grow)
            buf = bytearray(size) if not carry else bytearray(buf[:_FRONT + carry]).ljust(size,
                                                                                        b"\0")
        begin = _FRONT + carry
        end = begin + _read_into(f, path, memoryview(buf)[begin:begin + block_size])
        at_eof = end < begin + block_size  # _read_into only stops short at the end
        if at_eof:
            if end == _FRONT:
                if first:
                    raise DataError(f"{path}: the file is empty")
                return
            if buf[end - 1] != 10:
                buf[end] = 10  # the last line had no newline
                end += 1
        start = _check_start(buf, end, path) if first else _FRONT
        cut = buf.rfind(b"\n", start, end) + 1
        if cut == 0:  # no newline yet (at_eof is False: it would have added one): read on
            carry = end - _FRONT
            continue
        yield _Block(buf, np.frombuffer(buf, np.uint8), start, cut, 1)
        first = False
        if at_eof:
            return
        carry = end - cut
        buf[_FRONT:_FRONT + carry] = buf[cut:end]


def _file_size(f: BinaryIO) -> int | None:
    try:
        return os.fstat(f.fileno()).st_size or None
    except (OSError, ValueError):
        return None


def _read_into(f: BinaryIO, path: str, view: memoryview) -> int:
    done = 0
    try:
        while done < len(view):
            n = f.readinto(view[done:])
            if not n:
                break
            done += n
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return done


def _check_start(buf: bytearray, end: int, path: str) -> int:
    """Offset where the text starts (after a UTF-8 BOM); DataError for other encodings."""
    head = bytes(buf[_FRONT:_FRONT + 4])
    if head.startswith(_UTF8_BOM):
        return _FRONT + len(_UTF8_BOM)
    for bom, name in _OTHER_BOMS.items():
        if head.startswith(bom):
            raise DataError(f"{path}: the file is {name} text; convert it to UTF-8")
    if head.startswith(b"\x1f\x8b"):
        raise DataError(f"{path}: the file is gzip-compressed; decompress it first")
    if buf.find(b"\n", _FRONT, end) < 0 and buf.find(b"\r", _FRONT, end) >= 0:
        raise DataError(f"{path}: lines end in CR only (classic Mac OS); "
                        "convert them to LF or CRLF")
    return _FRONT


def _check_utf8(block: _Block, path: str) -> None:
    buf = block.buf
    if buf.isascii():
        return
    try:
        str(memoryview(buf)[block.start:block.stop], "utf-8")
    except UnicodeDecodeError as exc:
        line = block.first_line + buf.count(b"\n", block.start, block.start + exc.start)
        raise DataError(f"{path}:{line}: not UTF-8 text (byte "
                        f"0x{buf[block.start + exc.start]:02x} cannot be decoded); convert the"
                        " file to UTF-8") from None


# ---------------------------------------------------------------------------------------
# the plan: the format resolved against the file's header
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    path: str
    delimiter: str
    ncols: int  # fields per row
    ts_col: int
    value_cols: tuple[tuple[str, int], ...]  # (field, column) for open..volume present
    timestamps: _Timestamps
    zone: _ZoneConverter | None  # None: event times are already UTC


def _plan(path: str, fmt: CsvFormat, f: BinaryIO,
          blocks: Iterator[_Block]) -> tuple[_Plan, _Block | None]:
    """Resolve the format against the header (or the first rows); returns the first block
    to parse (None if the file holds only a header)."""
    block = next(blocks)
    text_end = block.buf.find(b"\n", block.start, block.stop)
    try:
        first_line = bytes(block.buf[block.start:text_end]).decode("utf-8").rstrip("\r")
    except UnicodeDecodeError:
        raise DataError(f"{path}:1: not UTF-8 text; convert the file to UTF-8") from None
    if fmt.header and not first_line.strip():
        raise DataError(f"{path}:1: the first line is empty; expected a header naming the "
                        f"columns {', '.join(repr(c) for c in fmt.columns.values())}")
    if fmt.header:
        columns, ncols = _columns_from_header(path, fmt, first_line)
        rest = block._replace(start=text_end + 1, first_line=block.first_line + 1)
        first = rest if rest.start < rest.stop else None
    else:
        ncols = _usual_field_count(f, block, fmt.delimiter)
        columns = {k: int(v) for k, v in fmt.columns.items()}
        _check_indices(path, columns, ncols, "the rows have")
        first = block
    timestamps = _timestamp_parser(fmt.timestamp_format)
    zone = None if timestamps.absolute or fmt.timezone == "UTC" else _ZoneConverter(
        _zone(fmt.timezone))
    values = tuple((k, columns[k]) for k in FIELDS[1:] if k in columns)
    return _Plan(path, fmt.delimiter, ncols, columns["timestamp"], values, timestamps,
                 zone), first


def _split(text: str, delimiter: str) -> list[str]:
    if '"' in text:
        return next(csv.reader([text], delimiter=delimiter), [])
    return text.split(delimiter)


def _columns_from_header(path: str, fmt: CsvFormat, header: str) -> tuple[dict[str, int],
                                                                          int]:
    if "\r" in header:
        raise DataError(f"{path}:1: the header contains a CR: lines end in CR only?")
    names = [n.strip().strip('"').strip().casefold() for n in _split(header, fmt.delimiter)]
    found: dict[str, int] = {}
    for key, where in fmt.columns.items():
        if isinstance(where, int):
            found[key] = where
            continue
        hits = [i for i, n in enumerate(names) if n == where.strip().casefold()]
        if len(hits) != 1:
            problem = "no column" if not hits else f"{len(hits)} columns"
            wanted = ", ".join(repr(w) for w in fmt.columns.values())
            raise DataError(f"{path}:1: header does not match the format: {problem} named "
                            f"{where!r} for {key} (header: {header!r}; the format expects "
                            f"columns {wanted} separated by {fmt.delimiter!r})")
        found[key] = hits[0]
    _check_indices(path, found, len(names), "the header has")
    return found, len(names)


def _check_indices(path: str, columns: Mapping[str, int], ncols: int, what: str) -> None:
    for key, index in columns.items():
        if index >= ncols:
            raise DataError(f"{path}:1: the format reads {key} from column index {index} but "
                            f"{what} {ncols} field{'s' if ncols != 1 else ''}")


def _usual_field_count(f: BinaryIO, block: _Block, delimiter: str) -> int:
    """Fields per row of a headerless file: the most common count in its first rows."""
    try:  # the first 64 KiB, whatever the block size
        head = os.pread(f.fileno(), 65536, 0).removeprefix(_UTF8_BOM)
    except (OSError, ValueError):  # not a regular file: the first block will do
        head = bytes(block.buf[block.start:block.stop])
    lines = head.decode("utf-8", "replace").split("\n")[:1000]
    counts = [len(_split(line.rstrip("\r"), delimiter)) for line in lines[:-1] or lines
              if line.strip()]
    return max(sorted(set(counts)), key=counts.count) if counts else 1


# ---------------------------------------------------------------------------------------
# tokenising a block
# ---------------------------------------------------------------------------------------


class _Scratch:
    """Work arrays kept from block to block.

    Fresh multi-megabyte temporaries per block make the C library hand memory back to the
    OS and fault it in again (expensive in VMs); the largest ones are reused instead.
    """

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, n: int, dtype: type = np.uint64) -> np.ndarray:
        """An array of ``n`` items for ``name``; its contents are left over, overwrite them."""
        key = f"{name}/{np.dtype(dtype).char}"
        array = self._arrays.get(key)
        if array is None or len(array) < n:
            array = self._arrays[key] = np.empty(n + n // 8, dtype)
        return array[:n]


class _Lines(NamedTuple):
    starts: np.ndarray  # int64, every line of the block
    ends: np.ndarray  # int64, end of the line's text (before \r\n or \n)
    fast: np.ndarray  # bool per line: right field count and no quote
    fields: np.ndarray  # (ncols, fast lines) int64: offset just past each field


def _tokenize(block: _Block, plan: _Plan, fast_path: bool, scratch: _Scratch) -> _Lines:
    """Find the lines and, for lines with the expected field count, each field's end."""
    raw, start, stop = block.raw, block.start, block.stop
    seps, nlines = _separators(block, plan.delimiter, scratch)
    quotes = block.buf.find(b'"', start, stop) >= 0
    every = seps[plan.ncols - 1::plan.ncols]  # the newlines, if every line is regular
    if (not quotes and len(seps) == nlines * plan.ncols and len(every) == nlines
            and bool((raw[every] == 10).all())):
        fast = np.ones(nlines, bool)
        fields = seps.reshape(nlines, plan.ncols).T.copy()  # fields[k]: field k's ends
        newlines = fields[-1]
    else:
        fast, fields, newlines = _irregular_lines(block, seps, plan.ncols, quotes)
    starts = np.empty(nlines, np.int64)
    starts[:1] = start
    starts[1:] = newlines[:-1] + 1
    ends = newlines
    if block.buf.find(b"\r", start, stop) >= 0:  # CRLF: text ends before the \r
        ends = newlines - (raw[newlines - 1] == 13)
        fields[-1] = ends[fast]
    if not fast_path:
        fast = np.zeros(nlines, bool)
        fields = fields[:, :0]
    return _Lines(starts, ends, fast, fields)


def _separators(block: _Block, delimiter: str, scratch: _Scratch) -> tuple[np.ndarray, int]:
    """Offsets (into raw) of every delimiter and newline of the block, and the line count.

    The masks start at offset 0 (cleared before ``start``) so that positions come out as
    offsets into raw without another pass.
    """
    body = block.raw[:block.stop]
    separator = np.equal(body, 10, out=scratch.get("newline", len(body), bool))
    separator[:block.start] = False
    nlines = int(np.count_nonzero(separator))
    separator |= np.equal(body, ord(delimiter), out=scratch.get("delimiter", len(body), bool))
    separator[:block.start] = False
    return np.flatnonzero(separator), nlines


def _irregular_lines(block: _Block, seps: np.ndarray, ncols: int,
                     quotes: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fast mask, field ends of the fast lines, newlines) when some lines have another
    field count, or quotes (which the slow path's csv reader handles)."""
    where = np.flatnonzero(block.raw[seps] == 10)
    newlines = seps[where]
    per_line = np.diff(where, prepend=-1)  # separators (fields) per line
    fast = per_line == ncols
    if quotes:
        body = block.raw[block.start:block.stop]
        fast[np.searchsorted(newlines, np.flatnonzero(body == 34) + block.start)] = False
    fields = seps[np.repeat(fast, per_line)].reshape(-1, ncols).T.copy()
    return fast, fields, newlines


# ---------------------------------------------------------------------------------------
# the fast path: whole columns at once
# ---------------------------------------------------------------------------------------

#: Parsed rows between the steps: field name -> array, all of one length.
_Rows = dict[str, np.ndarray]
_NO_OFFSET = np.iinfo(np.int64).min  # "offset" of a row whose text gave no UTC offset


def _parse_fast(block: _Block, lines: _Lines, plan: _Plan,
                scratch: _Scratch) -> tuple[_Rows, np.ndarray]:
    """Parse the fast lines; returns the rows and a mask of those parsed exactly."""
    data = _Words(block.raw)
    numbers = np.flatnonzero(lines.fast) + block.first_line
    f = lines.fields
    line_starts = lines.starts[lines.fast]

    def starts(col: int) -> np.ndarray:
        return line_starts if col == 0 else f[col - 1] + 1

    event, ok = plan.timestamps.parse_fast(data, starts(plan.ts_col), f[plan.ts_col])
    rows: _Rows = {"line": numbers, "event_ns": event}
    for key, col in plan.value_cols:
        rows[key], good = _parse_floats(data, starts(col), f[col], scratch)
        ok &= good
    if "volume" not in rows:
        rows["volume"] = np.zeros(len(numbers))
    return rows, ok


class _Words:
    """A block's bytes read as little-endian uint64 words at any offset.

    Gathering an unaligned 8-byte element from numpy costs ~7 ns, and a 16-, 24- or 32-byte
    ("V16".."V32") element costs the same: so all the words a field needs are fetched in
    one gather.
    """

    def __init__(self, raw: np.ndarray) -> None:
        self.raw = raw
        self._views: dict[int, np.ndarray] = {}

    def at(self, offsets: np.ndarray, count: int) -> np.ndarray:
        """(len(offsets), count) uint64: the 8*count bytes from each offset."""
        view = self._views.get(count)
        if view is None:
            size = 8 * count
            view = np.ndarray((len(self.raw) - size + 1,), f"V{size}", self.raw, 0, (1,))
            self._views[count] = view
        return view[offsets].view("<u8").reshape(-1, count)


# SWAR constants: a byte value repeated in all eight bytes of a uint64.
_U64 = np.uint64


def _bytewise(byte: int) -> np.uint64:
    return _U64(int.from_bytes(bytes([byte]) * 8, "little"))


_ZEROS = _bytewise(ord("0"))
_DOT = _bytewise(ord(".") ^ ord("0"))  # a '.' once the '0' is xor-ed away
_LOW7 = _bytewise(0x7F)
_HIGH = _bytewise(0x80)
_OVER9 = _bytewise(0x76)  # added to a byte, sets its bit 7 when the byte is above 9
_BYTE_INDEX = _U64(0x0706050403020100)
_PAIRS = _U64(0x00FF_00FF_00FF_00FF)
_QUADS = _U64(0x0000_FFFF_0000_FFFF)
_ALL = _U64(2**64 - 1)
_POW10 = 10.0 ** np.arange(23)  # exact doubles
#: _KEEP_LAST[n]: keeps the last n bytes (the highest, little-endian) of a word
_KEEP_LAST = np.array([0] + [(2**64 - 1) << (8 * (8 - n)) & (2**64 - 1) for n in range(1, 9)],
                      np.uint64)


def _keep_last(count: np.ndarray) -> np.ndarray:
    """Masks keeping the last ``count`` bytes (clipped to 0..8) of each word."""
    return _KEEP_LAST[np.minimum(np.maximum(count, 0), 8)]


def _zero_bytes(v: np.ndarray) -> np.ndarray:
    """1 in the lowest bit of exactly the bytes of ``v`` that are 0."""
    x = v & _LOW7
    x += _LOW7
    x |= v
    x |= _LOW7
    np.invert(x, out=x)
    x >>= _U64(7)
    return x


def _non_digits(v: np.ndarray, scratch: _Scratch | None = None,
                name: str = "errors") -> np.ndarray:
    """Non-zero where a byte of ``v`` is above 9 (was not an ASCII digit before ^ '0')."""
    x = np.add(v, _OVER9, out=None if scratch is None else scratch.get(name, len(v)))
    x |= v
    x &= _HIGH
    return x


def _eight_digits(v: np.ndarray) -> np.ndarray:
    """The number written by 8 digit bytes (values 0..9, most significant in byte 0),
    computed in place with three multiply-shift steps."""
    v *= _U64(10 * 256 + 1)
    v >>= _U64(8)
    v &= _PAIRS
    v *= _U64(100 * 65536 + 1)
    v >>= _U64(16)
    v &= _QUADS
    v *= _U64(10000 * 2**32 + 1)
    v >>= _U64(32)
    return v


def _parse_floats(data: _Words, starts: np.ndarray, ends: np.ndarray,
                  scratch: _Scratch) -> tuple[np.ndarray, np.ndarray]:
    """Parse plain decimals (``\\d*\\.?\\d*``, up to 16 bytes) exactly as float() would.

    The field's last 16 bytes become two words of digit values; the dot is dropped by
    moving the digits left of it one byte to the right, which leaves the mantissa's digits
    in order. Exactness: with a dot, 16 bytes hold at most 15 digits, an integer below
    2**53 that converts exactly and is divided once by an exact 10**scale (one correct
    rounding, as float() does); without one, a 16-digit integer converts with a single
    correct rounding. Usually every row has the first row's number of decimals, checked
    with one byte per row; rows that differ take the general path. Returns (values, ok);
    ok False: the field is left to the slow path.
    """
    if not len(starts):
        return np.zeros(0), np.zeros(0, bool)
    digits = _Digits(data, starts, ends, scratch)
    scale = _first_scale(data.raw, starts[0], ends[0])
    if scale is not None and (scale > 7 or digits.shortest <= scale or not bool(
            (data.raw[ends - (scale + 1)] == ord(".")).all())):
        scale = -1  # not one fixed scale
    values, ok = digits.floats(scale)
    if not bool(ok.all()):
        redo = np.flatnonzero(~ok)
        values[redo], ok[redo] = _Digits(data, starts[redo], ends[redo], scratch).floats(-1)
    return values, ok


def _first_scale(raw: np.ndarray, start: int, end: int) -> int | None:
    """Digits after the dot of one field (None: no dot)."""
    dot = raw[start:end].tobytes().rfind(b".")
    return None if dot < 0 else int(end - start - 1 - dot)


class _Digits:
    """A column of fields as two words of digit values (bytes ^ '0'), ready to convert."""

    def __init__(self, data: _Words, starts: np.ndarray, ends: np.ndarray,
                 scratch: _Scratch) -> None:
        n = len(starts)
        self.scratch = scratch
        self.lengths = np.subtract(ends, starts, out=scratch.get("lengths", n, np.int64))
        self.longest = int(self.lengths.max())
        self.shortest = int(self.lengths.min())
        two = self.longest > 8
        words = data.at(ends - (16 if two else 8), 2 if two else 1)
        self.lo = np.bitwise_xor(words[:, -1], _ZEROS, out=scratch.get("lo", n))
        # bytes before the field are masked off: a mask keeping the last L bytes of the
        # 16 is all-ones shifted left by 8 * (16 - L) bits (numpy makes a shift >= 64
        # give 0); the low word keeps everything unless L < 8
        shift = np.subtract(16, self.lengths, out=scratch.get("shift", n, np.int64))
        shift <<= 3
        bits = shift.view(np.uint64)
        if self.shortest < 8:
            low = np.subtract(shift, 64, out=scratch.get("lo_shift", n, np.int64))
            np.maximum(low, 0, out=low)
            self.lo &= np.left_shift(_ALL, low.view(np.uint64), out=scratch.get("lo_keep", n))
        self.hi: np.ndarray | None = None
        if two:
            self.hi = np.bitwise_xor(words[:, 0], _ZEROS, out=scratch.get("hi", n))
            self.hi &= np.left_shift(_ALL, bits, out=scratch.get("hi_keep", n))

    def floats(self, scale: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Values and ok: ``scale`` decimals in every row, None: integers, -1: any."""
        if scale == -1:
            scales, dotted = self._drop_any_dot()
        elif scale is not None:
            self._drop_dot_at(scale)
        mantissa, ok = self._mantissa()
        if scale == -1:
            ok &= self.lengths > dotted
        elif self.shortest == 0:
            ok &= self.lengths > 0
        values = mantissa.astype(np.float64)
        if scale == -1:
            values /= _POW10[scales]
        elif scale:
            values /= _POW10[scale]
        return values, ok

    def _drop_dot_at(self, scale: int) -> None:
        """Remove the dot known to be ``scale`` bytes from the end of every field."""
        lo, hi = self.lo, self.hi
        left = self.scratch.get("left", len(lo))
        np.bitwise_and(lo, _U64((1 << (8 * (7 - scale))) - 1), out=left)
        left <<= _U64(8)
        lo &= _KEEP_LAST[scale]
        lo |= left
        if hi is not None:
            lo |= hi >> _U64(56)
            hi <<= _U64(8)

    def _drop_any_dot(self) -> tuple[np.ndarray, np.ndarray]:
        """Remove the first dot wherever it is; returns (digits after it, dotted)."""
        lo, hi, n = self.lo, self.hi, len(self.lo)
        dot = _zero_bytes(np.bitwise_xor(lo, _DOT, out=self.scratch.get("dot", n)))
        dot &= _U64(0) - dot  # the first dot only: any other fails the digit check
        dotted = dot != 0
        left = dot - dotted  # bytes left of the dot (0 if none)
        keep = ~(left | (dot * _U64(0xFF)))  # right of the dot
        left &= lo
        left <<= _U64(8)
        lo &= keep
        lo |= left
        if hi is not None:
            lo |= (hi >> _U64(56)) * dotted  # its last byte moves into the low word
            hi <<= _U64(8) * dotted
        dot *= _BYTE_INDEX
        dot >>= _U64(56)
        return dot.view(np.int64), dotted

    def _mantissa(self) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.lo, self.hi
        errors = _non_digits(lo, self.scratch)
        if hi is not None:
            errors |= _non_digits(hi, self.scratch, "errors_hi")
        mantissa = _eight_digits(lo)
        if hi is not None:
            if self.longest <= 10:  # at most 2 digits in the high word: its last bytes
                hi >>= _U64(48)
                top = hi >> _U64(8)
                hi &= _U64(0xFF)
                hi *= _U64(10)
                hi += top
            else:
                hi = _eight_digits(hi)
            hi *= _U64(10**8)
            mantissa += hi
        ok = errors == 0
        if self.longest > 16:  # the leading digits were not loaded
            ok &= self.lengths <= 16
        return mantissa, ok


def _parse_integers(data: _Words, starts: np.ndarray, ends: np.ndarray,
                    max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Parse unsigned integers of up to ``max_len`` (<= 19) digits; (uint64 values, ok)."""
    lengths = ends - starts
    if not len(lengths):
        return np.zeros(0, np.uint64), np.zeros(0, bool)
    count = max(1, (min(int(lengths.max()), max_len) + 7) // 8)
    words = data.at(ends - 8 * count, count)
    total = np.zeros(len(lengths), np.uint64)
    errors = np.zeros(len(lengths), np.uint64)
    for j in range(count):
        v = words[:, -1 - j] ^ _ZEROS
        v &= _keep_last(lengths - 8 * j)
        errors |= _non_digits(v)
        total += _eight_digits(v) * _U64(10 ** (8 * j))
    ok = (errors == 0) & (lengths > 0) & (lengths <= max_len)
    return total, ok


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


class _Timestamps:
    """How a format's timestamp column is read: a fast vectorised path and the exact one."""

    absolute = False  # True: values are UTC instants (epoch numbers), no zone applies

    def parse_fast(self, data: _Words, starts: np.ndarray,
                   ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(event ns as written, ok) for a column; ok False sends a row to parse_text."""
        raise NotImplementedError

    def parse_text(self, text: str) -> tuple[int, int | None]:
        """(event ns as written, UTC offset in seconds or None); ValueError says why not."""
        raise NotImplementedError


_Part = tuple[str, int] | bytes  # (component, digits) or the byte(s) allowed at one place


class _Layout:
    """A fixed-width timestamp shape, e.g. ``YYYY-MM-DD HH:MM:SS``, parsed with SWAR.

    The field is loaded as the words at offsets 0, 8, 16 ... from its start and xor-ed
    with the expected text ('0' where a digit goes): a good field then has 0..9 in digit
    bytes and 0 in literal bytes, which one add-or-and per word checks. Each component's
    digits are then cut out of the word(s) holding them.
    """

    def __init__(self, parts: list[_Part]) -> None:
        self.width = sum(p[1] if isinstance(p, tuple) else 1 for p in parts)
        self.count = (self.width + 7) // 8
        self.expected = [0] * self.count  # per word: '0' for digits, the literal bytes
        self.limit = [0] * self.count  # added to a byte: bit 7 set if it is too large
        self.checked = [0] * self.count  # bit 7 of the bytes that belong to the layout
        self.choices: list[tuple[int, int, bytes]] = []  # (word, byte, allowed) for [ T]
        self.chunks: list[tuple[int, int, int, int, int]] = []  # (comp, word, byte, n, mul)
        self.base = list(_DEFAULTS)
        pos = 0
        for part in parts:
            if isinstance(part, bytes):
                self._literal(pos, part)
                pos += 1
            else:
                self._component(pos, *part)
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

    def parse(self, data: _Words, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        words = data.at(starts, self.count)
        errors = np.zeros(len(starts), np.uint64)
        values: list[np.ndarray] = []
        for j in range(self.count):
            v = words[:, j] ^ _U64(self.expected[j])
            if self.checked[j] != 0x8080_8080_8080_8080:  # a [ T] byte, bytes past the end
                v &= _U64((self.checked[j] >> 7) * 0xFF)
            x = v + _U64(self.limit[j])
            x |= v
            errors |= x
            values.append(v)
        errors &= _HIGH
        ok = errors == 0
        for word, byte, allowed in self.choices:
            b = (words[:, word] >> _U64(8 * byte)) & _U64(0xFF)
            hit = b == allowed[0]
            for other in allowed[1:]:
                hit |= b == other
            ok &= hit
        ns, valid = _civil_to_ns(*self._components(values))
        ok &= valid
        return ns, ok

    def _components(self, values: list[np.ndarray]) -> list[np.ndarray | int]:
        comp: list[np.ndarray | int] = list(self.base)
        pairs: dict[int, np.ndarray] = {}
        for k, word, byte, n_digits, mul in self.chunks:
            v = values[word]
            if n_digits <= 2 or n_digits == 4:
                if word not in pairs:  # byte i: 10 * digit i + digit i+1
                    pairs[word] = v * _U64(10) + (v >> _U64(8))
                chunk = _pair_digits(v, pairs[word], byte, n_digits)
            else:
                chunk = _eight_digits((v & _U64(((1 << (8 * n_digits)) - 1) << (8 * byte)))
                                      << _U64(8 * (8 - byte - n_digits)))
            part = chunk.view(np.int64) * mul if mul != 1 else chunk.view(np.int64)
            comp[k] = part if isinstance(comp[k], int) and comp[k] == 0 else comp[k] + part
        return comp


def _pair_digits(v: np.ndarray, pairs: np.ndarray, byte: int, n: int) -> np.ndarray:
    """The 1, 2 or 4 digits at ``byte`` of a digit word (``pairs``: its 2-digit values)."""
    if n == 1:
        return (v >> _U64(8 * byte)) & _U64(0xFF)
    high = (pairs >> _U64(8 * byte)) & _U64(0xFF)
    if n == 2:
        return high
    return high * _U64(100) + ((pairs >> _U64(8 * byte + 16)) & _U64(0xFF))


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


class _LayoutTimestamps(_Timestamps):
    """Timestamps whose common shapes have a fixed layout (ISO 8601, strptime patterns)."""

    def __init__(self, layouts: list[_Layout], parse_text: Callable[[str],
                                                                     tuple[int, int | None]]):
        self.layouts = {layout.width: layout for layout in layouts}
        self._parse_text = parse_text

    def parse_fast(self, data: _Words, starts: np.ndarray,
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


def _iso_timestamps() -> _LayoutTimestamps:
    date: list[tuple[str, int] | bytes] = [("year", 4), b"-", ("month", 2), b"-", ("day", 2)]
    minutes = [*date, b" T", ("hour", 2), b":", ("minute", 2)]
    seconds = [*minutes, b":", ("second", 2)]
    layouts = [_Layout(date), _Layout(minutes), _Layout(seconds)]
    layouts += [_Layout([*seconds, b".", ("nanosecond", k)]) for k in range(1, 10)]
    return _LayoutTimestamps(layouts, _iso_parse_text)


_PATTERN_PARTS = {"Y": ("year", 4), "m": ("month", 2), "d": ("day", 2), "H": ("hour", 2),
                  "M": ("minute", 2), "S": ("second", 2)}


def _pattern_layout(pattern: str) -> _Layout | None:
    """The fixed layout of a strptime pattern, if it only has fixed-width numeric fields."""
    parts: list[tuple[str, int] | bytes] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "%":
            directive = next(chars, "")
            if directive == "%":
                parts.append(b"%")
            elif directive in _PATTERN_PARTS and _PATTERN_PARTS[directive] not in parts:
                parts.append(_PATTERN_PARTS[directive])
            else:
                return None
        elif ch.isascii() and not ch.isspace():
            parts.append(ch.encode())
        else:
            return None  # strptime matches whitespace loosely: leave it to strptime
    layout = _Layout(parts)
    return layout if layout.width <= _BACK else None


def _pattern_timestamps(pattern: str) -> _LayoutTimestamps:
    def parse_text(text: str) -> tuple[int, int | None]:
        moment = datetime.strptime(text, pattern)
        ns = _naive_ns(moment.year, moment.month, moment.day, moment.hour, moment.minute,
                       moment.second, moment.microsecond * 1000)
        offset = moment.utcoffset()
        return ns, None if offset is None else int(offset.total_seconds())

    layout = _pattern_layout(pattern)
    return _LayoutTimestamps([layout] if layout else [], parse_text)


class _UnixTimestamps(_Timestamps):
    """Epoch numbers in a unit (s, ms, us, ns); a fraction down to 1 ns is allowed."""

    absolute = True
    _RE = re.compile(r"([+-]?)(\d+)(?:\.(\d*))?", re.ASCII)
    _MAX = 2**63 - 1

    def __init__(self, exponent: int) -> None:
        self.exponent = exponent

    def parse_fast(self, data: _Words, starts: np.ndarray,
                   ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        digits, ok = _parse_integers(data, starts, ends, 19)
        ok &= digits <= _U64(self._MAX // 10**self.exponent)
        return (digits * _U64(10**self.exponent)).view(np.int64), ok

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
def _timestamp_parser(spec: str) -> _Timestamps:
    if spec == "iso":
        return _iso_timestamps()
    if spec in TIMESTAMP_UNITS:
        return _UnixTimestamps(TIMESTAMP_UNITS[spec])
    return _pattern_timestamps(spec)


class _ZoneConverter:
    """Local wall-clock ns -> UTC ns for a whole column, as zoneinfo does it (fold=0).

    zoneinfo gives no list of transitions, so the UTC offset is probed once a day over the
    column's span and each change is located to the second by bisection (no zone changes
    its offset twice within a day). A wall time in a gap or a repeated hour gets the offset
    in force before the transition, as ``datetime(..., tzinfo=zone)`` does.
    """

    _STEP = 86_400

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone

    def offset_at(self, utc_s: int) -> int:
        delta = datetime.fromtimestamp(utc_s, self.zone).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    def to_utc(self, wall_ns: np.ndarray) -> np.ndarray:
        if not len(wall_ns):
            return wall_ns
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


def _to_utc(rows: _Rows, zone: _ZoneConverter | None) -> None:
    """Event times as written -> UTC: subtract a written offset, else apply the zone."""
    offset = rows.pop("offset", None)  # only rows from the slow path can carry one
    event = rows["event_ns"]
    wall = np.ones(len(event), bool) if offset is None else offset == _NO_OFFSET
    if offset is not None and not bool(wall.all()):
        event[~wall] -= offset[~wall]
    if zone is None or not bool(wall.any()):
        return
    if bool(wall.all()):
        rows["event_ns"] = zone.to_utc(event)
    else:
        event[wall] = zone.to_utc(event[wall])


# ---------------------------------------------------------------------------------------
# the slow path: one row at a time, exactly
# ---------------------------------------------------------------------------------------


class _RowError(Exception):
    def __init__(self, reason: str, text: str) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text


_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def _present(text: str, name: str) -> str:
    """The field's text without surrounding spaces; _RowError if empty or null."""
    value = text.strip()
    if not value:
        raise _RowError("empty_field", f"{name} is empty")
    if value.casefold() in NULL_TOKENS:
        raise _RowError("null_value", f"{name} is {value!r}")
    return value


def _number(text: str, name: str) -> float:
    value = _present(text, name)
    if not _NUMBER_RE.fullmatch(value):
        raise _RowError("bad_number", f"{name} {value!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise _RowError("bad_number", f"{name} {value!r} is too large")
    return number


def _parse_line(text: str, plan: _Plan) -> tuple[Any, ...]:
    """One row -> (event ns as written, offset or _NO_OFFSET, open, ..., volume)."""
    fields = _split(text, plan.delimiter)
    if len(fields) != plan.ncols:
        raise _RowError("wrong_field_count", f"{len(fields)} fields, expected {plan.ncols}")
    stamp = _present(fields[plan.ts_col], "timestamp")
    try:
        event, offset = plan.timestamps.parse_text(stamp)
    except ValueError as exc:
        raise _RowError("bad_timestamp", f"timestamp {stamp!r}: {exc}") from None
    values = {key: _number(fields[col], key) for key, col in plan.value_cols}
    return (event, _NO_OFFSET if offset is None else offset * 10**9,
            *(values.get(k, 0.0) for k in FIELDS[1:]))


def _parse_slow(block: _Block, lines: _Lines, todo: np.ndarray, plan: _Plan,
                log: _RejectLog) -> tuple[list[tuple[Any, ...]], int]:
    """Parse lines ``todo`` one by one: the good rows (line first), and how many of the
    lines were data rows (not blank)."""
    parsed: list[tuple[Any, ...]] = []
    seen = 0
    for i in todo.tolist():
        text = bytes(block.buf[lines.starts[i]:lines.ends[i]]).decode("utf-8")
        if not text.strip():
            continue  # a blank line is not a row
        seen += 1
        line = block.first_line + i
        try:
            parsed.append((line, *_parse_line(text, plan)))
        except _RowError as exc:
            log.add("parse", line, exc.reason, exc.text)
    return parsed, seen


def _merge(rows: _Rows, ok: np.ndarray, slow: list[tuple[Any, ...]]) -> _Rows:
    """The fast rows parsed exactly plus the slow path's rows, in line order."""
    if not bool(ok.all()):
        rows = {k: v[ok] for k, v in rows.items()}
    if not slow:
        return rows
    rows["offset"] = np.full(len(rows["line"]), _NO_OFFSET, np.int64)
    keys = ("line", "event_ns", "offset", *FIELDS[1:])
    columns = list(zip(*slow, strict=True))
    extra = {k: np.array(c, np.float64 if k in FIELDS else np.int64)
             for k, c in zip(keys, columns, strict=True)}
    merged = {k: np.concatenate([rows[k], extra[k]]) for k in keys}
    order = np.argsort(merged["line"], kind="stable")
    return {k: v[order] for k, v in merged.items()}


# ---------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------

_CODE = {reason: i + 1 for i, reason in enumerate(REJECT_REASONS)}


def _check_values(rows: _Rows) -> np.ndarray:
    """Reject code per row (0: fine); the earliest failing check in REJECT_REASONS wins."""
    o, h, lo, c, v = (rows[k] for k in FIELDS[1:])
    codes = np.zeros(len(o), np.uint8)
    codes[(o < lo) | (o > h) | (c < lo) | (c > h)] = _CODE["price_outside_range"]
    codes[h < lo] = _CODE["high_below_low"]
    codes[v < 0] = _CODE["negative_volume"]
    codes[(o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0)] = _CODE["non_positive_price"]
    return codes


def _describe_values(rows: _Rows, i: int, reason: str) -> str:
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


class _OrderCheck:
    """Event times must run one way across the whole file (carried from block to block).

    Most sources write the oldest row first; some (Alpha Vantage, Investing.com exports)
    the newest first. The first two different times decide which (by majority over the
    first block, so one stray row cannot turn a file around); a newest-first file is checked
    against its own order and its bars reversed once loaded. Times are compared as
    ``sign * event_ns``, which runs upwards either way.
    """

    def __init__(self, out: _Output) -> None:
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

    def describe(self, rows: _Rows, i: int, reason: str) -> str:
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


def _drop(rows: _Rows, codes: np.ndarray, log: _RejectLog, phase: str,
          describe: Callable[[_Rows, int, str], str]) -> _Rows:
    """Log the rows with a non-zero code and return the others."""
    bad = np.flatnonzero(codes)
    if not len(bad):
        return rows
    log.add_many(phase, rows, bad, codes, describe)
    keep = codes == 0
    return {k: v[keep] for k, v in rows.items()}


def _size_hint(f: BinaryIO, first: _Block | None) -> int:
    """Expected bar count: the file's size over the first block's bytes per line."""
    size = _file_size(f)
    if first is None or not size:
        return 1024
    sample = min(first.stop, first.start + 65536)
    lines = max(1, first.buf.count(b"\n", first.start, sample))
    return int(size / ((sample - first.start) / lines) * 1.05) + 1024


class _Output:
    """The file's bars, written block by block into one array that grows when needed.

    Saves the copy (and the second large allocation) a final concatenation would cost.
    """

    def __init__(self, capacity: int) -> None:
        self._bars = np.empty(capacity, BAR_DTYPE)
        self.size = 0

    def append(self, rows: _Rows) -> None:
        n = len(rows["event_ns"])
        if self.size + n > len(self._bars):
            grown = np.empty(max(2 * len(self._bars), self.size + n), BAR_DTYPE)
            grown[:self.size] = self._bars[:self.size]
            self._bars = grown
        dest = self._bars[self.size:self.size + n]
        for name in BAR_DTYPE.names or ():
            dest[name] = rows[name]
        self.size += n

    def event_times(self) -> np.ndarray:
        return self._bars["event_ns"][:self.size]

    def bars(self) -> np.ndarray:
        bars, self._bars = self._bars, np.empty(0, BAR_DTYPE)
        bars.resize(self.size, refcheck=False)  # gives the unused tail back, no copy
        return bars


class _RejectLog:
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

    def add_many(self, phase: str, table: _Rows, bad: np.ndarray, codes: np.ndarray,
                 describe: Callable[[_Rows, int, str], str]) -> None:
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
