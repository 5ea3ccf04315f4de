"""``tradingd-inspect cleanup``: remove a stale segment, never a live one.

The judgement is the producer's own (:func:`tradingd.segment.ownership.classify`), so the tool
and the daemon agree on what "stale" means: a segment is removed when its producer is
gone (stopped state; or running state with the PID dead and the heartbeat stale; or stuck
initialising past the grace period). It is refused, unless ``--force``:

* while the producer is alive (PID alive or heartbeat fresh: ``liveness.assess().alive``),
  or another producer is creating it right now (exit 73, as the producer refuses);
* for a file that is not a tradingd segment, or one of another layout version that may
  belong to a running producer of that version (exit 76).

A corrupt segment of this layout whose producer is not running is removed (keep a copy
first if you want a post-mortem: ``cp /dev/shm/NAME /tmp/``). Removal re-checks that the
name still refers to the very file judged (device and inode), so a segment a new producer
created meanwhile is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tradingd import constants as C
from tradingd.clock import Clock
from tradingd.errors import SegmentCorrupt, SegmentForeign, SegmentVersionMismatch
from tradingd.inspector.status import pid_detail
from tradingd.segment import layout as L
from tradingd.segment import liveness, ownership, shm


@dataclass
class CleanupResult:
    """What cleanup did: ``action`` is removed, would_remove, refused, nothing or changed."""

    action: str
    code: int
    message: str
    details: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"action": self.action, "code": self.code, "message": self.message,
                **self.details}


def _refusal(finding: ownership.Finding) -> tuple[int, str] | None:
    """Why this finding must not be removed without --force (None: it may be removed)."""
    verdict, err = finding.verdict, finding.error
    if verdict == ownership.SQUATTED:
        return C.EXIT_NOPERM, (f"it belongs to another account ({finding.reason}); root may "
                               f"remove it with --force")
    if verdict == ownership.LIVE:
        return C.EXIT_SEGMENT_OWNED, f"its producer is alive ({finding.reason})"
    if verdict == ownership.DYING:
        return C.EXIT_SEGMENT_OWNED, (f"{finding.reason}: it counts as alive until the "
                                      f"heartbeat times out (wait {finding.wait_s:.1f} s)")
    if verdict == ownership.INITIALISING:
        return C.EXIT_SEGMENT_OWNED, f"a producer is creating it right now ({finding.reason})"
    if verdict == ownership.REFUSED:
        if isinstance(err, SegmentForeign):
            return C.EXIT_PROTOCOL, (f"it is not a tradingd segment ({err.detail}); if nothing "
                                     f"else uses it, remove it with --force")
        if isinstance(err, SegmentVersionMismatch):
            return C.EXIT_PROTOCOL, (f"it was written by another tradingd layout "
                                     f"({err.detail}) and may belong to a running producer "
                                     f"of that version; stop it, or use --force")
        h = finding.header
        if (isinstance(err, SegmentCorrupt) and h and h.get("magic") == L.MAGIC
                and liveness.pid_alive(int(h["producer_pid"]),
                                       int(h["producer_start_ticks"]))):
            return C.EXIT_SEGMENT_OWNED, (f"it is corrupt ({err.detail}) but its producer "
                                          f"PID {h['producer_pid']} is running: stop it first")
    return None


def describe(finding: ownership.Finding, now_ns: int) -> dict[str, object]:
    """Generation, PID (and whether it runs), state and heartbeat age, as data."""
    h = finding.header
    if not h or h.get("magic") != L.MAGIC:
        return {"description": "no tradingd header"}
    return {
        "description": finding.describe(now_ns),
        "generation": f"{h['generation']:016x}",
        "pid": h["producer_pid"],
        "pid_status": pid_detail(int(h["producer_pid"]), int(h["producer_start_ticks"])),
        "state": L.STATE_NAMES.get(h["state"], str(h["state"])),
        "heartbeat_age_ns": (now_ns - h["heartbeat_ns"]) if h.get("heartbeat_ns") else None,
    }


def cleanup(name: str, clock: Clock, *, force: bool = False, dry_run: bool = False,
            heartbeat_factor: float = liveness.DEFAULT_TIMEOUT_FACTOR,
            init_grace_s: float = ownership.INIT_GRACE_S,
            owner: int | None = shm.OWNER_SELF) -> CleanupResult:
    """Judge ``/dev/shm/NAME`` and remove it if stale (or ``force``); see the module doc.

    ``owner``: the account our segments belong to; another account's file is refused
    (exit 77) unless ``force``.
    """
    finding = ownership.classify(name, clock=clock, timeout_factor=heartbeat_factor,
                                 init_grace_s=init_grace_s, owner=owner)
    path = finding.path
    now = clock.monotonic_ns()
    details: dict[str, object] = {"segment": path, "verdict": finding.verdict,
                                  "reason": finding.reason, "forced": False,
                                  **describe(finding, now)}
    if finding.verdict == ownership.ABSENT:
        return CleanupResult("nothing", C.EXIT_OK,
                             f"nothing to remove: {path} does not exist", details)
    what = f"{path} ({details['description']}; {details.get('pid_status', 'no PID')})" \
        if "pid" in details else f"{path} ({details['description']})"
    refused = _refusal(finding)
    if refused is not None and not force:
        code, why = refused
        return CleanupResult("refused", code, f"not removing {what}: {why}. "
                             f"--force removes it anyway", details)
    details["forced"] = refused is not None
    if dry_run:
        return CleanupResult("would_remove", C.EXIT_OK,
                             f"would remove {what}: {finding.reason}", details)
    if not ownership.remove_if_unchanged(name, finding.file_id):
        return CleanupResult("changed", C.EXIT_SEGMENT_OWNED,
                             f"not removed: {path} changed while it was examined (a new "
                             f"producer created it?); run cleanup again", details)
    forced = " (forced)" if details["forced"] else ""
    return CleanupResult("removed", C.EXIT_OK,
                         f"removed {what}{forced}: {finding.reason}", details)
