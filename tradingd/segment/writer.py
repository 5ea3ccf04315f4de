"""SegmentWriter: the single writer of a segment.

Creates the segment exclusively (empty, mode 0600), records its PID in it first (so a kill
at any later point leaves a file naming a dead creator, reclaimed at once), reserves the
whole size with ``posix_fallocate`` (a full /dev/shm is ENOSPC, not SIGBUS), initialises
every region, opens it up to the configured mode and group, and only then stores the ready word
(``state = live``). Publishes records one at a time (a ``struct`` fast path) or as numpy
batches (``uint8`` copies), updates the latest-value seqlocks, beats the heartbeat, and
on close marks the segment stopped and unlinks it.

Words other processes poll are stored with one aligned 8-byte store through a
``memoryview`` cast to ``'Q'`` — never with ``struct.pack_into``, which zero-fills its
target first, so a reader can catch a transient 0 (facts.md).
"""

from __future__ import annotations

import contextlib
import grp
import os
import secrets
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from tradingd.clock import SYSTEM_CLOCK, Clock
from tradingd.errors import SegmentError, SegmentPermission, TradingdError
from tradingd.segment import layout as L
from tradingd.segment import shm, waiters
from tradingd.segment.fastpath import FAST
from tradingd.segment.liveness import process_start_ticks
from tradingd.segment.model import SymbolInfo
from tradingd.segment.waiters import SLEEPERS_OFFSET, Companion, GateSlot

if TYPE_CHECKING:
    from tradingd.segment import _fastpath

_W_MAGIC = L.HEADER.word("magic")
_W_STATE = L.HEADER.word("state")
_W_HB = L.HEADER.word("heartbeat_ns")
_W_HB_COUNT = L.HEADER.word("heartbeat_count")
_W_CURSOR = L.HEADER.word("ring_cursor")
_W_WAKE = L.HEADER.word("wake_seq")
_W_SYMBOL_COUNT = L.HEADER.word("symbol_count")
# Everything after the stamp. The stamp (seq_lo) is stored on its own: its complement before
# the body (a mark, layout v1.2), its value after it (v1.1).
_RECORD_BODY = L.RECORD.names[1:]
_RECORD_BODY_PACK = L.RECORD.struct_format(_RECORD_BODY)
_RECORD_BODY_AT = L.RECORD[_RECORD_BODY[0]].offset
# A record's body as one opaque field: numpy copies it with one memcpy per record (2x
# faster than a strided byte copy), leaving the stamp alone.
_BODY_DTYPE = np.dtype({"names": ["body"], "formats": [f"V{L.RECORD.size - _RECORD_BODY_AT}"],
                        "offsets": [_RECORD_BODY_AT], "itemsize": L.RECORD.size})
_LATEST_PAYLOAD = ("price", "volume", "event_ns", "publish_ns", "valid")
_LATEST_PACK = L.LATEST.struct_format(_LATEST_PAYLOAD)
_MASK32 = 0xFFFFFFFF
_STAMP_STRIDE = L.RECORD.size // 4


