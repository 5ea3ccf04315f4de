"""``tradingd-inspect layout``: the field table and the sizes C and Python agree on.

Everything shown is derived from :mod:`tradingd.segment.layout` (the table itself) and from the C
header that :mod:`tradingd.segment.cheader` generates from it. The seed system checked by hand
that "the struct is 24 bytes in both"; here the Python sizes are compared with the sizes
and offsets the generated header pins with ``_Static_assert`` (the compiler enforces those
wherever the header is compiled: the C reader, the C fast path). Nothing is compiled at
run time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tradingd.inspector.format import Report, render_table
from tradingd.segment import layout as L

_SIZE_RE = re.compile(r"_Static_assert\(sizeof\(tradingd_(\w+)\)\s*==\s*(\d+)")
_OFFSET_RE = re.compile(r"_Static_assert\(offsetof\(tradingd_(\w+),\s*(\w+)\)\s*==\s*(\d+)")


def region_of_struct() -> dict[str, str]:
    """Struct name -> the region made of it (``symbol`` -> ``symtab``), from Geometry."""
    geo = L.Geometry(1, 2, 1)
    return {s.name: region for region, _off, _size, s, _count in geo.regions()}


def c_header_text() -> str:
    """The generated C header (``tradingd.segment.cheader.generate()``)."""
    from tradingd.segment import cheader

    return cheader.generate()


@dataclass(frozen=True)
class CAsserts:
    """The sizes and offsets a C header pins with ``_Static_assert``."""

    sizes: dict[str, int]
    offsets: dict[tuple[str, str], int]

    @classmethod
    def parse(cls, text: str) -> CAsserts:
        sizes = {m[1]: int(m[2]) for m in _SIZE_RE.finditer(text)}
        offsets = {(m[1], m[2]): int(m[3]) for m in _OFFSET_RE.finditer(text)}
        return cls(sizes, offsets)


def layout_report(geometry: L.Geometry | None = None) -> dict[str, object]:
    """Everything ``layout`` shows, as plain data (the ``--json`` form)."""
    regions = region_of_struct()
    asserts = CAsserts.parse(c_header_text())
    fields = []
    for row in L.layout_table():
        struct_name = str(row["struct"])
        c_off = asserts.offsets.get((struct_name, str(row["field"])))
        fields.append({"region": regions[struct_name], **row, "c_offset": c_off})
    structs = []
    for s in L.STRUCTS:
        c_size = asserts.sizes.get(s.name)
        offsets_ok = all(asserts.offsets.get((s.name, p.name)) == p.offset for p in s.placed)
        structs.append({
            "struct": s.name, "region": regions[s.name], "doc": s.doc,
            "python_size": s.size, "numpy_itemsize": s.dtype.itemsize, "c_size": c_size,
            "fields": len(s.placed),
            "padding": [{"offset": o, "size": n} for o, n in s.gaps()],
            "agree": c_size == s.size == s.dtype.itemsize and offsets_ok,
        })
    report: dict[str, object] = {
        "layout_major": L.LAYOUT_MAJOR, "layout_minor": L.LAYOUT_MINOR,
        "fingerprint": f"0x{L.LAYOUT_FINGERPRINT:016x}",
        "magic": f"0x{L.MAGIC:016x}",
        "states": {str(k): v for k, v in L.STATE_NAMES.items()},
        "asset_classes": {str(k): v for k, v in L.ASSET_CLASSES.items()},
        "structs": structs,
        "fields": fields,
        "c_asserts": {"sizes": len(asserts.sizes), "offsets": len(asserts.offsets)},
        "agree": all(bool(s["agree"]) for s in structs),
    }
    if geometry is not None:
        report["regions"] = regions_of(geometry)
    return report


def regions_of(geo: L.Geometry) -> list[dict[str, object]]:
    """The region table of a segment with these capacities (offset, size, elements)."""
    return [{"region": name, "offset": off, "size": size, "element": s.name,
             "element_size": s.size, "count": count}
            for name, off, size, s, count in geo.regions()]


def render_layout(report: Report) -> str:
    """The text form of :func:`layout_report`."""
    out = [f"tradingd segment layout v{report['layout_major']}.{report['layout_minor']}, "
           f"fingerprint {report['fingerprint']}, magic \"TRADINGD\" ({report['magic']})",
           ""]
    rows = [(f["region"], f["struct"], f["offset"], f["size"], f["type"], f["field"],
             f["meaning"]) for f in report["fields"]]
    out.append(render_table(("region", "struct", "offset", "size", "type", "field", "meaning"),
                            rows, right=(2, 3)))
    out.append("")
    out.append("Sizes in bytes: Python (layout), numpy dtype, and the C header's _Static_assert")
    srows = []
    for s in report["structs"]:
        pad = sum(p["size"] for p in s["padding"])
        srows.append((s["struct"], s["region"], s["python_size"], s["numpy_itemsize"],
                      s["c_size"] if s["c_size"] is not None else "missing", pad,
                      "yes" if s["agree"] else "NO"))
    out.append(render_table(("struct", "region", "python", "numpy", "C", "padding", "agree"),
                            srows, right=(2, 3, 4, 5)))
    ca = report["c_asserts"]
    verdict = ("C and Python agree on every size and offset" if report["agree"]
               else "C and Python DISAGREE: regenerate the C header (make c-header)")
    out.append(f"{verdict} ({ca['sizes']} sizes and {ca['offsets']} offsets "
               f"pinned by _Static_assert in the generated header).")
    states = ", ".join(f"{k} {v}" for k, v in report["states"].items())
    out.append(f"States: {states}.")
    if "regions" in report:
        out.append("")
        out.append("Regions with the configured capacities (a segment's own table: status):")
        out.append(render_table(
            ("region", "offset", "size", "element", "count"),
            [(r["region"], r["offset"], r["size"], f"{r['element']} x {r['element_size']} B",
              r["count"]) for r in report["regions"]],
            right=(1, 2, 4)))
    return "\n".join(out)
