"""Stopping cleanly on SIGTERM/SIGINT: a flag the main loop checks and a wait it can sleep in.

The handlers only record the signal; the main loop sees it through :meth:`StopFlag.is_set`
and finishes its turn, so shutdown (state stopped, unlink, STOPPING=1) runs in ordinary
code, never inside a signal handler. :meth:`StopFlag.wait` sleeps in ``select()`` on a pipe
registered with :func:`signal.set_wakeup_fd`: the C-level handler writes to it the moment a
signal arrives, so a loop sleeping between polls wakes at once rather than at the end of
its timeout. (Calling ``threading.Event.set`` from a handler instead can deadlock when the
signal lands while the main thread holds the event's lock.)

Handlers must be installed from the main thread; :meth:`StopFlag.close` (or leaving the
``with`` block) restores the previous handlers and wakeup fd.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections.abc import Iterable
from types import FrameType
from typing import Any

#: Signals that ask a daemon to stop.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopFlag:
    """Set by SIGTERM/SIGINT (or :meth:`set`); read by the main loop.

    ``ignore_sighup`` ignores SIGHUP (whose default action kills the process), for a
    daemon started from a terminal that may close. A second SIGINT while stopping raises
    KeyboardInterrupt, so a Ctrl-C at a hung shutdown still ends the program (exit 130).
    """

    def __init__(self, signals: Iterable[signal.Signals] = STOP_SIGNALS, *,
                 ignore_sighup: bool = False, install: bool = True) -> None:
        self._signals = tuple(signals)
        self._ignore_sighup = ignore_sighup
        self._signum: int | None = None
        self._rfd, self._wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._old_handlers: dict[int, Any] = {}
        self._old_wakeup_fd: int | None = None
        self._installed = False
        if install:
            self.install()

    def install(self) -> None:
        """Install the handlers and the wakeup fd (main thread only)."""
        if self._installed:
            return
        self._old_wakeup_fd = signal.set_wakeup_fd(self._wfd, warn_on_full_buffer=False)
        self._installed = True
        for sig in self._signals:
            self._old_handlers[sig] = signal.signal(sig, self._handle)
        if self._ignore_sighup:
            self._old_handlers[signal.SIGHUP] = signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: give up on a clean stop
        self._signum = signum

    @property
    def signum(self) -> int | None:
        """The signal that set the flag (None if none, or set by :meth:`set`)."""
        return self._signum if self._signum != 0 else None

    @property
    def reason(self) -> str:
        """What stopped us, for the log: ``SIGTERM``, ``SIGINT`` or ``request``."""
        if self._signum is None:
            return "not stopped"
        if self._signum == 0:
            return "request"
        return signal.Signals(self._signum).name

    def is_set(self) -> bool:
        """True once a stop was requested. Cheap: call it every loop turn."""
        return self._signum is not None

    def set(self) -> None:
        """Request a stop from code (a fatal condition, a test); wakes :meth:`wait`."""
        if self._signum is None:
            self._signum = 0
        with contextlib.suppress(OSError):  # pipe full: a wakeup is pending anyway
            os.write(self._wfd, b"\0")

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` seconds (None: forever), returning early on a stop.

        Returns :meth:`is_set`. A zero or negative timeout just checks.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            readable, _, _ = select.select([self._rfd], [], [], remaining)
            if readable:
                self._drain()
        return self.is_set()

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._rfd, 512):
                pass

    def fileno(self) -> int:
        """A descriptor that becomes readable when a stop signal arrives (for selectors)."""
        return self._rfd

    def close(self) -> None:
        """Restore the previous handlers and wakeup fd, and close the pipe."""
        if self._installed:
            for sig, old in self._old_handlers.items():
                signal.signal(sig, old)
            self._old_handlers.clear()
            signal.set_wakeup_fd(-1 if self._old_wakeup_fd is None else self._old_wakeup_fd)
            self._installed = False
        if self._rfd >= 0:
            os.close(self._rfd)
            os.close(self._wfd)
            self._rfd = self._wfd = -1

    def __enter__(self) -> StopFlag:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
