"""``tradingd-inspect rings`` and ``orders``: the per-client order/report rings of a segment.

``rings``: one row per ring (``<segment>.orders.<client>``, ``<segment>.reports.<client>``):
owner PID (alive?), state, generation, heartbeat age, capacity, records written, records the
other side has taken, depth. A ring that is not a valid channel is listed with its problem.

``orders``: the last reports in each client's report ring, decoded, and the open orders
they show (an order whose latest report there leaves it new or partially filled). With
``--journal PATH`` the open orders come from replaying exec's journal instead: exec's own
state, independent of how much of it the ring still holds.
"""

from __future__ import annotations

import os
from typing import Any

from tradingd.clock import Clock
from tradingd.constants import SHM_DIR
from tradingd.errors import SegmentError
from tradingd.exec import journal as J
from tradingd.exec.engine import Engine
from tradingd.exec.protocol import OPEN, ExecType, OrdStatus, Report, ReportKind, reason_name
from tradingd.inspector.format import fmt_age_ns, render_table
from tradingd.segment import layout as L
from tradingd.segment.channel import KIND_ORDERS, KIND_REPORTS, ChannelReader, reports_name


def _ring_names(segment: str) -> list[tuple[str, str, str]]:
    """``(name, kind, client)`` of every ring of ``segment`` in /dev/shm."""
    out = []
    try:
        entries = sorted(os.listdir(SHM_DIR))
    except OSError:
        return []
    for e in entries:
        for kind in (KIND_ORDERS, KIND_REPORTS):
            prefix = f"{segment}.{kind}."
            if e.startswith(prefix) and len(e) > len(prefix):
                out.append((e, kind, e[len(prefix):]))
    return out


def ring_rows(segment: str, clock: Clock) -> list[dict[str, Any]]:
    """One dict per ring (see the module docstring)."""
    rows: list[dict[str, Any]] = []
    now = clock.monotonic_ns()
    for name, kind, client in _ring_names(segment):
        row: dict[str, Any] = {"ring": name, "kind": kind, "client": client}
        try:
            with ChannelReader(name, kind=kind, require_live=False) as r:
                h = r.header()
                consumed = int(h["peer_consumed"])
                row.update({
                    "state": L.CHANNEL_STATE_NAMES.get(int(h["state"]), str(h["state"])),
                    "generation": f"{int(h['generation']):016x}",
                    "owner_pid": int(h["owner_pid"]), "owner_alive": r.owner_alive(),
                    "heartbeat_age_s": (now - int(h["heartbeat_ns"])) / 1e9,
                    "capacity": r.capacity, "written": int(h["ring_cursor"]),
                    "peer_consumed": consumed,
                    "peer_generation": f"{int(h['peer_generation']):016x}",
                    "last_report_seq": int(h["last_report_seq"]),
                    "detail": int(h["detail"]), "problem": None})
        except (SegmentError, OSError) as exc:
            row.update({"state": "unusable", "problem": str(exc)})
        rows.append(row)
    return rows


def render_rings(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no order or report rings)"
    table = []
    for r in rows:
        if r.get("problem"):
            table.append([r["client"], r["kind"], "-", "-", r["state"], "-", "-", "-", "-"])
            continue
        table.append([r["client"], r["kind"], f"{r['owner_pid']}"
                      f"{'' if r['owner_alive'] else ' (dead)'}", r["generation"][:8],
                      r["state"], fmt_age_ns(int(r["heartbeat_age_s"] * 1e9)),
                      r["capacity"], r["written"], r["peer_consumed"]])
    text = render_table(["client", "ring", "owner", "gen", "state", "heartbeat", "capacity",
                         "written", "peer read"], table, right=(6, 7, 8))
    notes = [f"note: {r['ring']}: {r['problem']}" for r in rows if r.get("problem")]
    notes += ["peer read: orders -> reports the client has read; reports -> orders exec "
              "has taken"]
    return "\n".join([text, *notes])


def render_layout() -> str:
    """The channel structs' field tables (as ``tradingd-inspect layout`` shows the segment's)."""
    out = [f"tradingd order/report rings: channel layout v{L.CHANNEL_MAJOR}."
           f"{L.CHANNEL_MINOR}, fingerprint {L.CHANNEL_FINGERPRINT:016x}"]
    for s in L.CHANNEL_STRUCTS:
        out += ["", f"{s.name} ({s.size} bytes): {s.doc}",
                render_table(["offset", "size", "type", "field", "meaning"],
                             [[p.offset, p.size, p.field.type, p.name, p.field.meaning]
                              for p in s.placed], right=(0, 1))]
    return "\n".join(out)


