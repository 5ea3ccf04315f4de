"""SegmentReader: attach read-only, validate, and read snapshots and ring records.

Attaching opens the segment ``O_RDONLY|O_NOFOLLOW|O_NONBLOCK`` (never resizing it, never
blocking on a FIFO), checks with ``fstat`` that it is a regular file owned by the expected
account, reads the header with ``pread`` and validates magic, version, fingerprint, limits
and every size and offset against the file's real size BEFORE anything is mapped; then
maps exactly ``total_size`` bytes ``PROT_READ`` and checks the header again through the
mapping. A header that promises more bytes than the file has would make a later read die
of SIGBUS; a sparse multi-GiB file would cost its size in RAM if it were populated.

Reading follows the protocol in :mod:`tradingd.segment.layout`: latest slots through their
seqlocks, the ring by copying records below the cursor and re-reading the cursor to drop
any the writer may have been overwriting meanwhile (counted as lost, never returned).
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tradingd.errors import (
    SegmentCorrupt,
    SegmentForeign,
    SegmentNotReady,
    SegmentStopped,
    SegmentStuck,
    SegmentVersionMismatch,
)
from tradingd.segment import layout as L
from tradingd.segment import shm, waiters
from tradingd.segment.fastpath import FAST
from tradingd.segment.liveness import process_start_ticks
from tradingd.segment.model import LatestValue, Record, SymbolInfo

if TYPE_CHECKING:
    from tradingd.segment import _fastpath

_W_STATE = L.HEADER.word("state")
_W_HB = L.HEADER.word("heartbeat_ns")
_W_CURSOR = L.HEADER.word("ring_cursor")
_W_WAKE = L.HEADER.word("wake_seq")
_RECORD_UNPACK = L.RECORD.struct_format(L.RECORD.names).unpack_from
_LATEST_UNPACK = L.LATEST.struct_format(
    ("price", "volume", "event_ns", "publish_ns", "valid")).unpack_from
_MASK32 = 0xFFFFFFFF
_FENCE = threading.Lock()  # see SegmentReader.sleep_until_data
_new_record = tuple.__new__  # a Record without NamedTuple.__new__'s argument parsing
#: A seqlock held odd this long means the writer died mid-update (it may also just be
#: descheduled for a few ms on a busy machine: readers yield the CPU while they wait).
_SEQLOCK_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Validated:
    """What attach-time validation established about a segment."""

    header: dict[str, int]
    geometry: L.Geometry
    symbol_count: int


def validate_header(where: str, raw: bytes | memoryview, file_size: int, *,
                    require_live: bool = True) -> Validated:
    """Check a header against the layout and the file size; raise a typed error if wrong.

    Order matters: identity (magic, version, fingerprint) before sizes, sizes before
    anything that would touch memory past the header.
    """
    if file_size == 0:
        raise SegmentNotReady(where, "file is empty (the producer is creating it)")
    if file_size < L.HEADER.size:
        raise SegmentCorrupt(where, f"truncated: the file is {file_size} bytes, smaller than "
                                    f"the {L.HEADER.size}-byte header")
    h = _header_dict(raw)
    state = h["state"]
    if h["magic"] != L.MAGIC:
        if h["magic"] == 0 and state in (L.STATE_EMPTY, L.STATE_INITIALISING):
            raise SegmentNotReady(where, "still initialising (magic not written yet)")
        magic = h["magic"].to_bytes(8, "little")
        raise SegmentForeign(where, f"magic {magic!r} at offset 0 is not b'TRADINGD': not a "
                                    f"tradingd segment")
    if h["layout_major"] != L.LAYOUT_MAJOR:
        raise SegmentVersionMismatch(
            where, f"layout version {h['layout_major']}.{h['layout_minor']} (offset "
                   f"{L.HEADER.offset('layout_major')}) != {L.LAYOUT_MAJOR}.x expected: written "
                   f"by another major version of tradingd")
    if h["layout_fingerprint"] != L.LAYOUT_FINGERPRINT:
        raise SegmentVersionMismatch(
            where, f"layout fingerprint {h['layout_fingerprint']:#018x} != "
                   f"{L.LAYOUT_FINGERPRINT:#018x} expected: built for another version of "
                   f"tradingd")
    _expect(where, h, "producer_pid", h["producer_pid"] <= L.MAX_PRODUCER_PID,
            f"> {L.MAX_PRODUCER_PID}: no kernel hands out such a PID")
    if require_live and state in (L.STATE_EMPTY, L.STATE_INITIALISING):
        raise SegmentNotReady(where, "still initialising (state is "
                                     f"{L.STATE_NAMES[state]})")
    _expect(where, h, "header_size", h["header_size"] == L.HEADER.size, f"!= {L.HEADER.size}")
    for name, struct_ in (("symtab_entry_size", L.SYMBOL), ("latest_slot_size", L.LATEST),
                          ("ring_record_size", L.RECORD)):
        _expect(where, h, name, h[name] == struct_.size, f"!= {struct_.size}")
    try:
        geo = L.Geometry(h["symtab_capacity"], h["ring_capacity"], h["ring_window"])
    except ValueError as exc:
        raise SegmentCorrupt(where, f"bad region table: {exc}") from exc
    for name in ("symtab_offset", "latest_offset", "ring_offset", "total_size"):
        _expect(where, h, name, h[name] == getattr(geo, name),
                f"!= {getattr(geo, name)} implied by the capacities")
    if h["total_size"] > file_size:
        raise SegmentCorrupt(where, f"truncated: header total_size (offset "
                                    f"{L.HEADER.offset('total_size')}) is {h['total_size']} "
                                    f"bytes but the file has only {file_size}")
    if h["total_size"] < file_size:
        raise SegmentCorrupt(where, f"the file has {file_size} bytes, more than the header's "
                                    f"total_size (offset {L.HEADER.offset('total_size')}) "
                                    f"{h['total_size']}: not written by a tradingd producer")
    _expect(where, h, "symbol_count", h["symbol_count"] <= h["symtab_capacity"],
            f"> symtab_capacity {h['symtab_capacity']}")
    _expect(where, h, "ring_cursor", h["ring_cursor"] <= L.MAX_RING_CURSOR,
            f"> {L.MAX_RING_CURSOR} (2^62): no writer gets that far")
    if require_live and state == L.STATE_STOPPED:
        raise SegmentStopped(where, "the producer has stopped (state stopped)")
    if state not in L.STATE_NAMES:
        raise SegmentCorrupt(where, f"state (offset {L.HEADER.offset('state')}) = {state} "
                                    f"is not a known state")
    return Validated(h, geo, h["symbol_count"])


def _expect(where: str, h: dict[str, int], name: str, ok: bool, why: str) -> None:
    if not ok:
        raise SegmentCorrupt(where, f"header field {name} (offset {L.HEADER.offset(name)}) = "
                                    f"{h[name]} {why}")


def _claim(raw: bytes) -> str:
    """What a (possibly untrusted) header says about its producer, for messages."""
    if len(raw) < L.HEADER.size:
        return ""
    h = _header_dict(raw)
    if h["magic"] != L.MAGIC:
        return "it has no tradingd header"
    state = L.STATE_NAMES.get(h["state"], str(h["state"]))
    return f"its header names producer PID {h['producer_pid']} (state {state})"


#: The header's integer fields (the text fields of v1.3, ``upstream_segment`` and
#: ``upstream_host``, are read with :meth:`SegmentReader.header_text`).
HEADER_INT_FIELDS = tuple(n for n in L.HEADER.names if L.HEADER_DTYPE[n].kind in "iu")


def _header_dict(raw: bytes | memoryview) -> dict[str, int]:
    row = np.frombuffer(raw, L.HEADER_DTYPE, count=1)[0]
    return {name: int(row[name]) for name in HEADER_INT_FIELDS}


class SegmentReader:
    """A read-only view of one segment. Use :meth:`attach` (by name) or :meth:`open_file`.

    ``require_live=False`` (the inspector) accepts a stopped or initialising segment as
    long as its structure is sound.
    """

    def __init__(self, where: str, fd: int, *, name: str | None, require_live: bool,
                 owner: int | None = None) -> None:
        self.where = where
        self.name = name
        self._fd = fd
        try:
            st = os.fstat(fd)
            self.file_id = shm.FileId(st.st_dev, st.st_ino)
            self.owner_uid = st.st_uid
            v = self._validate_before_mapping(fd, st, owner, require_live)
            size = v.geometry.total_size
            self._mm = shm.map_fd(fd, size, writable=False, where=where)
            try:
                again = validate_header(where, self._mm[:L.HEADER.size], os.fstat(fd).st_size,
                                        require_live=require_live)
                if (again.geometry != v.geometry
                        or again.header["generation"] != v.header["generation"]):
                    raise SegmentNotReady(where, "changed while being attached (a producer "
                                                 "is recreating it)")
                v = again
            except BaseException:
                self._mm.close()
                raise
        except BaseException:
            os.close(fd)
            raise
        self.file_size = size
        self.geometry = v.geometry
        self.generation = v.header["generation"]
        self.producer_pid = v.header["producer_pid"]
        geo = v.geometry
        self._u8 = np.frombuffer(self._mm, dtype=np.uint8)
        self._words = memoryview(self._mm).cast("Q")  # total_size: a multiple of 64
        self._mask = geo.ring_capacity - 1
        self._ring_u8 = self._u8[geo.ring_offset:geo.ring_offset + geo.ring_capacity * 64]
        self._ring_u8 = self._ring_u8.reshape(geo.ring_capacity, L.RECORD.size)
        self._latest_word0 = geo.latest_offset // 8
        self._wake_addr = self._u8.ctypes.data + _W_WAKE * 8
        # the minor version says what the writer's ring stamps promise (stamp-first reads)
        self._fast: _fastpath.Segment | None = (
            FAST.Segment(self._mm, False, layout_minor=v.header["layout_minor"], where=where)
            if FAST is not None else None)
        if self._fast is not None:  # the C snapshot bound over the Python one: a call less
            self.latest_tuple = self._fast.latest  # type: ignore[method-assign]
        self._companion: waiters.Companion | None = None
        self._companion_tried = False
        self._gated_cursors: list[_fastpath.Cursor] = []  # detached from the gate at close
        self._sleep_mode: str | None = None  # blocking waits: see _sleep_setup
        self._closed = False

    def _validate_before_mapping(self, fd: int, st: os.stat_result, owner: int | None,
                                 require_live: bool) -> Validated:
        """Regular file, owner, then the header read with ``pread`` and validated.

        Nothing is mapped until the header's sizes agree with each other and with the
        file: a FIFO, a sparse multi-GiB file or a file of an odd size is refused here.
        """
        where = self.where
        if not stat.S_ISREG(st.st_mode):
            raise SegmentForeign(where, f"is {shm.file_kind(st.st_mode)}, not a regular "
                                        f"file: not a segment")
        raw = shm.read_header(fd, L.HEADER.size)
        shm.check_owner(where, st, owner, claim=_claim(raw))
        if st.st_size == 0 or not raw:
            raise SegmentNotReady(where, "file is empty (the producer is creating it)")
        return validate_header(where, raw + bytes(L.HEADER.size - len(raw)), st.st_size,
                               require_live=require_live)

    @classmethod
    def attach(cls, name: str, *, require_live: bool = True,
               owner: int | None = shm.OWNER_SELF) -> SegmentReader:
        """Attach to ``/dev/shm/NAME`` read-only; raises a :class:`SegmentError` subclass.

        ``owner``: the uid the file must belong to (root is always accepted), by default
        this process's own (:data:`shm.OWNER_SELF`); None skips the check. A file of
        another owner is :class:`SegmentUntrusted` (someone else created the name).
        """
        shm.check_platform()
        shm.validate_name(name)
        path = shm.segment_path(name)
        fd, _ = shm.open_segment(path, owner=owner, hint=" (is the producer running?)",
                                 owner_of_regular=False)  # checked, with its claim, below
        return cls(path, fd, name=name, require_live=require_live, owner=owner)

    @classmethod
    def open_file(cls, path: str, *, require_live: bool = False) -> SegmentReader:
        """Open a segment file by path (a copy kept for a post-mortem, or /dev/shm/NAME)."""
        fd = shm.open_file_readonly(path)
        return cls(path, fd, name=None, require_live=require_live)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._fast is not None:
            self._fast.release()
            self._fast = None
        self._release_cursors()
        if self._companion is not None:
            self._companion.close()
            self._companion = None
        self._u8 = self._ring_u8 = None  # type: ignore[assignment]
        self._words.release()
        with contextlib.suppress(BufferError):  # a caller still holds a numpy view of the mapping
            self._mm.close()
        os.close(self._fd)

    def __enter__(self) -> SegmentReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ header
    def header(self) -> dict[str, int]:
        """A copy of every header field (values may change between fields: informative)."""
        return _header_dict(self._mm[:L.HEADER.size])

    def header_text(self, name: str) -> str:
        """A NUL-padded ASCII header field (``upstream_segment``, ``upstream_host``)."""
        row = np.frombuffer(self._mm, L.HEADER_DTYPE, count=1)[0]
        return bytes(row[name]).rstrip(b"\0").decode("ascii", "replace")

    @property
    def state(self) -> int:
        return self._words[_W_STATE]

    @property
    def heartbeat_ns(self) -> int:
        return self._words[_W_HB]

    @property
    def cursor(self) -> int:
        """Records published so far (the ring cursor)."""
        return self._words[_W_CURSOR]

    def symbols(self) -> list[SymbolInfo]:
        """The symbol table entries in use."""
        geo = self.geometry
        count = min(self._words[L.HEADER.word("symbol_count")], geo.symtab_capacity)
        tab = np.frombuffer(self._mm, L.SYMBOL_DTYPE, count, geo.symtab_offset)
        return [
            SymbolInfo(
                name=e["name"].decode("ascii", "replace"),
                asset_class=SymbolInfo.asset_class_name(int(e["asset_class"])),
                currency=e["currency"].decode("ascii", "replace"),
                price_decimals=int(e["price_decimals"]),
                bar_interval_ns=int(e["bar_interval_ns"]),
                record_count=int(e["record_count"]),
            )
            for e in tab
        ]

    def name_status(self) -> str:
        """``"same"``, ``"gone"`` (unlinked) or ``"replaced"`` (a new producer's file).

        The mapping stays valid after unlink; a restarted producer creates a new file under
        the same name, with a new generation. One ``stat`` call: call it periodically, not
        on every poll.
        """
        if self.name is None:
            return "same"
        now = shm.FileId.of_path(self.where)
        if now is None:
            return "gone"
        return "same" if now == self.file_id else "replaced"

    # ------------------------------------------------------------------ latest slots
    def latest(self, symbol_id: int) -> LatestValue | None:
        """A consistent snapshot of one symbol's latest slot, or None if never written."""
        t = self.latest_tuple(symbol_id)
        return None if t is None else LatestValue._make(t)

    def latest_tuple(self, symbol_id: int) -> tuple[int, float, float, int, int, int] | None:
        """:meth:`latest` as a plain tuple (the fast path; C when built).

        ``(seq, price, volume, event_ns, publish_ns, valid)``.
        """
        return self.latest_within(symbol_id, _SEQLOCK_TIMEOUT_S)

    def latest_within(self, symbol_id: int, timeout_s: float
                      ) -> tuple[int, float, float, int, int, int] | None:
        """:meth:`latest_tuple`, giving up after ``timeout_s`` (>= 0); C when built.

        For callers with an overall time budget (the inspector reading thousands of slots
        of a frozen producer): a lock that stays odd raises :class:`SegmentStuck` once the
        budget is spent; ``timeout_s=0`` makes one short attempt (100 reads of the lock).
        """
        if self._fast is not None:
            got: tuple[int, float, float, int, int, int] | None = self._fast.latest(
                symbol_id, timeout_s)  # the same protocol in C
            return got
        if not 0 <= symbol_id < self.geometry.symtab_capacity:
            raise IndexError(f"symbol id {symbol_id} outside the symbol table")
        words, mm = self._words, self._mm
        w = self._latest_word0 + symbol_id * 8
        deadline = 0.0
        while True:
            for _ in range(100):
                a = words[w]
                if a == 0:
                    return None
                if a & 1:
                    continue
                t = _LATEST_UNPACK(mm, w * 8 + 8)
                if words[w] == a:
                    return ((a - 2) >> 1, *t)
            now = time.monotonic()  # contended: yield to the writer, within a time budget
            if not deadline:
                deadline = now + timeout_s
            if now >= deadline:
                raise SegmentStuck(self.where, f"latest slot {symbol_id} (offset {w * 8}) not "
                                               f"stable for {timeout_s:g} s: the writer died "
                                               f"mid-update?")
            time.sleep(0)

    def latest_all(self) -> list[LatestValue | None]:
        """Snapshots of every symbol's slot (each consistent on its own)."""
        count = min(self._words[L.HEADER.word("symbol_count")], self.geometry.symtab_capacity)
        return [self.latest(i) for i in range(count)]

    # ------------------------------------------------------------------ ring
    def subscribe(self, start: str = "oldest") -> RingSubscription:
        """A reading position: the ``"oldest"`` intact record, or ``"latest"`` (new ones only)."""
        return RingSubscription(self, start)

    def wait(self, expected_wake: int, timeout_s: float) -> None:
        """Block until the producer bumps ``wake_seq`` from ``expected_wake`` (or timeout)."""
        if self._fast is not None:
            self._fast.futex_wait(expected_wake & _MASK32, timeout_s)
            return
        shm.futex_wait(self._wake_addr, expected_wake & _MASK32, timeout_s)

    @property
    def wake_seq(self) -> int:
        return self._words[_W_WAKE]

    def _sleep_setup(self) -> str:
        """How blocking waits sleep (decided at the first one, opened lazily).

        ``"flag"``: the producer's sleepers companion is ours to set (waiters.py), the
        writer wakes only readers that announce their sleep. ``"always"``: there is no
        companion, the writer wakes after every publish (pure-Python or older writer).
        ``"slices"``: there is one but we cannot write it: sleep in short slices.
        """
        if self._sleep_mode is None:
            comp = self._open_companion()
            if comp is not None:
                if self._fast is not None:
                    self._fast.attach_sleepers(comp.mm, waiters.SLEEPERS_OFFSET)
                self._sleep_mode = "flag"
            elif self.name is not None and waiters.exists(self.name):
                self._sleep_mode = "slices"
            else:
                self._sleep_mode = "always"
        return self._sleep_mode

    def _release_cursors(self) -> None:
        for cursor in self._gated_cursors:  # they hold the companion's buffer
            cursor.attach_gate(None, 0, 0)
        self._gated_cursors.clear()

    def _open_companion(self) -> waiters.Companion | None:
        """The producer's companion, opened read-write once (None: there is none usable)."""
        if self._companion is None and self.name is not None and not self._companion_tried:
            self._companion_tried = True
            self._companion = waiters.Companion.open(self.name, self.generation,
                                                     os.fstat(self._fd).st_uid)
        return self._companion

    @property
    def gate_on(self) -> bool:
        """True when the producer runs the flow-control gate (``replay.flow_control``)."""
        comp = self._open_companion()
        return comp is not None and comp.gate_mode == 1

    def join_gate(self, sub: RingSubscription) -> int | None:
        """Join the producer's flow-control gate with ``sub``: its slot index, or None.

        None when the producer runs no gate, all slots are taken, or this is the
        pure-Python reader (the gate's position stores and wake-ups are C). The position
        moves past the records a chunk in flight as we joined may overwrite (at most two
        ring windows of the backlog): from here on, nothing ``sub`` has not read is lost.
        """
        comp = self._open_companion()
        st = sub._st
        if comp is None or comp.gate_mode != 1 or FAST is None or isinstance(st, _PyCursor):
            return None
        pid = os.getpid()
        slot = comp.join(sub.position, pid, process_start_ticks(pid), FAST.atomic_u64)
        if slot is None:
            return None
        geo = self.geometry
        safe = self.cursor + 2 * geo.ring_window - geo.ring_capacity
        if sub.position < safe:
            sub.position = safe
        st.attach_gate(comp.mm, comp.slot_offset(slot), waiters.GATE_CONTROL_OFFSET)
        self._gated_cursors.append(st)
        return slot

    def gate_slot_state(self, slot: int) -> int:
        """The state of gate slot ``slot`` (``waiters.GATE_DROPPED``: the producer dropped us)."""
        comp = self._companion
        return comp.slot(slot).state if comp is not None else waiters.GATE_FREE

    def leave_gate(self, sub: RingSubscription, slot: int) -> None:
        """Give up gate slot ``slot`` (detach, or stop: the producer no longer waits for us)."""
        if not isinstance(sub._st, _PyCursor):
            sub._st.attach_gate(None, 0, 0)
            if sub._st in self._gated_cursors:
                self._gated_cursors.remove(sub._st)
        comp = self._companion
        if comp is not None and FAST is not None:
            comp.leave(slot, FAST.atomic_u64)

    def sleep_until_data(self, position: int, expected_wake: int, timeout_s: float) -> bool:
        """One blocking sleep: True if records beyond ``position`` are there afterwards.

        With the sleepers flag, the flag is set and fenced before the cursor is checked
        (waiters.py): the writer then sees it, or we see its cursor.
        """
        mode = self._sleep_setup()
        if mode == "slices":
            timeout_s = min(timeout_s, waiters.FALLBACK_SLICE_S)
        if self._fast is not None:
            return bool(self._fast.wait_blocking(position, expected_wake & _MASK32, timeout_s))
        if mode == "flag" and self._companion is not None:
            self._companion.words[waiters.W_SLEEPERS] = 1
            _FENCE.acquire()  # a locked instruction: a full fence on x86-64 (store -> load)
            _FENCE.release()
        if self._words[_W_CURSOR] > position:
            return True
        shm.futex_wait(self._wake_addr, expected_wake & _MASK32, timeout_s)
        return self._words[_W_CURSOR] > position


class _PyCursor:
    """Pure-Python twin of ``tradingd.segment._fastpath.Cursor``: a position and two counters."""

    __slots__ = ("lost", "position", "rejected")

    def __init__(self, position: int) -> None:
        self.position = position
        self.lost = 0
        self.rejected = 0


class RingSubscription:
    """One reader's position in the ring, with its lost-record count.

    ``poll_batch`` is the fast path (numpy copies); ``poll_one`` returns one record as a
    tuple in :class:`tradingd.segment.model.Record` order. Neither ever returns a record that the
    writer may have been overwriting while it was copied; records the writer lapped are
    skipped and added to :attr:`lost`.
    """

    def __init__(self, reader: SegmentReader, start: str) -> None:
        geo = reader.geometry
        self._reader = reader
        self._words = reader._words
        self._mm = reader._mm
        self._ring_u8 = reader._ring_u8
        self._ring_offset = geo.ring_offset
        self._cap = geo.ring_capacity
        self._mask = geo.ring_capacity - 1
        # records with seq < cursor + _margin are possibly being overwritten
        self._margin = geo.ring_window - geo.ring_capacity
        cursor = self._words[_W_CURSOR]
        if start == "latest":
            position = cursor
        elif start == "oldest":
            position = max(0, cursor + self._margin)
        else:
            raise ValueError(f"start must be 'oldest' or 'latest', not {start!r}")
        # position, lost and rejected live in one place: the C cursor when the fast path is
        # built (its poll_one and spin update them), else a Python twin. The C methods are
        # bound over the Python ones (one call less per record); the C Record reads like
        # model.Record (same order, same names) but is its own type: hence the ignores.
        self._st: _fastpath.Cursor | _PyCursor
        self._read_into: Callable[[np.ndarray, int], int] | None
        if FAST is not None and reader._fast is not None:
            c_cursor: _fastpath.Cursor = FAST.Cursor(reader._fast, position)
            self._st = c_cursor
            self.poll_one = c_cursor.poll_one  # type: ignore[method-assign, assignment]
            self.spin = c_cursor.spin  # type: ignore[method-assign]
            self.next = c_cursor.next  # type: ignore[method-assign, assignment]
            self._read_into = c_cursor.read_into
            #: the consumer's whole batch path in C (read, analytics, latency): None
            #: without the fast path (see _fastpath.Cursor.read_analyse)
            self.read_analyse: Callable[..., tuple[int, int, int, int]] | None = (
                c_cursor.read_analyse)
        else:
            self._st = _PyCursor(position)
            self._read_into = None
            self.read_analyse = None
        self._out = np.empty(0, L.RECORD_DTYPE)
        self._check = np.empty(0, np.uint32)

    def _buffers(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self._out) < n:
            self._out = np.empty(n, L.RECORD_DTYPE)
            self._check = np.arange(n, dtype=np.uint32)
        return self._out, self._check

    @property
    def position(self) -> int:
        """Sequence number of the next record to read."""
        return self._st.position

    @position.setter
    def position(self, value: int) -> None:
        self._st.position = value
        if not isinstance(self._st, _PyCursor):
            self._st.publish_gate()  # gated: the producer must not wait for the old one

    @property
    def lost(self) -> int:
        """Records the writer overwrote before we read them (lapping)."""
        return self._st.lost

    @property
    def stamp_reads(self) -> int:
        """Records taken by their stamp before the cursor (C fast path, layout v1.1+)."""
        return getattr(self._st, "stamp_reads", 0)

    @property
    def trusted_reads(self) -> int:
        """Of those, records taken with no read of the cursor at all (layout v1.2+)."""
        return getattr(self._st, "trusted_reads", 0)

    @property
    def rejected(self) -> int:
        """Records dropped because their seq stamp did not match (a protocol violation)."""
        return self._st.rejected

    @property
    def available(self) -> int:
        """Records published but not yet read (may include records already lapped)."""
        # the C reader may take a record by its stamp just before the cursor moves past it
        return max(0, self._words[_W_CURSOR] - self.position)

    def poll_batch(self, max_records: int = 4096) -> np.ndarray:
        """Copy up to ``max_records`` new records; return them as a ``RECORD_DTYPE`` array.

        The array is a view of an internal buffer, valid until the next call. The first
        record's sequence number is ``self.position - len(result)`` after the call.
        """
        words, st = self._words, self._st
        if self._read_into is not None:  # the same protocol in one C pass
            if len(self._out) < max_records:
                self._buffers(max_records)
            return self._out[:self._read_into(self._out, max_records)]
        c1 = words[_W_CURSOR]
        p = st.position
        if c1 <= p:
            return self._out[:0]
        oldest = c1 + self._margin
        if p < oldest:
            st.lost += oldest - p
            p = oldest
        n = min(c1 - p, max_records)
        out, check = self._buffers(n)
        out_u8 = out.view(np.uint8).reshape(len(out), L.RECORD.size)
        i0 = p & self._mask
        head = min(n, self._cap - i0)
        out_u8[:head] = self._ring_u8[i0:i0 + head]
        if head < n:
            out_u8[head:n] = self._ring_u8[:n - head]
        c2 = words[_W_CURSOR]
        start = 0
        oldest = c2 + self._margin
        if p < oldest:  # the writer may have overwritten the first records while we copied
            start = min(oldest - p, n)
            st.lost += start
        got = out[start:n]
        base = (p + start) & _MASK32
        stamps = got["seq_lo"] - np.uint32(base)  # wraps modulo 2^32, as seq_lo does
        if not np.array_equal(stamps, check[:n - start]):
            good = stamps == check[:n - start]
            st.rejected += int(len(got) - good.sum())
            got = got[good]
        st.position = p + n
        return got

    def poll_one(self) -> Record | None:
        """The next record, or None if there is none yet.

        A :class:`tradingd.segment.model.Record` here; the C fast path returns its own Record type,
        which reads the same way: like a tuple in that order, and by field name.
        """
        words, st = self._words, self._st
        while True:
            c1 = words[_W_CURSOR]
            p = st.position
            if p >= c1:
                return None
            oldest = c1 + self._margin
            if p < oldest:
                st.lost += oldest - p
                p = oldest
            t = _RECORD_UNPACK(self._mm, self._ring_offset + (p & self._mask) * 64)
            st.position = p + 1
            if p < words[_W_CURSOR] + self._margin:  # overwritten while we read it: retry
                st.lost += 1
                continue
            if t[0] != p & _MASK32:
                st.rejected += 1
                continue
            return _new_record(Record, (p, *t[1:]))

    def next(self, timeout_s: float, /) -> Record | None:
        """Spin for the next record and return it (Record order), or None after ``timeout_s``.

        The spin strategy's lowest-latency path: one call waits and reads (in C, holding
        the GIL for the first 50 us of a wait, then releasing it).
        """
        rec = self.poll_one()
        if rec is None and self.spin(timeout_s):
            rec = self.poll_one()
        return rec

    def spin(self, timeout_s: float, /) -> bool:
        """Busy-wait until records beyond our position exist (True) or ``timeout_s`` passes."""
        words, deadline = self._words, time.monotonic() + timeout_s
        while words[_W_CURSOR] <= self._st.position:
            if time.monotonic() >= deadline:
                return False
        return True

    def __iter__(self) -> Iterator[Record]:
        """Records available now, one at a time (stops when caught up)."""
        while (rec := self.poll_one()) is not None:
            yield rec

    def wait_for_data(self, timeout_s: float) -> bool:
        """Block (futex) until records beyond our position exist, or ``timeout_s`` passes.

        Uses no CPU while idle. Returns True if records are available.
        """
        reader = self._reader
        deadline = time.monotonic() + timeout_s
        while True:
            wake = reader.wake_seq
            if self._words[_W_CURSOR] > self.position:
                return True
            if reader.state not in L.RUNNING_STATES:
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if not isinstance(self._st, _PyCursor):
                self._st.publish_gate()  # gated: caught up, say so before sleeping
            if reader.sleep_until_data(self.position, wake, left):
                return True


__all__ = ["HEADER_INT_FIELDS", "RingSubscription", "SegmentReader", "Validated",
           "validate_header"]
