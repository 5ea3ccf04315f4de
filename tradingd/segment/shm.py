"""Operating-system primitives for segments: names, create/open/unlink, map, futex.

Kept apart from the writer and reader so the protocol code reads as protocol, and so the
few system calls a segment's life involves are in one place (they are what an operator
sees with ``strace -f -y -e trace=openat,ftruncate,mmap,munmap,unlink,fchmod,fchown``).

``posix_ipc`` does ``shm_open`` (glibc: ``openat("/dev/shm/NAME", ...|O_NOFOLLOW|O_CLOEXEC)``)
and ``shm_unlink``. File descriptors are ours to close: posix_ipc does not close them on
garbage collection.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import grp
import mmap
import os
import platform
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import posix_ipc

from tradingd.constants import SHM_DIR

if TYPE_CHECKING:
    import numpy as np
from tradingd.errors import (
    SegmentExists,
    SegmentNotFound,
    SegmentPermission,
    TradingdError,
    UnsupportedPlatform,
)

_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,200}")
_TSO_MACHINES = {"x86_64", "amd64", "AMD64", "i686", "i386"}


def check_platform() -> None:
    """Refuse CPUs whose memory model breaks the plain-Python seqlock (see UnsupportedPlatform)."""
    if platform.machine() in _TSO_MACHINES or os.environ.get("TRADINGD_ALLOW_WEAK_MEMORY") == "1":
        return
    raise UnsupportedPlatform(
        f"tradingd's lock-free segment protocol needs x86-64 store ordering; this CPU is "
        f"{platform.machine()}. Set TRADINGD_ALLOW_WEAK_MEMORY=1 to run anyway (unsafe)."
    )


def validate_name(name: str) -> str:
    """Check a segment name (``tradingd``, not ``/tradingd``) and return it."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name in (".", ".."):
        raise TradingdError(
            f"invalid segment name {name!r}: use 1-200 characters from A-Z a-z 0-9 . _ -"
        )
    return name


def segment_path(name: str) -> str:
    """Where the segment named ``name`` lives on Linux: ``/dev/shm/NAME``."""
    return f"{SHM_DIR}/{name}"


@dataclass(frozen=True)
class FileId:
    """Identity of the file behind a name: tells a recreated segment from the one we mapped."""

    dev: int
    ino: int

    @classmethod
    def of_fd(cls, fd: int) -> FileId:
        st = os.fstat(fd)
        return cls(st.st_dev, st.st_ino)

    @classmethod
    def of_path(cls, path: str) -> FileId | None:
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            return None
        return cls(st.st_dev, st.st_ino)


def create_exclusive(name: str, size: int) -> int:
    """Create ``/dev/shm/NAME`` (O_CREAT|O_EXCL, mode 0600) of ``size`` bytes; return its fd.

    Mode 0600 while it is being built: nobody else can open a half-initialised segment
    (iceoryx2 does the same); the writer opens it up with fchmod once it is ready.
    """
    path = segment_path(name)
    try:
        shm = posix_ipc.SharedMemory("/" + name, posix_ipc.O_CREX, mode=0o600, size=size)
    except posix_ipc.ExistentialError as exc:
        raise SegmentExists(path, "already exists") from exc
    except posix_ipc.PermissionsError as exc:
        raise SegmentPermission(path, f"cannot create: {exc}") from exc
    except OSError as exc:
        raise SegmentPermission(path, f"cannot create: {exc.strerror}") from exc
    return shm.fd


def open_readonly(name: str) -> int:
    """Open ``/dev/shm/NAME`` read-only (O_RDONLY, size 0: never resizes it); return the fd."""
    path = segment_path(name)
    try:
        # size=0: posix_ipc would ftruncate an existing segment to a non-zero size.
        shm = posix_ipc.SharedMemory("/" + name, 0, size=0, read_only=True)
    except posix_ipc.ExistentialError as exc:
        raise SegmentNotFound(path, "does not exist (is the producer running?)") from exc
    except posix_ipc.PermissionsError as exc:
        raise SegmentPermission(path, f"cannot open for reading: permission denied "
                                      f"({_mode_text(path)})") from exc
    return shm.fd


