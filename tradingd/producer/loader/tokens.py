"""Tokenising a block: every line's start and end, every field's end on regular lines."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from tradingd.producer.loader.blocks import Block
from tradingd.producer.loader.plan import Plan
from tradingd.producer.loader.swar import Scratch

# ---------------------------------------------------------------------------------------
# tokenising a block
# ---------------------------------------------------------------------------------------


class Lines(NamedTuple):
    starts: np.ndarray  # int64, every line of the block
    ends: np.ndarray  # int64, end of the line's text (before \r\n or \n)
    fast: np.ndarray  # bool per line: right field count and no quote
    fields: np.ndarray  # (ncols, fast lines) int64: offset just past each field


def tokenize(block: Block, plan: Plan, fast_path: bool, scratch: Scratch) -> Lines:
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
    return Lines(starts, ends, fast, fields)


def _separators(block: Block, delimiter: str, scratch: Scratch) -> tuple[np.ndarray, int]:
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


def _irregular_lines(block: Block, seps: np.ndarray, ncols: int,
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
