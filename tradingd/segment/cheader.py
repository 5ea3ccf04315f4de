"""Generate the C header for the segment layout from :mod:`tradingd.segment.layout`.

The checked-in copy lives at ``tools/c/tradingd_segment.h``; a test fails when it differs
from what this module generates (regenerate with ``make c-header``). It is used by the C
reader in ``tools/c/`` and by the C fast path (``tradingd/segment/_fastpath.c``), and every field's
offset and every struct's size is pinned with ``_Static_assert``, so C and Python cannot
disagree about a byte without the compiler saying so.
"""

from __future__ import annotations

from tradingd.segment import layout as L

GUARD = "TRADINGD_SEGMENT_H"


def _struct(s: L.Struct) -> list[str]:
    lines = [f"/* {s.doc} */", f"typedef struct tradingd_{s.name} {{"]
    pos = 0
    pad = 0
    for p in s.placed:
        if p.offset > pos:
            lines.append(f"    uint8_t _pad{pad}[{p.offset - pos}];")
            pad += 1
        ct = p.field.ctype
        decl = f"char {p.name}[{ct.size}]" if ct.c == "char" else f"{ct.c} {p.name}"
        lines.append(f"    {decl + ';':<32} /* @{p.offset:<4} {p.field.meaning} */")
        pos = p.end
    if s.size > pos:
        lines.append(f"    uint8_t _pad{pad}[{s.size - pos}];")
    lines.append(f"}} tradingd_{s.name};")
    lines.append(f'_Static_assert(sizeof(tradingd_{s.name}) == {s.size}, '
                 f'"tradingd_{s.name} size");')
    for p in s.placed:
        lines.append(f"_Static_assert(offsetof(tradingd_{s.name}, {p.name}) == {p.offset}, "
                     f'"{s.name}.{p.name}");')
    return lines


def generate() -> str:
    """The complete header text (deterministic: same layout, same bytes)."""
    out = [
        f"/* tradingd segment layout v{L.LAYOUT_MAJOR}.{L.LAYOUT_MINOR} -- GENERATED from "
        "tradingd/segment/layout.py",
        " * by tradingd/segment/cheader.py (`tradingd-inspect layout --c-header`). Do not edit",
        " * by hand: change tradingd/segment/layout.py and run `make c-header`.",
        " *",
        " * Protocol (see tradingd/segment/layout.py): header.state is the ready word; latest",
        " * slots are seqlocks (odd lock = writing); the ring cursor is stored after the",
        " * records it publishes; a reader re-reads the cursor after copying and drops records",
        " * with seq < cursor + ring_window - ring_capacity. A ring stamp (seq_lo) is stored",
        " * last, its complement first (v1.2). Load polled words with acquire",
        " * semantics (__atomic_load_n(p, __ATOMIC_ACQUIRE)). */",
        f"#ifndef {GUARD}",
        f"#define {GUARD}",
        "",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "",
        f"#define TRADINGD_MAGIC 0x{L.MAGIC:016x}ULL /* \"TRADINGD\" little-endian */",
        f"#define TRADINGD_LAYOUT_MAJOR {L.LAYOUT_MAJOR}",
        f"#define TRADINGD_LAYOUT_MINOR {L.LAYOUT_MINOR}",
        f"#define TRADINGD_LAYOUT_FINGERPRINT 0x{L.LAYOUT_FINGERPRINT:016x}ULL",
        "/* minor versions from which ring stamps are stored last / marked while written */",
        f"#define TRADINGD_STAMP_LAST_MINOR {L.STAMP_LAST_MINOR}",
        f"#define TRADINGD_STAMP_MARKED_MINOR {L.STAMP_MARKED_MINOR}",
        f"#define TRADINGD_STAMP_TRUST_NS {L.STAMP_TRUST_NS}ULL",
        "/* limits a reader enforces (docs/segment-layout.md, \"Writing a reader\") */",
        f"#define TRADINGD_CACHE_LINE {L.CACHE_LINE}",
        f"#define TRADINGD_MAX_SYMTAB_CAPACITY {L.MAX_SYMTAB_CAPACITY}ULL",
        f"#define TRADINGD_MAX_RING_CAPACITY {L.MAX_RING_CAPACITY}ULL",
        f"#define TRADINGD_MAX_RING_CURSOR {L.MAX_RING_CURSOR}ULL",
        f"#define TRADINGD_MAX_PRODUCER_PID {L.MAX_PRODUCER_PID}ULL",
        "",
    ]
    for code, name in L.STATE_NAMES.items():
        out.append(f"#define TRADINGD_STATE_{name.upper()} {code}")
    out.append("")
    for code, name in L.ASSET_CLASSES.items():
        out.append(f"#define TRADINGD_ASSET_{name.upper()} {code}")
    for s in L.STRUCTS:
        out.append("")
        out.extend(_struct(s))
    out += ["", f"#endif /* {GUARD} */", ""]
    return "\n".join(out)


def main() -> None:
    """Print the header (``python -m tradingd.segment.cheader > tools/c/tradingd_segment.h``)."""
    print(generate(), end="")


if __name__ == "__main__":
    main()
