"""Generate the segment layout table (docs/segment-layout.md) from :mod:`tradingd.segment.layout`.

Like the C header, the checked-in document is compared with this output by a test;
regenerate it with ``make docs``.
"""

from __future__ import annotations

from tradingd.segment import layout as L


def generate() -> str:
    """The Markdown document (deterministic)."""
    geo = L.Geometry(64, 65536, L.default_window(65536))
    out = [
        f"# Segment layout v{L.LAYOUT_MAJOR}.{L.LAYOUT_MINOR}",
        "",
        "Generated from `tradingd/segment/layout.py` by `tradingd/segment/layout_doc.py`",
        "(`make docs`): do not edit by hand. The same table is printed by",
        "`tradingd-inspect layout` and compiled into",
        "`tools/c/tradingd_segment.h`.",
        "",
        f"- magic `0x{L.MAGIC:016x}` (\"TRADINGD\" little-endian), layout fingerprint "
        f"`0x{L.LAYOUT_FINGERPRINT:016x}`",
        "- states: " + ", ".join(f"{code} {name}" for code, name in L.STATE_NAMES.items()),
        "- asset classes: " + ", ".join(f"{c} {n}" for c, n in L.ASSET_CLASSES.items()),
        "",
        "## Regions (default capacities: 64 symbols, ring of 65536 records)",
        "",
        "| region | offset | size | element | count |",
        "|---|---:|---:|---|---:|",
    ]
    for region, off, size, struct, count in geo.regions():
        out.append(f"| {region} | {off} | {size} | {struct.name} ({struct.size} B) | {count} |")
    out += ["", f"Total: {geo.total_size} bytes.", "", "## Concurrency protocol", "",
            _protocol_text(), ""]
    for s in L.STRUCTS:
        out += [f"## {s.name} ({s.size} bytes)", "", s.doc, "",
                "| offset | size | type | field | meaning |", "|---:|---:|---|---|---|"]
        for p in s.placed:
            meaning = p.field.meaning.replace("|", "\\|")
            out.append(f"| {p.offset} | {p.size} | {p.field.type} | `{p.name}` | {meaning} |")
        gaps = ", ".join(f"{o}..{o + n - 1}" for o, n in s.gaps())
        out += ["", f"Padding (zero): {gaps or 'none'}.", ""]
    return "\n".join(out)


def _protocol_text() -> str:
    """The protocol bullets of :mod:`tradingd.segment.layout`'s docstring, its one written home."""
    doc = L.__doc__ or ""
    start = doc.index("Concurrency protocol")
    body = doc[doc.index("\n", start) + 1:]
    return body.strip().replace("``", "`")


def main() -> None:
    print(generate(), end="")


if __name__ == "__main__":
    main()
