"""Segment format v1, declared once.

This module is the single source of truth for the bytes in a tradingd segment. Each
region is a :class:`Struct` of :class:`Field` rows (name, type, meaning); offsets, sizes,
the numpy dtypes, the word indices used for atomic stores, the C header
(:mod:`tradingd.segment.cheader`), the inspector's annotated dump, the docs table and the layout
fingerprint are all computed from these rows. Change a row and the fingerprint changes,
so a reader built against the old table refuses the new segment.

Segment map (every region starts on a 64-byte boundary)::

    offset 0                 header            (HEADER.size bytes)
    header.symtab_offset     symbol table      symtab_capacity x SYMBOL.size
    header.latest_offset     latest-value slots symtab_capacity x LATEST.size
    header.ring_offset       ring              ring_capacity x RECORD.size

Concurrency protocol (single writer, any number of readers, no locks):

* ``header.state`` is the ready word: the writer fills every region, then stores
  ``STATE_LIVE`` last (as Aeron writes its version word last). While creating, it stores
  ``state = initialising`` first and ``magic`` after every other header field, so a file
  with no magic yet and state empty/initialising is being created, not foreign.
* Latest slots are seqlocks: the writer stores ``lock = 2*seq+1`` (odd: writing), the
  payload, then ``lock = 2*seq+2`` (even: stable). A reader copies the payload between two
  reads of ``lock`` and accepts it only if both are equal and even.
* The ring: record ``seq`` lives in slot ``seq & (capacity-1)``. The writer writes the
  records of a batch (at most ``ring_window`` records), each record's body before its stamp
  ``seq_lo`` (since v1.1), then stores ``ring_cursor`` = number of records published. A
  reader copies records below the cursor, then reads the cursor again (``c2``): any slot the
  writer may have been overwriting meanwhile holds a record with
  ``seq < c2 + ring_window - capacity``; those are discarded and counted as lost. A record
  whose stamp does not equal its sequence number's low 32 bits is rejected.
* Stamp-first reads (v1.1, the C fast path's ``poll_one``/``next``): once every slot has been
  written (``position >= capacity``), a reader may take record ``position`` as soon as its
  slot's stamp equals ``position``'s low 32 bits, before the cursor moves: the stamp is
  stored after the body, so the body is whole. With a v1.1 writer the ``c2`` check after the
  copy stays (it catches an overwrite during the copy and a stamp that matches only modulo
  2^32). A reader waiting for the next record watches one cache line, the slot, instead of
  two (the cursor, then the slot): one cross-core transfer instead of two.
* Marked stamps (v1.2): before it writes a record's body, the writer stores the stamp's
  complement ``~seq_lo`` (which no record of that slot can carry: its low bits differ), so
  the stamp is a per-record seqlock. A stamp-first reader then needs no cursor read in
  steady state: it copies the record between two reads of the stamp and keeps it if both
  equal ``position``'s low 32 bits and ``publish_ns``, read again after the second, is what
  it copied (nothing was written to the slot during the copy, not even by a writer that
  went round 2^32 records while the reader was preempted mid-copy). That the slot
  holds ``position`` and not ``position + k * 2^32`` it knows from ``publish_ns``
  (CLOCK_MONOTONIC, never decreasing from record to record): if the record just before it
  was taken intact, and this one was published at most ``STAMP_TRUST_NS`` (100 ms) after
  it, the writer cannot have published 2^32 records in between (that would be 43 billion
  records a second). Any other case (the first record, a longer gap, a reader whose
  position was moved) goes through the ``c2`` check. The waiting reader then touches only
  the slot's cache line; the cursor's stays in the writer's cache.
* Every polled word (state, heartbeat, locks, cursor) is an aligned 8-byte field written
  with one 8-byte store, and a ring stamp one aligned 4-byte store (see
  ``tradingd.segment.writer``); x86-64 (TSO) keeps stores in order with stores and loads in
  order with loads, which is what makes the protocol correct from plain Python. (It does
  not keep a load behind an earlier store to another address: the protocol never needs
  that order, since readers never write.)
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

MAGIC = int.from_bytes(b"TRADINGD", "little")
LAYOUT_MAJOR = 1
# Minor versions add guarantees a reader may rely on; the bytes stay where they were.
#   1.0  the first format
#   1.1  the writer stores each ring record's stamp (seq_lo) after the rest of the record,
#        so a reader may take a record as soon as its stamp appears (STAMP_LAST_MINOR)
#   1.2  ...and stores the stamp's complement before the rest: the stamp is a per-record
#        seqlock, so a reader needs no cursor read per record (STAMP_MARKED_MINOR)
#   1.3  mirror segments (tradingd-bridge mirror): the header grows by three cache lines of
#        upstream_* fields (zero in a producer's segment) and state 5, upstream_down: the
#        mirror runs but its upstream is not delivering (MIRROR_MINOR). Every earlier field
#        keeps its offset; the regions after the header move (their offsets are in the
#        header) and the fingerprint changes, so a 1.2 reader refuses a 1.3 segment by its
#        fingerprint rather than misreading it.
LAYOUT_MINOR = 3
STAMP_LAST_MINOR = 1
STAMP_MARKED_MINOR = 2
MIRROR_MINOR = 3
#: A record published at most this long after the one before it, which a reader took intact,
#: is the record its stamp says, not one 2^32 records later (see the protocol above).
STAMP_TRUST_NS = 100_000_000
CACHE_LINE = 64

# header.state values. Zero means the file is fresh from ftruncate: nothing written yet.
STATE_EMPTY = 0
STATE_INITIALISING = 1
STATE_LIVE = 2
STATE_FINISHED = 3  # replay finished: producer alive, heartbeating, publishing nothing more
STATE_STOPPED = 4
#: A mirror segment (tradingd-bridge mirror) whose writer runs and heartbeats but whose
#: upstream (origin producer, publish bridge or NATS) is not delivering: not "producer dead".
STATE_UPSTREAM_DOWN = 5
STATE_NAMES = {
    STATE_EMPTY: "empty",
    STATE_INITIALISING: "initialising",
    STATE_LIVE: "live",
    STATE_FINISHED: "finished",
    STATE_STOPPED: "stopped",
    STATE_UPSTREAM_DOWN: "upstream_down",
}
#: States in which a producer is running and heartbeating.
RUNNING_STATES = (STATE_LIVE, STATE_FINISHED, STATE_UPSTREAM_DOWN)

# header.upstream_state values (mirror segments): what the mirror knows of its upstream.
UPSTREAM_NONE = 0  # not a mirror: a producer's own segment
UPSTREAM_LIVE = 1
UPSTREAM_FINISHED = 2
UPSTREAM_ORIGIN_DOWN = 3  # the publish bridge reports the origin producer down
UPSTREAM_BRIDGE_SILENT = 4  # no message from the publish bridge within the timeout
UPSTREAM_NATS_DOWN = 5  # the mirror cannot reach the NATS server
UPSTREAM_NAMES = {
    UPSTREAM_NONE: "none",
    UPSTREAM_LIVE: "live",
    UPSTREAM_FINISHED: "finished",
    UPSTREAM_ORIGIN_DOWN: "origin_down",
    UPSTREAM_BRIDGE_SILENT: "bridge_silent",
    UPSTREAM_NATS_DOWN: "nats_down",
}

ASSET_CLASSES = {0: "unknown", 1: "stock", 2: "crypto", 3: "forex"}
ASSET_CLASS_IDS = {name: code for code, name in ASSET_CLASSES.items()}


@dataclass(frozen=True)
class CType:
    """A field type: its size, numpy format, struct code and C spelling."""

    name: str
    size: int
    numpy: str
    struct_code: str
    c: str


_TYPES = {
    "u32": CType("u32", 4, "<u4", "I", "uint32_t"),
    "u64": CType("u64", 8, "<u8", "Q", "uint64_t"),
    "i64": CType("i64", 8, "<i8", "q", "int64_t"),
    "f64": CType("f64", 8, "<f8", "d", "double"),
}


@dataclass(frozen=True)
class Field:
    """One field of a region: name, type (``u32 u64 i64 f64`` or ``char[N]``), meaning.

    ``own_line`` puts the field alone on a 64-byte cache line, so the word the writer
    updates on every publish shares no line with words readers only read. ``new_line``
    starts a cache line (groups the header's fields by concern).
    """

    name: str
    type: str
    meaning: str
    own_line: bool = False
    new_line: bool = False

    @property
    def ctype(self) -> CType:
        if self.type.startswith("char["):
            n = int(self.type[5:-1])
            return CType(self.type, n, f"S{n}", f"{n}s", "char")
        return _TYPES[self.type]

    @property
    def size(self) -> int:
        return self.ctype.size

    @property
    def align(self) -> int:
        if self.own_line or self.new_line:
            return CACHE_LINE
        return (1 if self.type.startswith("char[") else self.size)


@dataclass(frozen=True)
class Placed:
    """A field with its offset inside its struct."""

    field: Field
    offset: int

    @property
    def name(self) -> str:
        return self.field.name

    @property
    def size(self) -> int:
        return self.field.size

    @property
    def end(self) -> int:
        return self.offset + self.field.size


def _round_up(n: int, align: int) -> int:
    return (n + align - 1) // align * align


@dataclass(frozen=True)
class Struct:
    """A region's element: fields at naturally aligned offsets, padded to ``pad_to``."""

    name: str
    doc: str
    fields: tuple[Field, ...]
    pad_to: int = CACHE_LINE
    exact_size: int | None = None  # fail at import if the rows do not add up to this

    @cached_property
    def placed(self) -> tuple[Placed, ...]:
        out: list[Placed] = []
        off = 0
        for f in self.fields:
            off = _round_up(off, f.align)
            out.append(Placed(f, off))
            off += f.size
            if f.own_line:
                off = _round_up(off, CACHE_LINE)
        return tuple(out)

    @cached_property
    def size(self) -> int:
        end = self.placed[-1].end if self.placed else 0
        size = _round_up(end, self.pad_to)
        if self.exact_size is not None and size != self.exact_size:
            raise AssertionError(f"layout: struct {self.name} is {size} bytes, "
                                 f"declared {self.exact_size}")
        return size

    def __getitem__(self, name: str) -> Placed:
        for p in self.placed:
            if p.name == name:
                return p
        raise KeyError(f"{self.name} has no field {name!r}")

    def offset(self, name: str) -> int:
        return self[name].offset

    def word(self, name: str) -> int:
        """Index of an aligned 8-byte field in a ``uint64`` view of the struct."""
        p = self[name]
        assert p.size == 8 and p.offset % 8 == 0, (self.name, name)
        return p.offset // 8

    @cached_property
    def dtype(self) -> np.dtype:
        """The numpy structured dtype (explicit offsets, itemsize = struct size)."""
        return np.dtype({
            "names": [p.name for p in self.placed],
            "formats": [p.field.ctype.numpy for p in self.placed],
            "offsets": [p.offset for p in self.placed],
            "itemsize": self.size,
        })

    @cached_property
    def names(self) -> tuple[str, ...]:
        """The field names in offset order: ``dtype.names``, typed as never None."""
        return tuple(p.name for p in self.placed)

    def struct_format(self, names: list[str] | tuple[str, ...]) -> struct.Struct:
        """A ``struct.Struct`` packing the named fields, which must be contiguous and in order.

        Used for the single-record fast paths, where one ``pack_into`` beats per-field stores.
        """
        placed = [self[n] for n in names]
        fmt = "<"
        pos = placed[0].offset
        for p in placed:
            if p.offset != pos:
                raise ValueError(f"{self.name}: {names} are not contiguous at {p.name}")
            fmt += p.field.ctype.struct_code
            pos = p.end
        return struct.Struct(fmt)

    def gaps(self) -> list[tuple[int, int]]:
        """Padding ranges ``(offset, size)`` between and after the fields."""
        out = []
        pos = 0
        for p in self.placed:
            if p.offset > pos:
                out.append((pos, p.offset - pos))
            pos = p.end
        if self.size > pos:
            out.append((pos, self.size - pos))
        return out


# --------------------------------------------------------------------------------------
# The table. Meanings are shown by `tradingd-inspect layout`, in the C header and docs.
# --------------------------------------------------------------------------------------

HEADER = Struct("header", "Segment header: identity, liveness, region table, counters.", (
    Field("magic", "u64", "\"TRADINGD\" as a little-endian u64: this is a tradingd segment"),
    Field("layout_major", "u32", "layout major version; readers refuse another major"),
    Field("layout_minor", "u32",
          "layout minor version: guarantees added since x.0 (1: ring stamps stored last; "
          "2: and marked while the record is written)"),
    Field("layout_fingerprint", "u64", "hash of this field table; readers refuse a mismatch"),
    Field("header_size", "u64", "size of this header in bytes"),
    Field("total_size", "u64", "size of the whole segment in bytes"),
    Field("generation", "u64", "random non-zero id, new each time a producer creates it"),
    Field("producer_pid", "u64", "PID of the producer that owns the segment"),
    Field("producer_start_ns", "u64", "wall-clock time the producer created it (ns since epoch)"),
    Field("state", "u64", "0 empty, 1 initialising, 2 live, 3 finished, 4 stopped, "
          "5 upstream_down (a mirror whose upstream is not delivering) (ready word)",
          new_line=True),
    Field("heartbeat_ns", "u64", "CLOCK_MONOTONIC ns of the producer's last heartbeat"),
    Field("heartbeat_interval_ns", "u64", "how often the producer beats (ns)"),
    Field("heartbeat_count", "u64", "heartbeats since creation"),
    Field("producer_start_ticks", "u64",
          "the producer's start time in /proc/PID/stat (clock ticks): tells a reused PID apart"),
    Field("symtab_offset", "u64", "offset of the symbol table", new_line=True),
    Field("symtab_capacity", "u64", "entries in the symbol table and latest-value slots"),
    Field("symbol_count", "u64", "entries in use (0..symbol_count-1)"),
    Field("symtab_entry_size", "u64", "bytes per symbol table entry"),
    Field("latest_offset", "u64", "offset of the latest-value slots"),
    Field("latest_slot_size", "u64", "bytes per latest-value slot"),
    Field("ring_offset", "u64", "offset of the ring"),
    Field("ring_capacity", "u64", "records in the ring (a power of two)"),
    Field("ring_record_size", "u64", "bytes per ring record", new_line=True),
    Field("ring_window", "u64",
          "most records the writer writes before advancing the cursor: min(1024, capacity/4) "
          "from tradingd's writer (not the replay batch size); readers accept 1..capacity/2"),
    Field("replay_loops", "u64", "times the replay wrapped around to the start of the data"),
    Field("rows_rejected", "u64", "bad CSV rows the producer skipped while loading"),
    Field("ring_cursor", "u64",
          "records published = sequence number of the next record (on its own cache line)",
          own_line=True),
    Field("wake_seq", "u64",
          "bumped after each publish when the producer wakes blocked readers; its low 32 bits "
          "are a futex word readers wait on", own_line=True),
    # v1.3: a mirror segment's upstream (tradingd-bridge mirror); all zero in a producer's
    Field("upstream_state", "u64",
          "mirror: 0 not a mirror, 1 live, 2 finished, 3 origin producer down, 4 publish "
          "bridge silent, 5 NATS unreachable", new_line=True),
    Field("upstream_generation", "u64", "mirror: generation of the origin segment mirrored"),
    Field("upstream_next_seq", "u64",
          "mirror: origin ring sequence number of the next record to apply"),
    Field("upstream_cursor", "u64", "mirror: origin ring cursor, as last reported upstream"),
    Field("upstream_stream_seq", "u64",
          "mirror: JetStream sequence of the last message applied (resume point)"),
    Field("upstream_seq_offset", "u64",
          "mirror: origin sequence number minus this ring's, for the newest records (one "
          "word, stored before a batch that changes it: resume at ring_cursor + this)"),
    Field("upstream_lag_ns", "u64",
          "mirror: how far behind: the last applied record's origin publish (wall clock) "
          "to its write here (ns)"),
    Field("upstream_gap_records", "u64",
          "mirror: origin records never applied (lapped at the origin, or no longer "
          "retained by the stream)"),
    Field("upstream_segment", "char[64]", "mirror: origin segment name, NUL-padded",
          new_line=True),
    Field("upstream_host", "char[64]", "mirror: origin host name, NUL-padded", new_line=True),
), exact_size=576)

SYMBOL = Struct("symbol", "Symbol table entry: how to label a symbol's data.", (
    Field("name", "char[24]", "ticker, NUL-padded ASCII (\"AAPL\", \"BTC-USD\")"),
    Field("currency", "char[8]", "quote currency, NUL-padded (\"USD\")"),
    Field("asset_class", "u32", "1 stock, 2 crypto, 3 forex, 0 unknown"),
    Field("price_decimals", "u32", "decimals to show prices with"),
    Field("bar_interval_ns", "u64", "nominal spacing of the source bars (86400e9 = daily)"),
    Field("record_count", "u64", "records of this symbol the producer has loaded"),
), exact_size=64)

LATEST = Struct("latest", "Latest-value slot of one symbol, guarded by a seqlock.", (
    Field("lock", "u64", "seqlock: 2*seq+1 while writing, 2*seq+2 when stable, 0 never written"),
    Field("price", "f64", "last price (close of the last record)"),
    Field("volume", "f64", "volume of the last record (f64: exact to 2^53, fractional ok)"),
    Field("event_ns", "i64", "event time of the last record (ns since epoch, UTC)"),
    Field("publish_ns", "u64", "CLOCK_MONOTONIC ns when it was published"),
    Field("valid", "u64", "1 once the slot holds data"),
), exact_size=64)

RECORD = Struct("record", "Ring record: one tick or bar.", (
    Field("seq_lo", "u32",
          "low 32 bits of the sequence number: the stamp, stored after the rest of the record "
          "(its complement while the record is being written)"),
    Field("symbol_id", "u32", "index into the symbol table"),
    Field("event_ns", "i64", "event time (ns since epoch, UTC)"),
    Field("publish_ns", "u64", "CLOCK_MONOTONIC ns when published (for latency)"),
    Field("open", "f64", "open price"),
    Field("high", "f64", "high price"),
    Field("low", "f64", "low price"),
    Field("close", "f64", "close price"),
    Field("volume", "f64", "volume (f64: exact to 2^53, fractional ok)"),
), exact_size=64)

STRUCTS = (HEADER, SYMBOL, LATEST, RECORD)

HEADER_DTYPE = HEADER.dtype
SYMBOL_DTYPE = SYMBOL.dtype
LATEST_DTYPE = LATEST.dtype
RECORD_DTYPE = RECORD.dtype


def _fingerprint() -> int:
    h = hashlib.sha256()
    h.update(f"tradingd-layout {LAYOUT_MAJOR}\n".encode())
    for s in STRUCTS:
        h.update(f"struct {s.name} {s.size}\n".encode())
        for p in s.placed:
            h.update(f"  {p.name} {p.field.type} {p.offset}\n".encode())
    return int.from_bytes(h.digest()[:8], "little") or 1


LAYOUT_FINGERPRINT = _fingerprint()


#: Limits a reader enforces (the writer never exceeds them): ring capacity below 2^32
#: (a 32-bit stamp names one slot's record unambiguously within a lap), a symbol table
#: the C batch publish covers, a cursor far from 64-bit overflow (2^62 records: 146
#: years at 10^9 a second), and a PID a kernel can hand out (PID_MAX_LIMIT = 2^22).
MAX_RING_CAPACITY = 2**31
MAX_SYMTAB_CAPACITY = 4096
MAX_RING_CURSOR = 2**62
MAX_PRODUCER_PID = 2**22


@dataclass(frozen=True)
class Geometry:
    """Where each region sits in a segment with the given capacities."""

    symtab_capacity: int
    ring_capacity: int
    ring_window: int
    symtab_offset: int = field(init=False)
    latest_offset: int = field(init=False)
    ring_offset: int = field(init=False)
    total_size: int = field(init=False)

    def __post_init__(self) -> None:
        if not 1 <= self.symtab_capacity <= MAX_SYMTAB_CAPACITY:
            raise ValueError(f"symbol capacity must be 1..{MAX_SYMTAB_CAPACITY}, not "
                             f"{self.symtab_capacity}")
        cap = self.ring_capacity
        if cap < 2 or cap & (cap - 1) or cap > MAX_RING_CAPACITY:
            raise ValueError(f"ring capacity must be a power of two 2..{MAX_RING_CAPACITY} "
                             f"(below 2^32), not {cap}")
        if not 1 <= self.ring_window <= cap // 2:
            raise ValueError(f"ring window must be 1..{cap // 2} (capacity/2), "
                             f"not {self.ring_window}")
        sym = _round_up(HEADER.size, CACHE_LINE)
        latest = _round_up(sym + self.symtab_capacity * SYMBOL.size, CACHE_LINE)
        ring = _round_up(latest + self.symtab_capacity * LATEST.size, CACHE_LINE)
        total = ring + cap * RECORD.size
        object.__setattr__(self, "symtab_offset", sym)
        object.__setattr__(self, "latest_offset", latest)
        object.__setattr__(self, "ring_offset", ring)
        object.__setattr__(self, "total_size", total)

    def regions(self) -> list[tuple[str, int, int, Struct, int]]:
        """``(region, offset, size, element struct, element count)`` in file order."""
        return [
            ("header", 0, HEADER.size, HEADER, 1),
            ("symtab", self.symtab_offset, self.symtab_capacity * SYMBOL.size, SYMBOL,
             self.symtab_capacity),
            ("latest", self.latest_offset, self.symtab_capacity * LATEST.size, LATEST,
             self.symtab_capacity),
            ("ring", self.ring_offset, self.ring_capacity * RECORD.size, RECORD,
             self.ring_capacity),
        ]


def default_window(ring_capacity: int) -> int:
    """The batch size limit the writer uses for a ring of this capacity."""
    return max(1, min(1024, ring_capacity // 4))


def layout_table() -> list[dict[str, object]]:
    """Every field as a row (struct, field, offset, size, type, meaning): for docs and tools."""
    return [
        {"struct": s.name, "field": p.name, "offset": p.offset, "size": p.size,
         "type": p.field.type, "meaning": p.field.meaning}
        for s in STRUCTS for p in s.placed
    ]


# ======================================================================================
# Order and report rings (issue 18): a second kind of segment, declared in the same way.
#
# One client talks to tradingd-exec through two single-writer segments ("channels"):
# ``<segment>.orders.<client>`` (the client writes orders, exec reads) and
# ``<segment>.reports.<client>`` (exec writes execution reports, the client reads). Both
# have the CHANNEL header and a ring of fixed-size records stamped exactly like the data
# ring's (mark ``~seq_lo``, body, stamp ``seq_lo``, cursor). Each side publishes how far it
# has read in its OWN header (``peer_consumed``): a writer never overwrites a record the
# other side has not read, so no cross-process compare-and-swap and no lapping. The data
# segment's STRUCTS and LAYOUT_FINGERPRINT above are untouched by this block: channels have
# their own magics and their own fingerprint (CHANNEL_FINGERPRINT).
# ======================================================================================

ORDERS_MAGIC = int.from_bytes(b"TDORDERS", "little")
REPORTS_MAGIC = int.from_bytes(b"TDREPRTS", "little")
CHANNEL_MAJOR = 1
CHANNEL_MINOR = 0
CHANNEL_KINDS = {ORDERS_MAGIC: "orders", REPORTS_MAGIC: "reports"}
#: header.state of a report ring whose client exec disconnected (reason in ``detail``)
STATE_DISCONNECTED = 5
CHANNEL_STATE_NAMES = {**STATE_NAMES, STATE_DISCONNECTED: "disconnected"}

CHANNEL_HEADER = Struct("channel_header",
                        "Order/report ring header: identity, liveness, ring, credit.", (
    Field("magic", "u64", "\"TDORDERS\" (order ring) or \"TDREPRTS\" (report ring), "
                          "little-endian; written after every other header field"),
    Field("layout_major", "u32", "channel layout major version; readers refuse another"),
    Field("layout_minor", "u32", "channel layout minor version"),
    Field("layout_fingerprint", "u64", "hash of the channel field tables"),
    Field("header_size", "u64", "size of this header in bytes"),
    Field("total_size", "u64", "size of the whole segment in bytes"),
    Field("generation", "u64", "random non-zero id, new each time the owner creates it"),
    Field("owner_pid", "u64", "PID of the writer (the client, or tradingd-exec)"),
    Field("owner_start_ns", "u64", "wall-clock time the owner created it (ns since epoch)"),
    Field("state", "u64", "1 initialising, 2 live, 4 stopped, 5 disconnected (ready word)",
          new_line=True),
    Field("heartbeat_ns", "u64", "CLOCK_MONOTONIC ns of the owner's last heartbeat"),
    Field("heartbeat_interval_ns", "u64", "how often the owner beats (ns)"),
    Field("heartbeat_count", "u64", "heartbeats since creation"),
    Field("owner_start_ticks", "u64", "the owner's start time in /proc/PID/stat (ticks)"),
    Field("ring_offset", "u64", "offset of the ring", new_line=True),
    Field("ring_capacity", "u64", "records in the ring (a power of two)"),
    Field("record_size", "u64", "bytes per ring record"),
    Field("peer_generation", "u64",
          "report ring: generation of the order ring it answers; order ring: 0"),
    Field("last_client_seq", "u64",
          "report ring: highest client_seq exec has taken from this client (resume point)"),
    Field("last_client_order_id", "u64",
          "report ring: highest client_order_id exec has seen from this client"),
    Field("detail", "u64", "report ring: disconnect reason code (0 none)"),
    Field("client", "char[32]", "client name, NUL-padded", new_line=True),
    Field("ring_cursor", "u64", "records published = sequence number of the next record",
          own_line=True),
    Field("peer_consumed", "u64",
          "order ring: reports the client has read; report ring: orders exec has read "
          "(the credit the other side's writer may not overrun)", own_line=True),
    Field("last_report_seq", "u64",
          "order ring: report_seq of the last report the client processed (resume point)",
          new_line=True),
    Field("wants_wake", "u64",
          "order ring: 1 while the client may block on its report ring's wake_seq futex"),
    Field("wake_seq", "u64",
          "report ring: bumped (then FUTEX_WAKE) after reports are published to a client "
          "that wants_wake; its low 32 bits are the futex word", own_line=True),
), exact_size=512)

ORDER = Struct("order", "Order ring record: a new order or a cancel (client -> exec).", (
    Field("seq_lo", "u32", "low 32 bits of the record's ring sequence: the stamp, stored "
                           "after the body (its complement while it is written)"),
    Field("msg_type", "u32", "1 new order, 2 cancel"),
    Field("client_seq", "u64", "client's own sequence number, increasing across restarts"),
    Field("client_order_id", "u64", "new order: its id (unique per client); cancel: the "
                                    "order to cancel"),
    Field("side", "u32", "1 buy, 2 sell (FIX Side)"),
    Field("ord_type", "u32", "1 market, 2 limit (FIX OrdType)"),
    Field("time_in_force", "u32", "0 DAY, 1 GTC, 3 IOC (FIX TimeInForce)"),
    Field("quantity", "i64", "order quantity (units); must be > 0"),
    Field("limit_price", "f64", "limit price (limit orders; must be > 0)"),
    Field("send_ns", "u64", "client CLOCK_MONOTONIC ns at submit (for latency)"),
    Field("symbol", "char[16]", "symbol name as in the market segment, NUL-padded"),
), exact_size=128)

REPORT = Struct("report", "Report ring record: an execution report (exec -> client).", (
    Field("seq_lo", "u32", "low 32 bits of the record's ring sequence: the stamp"),
    Field("exec_type", "u32", "FIX ExecType as its ASCII code: '0' new, 'F' trade, "
                              "'4' canceled, '8' rejected, 'C' expired, 'I' order status"),
    Field("report_seq", "u64", "per-client report number, 1, 2, ... across exec restarts"),
    Field("client_order_id", "u64", "the order reported on (0 for a position restatement)"),
    Field("ord_status", "u32", "FIX OrdStatus as its ASCII code: '0' new, '1' partially "
                               "filled, '2' filled, '4' canceled, '8' rejected, 'C' expired"),
    Field("reject_reason", "u32", "0 none, else a tradingd reject reason code"),
    Field("last_qty", "i64", "quantity of this fill (0 if not a fill; position: net qty)"),
    Field("last_px", "f64", "price of this fill"),
    Field("cum_qty", "i64", "quantity filled so far"),
    Field("leaves_qty", "i64", "quantity still open (0 once terminal)"),
    Field("avg_px", "f64", "average fill price so far (position: average cost)"),
    Field("market_seq", "i64", "market ring sequence of the bar it executed against (-1)"),
    Field("transact_ns", "u64", "exec CLOCK_MONOTONIC ns of the input that caused it"),
    Field("order_send_ns", "u64", "the order's send_ns echoed (order -> report latency)"),
    Field("side", "u32", "1 buy, 2 sell"),
    Field("report_kind", "u32", "1 execution report, 2 cancel reject, 3 position restatement"),
    Field("symbol", "char[16]", "symbol name, NUL-padded"),
    Field("client_seq", "u64", "client_seq of the order input that caused it (0: none)"),
), exact_size=128)

CHANNEL_STRUCTS = (CHANNEL_HEADER, ORDER, REPORT)


def _channel_fingerprint() -> int:
    h = hashlib.sha256()
    h.update(f"tradingd-channel {CHANNEL_MAJOR}\n".encode())
    for s in CHANNEL_STRUCTS:
        h.update(f"struct {s.name} {s.size}\n".encode())
        for p in s.placed:
            h.update(f"  {p.name} {p.field.type} {p.offset}\n".encode())
    return int.from_bytes(h.digest()[:8], "little") or 1


CHANNEL_FINGERPRINT = _channel_fingerprint()


def channel_total_size(capacity: int) -> int:
    """Bytes of a channel segment with a ring of ``capacity`` records (header + ring)."""
    if capacity < 2 or capacity & (capacity - 1):
        raise ValueError(f"ring capacity must be a power of two >= 2, not {capacity}")
    return CHANNEL_HEADER.size + capacity * ORDER.size


def channel_table() -> list[dict[str, object]]:
    """Every channel field as a row, as :func:`layout_table` does for the data segment."""
    return [
        {"struct": s.name, "field": p.name, "offset": p.offset, "size": p.size,
         "type": p.field.type, "meaning": p.field.meaning}
        for s in CHANNEL_STRUCTS for p in s.placed
    ]
