"""Decoding raw bytes by the layout, and rendering values for people and for scripts.

Everything the inspector shows goes through here, so an age, a price or a timestamp reads
the same in every subcommand, and ``--json`` output is always valid JSON (no NaN, no
bytes). Decoding works on whatever bytes exist: a field is decoded only if all of its
bytes are present, which is what lets the tools show the header of a truncated file.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from tradingd.segment import layout as L

Value = int | float | str
#: A subcommand's report as plain data (what ``--json`` prints): JSON values, typed ``Any`` as
#: ``json.loads`` types them, so a renderer reads back what the report's builder put in.
Report = Mapping[str, Any]


def decode_field(placed: L.Placed, data: bytes | memoryview, base: int = 0) -> Value | None:
    """The value of one field whose struct starts at ``base`` in ``data``; None if cut off."""
    start = base + placed.offset
    end = start + placed.size
    if start < 0 or end > len(data):
        return None
    raw = bytes(data[start:end])
    ctype = placed.field.ctype
    if ctype.c == "char":
        return raw.split(b"\0", 1)[0].decode("ascii", "backslashreplace")
    value: Value = struct.unpack("<" + ctype.struct_code, raw)[0]
    return value


def decode_struct(s: L.Struct, data: bytes | memoryview, base: int = 0) -> dict[str, Value]:
    """Every field of ``s`` (at ``base`` in ``data``) whose bytes are all present."""
    out: dict[str, Value] = {}
    for p in s.placed:
        v = decode_field(p, data, base)
        if v is not None:
            out[p.name] = v
    return out


# ---------------------------------------------------------------------------- values


def fmt_age_ns(ns: int) -> str:
    """A duration for people: ``"12 ms"``, ``"3.2 s"``, ``"4 min 3 s"``, ``"2 d 5 h"``.

    A negative age of up to a second is a stamp taken a moment after "now" was read (0);
    more than that means the timestamp comes from another boot's clock.
    """
    if -1_000_000_000 < ns < 0:
        ns = 0
    if ns < 0:
        return f"{fmt_age_ns(-ns)} in the future (another boot's clock?)"
    if ns < 1_000:
        return f"{ns} ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:.0f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.0f} ms"
    s = ns / 1e9
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return _two(int(s // 60), "min", int(s % 60), "s")
    if s < 86400:
        return _two(int(s // 3600), "h", int(s % 3600 // 60), "min")
    return _two(int(s // 86400), "d", int(s % 86400 // 3600), "h")


def _two(big: int, big_unit: str, small: int, small_unit: str) -> str:
    return f"{big} {big_unit}" + (f" {small} {small_unit}" if small else "")


def fmt_ago(ns: int) -> str:
    """``"12 ms ago"`` (or the future note for a clock from another boot)."""
    text = fmt_age_ns(ns)
    return text if ns <= -1_000_000_000 else f"{text} ago"


def fmt_count(n: int) -> str:
    """A count for people: ``"950"``, ``"12.3k"``, ``"3.2M"``, ``"1.1G"``."""
    for div, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if abs(n) >= div:
            return f"{n / div:.1f}{suffix}"
    return str(n)


def fmt_bytes(n: int) -> str:
    """A size: ``"384 B"``, ``"4.0 MiB"``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def fmt_time_utc(ns: int) -> str:
    """Nanoseconds since the epoch as ISO 8601 UTC, with a fraction only when there is one."""
    try:
        dt = datetime.fromtimestamp(ns // 1_000_000_000, UTC)
    except (OverflowError, OSError, ValueError):
        return f"{ns} ns (out of range)"
    frac = ns % 1_000_000_000
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += f".{frac:09d}".rstrip("0")
    return text + "Z"


def fmt_price(x: float, decimals: int) -> str:
    """A price with the symbol's decimals (``"187.44"``, ``"1.08765"``)."""
    if not math.isfinite(x):
        return str(x)
    return f"{x:.{max(0, min(decimals, 12))}f}"


def fmt_volume(v: float) -> str:
    """A volume: integral volumes without decimals, fractional ones (crypto) with 4."""
    if not math.isfinite(v):
        return str(v)
    return f"{v:,.0f}" if v.is_integer() else f"{v:,.4f}"


def fmt_value(placed: L.Placed, value: Value) -> str:
    """A raw field value as shown next to hex bytes: names for codes, hex for ids."""
    name = placed.name
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:.10g}"
    if name == "magic":
        return json.dumps(value.to_bytes(8, "little").decode("latin-1"))
    if name in ("layout_fingerprint", "generation"):
        return f"0x{value:016x}"
    if name == "state":
        return f"{value} ({L.STATE_NAMES.get(value, 'unknown')})"
    if name == "asset_class":
        return f"{value} ({L.ASSET_CLASSES.get(value, 'unknown')})"
    return str(value)


def magic_text(value: int) -> str:
    """The magic word as the bytes it is (``b'TRADINGD'``)."""
    return repr(value.to_bytes(8, "little"))


# ---------------------------------------------------------------------------- tables


def render_table(headers: Sequence[str], rows: Iterable[Sequence[object]],
                 right: Iterable[int] = ()) -> str:
    """Columns padded to their widest cell; columns in ``right`` are right-aligned."""
    cells = [[str(c) for c in r] for r in rows]
    right_set = set(right)
    widths = [len(h) for h in headers]
    for r in cells:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(widths[i]) if i in right_set else c.ljust(widths[i])
                 for i, c in enumerate(cells)]
        return "  ".join(parts).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(r) for r in cells)
    return "\n".join(out)


# ---------------------------------------------------------------------------- JSON


def jsonable(obj: Any) -> Any:
    """Plain JSON data: non-finite floats become strings, bytes are decoded, tuples listed."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, bytes):
        return obj.decode("ascii", "backslashreplace")
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item"):  # numpy scalar
        return jsonable(obj.item())
    return obj


def emit_json(obj: Any, out: TextIO | None = None, *, compact: bool = False) -> None:
    """Write ``obj`` as JSON (strict: ``allow_nan=False``) and a newline."""
    out = out or sys.stdout
    text = json.dumps(jsonable(obj), allow_nan=False,
                      indent=None if compact else 2,
                      separators=(",", ":") if compact else None)
    out.write(text + "\n")
    out.flush()
