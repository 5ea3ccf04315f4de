"""Owning a segment name: live owners refused, stale leftovers reclaimed, foreign files kept.

Stale segments are made by real producers: a forked child creates a segment and exits
without closing it (as a SIGKILLed producer would), so its PID is really dead.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator

import numpy as np
import pytest

from tradingd import constants as C
from tradingd.clock import ManualClock
from tradingd.errors import SegmentForeign, SegmentOwned, SegmentVersionMismatch
from tradingd.segment import layout as L
from tradingd.segment import ownership as O
from tradingd.segment import shm
from tradingd.segment.model import SymbolInfo
from tradingd.segment.writer import SegmentWriter

MS = 1_000_000


def _create(name: str, clock: ManualClock | None = None) -> SegmentWriter:
    kwargs = {"clock": clock} if clock is not None else {}
    return SegmentWriter.create(name, [SymbolInfo("X")], ring_capacity=64,
                                heartbeat_interval_ns=100 * MS, **kwargs)


def orphan(name: str, *, heartbeat_age_s: float = 10.0, state: int | None = None) -> int:
    """A segment left by a producer that died without cleaning up; returns the dead PID."""
    pid = os.fork()
    if pid == 0:  # the child: create, never close, exit at once
        code = 1
        try:
            clock = ManualClock(monotonic_ns=time.monotonic_ns() - int(heartbeat_age_s * 1e9),
                                wall_ns=time.time_ns())
            w = _create(name, clock)
            if state is not None:
                w.set_state(state)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return pid


def dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


@pytest.fixture
def writers() -> Iterator[list[SegmentWriter]]:
    """Writers created by a test, closed (and unlinked) afterwards."""
    made: list[SegmentWriter] = []
    yield made
    for w in made:
        w.close()


def real_clock() -> ManualClock:
    """A manual clock starting at the real time (to judge real headers, then move on)."""
    return ManualClock(monotonic_ns=time.monotonic_ns(), wall_ns=time.time_ns())


def test_absent_name_is_created(segment_name: str, writers: list[SegmentWriter]) -> None:
    assert O.classify(segment_name).verdict == O.ABSENT
    w = O.create_owned(segment_name, lambda: _create(segment_name))
    writers.append(w)
    assert w.state == L.STATE_LIVE


def test_live_owner_is_refused_with_its_pid(segment_name: str,
                                            writers: list[SegmentWriter]) -> None:
    writers.append(_create(segment_name))
    finding = O.classify(segment_name)
    assert finding.verdict == O.LIVE and finding.pid == os.getpid()
    with pytest.raises(SegmentOwned) as info:
        O.create_owned(segment_name, lambda: _create(segment_name))
    assert info.value.exit_code == C.EXIT_SEGMENT_OWNED == 73
    assert f"PID {os.getpid()}" in str(info.value)
    assert writers[0].state == L.STATE_LIVE  # untouched


def test_live_owner_with_stale_heartbeat_but_running_pid_is_refused(
        segment_name: str, writers: list[SegmentWriter]) -> None:
    clock = real_clock()
    writers.append(_create(segment_name, clock))
    later = ManualClock(monotonic_ns=clock.monotonic_ns() + 60 * 10**9)
    assert O.classify(segment_name, clock=later).verdict == O.LIVE


def test_dead_producer_is_reclaimed_and_logged(segment_name: str, writers: list[SegmentWriter],
                                               caplog: pytest.LogCaptureFixture) -> None:
    pid = orphan(segment_name, heartbeat_age_s=10.0)
    finding = O.classify(segment_name)
    assert finding.verdict == O.STALE and finding.pid == pid
    old_generation = finding.header["generation"]  # type: ignore[index]
    with caplog.at_level(logging.WARNING, logger="tradingd.segment.ownership"):
        w = O.create_owned(segment_name, lambda: _create(segment_name))
    writers.append(w)
    assert w.generation != old_generation
    text = caplog.text
    assert f"PID {pid}" in text and f"generation {old_generation:#x}" in text
    assert "last heartbeat 10." in text and "reclaimed stale segment" in text


def test_stopped_segment_is_stale(segment_name: str, writers: list[SegmentWriter]) -> None:
    orphan(segment_name, heartbeat_age_s=0.0, state=L.STATE_STOPPED)
    assert O.classify(segment_name).verdict == O.STALE
    writers.append(O.create_owned(segment_name, lambda: _create(segment_name)))


def test_just_killed_producer_waits_for_its_heartbeat_to_age(
        segment_name: str, writers: list[SegmentWriter]) -> None:
    orphan(segment_name, heartbeat_age_s=0.0)  # PID dead, heartbeat fresh
    clock = real_clock()
    finding = O.classify(segment_name, clock=clock)
    assert finding.verdict == O.DYING
    # until the heartbeat is older than the 500 ms timeout floor, then one recheck interval;
    # the heartbeat has aged meanwhile by however long the fork took (a busy machine: longer)
    age_s = (clock.monotonic_ns() - finding.header["heartbeat_ns"]) / 1e9  # type: ignore[index]
    assert 0 <= age_s < 0.5
    assert finding.wait_s == pytest.approx(0.5 - age_s + O.RECHECK_INTERVAL_S)
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        clock.advance(s)

    writers.append(O.create_owned(segment_name, lambda: _create(segment_name), clock=clock,
                                  sleep=sleep))
    assert len(slept) == 1


def test_heartbeat_advancing_with_invisible_pid_counts_as_alive(
        segment_name: str, writers: list[SegmentWriter]) -> None:
    clock = real_clock()
    w = _create(segment_name, clock)
    writers.append(w)
    # as seen from another PID namespace: the header's PID does not exist here
    w._header[0]["producer_pid"] = dead_pid()

    def sleep(s: float) -> None:
        clock.advance(s)
        w.heartbeat()

    with pytest.raises(SegmentOwned, match="heartbeat is advancing"):
        O.create_owned(segment_name, lambda: _create(segment_name), clock=clock, sleep=sleep)


def test_initialising_segment_is_waited_for_then_reclaimed_after_grace(
        segment_name: str, writers: list[SegmentWriter]) -> None:
    # a producer killed between shm_open and ftruncate: an empty file, nothing to go by
    # but its age
    fd = shm.create_exclusive(segment_name, 0)
    os.close(fd)
    clock = real_clock()
    finding = O.classify(segment_name, clock=clock)
    assert finding.verdict == O.INITIALISING
    waited: list[float] = []

    def sleep(s: float) -> None:
        waited.append(s)
        clock.advance(1.0)

    writers.append(O.create_owned(segment_name, lambda: _create(segment_name), clock=clock,
                                  sleep=sleep, init_grace_s=3.0))
    assert len(waited) == 3  # judged again each time until older than the grace period


def test_half_written_header_of_a_dead_producer_is_stale(segment_name: str) -> None:
    pid = dead_pid()
    geo = L.Geometry(1, 64, 16)
    fd = shm.create_exclusive(segment_name, geo.total_size)
    try:
        h = np.zeros(1, L.HEADER_DTYPE)
        h["magic"], h["layout_major"] = L.MAGIC, L.LAYOUT_MAJOR
        h["layout_fingerprint"], h["producer_pid"] = L.LAYOUT_FINGERPRINT, pid
        h["state"] = L.STATE_INITIALISING  # killed before the region table was written
        os.pwrite(fd, h.tobytes(), 0)
    finally:
        os.close(fd)
    finding = O.classify(segment_name)
    assert finding.verdict == O.STALE
    assert f"PID {pid}" in finding.reason


def _write_file(name: str, data: bytes) -> None:
    with open(shm.segment_path(name), "xb") as f:
        f.write(data)


def test_foreign_file_is_never_removed(segment_name: str) -> None:
    _write_file(segment_name, b"not a tradingd segment".ljust(4096, b"\0"))
    finding = O.classify(segment_name)
    assert finding.verdict == O.REFUSED
    with pytest.raises(SegmentForeign) as info:
        O.create_owned(segment_name, lambda: _create(segment_name))
    assert info.value.exit_code == C.EXIT_PROTOCOL == 76
    message = str(info.value)
    assert "not a tradingd segment" in message and f"rm {shm.segment_path(segment_name)}" in message
    assert os.path.exists(shm.segment_path(segment_name))


def test_other_layout_version_is_refused_not_removed(segment_name: str) -> None:
    h = np.zeros(1, L.HEADER_DTYPE)
    h["magic"], h["layout_major"], h["state"] = L.MAGIC, L.LAYOUT_MAJOR + 1, L.STATE_LIVE
    _write_file(segment_name, h.tobytes().ljust(8192, b"\0"))
    with pytest.raises(SegmentVersionMismatch) as info:
        O.create_owned(segment_name, lambda: _create(segment_name))
    assert info.value.exit_code == 76
    assert os.path.exists(shm.segment_path(segment_name))


def test_removal_only_if_the_name_still_points_at_the_judged_file(
        segment_name: str, writers: list[SegmentWriter]) -> None:
    orphan(segment_name)
    finding = O.classify(segment_name)
    assert finding.verdict == O.STALE
    shm.unlink(segment_name)
    writers.append(_create(segment_name))  # someone else took the name meanwhile
    assert not O.remove_if_unchanged(segment_name, finding.file_id)
    assert writers[0].state == L.STATE_LIVE
    assert os.path.exists(shm.segment_path(segment_name))


@pytest.mark.parametrize("attempt", range(5))  # a race: a few tries catch an unlucky order
def test_two_producers_racing_for_a_stale_segment_one_wins(segment_name: str,
                                                           attempt: int) -> None:
    """Both find the same stale segment; O_EXCL decides; the loser re-checks and refuses.

    The loser may look at the winner's segment while it is being created: it must see
    "initialising" (no magic yet), never a foreign or corrupt file.
    """
    orphan(segment_name)
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    children = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.read(go_r, 1)
                try:
                    w = O.create_owned(segment_name, lambda: _create(segment_name))
                except SegmentOwned:
                    code = 73
                else:
                    os.read(done_r, 1)  # hold it until the parent has seen both
                    w.close()
                    code = 0
            finally:
                os._exit(code)
        children.append(pid)
    try:
        os.write(go_w, b"gg")
        codes = []
        deadline = time.monotonic() + 20
        pending = set(children)
        while pending and time.monotonic() < deadline:
            for pid in list(pending):
                got, status = os.waitpid(pid, os.WNOHANG)
                if got:
                    pending.discard(pid)
                    codes.append(os.waitstatus_to_exitcode(status))
                    os.write(done_w, b"x")  # the loser is done: release the winner
            time.sleep(0.01)
        assert not pending, "a racing producer hung"
        assert sorted(codes) == [0, 73]
    finally:
        for pid in children:
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        for fd in (go_r, go_w, done_r, done_w):
            os.close(fd)
