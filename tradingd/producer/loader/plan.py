"""The plan: a format resolved against the file's header (or its first rows)."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from tradingd.errors import DataError
from tradingd.producer.loader.blocks import UTF8_BOM, Block
from tradingd.producer.loader.spec import FIELDS, CsvFormat, zone_info
from tradingd.producer.loader.timestamps import (
    Timestamps,
    ZoneConverter,
    time_parser,
    timestamp_parser,
)

# ---------------------------------------------------------------------------------------
# the plan: the format resolved against the file's header
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    path: str
    delimiter: str
    ncols: int  # fields per row
    ts_col: int
    value_cols: tuple[tuple[str, int], ...]  # (field, column) for open..volume present
    timestamps: Timestamps
    zone: ZoneConverter | None  # None: event times are already UTC
    time_col: int | None = None  # the time of day's own column (ts_col: the date)
    times: Timestamps | None = None  # its parser (ns since midnight)
    numbers: NumberStyle | None = None  # None: plain decimals


@dataclass(frozen=True)
class NumberStyle:
    """How a format writes numbers, when not plainly (``46,629.3``, ``1,5``, ``2.1M``)."""

    thousands: str | None
    decimal: str
    volume_suffixes: bool


def make_plan(path: str, fmt: CsvFormat, f: io.BufferedIOBase,
              blocks: Iterator[Block]) -> tuple[Plan, Block | None]:
    """Resolve the format against the header (or the first rows); returns the first block
    to parse (None if the file holds only a header)."""
    block = _skip_lines(path, fmt.skip_rows, next(blocks), blocks)
    text_end = block.buf.find(b"\n", block.start, block.stop)
    where = f"{path}:{block.first_line}"
    try:
        first_line = bytes(block.buf[block.start:text_end]).decode("utf-8").rstrip("\r")
    except UnicodeDecodeError:
        raise DataError(f"{where}: not UTF-8 text; convert the file to UTF-8") from None
    if fmt.header and not first_line.strip():
        raise DataError(f"{where}: the {'first ' if block.first_line == 1 else ''}line is "
                        f"empty; expected a header naming the "
                        f"columns {', '.join(repr(c) for c in fmt.columns.values())}"
                        + _banner_hint(f, fmt, block.first_line))
    if fmt.header:
        columns, ncols = _columns_from_header(path, fmt, first_line, block.first_line, f)
        rest = block._replace(start=text_end + 1, first_line=block.first_line + 1)
        first = rest if rest.start < rest.stop else None
    else:
        ncols = _usual_field_count(f, block, fmt.delimiter, fmt.skip_rows)
        columns = {k: int(v) for k, v in fmt.columns.items()}
        _check_indices(where, columns, ncols, "the rows have")
        first = block
    timestamps = timestamp_parser(fmt.timestamp_format)
    zone = zone_info(fmt.timezone)
    converter = None if timestamps.absolute or zone.is_utc else ZoneConverter(
        zone.info if zone.info is not None else int(zone.offset_s or 0))
    values = tuple((k, columns[k]) for k in FIELDS[1:] if k in columns)
    time_col = columns.get("time")
    numbers = None if fmt.plain_numbers else NumberStyle(fmt.thousands, fmt.decimal,
                                                         fmt.volume_suffixes)
    return Plan(path, fmt.delimiter, ncols, columns["timestamp"], values, timestamps,
                converter, time_col, None if time_col is None else time_parser(
                    fmt.time_format), numbers), first


def _skip_lines(path: str, count: int, block: Block, blocks: Iterator[Block]) -> Block:
    """The block from the line after the first ``count`` lines (a banner) on."""
    while count:
        newlines = block.buf.count(b"\n", block.start, block.stop)
        if newlines > count:
            cut = block.start
            for _ in range(count):
                cut = block.buf.find(b"\n", cut, block.stop) + 1
            return block._replace(start=cut, first_line=block.first_line + count)
        count -= newlines
        line = block.first_line + newlines
        nxt = next(blocks, None)
        if nxt is None or (count == 0 and nxt.start >= nxt.stop):
            raise DataError(f"{path}: skip_rows reaches past the last line ({line - 1} "
                            "lines): no header or data left")
        block = nxt._replace(first_line=line)
    return block


def _head_lines(f: io.BufferedIOBase, limit: int = 64) -> list[str]:
    """The file's first lines (from its first 64 KiB), for hints and field counts."""
    try:
        head = os.pread(f.fileno(), 65536, 0).removeprefix(UTF8_BOM)
    except (OSError, ValueError):
        return []
    return [line.rstrip("\r") for line in head.decode("utf-8", "replace").split("\n")[:limit]]


def _banner_hint(f: io.BufferedIOBase, fmt: CsvFormat, header_line: int) -> str:
    """A hint when the header is on another line (a vendor's banner above it)."""
    wanted = [w.strip().casefold() for w in fmt.columns.values() if isinstance(w, str)]
    for number, line in enumerate(_head_lines(f), 1):
        names = [n.strip().strip('"').strip().casefold()
                 for n in split_fields(line, fmt.delimiter)]
        if number != header_line and wanted and all(w in names for w in wanted):
            return (f"; line {number} looks like the header, with {number - 1} line"
                    f"{'s' if number != 2 else ''} above it (a banner?): set "
                    f"skip_rows: {number - 1} in the format")
    return ""


def split_fields(text: str, delimiter: str) -> list[str]:
    if '"' in text:
        return next(csv.reader([text], delimiter=delimiter), [])
    return text.split(delimiter)


def _columns_from_header(path: str, fmt: CsvFormat, header: str, line: int,
                         f: io.BufferedIOBase) -> tuple[dict[str, int], int]:
    where = f"{path}:{line}"
    if "\r" in header:
        raise DataError(f"{where}: the header contains a CR: lines end in CR only?")
    names = [n.strip().strip('"').strip().casefold()
             for n in split_fields(header, fmt.delimiter)]
    found: dict[str, int] = {}
    for key, col in fmt.columns.items():
        if isinstance(col, int):
            found[key] = col
            continue
        hits = [i for i, n in enumerate(names) if n == col.strip().casefold()]
        if len(hits) != 1:
            problem = "no column" if not hits else f"{len(hits)} columns"
            wanted = ", ".join(repr(w) for w in fmt.columns.values())
            raise DataError(f"{where}: header does not match the format: {problem} named "
                            f"{col!r} for {key} (header: {header!r}; the format expects "
                            f"columns {wanted} separated by {fmt.delimiter!r})"
                            + _banner_hint(f, fmt, line))
        found[key] = hits[0]
    _check_indices(where, found, len(names), "the header has")
    return found, len(names)


def _check_indices(where: str, columns: Mapping[str, int], ncols: int, what: str) -> None:
    for key, index in columns.items():
        if index >= ncols:
            raise DataError(f"{where}: the format reads {key} from column index {index} but "
                            f"{what} {ncols} field{'s' if ncols != 1 else ''}")


def _usual_field_count(f: io.BufferedIOBase, block: Block, delimiter: str,
                       skip: int) -> int:
    """Fields per row of a headerless file: the most common count in its first rows."""
    lines = _head_lines(f, 1000 + skip)
    if not lines:  # not a regular file: the first block will do
        text = bytes(block.buf[block.start:block.stop]).decode("utf-8", "replace")
        lines = [line.rstrip("\r") for line in text.split("\n")]
        skip = 0
    rows = lines[skip:]
    counts = [len(split_fields(line, delimiter)) for line in rows[:-1] or rows
              if line.strip()]
    return max(sorted(set(counts)), key=counts.count) if counts else 1
