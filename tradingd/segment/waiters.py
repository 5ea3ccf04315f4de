"""The companion segment: the sleepers flag and the flow-control gate.

Two jobs, both needing words readers WRITE, which the read-only data segment cannot hold:
the sleepers flag (the writer skips FUTEX_WAKE while no reader blocks) and the gate
(``producer.replay.flow_control: slowest``: gated consumers publish their read positions
and a fast replay never overwrites a record one of them has not read yet).

Readers map the data segment read-only, so they cannot tell the writer that they sleep;
without that the writer must issue a FUTEX_WAKE syscall after every publish (chunk), even
when nobody waits. The companion is a second, small segment ``/dev/shm/NAME.wait``
(:data:`SIZE` bytes) that the producer creates beside the data segment, group-WRITABLE (the data
segment's mode plus group write where it grants group read), holding one word readers
write: the sleepers flag. The data segment stays read-only for readers; its layout and
fingerprint are unchanged.

Layout (little-endian, all 8-byte words; :data:`SIZE` bytes):

====== ============ ==========================================================
offset field        meaning
====== ============ ==========================================================
0      magic        ``TDWAITRS``, stored after the generation
8      generation   the data segment's generation: a leftover companion of an
                    earlier producer never matches
16     gate_slots   number of gate slots (:data:`GATE_SLOTS`)
64     sleepers     1 = some reader is about to sleep or sleeps on ``wake_seq``
                    (own cache line: only blocking readers write it)
128    gate_mode    1 = the producer honours the gate (flow control on): consumers
                    join it; 0 = feed mode, nobody waits for anybody
136    gate_epoch   bumped (atomically) by every consumer that joins: the writer
                    rescans the slots when it changed
144    gate_waiting 1 = the writer sleeps on ``gate_seq`` waiting for room
152    gate_wake_at the position the writer waits for (a consumer crossing it wakes it)
160    gate_seq     the futex word the writer sleeps on (low 32 bits)
192    slot[i]      :data:`GATE_SLOTS` slots of 64 bytes (a cache line each):
                    +0 state (0 free, 1 claimed, 2 active, 3 dropped by the producer),
                    +8 position (the next record the consumer reads: all below it are
                    read), +16 pid, +24 the pid's start ticks (liveness)
====== ============ ==========================================================

Gate protocol (LMAX Disruptor gating sequences / Aeron's min flow control; C does the hot
parts, tradingd/segment/_fastpath.c):

* a consumer claims a free slot (CAS 0 -> 1), stores its position, pid and start ticks,
  stores state 2 (active), then atomically bumps ``gate_epoch``; after every read it
  stores its new position (release), fences, and if ``gate_waiting`` is set and it has
  just crossed ``gate_wake_at``, clears the flag, bumps ``gate_seq`` and FUTEX_WAKEs;
* the writer (``publish_gated``) publishes a chunk of k records at cursor s only when every
  active slot's position >= s + k - (ring_capacity - ring_window): nothing a gated
  consumer has not read is overwritten, and its own lapping check never fires. Short of
  that it spins ~2k pauses, then stores ``gate_wake_at`` (room for half the ring),
  ``gate_waiting = 1``, fences, re-checks, and sleeps on ``gate_seq`` in slices of 2 ms;
* the producer drops a slot whose consumer died (pid gone: freed) or that stalled (no
  progress for ``replay.flow_control_timeout`` while it held the replay: state 3, logged,
  counted). A dropped consumer reads on in feed mode (it may be lapped, and counts it).

Trust: the gate is writable by the segment's group, like the sleepers flag. With flow
control on, a hostile member of the group can hold the replay (a slot that never moves)
for ``flow_control_timeout`` at a time, and no more per join; it cannot touch the data.
With flow control off (the default) the producer never reads the gate.

Protocol (Dekker-style; the C fast path does both sides):

* a blocking reader reads ``wake_seq`` (the futex word), stores ``sleepers = 1``, issues a
  full fence, re-checks the cursor, and only then ``FUTEX_WAIT``\\ s on ``wake_seq``;
* the writer stores the cursor, issues a full fence, loads ``sleepers``; only if it is set
  does it clear it, bump ``wake_seq`` and ``FUTEX_WAKE``.

Either the writer sees the flag or the reader sees the new cursor, so no wake-up is lost;
a reader that woke and sleeps again sets the flag again. A flag left set by a reader that
died costs one needless wake, then it is clear. A hostile reader of the group can only
make the writer wake needlessly (the old cost) or its own wake-ups late: it cannot touch
the data. Without the companion (pure-Python writer, creation failed, a reader that
cannot open it for writing) the writer wakes after every publish as before, and a reader
that cannot set the flag waits in short slices (:data:`FALLBACK_SLICE_S`).
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

from tradingd.errors import SegmentExists, TradingdError
from tradingd.segment import shm

log = logging.getLogger(__name__)

SUFFIX = ".wait"
MAGIC = int.from_bytes(b"TDWAITRS", "little")
W_MAGIC, W_GENERATION, W_GATE_SLOTS, W_SLEEPERS = 0, 1, 2, 8
SLEEPERS_OFFSET = W_SLEEPERS * 8
#: The gate's control line and its words (word index inside it).
GATE_CONTROL_OFFSET = 128
GC_MODE, GC_EPOCH, GC_WAITING, GC_WAKE_AT, GC_SEQ = 0, 1, 2, 3, 4
#: Gate slots: a cache line each; word index inside a slot.
GATE_SLOTS_OFFSET = 192
GATE_SLOT_SIZE = 64
GATE_SLOTS = 32
GS_STATE, GS_POSITION, GS_PID, GS_TICKS = 0, 1, 2, 3
GATE_FREE, GATE_CLAIMED, GATE_ACTIVE, GATE_DROPPED = 0, 1, 2, 3
SIZE = GATE_SLOTS_OFFSET + GATE_SLOTS * GATE_SLOT_SIZE
#: A reader that finds a companion it cannot write sleeps at most this long per wait.
FALLBACK_SLICE_S = 0.001


def companion_name(name: str) -> str:
    """``tradingd`` -> ``tradingd.wait``."""
    return shm.validate_name(name + SUFFIX)


def companion_mode(mode: int) -> int:
    """The data segment's mode plus group write where it grants group read (0640 -> 0660)."""
    return mode | ((mode & 0o040) >> 1)


