"""Channels: the per-client order and report rings (``<segment>.orders.<client>``, ``.reports.``).

A channel is a segment of the second kind declared in :mod:`tradingd.segment.layout`
(``CHANNEL_HEADER`` + a ring of ``ORDER`` or ``REPORT`` records). It is created and owned
like the data segment: ``O_CREAT|O_EXCL`` at mode 0600, every header field written, magic
after them, then opened up to its mode and group, and the ready word (``state = live``)
stored last; a random generation per creation; the owner's PID, start ticks and heartbeat
in the header (:mod:`tradingd.segment.liveness` judges them); a leftover whose owner is
dead is reclaimed (:func:`create_channel`), a live one refused.

The ring protocol is the data ring's, per record: the writer stores the stamp's complement
``~seq_lo``, the body, the stamp ``seq_lo``, then the cursor. What differs is flow control:
each direction has exactly one reader, so the reader publishes how many records it has
taken (``peer_consumed``) in the header of the channel it writes itself, and the writer
never publishes more than ``capacity`` records beyond that. Records are therefore never
overwritten unread and the reader needs no cursor read at all: record ``p`` is there when
the stamp of slot ``p & mask`` equals ``p``'s low 32 bits, and it is whole if the stamp
still does after the copy.

Why per client, and not one ring that every client writes (many-to-one): several writers
on one ring need an atomic claim of the next slot (a compare-and-swap or fetch-and-add on
a shared cursor) across processes, and a writer that claims a slot and then dies (kill -9,
a segfault in a strategy) leaves a hole every reader stalls on, forever, for every client.
With one ring per client the claim is a plain store by the only writer, a crashed client
stalls nobody but itself, permissions are per file (a client can write only its own order
ring, read only its own reports: the OS enforces it, not a protocol), fairness is the
reader's choice (a budget per ring per round) instead of whoever wins the CAS, and the
exec's cost of polling N rings is N stamp reads, a few nanoseconds each.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import secrets
import struct
from dataclasses import dataclass

import numpy as np

from tradingd.clock import SYSTEM_CLOCK, Clock
from tradingd.constants import SHM_DIR
from tradingd.errors import (
    SegmentCorrupt,
    SegmentError,
    SegmentExists,
    SegmentForeign,
    SegmentNotReady,
    SegmentOwned,
    SegmentVersionMismatch,
)
from tradingd.segment import layout as L
from tradingd.segment import liveness, shm

H = L.CHANNEL_HEADER
_W_MAGIC = H.word("magic")
_W_STATE = H.word("state")
_W_HB = H.word("heartbeat_ns")
_W_HB_COUNT = H.word("heartbeat_count")
_W_CURSOR = H.word("ring_cursor")
_W_CONSUMED = H.word("peer_consumed")
_W_LAST_REPORT = H.word("last_report_seq")
_W_LAST_CLIENT_SEQ = H.word("last_client_seq")
_W_LAST_CLIENT_OID = H.word("last_client_order_id")
_W_DETAIL = H.word("detail")
_W_PEER_GEN = H.word("peer_generation")
_W_WAKE = H.word("wake_seq")
_MASK32 = 0xFFFFFFFF
_WORDS = {p.name: p.offset // 8 for p in H.placed if p.size == 8 and p.offset % 8 == 0}
KIND_ORDERS = "orders"
KIND_REPORTS = "reports"
_MAGIC_OF = {KIND_ORDERS: L.ORDERS_MAGIC, KIND_REPORTS: L.REPORTS_MAGIC}
_STRUCT_OF = {KIND_ORDERS: L.ORDER, KIND_REPORTS: L.REPORT}
#: a client name: the last part of the channel's segment name (fits ``client`` char[32])
CLIENT_NAME_CHARS = "A-Za-z0-9_-"


def body_format(kind: str) -> struct.Struct:
    """The ``struct`` packing every field of a record of ``kind`` after the stamp."""
    s = _STRUCT_OF[kind]
    fmt, pos = "<", s.placed[1].offset
    for p in s.placed[1:]:
        fmt += "x" * (p.offset - pos) + p.field.ctype.struct_code  # padding as pad bytes
        pos = p.end
    return struct.Struct(fmt)


def orders_name(segment: str, client: str) -> str:
    """``<segment>.orders.<client>``: the order ring a client creates to register."""
    return f"{segment}.orders.{client}"


def reports_name(segment: str, client: str) -> str:
    """``<segment>.reports.<client>``: the report ring exec creates for that client."""
    return f"{segment}.reports.{client}"


def discover_clients(segment: str) -> list[str]:
    """Clients that registered with ``segment``'s exec: names of ``<segment>.orders.*``."""
    prefix = f"{segment}.orders."
    try:
        entries = os.listdir(SHM_DIR)
    except OSError:
        return []
    return sorted(e[len(prefix):] for e in entries if e.startswith(prefix) and len(e) > len(prefix))


