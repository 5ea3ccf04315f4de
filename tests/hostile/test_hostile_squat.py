"""A squatter of another uid at the segment name (the test creates and removes the user).

The squatter's file carries a real tradingd header naming a live PID of the squatter's
(a ``sleep`` running as that user), as a user's own ``tradingd-producer`` on the name
would. The real producer (root here) must report it as squatted, naming the uid, user
and PID, distinctly from "another producer of ours is live", wait ``segment.squat_wait``
and exit 75 (restartable), and go live by itself once the file is removed. Readers
(consumer, inspector) must refuse it, naming the owner; cleanup must not remove it.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from daemons import DaemonProcess
from hostile_support import inspect, producer, segment_bytes, set_word, write_config

from tradingd import constants as C
from tradingd.errors import SegmentUntrusted
from tradingd.segment import liveness, shm
from tradingd.segment.reader import SegmentReader

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (useradd, setpriv)")


@dataclass
class Squatter:
    user: str
    uid: int
    gid: int
    proc: subprocess.Popen[bytes]

    def as_user(self, *cmd: str, input_: bytes | None = None) -> None:
        subprocess.run(["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}",
                        "--clear-groups", *cmd], input=input_, check=True, timeout=20)


@pytest.fixture
def squatter(segment_name: str) -> Iterator[Squatter]:
    user = f"td12sq{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
                   check=True, timeout=30)
    proc: subprocess.Popen[bytes] | None = None
    try:
        pw = pwd.getpwnam(user)
        proc = subprocess.Popen(["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
                                 "--clear-groups", "sleep", "300"])
        sq = Squatter(user, pw.pw_uid, pw.pw_gid, proc)
        data = segment_bytes(f"{segment_name}-src")
        data = set_word(data, "producer_pid", proc.pid)  # "its producer": live, theirs
        for _ in range(100):  # setpriv execs sleep: wait for the final start ticks
            ticks = liveness.process_start_ticks(proc.pid)
            if ticks:
                break
            time.sleep(0.01)
        data = set_word(data, "producer_start_ticks", ticks)
        sq.as_user("sh", "-c", f"umask 022; cat > {shm.segment_path(segment_name)}",
                   input_=data)
        yield sq
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(10)
        path = shm.segment_path(segment_name)
        if os.path.lexists(path):
            os.unlink(path)
        subprocess.run(["userdel", user], check=False, timeout=30)


def test_readers_refuse_the_squatters_segment_naming_the_owner(squatter: Squatter,
                                                               segment_name: str) -> None:
    st = os.stat(shm.segment_path(segment_name))
    assert st.st_uid == squatter.uid
    with pytest.raises(SegmentUntrusted) as info:
        SegmentReader.attach(segment_name)
    msg = str(info.value)
    assert f"owned by uid {squatter.uid} ({squatter.user})" in msg, msg
    assert f"producer PID {squatter.proc.pid}" in msg and info.value.exit_code == 77
    # trusted when the config says that account is the producer's
    with SegmentReader.attach(segment_name, owner=squatter.uid) as r:
        assert r.producer_pid == squatter.proc.pid


def test_producer_reports_the_squat_and_exits_75(squatter: Squatter, segment_name: str,
                                                 workdir: Path) -> None:
    cfg = write_config(workdir, segment={"squat_wait": 1.0})
    res = producer(cfg, segment_name)
    out = res.stderr + res.stdout
    assert res.returncode == C.EXIT_TEMPFAIL, out
    assert f"held by uid {squatter.uid} ({squatter.user})" in out, out
    assert f"producer PID {squatter.proc.pid}" in out and "squatted" in out, out
    assert "Not another producer of ours" in out and "owned by a live producer" not in out
    assert os.stat(shm.segment_path(segment_name)).st_uid == squatter.uid  # left alone
    assert C.EXIT_TEMPFAIL not in C.PERMANENT_EXIT_CODES  # systemd restarts it


def test_inspector_names_the_owner_and_cleanup_refuses(squatter: Squatter, segment_name: str,
                                                       workdir: Path) -> None:
    cfg = str(write_config(workdir))
    status = inspect("status", "--config", cfg, "--segment", segment_name)
    assert status.returncode == C.EXIT_SEGMENT_PROBLEM
    assert f"owned by uid {squatter.uid} ({squatter.user})" in status.stdout + status.stderr
    check = inspect("check", "--config", cfg, "--segment", segment_name)
    assert check.returncode == 2 and "not the producer's" in check.stdout, check.stdout
    cleanup = inspect("cleanup", "--config", cfg, "--segment", segment_name)
    assert cleanup.returncode == C.EXIT_NOPERM, cleanup.stderr
    assert "belongs to another account" in cleanup.stderr
    assert os.path.exists(shm.segment_path(segment_name))


def test_consumer_refuses_it_and_producer_recovers_once_it_is_removed(
        squatter: Squatter, segment_name: str, workdir: Path) -> None:
    cfg = write_config(workdir, segment={"squat_wait": 30.0})
    consumer = DaemonProcess("consumer", cfg, workdir, segment=segment_name)
    prod = DaemonProcess("producer", cfg, workdir, segment=segment_name)
    try:
        deadline = time.monotonic() + 20
        while (f"owned by uid {squatter.uid} ({squatter.user})" not in consumer.log
               or "squatted" not in prod.log):
            assert time.monotonic() < deadline, consumer.log + prod.log
            assert prod.alive() and consumer.alive(), consumer.log + prod.log
            time.sleep(0.05)
        assert "attached to /dev/shm/" not in consumer.log
        os.unlink(shm.segment_path(segment_name))  # root removes the squatter's file
        prod.wait_ready()
        with SegmentReader.attach(segment_name) as r:
            assert r.producer_pid == prod.pid
        deadline = time.monotonic() + 20
        while "attached to /dev/shm/" not in consumer.log:
            assert time.monotonic() < deadline, consumer.log
            time.sleep(0.05)
        assert prod.stop() == 0
        assert "Traceback" not in prod.log + consumer.log
    finally:
        prod.cleanup()
        consumer.cleanup()
