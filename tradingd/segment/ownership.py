"""Who owns a segment name, and taking it over from a dead producer.

A producer that finds ``/dev/shm/NAME`` already there must tell apart:

* a **live** producer (running state and a fresh heartbeat or a live PID: the rule in
  :func:`tradingd.segment.liveness.assess`): refuse to start (:class:`SegmentOwned`, exit 73);
* a **stale** segment (stopped, or running state but the producer is dead, or stuck
  initialising past a grace period): log what it was and remove it, then create anew;
* a producer that is **initialising** right now (a second producer started at the same
  moment): wait until it is live (then refuse) or the grace period ends (then stale);
* a file of **another account** (``SQUATTED``): someone else created the name (``/dev/shm``
  is world-writable). Never removed; the producer waits ``squat_wait_s`` for it to go
  away, then refuses with :class:`SegmentSquatted` (exit 75, restarted by systemd);
* a file that is **not ours to judge**: not a tradingd segment (foreign magic), another
  layout version, or a tradingd header that makes no sense. Such a file is never deleted
  silently: refuse with its error (exit 76) and tell the operator what to do.

The classification (:func:`classify`) is shared with ``tradingd-inspect cleanup``; the
producer calls :func:`create_owned`, which loops create -> classify -> reclaim until it
either owns a fresh segment or must refuse. ``O_EXCL`` creation is what decides a race
between two producers: the loser gets SegmentExists, classifies again and finds the
winner initialising or live. Removal only happens if the name still points at the very
file that was judged stale (same device and inode), so one producer never deletes a
segment another has just created. (A window of a few microseconds remains between that
check and the unlink; it would take a third producer creating the name inside it.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from tradingd.clock import SYSTEM_CLOCK, Clock
from tradingd.errors import (
    SegmentCorrupt,
    SegmentError,
    SegmentExists,
    SegmentForeign,
    SegmentNotFound,
    SegmentNotReady,
    SegmentOwned,
    SegmentSquatted,
    SegmentUntrusted,
    SegmentVersionMismatch,
)
from tradingd.segment import layout as L
from tradingd.segment import liveness, shm
from tradingd.segment.reader import HEADER_INT_FIELDS, SegmentReader

log = logging.getLogger(__name__)

#: How long a segment may stay initialising (its creator alive) before it counts as stale.
#: Creating takes milliseconds; anything this old is a producer stuck or killed mid-way.
INIT_GRACE_S = 5.0
#: How often to look again while another producer initialises, or a dead one's
#: heartbeat has not yet gone stale.
RECHECK_INTERVAL_S = 0.05

ABSENT = "absent"
LIVE = "live"  # a live producer owns it: refuse
STALE = "stale"  # reclaimable
INITIALISING = "initialising"  # another producer is creating it right now: wait
DYING = "dying"  # PID dead but heartbeat not yet stale: wait for the heartbeat to age
REFUSED = "refused"  # foreign, other version, or corrupt: the operator decides
SQUATTED = "squatted"  # a file of another account holds the name: not ours to judge or remove


@dataclass(frozen=True)
class Finding:
    """What is under a segment name, judged at one instant.

    ``header`` is the header as far as it could be read (None for an empty or unreadable
    file); ``error`` is the reader's error for a file that is not a usable segment;
    ``wait_s`` says how long to wait before judging again (INITIALISING and DYING).
    """

    verdict: str
    path: str
    reason: str
    file_id: shm.FileId | None = None
    header: dict[str, int] | None = None
    error: SegmentError | None = None
    wait_s: float = 0.0

    @property
    def pid(self) -> int:
        return int(self.header["producer_pid"]) if self.header else 0

    def describe(self, now_ns: int | None = None) -> str:
        """``generation 0x1234, PID 4242, state live, last heartbeat 3.2 s ago``."""
        h = self.header
        if not h or h.get("magic") != L.MAGIC:
            return "no tradingd header"
        parts = [f"generation {h['generation']:#x}", f"PID {h['producer_pid']}",
                 f"state {L.STATE_NAMES.get(h['state'], str(h['state']))}"]
        if h.get("heartbeat_ns"):
            now = time.monotonic_ns() if now_ns is None else now_ns
            age = (now - h["heartbeat_ns"]) / 1e9
            parts.append(f"last heartbeat {age:.1f} s ago ({h['heartbeat_count']} beats)")
        else:
            parts.append("never heartbeat")
        return ", ".join(parts)


def _raw_header(path: str) -> tuple[dict[str, int] | None, shm.FileId | None, float]:
    """The header bytes as they are (no validation), the file's identity and mtime.

    Used when the reader refuses the file, to still say what it held. Reads at most the
    header's size with plain ``read`` (no mapping: a truncated file cannot SIGBUS us).
    """
    try:
        fd, st = shm.open_segment(path)  # O_NONBLOCK, regular files only: a FIFO cannot hang us
    except SegmentError:
        return None, None, 0.0
    try:
        data = shm.read_header(fd, L.HEADER.size)
    finally:
        os.close(fd)
    file_id = shm.FileId(st.st_dev, st.st_ino)
    if len(data) < L.HEADER.size:
        return None, file_id, st.st_mtime
    row = np.frombuffer(data, L.HEADER_DTYPE, count=1)[0]
    return {n: int(row[n]) for n in HEADER_INT_FIELDS}, file_id, st.st_mtime


def _file_id(path: str) -> shm.FileId | None:
    return shm.FileId.of_path(path)


def classify(name: str, *, clock: Clock = SYSTEM_CLOCK,
             timeout_factor: float = liveness.DEFAULT_TIMEOUT_FACTOR,
             init_grace_s: float = INIT_GRACE_S, owner: int | None = shm.OWNER_SELF) -> Finding:
    """Judge what is under ``/dev/shm/NAME`` now (see the module docstring for verdicts).

    Raises :class:`SegmentPermission` if the file cannot be opened at all. ``owner`` is
    the account a segment of ours belongs to (default: this process's); a file of any
    other account (root excepted) is SQUATTED, whatever it holds.
    """
    path = shm.segment_path(name)
    try:
        reader = SegmentReader.attach(name, require_live=False, owner=owner)
    except SegmentNotFound:
        return Finding(ABSENT, path, "no segment of that name")
    except SegmentUntrusted as exc:
        header, file_id, _ = _raw_header(path)
        return Finding(SQUATTED, path, exc.detail, file_id or _file_id(path), header, exc)
    except SegmentNotReady as exc:
        header, file_id, mtime = _raw_header(path)
        if file_id is None:
            return Finding(ABSENT, path, "removed while being examined")
        return _initialising(path, header, file_id, mtime, clock, init_grace_s, exc)
    except (SegmentForeign, SegmentVersionMismatch) as exc:
        header, file_id, _ = _raw_header(path)  # None for a FIFO, directory, symlink
        return Finding(REFUSED, path, exc.detail, file_id or _file_id(path), header, exc)
    except SegmentCorrupt as exc:
        header, file_id, mtime = _raw_header(path)
        if (header is not None and file_id is not None
                and header["state"] in (L.STATE_EMPTY, L.STATE_INITIALISING)):
            # killed half-way through writing the header: the region table is incomplete
            return _initialising(path, header, file_id, mtime, clock, init_grace_s, exc)
        return Finding(REFUSED, path, exc.detail, file_id, header, exc)
    try:
        header = reader.header()
        file_id = reader.file_id
    finally:
        reader.close()
    state = header["state"]
    if state in (L.STATE_EMPTY, L.STATE_INITIALISING):
        return _initialising(path, header, file_id, _mtime(path, file_id), clock,
                             init_grace_s, None)
    if state not in L.RUNNING_STATES:
        return Finding(STALE, path, f"its producer marked it {L.STATE_NAMES[state]}",
                       file_id, header)
    now = clock.monotonic_ns()
    live = liveness.assess(header, now, timeout_factor)
    if live.pid_alive:
        return Finding(LIVE, path, f"producer PID {header['producer_pid']} is running",
                       file_id, header)
    if live.heartbeat_fresh:
        # PID gone but the heartbeat is recent: a producer killed a moment ago, or one in
        # a PID namespace we cannot see. Wait until the heartbeat is older than its
        # timeout: if it is still beating by then, it is alive.
        timeout = liveness.heartbeat_timeout_ns(header["heartbeat_interval_ns"],
                                                timeout_factor)
        wait = max(timeout - live.heartbeat_age_ns, 0) / 1e9 + RECHECK_INTERVAL_S
        return Finding(DYING, path, f"producer PID {header['producer_pid']} is not running "
                       f"but its heartbeat is only {live.heartbeat_age_ns / 1e9:.2f} s old",
                       file_id, header, wait_s=wait)
    return Finding(STALE, path, f"producer PID {header['producer_pid']} is not running and "
                   f"its heartbeat stopped {live.heartbeat_age_ns / 1e9:.1f} s ago",
                   file_id, header)


def _mtime(path: str, file_id: shm.FileId) -> float:
    """Modification time of ``path`` if it is still the file ``file_id`` (else 0)."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return 0.0
    return st.st_mtime if shm.FileId(st.st_dev, st.st_ino) == file_id else 0.0


def _initialising(path: str, header: dict[str, int] | None, file_id: shm.FileId,
                  mtime: float, clock: Clock, grace_s: float,
                  error: SegmentError | None) -> Finding:
    """A segment not (yet) live: being created now, or left half-built by a dead producer."""
    # A producer records its PID (state initialising, no magic yet) before anything slow:
    # the file is ours (owner checked), so that claim is believed.
    pid = header["producer_pid"] if header and (
        header.get("magic") == L.MAGIC or header.get("state") == L.STATE_INITIALISING) else 0
    start_ticks = header["producer_start_ticks"] if header and pid else 0
    if pid and not liveness.pid_alive(pid, start_ticks):
        return Finding(STALE, path, f"left half-initialised by producer PID {pid}, which is "
                       f"not running", file_id, header, error)
    started = max(mtime, header["producer_start_ns"] / 1e9 if header and pid else 0.0)
    age = clock.wall_ns() / 1e9 - started
    if age > grace_s:
        who = f"producer PID {pid}" if pid else "its creator"
        return Finding(STALE, path, f"still initialising after {age:.1f} s ({who} stuck or "
                       f"killed while creating it)", file_id, header, error)
    return Finding(INITIALISING, path, "another producer is creating it right now",
                   file_id, header, error, wait_s=RECHECK_INTERVAL_S)


def remove_if_unchanged(name: str, file_id: shm.FileId | None) -> bool:
    """Unlink ``/dev/shm/NAME`` only if it is still the file judged (same inode)."""
    if file_id is None or shm.FileId.of_path(shm.segment_path(name)) != file_id:
        return False
    shm.unlink(name)
    return True


def refusal(finding: Finding) -> SegmentError:
    """The error to stop with when a segment must not be taken over."""
    path = finding.path
    if finding.verdict == LIVE:
        h = finding.header or {}
        return SegmentOwned(
            path, f"owned by a live producer, PID {finding.pid} (state "
                  f"{L.STATE_NAMES.get(h.get('state', -1), '?')}, generation "
                  f"{h.get('generation', 0):#x}): stop it first, or give this producer "
                  f"another --segment name")
    err = finding.error
    if isinstance(err, SegmentForeign):
        return SegmentForeign(
            path, f"{err.detail}. Refusing to remove a file that is not a tradingd segment: "
                  f"if nothing else uses it, remove it by hand (rm {path}); otherwise choose "
                  f"another segment name (--segment or segment.name)")
    if isinstance(err, SegmentVersionMismatch):
        return SegmentVersionMismatch(
            path, f"{err.detail}. It may belong to a running producer of that version: stop "
                  f"it, or remove the file (rm {path}) if no such producer runs")
    detail = err.detail if err else finding.reason
    return SegmentCorrupt(
        path, f"{detail}. Not removing it automatically: keep a copy for a post-mortem "
              f"(cp {path} /tmp/) and remove it (tradingd-inspect cleanup, or rm {path})")


W = TypeVar("W")
#: How long a producer waits for a squatter's file to go away before exiting 75.
SQUAT_WAIT_S = 15.0


def squatter(finding: Finding) -> str:
    """``held by uid 1001 (mallory): a regular file, its header names producer PID 42``."""
    st = None
    with contextlib.suppress(OSError):
        st = os.stat(finding.path, follow_symlinks=False)
    who = (f"uid {st.st_uid} ({shm.user_name(st.st_uid)})" if st is not None
           else "another account")
    kind = shm.file_kind(st.st_mode) if st is not None else "a file"
    h = finding.header
    claim = (f", its header names producer PID {h['producer_pid']} (state "
             f"{L.STATE_NAMES.get(h['state'], h['state'])})" if h and h.get("magic") == L.MAGIC
             else "")
    return (f"held by {who}, not by this producer's account uid {os.geteuid()} "
            f"({shm.user_name(os.geteuid())}): {kind}{claim}. Not another producer of ours: "
            f"someone else created the name, and it is not removed automatically")


def create_owned(name: str, create: Callable[[], W], *, clock: Clock = SYSTEM_CLOCK,
                 sleep: Callable[[float], object] = time.sleep,
                 timeout_factor: float = liveness.DEFAULT_TIMEOUT_FACTOR,
                 init_grace_s: float = INIT_GRACE_S, max_wait_s: float = 30.0,
                 squat_wait_s: float = SQUAT_WAIT_S,
                 logger: logging.Logger = log) -> W:
    """Create the segment with ``create()``, reclaiming a stale one that holds the name.

    Returns what ``create`` returned (a :class:`SegmentWriter`). Raises SegmentOwned
    (exit 73) if a live producer owns the name, SegmentForeign / SegmentVersionMismatch /
    SegmentCorrupt (exit 76) for a file that must not be removed automatically, and
    SegmentOwned as well if another producer stays "initialising" longer than
    ``max_wait_s``. Waiting for a dead producer's heartbeat to age is bounded by that
    heartbeat's own timeout; a heartbeat that still advances while its PID looks dead
    (a producer in another PID namespace) counts as alive.
    """
    deadline = clock.monotonic_ns() + int(max_wait_s * 1e9)
    squat_deadline: int | None = None
    beats_seen: dict[tuple[shm.FileId | None, int], int] = {}
    announced: set[tuple[str, shm.FileId | None]] = set()
    while True:
        try:
            return create()
        except SegmentExists:
            pass
        finding = classify(name, clock=clock, timeout_factor=timeout_factor,
                           init_grace_s=init_grace_s)
        verdict = finding.verdict
        if verdict == SQUATTED:
            now = clock.monotonic_ns()
            if squat_deadline is None:
                squat_deadline = now + int(squat_wait_s * 1e9)
                logger.error("segment %s is squatted: %s; waiting up to %.0f s for it to be "
                             "removed, then exiting 75 (restarted)", finding.path,
                             squatter(finding), squat_wait_s)
            if now >= squat_deadline:
                raise SegmentSquatted(finding.path, f"{squatter(finding)}; gave up after "
                                      f"{squat_wait_s:.0f} s (exit 75: systemd retries; "
                                      f"remove the file as root: rm {finding.path})") from None
            sleep(RECHECK_INTERVAL_S * 4)
            continue
        if verdict in (LIVE, REFUSED):
            raise refusal(finding) from None
        if verdict == STALE:
            if remove_if_unchanged(name, finding.file_id):
                logger.warning("reclaimed stale segment %s (%s): %s", finding.path,
                               finding.describe(clock.monotonic_ns()), finding.reason)
            continue  # create again; a racing producer may have won the name meanwhile
        if verdict == ABSENT:
            continue
        if verdict == DYING:
            assert finding.header is not None
            key = (finding.file_id, finding.header["generation"])
            beat = finding.header["heartbeat_ns"]
            if beats_seen.setdefault(key, beat) != beat:
                raise SegmentOwned(
                    finding.path, f"its heartbeat is advancing although PID {finding.pid} "
                    f"is not visible here (a producer in another PID namespace?): "
                    f"{finding.describe()}. Stop it, or use another --segment name")
        elif clock.monotonic_ns() >= deadline:
            raise SegmentOwned(finding.path, f"{finding.reason} ({finding.describe()}); "
                                             f"gave up after {max_wait_s:.0f} s")
        if (verdict, finding.file_id) not in announced:
            announced.add((verdict, finding.file_id))
            logger.info("segment %s: %s; waiting up to %.2f s before judging it again",
                        finding.path, finding.reason,
                        finding.wait_s if verdict == DYING else init_grace_s)
        sleep(finding.wait_s)


__all__ = ["ABSENT", "DYING", "INITIALISING", "LIVE", "REFUSED", "SQUATTED", "STALE", "Finding",
           "classify", "create_owned", "refusal", "remove_if_unchanged"]
