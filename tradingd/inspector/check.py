"""``tradingd-inspect check``: a monitoring-plugin health check (Nagios/Icinga exit codes).

One line on stdout, ``TRADINGD <STATUS> - <reason> | <perfdata>``, and the exit code:

====  ========  ==============================================================================
code  status    when
====  ========  ==============================================================================
0     OK        state live (or finished: replay done, producer still up), producer PID alive,
                heartbeat fresh, and the newest record younger than ``--data-stale`` (if given)
1     WARNING   initialising for less than ``--init-grace`` seconds (a producer starting);
                heartbeat fresh but the PID is not visible (another PID namespace, or it died
                within the heartbeat timeout); newest record older than ``--data-stale``
2     CRITICAL  segment missing (no producer); producer dead (PID gone, heartbeat stale);
                heartbeat stale while the PID lives (hung, or stopped with SIGSTOP); state
                stopped but the segment left behind; initialising longer than the grace or
                its creator dead; another layout version (consumers refuse it); foreign file,
                corrupt or truncated header; newest record older than ``--data-stale-critical``
3     UNKNOWN   the check could not judge: permission denied on the segment, bad command
                line, bad configuration, or an internal error
====  ========  ==============================================================================

"Producer dead" and "data stale" are separate signals, as in iceoryx2: a live producer
that finished its replay publishes nothing, and only ``--data-stale`` turns that into a
warning. The heartbeat timeout is ``heartbeat_interval x --heartbeat-factor`` (the
consumer's ``heartbeat_timeout_factor``), at least 0.5 s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from tradingd.clock import Clock
from tradingd.inspector.format import fmt_age_ns, fmt_ago, fmt_count
from tradingd.inspector.source import (
    KIND_FOREIGN,
    KIND_INITIALISING,
    KIND_MISSING,
    KIND_PERMISSION,
    KIND_UNTRUSTED,
    KIND_VERSION,
    Opened,
)
from tradingd.inspector.status import facts, newest_publish_ns
from tradingd.segment import layout as L
from tradingd.segment.ownership import INIT_GRACE_S


class Status(IntEnum):
    """Monitoring-plugin exit codes."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True)
class CheckOptions:
    heartbeat_factor: float
    data_stale_s: float | None = None
    data_stale_critical_s: float | None = None
    init_grace_s: float = INIT_GRACE_S


@dataclass
class CheckResult:
    status: Status
    reason: str
    perfdata: list[str] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict)

    def line(self) -> str:
        perf = f" | {' '.join(self.perfdata)}" if self.perfdata else ""
        return f"TRADINGD {self.status.name} - {self.reason}{perf}"

    def as_dict(self) -> dict[str, object]:
        return {"status": self.status.name, "code": int(self.status), "reason": self.reason,
                "perfdata": self.perfdata, **self.details}


def _decimal(x: float) -> str:
    """A number as perfdata wants it: characters [-0-9.] only (no exponent, no unit)."""
    text = f"{x:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


#: Units of measurement the monitoring-plugins guideline allows after a perfdata value.
PERF_UOMS = ("", "s", "%", "B", "KB", "MB", "TB", "c")


def perfdata(label: str, value: float, uom: str = "", warn: float | None = None,
             crit: float | None = None, minimum: float | None = None,
             maximum: float | None = None) -> str:
    """One perfdata item, ``'label'=value[UOM];[warn];[crit];[min];[max]``, exactly as the
    monitoring-plugins development guidelines define it.

    The unit goes on the value only (thresholds, min and max are in the value's unit,
    written without it); numbers use ``[-0-9.]``; fields left empty at the end are dropped;
    the label is quoted only when it holds a space (it may not hold ``=`` or ``'``).
    """
    if "=" in label or "'" in label or not label:
        raise ValueError(f"perfdata label {label!r}: must be non-empty, without = or '")
    if uom not in PERF_UOMS:
        raise ValueError(f"perfdata unit {uom!r}: one of {', '.join(PERF_UOMS[1:])} or none")
    fields = [f"{_decimal(value)}{uom}",
              *("" if x is None else _decimal(x) for x in (warn, crit, minimum, maximum))]
    while fields[-1] == "":
        fields.pop()
    name = f"'{label}'" if " " in label else label
    return f"{name}={';'.join(fields)}"


