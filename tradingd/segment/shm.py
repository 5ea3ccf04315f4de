"""Operating-system primitives for segments: names, create/open/unlink, map, futex.

Kept apart from the writer and reader so the protocol code reads as protocol, and so the
few system calls a segment's life involves are in one place (they are what an operator
sees with ``strace -f -y -e trace=openat,ftruncate,mmap,munmap,unlink,fchmod,fchown``).

Segments are the files glibc's ``shm_open`` opens (``openat("/dev/shm/NAME",
...|O_NOFOLLOW|O_CLOEXEC)``), opened here with ``os.open`` directly so every open can add
``O_NONBLOCK`` and check what it got (``fstat``: a regular file, owned by the expected
account) before anything else: ``/dev/shm`` is world-writable, and a FIFO, a symlink, a
directory or another user's file may sit at any name (:func:`open_segment`).
"""

from __future__ import annotations

import ctypes
import errno
import grp
import mmap
import os
import platform
import pwd
import re
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tradingd.constants import SHM_DIR

if TYPE_CHECKING:
    import numpy as np
from tradingd.errors import (
    SegmentError,
    SegmentExists,
    SegmentForeign,
    SegmentNoResources,
    SegmentNotFound,
    SegmentPermission,
    SegmentUntrusted,
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


def create_exclusive(name: str, size: int = 0) -> int:
    """Create ``/dev/shm/NAME`` empty (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600); return its fd.

    The same file glibc's ``shm_open`` creates (``posix_ipc`` names keep working). Mode
    0600 while it is being built: nobody else can open a half-initialised segment
    (iceoryx2 does the same); the writer opens it up with fchmod once it is ready. The
    caller records its PID in it (:func:`write_claim`) and reserves the space
    (:func:`reserve`) before any slow step, and removes it on any failure. ``size`` > 0
    extends it sparsely at once (tests that build half-made files).
    """
    path = segment_path(name)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
    except FileExistsError as exc:
        raise SegmentExists(path, "already exists") from exc
    except PermissionError as exc:
        raise SegmentPermission(path, f"cannot create: {exc.strerror}") from exc
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.ENOMEM, errno.EMFILE, errno.ENFILE):
            raise SegmentNoResources(path, f"cannot create: {exc.strerror}") from exc
        raise SegmentPermission(path, f"cannot create: {exc.strerror}") from exc
    if size:
        try:
            os.ftruncate(fd, size)
        except OSError as exc:
            os.close(fd)
            raise _resource_error(path, exc, size) from exc
    return fd


def write_claim(fd: int, header: bytes, path: str) -> None:
    """Write the first header bytes (state initialising, our PID) with one ``pwrite``.

    Done before the slow steps (reserving, mapping, pre-faulting), so a producer killed
    while creating leaves a file that names its dead creator and is reclaimed at once.
    """
    try:
        os.pwrite(fd, header, 0)
    except OSError as exc:
        raise _resource_error(path, exc, len(header)) from exc


def reserve(fd: int, size: int, path: str) -> None:
    """Allocate ``size`` bytes for the segment now (``posix_fallocate``), not on first touch.

    A tmpfs file that is only ftruncated is sparse: when /dev/shm is full, the first store to
    a missing page kills the writer with SIGBUS. Reserved, a full /dev/shm is an ENOSPC
    here, with a message naming the size (facts.md).
    """
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            os.ftruncate(fd, size)  # a filesystem without fallocate: sparse, as before
            return
        raise _resource_error(path, exc, size) from exc


def _resource_error(path: str, exc: OSError, size: int) -> SegmentError:
    need = f"{size} bytes ({size / 2**20:.1f} MiB)"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return SegmentNoResources(path, f"{SHM_DIR} has no room for the {need} this segment "
                                        f"needs ({exc.strerror}): see `df {SHM_DIR}`, free "
                                        f"space or lower segment.ring_capacity")
    if exc.errno == errno.EFBIG:
        return SegmentNoResources(path, f"the file size limit (RLIMIT_FSIZE, `ulimit -f`, "
                                        f"LimitFSIZE=) forbids the {need} this segment needs "
                                        f"({exc.strerror})")
    if exc.errno == errno.ENOMEM:
        return SegmentNoResources(path, f"out of memory reserving {need} ({exc.strerror})")
    if exc.errno in (errno.EPERM, errno.EACCES):
        return SegmentPermission(path, f"cannot write: {exc.strerror}")
    return SegmentNoResources(path, f"cannot reserve {need}: {exc.strerror}")


#: What ``stat`` calls the file types a segment name must not hold.
_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISDIR, "a directory"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISLNK, "a symbolic link"))
#: ``owner`` value meaning "the effective uid of this process".
OWNER_SELF = -1


def file_kind(mode: int) -> str:
    """``a FIFO (named pipe)``, ``a directory``, ... (``a regular file`` for S_ISREG)."""
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return "no such user"


def resolve_owner(owner: str | int | None) -> int:
    """``segment.owner`` (user name, uid, or None: this process's euid) -> uid."""
    if owner is None or owner == OWNER_SELF:
        return os.geteuid()
    if isinstance(owner, int):
        return owner
    if owner.isdigit():
        return int(owner)
    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError as exc:
        raise TradingdError(f"segment owner {owner!r} is not a user on this machine") from exc


