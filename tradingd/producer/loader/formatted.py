"""Formatted numbers, whole columns at once: ``46,629.3``, ``1.234,5``, ``131.48K``, ``2.1M``.

The fields of a column are gathered into a (rows, width) byte matrix; one pass of numpy
operations validates them (digits, at most one decimal mark, thousands separators only
in the integer part and exactly every three digits), reads the digits as an integer
mantissa ``m`` with ``s`` digits after the mark and a suffix exponent ``e`` (K 3, M 6,
B 9), and computes ``m * 10**(e - s)`` with a single rounding: the mantissa has at most
15 digits (below 2**53, exact), the power of ten is exact, so the one multiplication or
division rounds correctly, as ``float("<digits>e<exp>")`` does in the exact path. Rows it
cannot vouch for (a sign, an exponent, spaces, longer fields) go to the exact path.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

from tradingd.producer.loader.spec import VOLUME_SUFFIXES
from tradingd.producer.loader.swar import U64, Words, eight_digits

#: Longest field read here (bytes); longer ones go to the exact path.
MAX_WIDTH = 24
_POW10_INT = 10 ** np.arange(19, dtype=np.int64)
_POW10 = 10.0 ** np.arange(-40, 41)  # index k + 40: 10**k (exact for |k| <= 22)
_SUFFIX_EXP = np.zeros(256, np.int64)
for _letter, _exp in VOLUME_SUFFIXES.items():
    _SUFFIX_EXP[ord(_letter)] = _SUFFIX_EXP[ord(_letter.upper())] = _exp


def parse_formatted(raw: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                    thousands: str | None, decimal: str,
                    suffixes: bool) -> tuple[np.ndarray, np.ndarray]:
    """(values, ok) of a column of formatted numbers; ok False: left to the exact path.

    Usually the fields of one length share one shape (``dd,ddd.d``): per length, the first
    field's shape is checked once against the exact path's grammar, every field of that
    length is checked to have the same bytes wherever the shape has no digit, and its
    digits are gathered into one integer with SWAR. Fields of another shape take the
    general per-byte route (:func:`_parse_general`).
    """
    n = len(starts)
    values = np.zeros(n)
    ok = np.zeros(n, bool)
    if not n:
        return values, ok
    lengths = ends - starts
    tail = Words(raw).at(ends - MAX_WIDTH, MAX_WIDTH // 8).view(np.uint8).reshape(
        n, MAX_WIDTH)
    pattern = number_pattern(thousands, decimal)
    counts = np.bincount(np.clip(lengths, 0, MAX_WIDTH + 1), minlength=MAX_WIDTH + 2)
    for length in np.flatnonzero(counts[1:MAX_WIDTH + 1]).tolist():
        length += 1
        rows = np.flatnonzero(lengths == length)
        first = bytes(tail[rows[0], MAX_WIDTH - length:]).decode("latin-1")
        shape = _shape(first, pattern, thousands, suffixes)
        if shape is None:
            continue
        if len(rows) == n:  # one length throughout: no copy of the column
            values, ok = _parse_shape(tail, shape)
        else:
            values[rows], ok[rows] = _parse_shape(tail[rows], shape)
    rest = np.flatnonzero(~ok)
    if len(rest):
        values[rest], ok[rest] = _parse_general(raw, starts[rest], ends[rest], thousands,
                                                decimal, suffixes)
    return values, ok


class _Shape(NamedTuple):
    digits: np.ndarray  # columns (of the right-aligned 24) that hold digits
    fixed: np.ndarray  # columns that hold a fixed byte (separator, mark, suffix)
    fixed_bytes: np.ndarray  # those bytes
    power: int  # suffix exponent - digits after the mark


def _shape(text: str, pattern: re.Pattern[str], thousands: str | None,
           suffixes: bool) -> _Shape | None:
    """The shape of a valid unsigned number's text, or None (general route)."""
    if not text.isascii() or formatted_value(text, pattern, thousands, suffixes) is None:
        return None
    if text[0] in "+-":
        return None
    body, exponent = text, 0
    if suffixes and text[-1].lower() in VOLUME_SUFFIXES:
        body, exponent = text[:-1], VOLUME_SUFFIXES[text[-1].lower()]
    digit_at = [i for i, ch in enumerate(text) if ch.isdigit()]
    if not 1 <= len(digit_at) <= 15:
        return None
    marks = [i for i, ch in enumerate(body) if not ch.isdigit() and ch != thousands]
    scale = len(body) - 1 - marks[0] if marks else 0
    offset = MAX_WIDTH - len(text)
    fixed = [i for i in range(len(text)) if i not in digit_at]
    return _Shape(np.array(digit_at, np.int64) + offset, np.array(fixed, np.int64) + offset,
                  np.frombuffer(text.encode(), np.uint8)[fixed], exponent - scale)


