"""What a load is about: the bar dtype, reject reasons, CSV formats and results.

The public vocabulary of the loader (re-exported by the package); no parsing here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from tradingd.errors import ConfigError

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
        zone_info(self.timezone)

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


def zone_info(name: str) -> ZoneInfo:
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


#: Parsed rows between the steps: field name -> array, all of one length.
Rows = dict[str, np.ndarray]
NO_OFFSET = np.iinfo(np.int64).min  # "offset" of a row whose text gave no UTC offset