@dataclass(frozen=True)
class ChannelInfo:
    """What a validated channel header says."""

    kind: str
    header: dict[str, int]
    capacity: int
    client: str


def _header_dict(raw: bytes | memoryview) -> dict[str, int]:
    """The header's numeric fields (the client name: :func:`_client_name`)."""
    row = np.frombuffer(raw, H.dtype, count=1)[0]
    return {name: int(row[name]) for name in H.dtype.names or () if name != "client"}


def _client_name(raw: bytes | memoryview) -> str:
    off = H.offset("client")
    return bytes(raw[off:off + 32]).split(b"\0", 1)[0].decode("ascii", "replace")


def validate_channel(where: str, raw: bytes | memoryview, file_size: int, *,
                     kind: str | None = None, require_live: bool = True) -> ChannelInfo:
    """Check a channel header (identity, version, sizes) against the file; typed errors."""
    if file_size == 0:
        raise SegmentNotReady(where, "file is empty (its owner is creating it)")
    if file_size < H.size:
        raise SegmentCorrupt(where, f"truncated: {file_size} bytes, smaller than the "
                                    f"{H.size}-byte channel header")
    h = _header_dict(raw)
    magic, state = int(h["magic"]), int(h["state"])
    if magic not in L.CHANNEL_KINDS:
        if magic == 0 and state in (L.STATE_EMPTY, L.STATE_INITIALISING):
            raise SegmentNotReady(where, "still initialising (magic not written yet)")
        raise SegmentForeign(where, f"magic {magic.to_bytes(8, 'little')!r} at offset 0 is "
                                    f"not b'TDORDERS' or b'TDREPRTS': not a tradingd channel")
    got = L.CHANNEL_KINDS[magic]
    if kind is not None and got != kind:
        raise SegmentForeign(where, f"is a {got} ring, expected a {kind} ring")
    if h["layout_major"] != L.CHANNEL_MAJOR or h["layout_fingerprint"] != L.CHANNEL_FINGERPRINT:
        raise SegmentVersionMismatch(
            where, f"channel layout {h['layout_major']}.{h['layout_minor']} fingerprint "
                   f"{int(h['layout_fingerprint']):#018x} != {L.CHANNEL_MAJOR}.x "
                   f"{L.CHANNEL_FINGERPRINT:#018x} expected")
    if require_live and state in (L.STATE_EMPTY, L.STATE_INITIALISING):
        raise SegmentNotReady(where, "still initialising")
    cap = int(h["ring_capacity"])
    rec = _STRUCT_OF[got].size
    problems = []
    if h["header_size"] != H.size:
        problems.append(f"header_size (offset {H.offset('header_size')}) = {h['header_size']}"
                        f" != {H.size}")
    if h["record_size"] != rec:
        problems.append(f"record_size (offset {H.offset('record_size')}) = {h['record_size']}"
                        f" != {rec}")
    if cap < 2 or cap & (cap - 1) or cap > 2**24:
        problems.append(f"ring_capacity (offset {H.offset('ring_capacity')}) = {cap} is not "
                        f"a power of two in 2..2^24")
    elif h["ring_offset"] != H.size or h["total_size"] != H.size + cap * rec:
        problems.append(f"ring_offset/total_size = {h['ring_offset']}/{h['total_size']} != "
                        f"{H.size}/{H.size + cap * rec} implied by the capacity")
    elif int(h["total_size"]) > file_size:
        problems.append(f"truncated: total_size {h['total_size']} > file size {file_size}")
    if problems:
        raise SegmentCorrupt(where, "; ".join(problems))
    return ChannelInfo(got, h, cap, _client_name(raw))


