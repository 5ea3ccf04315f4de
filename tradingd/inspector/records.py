"""``latest`` and ``tail``: the data in a segment, decoded and labelled.

``latest`` shows each symbol's latest-value slot (read through its seqlock on a live
segment); ``tail`` the most recent ring records, and with ``--follow`` keeps printing new
ones as they are published, saying when the producer lapped it (records lost) and when
the segment stops or is replaced.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO

import numpy as np

from tradingd.clock import Clock
from tradingd.inspector.format import (
    Report,
    emit_json,
    fmt_ago,
    fmt_price,
    fmt_time_utc,
    fmt_volume,
    render_table,
)
from tradingd.inspector.source import LiveView, View, seqs_from_stamps
from tradingd.segment import layout as L
from tradingd.segment.model import LatestValue, SymbolInfo

#: Seconds between checks of the segment's name (stopped, removed, replaced) while following.
NAME_CHECK_INTERVAL_S = 0.5


def _symbol(symbols: list[SymbolInfo], i: int) -> SymbolInfo:
    if 0 <= i < len(symbols):
        return symbols[i]
    return SymbolInfo(name=f"#{i}?", price_decimals=6)


def latest_rows(symbols: list[SymbolInfo], latest: list[LatestValue | None],
                now_ns: int) -> list[dict[str, object]]:
    """One row per symbol: the raw values and their display forms."""
    rows = []
    for i, sym in enumerate(symbols):
        v = latest[i] if i < len(latest) else None
        row: dict[str, object] = {"id": i, "symbol": sym.name, "asset_class": sym.asset_class,
                                  "currency": sym.currency, "valid": bool(v and v.valid)}
        if v is not None:
            row.update({"seq": v.seq, "price": v.price, "volume": v.volume,
                        "event_ns": v.event_ns, "event_time": fmt_time_utc(v.event_ns),
                        "publish_ns": v.publish_ns, "age_ns": now_ns - v.publish_ns,
                        "price_text": fmt_price(v.price, sym.price_decimals)})
        rows.append(row)
    return rows


def render_latest(rows: Sequence[Report]) -> str:
    table = []
    for r in rows:
        if "seq" not in r:
            table.append((r["id"], r["symbol"], r["asset_class"], "-", "-", "(no data yet)",
                          "-", "-"))
            continue
        table.append((r["id"], r["symbol"], r["asset_class"], r["price_text"],
                      fmt_volume(float(r["volume"])), r["event_time"],
                      fmt_ago(int(r["age_ns"])), r["seq"]))
    return render_table(("id", "symbol", "class", "price", "volume", "event time (UTC)",
                         "age", "seq"), table, right=(0, 3, 4, 7))


def record_dicts(seqs: list[int], records: np.ndarray, symbols: list[SymbolInfo],
                 now_ns: int) -> list[dict[str, object]]:
    """Ring records as plain rows (raw numbers plus the symbol's name and display prices)."""
    out = []
    for seq, r in zip(seqs, records, strict=True):
        sid = int(r["symbol_id"])
        sym = _symbol(symbols, sid)
        row: dict[str, object] = {"seq": seq, "symbol_id": sid, "symbol": sym.name}
        for name in L.RECORD.names:
            if name not in ("seq_lo", "symbol_id"):
                row[name] = r[name].item()
        row["event_time"] = fmt_time_utc(int(r["event_ns"]))
        row["age_ns"] = now_ns - int(r["publish_ns"])
        row["decimals"] = sym.price_decimals
        out.append(row)
    return out


_TAIL_HEADERS = ("seq", "symbol", "event time (UTC)", "open", "high", "low", "close",
                 "volume", "published")


def _tail_cells(r: Report) -> tuple[object, ...]:
    d = int(r["decimals"])
    return (r["seq"], r["symbol"], r["event_time"],
            *(fmt_price(float(r[k]), d) for k in ("open", "high", "low", "close")),
            fmt_volume(float(r["volume"])), fmt_ago(int(r["age_ns"])))


def render_tail(rows: Sequence[Report]) -> str:
    return render_table(_TAIL_HEADERS, [_tail_cells(r) for r in rows],
                        right=(0, 3, 4, 5, 6, 7))


#: Followed records: fixed-width columns (no table to re-align), "published" left out.
_FOLLOW_LINE = "{:>10}  {:<10}  {:<24}  {:>12} {:>12} {:>12} {:>12}  {:>16}"
_FOLLOW_WIDTHS = (10, 10, 24, 12, 12, 12, 12, 16)


def tail_line(r: Report) -> str:
    """One followed record, as a line of fixed-width columns (no table to re-align)."""
    return _FOLLOW_LINE.format(*_tail_cells(r)[:8])


def tail_header() -> str:
    """The column header above followed records, and its rule, as plain ``tail`` prints."""
    return (_FOLLOW_LINE.format(*_TAIL_HEADERS[:8]).rstrip() + "\n"
            + _FOLLOW_LINE.format(*("-" * w for w in _FOLLOW_WIDTHS)))


def follow(view: LiveView, symbols: list[SymbolInfo], start: int, clock: Clock, *,
           as_json: bool, duration_s: float | None,
           out: TextIO | None = None) -> dict[str, object]:
    """Print records from sequence ``start`` on as they are published; return a summary.

    Ends on Ctrl-C, after ``duration_s``, or when the producer stops or its segment is
    removed or replaced. Lapping (the producer overwrote records before they were read)
    is reported as it happens.
    """
    out = out or sys.stdout
    reader = view.reader
    sub = reader.subscribe("oldest")
    sub.position = max(sub.position, start)
    deadline = None if duration_s is None else time.monotonic() + duration_s
    next_name_check = time.monotonic() + NAME_CHECK_INTERVAL_S
    printed = lost_reported = 0
    ended = "interrupted"
    if not as_json:
        out.write(tail_header() + "\n")
        out.flush()

    def report_lapping() -> None:
        nonlocal lost_reported
        if sub.lost > lost_reported:
            msg = (f"lapped: the producer overwrote {sub.lost - lost_reported} records "
                   f"before they were read ({sub.lost} lost in all)")
            if as_json:
                emit_json({"event": "lapped", "lost": sub.lost - lost_reported,
                           "lost_total": sub.lost}, out, compact=True)
            else:
                out.write(f"# {msg}\n")
            lost_reported = sub.lost

    try:
        while True:
            batch = sub.poll_batch(4096)
            if len(batch):
                rows = record_dicts(seqs_from_stamps(batch, sub.position - 1), batch,
                                    symbols, clock.monotonic_ns())
                for r in rows:
                    if as_json:
                        emit_json(r, out, compact=True)
                    else:
                        out.write(tail_line(r) + "\n")
                printed += len(rows)
                out.flush()
            report_lapping()
            if len(batch):
                continue
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                ended = "duration"
                break
            if reader.state not in L.RUNNING_STATES:
                ended = f"producer {L.STATE_NAMES.get(reader.state, 'gone')}"
                break
            if now >= next_name_check:
                next_name_check = now + NAME_CHECK_INTERVAL_S
                status = reader.name_status()
                if status != "same":
                    ended = ("segment removed" if status == "gone"
                             else "segment replaced by a new producer")
                    break
            wait = 0.2 if deadline is None else max(0.0, min(0.2, deadline - now))
            sub.wait_for_data(wait)
    except KeyboardInterrupt:
        ended = "interrupted"
    report_lapping()  # lapping seen just before the end (Ctrl-C) is announced too
    summary = {"event": "end", "reason": ended, "records": printed, "lost": sub.lost,
               "position": sub.position}
    if as_json:
        emit_json(summary, out, compact=True)
    else:
        out.write(f"# end of follow ({ended}): {printed} records shown, {sub.lost} lost\n")
    out.flush()
    return summary


def last_records(view: View, n: int, symbols: list[SymbolInfo],
                 clock: Clock) -> tuple[list[dict[str, object]], list[str]]:
    """The ``n`` newest records as rows (ages measured after reading them), and notes."""
    batch = view.last_records(n)
    return record_dicts(batch.seqs, batch.records, symbols, clock.monotonic_ns()), batch.notes
