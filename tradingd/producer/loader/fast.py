"""The fast path: the regular lines of a block parsed column by column."""

from __future__ import annotations

import numpy as np

from tradingd.producer.loader.blocks import Block
from tradingd.producer.loader.formatted import parse_formatted
from tradingd.producer.loader.plan import Plan
from tradingd.producer.loader.spec import Rows
from tradingd.producer.loader.swar import Scratch, Words, parse_floats
from tradingd.producer.loader.tokens import Lines

# ---------------------------------------------------------------------------------------
# the fast path: whole columns at once
# ---------------------------------------------------------------------------------------


def parse_fast(block: Block, lines: Lines, plan: Plan,
               scratch: Scratch) -> tuple[Rows, np.ndarray]:
    """Parse the fast lines; returns the rows and a mask of those parsed exactly."""
    data = Words(block.raw)
    numbers = np.flatnonzero(lines.fast) + block.first_line
    f = lines.fields
    line_starts = lines.starts[lines.fast]

    def field(col: int) -> tuple[np.ndarray, np.ndarray]:
        begin: np.ndarray = line_starts if col == 0 else f[col - 1] + 1
        end: np.ndarray = f[col]
        if lines.quoted is not None:  # "..." around the field (checked by the tokeniser)
            quoted = lines.quoted[col]
            begin, end = begin + quoted, end - quoted
        return begin, end

    event, ok = plan.timestamps.parse_fast(data, *field(plan.ts_col))
    if plan.time_col is not None and plan.times is not None:
        clock, good = plan.times.parse_fast(data, *field(plan.time_col))
        event += clock
        ok &= good
    rows: Rows = {"line": numbers, "event_ns": event}
    style = plan.numbers
    for key, col in plan.value_cols:
        begin, end = field(col)
        if style is None:
            rows[key], good = parse_floats(data, begin, end, scratch)
        else:
            rows[key], good = parse_formatted(block.raw, begin, end, style.thousands,
                                              style.decimal,
                                              style.volume_suffixes and key == "volume")
        ok &= good
    if "volume" not in rows:
        rows["volume"] = np.zeros(len(numbers))
    return rows, ok
