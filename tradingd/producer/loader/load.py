"""The entry point: :func:`load_csv` drives blocks through both paths and the checks."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from tradingd.errors import StrictDataError
from tradingd.producer.loader.blocks import Block, check_utf8, open_data, read_blocks
from tradingd.producer.loader.checks import (
    OrderCheck,
    Output,
    RejectLog,
    check_values,
    describe_values,
    drop_rows,
    size_hint,
)
from tradingd.producer.loader.exact import merge_rows, parse_slow
from tradingd.producer.loader.fast import parse_fast
from tradingd.producer.loader.native import load_block_native, native_plan
from tradingd.producer.loader.plan import Plan, make_plan
from tradingd.producer.loader.spec import BLOCK_SIZE, CsvFormat, LoadResult
from tradingd.producer.loader.swar import Scratch
from tradingd.producer.loader.timestamps import to_utc
from tradingd.producer.loader.tokens import tokenize

# ---------------------------------------------------------------------------------------
# the entry point
# ---------------------------------------------------------------------------------------


def load_csv(path: str | os.PathLike[str], fmt: CsvFormat, *, strict: bool = False,
             block_size: int = BLOCK_SIZE, fast_path: bool = True,
             c_parser: bool = True) -> LoadResult:
    """Read one CSV file into bars, skipping (and reporting) bad rows.

    Raises DataError (exit 66) when the file cannot be used at all: missing, unreadable,
    empty, not UTF-8, or its header does not have the format's columns. With ``strict``,
    the first bad row raises StrictDataError (exit 65) naming its file:line and reason.
    ``block_size``, ``fast_path=False`` (every row through the exact per-row parser) and
    ``c_parser=False`` (the numpy fast path even where the C parser is built) exist for
    tests and benchmarks.
    """
    name = os.fspath(path)
    log = RejectLog(name)
    rows_read = 0
    with open_data(name) as f:
        blocks = read_blocks(f, name, block_size)
        plan, first = make_plan(name, fmt, f, blocks)
        out = Output(size_hint(f, first))
        order = OrderCheck(out)
        scratch = Scratch()
        native = native_plan(plan) if fast_path and c_parser else None
        line = first.first_line if first else 2
        for block in _chain(first, blocks):
            block = block._replace(first_line=line)
            check_utf8(block, name)
            if native is not None:
                seen, nlines = load_block_native(block, plan, native, log, order, out,
                                                 scratch)
            else:
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


def _chain(first: Block | None, rest: Iterator[Block]) -> Iterator[Block]:
    if first is not None:
        yield first
    yield from rest


def _strict_message(log: RejectLog) -> str:
    first = log.bad_rows()[0]
    counts = ", ".join(f"{r} {n}" for r, n in log.counts.items() if n)
    return (f"{first} (strict mode: refusing the file; bad rows so far: {counts}; fix the "
            "file or turn strict off to skip them)")


def _load_block(block: Block, plan: Plan, log: RejectLog, order: OrderCheck,
                out: Output, fast_path: bool, scratch: Scratch) -> tuple[int, int]:
    """Parse, check and order one block into ``out``; returns how many data rows and how
    many lines it held."""
    lines = tokenize(block, plan, fast_path, scratch)
    fast, ok = parse_fast(block, lines, plan, scratch)
    # lines the fast path could not vouch for go through the exact per-row parser
    todo = np.union1d(np.flatnonzero(~lines.fast), np.flatnonzero(lines.fast)[~ok])
    slow, seen_slow = parse_slow(block, lines, todo, plan, log)
    rows = merge_rows(fast, ok, slow)
    to_utc(rows, plan.zone)
    rows = drop_rows(rows, check_values(rows), log, "values", describe_values)
    rows = drop_rows(rows, order.check(rows["event_ns"]), log, "order", order.describe)
    out.append(rows)
    return int(np.count_nonzero(ok)) + seen_slow, len(lines.starts)
