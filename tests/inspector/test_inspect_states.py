"""``check`` exit codes and ``cleanup`` for each state, each produced for real.

Missing (no producer), live, producer SIGKILLed (dead), producer SIGSTOPped for longer
than its heartbeat timeout (stale heartbeat, PID alive), a foreign file under the name,
a segment left "stopped", one still initialising, one of another layout version, and a
producer whose replay finished (data stale). The producers beat every 50 ms, so their
heartbeat timeout is liveness's 0.5 s floor.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from inspector_support import START_TIMEOUT, Producer, inspect, inspect_cli

from tradingd import constants as C
from tradingd.segment import layout as L
from tradingd.segment import liveness, shm
from tradingd.segment.fastpath import FAST
from tradingd.segment.model import SymbolInfo
from tradingd.segment.writer import SegmentWriter

pytestmark = pytest.mark.slow

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
#: Comfortably past the 0.5 s heartbeat timeout of a producer beating every 50 ms.
PAST_TIMEOUT_S = liveness.MIN_TIMEOUT_NS / 1e9 + 0.3


def check(name: str, *extra: str) -> tuple[int, str]:
    r = inspect("check", "--segment", name, *extra)
    assert r.out.count("\n") == 1, r.out  # one line, as monitoring plugins print
    return r.code, r.out


def test_check_missing(segment_name: str) -> None:
    code, out = check(segment_name)
    assert code == CRITICAL
    assert out.startswith(f"TRADINGD CRITICAL - segment /dev/shm/{segment_name} does not exist")
    r = inspect_cli("check", "--segment", segment_name, "--json")
    assert r.code == CRITICAL and r.json()["problem"]["kind"] == "missing"


def test_check_usage_and_config_errors_are_unknown(segment_name: str, tmp_path: Path) -> None:
    r = inspect_cli("check", "--segment", segment_name, "--data-stale", "soon")
    assert r.code == UNKNOWN and "expected seconds" in r.err
    bad = tmp_path / "bad.yaml"
    bad.write_text("segment: {name: 5}\n")
    r = inspect_cli("check", "--config", str(bad))
    assert r.code == UNKNOWN and r.out.startswith("TRADINGD UNKNOWN - ")
    assert "segment.name" in r.out


def test_killed_producer_is_dead_and_cleanup_removes_it(
        start_producer: Callable[..., Producer]) -> None:
    p = start_producer()
    assert check(p.segment)[0] == OK
    generation = inspect("status", "--segment", p.segment, "--json").json()["header"][
        "generation"]
    # the sleepers companion (the C writer's; see tradingd/segment/waiters.py)
    assert os.path.exists(shm.segment_path(p.segment + ".wait")) == (FAST is not None)
    p.kill_and_reap()
    # PID gone but the heartbeat not yet stale: a WARNING, not yet "dead"
    code, out = check(p.segment, "--heartbeat-factor", "200")
    assert code == WARNING and f"PID {p.pid} not visible" in out
    refused = inspect("cleanup", "--segment", p.segment, "--heartbeat-factor", "200")
    assert refused.code == C.EXIT_SEGMENT_OWNED and "counts as alive" in refused.err
    time.sleep(PAST_TIMEOUT_S)
    code, out = check(p.segment)
    assert code == CRITICAL
    assert re.search(rf"producer PID {p.pid} is dead, heartbeat \d+(\.\d)? m?s ago: stale "
                     rf"segment /dev/shm/{p.segment}", out), out

    r = inspect_cli("cleanup", "--segment", p.segment)
    assert r.code == 0, r.err
    assert re.fullmatch(
        rf"removed /dev/shm/{p.segment} \(generation {generation:#x}, PID {p.pid}, state "
        rf"live, last heartbeat [\d.]+ s ago \(\d+ beats\); dead\): producer PID {p.pid} is "
        rf"not running and its heartbeat stopped [\d.]+ s ago\n", r.out), r.out
    assert not os.path.exists(shm.segment_path(p.segment))
    assert not os.path.exists(shm.segment_path(p.segment + ".wait"))  # its companion too
    again = inspect("cleanup", "--segment", p.segment, "--json").json()
    assert again["action"] == "nothing" and again["code"] == 0
    assert check(p.segment)[0] == CRITICAL  # missing


def test_stopped_producer_has_a_stale_heartbeat(start_producer: Callable[..., Producer]) -> None:
    p = start_producer()
    p.signal(signal.SIGSTOP)
    try:
        time.sleep(PAST_TIMEOUT_S)
        code, out = check(p.segment)
        assert code == CRITICAL
        assert "heartbeat stale" in out and f"producer PID {p.pid} is alive but stopped" in out
        # the PID lives: cleanup must not take the segment from under it
        r = inspect("cleanup", "--segment", p.segment)
        assert r.code == C.EXIT_SEGMENT_OWNED and f"PID {p.pid} is running" in r.err
        status = inspect("status", "--segment", p.segment, "--json").json()
        assert status["liveness"]["heartbeat_fresh"] is False
        assert status["liveness"]["alive"] is True  # the reclaim rule: PID alive
        assert "stopped (SIGSTOP" in status["pid_status"]
    finally:
        p.signal(signal.SIGCONT)
    deadline = time.monotonic() + START_TIMEOUT
    while check(p.segment)[0] != OK and time.monotonic() < deadline:
        time.sleep(0.05)
    assert check(p.segment)[0] == OK  # beating again


def test_foreign_file(segment_name: str) -> None:
    path = shm.segment_path(segment_name)
    with open(path, "wb") as f:
        f.write(b"PostgreSQL shared memory segment\n" * 100)
    code, out = check(segment_name)
    assert code == CRITICAL
    assert "not a tradingd segment" in out and "at offset 0" in out
    r = inspect_cli("cleanup", "--segment", segment_name)
    assert r.code == C.EXIT_PROTOCOL and "not a tradingd segment" in r.err
    assert os.path.exists(path)
    r = inspect("cleanup", "--segment", segment_name, "--force")
    assert r.code == 0 and "(forced)" in r.out and "no tradingd header" in r.out
    assert not os.path.exists(path)


def test_stopped_state_left_behind_and_initialising(segment_name: str) -> None:
    w = SegmentWriter.create(segment_name, [SymbolInfo("AAPL")], symbol_capacity=2,
                             ring_capacity=64)
    w.publish(0, 1, 1.0, 1.0, 1.0, 1.0, 1.0)
    w.close(unlink=False)  # what a producer that could not unlink leaves
    code, out = check(segment_name)
    assert code == CRITICAL and "state stopped" in out
    r = inspect("cleanup", "--segment", segment_name)
    assert r.code == 0 and "state stopped" in r.out and "marked it stopped" in r.out

    # a file fresh from ftruncate (all zeros): a producer is creating it
    with open(shm.segment_path(segment_name), "wb") as f:
        f.write(bytes(4096))
    code, out = check(segment_name)
    assert code == WARNING and "initialising" in out
    time.sleep(0.2)
    code, out = check(segment_name, "--init-grace", "0.1")
    assert code == CRITICAL and "still initialising after" in out
    r = inspect("cleanup", "--segment", segment_name)
    assert r.code == C.EXIT_SEGMENT_OWNED and "creating it right now" in r.err


def test_other_layout_version(live_copy_name: str) -> None:
    code, out = check(live_copy_name)
    assert code == CRITICAL
    assert "another tradingd layout" in out
    assert f"layout version 9.{L.LAYOUT_MINOR} (offset 8)" in out
    r = inspect("cleanup", "--segment", live_copy_name)
    assert r.code == C.EXIT_PROTOCOL and "another tradingd layout" in r.err


@pytest.fixture
def live_copy_name(start_producer: Callable[..., Producer], segment_name: str) -> str:
    """A real producer's segment copied under another name with layout_major 9."""
    p = start_producer()
    shutil.copyfile(shm.segment_path(p.segment), shm.segment_path(segment_name))
    with open(shm.segment_path(segment_name), "r+b") as f:
        hdr = np.zeros(1, L.HEADER_DTYPE)
        f.readinto(memoryview(hdr.view(np.uint8)))
        hdr[0]["layout_major"] = 9
        f.seek(0)
        f.write(hdr.tobytes())
    return segment_name


def test_finished_replay_and_stale_data(start_producer: Callable[..., Producer]) -> None:
    p = start_producer(replay={"mode": "fast", "at_end": "stop"})
    deadline = time.monotonic() + 15
    state = None
    while time.monotonic() < deadline:
        state = inspect("status", "--segment", p.segment, "--json").json()["state"]
        if state == "finished":
            break
        time.sleep(0.1)
    assert state == "finished"
    code, out = check(p.segment)
    assert code == OK and f"/dev/shm/{p.segment} finished (replay finished)" in out
    time.sleep(0.4)  # no record since the replay ended
    code, out = check(p.segment, "--data-stale", "0.3")
    assert code == WARNING and "data stale: last record" in out
    code, out = check(p.segment, "--data-stale", "0.1", "--data-stale-critical", "0.3")
    assert code == CRITICAL and "critical after 0.3 s" in out
    assert re.search(r"data_age=[\d.]+s;0\.1;0\.3", out)