def open_file_readonly(path: str) -> int:
    """Open a copied segment file (post-mortem) read-only, not following a symlink."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise SegmentNotFound(path, "no such file") from exc
    except PermissionError as exc:
        raise SegmentPermission(path, "cannot open for reading: permission denied") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SegmentPermission(path, "is a symbolic link: refusing to follow it") from exc
        raise SegmentNotFound(path, f"cannot open: {exc.strerror}") from exc


def _mode_text(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "mode unknown"
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"mode {st.st_mode & 0o777:04o}, uid {st.st_uid}, group {group}"


def unlink(name: str) -> None:
    """Remove the name (mapped segments stay valid for whoever has them mapped)."""
    with contextlib.suppress(posix_ipc.ExistentialError):
        posix_ipc.unlink_shared_memory("/" + name)


def resolve_group(group: str | int | None) -> int:
    """Group name or id -> gid; -1 means "leave the creator's group"."""
    if group is None:
        return -1
    if isinstance(group, int):
        return group
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError as exc:
        raise TradingdError(f"segment group {group!r} does not exist") from exc


def map_fd(fd: int, size: int, *, writable: bool) -> mmap.mmap:
    """Map ``size`` bytes of a segment fd shared (PROT_READ, or PROT_READ|PROT_WRITE).

    Read-only mappings are populated at once (MAP_POPULATE): a reader that first touches
    a ring page mid-stream takes a page fault (~1-2 us) on its latency path otherwise. The
    writer pre-touches its pages itself (:func:`prefault`): populating a shared writable
    mapping maps the pages read-only, and the first store would fault anyway.
    """
    prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
    flags = mmap.MAP_SHARED | (0 if writable else getattr(mmap, "MAP_POPULATE", 0))
    return mmap.mmap(fd, size, flags, prot)


def prefault(buf: np.ndarray) -> None:  # a uint8 view of the mapping
    """Write every page of a fresh (all-zero) writable mapping once, as Aeron pre-touches.

    The pages of a new /dev/shm file are allocated on first write; doing it here, at
    creation, keeps those faults off the first lap of the ring, where every 64th record
    would otherwise pay one in the writer and one in each reader.
    """
    buf[::mmap.PAGESIZE] = 0


# ---------------------------------------------------------------------------------------
# futex: the blocking wait strategy. Readers FUTEX_WAIT on the low 32 bits of
# header.wake_seq (allowed on a read-only shared mapping); the writer bumps it and
# FUTEX_WAKEs after publishing. Shared (not PRIVATE) futexes key on the file and offset,
# so they work across processes that map the segment at different addresses.
# ---------------------------------------------------------------------------------------

_SYS_FUTEX = {"x86_64": 202, "amd64": 202, "i686": 240, "i386": 240, "aarch64": 98}.get(
    platform.machine(), 202)
_FUTEX_WAIT = 0
_FUTEX_WAKE = 1
_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def futex_wait(addr: int, expected: int, timeout_s: float) -> None:
    """Sleep until woken, ``timeout_s`` passes, or the word at ``addr`` != ``expected``."""
    ts = _Timespec(int(timeout_s), int((timeout_s % 1) * 1e9))
    _syscall(_SYS_FUTEX, ctypes.c_void_p(addr), _FUTEX_WAIT, ctypes.c_uint32(expected),
             ctypes.byref(ts), None, 0)


def futex_wake(addr: int) -> None:
    """Wake every process waiting on the word at ``addr``."""
    _syscall(_SYS_FUTEX, ctypes.c_void_p(addr), _FUTEX_WAKE, 0x7FFFFFFF, None, None, 0)