def _parse_shape(tail: np.ndarray, shape: _Shape) -> tuple[np.ndarray, np.ndarray]:
    n = len(tail)
    ok = np.ones(n, bool)
    if len(shape.fixed):
        ok &= (tail[:, shape.fixed] == shape.fixed_bytes).all(axis=1)
    digits = np.zeros((n, 16), np.uint8)
    placed = digits[:, 16 - len(shape.digits):]
    np.subtract(tail[:, shape.digits], np.uint8(48), out=placed)
    ok &= (placed < 10).all(axis=1)
    words = digits.view("<u8")
    hi = eight_digits(words[:, 0].copy())
    lo = eight_digits(words[:, 1].copy())
    mantissa = (hi * U64(10**8) + lo).astype(np.float64)
    if shape.power >= 0:
        values = mantissa * _POW10[shape.power + 40]
        ok &= values < 2.0**53
    else:
        values = mantissa / _POW10[-shape.power + 40]
    return values, ok


def _parse_general(raw: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                   thousands: str | None, decimal: str,
                   suffixes: bool) -> tuple[np.ndarray, np.ndarray]:
    """Any mix of shapes, byte by byte (rows, width) at once."""
    n = len(starts)
    if not n:
        return np.zeros(0), np.zeros(0, bool)
    lengths = ends - starts
    ok = (lengths >= 1) & (lengths <= MAX_WIDTH)
    lengths = np.clip(lengths, 0, MAX_WIDTH)
    width = max(1, int(lengths.max()))
    col = np.arange(width)
    within = col < lengths[:, None]
    index = np.minimum(starts[:, None] + col, len(raw) - 1)
    text = np.where(within, raw[index], 0).astype(np.uint8)
    exponent = np.zeros(n, np.int64)
    if suffixes:
        last = text[np.arange(n), np.maximum(lengths - 1, 0)]
        exponent = _SUFFIX_EXP[last]
        has = (exponent > 0) & (lengths > 0)
        rows = np.flatnonzero(has)
        within[rows, lengths[rows] - 1] = False
        text[rows, lengths[rows] - 1] = 0
        lengths = lengths - has
        ok &= lengths >= 1
    digit = ((text - np.uint8(48)) < 10) & within
    mark = (text == ord(decimal)) & within
    sep = (text == ord(thousands)) & within if thousands else np.zeros_like(within)
    ok &= ((digit | mark | sep) == within).all(axis=1)
    ok &= mark.sum(axis=1) <= 1
    count = digit.sum(axis=1)
    ok &= (count >= 1) & (count <= 15)
    dot = np.where(mark.any(axis=1), mark.argmax(axis=1), lengths)
    if thousands:
        seps = sep.sum(axis=1)
        ok &= ~(sep & (col >= dot[:, None])).any(axis=1)
        ok &= ~(sep & ((dot[:, None] - 1 - col) % 4 != 3)).any(axis=1)
        ok &= (seps == 0) | ((seps == (dot - 1) // 4) & (dot % 4 != 0))
    scale = (digit & (col > dot[:, None])).sum(axis=1)
    rank = np.cumsum(digit[:, ::-1], axis=1)[:, ::-1] - 1
    mantissa = (np.where(digit, text.astype(np.int64) - 48, 0)
                * _POW10_INT[np.clip(rank, 0, 18)]).sum(axis=1)
    power = exponent - scale
    values = mantissa.astype(np.float64)
    up = power >= 0
    values[up] *= _POW10[power[up] + 40]
    values[~up] /= _POW10[-power[~up] + 40]
    ok &= ~up | (values < 2.0**53)
    return values, ok


# -- the exact path's reading of the same texts ------------------------------------------


def number_pattern(thousands: str | None, decimal: str) -> re.Pattern[str]:
    """What a number looks like in a format: grouped by thousands or not, one mark."""
    d = re.escape(decimal)
    if thousands is None:
        integer = r"\d+"
    else:
        integer = rf"(?:\d{{1,3}}(?:{re.escape(thousands)}\d{{3}})+|\d+)"
    return re.compile(rf"([+-]?)(?:({integer})(?:{d}(\d*))?|{d}(\d+))", re.ASCII)


def formatted_value(text: str, pattern: re.Pattern[str], thousands: str | None,
                    suffixes: bool) -> float | None:
    """The value of ``text`` (already stripped), or None if it is not such a number."""
    exponent = 0
    if suffixes and text and text[-1].lower() in VOLUME_SUFFIXES:
        exponent = VOLUME_SUFFIXES[text[-1].lower()]
        text = text[:-1]
    m = pattern.fullmatch(text)
    if not m:
        return None
    sign, integer, fraction, only_fraction = m.groups()
    if only_fraction is not None:
        integer, fraction = "0", only_fraction
    digits = (integer or "0").replace(thousands or "\0", "") + (fraction or "")
    return float(f"{sign}{digits}e{exponent - len(fraction or '')}")


def formatting_hint(text: str) -> str:
    """Why a plain-number format rejects ``text``, when it looks like a formatted number."""
    if text.endswith("%"):
        return (" (a percentage: tradingd reads prices and volumes; map another column, "
                "or leave this one out)")
    if re.fullmatch(r"[+-]?[\d.,]*\d[kKmMbB]", text):
        return " (a K/M/B suffix: set volume_suffixes: true in the format)"
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?", text):
        return " (thousands separators: set thousands: ',' in the format)"
    if re.fullmatch(r"[+-]?\d{1,3}(\.\d{3})+(,\d*)?", text):
        return " (European style: set thousands: '.' and decimal: ',' in the format)"
    if re.fullmatch(r"[+-]?\d+,\d+", text):
        return " (a decimal comma: set decimal: ',' in the format)"
    return ""
