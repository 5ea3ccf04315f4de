"""The fast path: the regular lines of a block parsed column by column."""

from __future__ import annotations

import numpy as np

from tradingd.producer.loader.blocks import Block
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

    def starts(col: int) -> np.ndarray:
        begin: np.ndarray = line_starts if col == 0 else f[col - 1] + 1
        return begin

    event, ok = plan.timestamps.parse_fast(data, starts(plan.ts_col), f[plan.ts_col])
    rows: Rows = {"line": numbers, "event_ns": event}
    for key, col in plan.value_cols:
        rows[key], good = parse_floats(data, starts(col), f[col], scratch)
        ok &= good
    if "volume" not in rows:
        rows["volume"] = np.zeros(len(numbers))
    return rows, ok