def _report_dict(client: str, r: Report) -> dict[str, Any]:
    return {"client": client, "report_seq": r.report_seq, "id": r.client_order_id,
            "symbol": r.symbol.rstrip(b"\0").decode("ascii", "replace"),
            "kind": _name(ReportKind, r.report_kind), "exec_type": _name(ExecType, r.exec_type),
            "status": _name(OrdStatus, r.ord_status), "last_qty": r.last_qty,
            "last_px": r.last_px, "cum_qty": r.cum_qty, "leaves_qty": r.leaves_qty,
            "avg_px": r.avg_px, "reject_reason": reason_name(r.reject_reason),
            "market_seq": r.market_seq}


def _name(enum: Any, v: int) -> str:
    try:
        return str(enum(v).name.lower())
    except ValueError:
        return str(v)


def last_reports(segment: str, client: str, n: int) -> list[Report]:
    """The newest ``n`` reports still in the client's report ring."""
    out: list[Report] = []
    with ChannelReader(reports_name(segment, client), kind=KIND_REPORTS,
                       require_live=False) as r:
        cursor = r.cursor
        for seq in range(max(0, cursor - min(n, r.capacity)), cursor):
            r.position = seq
            t = r.poll()
            if t is not None:
                out.append(Report._make(t))
    return out


def order_report(segment: str, client: str | None, n: int,
                 journal: str | None) -> dict[str, Any]:
    """Last reports per client and the open orders (from the rings, or the journal)."""
    clients = sorted({c for _, kind, c in _ring_names(segment) if kind == KIND_REPORTS})
    if client is not None:
        clients = [c for c in clients if c == client]
    reports: list[dict[str, Any]] = []
    open_orders: list[dict[str, Any]] = []
    problems: list[str] = []
    for c in clients:
        try:
            reps = last_reports(segment, c, max(n, 1) if journal else 4096)
        except (SegmentError, OSError) as exc:
            problems.append(f"{c}: {exc}")
            continue
        reports += [_report_dict(c, r) for r in reps[-n:]] if n else []
        if journal is None:
            latest: dict[int, Report] = {}
            for r in reps:
                if r.report_kind == ReportKind.EXECUTION:
                    latest[r.client_order_id] = r
            open_orders += [_report_dict(c, r) for r in latest.values()
                            if r.ord_status in OPEN]
    if journal is not None:
        eng = Engine()
        for _e, _out in J.replay(J.read_entries(journal).entries, eng):
            pass
        for o in eng.open_orders():
            if client is None or o.client == client:
                open_orders.append({"client": o.client, "id": o.client_order_id,
                                    "symbol": o.symbol, "side": "buy" if o.side == 1
                                    else "sell", "status": o.status.name.lower(),
                                    "quantity": o.quantity, "cum_qty": o.cum_qty,
                                    "leaves_qty": o.leaves, "limit_price": o.limit_price})
    return {"segment": segment, "source": "journal" if journal else "report rings",
            "open_orders": open_orders, "last_reports": reports, "problems": problems}


def render_orders(rep: dict[str, Any]) -> str:
    lines = [f"open orders ({len(rep['open_orders'])}, from the {rep['source']}):"]
    rows = [[o["client"], o["id"], o["symbol"], o.get("side", ""), o["status"],
             o.get("quantity", o["cum_qty"] + o["leaves_qty"]), o["cum_qty"], o["leaves_qty"]]
            for o in rep["open_orders"]]
    lines.append(render_table(["client", "id", "symbol", "side", "status", "qty", "cum",
                               "leaves"], rows, right=(1, 5, 6, 7)) if rows else "  (none)")
    lines.append(f"last reports ({len(rep['last_reports'])}):")
    rows = [[r["client"], r["report_seq"], r["id"], r["symbol"], r["exec_type"], r["status"],
             f"{r['last_qty']} @ {r['last_px']:.6g}" if r["last_qty"] else "",
             r["cum_qty"], r["leaves_qty"],
             "" if r["reject_reason"] == "none" else r["reject_reason"]]
            for r in rep["last_reports"]]
    lines.append(render_table(["client", "seq", "id", "symbol", "exec", "status", "fill",
                               "cum", "leaves", "reject"], rows, right=(1, 2, 7, 8))
                 if rows else "  (none)")
    lines += [f"note: {p}" for p in rep["problems"]]
    return "\n".join(lines)


__all__ = ["last_reports", "order_report", "render_layout", "render_orders", "render_rings",
           "ring_rows"]
