"""What a load is about: the bar dtype, reject reasons, CSV formats and results.

The public vocabulary of the loader (re-exported by the package); no parsing here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

import numpy as np

from tradingd.errors import ConfigError
from tradingd.timezones import Zone, parse_zone

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
#: Column keys of a format: the fields, and ``time`` when the time of day has a column of
#: its own (``timestamp`` then names the date column).
COLUMN_KEYS = (*FIELDS, "time")

#: Thousands separators a format may declare (``thousands``), and decimal marks.
THOUSANDS_SEPARATORS = (",", ".", " ", "'", "_")
DECIMAL_MARKS = (".", ",")
#: Volume suffixes (``volume_suffixes: true``, case-insensitive) -> power of ten.
VOLUME_SUFFIXES: Mapping[str, int] = MappingProxyType({"k": 3, "m": 6, "b": 9})

#: Bumped whenever the loader's results for the same file and format may change; part of
#: the load cache's key (a cache written by another loader version is never used).
LOADER_VERSION = 3  # 3: a lone "." is bad_number on the fast path too (was read as 0.0)

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
    ``timezone`` (an IANA name or a fixed offset such as ``+05:30``, see
    :mod:`tradingd.timezones`) applies to timestamps that carry no offset; epoch numbers
    are UTC.

    With a ``time`` column, ``timestamp`` holds the date (read with ``timestamp_format``)
    and ``time`` the time of day (``time_format``: ``"iso"`` = ``HH:MM[:SS[.f]]``, or a
    strptime pattern of time directives). ``skip_rows`` lines (a vendor's banner) come
    before the header. ``thousands`` (None or one of THOUSANDS_SEPARATORS), ``decimal``
    and ``volume_suffixes`` (``131.48K``) describe how numbers are written.
    Invalid values raise ValueError naming the field.
    """

    delimiter: str = ","
    header: bool = True
    columns: Mapping[str, str | int] = field(default_factory=lambda: dict(_YAHOO_COLUMNS))
    timestamp_format: str = "iso"
    timezone: str = "UTC"
    skip_rows: int = 0
    time_format: str = "iso"
    thousands: str | None = None
    decimal: str = "."
    volume_suffixes: bool = False

    def __post_init__(self) -> None:
        if len(self.delimiter) != 1 or self.delimiter in _BAD_DELIMITERS:
            raise ValueError(f"delimiter {self.delimiter!r}: expected one character that "
                             "cannot occur in a number or a line end, such as , ; | or tab")
        object.__setattr__(self, "columns", MappingProxyType(_checked_columns(self)))
        _check_timestamp_format(self.timestamp_format)
        if "time" in self.columns:
            check_time_format(self.time_format)
        zone_info(self.timezone)
        if isinstance(self.skip_rows, bool) or not isinstance(self.skip_rows, int) or not (
                0 <= self.skip_rows <= 10_000):
            raise ValueError(f"skip_rows {self.skip_rows!r}: expected 0..10000 lines")
        if self.thousands is not None and self.thousands not in THOUSANDS_SEPARATORS:
            raise ValueError(f"thousands {self.thousands!r}: expected null or one of "
                             f"{' '.join(repr(s) for s in THOUSANDS_SEPARATORS)}")
        if self.decimal not in DECIMAL_MARKS:
            raise ValueError(f"decimal {self.decimal!r}: expected '.' or ','")
        if self.thousands == self.decimal:
            raise ValueError(f"thousands and decimal are both {self.decimal!r}")

    @property
    def plain_numbers(self) -> bool:
        """Numbers are plain decimals (no separators, no suffixes)."""
        return self.thousands is None and self.decimal == "." and not self.volume_suffixes

    def key(self) -> dict[str, Any]:
        """Every field as plain JSON values (the load cache's key; ``tradingd-data``)."""
        return {"delimiter": self.delimiter, "header": self.header,
                "columns": dict(self.columns), "timestamp_format": self.timestamp_format,
                "timezone": self.timezone, "skip_rows": self.skip_rows,
                "time_format": self.time_format, "thousands": self.thousands,
                "decimal": self.decimal, "volume_suffixes": self.volume_suffixes}

    def __hash__(self) -> int:
        return hash((self.delimiter, self.header, tuple(self.columns.items()),
                     self.timestamp_format, self.timezone, self.skip_rows,
                     self.time_format, self.thousands, self.decimal, self.volume_suffixes))


def _checked_columns(fmt: CsvFormat) -> dict[str, str | int]:
    """The column mapping without absent volume, or ValueError saying what is wrong."""
    columns = {k: v for k, v in dict(fmt.columns).items()
               if not (k in ("volume", "time") and v is None)}
    unknown = sorted(set(columns) - set(COLUMN_KEYS))
    missing = [k for k in FIELDS[:5] if k not in columns]
    if unknown or missing:
        raise ValueError(f"columns: unknown {unknown} / missing {missing}; expected keys "
                         f"{', '.join(COLUMN_KEYS)} (volume and time may be left out)")
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


def check_time_format(spec: str) -> None:
    """``iso`` or a strptime pattern of time-of-day directives only; else ValueError."""
    if spec == "iso":
        return
    sample = datetime(2001, 2, 3, 4, 5, 6, 7000)
    try:
        if "%" not in spec:
            raise ValueError("no % directive")
        back = datetime.strptime(sample.strftime(spec), spec)
    except ValueError as exc:
        raise ValueError(f"time_format {spec!r}: expected 'iso' (HH:MM[:SS[.f]]) or a "
                         f"strptime pattern such as '%H:%M:%S' or '%H%M%S' ({exc})") from None
    if back.date() != datetime(1900, 1, 1).date():
        raise ValueError(f"time_format {spec!r}: only time-of-day directives (%H %I %M %S "
                         "%f %p) belong here; the date comes from timestamp_format")


def zone_info(name: str) -> Zone:
    """The zone of a format's ``timezone``; ValueError naming the field and the fix."""
    try:
        return parse_zone(name)
    except ValueError as exc:
        raise ValueError(f"timezone {exc}") from None


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
        columns = {k: getattr(columns, k, None) for k in COLUMN_KEYS}
    extra = {name: getattr(spec, name) for name in ("skip_rows", "thousands", "decimal",
                                                     "volume_suffixes") if hasattr(spec, name)}
    if getattr(spec, "time_format", None):
        extra["time_format"] = spec.time_format
    try:
        return CsvFormat(delimiter=spec.delimiter, header=spec.header, columns=columns,
                         timestamp_format=spec.timestamp_format or "iso",
                         timezone=spec.timezone, **extra)
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
    from_cache: bool = False  # read from the load cache (tradingd.producer.cache), not parsed

    @property
    def rows_rejected(self) -> int:
        return sum(self.reject_counts.values())


#: Parsed rows between the steps: field name -> array, all of one length.
Rows = dict[str, np.ndarray]
NO_OFFSET = np.iinfo(np.int64).min  # "offset" of a row whose text gave no UTC offset
