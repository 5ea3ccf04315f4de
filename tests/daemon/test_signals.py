"""tradingd.daemon.signals: real processes stopped by real signals, and the flag in-process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import pytest

from tradingd.daemon.signals import StopFlag

# A main loop as the daemons write it: a turn of work, then sleep in stop.wait(). Its
# timeout (60 s) is far longer than any test waits, so stopping within the test's limit
# proves the signal cut the wait short.
LOOP = textwrap.dedent("""\
    import sys, time
    from tradingd.daemon.signals import StopFlag
    from tradingd.daemon.cli import run_main

    def main():
        turns = 0
        with StopFlag(ignore_sighup=IGNORE_SIGHUP) as stop:
            while not stop.is_set():
                turns += 1
                if turns == 1:
                    print("ready", flush=True)  # the signal may land before wait() sleeps
                stop.wait(60)
            print(f"stopped by {stop.reason} after {turns} turns", flush=True)
            if HANG_ON_SHUTDOWN:
                time.sleep(60)  # a shutdown that hangs: only a second Ctrl-C ends it
        return 0

    run_main(main, "tdtest-loop")
""")


@pytest.fixture
def spawn() -> Iterator[object]:
    procs: list[subprocess.Popen[str]] = []

    def start(ignore_sighup: bool = False, hang: bool = False) -> subprocess.Popen[str]:
        code = (f"IGNORE_SIGHUP = {ignore_sighup}\nHANG_ON_SHUTDOWN = {hang}\n" + LOOP)
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        return proc

    yield start
    for proc in procs:  # never leave a child behind, even when a test failed
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def finish(proc: subprocess.Popen[str], timeout: float = 10) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_loop_promptly(spawn, sig: signal.Signals) -> None:  # type: ignore
    proc = spawn()
    proc.send_signal(sig)
    code, out, err = finish(proc)  # raises TimeoutExpired if the 60 s wait was not cut short
    assert code == 0, err
    assert out == f"stopped by {sig.name} after 1 turns\n"
    assert err == ""


def test_sighup_ignored_when_asked(spawn) -> None:  # type: ignore
    proc = spawn(ignore_sighup=True)
    proc.send_signal(signal.SIGHUP)
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(0.3)  # still running: SIGHUP neither killed nor stopped it
    proc.send_signal(signal.SIGTERM)
    code, out, _ = finish(proc)
    assert (code, out) == (0, "stopped by SIGTERM after 1 turns\n")


def test_sighup_kills_by_default(spawn) -> None:  # type: ignore
    proc = spawn()
    proc.send_signal(signal.SIGHUP)
    code, _, _ = finish(proc)
    assert code == -signal.SIGHUP


def test_second_sigint_ends_a_hung_shutdown(spawn) -> None:  # type: ignore
    proc = spawn(hang=True)
    proc.send_signal(signal.SIGINT)
    assert proc.stdout.readline() == "stopped by SIGINT after 1 turns\n"
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc)
    assert code == 130
    assert "Traceback" not in err


# -- in-process ---------------------------------------------------------------------------


def _wakeup_fd() -> int:
    old = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(old)
    return old


def test_close_restores_handlers_and_wakeup_fd() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    fd_before = _wakeup_fd()
    with StopFlag(ignore_sighup=True) as stop:
        assert signal.getsignal(signal.SIGTERM) != before[signal.SIGTERM]
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        assert _wakeup_fd() == stop._wfd
    assert {s: signal.getsignal(s) for s in before} == before
    assert _wakeup_fd() == fd_before


def test_signal_to_self_sets_the_flag() -> None:
    with StopFlag() as stop:
        assert not stop.is_set() and stop.signum is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5)  # the handler runs at the latest when wait() returns
        assert stop.signum == signal.SIGTERM and stop.reason == "SIGTERM"


def test_wait_times_out_when_nothing_happens() -> None:
    with StopFlag(install=False) as stop:
        assert not stop.wait(0)
        assert not stop.wait(-1)
        t0 = time.monotonic()
        assert not stop.wait(0.05)
        assert time.monotonic() - t0 >= 0.05
        assert stop.reason == "not stopped"


def test_set_from_another_thread_wakes_wait() -> None:
    with StopFlag(install=False) as stop:
        timer = threading.Timer(0.05, stop.set)
        timer.start()
        try:
            assert stop.wait(30)  # a missed wakeup would hang here for 30 s
        finally:
            timer.cancel()
        assert stop.reason == "request" and stop.signum is None
        stop.set()  # idempotent
        assert stop.is_set()


def test_other_signals_do_not_stop() -> None:
    """A signal with a Python handler also writes to the wakeup fd: wait() must go back
    to sleep, not report a stop."""
    seen = []
    old = signal.signal(signal.SIGUSR1, lambda s, f: seen.append(s))
    try:
        with StopFlag() as stop:
            threading.Timer(0.02, os.kill, (os.getpid(), signal.SIGUSR1)).start()
            assert not stop.wait(0.3)
            assert seen == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, old)
