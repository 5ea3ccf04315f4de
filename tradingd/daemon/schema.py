"""A small schema-driven validator for YAML configuration.

A schema is a tree of nodes (:class:`Map`, :class:`ListOf`, :class:`DictOf`, :class:`Str`,
:class:`Int`, :class:`Number`, :class:`Bool`, :class:`Nullable`, ...). Each node checks a
value parsed from YAML, converts it (a mode string to an int, a level to lower case) and
records a :class:`Problem` for each thing wrong, with the key path
(``producer.replay.speed``) and the file line. Validation never stops at the first
problem: an operator fixes the whole file in one go.

Containers (maps, lists) are returned even when something inside is wrong, with
:data:`INVALID` in place of each bad value, so rules spanning several keys can still be
checked on the parts that are valid; the caller decides by whether problems were recorded.

Defaults live in the schema: a key left out is validated as if its ``default`` had been
written, so the defaults obey the same rules as the file. A :class:`Map` whose children
all have defaults defaults to ``{}`` (all defaults); a key with :data:`REQUIRED` as its
default must be written.

:func:`parse_yaml` reads the text and also returns where each key sits, and finds
duplicate keys (which PyYAML would silently collapse to the last one).
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

PathT = tuple[str | int, ...]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: Default of a key that must be written in the file.
REQUIRED: Any = _Required()
#: Returned by a node for an invalid value (a problem has been recorded).
INVALID: Any = type("Invalid", (), {"__repr__": lambda self: "INVALID"})()


def format_path(path: PathT) -> str:
    """``("producer", "symbols", 0, "name")`` -> ``producer.symbols[0].name``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def show(value: object) -> str:
    """A value as the operator wrote it in YAML, for "got ..." in messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Problem:
    """One thing wrong in the file: where (key path, line) and what."""

    path: PathT
    message: str
    line: int | None = None

    def format(self, source: str) -> str:
        if self.path and str(self.path[0]).startswith("--"):
            return f"command line: {self.path[0]}: {self.message}"
        where = f"{source}:{self.line}" if self.line else source
        return f"{where}: {format_path(self.path)}: {self.message}"


@dataclass
class Context:
    """Collects problems while validating; knows the line of each key path."""

    lines: Mapping[PathT, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def line_of(self, path: PathT) -> int | None:
        """The line of ``path``, or of its nearest ancestor present in the file."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]

    def error(self, path: PathT, message: str) -> Any:
        self.problems.append(Problem(path, message, self.line_of(path)))
        return INVALID

    def expected(self, path: PathT, expected: str, got: object) -> Any:
        return self.error(path, f"expected {expected}, got {show(got)}")


class Node:
    """A schema node: validates one value. ``doc`` says what it is for (shown in docs)."""

    default: Any = REQUIRED
    doc: str = ""

    def validate(self, value: Any, path: PathT, ctx: Context) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        """What the node accepts, for "expected ..." messages."""
        raise NotImplementedError


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


class Bool(Node):
    """true or false."""

    def __init__(self, default: Any = REQUIRED, doc: str = "") -> None:
        self.default, self.doc = default, doc

    def describe(self) -> str:
        return "true or false"

    def validate(self, value: Any, path: PathT, ctx: Context) -> Any:
        if not isinstance(value, bool):
            return ctx.expected(path, self.describe(), value)
        return value


class Int(Node):
    """An integer in ``[minimum, maximum]``, optionally a power of two."""

    def __init__(self, default: Any = REQUIRED, *, minimum: int | None = None,
                 maximum: int | None = None, power_of_two: bool = False,
                 doc: str = "") -> None:
        self.default, self.doc = default, doc
        self.minimum, self.maximum, self.power_of_two = minimum, maximum, power_of_two

    def describe(self) -> str:
        what = "a power of two" if self.power_of_two else "an integer"
        lo, hi = self.minimum, self.maximum
        if lo is not None and hi is not None:
            return f"{what} from {lo} to {hi}"
        if lo is not None:
            return f"{what} >= {lo}"
        if hi is not None:
            return f"{what} <= {hi}"
        return what

    def validate(self, value: Any, path: PathT, ctx: Context) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            return ctx.expected(path, self.describe(), value)
        if ((self.minimum is not None and value < self.minimum)
                or (self.maximum is not None and value > self.maximum)
                or (self.power_of_two and value & (value - 1))):
            return ctx.expected(path, self.describe(), value)
        return value


