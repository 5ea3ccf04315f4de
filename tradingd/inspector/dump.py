"""``tradingd-inspect dump``: ``hexdump -C`` of a region or byte range, annotated by the layout.

The hex part of every line is byte-for-byte what ``hexdump -C -s OFFSET -n LENGTH FILE``
prints (same offsets, same spacing, same ``*`` for repeated lines, same final offset
line), so the two can be compared line by line; ``--plain`` prints only that part. After
it comes the annotation: the fields the line's 16 bytes cover, named by region, element
and field (``symtab[2]: name="BTC-USD" currency…``), with the value of each field that
starts on the line. Field positions come from :mod:`tradingd.segment.layout` and the segment's
own region table; nothing is hard-coded.

The bytes are read with ``pread`` (never mapped), so a truncated or foreign file can be
dumped safely; the dump stops where the file ends, as hexdump does.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tradingd import constants as C
from tradingd.errors import TradingdError
from tradingd.inspector.format import Value, decode_field, fmt_value
from tradingd.inspector.source import Probe, SegmentFile
from tradingd.segment import layout as L

LINE = 16
#: Width of hexdump -C's longest line (offset, hex columns, |ascii|): annotations start after.
HEX_WIDTH = 8 + 2 + 23 + 2 + 23 + 2 + 1 + LINE + 1
#: Refuse to dump more than this at once (use --offset/--length, or hexdump itself).
MAX_DUMP_BYTES = 64 * 1024 * 1024
REGION_NAMES = ("header", "symtab", "latest", "ring")


class DumpError(TradingdError):
    """The requested region or range cannot be dumped (unknown, out of range, too big).

    The message says which region or offset and what the segment has; fix the arguments.
    """

    exit_code = C.EXIT_USAGE


@dataclass(frozen=True)
class Region:
    """A region of a segment: name, where it is, and what it is made of."""

    name: str
    offset: int
    size: int
    struct: L.Struct
    count: int

    @property
    def end(self) -> int:
        return self.offset + self.size


def regions_for(probe: Probe) -> list[Region]:
    """The regions the header describes (only the header if the region table is unusable)."""
    if probe.geometry is not None:
        return [Region(*r) for r in probe.geometry.regions()]
    return [Region("header", 0, L.HEADER.size, L.HEADER, 1)]


def annotatable(probe: Probe) -> bool:
    """Field annotations only make sense for a header of this very layout."""
    return probe.identity_ok


@dataclass(frozen=True)
class Covered:
    """A field (or padding, when ``placed`` is None) overlapping a line."""

    region: Region
    index: int
    placed: L.Placed | None
    start: int  # absolute offset of the field (or padding)
    size: int


@dataclass(frozen=True)
class _Item:
    """A field (or padding run, ``placed`` None) of a struct, ready to decode."""

    placed: L.Placed | None
    offset: int
    size: int
    name: str
    unpack: Callable[[bytes, int], tuple[Any, ...]] | None  # struct.Struct.unpack_from


_ITEMS: dict[int, tuple[_Item, ...]] = {}
_PLANS: dict[tuple[int, int, int], tuple[tuple[_Item, bool], ...]] = {}


def _items(s: L.Struct) -> tuple[_Item, ...]:
    """A struct's fields and padding runs in offset order (computed once per struct)."""
    items = _ITEMS.get(id(s))
    if items is None:
        rows = [_Item(p, p.offset, p.size, p.name,
                      None if p.field.ctype.c == "char"
                      else struct.Struct("<" + p.field.ctype.struct_code).unpack_from)
                for p in s.placed]
        rows += [_Item(None, o, n, "pad", None) for o, n in s.gaps()]
        items = _ITEMS[id(s)] = tuple(sorted(rows, key=lambda t: t.offset))
    return items


def _plan(s: L.Struct, lo: int, hi: int) -> tuple[tuple[_Item, bool], ...]:
    """The items overlapping bytes ``[lo, hi)`` of an element, each with "starts here"."""
    key = (id(s), lo, hi)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = tuple((it, it.offset >= lo) for it in _items(s)
                                   if it.offset < hi and it.offset + it.size > lo)
    return plan


