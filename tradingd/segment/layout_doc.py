"""Generate the segment layout table (docs/segment-layout.md) from :mod:`tradingd.segment.layout`.

Like the C header, the checked-in document is compared with this output by a test;
regenerate it with ``make docs``.
"""

from __future__ import annotations

from tradingd.segment import layout as L
from tradingd.segment import liveness, reader


def generate() -> str:
    """The Markdown document (deterministic)."""
    geo = L.Geometry(64, 65536, L.default_window(65536))
    out = [
        f"# Segment layout v{L.LAYOUT_MAJOR}.{L.LAYOUT_MINOR}",
        "",
        "Generated from `tradingd/segment/layout.py` by `tradingd/segment/layout_doc.py`",
        "(`make docs`): do not edit by hand. The same table is printed by",
        "`tradingd-inspect layout` and compiled into",
        "`tools/c/tradingd_segment.h`.",
        "",
        f"- magic `0x{L.MAGIC:016x}` (\"TRADINGD\" little-endian), layout fingerprint "
        f"`0x{L.LAYOUT_FINGERPRINT:016x}`",
        "- states: " + ", ".join(f"{code} {name}" for code, name in L.STATE_NAMES.items()),
        "- asset classes: " + ", ".join(f"{c} {n}" for c, n in L.ASSET_CLASSES.items()),
        "",
        "## Regions (default capacities: 64 symbols, ring of 65536 records)",
        "",
        "| region | offset | size | element | count |",
        "|---|---:|---:|---|---:|",
    ]
    for region, off, size, struct, count in geo.regions():
        out.append(f"| {region} | {off} | {size} | {struct.name} ({struct.size} B) | {count} |")
    out += ["", f"Total: {geo.total_size} bytes.", "", "## Concurrency protocol", "",
            _protocol_text(), "", _reader_text(), ""]
    for s in L.STRUCTS:
        out += [f"## {s.name} ({s.size} bytes)", "", s.doc, "",
                "| offset | size | type | field | meaning |", "|---:|---:|---|---|---|"]
        for p in s.placed:
            meaning = p.field.meaning.replace("|", "\\|")
            out.append(f"| {p.offset} | {p.size} | {p.field.type} | `{p.name}` | {meaning} |")
        gaps = ", ".join(f"{o}..{o + n - 1}" for o, n in s.gaps())
        out += ["", f"Padding (zero): {gaps or 'none'}.", ""]
    return "\n".join(out)


def _protocol_text() -> str:
    """The protocol bullets of :mod:`tradingd.segment.layout`'s docstring, its one written home."""
    doc = L.__doc__ or ""
    start = doc.index("Concurrency protocol")
    body = doc[doc.index("\n", start) + 1:]
    return body.strip().replace("``", "`")


def _off(field: str) -> str:
    return f"`{field}` (offset {L.HEADER.offset(field)})"