@dataclass(frozen=True)
class GateSlot:
    """One gate slot as read: a gated consumer's state, read position and process."""

    index: int
    state: int
    position: int
    pid: int
    start_ticks: int


class Companion:
    """A mapped companion segment (writer: created; reader: opened read-write)."""

    def __init__(self, name: str, fd: int, mm: mmap.mmap, owner: bool) -> None:
        self.name = name
        self._fd = fd
        self.mm = mm
        self.words = memoryview(mm).cast("Q")
        self.owner = owner
        self._file_id = shm.FileId.of_fd(fd)

    @property
    def sleepers(self) -> int:
        return self.words[W_SLEEPERS]

    # ------------------------------------------------------------------ writer
    @classmethod
    def create(cls, data_name: str, generation: int, mode: int, gid: int) -> Companion | None:
        """Create the companion of a just-created data segment; None if it cannot be.

        The data segment was created exclusively, so a companion already at the name is a
        leftover of a dead producer: removed once, then created exclusively.
        """
        try:
            name = companion_name(data_name)
        except TradingdError as exc:  # a data name too long for the suffix
            log.warning("no sleepers companion (%s): blocking readers are woken on every "
                        "publish", exc)
            return None
        for attempt in range(2):
            try:
                fd = shm.create_exclusive(name, SIZE)
                break
            except SegmentExists:
                if attempt:
                    log.warning("%s exists again right after removal: blocking readers are "
                                "woken on every publish", shm.segment_path(name))
                    return None
                shm.unlink(name)
            except Exception as exc:
                log.warning("cannot create %s (%s): blocking readers are woken on every "
                            "publish", shm.segment_path(name), exc)
                return None
        try:
            mm = shm.map_fd(fd, SIZE, writable=True)
            words = memoryview(mm).cast("Q")
            words[W_GENERATION] = generation
            words[W_GATE_SLOTS] = GATE_SLOTS
            words[W_SLEEPERS] = 0
            words[W_MAGIC] = MAGIC
            words.release()
            if gid != -1:
                os.fchown(fd, -1, gid)
            os.fchmod(fd, companion_mode(mode))
        except BaseException:
            shm.unlink(name)
            os.close(fd)
            raise
        return cls(name, fd, mm, owner=True)

    # ------------------------------------------------------------------ reader
    @classmethod
    def open(cls, data_name: str, generation: int, owner_uid: int) -> Companion | None:
        """Open the companion of a data segment read-write; None if there is none usable.

        Usable: a regular file (not followed through a symlink) of :data:`SIZE` bytes,
        owned by the data segment's owner, with the magic and the same generation.
        """
        try:
            name = companion_name(data_name)
            fd = os.open(shm.segment_path(name), os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except (OSError, TradingdError):
            return None
        try:
            st = os.fstat(fd)
            if (not stat.S_ISREG(st.st_mode) or st.st_size != SIZE
                    or st.st_uid != owner_uid):
                os.close(fd)
                return None
            mm = shm.map_fd(fd, SIZE, writable=True)
        except OSError:
            os.close(fd)
            return None
        comp = cls(name, fd, mm, owner=False)
        if comp.words[W_MAGIC] != MAGIC or comp.words[W_GENERATION] != generation:
            comp.close()
            return None
        return comp

    # ------------------------------------------------------------------ the gate
    def _ctl(self, word: int) -> int:
        return GATE_CONTROL_OFFSET // 8 + word

    @staticmethod
    def slot_offset(i: int) -> int:
        """Byte offset of gate slot ``i``."""
        return GATE_SLOTS_OFFSET + i * GATE_SLOT_SIZE

    @property
    def gate_mode(self) -> int:
        """1 when the producer honours the gate (flow control on)."""
        return self.words[self._ctl(GC_MODE)]

    def set_gate_mode(self, mode: int) -> None:
        """The writer turns the gate on (1) before publishing; consumers join only then."""
        self.words[self._ctl(GC_MODE)] = mode

    def slot(self, i: int) -> GateSlot:
        """A snapshot of gate slot ``i`` (each word read once: informative)."""
        w = self.slot_offset(i) // 8
        words = self.words
        return GateSlot(i, words[w + GS_STATE], words[w + GS_POSITION], words[w + GS_PID],
                        words[w + GS_TICKS])

    def slots(self) -> list[GateSlot]:
        """Every slot that is not free."""
        out = []
        for i in range(GATE_SLOTS):
            if self.words[self.slot_offset(i) // 8 + GS_STATE] != GATE_FREE:
                out.append(self.slot(i))
        return out

    def join(self, position: int, pid: int, start_ticks: int,
             cas: Callable[[object, int, int | None, int], bool]) -> int | None:
        """Claim a free slot at ``position``; its index, or None if all are taken.

        ``cas`` is the C ``atomic_u64`` (compare-and-swap, or an add with None): two
        consumers joining at once never share a slot, and the epoch bump is never lost.
        """
        for i in range(GATE_SLOTS):
            off = self.slot_offset(i)
            if not cas(self.mm, off + GS_STATE * 8, GATE_FREE, GATE_CLAIMED):
                continue
            w = off // 8
            self.words[w + GS_POSITION] = position
            self.words[w + GS_PID] = pid
            self.words[w + GS_TICKS] = start_ticks
            self.words[w + GS_STATE] = GATE_ACTIVE
            cas(self.mm, GATE_CONTROL_OFFSET + GC_EPOCH * 8, None, 1)  # a full fence too
            return i
        return None

    def leave(self, i: int, cas: Callable[[object, int, int | None, int], bool]) -> None:
        """Free slot ``i`` (active, or dropped by the producer)."""
        off = self.slot_offset(i) + GS_STATE * 8
        if not cas(self.mm, off, GATE_ACTIVE, GATE_FREE):
            cas(self.mm, off, GATE_DROPPED, GATE_FREE)

    def close(self) -> None:
        """Unmap (the writer also unlinks the name if it is still its file)."""
        if self._fd < 0:
            return
        if self.owner and shm.FileId.of_path(shm.segment_path(self.name)) == self._file_id:
            shm.unlink(self.name)
        self.words.release()
        with contextlib.suppress(BufferError):  # a C Segment still holds it: unmapped at exit
            self.mm.close()
        os.close(self._fd)
        self._fd = -1


def remove_stale(data_name: str, generation: int) -> bool:
    """Remove ``NAME.wait`` if it is the companion of generation ``generation`` (whose data
    segment was just removed as stale); a newer producer's companion is left alone."""
    try:
        path = shm.segment_path(companion_name(data_name))
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (OSError, TradingdError):
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != SIZE:
            return False
        head = os.pread(fd, 16, 0)
        if (int.from_bytes(head[:8], "little") != MAGIC
                or int.from_bytes(head[8:16], "little") != generation):
            return False
        if shm.FileId.of_path(path) != shm.FileId(st.st_dev, st.st_ino):
            return False
        shm.unlink(companion_name(data_name))
        return True
    finally:
        os.close(fd)


def exists(data_name: str) -> bool:
    """True if ``/dev/shm/NAME.wait`` exists (any file: for the writer's fallback test)."""
    return os.path.lexists(shm.segment_path(data_name + SUFFIX))


__all__ = ["FALLBACK_SLICE_S", "GATE_ACTIVE", "GATE_CLAIMED", "GATE_CONTROL_OFFSET",
           "GATE_DROPPED", "GATE_FREE", "GATE_SLOTS", "GATE_SLOTS_OFFSET", "SIZE",
           "SLEEPERS_OFFSET", "Companion", "GateSlot", "companion_mode", "companion_name",
           "exists", "remove_stale"]
