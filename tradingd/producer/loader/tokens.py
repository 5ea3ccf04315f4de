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
    fast: np.ndarray  # bool per line: right field count, quotes only around whole fields
    fields: np.ndarray  # (ncols, fast lines) int64: offset just past each field
    quoted: np.ndarray | None = None  # (ncols, fast lines) bool: the field is in quotes


def tokenize(block: Block, plan: Plan, fast_path: bool, scratch: Scratch) -> Lines:
    """Find the lines and, for lines with the expected field count, each field's end.

    Quotes: a delimiter between quotes is not a separator. A line stays on the fast path
    if its quotes only enclose whole fields (``"46,629.3"``); anything else (escaped
    quotes, a quote inside a field, a quoted newline) goes to the exact path, whose csv
    reader is the reference.
    """
    raw, start, stop = block.raw, block.start, block.stop
    quotes = block.buf.find(b'"', start, stop) >= 0
    seps, nlines, where = _separators(block, plan.delimiter, scratch, quotes)
    every = seps[plan.ncols - 1::plan.ncols]  # the newlines, if every line is regular
    if ((not quotes or where is not None) and len(seps) == nlines * plan.ncols
            and len(every) == nlines
            and bool((raw[every] == 10).all())):
        fast = np.ones(nlines, bool)
        fields = seps.reshape(nlines, plan.ncols).T.copy()  # fields[k]: field k's ends
        newlines = fields[-1]
    else:
        fast, fields, newlines = _irregular_lines(block, seps, plan.ncols,
                                                  quotes and where is None)
    starts = np.empty(nlines, np.int64)
    starts[:1] = start
    starts[1:] = newlines[:-1] + 1
    ends = newlines
    if block.buf.find(b"\r", start, stop) >= 0:  # CRLF: text ends before the \r
        ends = newlines - (raw[newlines - 1] == 13)
        fields[-1] = ends[fast]
    quoted = None
    if where is not None and fields.shape[1]:
        good, quoted = _quotes_around_fields(block, fields, starts, fast, where)
        fast[np.flatnonzero(fast)[~good]] = False
        fields = fields[:, good]
        quoted = quoted[:, good]
    if not fast_path:
        fast = np.zeros(nlines, bool)
        fields = fields[:, :0]
        quoted = None if quoted is None else quoted[:, :0]
    return Lines(starts, ends, fast, fields, quoted)


def _quotes_around_fields(block: Block, fields: np.ndarray, starts: np.ndarray,
                          fast: np.ndarray, quote: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Per fast line: its quotes are exactly pairs enclosing whole fields; and per field
    whether it is quoted."""
    raw = block.raw
    begins = np.empty_like(fields)
    begins[0] = starts[fast]
    begins[1:] = fields[:-1] + 1
    opening = raw[begins] == 34
    closing = (raw[fields - 1] == 34) & (fields - begins >= 2)
    paired = (opening == closing).all(axis=0)
    at_ends = 2 * opening.sum(axis=0)
    if bool(fast.all()) and int(np.count_nonzero(quote)) == int(at_ends.sum()):
        return paired, opening  # no quote elsewhere in the block (the usual case)
    where = np.flatnonzero(quote) + block.start
    before = np.searchsorted(where, starts)  # quotes before each line's start
    total = np.diff(before, append=len(where))[fast]
    good: np.ndarray = paired & (total == at_ends)
    return good, opening


def _separators(block: Block, delimiter: str, scratch: Scratch, quotes: bool
                ) -> tuple[np.ndarray, int, np.ndarray | None]:
    """Offsets (into raw) of every delimiter and newline of the block, the line count, and
    the quote mask from ``start`` (None if there are no quotes, or if a quoted field spans
    lines).

    The masks start at offset 0 (cleared before ``start``) so that positions come out as
    offsets into raw without another pass. A delimiter after an odd number of quotes is
    inside a quoted field, not a separator.
    """
    body = block.raw[:block.stop]
    separator = np.equal(body, 10, out=scratch.get("newline", len(body), bool))
    separator[:block.start] = False
    nlines = int(np.count_nonzero(separator))
    delimiters = np.equal(body, ord(delimiter), out=scratch.get("delimiter", len(body), bool))
    delimiters[:block.start] = False
    found: np.ndarray | None = None
    if quotes:
        inside = scratch.get("inside", len(body), bool)
        inside[:block.start] = False
        quote = np.equal(body[block.start:], 34, out=scratch.get("quote", len(body) -
                                                                 block.start, bool))
        inside[block.start:] = _inside_quotes(quote)
        if not bool(np.logical_and(separator, inside).any()):
            np.logical_not(inside, out=inside)
            delimiters &= inside
            found = quote  # else a quoted field spans lines: the exact path reads them
    separator |= delimiters
    return np.flatnonzero(separator), nlines, found


_ONES = np.uint64(2**64 - 1)


def _inside_quotes(quote: np.ndarray) -> np.ndarray:
    """Per byte: an odd number of quotes up to it (inside a quoted field), bit-parallel.

    The quote mask is packed 64 positions to a word; a prefix XOR within each word (six
    shift-xor steps) and the carry of the words before it give each position's parity:
    far cheaper than a cumulative sum over every byte.
    """
    n = len(quote)
    bits = np.packbits(quote, bitorder="little")
    words = np.zeros((len(bits) + 7) // 8 * 8, np.uint8)
    words[:len(bits)] = bits
    w = words.view("<u8")
    for shift in (1, 2, 4, 8, 16, 32):
        w ^= w << np.uint64(shift)
    carry = np.bitwise_xor.accumulate(w >> np.uint64(63))
    w[1:] ^= carry[:-1] * _ONES
    inside: np.ndarray = np.unpackbits(words, bitorder="little")[:n].view(bool)
    return inside


def _irregular_lines(block: Block, seps: np.ndarray, ncols: int,
                     quotes: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fast mask, field ends of the fast lines, newlines) when some lines have another
    field count, or quotes that span lines (which the slow path's csv reader handles)."""
    where = np.flatnonzero(block.raw[seps] == 10)
    newlines = seps[where]
    per_line = np.diff(where, prepend=-1)  # separators (fields) per line
    fast = per_line == ncols
    if quotes:
        body = block.raw[block.start:block.stop]
        fast[np.searchsorted(newlines, np.flatnonzero(body == 34) + block.start)] = False
    fields = seps[np.repeat(fast, per_line)].reshape(-1, ncols).T.copy()
    return fast, fields, newlines