def covered(regions: list[Region], a: int, b: int) -> Iterator[Covered]:
    """Every field and padding run overlapping bytes ``[a, b)``, in file order."""
    for r, i, base, plan in _elements(regions, a, b):
        for it, _starts in plan:
            yield Covered(r, i, it.placed, base + it.offset, it.size)


def _elements(regions: list[Region], a: int, b: int
              ) -> Iterator[tuple[Region, int, int, tuple[tuple[_Item, bool], ...]]]:
    """``(region, index, element offset, plan)`` of every element overlapping ``[a, b)``."""
    for r in regions:
        if b <= r.offset or a >= r.end:
            continue
        es = r.struct.size
        i0 = max(0, (a - r.offset) // es)
        i1 = min(r.count - 1, (b - 1 - r.offset) // es)
        for i in range(i0, i1 + 1):
            base = r.offset + i * es
            yield r, i, base, _plan(r.struct, a - base, b - base)


def _label(c: Covered) -> str:
    return c.region.name if c.region.count == 1 else f"{c.region.name}[{c.index}]"


def annotate(regions: list[Region], a: int, b: int, buf: bytes, buf_start: int,
             total_size: int | None, *, want_fields: bool = True
             ) -> tuple[str, list[dict[str, object]]]:
    """The annotation of line ``[a, b)``: text and the fields as data (for ``--json``)."""
    parts: list[str] = []
    fields: list[dict[str, object]] = []
    for r, i, base, plan in _elements(regions, a, b):
        items: list[str] = []
        for it, starts in plan:
            if it.placed is None:
                items.append("pad")
            elif not starts:
                items.append(f"{it.name}…")
            else:
                value = _decode(it, buf, base + it.offset - buf_start)
                shown = "?" if value is None else fmt_value(it.placed, value)
                items.append(f"{it.name}={shown}")
                if want_fields:
                    fields.append({"region": r.name, "index": i, "field": it.name,
                                   "offset": base + it.offset, "size": it.size,
                                   "type": it.placed.field.type, "value": value})
        label = r.name if r.count == 1 else f"{r.name}[{i}]"
        parts.append(f"{label}: {' '.join(items)}")
    text = "; ".join(parts)
    if total_size is not None and b > total_size:
        extra = "(beyond the segment's total_size)"
        text = f"{text}; {extra}" if text else extra
    return text, fields


def _decode(it: _Item, buf: bytes, pos: int) -> Value | None:
    if pos < 0 or pos + it.size > len(buf):
        return None
    if it.unpack is None:
        assert it.placed is not None
        return decode_field(it.placed, buf, pos - it.placed.offset)
    value: Value = it.unpack(buf, pos)[0]
    return value


_PRINTABLE = bytes(x if 0x20 <= x < 0x7F else 0x2E for x in range(256))


def hex_line(offset: int, chunk: bytes) -> str:
    """One line exactly as ``hexdump -C`` prints it."""
    text = chunk.translate(_PRINTABLE).decode("ascii")
    return (f"{offset:08x}  {chunk[:8].hex(' '):<23}  {chunk[8:16].hex(' '):<23}  "
            f"|{text}|")


@dataclass(frozen=True)
class DumpLine:
    """A line of the dump: a hex line, a ``*`` (``squeezed`` repeats of the line above),
    or the final offset (``end``)."""

    offset: int
    hex: str
    annotation: str
    fields: list[dict[str, object]]
    squeezed: int = 0
    end: bool = False
    data: bytes = b""

    def text(self, plain: bool) -> str:
        if plain or not self.annotation:
            return self.hex
        return f"{self.hex:<{HEX_WIDTH}}  {self.annotation}"

    def as_dict(self) -> dict[str, object]:
        if self.end:
            return {"offset": self.offset, "end": True}
        if self.squeezed:
            return {"offset": self.offset, "squeezed_lines": self.squeezed,
                    "annotation": self.annotation}
        return {"offset": self.offset, "hex": self.data.hex(" "),
                "ascii": self.data.translate(_PRINTABLE).decode("ascii"),
                "annotation": self.annotation, "fields": self.fields}


def resolve_range(probe: Probe, file_size: int, region: str | None, index: int | None,
                  seq: int | None, offset: int | None, length: int | None
                  ) -> tuple[int, int, str]:
    """The byte range to dump and a description of it; DumpError if it makes no sense."""
    regions = {r.name: r for r in regions_for(probe)}
    if offset is not None or length is not None:
        if region is not None or index is not None or seq is not None:
            raise DumpError("give a REGION (with --index/--seq) or --offset/--length, not both")
        off = 0 if offset is None else offset
        n = 256 if length is None else length
        if off < 0 or n < 0:
            raise DumpError(f"offset and length must not be negative (got {off}, {n})")
        return off, n, f"bytes {off}..{off + n - 1}"
    if seq is not None:
        if region not in (None, "ring"):
            raise DumpError("--seq selects a ring record: use it with region ring (or alone)")
        region = "ring"
    region = region or "header"
    if region == "all":
        total = probe.header.get("total_size") if probe.geometry else None
        n = int(total) if isinstance(total, int) else file_size
        return 0, n, "the whole segment"
    if region not in regions:
        known = ", ".join(regions)
        why = ("" if region in REGION_NAMES
               else f"; regions are {', '.join(REGION_NAMES)} and all")
        raise DumpError(f"region {region!r} is not available in {probe.source.where} "
                        f"(the header's region table gives: {known}){why}")
    r = regions[region]
    if seq is not None:
        index = seq & (r.count - 1)
    if index is None:
        return r.offset, r.size, f"region {region}"
    if not 0 <= index < r.count:
        raise DumpError(f"{region} has {r.count} entries (0..{r.count - 1}); "
                        f"--index {index} is outside it")
    es = r.struct.size
    what = f"{region}[{index}]" + (f" (seq {seq})" if seq is not None else "")
    return r.offset + index * es, es, what


def dump_lines(f: SegmentFile, probe: Probe, offset: int, length: int, *,
               squeeze: bool = True, annotations: bool = True,
               want_fields: bool = True) -> Iterator[DumpLine]:
    """The dump of ``[offset, offset+length)`` as hexdump -C prints it, plus annotations."""
    if length > MAX_DUMP_BYTES:
        raise DumpError(f"{length} bytes is more than this tool dumps at once "
                        f"({MAX_DUMP_BYTES}): narrow it with --offset/--length, or use "
                        f"hexdump -C -s {offset} -n {length} {probe.source.where}")
    data = f.read(offset, length)
    file_size = f.size
    margin = 64  # room to decode a field that starts on the line but ends after it
    buf_start = max(0, offset - margin)
    buf = f.read(buf_start, offset - buf_start) + data + f.read(offset + len(data), margin)
    regions = regions_for(probe) if annotations and annotatable(probe) else []
    total = probe.header.get("total_size") if probe.geometry is not None else None
    total_size = int(total) if isinstance(total, int) else None
    n_lines = (len(data) + LINE - 1) // LINE
    i = 0
    prev: bytes | None = None
    while i < n_lines:
        a = offset + i * LINE
        chunk = data[i * LINE:(i + 1) * LINE]
        if squeeze and prev is not None and chunk == prev and len(chunk) == LINE:
            j = i
            while (j < n_lines and data[j * LINE:(j + 1) * LINE] == prev):
                j += 1
            end = offset + j * LINE
            first = next(covered(regions, a, a + 1), None)
            last = next(covered(regions, end - 1, end), None)
            span = ""
            if first is not None and last is not None:
                left, right = _label(first), _label(last)
                if left == right:
                    names = dict.fromkeys("pad" if c.placed is None else c.placed.name
                                          for c in covered(regions, a, end))
                    span = f": {left}: {' '.join(names)}"
                else:
                    span = f": {left} .. {right}"
            note = (f"{j - i} identical line{'s' if j - i > 1 else ''} "
                    f"{a:08x}..{end - 1:08x}{span}")
            yield DumpLine(a, "*", note, [], squeezed=j - i)
            i = j
            continue
        text, fields = (annotate(regions, a, a + len(chunk), buf, buf_start, total_size,
                                 want_fields=want_fields)
                        if regions else ("", []))
        yield DumpLine(a, hex_line(a, chunk), text, fields, data=chunk)
        prev = chunk
        i += 1
    end = offset + len(data) if data else min(offset, file_size)
    yield DumpLine(end, f"{end:08x}", "", [], end=True)
