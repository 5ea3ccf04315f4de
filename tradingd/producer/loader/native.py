"""The one-pass C parser (``_csvfast.c``) over a block, and its plan.

Why: the numpy fast path makes a dozen passes over each block and its temporaries; the C
parser tokenises each regular line and parses its timestamp and plain-decimal fields in
one pass, writing the bars straight into the output array (:meth:`Output.reserve`); also
formatted numbers (``46,629.3``, ``1.234,5``, ``131.48K``). Lines it cannot vouch for are
*flagged* and go to the exact per-row path, as the numpy fast path's rejects do; columns it
has no parser for (epoch numbers, month names, AM/PM) come back as field offsets for the
numpy parsers. The checks then run on views of
the bars in place, and an all-good block is kept without a copy.

The numpy path (tokens.py, fast.py) stays the reference and the fallback: when the module
is not built, when ``TRADINGD_PURE_PYTHON=1``, or for a plan that reads one column twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tradingd.producer.loader.blocks import Block
from tradingd.producer.loader.checks import (
    OrderCheck,
    Output,
    RejectLog,
    check_values,
    describe_values,
    drop_rows,
)
from tradingd.producer.loader.exact import merge_rows, parse_slow_lines
from tradingd.producer.loader.formatted import parse_formatted
from tradingd.producer.loader.plan import NumberStyle, Plan
from tradingd.producer.loader.spec import BAR_DTYPE, FIELDS, Rows
from tradingd.producer.loader.swar import Scratch, Words
from tradingd.producer.loader.timestamps import (
    _FIRST_YEAR,
    _MAX_DAY,
    _MIN_DAY,
    _MONTH_STARTS,
    Program,
    Timestamps,
    _LayoutTimestamps,
    to_utc,
)
from tradingd.segment.fastpath import optional_extension

if TYPE_CHECKING:
    from tradingd.producer.loader._csvfast import Parser


CSVFAST = optional_extension("tradingd.producer.loader._csvfast")

# column kinds of _csvfast.Parser
_SKIP, _FLOAT, _STAMP, _TIME, _OFFSETS, _FORMATTED, _FORMATTED_SUFFIX = range(7)
_NAMES = BAR_DTYPE.names or ()
#: byte offset of each bar field in a record
_AT = {name: int(BAR_DTYPE.fields[name][1]) for name in _NAMES} if BAR_DTYPE.fields else {}


@dataclass(frozen=True)
class NativePlan:
    """A plan compiled for the C parser, and what is left to numpy per block."""

    parser: Parser
    stamps: tuple[tuple[int, Timestamps], ...]  # (offsets slot, parser) added to event_ns
    values: tuple[tuple[str, int], ...]  # (bar field, offsets slot) of formatted numbers
    noffsets: int
    min_line: int  # a lower bound of a line's bytes (for the capacity of one call)
    style: NumberStyle | None  # how the formatted numbers are written


def _programs(timestamps: Timestamps) -> list[Program] | None:
    """The C programs of a fixed-layout timestamp parser; None if one has letters."""
    if not isinstance(timestamps, _LayoutTimestamps):
        return None
    programs = [layout.program() for layout in timestamps.layouts.values()]
    if any(p is None for p in programs):
        return None
    return [p for p in programs if p is not None]


def compile_plan(plan: Plan) -> NativePlan | None:
    """The plan for the C parser, or None (no C parser, or a column read twice)."""
    if CSVFAST is None:
        return None
    kinds = bytearray(plan.ncols)
    slots = np.zeros(plan.ncols, np.int32)
    used: set[int] = set()
    stamps: list[tuple[int, Timestamps]] = []
    values: list[tuple[str, int]] = []
    noffsets = 0

    def claim(col: int) -> bool:
        if col in used:
            return False
        used.add(col)
        return True

    layouts: list[list[Program]] = [[], []]
    columns = [(plan.ts_col, plan.timestamps, _STAMP)]
    if plan.time_col is not None and plan.times is not None:
        columns.append((plan.time_col, plan.times, _TIME))
    for col, parser, kind in columns:
        if not claim(col):
            return None
        programs = _programs(parser)
        if programs is None:
            kinds[col], slots[col] = _OFFSETS, noffsets
            stamps.append((noffsets, parser))
            noffsets += 1
        else:
            kinds[col] = kind
            layouts[kind - _STAMP] = programs
    for key, col in plan.value_cols:
        if not claim(col):
            return None
        style = plan.numbers
        if style is None:
            kinds[col], slots[col] = _FLOAT, _AT[key]
        elif _one_byte(style.thousands or "0") and _one_byte(style.decimal):
            suffix = style.volume_suffixes and key == "volume"
            kinds[col] = _FORMATTED_SUFFIX if suffix else _FORMATTED
            slots[col] = _AT[key]
        else:
            kinds[col], slots[col] = _OFFSETS, noffsets
            values.append((key, noffsets))
            noffsets += 1
    zero_at = -1 if any(k == "volume" for k, _ in plan.value_cols) else _AT["volume"]
    parser = CSVFAST.Parser(
        ord(plan.delimiter) if len(plan.delimiter.encode()) == 1 else 0, bytes(kinds),
        slots.tobytes(), noffsets, BAR_DTYPE.itemsize, _AT["event_ns"],
        zero_at, layouts[0], layouts[1], _MONTH_STARTS.astype(np.int64).tobytes(),
        _FIRST_YEAR, _MIN_DAY, _MAX_DAY, *_separators(plan.numbers),
        None if values else tuple(_AT[k] for k in FIELDS[1:]))
    return NativePlan(parser, tuple(stamps), tuple(values), noffsets, max(1, plan.ncols),
                      plan.numbers)


def _one_byte(text: str) -> bool:
    return len(text) == 1 and text.isascii()


def _separators(style: NumberStyle | None) -> tuple[int, int]:
    """(thousands separator or 0, decimal mark) as bytes for the C parser."""
    if style is None:
        return 0, ord(".")
    return ord(style.thousands) if style.thousands else 0, ord(style.decimal)


def native_plan(plan: Plan) -> NativePlan | None:
    """:func:`compile_plan`, or None for a delimiter the C parser cannot take (not one
    byte): such plans stay on the numpy path."""
    if len(plan.delimiter.encode()) != 1:
        return None
    return compile_plan(plan)


def load_block_native(block: Block, plan: Plan, native: NativePlan, log: RejectLog,
                      order: OrderCheck, out: Output, scratch: Scratch) -> tuple[int, int]:
    """Parse, check and order one block into ``out`` with the C parser; returns how many
    data rows and how many lines it held (as load._load_block does)."""
    pos, line0 = block.start, block.first_line
    seen = lines = 0
    while pos < block.stop:
        records = out.reserve((block.stop - pos) // native.min_line + 1)
        cap = len(records)
        found = scratch.get("c_lines", cap, np.int64)
        starts = scratch.get("c_starts", cap, np.int64)
        offsets = scratch.get("c_offsets", 2 * native.noffsets * cap or 1, np.int64)
        flagged = scratch.get("c_flagged", 3 * cap, np.int64)
        n, nflag, nlines, reached, failing = native.parser.parse(
            block.buf, pos, block.stop, cap, records, found, starts, offsets, flagged)
        views = {name: records[name][:n] for name in _NAMES}
        rows: Rows = {"line": found[:n] + line0, **views}
        ok = _numpy_columns(block, native, rows, offsets, cap, n)
        numbers = flagged[:nflag] + line0
        texts = (flagged[cap:cap + nflag], flagged[2 * cap:2 * cap + nflag])
        if ok is not None:
            numbers, texts = _with_rejects(block, rows, starts[:n], ok, numbers, texts)
        slow, seen_slow = parse_slow_lines(block, numbers, *texts, plan, log)
        if slow or ok is not None:
            rows = merge_rows(rows, np.ones(n, bool) if ok is None else ok, slow)
        to_utc(rows, plan.zone)
        if failing or slow or ok is not None:  # else the C pass found every bar fine
            rows = drop_rows(rows, check_values(rows), log, "values", describe_values)
        rows = drop_rows(rows, order.check(rows["event_ns"]), log, "order", order.describe)
        out.commit(rows, views)
        seen += (n if ok is None else int(np.count_nonzero(ok))) + seen_slow
        lines += nlines
        line0 += nlines
        pos = reached
    return seen, lines


def _numpy_columns(block: Block, native: NativePlan, rows: Rows, offsets: np.ndarray,
                   cap: int, n: int) -> np.ndarray | None:
    """Parse the columns left to numpy into ``rows``; the rows they accept (None: no such
    columns)."""
    if not native.noffsets:
        return None
    data = Words(block.raw)
    ok = np.ones(n, bool)

    def field(slot: int) -> tuple[np.ndarray, np.ndarray]:
        return (offsets[2 * slot * cap:2 * slot * cap + n],
                offsets[(2 * slot + 1) * cap:(2 * slot + 1) * cap + n])

    for slot, parser in native.stamps:
        ns, good = parser.parse_fast(data, *field(slot))
        rows["event_ns"] += ns
        ok &= good
    style = native.style
    for key, slot in native.values:
        assert style is not None
        rows[key][:], good = parse_formatted(block.raw, *field(slot), style.thousands,
                                             style.decimal,
                                             style.volume_suffixes and key == "volume")
        ok &= good
    return ok


def _with_rejects(block: Block, rows: Rows, starts: np.ndarray, ok: np.ndarray,
                  numbers: np.ndarray, texts: tuple[np.ndarray, np.ndarray]
                  ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The flagged lines plus the rows a numpy parser refused (for the exact path)."""
    bad = np.flatnonzero(~ok)
    if not len(bad):
        return numbers, texts
    begins = starts[bad]
    ends = np.array([_text_end(block, b) for b in begins.tolist()], np.int64)
    every = np.concatenate([numbers, rows["line"][bad]])
    order = np.argsort(every, kind="stable")  # the reject log meets lines in order
    return every[order], (np.concatenate([texts[0], begins])[order],
                          np.concatenate([texts[1], ends])[order])


def _text_end(block: Block, start: int) -> int:
    end = block.buf.find(b"\n", start, block.stop)
    return end - 1 if end > start and block.buf[end - 1] == 13 else end
