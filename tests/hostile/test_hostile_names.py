"""Whatever sits at the segment name: FIFO, symlink, directory, sparse, odd-sized, lying headers.

Each planted thing is refused by the readers (both implementations) with a typed error at
once, without being mapped; by the producer with exit 76 and a message saying what it is
(never exit 1, never a traceback, never a hang); by ``tradingd-inspect status/check/cleanup``
with their codes and promptly (cleanup used to hang on a FIFO). Nothing is removed that
the producer did not create, and nothing of its own is left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemons import DaemonProcess
from hostile_support import (
    HOSTILE_KINDS,
    INSPECT,
    header_of,
    inspect,
    inspect_here,
    plant,
    producer,
    remove_planted,
    write_config,
)

from tradingd import constants as C
from tradingd import errors
from tradingd.segment import shm
from tradingd.segment.reader import SegmentReader

KINDS = sorted(HOSTILE_KINDS)


@pytest.fixture
def planted_path(segment_name: str) -> Iterator[str]:
    path = shm.segment_path(segment_name)
    yield path
    remove_planted(path)


def _identity(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mode, st.st_size


@pytest.mark.parametrize("kind", KINDS)
def test_readers_refuse_it_at_once_with_a_typed_error(kind: str, impl: str, segment_name: str,
                                                      planted_path: str) -> None:
    plant(kind, planted_path, f"{segment_name}-src")
    cls_name, phrase = HOSTILE_KINDS[kind]
    t0 = time.monotonic()
    with pytest.raises(getattr(errors, cls_name)) as info:
        SegmentReader.attach(segment_name, require_live=False)
    assert phrase in str(info.value)
    assert time.monotonic() - t0 < 2.0  # no 2 GiB populated, no FIFO open blocking
    # the post-mortem path (--file) refuses it the same way
    with pytest.raises(errors.SegmentError):
        SegmentReader.open_file(planted_path)
    assert isinstance(info.value, errors.TradingdError) and info.value.exit_code in (
        C.EXIT_PROTOCOL, C.EXIT_NOPERM)


@pytest.mark.parametrize("kind", KINDS)
def test_producer_refuses_it_with_76_and_leaves_it_alone(kind: str, segment_name: str,
                                                         planted_path: str, workdir: Path) -> None:
    plant(kind, planted_path, f"{segment_name}-src")
    before = _identity(planted_path)
    res = producer(write_config(workdir), segment_name)
    out = res.stdout + res.stderr
    assert res.returncode == C.EXIT_PROTOCOL, out
    assert HOSTILE_KINDS[kind][1] in out, out
    assert _identity(planted_path) == before  # not removed, not replaced, not resized


@pytest.mark.parametrize("kind", KINDS)
def test_inspect_status_check_cleanup_answer_promptly(kind: str, segment_name: str,
                                                      planted_path: str, workdir: Path) -> None:
    plant(kind, planted_path, f"{segment_name}-src")
    before = _identity(planted_path)
    cfg = str(write_config(workdir))
    t0 = time.monotonic()
    status = inspect_here("status", "--config", cfg, "--segment", segment_name)
    check = inspect_here("check", "--config", cfg, "--segment", segment_name)
    cleanup = inspect_here("cleanup", "--config", cfg, "--segment", segment_name)
    assert time.monotonic() - t0 < 10.0  # nothing waits (the real CLI: tests below)
    assert status.returncode == C.EXIT_SEGMENT_PROBLEM, status.stdout + status.stderr
    assert HOSTILE_KINDS[kind][1] in status.stdout + status.stderr
    assert check.returncode == 2 and check.stdout.startswith("TRADINGD CRITICAL"), check.stdout
    if HOSTILE_KINDS[kind][0] == "SegmentForeign":  # not a segment: the operator decides
        assert cleanup.returncode == C.EXIT_PROTOCOL, cleanup.stdout + cleanup.stderr
        assert "not removing" in cleanup.stderr
        assert _identity(planted_path) == before
    else:  # a corrupt segment of ours whose producer is dead: removed, as documented
        assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
        assert cleanup.stdout.startswith("removed") and not os.path.lexists(planted_path)


def test_cleanup_force_removes_a_fifo_without_hanging(segment_name: str, planted_path: str,
                                                      workdir: Path) -> None:
    plant("fifo", planted_path, f"{segment_name}-src")
    res = inspect("cleanup", "--force", "--config", str(write_config(workdir)), "--segment",
                  segment_name)
    assert res.returncode == 0, res.stdout + res.stderr
    assert not os.path.lexists(planted_path)


def test_huge_pid_is_never_passed_to_kill(segment_name: str, planted_path: str) -> None:
    """producer_pid >= 2^31 used to raise OverflowError from os.kill (exit 1)."""
    from tradingd.segment import liveness, ownership

    plant("huge_pid", planted_path, f"{segment_name}-src")
    with open(planted_path, "rb") as f:
        assert header_of(f.read())["producer_pid"] == 2**31 + 7
    assert liveness.pid_alive(2**31 + 7) is False and liveness.pid_alive(2**64 - 1) is False
    finding = ownership.classify(segment_name)
    assert finding.verdict == ownership.REFUSED and "producer_pid" in finding.reason


@pytest.mark.parametrize("kind", ["fifo", "sparse"])
def test_consumer_stays_responsive_beside_it_then_attaches(
        kind: str, segment_name: str, planted_path: str, workdir: Path) -> None:
    """A FIFO froze the consumer (metrics dead, watchdog silent); a sparse 1 GiB file was
    mapped and populated every 0.25 s (64 % CPU, 430 MB RSS)."""
    plant(kind, planted_path, f"{segment_name}-src")
    cfg = write_config(workdir)
    consumer = DaemonProcess("consumer", cfg, workdir, segment=segment_name)
    prod: DaemonProcess | None = None
    try:
        url = consumer.metrics_url()
        deadline = time.monotonic() + 20
        while HOSTILE_KINDS[kind][1] not in consumer.log:
            assert time.monotonic() < deadline, consumer.log
            time.sleep(0.05)
        for _ in range(3):  # the scrape answers while it is there
            with urllib.request.urlopen(url, timeout=5) as resp:
                assert b"tradingd_consumer" in resp.read()
        assert consumer.alive()
        with open(f"/proc/{consumer.pid}/maps") as f:
            assert planted_path not in f.read()  # never mapped
        with open(f"/proc/{consumer.pid}/status") as f:
            rss_kb = int(next(ln for ln in f if ln.startswith("VmRSS:")).split()[1])
        assert rss_kb < 300 * 1024, rss_kb
        os.unlink(planted_path)
        prod = DaemonProcess("producer", cfg, workdir, segment=segment_name)
        prod.wait_ready()
        deadline = time.monotonic() + 20
        while "attached to /dev/shm/" not in consumer.log:
            assert time.monotonic() < deadline and consumer.alive(), consumer.log
            time.sleep(0.05)
        assert "Traceback" not in consumer.log
    finally:
        for d in (prod, consumer):
            if d is not None:
                d.cleanup()


def test_inspect_cli_on_a_fifo_is_bounded_even_with_sigterm(segment_name: str,
                                                            planted_path: str) -> None:
    """The real console script, SIGTERM after it answered: nothing blocks on the FIFO."""
    plant("fifo", planted_path, f"{segment_name}-src")
    proc = subprocess.Popen([INSPECT, "cleanup", "--segment", segment_name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        raise AssertionError("tradingd-inspect cleanup hung on a FIFO") from None
    assert proc.returncode == C.EXIT_PROTOCOL and "FIFO" in err, (out, err)
