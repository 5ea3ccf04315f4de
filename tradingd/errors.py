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


class SegmentUntrusted(SegmentPermission):
    """The file under the segment name belongs to another account than the producer's.

    ``/dev/shm`` is writable by every local user: anyone may create a file (or run their own
    producer) under a free name first. Readers attach only to a segment whose file owner is
    the expected producer account (``segment.owner``; root is always trusted) and refuse
    any other with this error, naming the owner. Find out who created it
    (``ls -ln /dev/shm/NAME``), remove it as root, and restart the producer (exit 77).
    """


class SegmentSquatted(SegmentError):
    """The producer found the name held by a file of another account (a squatter).

    The producer cannot remove it (``/dev/shm`` is sticky) and never removes another
    account's file. It waits ``segment.squat_wait`` seconds for the file to go away, then
    exits 75 (EX_TEMPFAIL): systemd restarts it, so the unit recovers by itself once root
    has removed the file (``rm /dev/shm/NAME``), without tripping the start limit.
    """

    exit_code = C.EXIT_TEMPFAIL


class SegmentStuck(SegmentCorrupt):
    """A latest-value slot's seqlock stayed odd (being written) past the readers' timeout.

    The producer died mid-update, is frozen (SIGSTOP), or the segment is corrupt. The C
    fast path and pure Python raise the same error. Restart the producer (exit 76).
    """


class SegmentNoResources(SegmentError):
    """The segment could not be created or mapped: no room or memory.

    ``/dev/shm`` is full (ENOSPC: the message names the bytes needed; see ``df /dev/shm``),
    ``RLIMIT_FSIZE`` forbids a file that large (EFBIG), or the address space or memory is
    exhausted (ENOMEM on mmap). Nothing is left behind. Free space, lower
    ``segment.ring_capacity``, or raise the limit (exit 71, retried by systemd).
    """

    exit_code = C.EXIT_OSERR
class DataRefused(DataError):
    """A data file loaded but is not fit to replay: no data rows at all, or more than
    ``producer.max_reject_share`` of its rows rejected (the format does not fit the file).

    Refused even when strict is off (exit 65). Check the file with ``tradingd-data check
    FILE``, fix the format in the config (or the file), then start again.
    """

    exit_code = C.EXIT_DATAERR
class NatsAuthError(TradingdError):
    """The NATS server refused the bridge's credentials (or its TLS handshake failed).

    Wrong user/password/token in the credentials file, or a certificate the server does
    not accept. Retrying cannot help: fix the credentials (``bridge.nats.credentials_file``
    or the unit's ``LoadCredential=nats:...``) and restart (exit 85, no restart loop).
    """

    exit_code = C.EXIT_NATS_AUTH
