"""The exact path: one row at a time, the reference the fast path must agree with.

It decides whether a row is good and, if not, the reject reason and what is wrong.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from tradingd.producer.loader.blocks import Block
from tradingd.producer.loader.checks import RejectLog
from tradingd.producer.loader.formatted import formatted_value, formatting_hint, number_pattern
from tradingd.producer.loader.plan import NumberStyle, Plan, split_fields
from tradingd.producer.loader.spec import FIELDS, NO_OFFSET, NULL_TOKENS, Rows
from tradingd.producer.loader.tokens import Lines

# ---------------------------------------------------------------------------------------
# the slow path: one row at a time, exactly
# ---------------------------------------------------------------------------------------


class _RowError(Exception):
    def __init__(self, reason: str, text: str) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text


_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def _present(text: str, name: str) -> str:
    """The field's text without surrounding spaces; _RowError if empty or null."""
    value = text.strip()
    if not value:
        raise _RowError("empty_field", f"{name} is empty")
    if value.casefold() in NULL_TOKENS:
        raise _RowError("null_value", f"{name} is {value!r}")
    return value


def _number(text: str, name: str, style: NumberStyle | None) -> float:
    value = _present(text, name)
    if style is not None:
        return _formatted(value, name, style)
    if not _NUMBER_RE.fullmatch(value):
        raise _RowError("bad_number", f"{name} {value!r} is not a number"
                        + formatting_hint(value))
    number = float(value)
    if not math.isfinite(number):
        raise _RowError("bad_number", f"{name} {value!r} is too large")
    return number


def _formatted(value: str, name: str, style: NumberStyle) -> float:
    pattern = number_pattern(style.thousands, style.decimal)
    number = formatted_value(value, pattern, style.thousands,
                             style.volume_suffixes and name == "volume")
    if number is None:
        how = [f"decimal mark {style.decimal!r}"]
        if style.thousands:
            how.append(f"thousands separator {style.thousands!r} every 3 digits")
        if style.volume_suffixes and name == "volume":
            how.append("an optional K/M/B suffix")
        hint = " (a percentage)" if value.endswith("%") else ""
        raise _RowError("bad_number", f"{name} {value!r} is not a number written with "
                        f"{', '.join(how)}{hint}")
    if not math.isfinite(number):
        raise _RowError("bad_number", f"{name} {value!r} is too large")
    return number


def _parse_line(text: str, plan: Plan) -> tuple[Any, ...]:
    """One row -> (event ns as written, offset or NO_OFFSET, open, ..., volume)."""
    fields = split_fields(text, plan.delimiter)
    if len(fields) != plan.ncols:
        raise _RowError("wrong_field_count", f"{len(fields)} fields, expected {plan.ncols}")
    stamp = _present(fields[plan.ts_col], "timestamp")
    try:
        event, offset = plan.timestamps.parse_text(stamp)
    except ValueError as exc:
        raise _RowError("bad_timestamp", f"timestamp {stamp!r}: {exc}") from None
    if plan.time_col is not None and plan.times is not None:
        clock = _present(fields[plan.time_col], "time")
        try:
            event += plan.times.parse_text(clock)[0]
        except ValueError as exc:
            raise _RowError("bad_timestamp", f"time {clock!r}: {exc}") from None
    values = {key: _number(fields[col], key, plan.numbers) for key, col in plan.value_cols}
    return (event, NO_OFFSET if offset is None else offset * 10**9,
            *(values.get(k, 0.0) for k in FIELDS[1:]))


def parse_slow(block: Block, lines: Lines, todo: np.ndarray, plan: Plan,
                log: RejectLog) -> tuple[list[tuple[Any, ...]], int]:
    """Parse lines ``todo`` (indices into ``lines``) one by one: the good rows (line
    first), and how many of the lines were data rows (not blank)."""
    return parse_slow_lines(block, todo + block.first_line, lines.starts[todo],
                            lines.ends[todo], plan, log)


def parse_slow_lines(block: Block, numbers: np.ndarray, starts: np.ndarray,
                     ends: np.ndarray, plan: Plan, log: RejectLog
                     ) -> tuple[list[tuple[Any, ...]], int]:
    """Parse the lines numbered ``numbers`` (text from ``starts`` to ``ends`` in the block)
    one by one: the good rows (line first), and how many were data rows (not blank)."""
    parsed: list[tuple[Any, ...]] = []
    seen = 0
    for line, begin, end in zip(numbers.tolist(), starts.tolist(), ends.tolist(),
                                strict=True):
        text = bytes(block.buf[begin:end]).decode("utf-8")
        if not text.strip():
            continue  # a blank line is not a row
        seen += 1
        try:
            parsed.append((line, *_parse_line(text, plan)))
        except _RowError as exc:
            log.add("parse", line, exc.reason, exc.text)
    return parsed, seen


def merge_rows(rows: Rows, ok: np.ndarray, slow: list[tuple[Any, ...]]) -> Rows:
    """The fast rows parsed exactly plus the slow path's rows, in line order."""
    if not bool(ok.all()):
        rows = {k: v[ok] for k, v in rows.items()}
    if not slow:
        return rows
    rows["offset"] = np.full(len(rows["line"]), NO_OFFSET, np.int64)
    keys = ("line", "event_ns", "offset", *FIELDS[1:])
    columns = list(zip(*slow, strict=True))
    extra = {k: np.array(c, np.float64 if k in FIELDS else np.int64)
             for k, c in zip(keys, columns, strict=True)}
    merged = {k: np.concatenate([rows[k], extra[k]]) for k in keys}
    order = np.argsort(merged["line"], kind="stable")
    return {k: v[order] for k, v in merged.items()}