class ChannelWriter:
    """The only writer of one channel (a client's order ring, or exec's report ring)."""

    name: str
    kind: str
    path: str
    capacity: int
    generation: int
    file_id: shm.FileId
    _fd: int
    _clock: Clock
    _closed: bool
    _mm: mmap.mmap
    _words: memoryview
    _stamps: memoryview
    _stride: int
    _rec: int
    _body: struct.Struct
    _mask: int
    _wake_addr: int

    def __init__(self) -> None:  # use create()
        raise TypeError("use ChannelWriter.create(...) or create_channel(...)")

    @classmethod
    def create(cls, name: str, kind: str, *, client: str, capacity: int = 4096,
               mode: int = 0o640, group: int = -1, heartbeat_interval_ns: int = 100_000_000,
               peer_generation: int = 0, initial: dict[str, int] | None = None,
               clock: Clock = SYSTEM_CLOCK) -> ChannelWriter:
        """Create channel ``name`` exclusively; it is live when this returns.

        ``initial`` sets header words before the ready word (exec's report ring: the
        credit ``peer_consumed`` and the resume points). Raises SegmentExists if taken.
        """
        shm.check_platform()
        shm.validate_name(name)
        size = L.channel_total_size(capacity)
        fd = shm.create_exclusive(name, size)
        self = object.__new__(cls)
        self.name = name
        self.kind = kind
        self.path = shm.segment_path(name)
        self.capacity = capacity
        self._fd = fd
        self.file_id = shm.FileId.of_fd(fd)
        self._clock = clock
        self._closed = False
        try:
            self._mm = shm.map_fd(fd, size, writable=True)
            u8 = np.frombuffer(self._mm, dtype=np.uint8)
            shm.prefault(u8)
            del u8
            self._words = memoryview(self._mm).cast("Q")
            self._stamps = memoryview(self._mm)[H.size:].cast("I")
            self._stride = _STRUCT_OF[kind].size // 4
            self._rec = _STRUCT_OF[kind].size
            self._body = body_format(kind)
            self._mask = capacity - 1
            self._wake_addr = (np.frombuffer(self._mm, np.uint8, H.size).ctypes.data
                               + H.offset("wake_seq"))
            # every slot starts marked (~i, i = the first record it will hold): an empty
            # slot never reads as record 0, 1, ... (a zero-filled stamp would read as 0)
            ring = np.frombuffer(self._mm, np.uint32, capacity * self._stride, H.size)
            ring[::self._stride] = ~np.arange(capacity, dtype=np.uint32)
            del ring
            self._init_header(kind, client, capacity, size, heartbeat_interval_ns,
                              peer_generation, initial or {})
            if group != -1:
                os.fchown(fd, -1, group)
            os.fchmod(fd, mode)
            self._words[_W_STATE] = L.STATE_LIVE  # the ready word, last
        except BaseException:
            self._closed = True
            if shm.FileId.of_path(self.path) == self.file_id:
                shm.unlink(name)
            with contextlib.suppress(Exception):
                self._release()
            raise
        return self

    def _init_header(self, kind: str, client: str, capacity: int, size: int, hb_ns: int,
                     peer_generation: int, initial: dict[str, int]) -> None:
        w = self._words
        w[_W_STATE] = L.STATE_INITIALISING
        gen = 0
        while gen == 0:
            gen = secrets.randbits(64)
        self.generation = gen
        pid = os.getpid()
        values = {"layout_major": L.CHANNEL_MAJOR, "layout_minor": L.CHANNEL_MINOR,
                  "layout_fingerprint": L.CHANNEL_FINGERPRINT, "header_size": H.size,
                  "total_size": size, "generation": gen, "owner_pid": pid,
                  "owner_start_ns": self._clock.wall_ns(), "heartbeat_interval_ns": hb_ns,
                  "owner_start_ticks": liveness.process_start_ticks(pid),
                  "ring_offset": H.size, "ring_capacity": capacity,
                  "record_size": _STRUCT_OF[kind].size, "peer_generation": peer_generation,
                  **initial}
        row = np.frombuffer(self._mm, H.dtype, count=1)
        for key, value in values.items():
            row[0][key] = value
        row[0]["client"] = client.encode("ascii")[:31]
        del row
        self.heartbeat()
        w[_W_MAGIC] = _MAGIC_OF[kind]  # after every other header field

    # ------------------------------------------------------------------ header words
    def heartbeat(self, now_ns: int | None = None) -> None:
        w = self._words
        w[_W_HB] = self._clock.monotonic_ns() if now_ns is None else now_ns
        w[_W_HB_COUNT] = w[_W_HB_COUNT] + 1

    def set_word(self, field: str, value: int) -> None:
        """Store one 8-byte header word (one aligned store)."""
        self._words[_WORDS[field]] = value

    def set_consumed(self, value: int) -> None:
        """Publish how many records of the PEER channel this side has taken (credit)."""
        self._words[_W_CONSUMED] = value

    def set_last_report_seq(self, value: int) -> None:
        self._words[_W_LAST_REPORT] = value

    def set_resume(self, last_client_seq: int, last_client_order_id: int) -> None:
        w = self._words
        w[_W_LAST_CLIENT_SEQ] = last_client_seq
        w[_W_LAST_CLIENT_OID] = last_client_order_id

    def wake(self) -> None:
        """Bump ``wake_seq`` and wake every process blocked on it (FUTEX_WAKE)."""
        w = self._words
        w[_W_WAKE] = (w[_W_WAKE] + 1) & 0xFFFFFFFFFFFFFFFF
        shm.futex_wake(self._wake_addr)

    def set_state(self, state: int, detail: int = 0) -> None:
        self._words[_W_DETAIL] = detail
        self._words[_W_STATE] = state

    @property
    def cursor(self) -> int:
        return int(self._words[_W_CURSOR])

    @property
    def mapping(self) -> mmap.mmap:
        """The writable mapping (header + ring), for a C batch publisher of records
        (tradingd.exec.execfast); it keeps to :meth:`publish`'s protocol."""
        return self._mm

    # ------------------------------------------------------------------ publishing
    def free(self, peer_consumed: int) -> int:
        """Records that may be published before overrunning a reader at ``peer_consumed``."""
        return self.capacity - (int(self._words[_W_CURSOR]) - peer_consumed)

    def publish(self, *body: object) -> int:
        """Publish one record (every field after the stamp, in layout order); return its seq.

        The caller checks :meth:`free` first: this never waits and never checks credit.
        """
        w = self._words
        s: int = w[_W_CURSOR]
        slot = s & self._mask
        i = slot * self._stride
        stamps = self._stamps
        stamps[i] = ~s & _MASK32  # mark: the slot reads as not-yet-written
        self._body.pack_into(self._mm, H.size + slot * self._rec + 4, *body)
        stamps[i] = s & _MASK32  # stamp after the body
        w[_W_CURSOR] = s + 1
        return s

    def write_raw(self, seq: int, data: bytes) -> None:
        """Store raw bytes as record ``seq`` and publish it (tests: garbage records)."""
        slot = seq & self._mask
        off = H.size + slot * self._rec
        self._stamps[slot * self._stride] = ~seq & _MASK32
        self._mm[off + 4:off + self._rec] = data[4:self._rec].ljust(self._rec - 4, b"\0")
        self._stamps[slot * self._stride] = seq & _MASK32
        self._words[_W_CURSOR] = seq + 1

    # ------------------------------------------------------------------ closing
    def _release(self) -> None:
        self._stamps.release()
        self._words.release()
        with contextlib.suppress(BufferError):
            self._mm.close()
        os.close(self._fd)

    def close(self, *, unlink: bool = True, state: int = L.STATE_STOPPED) -> None:
        """Mark it stopped (or ``state``), unlink it if the name is still ours, unmap."""
        if self._closed:
            return
        self._closed = True
        self._words[_W_STATE] = state
        if unlink and shm.FileId.of_path(self.path) == self.file_id:
            shm.unlink(self.name)
        self._release()

    def abandon(self) -> None:
        """Unmap without touching state or the name (a simulated crash, in tests)."""
        if not self._closed:
            self._closed = True
            self._release()