class Number(Node):
    """A finite number (int or float, returned as float) within bounds."""

    def __init__(self, default: Any = REQUIRED, *, minimum: float | None = None,
                 maximum: float | None = None, exclusive_minimum: bool = False,
                 unit: str = "", doc: str = "") -> None:
        self.default, self.doc = default, doc
        self.minimum, self.maximum = minimum, maximum
        self.exclusive_minimum, self.unit = exclusive_minimum, unit

    def describe(self) -> str:
        unit = f" ({self.unit})" if self.unit else ""
        lo, hi = self.minimum, self.maximum
        if lo is not None and hi is not None and not self.exclusive_minimum:
            return f"a number from {_num(lo)} to {_num(hi)}{unit}"
        parts = []
        if lo is not None:
            parts.append(f"{'>' if self.exclusive_minimum else '>='} {_num(lo)}")
        if hi is not None:
            parts.append(f"<= {_num(hi)}")
        return "a number " + " and ".join(parts) + unit if parts else "a number" + unit

    def validate(self, value: Any, path: PathT, ctx: Context) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return ctx.expected(path, self.describe(), value)
        number = float(value)
        lo, hi = self.minimum, self.maximum
        if (not math.isfinite(number)
                or (lo is not None and (number <= lo if self.exclusive_minimum
                                        else number < lo))
                or (hi is not None and number > hi)):
            return ctx.expected(path, self.describe(), value)
        return number


