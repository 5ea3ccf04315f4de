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
from tradingd.producer.loader.timestamps import Timestamps, ZoneConverter, timestamp_parser

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


def make_plan(path: str, fmt: CsvFormat, f: io.BufferedIOBase,
          blocks: Iterator[Block]) -> tuple[Plan, Block | None]:
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
    timestamps = timestamp_parser(fmt.timestamp_format)
    zone = None if timestamps.absolute or fmt.timezone == "UTC" else ZoneConverter(
        zone_info(fmt.timezone))
    values = tuple((k, columns[k]) for k in FIELDS[1:] if k in columns)
    return Plan(path, fmt.delimiter, ncols, columns["timestamp"], values, timestamps,
                 zone), first


def split_fields(text: str, delimiter: str) -> list[str]:
    if '"' in text:
        return next(csv.reader([text], delimiter=delimiter), [])
    return text.split(delimiter)


def _columns_from_header(path: str, fmt: CsvFormat, header: str) -> tuple[dict[str, int],
                                                                          int]:
    if "\r" in header:
        raise DataError(f"{path}:1: the header contains a CR: lines end in CR only?")
    names = [n.strip().strip('"').strip().casefold() for n in split_fields(header, fmt.delimiter)]
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


def _usual_field_count(f: io.BufferedIOBase, block: Block, delimiter: str) -> int:
    """Fields per row of a headerless file: the most common count in its first rows."""
    try:  # the first 64 KiB, whatever the block size
        head = os.pread(f.fileno(), 65536, 0).removeprefix(UTF8_BOM)
    except (OSError, ValueError):  # not a regular file: the first block will do
        head = bytes(block.buf[block.start:block.stop])
    lines = head.decode("utf-8", "replace").split("\n")[:1000]
    counts = [len(split_fields(line.rstrip("\r"), delimiter)) for line in lines[:-1] or lines
              if line.strip()]
    return max(sorted(set(counts)), key=counts.count) if counts else 1
