"""An sd_notify client: readiness, status, watchdog and stopping messages to systemd.

Written by hand because the ``sdnotify`` package swallows every error and knows nothing
of ``WATCHDOG_USEC``/``WATCHDOG_PID`` (see the notes' facts). The protocol is one
datagram of ``KEY=VALUE`` lines sent to the AF_UNIX socket named by ``NOTIFY_SOCKET``
(a path, or ``@name`` for the abstract namespace). Without ``NOTIFY_SOCKET`` (run by hand)
every method is a cheap no-op, so the daemons call them unconditionally.

Nothing here raises: a failed send is logged once (and again only after it worked in
between), because a daemon must never die of its supervisor's socket going away.
Sends never block (``MSG_DONTWAIT``): a full socket queue costs one message, not a stall
of the main loop.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

from tradingd.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)

#: Least time between two different STATUS= texts; changes in between are coalesced.
DEFAULT_STATUS_INTERVAL = 1.0


def _address(value: str) -> bytes | None:
    """The socket address for a ``NOTIFY_SOCKET`` value, or None if unsupported."""
    if value.startswith("/"):
        return os.fsencode(value)
    if value.startswith("@") and len(value) > 1:
        return b"\0" + os.fsencode(value[1:])
    return None  # relative paths, vsock: addresses (systemd >= 254) are not supported


def _one_line(value: object) -> str:
    """A field value on one line: a newline would start a new (bogus) field."""
    return " ".join(str(value).splitlines())


class Notifier:
    """Talks to the service manager through ``NOTIFY_SOCKET``; a no-op without it.

    ``env`` and ``pid`` default to the real process's; tests inject them. ``clock``
    supplies the monotonic time for watchdog pacing and STATUS rate limiting.
    """

    def __init__(self, *, env: Mapping[str, str] | None = None, pid: int | None = None,
                 clock: Clock = SYSTEM_CLOCK,
                 status_interval: float = DEFAULT_STATUS_INTERVAL) -> None:
        env = os.environ if env is None else env
        self._clock = clock
        self._pid = os.getpid() if pid is None else pid
        self._status_interval_ns = int(status_interval * 1e9)
        self._socket_name = env.get("NOTIFY_SOCKET", "")
        self._address = _address(self._socket_name) if self._socket_name else None
        if self._socket_name and self._address is None:
            log.warning("NOTIFY_SOCKET=%r is not an absolute path or @abstract name: "
                        "not notifying systemd", self._socket_name)
        self._sock: socket.socket | None = None
        self._failing = False
        self._errors_before = 0
        self.send_errors = 0
        self.messages_sent = 0
        self._status_sent: str | None = None
        self._status_sent_ns: int | None = None
        self._status_pending: str | None = None
        self._watchdog_usec = self._parse_watchdog(env) if self._address else None
        self._last_ping_ns: int | None = None

    def _parse_watchdog(self, env: Mapping[str, str]) -> int | None:
        """``WATCHDOG_USEC`` in microseconds, if the watchdog is on and meant for us."""
        usec_text = env.get("WATCHDOG_USEC", "")
        if not usec_text:
            return None
        try:
            usec = int(usec_text)
        except ValueError:
            usec = 0
        if usec <= 0:
            log.warning("ignoring WATCHDOG_USEC=%r: not a positive integer", usec_text)
            return None
        pid_text = env.get("WATCHDOG_PID", "")
        if pid_text:
            try:
                pid = int(pid_text)
            except ValueError:
                log.warning("ignoring the watchdog: WATCHDOG_PID=%r is not a PID", pid_text)
                return None
            if pid != self._pid:
                log.debug("the watchdog is meant for PID %d, not us (%d)", pid, self._pid)
                return None
        return usec

    # -- state ------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """True when there is a service manager to talk to."""
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """The watchdog timeout in seconds (``WATCHDOG_USEC``), or None if it is off."""
        return None if self._watchdog_usec is None else self._watchdog_usec / 1e6

    # -- messages ---------------------------------------------------------------------

    def notify(self, **fields: object) -> bool:
        """Send ``KEY=VALUE`` fields in one datagram; True if it was sent."""
        if not fields:
            return False
        message = "".join(f"{key}={_one_line(value)}\n" for key, value in fields.items())
        return self.send(message)

    def ready(self, status: str | None = None) -> bool:
        """``READY=1``: start-up is complete (``Type=notify`` units become active)."""
        if status is None:
            return self.notify(READY=1)
        return self._with_status(status, READY=1)

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: shutdown has begun (sent first thing on SIGTERM)."""
        if status is None:
            return self.notify(STOPPING=1)
        return self._with_status(status, STOPPING=1)

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: the main loop is alive. Prefer :meth:`maybe_watchdog` in loops."""
        self._last_ping_ns = self._clock.monotonic_ns()
        return self.notify(WATCHDOG=1)

    def extend_timeout(self, seconds: float) -> bool:
        """``EXTEND_TIMEOUT_USEC``: ask for more time to start or stop (long loads)."""
        return self.notify(EXTEND_TIMEOUT_USEC=max(1, int(seconds * 1e6)))

    def status(self, text: str, *, force: bool = False) -> bool:
        """``STATUS=text`` (shown by ``systemctl status``), de-duplicated and rate-limited.

        An unchanged text is not resent. A changed text within ``status_interval`` of the
        previous one is kept and sent later by :meth:`flush_status` (which
        :meth:`maybe_watchdog` calls), so a fast loop reporting progress sends at most one
        STATUS a second and the last text always gets out. ``force`` skips the rate limit
        (state changes an operator must see at once).
        """
        text = _one_line(text)
        if text == self._status_sent:
            self._status_pending = None
            return False
        now = self._clock.monotonic_ns()
        if force or self._status_due(now):
            return self._send_status(text, now)
        self._status_pending = text
        return False

    def flush_status(self, now_ns: int | None = None) -> bool:
        """Send the STATUS text held back by the rate limit, once it is due."""
        if self._status_pending is None:
            return False
        now = self._clock.monotonic_ns() if now_ns is None else now_ns
        if not self._status_due(now):
            return False
        text, self._status_pending = self._status_pending, None
        return self._send_status(text, now)

    def maybe_watchdog(self, now_ns: int | None = None) -> bool:
        """Call every main-loop turn: pings at half the watchdog interval; True if it pinged.

        Also sends a STATUS text held back by the rate limit. ``now_ns`` is the monotonic
        time (the caller usually has it already); default: the injected clock.
        """
        if self._address is None:
            return False
        now = self._clock.monotonic_ns() if now_ns is None else now_ns
        self.flush_status(now)
        if self._watchdog_usec is None:
            return False
        half_ns = self._watchdog_usec * 500  # usec * 1000 / 2
        if self._last_ping_ns is not None and now - self._last_ping_ns < half_ns:
            return False
        self._last_ping_ns = now
        return self.notify(WATCHDOG=1)

    # -- internals --------------------------------------------------------------------

    def _status_due(self, now_ns: int) -> bool:
        return (self._status_sent_ns is None
                or now_ns - self._status_sent_ns >= self._status_interval_ns)

    def _send_status(self, text: str, now_ns: int) -> bool:
        self._status_sent, self._status_sent_ns = text, now_ns
        self._status_pending = None
        return self.notify(STATUS=text)

    def _with_status(self, status: str, **fields: object) -> bool:
        text = _one_line(status)
        self._status_sent, self._status_sent_ns = text, self._clock.monotonic_ns()
        self._status_pending = None
        return self.notify(**fields, STATUS=text)

    def send(self, message: str) -> bool:
        """Send a raw notification datagram; errors are logged once, never raised."""
        if self._address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX,
                                           socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message.encode(), socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL,
                              self._address)
        except OSError as exc:
            self.send_errors += 1
            if not self._failing:
                self._failing = True
                self._errors_before = self.send_errors - 1
                log.warning("cannot notify systemd through NOTIFY_SOCKET=%s: %s (further "
                            "failures are not logged until a message gets through)",
                            self._socket_name, exc)
            return False
        self.messages_sent += 1
        if self._failing:
            self._failing = False
            log.info("notifying systemd works again (%d messages were lost)",
                     self.send_errors - self._errors_before)
        return True

    def close(self) -> None:
        """Close the socket (the process exits soon after STOPPING=1 anyway)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