class ChannelReader:
    """The one reader of a channel: attach read-only, take records in order by their stamp."""

    def __init__(self, name: str, *, kind: str, require_live: bool = True,
                 path: str | None = None) -> None:
        self.name = name
        self.where = path or shm.segment_path(name)
        fd = (shm.open_file_readonly(path) if path is not None
              else shm.open_readonly(name))
        try:
            self.file_id = shm.FileId.of_fd(fd)
            size = os.fstat(fd).st_size
            if size == 0:
                raise SegmentNotReady(self.where, "file is empty (its owner is creating it)")
            if size < H.size:
                raise SegmentCorrupt(self.where, f"truncated: {size} bytes, smaller than the "
                                                 f"{H.size}-byte channel header")
            self._mm = shm.map_fd(fd, size, writable=False)
            try:
                info = validate_channel(self.where, self._mm[:H.size], size, kind=kind,
                                        require_live=require_live)
            except BaseException:
                self._mm.close()
                raise
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.kind = info.kind
        self.info = info
        self.client = info.client
        self.capacity = info.capacity
        self.generation = int(info.header["generation"])
        self.owner_pid = int(info.header["owner_pid"])
        self.owner_start_ticks = int(info.header["owner_start_ticks"])
        self._words = memoryview(self._mm).cast("Q")
        self._stamps = memoryview(self._mm)[H.size:].cast("I")
        s = _STRUCT_OF[info.kind]
        self._stride = s.size // 4
        self._rec = s.size
        self._body = body_format(info.kind)
        self._mask = self.capacity - 1
        self._wake_addr = (np.frombuffer(self._mm, np.uint8, H.size).ctypes.data
                           + H.offset("wake_seq"))
        self.position = 0
        self._closed = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stamps.release()
        self._words.release()
        with contextlib.suppress(BufferError):
            self._mm.close()
        os.close(self._fd)

    def __enter__(self) -> ChannelReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ header words
    def header(self) -> dict[str, int]:
        return _header_dict(self._mm[:H.size])

    def word(self, field: str) -> int:
        """One 8-byte header word (``peer_consumed``, ``last_report_seq``, ...)."""
        return self._words[_WORDS[field]]

    @property
    def state(self) -> int:
        return self._words[_W_STATE]

    @property
    def cursor(self) -> int:
        return self._words[_W_CURSOR]

    @property
    def peer_consumed(self) -> int:
        return self._words[_W_CONSUMED]

    @property
    def peer_generation(self) -> int:
        return self._words[_W_PEER_GEN]

    @property
    def mapping(self) -> mmap.mmap:
        """The read-only mapping (header + ring), for a C batch reader of records
        (tradingd.exec.execfast); it keeps to :meth:`poll_raw`'s protocol."""
        return self._mm

    @property
    def heartbeat_ns(self) -> int:
        return self._words[_W_HB]

    def wait_wake(self, expected: int, timeout_s: float) -> None:
        """Block until the writer bumps ``wake_seq`` from ``expected`` (or ``timeout_s``)."""
        shm.futex_wait(self._wake_addr, expected & _MASK32, timeout_s)

    def owner_alive(self) -> bool:
        """Is the process that created this channel still running (PID + start ticks)?"""
        return liveness.pid_alive(self.owner_pid, self.owner_start_ticks)

    def intact(self) -> bool:
        """Is the file still as large as when it was mapped? (One fstat.)

        A writer that shrinks its file under a reader makes the reader die of SIGBUS on the
        lost pages (facts.md): exec checks this every discovery round and lets such a ring go.
        """
        try:
            return os.fstat(self._fd).st_size >= self.info.header["total_size"]
        except OSError:
            return False

    def name_status(self) -> str:
        """``same``, ``gone`` (unlinked) or ``replaced`` (a new generation's file)."""
        now = shm.FileId.of_path(self.where)
        if now is None:
            return "gone"
        return "same" if now == self.file_id else "replaced"

    # ------------------------------------------------------------------ records
    def ready(self) -> bool:
        """Is the record at our position published (its stamp there)?"""
        p = self.position
        return self._stamps[(p & self._mask) * self._stride] == p & _MASK32

    def poll(self) -> tuple[object, ...] | None:
        """The next record's fields after the stamp (layout order), or None if not there yet.

        Stamp, copy, stamp again: the record is taken only if the stamp was there before
        and is still there after the copy.
        """
        p = self.position
        slot = p & self._mask
        i = slot * self._stride
        lo = p & _MASK32
        stamps = self._stamps
        if stamps[i] != lo:
            return None
        t = self._body.unpack_from(self._mm, H.size + slot * self._rec + 4)
        if stamps[i] != lo:
            return None
        self.position = p + 1
        return t

    def poll_raw(self) -> bytes | None:
        """The next record's bytes after the stamp, or None (as :meth:`poll`, unparsed)."""
        p = self.position
        slot = p & self._mask
        i = slot * self._stride
        lo = p & _MASK32
        stamps = self._stamps
        if stamps[i] != lo:
            return None
        off = H.size + slot * self._rec + 4
        data = self._mm[off:off + self._rec - 4]
        if stamps[i] != lo:
            return None
        self.position = p + 1
        return data

    def raw(self, seq: int) -> bytes:
        """The bytes of the slot that holds (or will hold) record ``seq`` (inspection)."""
        off = H.size + (seq & self._mask) * self._rec
        return bytes(self._mm[off:off + self._rec])