def evaluate(opened: Opened, clock: Clock, opts: CheckOptions) -> CheckResult:
    """Judge a probed segment (see the module docstring for the table)."""
    p = opened.probe
    where = p.source.where
    details: dict[str, object] = {"segment": where,
                                  "problem": p.problem.as_dict() if p.problem else None}
    if p.problem is not None and p.problem.kind == KIND_MISSING:
        return CheckResult(Status.CRITICAL, f"segment {where} does not exist: the producer is "
                           f"not running (or uses another segment name)", details=details)
    if p.problem is not None and p.problem.kind == KIND_PERMISSION:
        return CheckResult(Status.UNKNOWN, p.problem.message, details=details)
    h = p.header
    now = clock.monotonic_ns()
    state = int(h["state"]) if "state" in h else None
    if (p.problem is not None and p.problem.kind == KIND_INITIALISING) or (
            p.problem is None and state in (L.STATE_EMPTY, L.STATE_INITIALISING)):
        return _initialising(opened, clock, opts, details)
    if p.problem is not None:
        kind = p.problem.kind
        what = {KIND_VERSION: "written by another tradingd layout (consumers refuse it)",
                KIND_FOREIGN: "not a tradingd segment",
                KIND_UNTRUSTED: "not the producer's (consumers refuse it)"}.get(kind, kind)
        return CheckResult(Status.CRITICAL, f"{what}: {p.problem.message}", details=details)
    f = facts(h, now, opts.heartbeat_factor)
    live = f.live
    assert live is not None and state is not None  # a sound header has every field
    pid = int(h["producer_pid"])
    hb_age = live.heartbeat_age_ns
    cursor = int(h["ring_cursor"])
    perf = [perfdata("heartbeat_age", hb_age / 1e9, "s",
                     crit=None if f.timeout_ns is None else f.timeout_ns / 1e9),
            perfdata("records", cursor, "c")]
    details.update({"state": L.STATE_NAMES.get(state, str(state)), "pid": pid,
                    "pid_status": f.pid, "heartbeat_age_ns": hb_age,
                    "heartbeat_timeout_ns": f.timeout_ns, "records": cursor,
                    "generation": f"{int(h['generation']):016x}"})
    hb = f"heartbeat {fmt_ago(hb_age)}"
    if state == L.STATE_STOPPED:
        return CheckResult(Status.CRITICAL, f"producer PID {pid} stopped (state stopped) and "
                           f"segment {where} is still there; {hb}", perf, details)
    if state not in L.RUNNING_STATES:
        return CheckResult(Status.CRITICAL, f"unknown state {state}", perf, details)
    if not live.pid_alive and not live.heartbeat_fresh:
        return CheckResult(Status.CRITICAL, f"producer PID {pid} is {f.pid}, {hb}: "
                           f"stale segment {where} (tradingd-inspect cleanup removes it)",
                           perf, details)
    if not live.heartbeat_fresh:
        return CheckResult(Status.CRITICAL, f"heartbeat stale: last beat {fmt_ago(hb_age)} "
                           f"(timeout {fmt_age_ns(f.timeout_ns or 0)}) while producer PID "
                           f"{pid} is {f.pid}: hung or stopped", perf, details)
    finished = " (replay finished)" if state == L.STATE_FINISHED else ""
    summary = (f"segment {where} {L.STATE_NAMES[state]}{finished}, pid {pid}, {hb}, "
               f"{fmt_count(cursor)} records")
    status = Status.OK
    reasons: list[str] = []
    if not live.pid_alive:
        status = Status.WARNING
        reasons.append(f"PID {pid} not visible here ({f.pid}) although the heartbeat is "
                       f"fresh (another PID namespace, or it just died)")
    if state == L.STATE_UPSTREAM_DOWN:  # a mirror whose upstream is not delivering
        status = Status.WARNING
        up = L.UPSTREAM_NAMES.get(int(h.get("upstream_state", 0)), "?")
        reasons.append(f"mirror upstream down ({up}): the mirror runs, its origin does not "
                       f"deliver")
    if opened.view is not None:
        newest = newest_publish_ns(opened.view.latest_all())
        if newest is not None:
            data_age = max(0, clock.monotonic_ns() - newest)  # read after the slots
            data_text = f"last record {fmt_ago(data_age)}"
        else:
            start = int(h.get("producer_start_ns", 0))
            data_age = max(0, clock.wall_ns() - start) if start else 0
            data_text = f"no record yet ({fmt_age_ns(data_age)} since start)"
        details["data_age_ns"] = data_age
        perf.append(perfdata("data_age", data_age / 1e9, "s", opts.data_stale_s,
                             opts.data_stale_critical_s))
        summary += f", {data_text}"
        crit, warn = opts.data_stale_critical_s, opts.data_stale_s
        if crit is not None and data_age > crit * 1e9:
            status = Status.CRITICAL
            reasons.append(f"data stale: {data_text} (critical after {crit:g} s)")
        elif warn is not None and data_age > warn * 1e9:
            status = max(status, Status.WARNING)
            reasons.append(f"data stale: {data_text} (warning after {warn:g} s)")
    reason = "; ".join([*reasons, summary]) if reasons else summary
    return CheckResult(status, reason, perf, details)


def _initialising(opened: Opened, clock: Clock, opts: CheckOptions,
                  details: dict[str, object]) -> CheckResult:
    """Being created now (WARNING) or left half-built (CRITICAL)."""
    p = opened.probe
    h = p.header
    where = p.source.where
    # the creator's PID is written first (state initialising), before the magic
    pid = (int(h.get("producer_pid", 0)) if h.get("magic") == L.MAGIC
           or h.get("state") == L.STATE_INITIALISING else 0)
    if pid:
        f = facts(h, clock.monotonic_ns(), opts.heartbeat_factor)
        details.update({"pid": pid, "pid_status": f.pid})
        if not f.pid.startswith("alive"):
            return CheckResult(Status.CRITICAL, f"segment {where} left half-initialised by "
                               f"producer PID {pid} ({f.pid}): tradingd-inspect cleanup "
                               f"removes it", details=details)
    started_ns = max(p.info.mtime_ns if p.info else 0,
                     int(h.get("producer_start_ns", 0)) if pid else 0)
    age = clock.wall_ns() - started_ns if started_ns else 0
    details["initialising_for_ns"] = age
    if age > opts.init_grace_s * 1e9:
        return CheckResult(Status.CRITICAL, f"segment {where} still initialising after "
                           f"{fmt_age_ns(age)} (grace {opts.init_grace_s:g} s): its creator "
                           f"is stuck or was killed", details=details)
    return CheckResult(Status.WARNING, f"segment {where} initialising (created "
                       f"{fmt_ago(age)}): a producer is starting", details=details)