class SegmentWriter:
    """Owner and only writer of one segment. Use :meth:`create`; close with :meth:`close`.

    Not thread-safe: one thread publishes (the seqlock and cursor protocol has one writer).
    """

    def __init__(self) -> None:  # use create()
        raise TypeError("use SegmentWriter.create(...)")

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def create(
        cls,
        name: str,
        symbols: Sequence[SymbolInfo],
        *,
        symbol_capacity: int = 64,
        ring_capacity: int = 65536,
        ring_window: int | None = None,
        mode: int = 0o640,
        group: str | int | None = None,
        heartbeat_interval_ns: int = 100_000_000,
        wake_readers: bool = True,
        clock: Clock = SYSTEM_CLOCK,
        ready_state: int = L.STATE_LIVE,
        before_ready: Callable[[SegmentWriter], None] | None = None,
    ) -> SegmentWriter:
        """Create and initialise segment ``name``; it is live when this returns.

        ``before_ready`` fills more header fields (a mirror's ``upstream_*``) before the
        ready word is stored; ``ready_state`` is that word (a mirror may start
        ``STATE_UPSTREAM_DOWN``).

        Raises :class:`SegmentExists` if the name is taken (the caller decides whether the
        old one is stale), :class:`SegmentPermission` if the OS refuses. On any failure
        after creation the half-built segment is unlinked: none is ever left behind.
        """
        shm.check_platform()
        shm.validate_name(name)
        if len(symbols) > symbol_capacity:
            raise TradingdError(f"{len(symbols)} symbols do not fit a symbol table of "
                                f"{symbol_capacity}: raise segment.symbol_capacity")
        geo = L.Geometry(symbol_capacity, ring_capacity,
                         ring_window or L.default_window(ring_capacity))
        gid = shm.resolve_group(group)
        fd = shm.create_exclusive(name)
        self = object.__new__(cls)
        self._bare_fields(name, fd)
        try:
            # our PID first, then reserve the space, then the slow steps (map, pre-fault):
            # killed anywhere from here, the file names a dead creator and is reclaimed
            shm.write_claim(fd, _claim_header(clock), self.path)
            shm.reserve(fd, geo.total_size, self.path)
            self._init_fields(name, fd, geo, wake_readers, clock)
            self._initialise(symbols, heartbeat_interval_ns)
            _open_up(fd, self.path, mode, group, gid)
            if FAST is not None:  # C hot path over the same mapping (see fastpath.py)
                fast: _fastpath.Segment = FAST.Segment(self._mm, True, wake_readers)
                self._fast = fast
                self.publish = fast.publish  # type: ignore[method-assign]  # C bound over Python
                if wake_readers:  # wake only readers that sleep (waiters.py); before live
                    comp = Companion.create(name, self.generation, mode, gid)
                    self._companion = comp
                    if comp is not None:
                        fast.attach_sleepers(comp.mm, SLEEPERS_OFFSET)
            if before_ready is not None:
                before_ready(self)
            self._words[_W_STATE] = ready_state  # the ready word, stored last
        except BaseException:
            self._abandon()
            raise
        return self

    def _bare_fields(self, name: str, fd: int) -> None:
        """What :meth:`_abandon` needs, set before anything can fail."""
        self.name = name
        self.path = shm.segment_path(name)
        self._fd = fd
        self._file_id = shm.FileId.of_fd(fd)
        self._closed = False  # the mapping and its views come in _init_fields

    def _init_fields(self, name: str, fd: int, geo: L.Geometry, wake: bool,
                     clock: Clock) -> None:
        self.name = name
        self.path = shm.segment_path(name)
        self.geometry = geo
        self._fd = fd
        self._file_id = shm.FileId.of_fd(fd)
        self._clock = clock
        self._mm = shm.map_fd(fd, geo.total_size, writable=True, where=self.path)
        self._u8 = np.frombuffer(self._mm, dtype=np.uint8)
        shm.prefault(self._u8)
        self._words = memoryview(self._mm).cast("Q")
        self._header = np.frombuffer(self._mm, L.HEADER_DTYPE, count=1)
        self._symtab = np.frombuffer(self._mm, L.SYMBOL_DTYPE, geo.symtab_capacity,
                                     geo.symtab_offset)
        self._ring = np.frombuffer(self._mm, L.RECORD_DTYPE, geo.ring_capacity,
                                   geo.ring_offset)
        self._ring_u8 = self._u8[geo.ring_offset:].reshape(geo.ring_capacity, L.RECORD.size)
        self._ring_offset = geo.ring_offset
        self._ring_body = self._ring.view(_BODY_DTYPE)["body"]
        # seq_lo of slot i is u32 word i * _STAMP_STRIDE of this view: one aligned 4-byte store
        self._stamps = memoryview(self._mm)[geo.ring_offset:].cast("I")
        self._mask = geo.ring_capacity - 1
        self._window = geo.ring_window
        self._latest_word0 = geo.latest_offset // 8
        self._wake = wake
        self._wake_addr = self._u8.ctypes.data + _W_WAKE * 8
        self.generation = 0
        self._fast: _fastpath.Segment | None = None
        self._companion: Companion | None = None
        self._gated = False
        self._closed = False

    def _initialise(self, symbols: Sequence[SymbolInfo], heartbeat_interval_ns: int) -> None:
        geo = self.geometry
        words = self._words
        words[_W_STATE] = L.STATE_INITIALISING
        h = self._header[0]
        generation = 0
        while generation == 0:
            generation = secrets.randbits(64)
        self.generation = generation
        for key, value in {
            "layout_major": L.LAYOUT_MAJOR, "layout_minor": L.LAYOUT_MINOR,
            "layout_fingerprint": L.LAYOUT_FINGERPRINT, "header_size": L.HEADER.size,
            "total_size": geo.total_size, "generation": generation,
            "producer_pid": os.getpid(), "producer_start_ns": self._clock.wall_ns(),
            "heartbeat_interval_ns": heartbeat_interval_ns,
            "producer_start_ticks": process_start_ticks(os.getpid()),
            "symtab_offset": geo.symtab_offset, "symtab_capacity": geo.symtab_capacity,
            "symtab_entry_size": L.SYMBOL.size, "latest_offset": geo.latest_offset,
            "latest_slot_size": L.LATEST.size, "ring_offset": geo.ring_offset,
            "ring_capacity": geo.ring_capacity, "ring_record_size": L.RECORD.size,
            "ring_window": geo.ring_window,
        }.items():
            h[key] = value
        # magic after every other header field, in one 8-byte store: a racing producer or an
        # inspector that sees no magic yet knows the file is being created, not foreign or
        # of another version (ownership.classify, reader.validate_header)
        words[_W_MAGIC] = L.MAGIC
        self.set_symbols(symbols)
        self.heartbeat()

    def set_symbols(self, symbols: Sequence[SymbolInfo]) -> None:
        """Fill the symbol table (done at creation; symbols may only be appended later)."""
        for i, sym in enumerate(symbols):
            name = sym.name.encode("ascii")
            if len(name) > 23:
                raise TradingdError(f"symbol name {sym.name!r} is longer than 23 characters")
            e = self._symtab[i]
            e["name"] = name
            e["currency"] = sym.currency.encode("ascii")[:7]
            e["asset_class"] = sym.asset_class_id
            e["price_decimals"] = sym.price_decimals
            e["bar_interval_ns"] = sym.bar_interval_ns
            e["record_count"] = sym.record_count
        self._words[_W_SYMBOL_COUNT] = len(symbols)

    def _abandon(self) -> None:
        """Undo a failed creation: unlink our file, release the mapping and the fd."""
        self._closed = True
        if shm.FileId.of_path(self.path) == self._file_id:
            shm.unlink(self.name)
        self._release()

    def _release(self) -> None:
        # getattr: a creation that failed before (or while) mapping has only some of these
        fast = getattr(self, "_fast", None)
        if fast is not None:
            fast.release()
            self._fast = None
        companion = getattr(self, "_companion", None)
        if companion is not None:
            companion.close()
            self._companion = None
        self._header = self._symtab = self._ring = self._ring_u8 = self._u8 = None  # type: ignore[assignment]
        self._ring_body = None  # type: ignore[assignment]
        for view in (getattr(self, "_stamps", None), getattr(self, "_words", None)):
            if view is not None:
                view.release()
        mm = getattr(self, "_mm", None)
        if mm is not None:
            with contextlib.suppress(BufferError):  # a caller holds a view; unmapped at exit
                mm.close()
        os.close(self._fd)

    def close(self, *, unlink: bool = True) -> None:
        """Mark the segment stopped, wake blocked readers, unlink it (if still ours), unmap."""
        if self._closed:
            return
        self._closed = True
        self._words[_W_STATE] = L.STATE_STOPPED
        self._bump_wake()
        if unlink and shm.FileId.of_path(self.path) == self._file_id:
            shm.unlink(self.name)
        self._release()

    def __enter__(self) -> SegmentWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ header words
    def heartbeat(self, now_ns: int | None = None) -> None:
        """Store the heartbeat timestamp (CLOCK_MONOTONIC ns) and count the beat."""
        words = self._words
        words[_W_HB] = self._clock.monotonic_ns() if now_ns is None else now_ns
        words[_W_HB_COUNT] = words[_W_HB_COUNT] + 1

    def set_state(self, state: int) -> None:
        """Store ``header.state`` (e.g. ``STATE_FINISHED`` when the replay ends)."""
        self._words[_W_STATE] = state
        self._bump_wake()

    def set_counter(self, field: str, value: int) -> None:
        """Store a header counter (``replay_loops``, ``rows_rejected``)."""
        self._words[L.HEADER.word(field)] = value

    def set_text(self, field: str, value: str) -> None:
        """Store a NUL-padded ASCII header field (``upstream_segment``, ``upstream_host``).

        Truncated to the field's size; informative only (no reader polls these bytes).
        """
        size = L.HEADER[field].size
        self._header[0][field] = value.encode("ascii", "replace")[:size]

    def set_record_count(self, symbol_id: int, count: int) -> None:
        """Record how many records of a symbol the producer loaded (symbol table)."""
        self._symtab[symbol_id]["record_count"] = count

    @property
    def cursor(self) -> int:
        """Records published so far = sequence number of the next record."""
        return self._words[_W_CURSOR]

    @property
    def state(self) -> int:
        return self._words[_W_STATE]

    @property
    def file_id(self) -> shm.FileId:
        return self._file_id

    # ------------------------------------------------------------------ publishing
    def publish(self, symbol_id: int, event_ns: int, open_: float, high: float, low: float,
                close: float, volume: float, /) -> int:
        """Publish one record; update its symbol's latest slot; return its sequence number.

        The order is the protocol: the record's stamp marked (``~seq_lo``), its body, its
        stamp (a reader may take the record from here on), the latest-slot seqlock, then the
        cursor store.
        """
        words = self._words
        s = words[_W_CURSOR]
        now = time.monotonic_ns()
        slot = s & self._mask
        stamps = self._stamps
        stamps[slot * _STAMP_STRIDE] = ~s & _MASK32  # the mark: one 4-byte store, first
        _RECORD_BODY_PACK.pack_into(self._mm, self._ring_offset + slot * 64 + _RECORD_BODY_AT,
                                    symbol_id, event_ns, now, open_, high, low, close, volume)
        stamps[slot * _STAMP_STRIDE] = s & _MASK32  # the stamp, after the body
        w = self._latest_word0 + symbol_id * 8
        words[w] = 2 * s + 1
        _LATEST_PACK.pack_into(self._mm, w * 8 + 8, close, volume, event_ns, now, 1)
        words[w] = 2 * s + 2
        words[_W_CURSOR] = s + 1
        if self._wake:
            self._bump_wake()
        return s

    def publish_batch(self, records: np.ndarray) -> int:
        """Publish a numpy array of ``RECORD_DTYPE`` records; return the first sequence number.

        ``seq_lo`` and ``publish_ns`` are filled in by the writer. Large arrays are published
        in chunks of at most ``ring_window`` records (the readers' safety margin).
        """
        if records.dtype != L.RECORD_DTYPE:
            raise TypeError(f"publish_batch needs RECORD_DTYPE records, got {records.dtype}")
        if self._fast is not None:
            return self._fast.publish_records(np.ascontiguousarray(records))
        first = self._words[_W_CURSOR]
        n = len(records)
        src = np.ascontiguousarray(records).view(_BODY_DTYPE)["body"]
        for pos in range(0, n, self._window):
            self._publish_chunk(records[pos:pos + self._window], src[pos:pos + self._window])
        return first

    def publish_stream(self, records: np.ndarray, start: int, stop: int,
                       event_shift_ns: int = 0) -> int:
        """Publish ``records[start:stop]`` with ``event_ns`` shifted; return the first seq.

        ``records`` is a prebuilt, C-contiguous ``RECORD_DTYPE`` stream (the replay's
        timeline: its ``seq_lo``/``publish_ns`` are ignored). The C fast path copies it
        straight into the ring in ``ring_window`` chunks (no Python work per chunk); the
        pure-Python path copies and shifts, then publishes as :meth:`publish_batch`.
        """
        if records.dtype != L.RECORD_DTYPE or not records.flags.c_contiguous:
            raise TypeError("publish_stream needs a C-contiguous RECORD_DTYPE array")
        if self._fast is not None:
            return self._fast.publish_stream(records, start, stop, event_shift_ns)
        if not 0 <= start <= stop <= len(records):
            raise IndexError(f"records [{start}, {stop}) outside a stream of {len(records)}")
        chunk = records[start:stop]
        if event_shift_ns:
            chunk = chunk.copy()
            chunk["event_ns"] += event_shift_ns
        return self.publish_batch(chunk)

    # ------------------------------------------------------------------ flow control
    def enable_gate(self, lead: int = 0) -> bool:
        """Turn the flow-control gate on (waiters.py): :meth:`publish_gated` then never
        overwrites a record a live gated consumer has not read. False when it cannot be
        (no companion, or the pure-Python writer): the caller logs it and publishes freely.
        """
        comp, fast = self._companion, self._fast
        if comp is None or fast is None:
            return False
        fast.attach_gate(comp.mm, waiters.GATE_CONTROL_OFFSET, waiters.GATE_SLOTS_OFFSET,
                         waiters.GATE_SLOTS, lead)
        comp.set_gate_mode(1)
        self._gated = True
        return True

    @property
    def gated(self) -> bool:
        """True once :meth:`enable_gate` succeeded."""
        return self._gated

    def publish_gated(self, records: np.ndarray, start: int, stop: int, event_shift_ns: int,
                      max_wait_s: float) -> int:
        """:meth:`publish_stream` honouring the gate; returns how many records it published.

        Fewer than ``stop - start`` when the slowest gated consumer kept the gate shut for
        ``max_wait_s`` (the caller heartbeats, checks liveness, and calls again).
        """
        if not self._gated or self._fast is None:
            self.publish_stream(records, start, stop, event_shift_ns)
            return stop - start
        if records.dtype != L.RECORD_DTYPE or not records.flags.c_contiguous:
            raise TypeError("publish_gated needs a C-contiguous RECORD_DTYPE array")
        return self._fast.publish_gated(records, start, stop, event_shift_ns, max_wait_s)

    def gate_slots(self) -> list[GateSlot]:
        """The gate's slots in use (empty without a gate)."""
        return self._companion.slots() if self._gated and self._companion is not None else []

    def gate_cas(self, slot: int, expected: int, new: int) -> bool:
        """Change a gate slot's state atomically (drop a stalled consumer, free a dead one)."""
        if not self._gated or self._fast is None:
            return False
        return bool(self._fast.gate_cas(slot, expected, new))

    @property
    def gate_waits(self) -> int:
        """Times the gated publish slept waiting for the slowest consumer."""
        return self._fast.gate_waits if self._fast is not None else 0

    @property
    def gate_lead(self) -> int:
        """The most records the gated publish runs ahead of the slowest gated consumer
        (``enable_gate``'s lead, capped by the ring); 0 without a gate."""
        return self._fast.gate_lead if self._fast is not None and self._gated else 0

    @property
    def gate_timeouts(self) -> int:
        """Of those, sleeps no consumer ended (their 2 ms limit did)."""
        return self._fast.gate_timeouts if self._fast is not None else 0

    @property
    def sleepers_flag(self) -> bool:
        """True when blocking readers announce their sleep (waiters.py companion)."""
        return self._companion is not None

    def _publish_chunk(self, recs: np.ndarray, bodies: np.ndarray) -> None:
        words = self._words
        k = len(recs)
        if k == 0:
            return
        s = words[_W_CURSOR]
        now = time.monotonic_ns()
        cap = self.geometry.ring_capacity
        i0 = s & self._mask
        head = min(k, cap - i0)
        ring = self._ring
        seqs = np.arange(s, s + k, dtype=np.uint64)
        parts = [(slice(i0, i0 + head), slice(0, head))]
        if head < k:  # the chunk wraps around the end of the ring
            parts.append((slice(0, k - head), slice(head, k)))
        for dst, part in parts:  # marks first: from here no slot of the chunk reads as whole
            ring["seq_lo"][dst] = ~seqs[part]
        for dst, part in parts:
            self._ring_body[dst] = bodies[part]
            ring["publish_ns"][dst] = now
        for dst, part in parts:  # stamps last: a slot is marked until its body is whole
            ring["seq_lo"][dst] = seqs[part]
        self._update_latest_from(recs, s, now)
        words[_W_CURSOR] = s + k
        if self._wake:
            self._bump_wake()

    def _update_latest_from(self, recs: np.ndarray, s: int, now: int) -> None:
        """Seqlock-update the latest slot of every symbol in the chunk with its last record."""
        syms = recs["symbol_id"]
        if int(syms.max()) >= self.geometry.symtab_capacity:
            raise IndexError(f"symbol id {int(syms.max())} outside the symbol table")
        last = np.full(self.geometry.symtab_capacity, -1, dtype=np.int64)
        np.maximum.at(last, syms, np.arange(len(syms)))  # index of each symbol's last record
        words, mm, base = self._words, self._mm, self._latest_word0
        present = np.flatnonzero(last >= 0)
        for sym, i in zip(present.tolist(), last[present].tolist(), strict=True):
            r = recs[i]
            seq = s + i
            w = base + sym * 8
            words[w] = 2 * seq + 1
            _LATEST_PACK.pack_into(mm, w * 8 + 8, float(r["close"]), float(r["volume"]),
                                   int(r["event_ns"]), now, 1)
            words[w] = 2 * seq + 2

    def _bump_wake(self) -> None:
        self._words[_W_WAKE] = (self._words[_W_WAKE] + 1) & 0xFFFFFFFFFFFFFFFF
        shm.futex_wake(self._wake_addr)


