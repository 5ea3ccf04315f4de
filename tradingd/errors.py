"""The error hierarchy: one base, a class per thing an operator can act on.

Every error carries the exit code a daemon or tool ends with when it is fatal, and a
message that says what is wrong and where (file:line, key path, segment offset).
Expected failures are reported as ``tradingd-x: <message>`` without a traceback.
"""

from __future__ import annotations

from tradingd import constants as C


class TradingdError(Exception):
    """Base of every error tradingd raises on purpose.

    Catch this at the top of a command to print the message and exit with
    :attr:`exit_code`; anything else escaping is a bug.
    """

    exit_code: int = C.EXIT_FAILURE


class ConfigError(TradingdError):
    """The configuration file is missing, not YAML, or fails validation.

    The message names the file and the key path (``producer.replay.speed``) and what was
    expected. Fix the file; restarting will not help (exit 78, EX_CONFIG).
    """

    exit_code = C.EXIT_CONFIG


class DataError(TradingdError):
    """Market data could not be used.

    Raised for a data file that cannot be read at all (missing, wrong layout: exit 66),
    or, in strict mode, for the first bad row (exit 65).
    """

    exit_code = C.EXIT_NOINPUT


class StrictDataError(DataError):
    """Strict mode is on and a data file has bad rows: fix the file or turn strict off."""

    exit_code = C.EXIT_DATAERR


class SegmentError(TradingdError):
    """Something is wrong with a shared-memory segment.

    ``where`` is the segment's path (``/dev/shm/NAME``) or the file inspected.
    """

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"segment {where}: {message}")
        self.where = where
        self.detail = message


class SegmentNotFound(SegmentError):
    """No segment of that name exists: the producer is not running (or uses another name).

    Consumers wait for it to appear; tools report it.
    """


class SegmentNotReady(SegmentError):
    """The segment exists but its producer has not finished initialising it.

    Transient: wait and attach again. Persisting for more than a second or two means the
    producer died while creating it; ``tradingd-inspect cleanup`` removes such a leftover.
    """


class SegmentStopped(SegmentError):
    """The producer marked the segment stopped: it is going away. Wait for a new one."""


class SegmentCorrupt(SegmentError):
    """The segment's header is inconsistent (sizes, offsets) or the file is truncated.

    Do not read it. Copy it for a post-mortem (``tradingd-inspect --file``) and let the
    producer recreate it (``tradingd-inspect cleanup``).
    """

    exit_code = C.EXIT_PROTOCOL


class SegmentForeign(SegmentError):
    """The file under that name is not a tradingd segment (wrong magic number).

    Another program uses the same name: pick another segment name, or remove that file if
    it is yours.
    """

    exit_code = C.EXIT_PROTOCOL


class SegmentVersionMismatch(SegmentError):
    """The segment was written with another layout (major version or fingerprint differ).

    Producer and consumer come from different tradingd versions: upgrade the older one.
    Restarting will not help (exit 76, EX_PROTOCOL).
    """

    exit_code = C.EXIT_PROTOCOL


class SegmentExists(SegmentError):
    """Creating failed because the name is taken (by a live or a stale segment)."""

    exit_code = C.EXIT_SEGMENT_OWNED


class SegmentOwned(SegmentExists):
    """Another producer is alive and owns the segment: refusing to start a second one.

    Stop the other producer, or give this one another ``--segment`` name.
    """


class SegmentPermission(SegmentError):
    """The operating system refused access to the segment (mode, owner or group).

    The producer's group decides who may read: add the reader to that group.
    """

    exit_code = C.EXIT_NOPERM


class UnsupportedPlatform(TradingdError):
    """The lock-free protocol relies on x86-64 store/load ordering (TSO) from plain Python.

    On other CPUs (ARM, POWER) Python stores may be reordered and a reader could accept a
    torn record. tradingd refuses to run there unless TRADINGD_ALLOW_WEAK_MEMORY=1.
    """


class MetricsUnavailable(TradingdError):
    """The metrics endpoint could not be served: its address/port cannot be bound.

    Another process holds the port (an old daemon still stopping, or another program):
    free it, or change ``*.metrics.port`` in the config (0 picks a free port). A restart
    may succeed once the port is free, so this is not a permanent exit code (69).
    """

    exit_code = C.EXIT_UNAVAILABLE


class GatewayUnavailable(TradingdError):
    """tradingd-gateway cannot listen: its WebSocket address/port cannot be bound.

    Another process holds the port (an old gateway still stopping, or another program):
    free it, or change ``gateway.port`` in the config (0 picks a free port). A restart may
    succeed once the port is free, so this is not a permanent exit code (69).
    """

    exit_code = C.EXIT_UNAVAILABLE
