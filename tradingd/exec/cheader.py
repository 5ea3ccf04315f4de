"""Generate ``tools/c/tradingd_orders.h`` (order and report rings) and ``docs/order-rings.md``.

From the channel structs declared in :mod:`tradingd.segment.layout` (offsets, sizes,
``_Static_assert`` pins, as :mod:`tradingd.segment.cheader` does for the data segment) and
the codes in :mod:`tradingd.exec.protocol`. Tests fail when the checked-in copies are stale:
``make c-header docs`` regenerates them. ``python -m tradingd.exec.cheader [--doc]``.
"""

from __future__ import annotations

import re
import sys
from enum import IntEnum

from tradingd.exec import protocol as P
from tradingd.segment import channel as CH
from tradingd.segment import cheader
from tradingd.segment import layout as L

GUARD = "TRADINGD_ORDERS_H"
_ENUMS: tuple[tuple[str, type[IntEnum]], ...] = (
    ("MSG", P.MsgType), ("SIDE", P.Side), ("ORD_TYPE", P.OrdType), ("TIF", P.TimeInForce),
    ("ORD_STATUS", P.OrdStatus), ("EXEC_TYPE", P.ExecType), ("REPORT_KIND", P.ReportKind),
    ("REJECT", P.RejectReason), ("DISCONNECT", P.DisconnectReason))


def generate() -> str:
    """The C header text (deterministic)."""
    out = [
        f"/* tradingd order/report rings (channel layout v{L.CHANNEL_MAJOR}.{L.CHANNEL_MINOR}) "
        "-- GENERATED from tradingd/segment/layout.py",
        " * and tradingd/exec/protocol.py by tradingd/exec/cheader.py. Do not edit by hand:",
        " * run `make c-header`.",
        " *",
        " * One client = two single-writer rings: /dev/shm/<segment>.orders.<client> (the",
        " * client writes) and /dev/shm/<segment>.reports.<client> (tradingd-exec writes).",
        " * A record: store ~seq_lo into its stamp, the body, seq_lo (release), then the",
        " * header's ring_cursor. Never publish record n unless n - capacity < the peer's",
        " * consumed count (orders: the report ring's peer_consumed; reports: the order ring's",
        " * peer_consumed, valid when its peer_generation is the report ring's generation).",
        " * A reader takes record p when slot p & (capacity-1) has stamp == (uint32_t)p before",
        " * and after copying it. The ready word is header.state (2 = live), stored last. */",
        f"#ifndef {GUARD}",
        f"#define {GUARD}",
        "",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "",
        f"#define TRADINGD_ORDERS_MAGIC 0x{L.ORDERS_MAGIC:016x}ULL /* \"TDORDERS\" */",
        f"#define TRADINGD_REPORTS_MAGIC 0x{L.REPORTS_MAGIC:016x}ULL /* \"TDREPRTS\" */",
        f"#define TRADINGD_CHANNEL_MAJOR {L.CHANNEL_MAJOR}",
        f"#define TRADINGD_CHANNEL_MINOR {L.CHANNEL_MINOR}",
        f"#define TRADINGD_CHANNEL_FINGERPRINT 0x{L.CHANNEL_FINGERPRINT:016x}ULL",
        "",
    ]
    for code, name in L.CHANNEL_STATE_NAMES.items():
        out.append(f"#define TRADINGD_CHANNEL_STATE_{name.upper()} {code}")
    for prefix, enum in _ENUMS:
        out.append("")
        for member in enum:
            out.append(f"#define TRADINGD_{prefix}_{member.name} {int(member)}")
    for s in L.CHANNEL_STRUCTS:
        out.append("")
        out.extend(cheader._struct(s))
    out += ["", f"#endif /* {GUARD} */", ""]
    return "\n".join(out)


def generate_doc() -> str:
    """``docs/order-rings.md`` (deterministic)."""
    out = [
        f"# Order and report rings (channel layout v{L.CHANNEL_MAJOR}.{L.CHANNEL_MINOR})",
        "",
        "Generated from `tradingd/segment/layout.py` and `tradingd/exec/protocol.py` by",
        "`tradingd/exec/cheader.py` (`make docs`): do not edit by hand. The C header is",
        "`tools/c/tradingd_orders.h`; `tradingd-inspect rings` and `orders` decode them.",
        "",
        f"- magics `0x{L.ORDERS_MAGIC:016x}` (\"TDORDERS\", order ring) and "
        f"`0x{L.REPORTS_MAGIC:016x}` (\"TDREPRTS\", report ring); channel fingerprint "
        f"`0x{L.CHANNEL_FINGERPRINT:016x}` (the data segment's is unchanged)",
        "- names: `/dev/shm/<segment>.orders.<client>` (created by the client: registering),",
        "  `/dev/shm/<segment>.reports.<client>` (created by tradingd-exec in answer)",
        "- states: " + ", ".join(f"{c} {n}" for c, n in L.CHANNEL_STATE_NAMES.items()),
        "",
        "## Why one ring per client, not one ring every client writes",
        "",
        _cap((CH.__doc__ or "").split("Why per client, and not one ring that every client "
                                      "writes (many-to-one): ", 1)[1].strip()),
        "",
        "## Protocol",
        "",
        (CH.__doc__ or "").split("The ring protocol is the data ring's", 1)[1]
        .split("Why per client", 1)[0].strip().replace("``", "`").join(
            ["The ring protocol is the data ring's", ""]),
        "",
        "## Slow clients, restarts",
        "",
        *_paragraphs(service_doc(), ("Slow clients:", "Clients:")),
        "## The journal, and what exec does per round",
        "",
        *_paragraphs(journal_doc(), ("File format:", "Appending is")),
        *_paragraphs(service_doc(), ("The order path per round", "The latency-critical path")),
        "## Codes",
        "",
    ]
    for prefix, enum in _ENUMS:
        out.append(f"- {enum.__name__} ({prefix.lower()}): "
                   + ", ".join(f"{int(m)} {m.name.lower()}" for m in enum))
    out.append("")
    for s in L.CHANNEL_STRUCTS:
        out += [f"## {s.name} ({s.size} bytes)", "", s.doc, "",
                "| offset | size | type | field | meaning |", "|---:|---:|---|---|---|"]
        for p in s.placed:
            meaning = p.field.meaning.replace("|", "\\|")
            out.append(f"| {p.offset} | {p.size} | {p.field.type} | `{p.name}` | {meaning} |")
        gaps = ", ".join(f"{o}..{o + n - 1}" for o, n in s.gaps())
        out += ["", f"Padding (zero): {gaps or 'none'}.", ""]
    return "\n".join(out)


def _cap(text: str) -> str:
    return (text[:1].upper() + text[1:]).replace("``", "`")


def service_doc() -> str:
    from tradingd.exec import service  # the daemon's design notes (its one written home)
    return service.__doc__ or ""


def journal_doc() -> str:
    from tradingd.exec import journal  # the journal's format (its one written home)
    return journal.__doc__ or ""


def _paragraphs(doc: str, starts: tuple[str, ...]) -> list[str]:
    out = []
    for para in doc.split("\n\n"):
        text = para.strip()
        if text.startswith(starts):
            text = re.sub(r":(?:meth|func|class|mod|data):`~?([^`]+)`", r"`\1`", text)
            out += [text.replace("``", "`"), ""]
    return out


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    print(generate_doc() if "--doc" in args else generate(), end="")


if __name__ == "__main__":
    main()
