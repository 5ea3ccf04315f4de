"""``tradingd-inspect watch``: a live view of status, rates and latest prices.

A plain refresh loop: every ``--interval`` seconds the screen is cleared (ANSI
``ESC[H ESC[2J``, only when stdout is a terminal) and one frame is drawn: the status line,
publish and heartbeat rates measured between frames, and the latest-value table.
``--count N`` stops after N frames (scripts, tests); ``--json`` writes one JSON object per
frame per line instead. When the segment disappears or a new producer replaces it, the
view says so and attaches to the new one as soon as it is there.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from tradingd import constants as C
from tradingd.clock import Clock
from tradingd.inspector.format import Report, emit_json, fmt_count, fmt_time_utc
from tradingd.inspector.records import latest_rows, render_latest
from tradingd.inspector.source import LiveView, Opened, Source, open_source
from tradingd.inspector.status import facts, summary_line
from tradingd.segment import layout as L

CLEAR = "\x1b[H\x1b[2J"


@dataclass
class _Prev:
    generation: int
    cursor: int
    beats: int
    t_ns: int


def frame(opened: Opened, clock: Clock, factor: float, prev: _Prev | None,
          number: int, interval: float) -> tuple[dict[str, object], _Prev | None]:
    """One frame as data, and the counters to measure the next frame's rates against."""
    now = clock.monotonic_ns()
    p = opened.probe
    data: dict[str, object] = {"frame": number, "time": fmt_time_utc(clock.wall_ns()),
                               "segment": p.source.where,
                               "problem": p.problem.as_dict() if p.problem else None}
    view = opened.view
    if not isinstance(view, LiveView):
        data["summary"] = (f"segment {p.source.where}: {p.problem.message}" if p.problem
                           else f"segment {p.source.where}: not readable")
        return data, None
    h = view.header()
    f = facts(h, now, factor)
    data["summary"] = summary_line(p.source.where, h, f, now)
    data["state"] = L.STATE_NAMES.get(int(h["state"]), str(h["state"]))
    cur = _Prev(int(h["generation"]), int(h["ring_cursor"]), int(h["heartbeat_count"]), now)
    rates: dict[str, float | None] = {"records_per_s": None, "heartbeats_per_s": None}
    if prev is not None and prev.generation == cur.generation and now > prev.t_ns:
        dt = (now - prev.t_ns) / 1e9
        rates = {"records_per_s": (cur.cursor - prev.cursor) / dt,
                 "heartbeats_per_s": (cur.beats - prev.beats) / dt}
    data["rates"] = rates
    data["records"] = cur.cursor
    latest = view.latest_all()
    data["latest"] = latest_rows(view.symbols(), latest, clock.monotonic_ns())
    data["notes"] = list(view.notes)
    view.notes.clear()
    return data, cur


def render_frame(data: Report, interval: float) -> str:
    out = [f"tradingd-inspect watch: {data['segment']}, {data['time']} "
           f"(every {interval:g} s, frame {data['frame']}; Ctrl-C to quit)", "",
           str(data["summary"])]
    rates = data.get("rates")
    if isinstance(rates, dict):
        r, b = rates["records_per_s"], rates["heartbeats_per_s"]
        out.append("rates: measuring…" if r is None else
                   f"rates: {fmt_count(round(r))} records/s, {b:.1f} heartbeats/s")
    latest = data.get("latest")
    if isinstance(latest, list) and latest:
        out.append("")
        out.append(render_latest(latest))
    notes = data.get("notes")
    if notes:
        out.append("")
        out.extend(f"note: {n}" for n in notes)
    return "\n".join(out)


def watch(source: Source, clock: Clock, *, factor: float, interval: float,
          count: int | None, as_json: bool, out: TextIO | None = None,
          sleep: Callable[[float], None] = time.sleep) -> int:
    """Draw frames until Ctrl-C or ``count`` frames; 2 if the last frame showed a problem."""
    out = out or sys.stdout
    clear = out.isatty() and not as_json
    opened: Opened | None = None
    prev: _Prev | None = None
    number = 0
    problem = False
    try:
        while count is None or number < count:
            if opened is not None and (not isinstance(opened.view, LiveView)
                                       or opened.view.reader.name_status() != "same"):
                opened.close()
                opened = None
            if opened is None:
                opened = open_source(source)
            data, prev = frame(opened, clock, factor, prev, number, interval)
            problem = data["problem"] is not None
            if as_json:
                emit_json(data, out, compact=True)
            else:
                out.write((CLEAR if clear else "") + render_frame(data, interval) + "\n")
                if not clear:
                    out.write("\n")
                out.flush()
            number += 1
            if count is None or number < count:
                sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        if opened is not None:
            opened.close()
    return C.EXIT_SEGMENT_PROBLEM if problem else C.EXIT_OK