def channel_finding(name: str, kind: str) -> tuple[str, str, shm.FileId | None]:
    """Judge a channel name: ``absent``, ``live`` (owner running), ``stale`` or ``refused``."""
    path = shm.segment_path(name)
    try:
        r = ChannelReader(name, kind=kind, require_live=False)
    except SegmentError as exc:
        fid = shm.FileId.of_path(path)
        if fid is None:
            return "absent", "no such channel", None
        if isinstance(exc, SegmentNotReady | SegmentCorrupt):
            try:
                age = (SYSTEM_CLOCK.wall_ns() / 1e9) - os.stat(path).st_mtime
            except OSError:
                return "absent", "removed while being examined", None
            if age > 5.0:
                return "stale", f"left half-created ({exc.detail})", fid
            return "live", f"being created ({exc.detail})", fid
        return "refused", exc.detail, fid
    with r:
        if r.state in (L.STATE_STOPPED, L.STATE_DISCONNECTED):
            return "stale", f"its owner marked it {L.CHANNEL_STATE_NAMES[r.state]}", r.file_id
        if r.owner_alive():
            return "live", f"owner PID {r.owner_pid} is running", r.file_id
        return "stale", f"owner PID {r.owner_pid} is not running", r.file_id


def create_channel(name: str, kind: str, **kwargs: object) -> ChannelWriter:
    """Create channel ``name``, reclaiming a leftover whose owner is dead.

    Raises SegmentOwned (exit 73) if a live process owns it, SegmentForeign/Corrupt/
    VersionMismatch (exit 76) for a file that must not be removed automatically.
    """
    for _ in range(20):
        try:
            return ChannelWriter.create(name, kind, **kwargs)  # type: ignore[arg-type]
        except SegmentExists:
            pass
        verdict, reason, fid = channel_finding(name, kind)
        path = shm.segment_path(name)
        if verdict == "live":
            raise SegmentOwned(path, f"{reason}: another process owns this channel")
        if verdict == "refused":
            raise SegmentForeign(path, f"{reason}. Not removing it: remove it by hand "
                                       f"(rm {path}) if nothing uses it")
        if verdict == "stale" and fid is not None and shm.FileId.of_path(path) == fid:
            shm.unlink(name)
    raise SegmentOwned(shm.segment_path(name), "could not create it: the name keeps being "
                                               "taken by another process")


__all__ = ["CLIENT_NAME_CHARS", "KIND_ORDERS", "KIND_REPORTS", "ChannelInfo",
           "ChannelReader", "ChannelWriter", "body_format", "channel_finding",
           "create_channel", "discover_clients", "orders_name", "reports_name",
           "validate_channel"]
