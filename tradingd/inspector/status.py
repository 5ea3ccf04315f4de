"""``tradingd-inspect status``: one AeronStat-style line, then the header and counters.

The line answers "is it alive and what is in it" at a glance::

    tradingd v1.2 segment /dev/shm/tradingd, generation 7f3a9c01…, pid 4211 (alive),
    state live, heartbeat 12 ms ago, 3.2M records, ring 65536 x 64 B

followed by every header field (offset, value, what it means now), the counters, the
region table, the symbol table and a short consistency report. For a damaged segment the
fields that exist in the file are shown and the problem is stated with its offset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tradingd.clock import Clock
from tradingd.inspector.format import (
    Report,
    Value,
    fmt_age_ns,
    fmt_ago,
    fmt_bytes,
    fmt_count,
    fmt_time_utc,
    fmt_value,
    magic_text,
    render_table,
)
from tradingd.inspector.layoutinfo import regions_of
from tradingd.inspector.source import LiveView, Opened, Probe, View
from tradingd.segment import layout as L
from tradingd.segment import liveness
from tradingd.segment.model import LatestValue, SymbolInfo

#: Header fields that count things (shown again under "counters").
COUNTERS = ("ring_cursor", "heartbeat_count", "replay_loops", "rows_rejected", "wake_seq")
#: How many of the newest ring records the consistency report checks.
CONSISTENCY_RECORDS = 4096


def pid_detail(pid: int, start_ticks: int) -> str:
    """What became of a producer PID: alive, stopped (SIGSTOP), zombie, reused or dead."""
    if pid <= 0:
        return "none"
    if not liveness.pid_alive(pid, 0):
        return "dead"
    if not liveness.pid_alive(pid, start_ticks):
        now_ticks = liveness.process_start_ticks(pid)
        if start_ticks and now_ticks and now_ticks != start_ticks:
            return "dead (PID reused by another process)"
        return "zombie (exited, not yet reaped)"
    state = _proc_state(pid)
    if state in ("T", "t"):
        return "alive but stopped (SIGSTOP or a debugger)"
    return "alive"


def _proc_state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return "?"
    return data[data.rfind(b")") + 2:][:1].decode("ascii", "replace")


def has_liveness_fields(h: Mapping[str, Value]) -> bool:
    return all(k in h for k in ("heartbeat_ns", "heartbeat_interval_ns", "producer_pid",
                                "producer_start_ticks", "state"))


def assess(h: Mapping[str, Value], now_ns: int, factor: float) -> liveness.Liveness | None:
    """:func:`tradingd.segment.liveness.assess` on a possibly partial header; None if it cannot."""
    if not has_liveness_fields(h) or h.get("magic") != L.MAGIC:
        return None
    return liveness.assess({k: int(v) for k, v in h.items() if isinstance(v, int)},
                           now_ns, factor)


def newest_publish_ns(latest: list[LatestValue | None]) -> int | None:
    """The monotonic time of the most recent record of any symbol (None: nothing yet)."""
    stamps = [v.publish_ns for v in latest if v is not None and v.valid]
    return max(stamps) if stamps else None


@dataclass(frozen=True)
class Facts:
    """What the other subcommands (check, watch) need from one look at a segment."""

    header: Mapping[str, Value]
    live: liveness.Liveness | None
    pid: str
    timeout_ns: int | None


def facts(h: Mapping[str, Value], now_ns: int, factor: float) -> Facts:
    live = assess(h, now_ns, factor)
    pid = pid_detail(int(h.get("producer_pid", 0)), int(h.get("producer_start_ticks", 0))) \
        if "producer_pid" in h and h.get("magic") == L.MAGIC else "unknown"
    timeout = (liveness.heartbeat_timeout_ns(int(h["heartbeat_interval_ns"]), factor)
               if "heartbeat_interval_ns" in h else None)
    return Facts(h, live, pid, timeout)


def summary_line(where: str, h: Mapping[str, Value], f: Facts, now_ns: int) -> str:
    """The one-line status (every part that the header has)."""
    if h.get("magic") != L.MAGIC:
        if h.get("magic") == 0:
            return f"segment {where}: no magic number yet (being created, or not a segment)"
        return f"segment {where}: not a tradingd segment"
    parts = [f"tradingd v{h.get('layout_major', '?')}.{h.get('layout_minor', '?')} "
             f"segment {where}"]
    if "generation" in h:
        parts.append(f"generation {int(h['generation']):016x}"[:19] + "…")
    if "producer_pid" in h:
        parts.append(f"pid {h['producer_pid']} ({f.pid})")
    if "state" in h:
        parts.append(f"state {L.STATE_NAMES.get(int(h['state']), h['state'])}")
    if "heartbeat_ns" in h and int(h["heartbeat_ns"]):
        stale = "" if f.live is None or f.live.heartbeat_fresh else " (STALE)"
        parts.append(f"heartbeat {fmt_ago(now_ns - int(h['heartbeat_ns']))}{stale}")
    if "ring_cursor" in h:
        parts.append(f"{fmt_count(int(h['ring_cursor']))} records")
    if "ring_capacity" in h and "ring_record_size" in h:
        parts.append(f"ring {h['ring_capacity']} x {h['ring_record_size']} B")
    mirror = mirror_text(h)
    if mirror:
        parts.append(mirror)
    return ", ".join(parts)


def mirror_text(h: Mapping[str, Value]) -> str:
    """For a mirror segment (layout v1.3, tradingd-bridge mirror): of what, how far behind.

    ``mirror of host:segment gen 1a2b3c4d… (upstream live, 12 ms behind, origin seq 4711,
    stream seq 93, 0 gap records)``; empty for a producer's own segment.
    """
    code = h.get("upstream_state")
    if not isinstance(code, int) or code == L.UPSTREAM_NONE:
        return ""
    host, seg = h.get("upstream_host", "?"), h.get("upstream_segment", "?")
    name = L.UPSTREAM_NAMES.get(code, str(code))
    if code not in (L.UPSTREAM_LIVE, L.UPSTREAM_FINISHED):
        name = f"DOWN: {name}"
    lag = h.get("upstream_lag_ns", 0)
    return (f"mirror of {host}:{seg} gen {int(h.get('upstream_generation', 0)):016x}"[:-8] +
            f"… (upstream {name}, {fmt_age_ns(int(lag))} behind, origin seq "
            f"{h.get('upstream_next_seq', 0)}, stream seq {h.get('upstream_stream_seq', 0)}, "
            f"{h.get('upstream_gap_records', 0)} gap records)")


def field_note(name: str, value: Value, h: Mapping[str, Value], f: Facts, now_ns: int,
               file_size: int | None) -> str:
    """What a header value means right now (the "note" column)."""
    if not isinstance(value, int):
        return ""
    if name == "magic":
        return "ok" if value == L.MAGIC else f"{magic_text(value)}: NOT a tradingd segment"
    if name == "layout_major":
        return "ok" if value == L.LAYOUT_MAJOR else f"this inspector reads {L.LAYOUT_MAJOR}.x"
    if name == "layout_fingerprint":
        return ("matches this tradingd" if value == L.LAYOUT_FINGERPRINT
                else f"expected 0x{L.LAYOUT_FINGERPRINT:016x}")
    if name == "header_size":
        return "ok" if value == L.HEADER.size else f"expected {L.HEADER.size}"
    if name == "total_size":
        if file_size is None:
            return fmt_bytes(value)
        ok = "" if value <= file_size else f", but the file has only {file_size}: TRUNCATED"
        return f"{fmt_bytes(value)}{ok}"
    if name == "producer_pid":
        return f.pid
    if name == "producer_start_ns":
        return fmt_time_utc(value) if value else ""
    if name == "state":
        return L.STATE_NAMES.get(value, "unknown state")
    if name == "heartbeat_ns":
        if not value:
            return "never"
        fresh = ("" if f.live is None else " (fresh)" if f.live.heartbeat_fresh
                 else f" (STALE: timeout {fmt_age_ns(f.timeout_ns or 0)})")
        return fmt_ago(now_ns - value) + fresh
    if name == "heartbeat_interval_ns":
        return fmt_age_ns(value)
    if name in ("symtab_entry_size", "latest_slot_size", "ring_record_size"):
        struct_ = {"symtab_entry_size": L.SYMBOL, "latest_slot_size": L.LATEST,
                   "ring_record_size": L.RECORD}[name]
        return "ok" if value == struct_.size else f"expected {struct_.size}"
    if name == "ring_cursor":
        return f"{fmt_count(value)} records published"
    if name == "upstream_state":
        return L.UPSTREAM_NAMES.get(value, "unknown")
    if name == "upstream_lag_ns" and h.get("upstream_state"):
        return f"{fmt_age_ns(value)} behind the origin"
    return ""


def header_rows(h: Mapping[str, Value], f: Facts, now_ns: int,
                file_size: int | None) -> list[dict[str, object]]:
    """Every header field the file has: offset, name, value, note."""
    rows = []
    for p in L.HEADER.placed:
        if p.name not in h:
            rows.append({"offset": p.offset, "field": p.name, "value": None,
                         "shown": "(beyond end of file)", "note": ""})
            continue
        v = h[p.name]
        rows.append({"offset": p.offset, "field": p.name, "value": v,
                     "shown": fmt_value(p, v),
                     "note": field_note(p.name, v, h, f, now_ns, file_size)})
    return rows


def consistency(view: View, symbols: list[SymbolInfo], latest: list[LatestValue | None],
                cursor: int) -> list[str]:
    """Cross-checks of the data against the header: findings, empty if all is well."""
    out = list(view.notes)
    for i, v in enumerate(latest):
        if v is not None and v.seq >= cursor:
            out.append(f"latest slot {i} ({symbols[i].name}) holds seq {v.seq}, not below the "
                       f"ring cursor {cursor}")
    batch = view.last_records(CONSISTENCY_RECORDS)
    out.extend(batch.notes)
    if len(batch.records):
        bad = batch.records["symbol_id"] >= len(symbols)
        if bad.any():
            first = int(bad.argmax())
            out.append(f"{int(bad.sum())} of the newest {len(batch.records)} records name a "
                       f"symbol id beyond the symbol table (first: seq {batch.seqs[first]})")
    return out


def status_report(opened: Opened, clock: Clock, factor: float) -> dict[str, object]:
    """Everything ``status`` shows, as plain data (the ``--json`` form)."""
    p: Probe = opened.probe
    now = clock.monotonic_ns()
    view = opened.view
    h = dict(view.header()) if isinstance(view, LiveView) else dict(p.header)
    f = facts(h, now, factor)
    size = p.info.size if p.info else None
    report: dict[str, Any] = {
        "segment": {"where": p.source.where, "name": p.source.name,
                    "file": p.info.as_dict() if p.info else None},
        "ok": p.ok,
        "problem": p.problem.as_dict() if p.problem else None,
        "summary": (summary_line(p.source.where, h, f, now) if h
                    else p.problem.message if p.problem else f"segment {p.source.where}"),
        "header": {k: v for k, v in h.items()},
        "fields": header_rows(h, f, now, size) if h else [],
        "state": L.STATE_NAMES.get(int(h["state"]), "unknown") if "state" in h else None,
        "pid_status": f.pid,
        "liveness": None if f.live is None else {
            "alive": f.live.alive, "healthy": f.live.healthy, "pid_alive": f.live.pid_alive,
            "heartbeat_age_ns": f.live.heartbeat_age_ns,
            "heartbeat_fresh": f.live.heartbeat_fresh, "heartbeat_timeout_ns": f.timeout_ns,
            "running_state": f.live.running_state},
        "counters": {k: h[k] for k in COUNTERS if k in h},
        "regions": regions_of(p.geometry) if p.geometry else [],
        "symbols": [],
        "consistency": [],
    }
    if p.geometry and size is not None:
        for r in report["regions"]:
            r["present"] = r["offset"] + r["size"] <= size
    if view is not None and p.geometry is not None:
        symbols = view.symbols()
        latest = view.latest_all()
        report["symbols"] = [s._asdict() for s in symbols]
        # the cursor read after the slots: a slot may hold a record newer than the header copy
        cursor = (view.reader.cursor if isinstance(view, LiveView)
                  else int(h.get("ring_cursor", 0)))
        report["consistency"] = consistency(view, symbols, latest, cursor)
        newest = newest_publish_ns(latest)
        report["last_publish_age_ns"] = (None if newest is None
                                         else max(0, clock.monotonic_ns() - newest))
    return report


def render_status(r: Report) -> str:
    """The text form of :func:`status_report`."""
    out = [str(r["summary"])]
    problem = r["problem"]
    if problem and problem["message"] != r["summary"]:
        out.append(f"PROBLEM ({problem['kind']}): {problem['message']}")
    seg = r["segment"]
    file = seg["file"]
    if file:
        out.append(f"file: {seg['where']}, {file['size']} bytes, mode {file['mode']}, "
                   f"owner {file['owner']}, group {file['group']}")
    if r["fields"]:
        out.append("")
        out.append("Header")
        out.append(render_table(
            ("offset", "field", "value", "note"),
            [(x["offset"], x["field"], x["shown"], x["note"])
             for x in r["fields"]],
            right=(0,)))
    counters = r["counters"]
    if counters:
        out.append("")
        out.append("Counters")
        labels = {"ring_cursor": "records published", "heartbeat_count": "heartbeats",
                  "replay_loops": "replay loops", "rows_rejected": "rows rejected",
                  "wake_seq": "reader wake-ups"}
        out.append(render_table(("counter", "value"),
                                [(labels[k], v) for k, v in counters.items()],
                                right=(1,)))
        age = r.get("last_publish_age_ns")
        if age is not None:
            out.append(f"last record published {fmt_ago(int(age))}")
    if r["regions"]:
        out.append("")
        out.append("Regions")
        out.append(render_table(
            ("region", "offset", "size", "element", "count", "in file"),
            [(x["region"], x["offset"], x["size"], f"{x['element']} x {x['element_size']} B",
              x["count"], "yes" if x.get("present", True) else "NO (truncated)")
             for x in r["regions"]],
            right=(1, 2, 4)))
    if r["symbols"]:
        out.append("")
        out.append("Symbols")
        out.append(render_table(
            ("id", "symbol", "class", "currency", "decimals", "bar interval", "records"),
            [(i, s["name"], s["asset_class"], s["currency"], s["price_decimals"],
              fmt_age_ns(s["bar_interval_ns"]) if s["bar_interval_ns"] else "-",
              s["record_count"]) for i, s in enumerate(r["symbols"])],
            right=(0, 4, 6)))
    if r["ok"] and r["symbols"] is not None:
        found = r["consistency"]
        out.append("")
        out.append("Consistency: ok (latest slots and the newest ring records check out)"
                   if not found else "Consistency: " + "; ".join(found))
    elif r["consistency"]:
        out.append("")
        out.append("Notes: " + "; ".join(r["consistency"]))
    return "\n".join(out)
