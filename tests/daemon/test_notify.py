"""tradingd.daemon.notify against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tradingd.clock import ManualClock
from tradingd.daemon.notify import Notifier

NOTIFY_LOGGER = "tradingd.daemon.notify"


class FakeSystemd:
    """A bound datagram socket that receives what a Notifier sends."""

    def __init__(self, address: str) -> None:
        self.address = address  # as NOTIFY_SOCKET spells it
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(2.0)

    def recv(self) -> str:
        return self.sock.recv(4096).decode()

    def pending(self) -> list[str]:
        """Every datagram already queued (without waiting)."""
        out = []
        self.sock.setblocking(False)
        try:
            while True:
                out.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            pass
        finally:
            self.sock.settimeout(2.0)
        return out

    def close(self) -> None:
        self.sock.close()
        if not self.address.startswith("@"):
            Path(self.address).unlink(missing_ok=True)


@pytest.fixture(params=["path", "abstract"])
def systemd(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FakeSystemd]:
    if request.param == "path":
        address = str(tmp_path / "notify.sock")
    else:
        address = f"@tdtest-notify-{uuid.uuid4().hex[:12]}"
    fake = FakeSystemd(address)
    yield fake
    fake.close()


def make(systemd: FakeSystemd, clock: ManualClock | None = None, **env: str) -> Notifier:
    return Notifier(env={"NOTIFY_SOCKET": systemd.address, **env},
                    clock=clock or ManualClock())


def test_ready_status_stopping(systemd: FakeSystemd) -> None:
    n = make(systemd)
    assert n.enabled
    assert n.ready()
    assert systemd.recv() == "READY=1\n"
    assert n.status("loading 2/4 files")
    assert systemd.recv() == "STATUS=loading 2/4 files\n"
    assert n.stopping("stopping: SIGTERM")
    assert systemd.recv() == "STOPPING=1\nSTATUS=stopping: SIGTERM\n"
    assert n.messages_sent == 3 and n.send_errors == 0
    n.close()


def test_ready_with_status_and_arbitrary_fields(systemd: FakeSystemd) -> None:
    n = make(systemd)
    assert n.ready("live: segment tdtest")
    assert systemd.recv() == "READY=1\nSTATUS=live: segment tdtest\n"
    assert n.notify(MAINPID=1234, STATUS="two\nlines")  # a newline must not start a field
    assert systemd.recv() == "MAINPID=1234\nSTATUS=two lines\n"
    assert n.extend_timeout(2.5)
    assert systemd.recv() == "EXTEND_TIMEOUT_USEC=2500000\n"
    assert not n.notify()  # nothing to say: nothing sent
    assert systemd.pending() == []


def test_status_is_deduplicated_and_rate_limited(systemd: FakeSystemd) -> None:
    clock = ManualClock()
    n = Notifier(env={"NOTIFY_SOCKET": systemd.address}, clock=clock, status_interval=1.0)
    assert n.status("replaying 1/10")
    assert not n.status("replaying 1/10")  # identical: not resent
    clock.advance(0.2)
    assert not n.status("replaying 2/10")  # too soon: held back
    assert not n.status("replaying 3/10")  # replaces the held-back text
    assert systemd.pending() == ["STATUS=replaying 1/10\n"]
    clock.advance(0.5)
    assert not n.maybe_watchdog()  # 0.7 s after the last send: still held
    clock.advance(0.3)
    n.maybe_watchdog()  # due now: the latest text goes out, the intermediate one never
    assert systemd.pending() == ["STATUS=replaying 3/10\n"]
    clock.advance(0.1)
    assert n.status("waiting for producer", force=True)  # force skips the rate limit
    assert systemd.pending() == ["STATUS=waiting for producer\n"]
    clock.advance(0.1)
    n.status("x")
    n.status("waiting for producer")  # back to the sent text: the held one is dropped
    clock.advance(5)
    assert not n.flush_status()
    assert systemd.pending() == []


def test_watchdog_pings_at_half_the_interval(systemd: FakeSystemd) -> None:
    clock = ManualClock()
    n = make(systemd, clock, WATCHDOG_USEC="2000000", WATCHDOG_PID=str(os.getpid()))
    assert n.watchdog_interval == 2.0
    assert n.maybe_watchdog()  # the first call pings
    assert systemd.recv() == "WATCHDOG=1\n"
    pings = 0
    for _ in range(40):  # 4 s in 0.1 s steps: one ping per 1 s (half of 2 s)
        clock.advance(0.1)
        pings += n.maybe_watchdog()
    assert pings == 4
    assert systemd.pending() == ["WATCHDOG=1\n"] * 4
    # now_ns given by the caller is used instead of the clock
    assert not n.maybe_watchdog(clock.monotonic_ns() + 999_999_999)
    assert n.maybe_watchdog(clock.monotonic_ns() + 1_000_000_000)
    assert n.watchdog()  # an explicit ping, and the pacing restarts from it
    assert systemd.pending() == ["WATCHDOG=1\n", "WATCHDOG=1\n"]


def test_watchdog_without_watchdog_pid_is_ours(systemd: FakeSystemd) -> None:
    clock = ManualClock()
    n = make(systemd, clock, WATCHDOG_USEC="100000")
    assert n.watchdog_interval == 0.1
    assert n.maybe_watchdog()
    clock.advance(0.05)
    assert n.maybe_watchdog()
    assert systemd.pending() == ["WATCHDOG=1\n"] * 2


def test_watchdog_meant_for_another_pid_is_not_pinged(systemd: FakeSystemd) -> None:
    clock = ManualClock()
    n = make(systemd, clock, WATCHDOG_USEC="1000000", WATCHDOG_PID=str(os.getpid() + 1))
    assert n.watchdog_interval is None
    for _ in range(30):
        clock.advance(0.1)
        assert not n.maybe_watchdog()
    assert n.ready()  # the socket itself is still ours to use
    assert systemd.pending() == ["READY=1\n"]


@pytest.mark.parametrize("usec", ["0", "-5", "soon"])
def test_bad_watchdog_usec_disables_the_watchdog(systemd: FakeSystemd, usec: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, NOTIFY_LOGGER):
        n = make(systemd, WATCHDOG_USEC=usec)
    assert n.watchdog_interval is None and not n.maybe_watchdog()
    assert "WATCHDOG_USEC" in caplog.text


def test_without_notify_socket_everything_is_a_noop(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, NOTIFY_LOGGER):
        n = Notifier(env={"WATCHDOG_USEC": "1000000"}, clock=ManualClock())
        assert not n.enabled
        assert n.watchdog_interval is None
        assert not n.ready() and not n.status("x") and not n.stopping()
        assert not n.watchdog() and not n.maybe_watchdog() and not n.notify(A=1)
        n.close()
    assert n.messages_sent == 0 and n.send_errors == 0
    assert caplog.records == []


def test_unsupported_notify_socket_is_reported_and_ignored(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, NOTIFY_LOGGER):
        n = Notifier(env={"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not n.enabled and not n.ready()
    assert "vsock:2:1234" in caplog.text


@pytest.mark.parametrize("gone", ["closed", "unlinked"])
def test_dead_socket_logs_once_and_recovers(tmp_path: Path, gone: str,
                                            caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "notify.sock"
    fake = FakeSystemd(str(path))
    n = Notifier(env={"NOTIFY_SOCKET": str(path)}, clock=ManualClock())
    assert n.ready()
    fake.sock.close()  # systemd went away: ECONNREFUSED (file kept) or ENOENT (file gone)
    if gone == "unlinked":
        path.unlink()
    with caplog.at_level(logging.INFO, NOTIFY_LOGGER):
        for i in range(5):
            assert not n.status(f"s{i}", force=True)
            assert not n.watchdog()
        assert n.send_errors == 10
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert str(path) in warnings[0].getMessage()
        path.unlink(missing_ok=True)
        fake = FakeSystemd(str(path))  # it is back
        try:
            assert n.status("back", force=True)
            assert fake.recv() == "STATUS=back\n"
            assert "works again (10 messages were lost)" in caplog.text
            fake.sock.close()
            assert not n.watchdog()  # a new outage is a new incident: logged again
            assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2
        finally:
            fake.close()


def test_full_socket_queue_never_blocks(systemd: FakeSystemd) -> None:
    """Nobody reads the socket: sends fail fast (EAGAIN) instead of stalling the loop."""
    n = make(systemd)
    done = threading.Event()

    def flood() -> None:
        for _ in range(2000):
            n.watchdog()
        done.set()

    worker = threading.Thread(target=flood, daemon=True)
    worker.start()
    assert done.wait(10), "sending to a full notify socket blocked"
    assert n.send_errors > 0
    assert n.messages_sent + n.send_errors == 2000