def check_owner(where: str, st: os.stat_result, owner: int | None, *, what: str = "",
                claim: str = "") -> None:
    """Refuse a file not owned by ``owner`` (or root): someone else created it.

    ``owner`` None skips the check; :data:`OWNER_SELF` means this process's euid.
    ``claim`` is what its header says about itself (``its header names producer PID 42``).
    """
    if owner is None:
        return
    expected = os.geteuid() if owner == OWNER_SELF else owner
    if st.st_uid in (expected, 0):
        return
    what = what or file_kind(st.st_mode)
    extra = f"; {claim}" if claim else ""
    if st.st_uid == _overflow_uid():
        extra += (f" (uid {st.st_uid} is how a user namespace shows unmapped users: a reader "
                  f"under systemd's PrivateUsers=yes cannot see the producer's uid; run it "
                  f"without PrivateUsers=)")
    raise SegmentUntrusted(
        where, f"{what} owned by uid {st.st_uid} ({user_name(st.st_uid)}), not by the "
               f"producer account uid {expected} ({user_name(expected)}, segment.owner){extra}:"
               f" another user created it (squatting or spoofing the name); not using it. "
               f"Check with `ls -ln {where}`, remove it as root, restart the producer")


def _overflow_uid() -> int:
    """The uid unmapped users appear as in a user namespace (65534 unless configured)."""
    try:
        with open("/proc/sys/kernel/overflowuid") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 65534


def open_segment(path: str, *, owner: int | None = None, hint: str = "",
                 owner_of_regular: bool = True) -> tuple[int, os.stat_result]:
    """Open whatever sits at ``path`` safely; return ``(fd, fstat)`` of a regular file.

    ``O_NOFOLLOW`` (a symlink is refused, not followed), ``O_NONBLOCK`` (a FIFO does not
    hang the open), then ``fstat`` + ``S_ISREG`` before anything else, and the owner check.
    Every refusal is a typed error and closes the fd. ``owner_of_regular=False`` leaves
    the owner check of a regular file to the caller (the reader, which names what the
    file's header claims in its message).
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as exc:
        raise SegmentNotFound(path, f"does not exist{hint}") from exc
    except PermissionError as exc:
        raise SegmentPermission(path, f"cannot open for reading: permission denied "
                                      f"({_mode_text(path)})") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            _refuse_kind(path, _lstat(path), owner, "is a symbolic link: refusing to follow it")
        if exc.errno in (errno.ENXIO, errno.ENODEV, errno.EOPNOTSUPP, errno.ENOTDIR):
            raise SegmentForeign(path, f"cannot be opened as a segment: {exc.strerror}") from exc
        if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOMEM):
            raise SegmentNoResources(path, f"cannot open: {exc.strerror}") from exc
        raise SegmentNotFound(path, f"cannot open: {exc.strerror}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            _refuse_kind(path, st, owner, "not a regular file, so not a segment (not read)")
        if owner_of_regular:
            check_owner(path, st, owner)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path, follow_symlinks=False)
    except OSError:
        return None


def _refuse_kind(path: str, st: os.stat_result | None, owner: int | None, why: str) -> None:
    """Raise for a name holding no regular file: Untrusted if another user's, else Foreign."""
    kind = file_kind(st.st_mode) if st is not None else "a symbolic link"
    if st is not None:
        check_owner(path, st, owner, what=kind)
    raise SegmentForeign(path, why if why.startswith("is a") else f"is {kind}: {why}")


def read_header(fd: int, size: int) -> bytes:
    """Up to ``size`` bytes from offset 0 with ``pread`` (nothing mapped, no SIGBUS)."""
    out = b""
    while len(out) < size:
        chunk = os.pread(fd, size - len(out), len(out))
        if not chunk:
            break
        out += chunk
    return out


def open_readonly(name: str) -> int:
    """Open ``/dev/shm/NAME`` read-only (:func:`open_segment`, no owner check); return the fd."""
    return open_segment(segment_path(name), hint=" (is the producer running?)")[0]


def open_file_readonly(path: str) -> int:
    """Open a copied segment file (post-mortem) read-only, as safely as :func:`open_segment`."""
    return open_segment(path)[0]


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
    path = segment_path(name)
    try:
        os.unlink(path)  # what shm_unlink does
    except FileNotFoundError:
        pass
    except (PermissionError, IsADirectoryError) as exc:
        raise SegmentPermission(path, f"cannot remove: {exc.strerror} ({_mode_text(path)})"
                                ) from exc


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


def map_fd(fd: int, size: int, *, writable: bool, where: str = "") -> mmap.mmap:
    """Map ``size`` bytes of a segment fd shared (PROT_READ, or PROT_READ|PROT_WRITE).

    Only call this with a size validated against the header and the file (the header is
    read with ``pread`` first): a mapping longer than the file dies of SIGBUS when touched.
    Read-only mappings are populated at once (MAP_POPULATE, after that validation): a
    reader that first touches a ring page mid-stream takes a page fault (~1-2 us) on its
    latency path otherwise. The writer pre-touches its pages itself (:func:`prefault`):
    populating a shared writable mapping maps the pages read-only, and the first store
    would fault anyway. ENOMEM (address space or memory) is :class:`SegmentNoResources`.
    """
    prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
    flags = mmap.MAP_SHARED | (0 if writable else getattr(mmap, "MAP_POPULATE", 0))
    try:
        return mmap.mmap(fd, size, flags, prot)
    except OSError as exc:
        if exc.errno == errno.ENOMEM:
            raise SegmentNoResources(where, f"cannot map {size} bytes ({size / 2**20:.1f} MiB):"
                                            f" out of memory or address space (ENOMEM; "
                                            f"RLIMIT_AS / LimitAS=?)") from exc
        raise SegmentError(where, f"cannot map {size} bytes: {exc.strerror}") from exc


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