class Str(Node):
    """A string: one of ``choices``, or matching ``pattern`` (described by ``expected``).

    ``check`` returns a problem text for a string the pattern cannot rule out, or None.
    ``lower`` accepts any case for choices and returns lower case.
    """

    def __init__(self, default: Any = REQUIRED, *, choices: tuple[str, ...] = (),
                 pattern: str | None = None, expected: str = "",
                 check: Callable[[str], str | None] | None = None, lower: bool = False,
                 doc: str = "") -> None:
        self.default, self.doc = default, doc
        self.choices, self.lower, self.check = choices, lower, check
        self.pattern = re.compile(pattern) if pattern else None
        self.expected = expected

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        return self.expected or "a string"

    def validate(self, value: Any, path: PathT, ctx: Context) -> Any:
        if not isinstance(value, str):
            hint = " (YAML read it as a non-string: quote it)" if isinstance(
                value, bool | int | float) else ""
            return ctx.error(path, f"expected {self.describe()}, got {show(value)}{hint}")
        text = value.lower() if self.lower else value
        if self.choices and text not in self.choices:
            close = difflib.get_close_matches(text, self.choices, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return ctx.error(path, f"expected {self.describe()}, got {show(value)}{hint}")
        if self.pattern is not None and not self.pattern.fullmatch(text):
            return ctx.expected(path, self.describe(), value)
        if self.check is not None:
            problem = self.check(text)
            if problem:
                return ctx.error(path, f"{problem}, got {show(value)}")
        return text


class Nullable(Node):
    """``null`` or what ``inner`` accepts (default: null)."""

    def __init__(self, inner: Node, default: Any = None, doc: str = "") -> None:
        self.inner, self.default, self.doc = inner, default, doc or inner.doc

    def describe(self) -> str:
        return f"{self.inner.describe()} or null"

    def validate(self, value: Any, path: PathT, ctx: Context) -> Any:
        if value is None:
            return None
        before = len(ctx.problems)
        result = self.inner.validate(value, path, ctx)
        if result is INVALID and len(ctx.problems) == before + 1:
            p = ctx.problems[-1]  # say null is fine too
            msg = p.message.replace(f"expected {self.inner.describe()}",
                                    f"expected {self.describe()}", 1)
            ctx.problems[-1] = Problem(p.path, msg, p.line)
        return result


class OneOf(Node):
    """The first of several nodes that accepts the value (e.g. a column name or index)."""

    def __init__(self, *options: Node, default: Any = REQUIRED, doc: str = "") -> None:
        self.options, self.default, self.doc = options, default, doc

    def describe(self) -> str:
        return " or ".join(o.describe() for o in self.options)

    def validate(self, value: Any, path: PathT, ctx: Context) -> Any:
        for option in self.options:
            trial = Context(ctx.lines)
            result = option.validate(value, path, trial)
            if not trial.problems:
                return result
        return ctx.expected(path, self.describe(), value)


class FileMode(Node):
    """A permission mode: an octal string (``"0640"``) or an int; only bits in ``allowed``.

    YAML reads an unquoted ``0640`` as the octal int 416 (fine) but ``640`` as decimal,
    so a string is the safe spelling; the message says so.
    """

    def __init__(self, default: Any = REQUIRED, *, allowed: int = 0o666, required: int = 0,
                 doc: str = "") -> None:
        self.default, self.doc = default, doc
        self.allowed, self.required = allowed, required

    def describe(self) -> str:
        need = f", owner needs rw (0{self.required:o})" if self.required else ""
        return (f'an octal mode string such as "0640" with only read/write bits '
                f"(within 0{self.allowed:o}{need})")

    def validate(self, value: Any, path: PathT, ctx: Context) -> Any:
        if isinstance(value, str) and re.fullmatch(r"(0o?)?[0-7]{1,4}", value.strip()):
            mode = int(value.strip().removeprefix("0o"), 8)
        elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            mode = value
        else:
            return ctx.expected(path, self.describe(), value)
        if mode & ~self.allowed or mode & self.required != self.required:
            got = show(value)
            if isinstance(value, int):
                got += f" (= 0{mode:o} octal)"
                if re.fullmatch(r"[0-7]{3,4}", str(value)):
                    got += f'; for octal write it quoted: "0{value}"'
            return ctx.error(path, f"expected {self.describe()}, got {got}")
        return mode


class IPAddress(Node):
    """An IPv4 or IPv6 address (not a host name: a daemon must not resolve at start)."""

    def __init__(self, default: Any = REQUIRED, doc: str = "") -> None:
        self.default, self.doc = default, doc

    def describe(self) -> str:
        return "an IP address such as 127.0.0.1 or ::1"

    def validate(self, value: Any, path: PathT, ctx: Context) -> Any:
        if not isinstance(value, str):
            return ctx.expected(path, self.describe(), value)
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            return ctx.expected(path, self.describe(), value)


class TimeZone(Node):
    """An IANA time zone name known to this machine (``UTC``, ``America/New_York``)."""

    def __init__(self, default: Any = REQUIRED, doc: str = "") -> None:
        self.default, self.doc = default, doc

    def describe(self) -> str:
        return "an IANA time zone name such as UTC or America/New_York"

    def validate(self, value: Any, path: PathT, ctx: Context) -> Any:
        if not isinstance(value, str):
            return ctx.expected(path, self.describe(), value)
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return ctx.expected(path, self.describe(), value)
        return value


class Map(Node):
    """A mapping with declared keys; unknown keys are errors, missing keys get defaults."""

    def __init__(self, fields: Mapping[str, Node], doc: str = "") -> None:
        self.fields, self.doc = dict(fields), doc
        required = any(node.default is REQUIRED for node in self.fields.values())
        self.default = REQUIRED if required else {}

    def describe(self) -> str:
        return "a mapping"

    def validate(self, value: Any, path: PathT, ctx: Context) -> Any:
        if not isinstance(value, Mapping):
            return ctx.expected(path, "a mapping with keys " + ", ".join(self.fields), value)
        out: dict[str, Any] = {}
        for key in value:
            if key not in self.fields:
                close = difflib.get_close_matches(str(key), list(self.fields), n=1)
                hint = (f"did you mean {close[0]!r}?" if close
                        else "expected one of " + ", ".join(self.fields))
                ctx.error((*path, str(key)), f"unknown key ({hint})")
        for name, node in self.fields.items():
            sub = (*path, name)
            if name in value:
                out[name] = node.validate(value[name], sub, ctx)
            elif node.default is REQUIRED:
                out[name] = ctx.error(sub, f"missing required key ({node.describe()})")
            else:
                out[name] = node.validate(node.default, sub, ctx)
        return out


class DictOf(Node):
    """A mapping from names (checked by ``key``) to values of one kind."""

    def __init__(self, key: Str, value: Node, default: Any = REQUIRED, doc: str = "") -> None:
        self.key, self.value, self.default, self.doc = key, value, default, doc

    def describe(self) -> str:
        return f"a mapping of names to {self.value.describe()}"

    def validate(self, value: Any, path: PathT, ctx: Context) -> Any:
        if not isinstance(value, Mapping):
            return ctx.expected(path, self.describe(), value)
        out: dict[str, Any] = {}
        for name, item in value.items():
            sub = (*path, str(name))
            self.key.validate(name, sub, ctx)
            out[str(name)] = self.value.validate(item, sub, ctx)
        return out


class ListOf(Node):
    """A list of ``min_items..max_items`` items of one kind."""

    def __init__(self, item: Node, default: Any = REQUIRED, *, min_items: int = 0,
                 max_items: int | None = None, doc: str = "") -> None:
        self.item, self.default, self.doc = item, default, doc
        self.min_items, self.max_items = min_items, max_items

    def describe(self) -> str:
        if self.max_items is not None:
            return f"a list of {self.min_items} to {self.max_items} entries"
        return f"a list of at least {self.min_items} entries" if self.min_items else "a list"

    def validate(self, value: Any, path: PathT, ctx: Context) -> Any:
        if not isinstance(value, list):
            return ctx.expected(path, self.describe(), value)
        if len(value) < self.min_items or (self.max_items is not None
                                           and len(value) > self.max_items):
            return ctx.error(path, f"expected {self.describe()}, got {len(value)}")
        return [self.item.validate(item, (*path, i), ctx) for i, item in enumerate(value)]


# -- reading YAML with positions ----------------------------------------------------------

#: libyaml's loader when PyYAML was built with it (same results, ~10x faster).
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class ParsedYaml:
    """A YAML document's data, the line of each key path, and duplicate-key problems."""

    data: Any
    lines: dict[PathT, int]
    problems: list[Problem]


def parse_yaml(text: str) -> ParsedYaml:
    """Parse one YAML document (safe types only) and locate its keys.

    Raises ``yaml.YAMLError`` (with ``problem_mark``) for text that is not YAML.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    lines: dict[PathT, int] = {}
    problems: list[Problem] = []
    if node is not None:
        _walk(node, (), lines, problems, set())
    return ParsedYaml(data, lines, problems)


def _walk(node: yaml.Node, path: PathT, lines: dict[PathT, int], problems: list[Problem],
          seen: set[int]) -> None:
    if id(node) in seen:  # an alias seen before: its keys are already located
        return
    seen.add(id(node))
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in first and key != "<<":
                problems.append(Problem((*path, key),
                                        f"duplicate key (first on line {first[key]})", line))
            first.setdefault(key, line)
            lines[(*path, key)] = line
            _walk(value_node, (*path, key), lines, problems, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines, problems, seen)