def _reader_text() -> str:
    """"Writing a reader": every rule tradingd's readers enforce, in the order they do.

    Numbers come from :mod:`tradingd.segment.layout` (sizes, limits, states, minors), so
    the contract cannot drift from the code; the steps follow
    ``tradingd.segment.reader`` (``_validate_before_mapping``, ``validate_header``) and
    ``shm.open_segment``.
    """
    H, line, n = L.HEADER.size, L.CACHE_LINE, L.RECORD.size
    ex = L.Geometry(64, 65536, L.default_window(65536))
    running = " and ".join(f"{s} {L.STATE_NAMES[s]}" for s in L.RUNNING_STATES)
    lock = L.LATEST.offset("lock")
    v11, v12 = L.STAMP_LAST_MINOR, L.STAMP_MARKED_MINOR
    factor, floor = liveness.DEFAULT_TIMEOUT_FACTOR, liveness.MIN_TIMEOUT_NS / 1e9
    stuck, wmax = reader._SEQLOCK_TIMEOUT_S, L.default_window(2**31)
    return f"""## Writing a reader

Everything below is what tradingd's own readers (`tradingd/segment/reader.py`, the C fast
path, `tradingd-inspect`) enforce; a reader that does less may accept segments tradingd
refuses. All integers are little-endian; all arithmetic on sequence numbers is unsigned
64-bit and must saturate at 0, never wrap (a hostile cursor near 2^63 or 2^64 must not
make a reader spin).

### 1. Open, then validate before mapping anything

1. Open `/dev/shm/NAME` with `O_RDONLY|O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC` (a symlink fails
   with ELOOP; a FIFO does not block the open). `/dev/shm` is writable by every local
   user: anything may sit at the name.
2. `fstat`: refuse anything but a regular file (`S_ISREG`): FIFO, directory, socket,
   device. Refuse a file whose owner (`st_uid`) is not the producer's account (tradingd:
   `segment.owner`; root, uid 0, is trusted too): another user created the name.
3. File size 0: being created, retry later. Read the first {H} bytes with `pread` (never
   map a file whose header has not been checked: pages past the end of a file SIGBUS when
   touched, and a sparse multi-GiB file costs its size in RAM if populated). Fewer than
   {H} bytes: truncated.
4. {_off("magic")} must be `0x{L.MAGIC:016x}`. If it is 0 and {_off("state")} is
   {L.STATE_EMPTY} or {L.STATE_INITIALISING}, the producer is creating the segment (it
   writes `state = {L.STATE_INITIALISING}` and its PID first, the magic after every other
   header field): retry. Otherwise the file is not a tradingd segment.
5. {_off("layout_major")} must be {L.LAYOUT_MAJOR} and {_off("layout_fingerprint")} must be
   `0x{L.LAYOUT_FINGERPRINT:016x}`. {_off("layout_minor")} may be any value: accept older
   (and newer) minors, using only the guarantees of the minor you find (section 4).
6. {_off("producer_pid")} <= {L.MAX_PRODUCER_PID} (2^22, Linux's PID_MAX_LIMIT; a bigger
   value must never reach `kill(2)`).
7. State {L.STATE_EMPTY} or {L.STATE_INITIALISING}: not ready, retry (an inspector may go
   on to show the structure).
8. Element sizes: `header_size` = {H}, `symtab_entry_size` = {L.SYMBOL.size},
   `latest_slot_size` = {L.LATEST.size}, `ring_record_size` = {n}.
9. Limits: 1 <= `symtab_capacity` <= {L.MAX_SYMTAB_CAPACITY}; `ring_capacity` a power of
   two, 2 <= capacity <= {L.MAX_RING_CAPACITY} (below 2^32, so a 32-bit stamp names a
   record unambiguously within a lap); 1 <= `ring_window` <= capacity/2. tradingd's writer
   uses `ring_window` = max(1, min({wmax}, capacity/4)), whatever its batch size.
10. Placement: every region starts on a {line}-byte boundary, in this order, with no other
    gaps (`round_up(x) = (x + {line - 1}) // {line} * {line}`):
    - `symtab_offset` = round_up({H}) = {L.Geometry(1, 2, 1).symtab_offset}
    - `latest_offset` = round_up(symtab_offset + symtab_capacity x {L.SYMBOL.size})
    - `ring_offset` = round_up(latest_offset + symtab_capacity x {L.LATEST.size})
    - `total_size` = ring_offset + ring_capacity x {n}

    Each header field must equal its formula (with the default 64 symbols and 65536
    records: {ex.symtab_offset}, {ex.latest_offset}, {ex.ring_offset}, {ex.total_size}).
11. The file size must equal `total_size` exactly: smaller is truncated, larger (any extra
    byte, an odd size) was not written by a tradingd producer.
12. `symbol_count` <= `symtab_capacity`; {_off("ring_cursor")} <= {L.MAX_RING_CURSOR}
    (2^62: no writer gets that far).
13. State {L.STATE_STOPPED} ({L.STATE_NAMES[L.STATE_STOPPED]}): the producer is going away;
    a reader of live data waits for a new segment. A state above {L.STATE_STOPPED}: corrupt.
14. Only now map `total_size` bytes (`PROT_READ`, `MAP_SHARED`; `MAP_POPULATE` is fine
    now), read the header again from the mapping and check that `generation` and the
    region table are unchanged (else a new producer replaced the file: start over).

Readers read data in states {running}. A finished segment's producer is alive and
heartbeating but publishes nothing more. Liveness is two signals: {_off("heartbeat_ns")}
(CLOCK_MONOTONIC) younger than max({factor:g} x `heartbeat_interval_ns`, {floor:g} s), and
the PID alive with {_off("producer_start_ticks")} equal to field 22 of `/proc/PID/stat`
(a reused PID is not the producer).

### 2. Latest-value slots (seqlock)

Slot `i` is at `latest_offset + i x {L.LATEST.size}`; its `lock` (offset {lock}) is 0 when
the slot was never written, `2 x seq + 1` while the writer updates it and `2 x seq + 2`
when stable, where `seq` is the sequence number of the ring record whose close and volume
the slot now holds. To read: load `lock` (acquire); 0: no value; odd: retry; copy the
payload; acquire fence; load `lock` again; keep the copy only if both loads are equal. A
lock that stays odd (tradingd gives up after {stuck:g} s per slot, and its inspector bounds
the wait for all slots together) means the writer died or froze mid-update: report it
(tradingd raises `SegmentStuck`, exit 76), never spin on it unbounded.

### 3. The ring, by the cursor (every minor)

Record `seq` lives in slot `seq & (capacity - 1)` at `ring_offset + slot x {n}`; its
`seq_lo` stamp is `seq & 0xffffffff`. With `lag = capacity - ring_window` and
`oldest(c) = c > lag ? c - lag : 0` (saturating), a reader at position `p`:

1. `c1` = `ring_cursor` (acquire). `p >= c1`: nothing new.
2. `p < oldest(c1)`: lapped; count `oldest(c1) - p` lost and set `p = oldest(c1)`.
3. Copy the record of `p`; acquire fence; `c2` = `ring_cursor`.
4. `p < oldest(c2)`: the writer may have overwritten it during the copy: count it lost,
   `p += 1`, go to 1.
5. `seq_lo != p & 0xffffffff`: reject it (count it), `p += 1`, go to 1. Else take it;
   `p += 1`.

A batch reader does the same for a run of records (copy `min(c1 - p, max)` records, drop
the first `oldest(c2) - p` of them).

### 4. Stamp-first reads (minor >= {v11}) and marked stamps (minor >= {v12})

From minor {L.STAMP_LAST_MINOR} the writer stores each record's stamp after its body, so a
reader may take record `p` as soon as its slot's stamp (acquire load) equals
`p & 0xffffffff`, before the cursor moves, but only once `p >= capacity` (a never-written
slot's zero stamp would match `p = 0`). Because the writer advances the cursor only after a
whole batch of up to `ring_window` records, a stamp-first reader may run up to
`ring_window` records ahead of `ring_cursor`; count what is available as
`max(0, cursor - position)`. It still checks `c2` after the copy (step 3.4), which catches
an overwrite during the copy and a stamp that matches only modulo 2^32. A reader that is
lapped never sees its stamp (the slot holds a later record): while waiting it must also
read the cursor now and then (tradingd's C reader: every 64 spins) and fall back to section 3, which
counts what it lost.

From minor {L.STAMP_MARKED_MINOR} the writer first stores the stamp's complement
(`~seq_lo`, which no record of that slot carries), then the body, then the stamp: the
stamp is a per-record seqlock. Copy the record between two reads of the stamp; keep it if
both equal `p & 0xffffffff` and `publish_ns`, read again after the second, is unchanged.
The `c2` check may then be skipped if record `p - 1` was taken intact and this record's
`publish_ns` is at most {L.STAMP_TRUST_NS} ns ({L.STAMP_TRUST_NS // 1_000_000} ms) after
that one's (2^32 records in between would take 43 billion records a second); in every
other case (the first record, a longer gap, a moved position) check `c2`. Minor 0: stamps
carry no guarantee, read by the cursor only.

What the fingerprint covers: a SHA-256 of the major version, each struct's name and size,
and each field's name, type and offset (not the meanings, not the minor version). A new
minor never moves a byte; it only adds guarantees.

### 5. Blocking readers: the `wake_seq` futex

The low 32 bits of {_off("wake_seq")} are a shared futex word (`FUTEX_WAIT` without
`FUTEX_PRIVATE_FLAG`; it works on a read-only mapping, and the kernel keys it on the file
and offset, so processes mapping it at different addresses share it). A writer that wakes
readers increments `wake_seq` (release store) after each publish's cursor store and after
every state change, then calls `FUTEX_WAKE` for all waiters. A reader: `w` = `wake_seq`;
if the cursor is beyond its position (or the state is no longer {running}), read;
otherwise `FUTEX_WAIT(&wake_seq, w & 0xffffffff, timeout)`. Reading `w` before checking
the cursor means a wake-up between the check and the wait is not lost (the word differs,
the wait returns at once). Always pass a timeout: a writer configured not to wake
readers never bumps it, and a producer that dies wakes nobody.

### 6. Memory ordering (C and other languages)

The writer stores with release semantics the words readers poll (`ring_cursor`, each
record's `seq_lo`, each slot's `lock`, `state`, `wake_seq`), after a release fence that
follows the odd lock or the stamp's mark. A reader loads those words with acquire
semantics, copies payloads with relaxed loads, and issues an acquire fence before the
second read of a lock, stamp or cursor (`atomic_thread_fence(memory_order_acquire)` in
C11). On x86-64 these compile to plain moves plus compiler barriers, but only because TSO
keeps stores in order with stores and loads with loads: it does let a load pass an earlier
store to another address, so do not reason "TSO keeps everything in program order". This
protocol never needs store-then-load order (readers never write). On weakly ordered CPUs
(ARM, POWER) the acquire/release operations are real barriers and are required;
tradingd's pure-Python path refuses those CPUs (`TRADINGD_ALLOW_WEAK_MEMORY=1` overrides).
"""


def main() -> None:
    print(generate(), end="")


if __name__ == "__main__":
    main()
