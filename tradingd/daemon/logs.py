"""Logging for daemons: journald priorities under systemd, timestamps by hand.

Under systemd, stderr is a stream into journald (``JOURNAL_STREAM`` names its device and
inode). journald adds its own timestamp and stores a line starting with ``<N>`` at syslog
priority N (``SyslogLevelPrefix=``, on by default), so there each line is written as
``<6>message``: every line, including traceback lines, which journald would otherwise file
as separate entries at the default priority. Run by hand, lines are plain:
``2026-11-23 12:00:00.123 INFO tradingd-producer: message``.

Main loops run thousands of times a second; two helpers keep their logs readable:
:class:`OnceLogger` logs a state only when it changes, :class:`RateLimitedLog` logs a
repeated error at most once per interval and says how many were suppressed (in the spirit
of python-zeroconf's ``QuietLogger``).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import IO, Any

from tradingd.clock import SYSTEM_CLOCK, Clock

#: The levels the config and ``--log-level`` accept.
LEVELS = ("debug", "info", "warning", "error")

_MARK = "_tradingd_handler"


def journal_priority(levelno: int) -> int:
    """The syslog priority (0 emerg .. 7 debug) for a logging level."""
    if levelno >= logging.CRITICAL:
        return 2  # crit
    if levelno >= logging.ERROR:
        return 3  # err
    if levelno >= logging.WARNING:
        return 4  # warning
    if levelno >= logging.INFO:
        return 6  # info
    return 7  # debug


def is_journal_stream(stream: IO[Any], env: Mapping[str, str] | None = None) -> bool:
    """True if ``stream`` is the journald stream systemd connected (``JOURNAL_STREAM``).

    systemd sets ``JOURNAL_STREAM=dev:inode`` of the stream it gave us; comparing it with
    the file's own ``st_dev:st_ino`` tells a real journal stream from an inherited
    variable with stderr redirected elsewhere (``2>file`` in a shell under a unit).
    """
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep:
        return False
    try:
        st = os.fstat(stream.fileno())
        return (st.st_dev, st.st_ino) == (int(dev), int(ino))
    except (OSError, ValueError, AttributeError):
        return False  # no real file descriptor (a test's StringIO), or a bad variable


def parse_level(level: str | int) -> int:
    """A logging level from ``debug|info|warning|error`` (any case) or a number."""
    if isinstance(level, int):
        return level
    name = level.strip().lower()
    if name not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    return int(logging.getLevelName(name.upper()))


class JournalFormatter(logging.Formatter):
    """``<N>message``, with the priority prefix on every line (tracebacks included)."""

    def __init__(self) -> None:
        super().__init__("%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{journal_priority(record.levelno)}>"
        text = super().format(record)
        return "\n".join(prefix + line for line in text.split("\n"))


class PlainFormatter(logging.Formatter):
    """``2026-11-23 12:00:00.123 INFO program: message`` (local time) for a terminal."""

    def __init__(self, program: str) -> None:
        safe = program.replace("%", "%%")
        super().__init__(f"%(asctime)s.%(msecs)03d %(levelname)s {safe}: %(message)s",
                         datefmt="%Y-%m-%d %H:%M:%S")


def setup_logging(program: str, level: str | int = "info", *, stream: IO[Any] | None = None,
                  env: Mapping[str, str] | None = None) -> logging.Handler:
    """Send all logging to stderr (or ``stream``), formatted for journald or a terminal.

    Replaces the handler a previous call installed (so a test or a reload can call it
    again) and leaves other handlers alone. Returns the handler.
    """
    out = sys.stderr if stream is None else stream
    formatter: logging.Formatter = (JournalFormatter() if is_journal_stream(out, env)
                                    else PlainFormatter(program))
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(parse_level(level))
    logging.captureWarnings(True)
    return handler


class OnceLogger:
    """Logs a state only when it changes: for transitions a loop checks every turn.

    ``transition("producer", "down", logging.WARNING, "producer down: ...")`` logs the
    first time and again only after another state was logged for that key.
    """

    _UNSET = object()

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._states: dict[Hashable, object] = {}

    def transition(self, key: Hashable, state: object, level: int, msg: str,
                   *args: object) -> bool:
        """Log ``msg`` if ``key``'s state differs from the last one logged; True if logged."""
        if self._states.get(key, self._UNSET) == state:
            return False
        self._states[key] = state
        self._logger.log(level, msg, *args)
        return True

    def once(self, key: Hashable, level: int, msg: str, *args: object) -> bool:
        """Log ``msg`` the first time for ``key`` (until :meth:`reset`); True if logged."""
        return self.transition(key, True, level, msg, *args)

    def state(self, key: Hashable) -> object:
        """The state last logged for ``key`` (None if none)."""
        return self._states.get(key)

    def reset(self, key: Hashable | None = None) -> None:
        """Forget ``key`` (or every key), so the next call logs again."""
        if key is None:
            self._states.clear()
        else:
            self._states.pop(key, None)


@dataclass
class _Seen:
    logged_ns: int
    suppressed: int = 0


class RateLimitedLog:
    """Logs a repeated message at most once per ``interval`` seconds per key.

    For errors a loop may hit every turn (a failing scrape, a segment that will not
    attach): the first is logged, repeats within the interval are counted, and the next
    one logged after it says how many were suppressed. Keys are the caller's (an error
    kind, a file name); memory grows with the number of distinct keys, not of calls.
    """

    def __init__(self, logger: logging.Logger, interval: float = 60.0,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self._logger = logger
        self._interval_ns = int(interval * 1e9)
        self._clock = clock
        self._seen: dict[Hashable, _Seen] = {}

    def log(self, level: int, key: Hashable, msg: str, *args: object,
            exc_info: bool = False) -> bool:
        """Log unless ``key`` was logged less than ``interval`` ago; True if logged."""
        now = self._clock.monotonic_ns()
        seen = self._seen.get(key)
        if seen is not None and now - seen.logged_ns < self._interval_ns:
            seen.suppressed += 1
            return False
        if seen is not None and seen.suppressed:
            msg += " (%d similar messages suppressed)"
            args = (*args, seen.suppressed)
        self._seen[key] = _Seen(now)
        self._logger.log(level, msg, *args, exc_info=exc_info)
        return True

    def debug(self, key: Hashable, msg: str, *args: object, exc_info: bool = False) -> bool:
        return self.log(logging.DEBUG, key, msg, *args, exc_info=exc_info)

    def info(self, key: Hashable, msg: str, *args: object, exc_info: bool = False) -> bool:
        return self.log(logging.INFO, key, msg, *args, exc_info=exc_info)

    def warning(self, key: Hashable, msg: str, *args: object, exc_info: bool = False) -> bool:
        return self.log(logging.WARNING, key, msg, *args, exc_info=exc_info)

    def error(self, key: Hashable, msg: str, *args: object, exc_info: bool = False) -> bool:
        return self.log(logging.ERROR, key, msg, *args, exc_info=exc_info)

    def suppressed(self, key: Hashable) -> int:
        """Repeats of ``key`` suppressed since it was last logged."""
        seen = self._seen.get(key)
        return 0 if seen is None else seen.suppressed

    def clear(self, key: Hashable) -> int:
        """Forget ``key`` (the condition is over); returns how many repeats were suppressed.

        The next occurrence is then logged at once, as a new incident.
        """
        seen = self._seen.pop(key, None)
        return 0 if seen is None else seen.suppressed