def _claim_header(clock: Clock) -> bytes:
    """The first bytes of a new segment: state initialising and who is creating it.

    No magic yet (it is stored after every other header field): readers see a segment
    being created, and ``ownership.classify`` sees whose (PID and start ticks).
    """
    h = np.zeros(1, L.HEADER_DTYPE)
    h["state"] = L.STATE_INITIALISING
    h["producer_pid"] = os.getpid()
    h["producer_start_ticks"] = process_start_ticks(os.getpid())
    h["producer_start_ns"] = clock.wall_ns()
    return h.tobytes()


def _open_up(fd: int, path: str, mode: int, group: str | int | None, gid: int) -> None:
    """Give the finished segment its group and mode; EPERM is a typed error (exit 77)."""
    try:
        if gid != -1:
            os.fchown(fd, -1, gid)
    except PermissionError as exc:
        try:
            name = grp.getgrgid(gid).gr_name
        except KeyError:
            name = str(group)
        raise SegmentPermission(path, f"cannot give the segment to group {name} (gid {gid}): "
                                      f"{exc.strerror}; the producer's user must be a member "
                                      f"of segment.group") from exc
    try:
        os.fchmod(fd, mode)
    except PermissionError as exc:
        raise SegmentPermission(path, f"cannot set mode {mode:04o}: {exc.strerror}") from exc


def assert_owned(writer: SegmentWriter) -> None:
    """Raise if the name no longer points at the writer's file (someone replaced it)."""
    if shm.FileId.of_path(writer.path) != writer.file_id:
        raise SegmentError(writer.path, "no longer refers to this producer's segment "
                                        "(removed or replaced by someone else)")


__all__ = ["SegmentWriter", "assert_owned"]
