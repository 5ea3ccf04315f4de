"""The sleepers companion: lets the writer skip FUTEX_WAKE while no reader blocks.

Readers map the data segment read-only, so they cannot tell the writer that they sleep;
without that the writer must issue a FUTEX_WAKE syscall after every publish (chunk), even
when nobody waits. The companion is a second, tiny segment ``/dev/shm/NAME.wait``
(128 bytes) that the producer creates beside the data segment, group-WRITABLE (the data
segment's mode plus group write where it grants group read), holding one word readers
write: the sleepers flag. The data segment stays read-only for readers; its layout and
fingerprint are unchanged.

Layout (little-endian, all 8-byte words):

====== ============ ==========================================================
offset field        meaning
====== ============ ==========================================================
0      magic        ``TDWAITRS``, stored after the generation
8      generation   the data segment's generation: a leftover companion of an
                    earlier producer never matches
64     sleepers     1 = some reader is about to sleep or sleeps on ``wake_seq``
                    (own cache line: only blocking readers write it)
====== ============ ==========================================================

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

from tradingd.errors import SegmentExists, TradingdError
from tradingd.segment import shm

log = logging.getLogger(__name__)

SUFFIX = ".wait"
SIZE = 128
MAGIC = int.from_bytes(b"TDWAITRS", "little")
W_MAGIC, W_GENERATION, W_SLEEPERS = 0, 1, 8
SLEEPERS_OFFSET = W_SLEEPERS * 8
#: A reader that finds a companion it cannot write sleeps at most this long per wait.
FALLBACK_SLICE_S = 0.001


def companion_name(name: str) -> str:
    """``tradingd`` -> ``tradingd.wait``."""
    return shm.validate_name(name + SUFFIX)


def companion_mode(mode: int) -> int:
    """The data segment's mode plus group write where it grants group read (0640 -> 0660)."""
    return mode | ((mode & 0o040) >> 1)


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


__all__ = ["FALLBACK_SLICE_S", "SIZE", "SLEEPERS_OFFSET", "Companion", "companion_mode",
           "companion_name", "exists", "remove_stale"]
