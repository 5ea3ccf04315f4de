"""Where the inspector's bytes come from, and what is known about them before trusting them.

A segment is inspected either by name (``/dev/shm/NAME``) or as a copied file (post-mortem).
Either way the first step is a *probe* that never maps anything: it opens the file
read-only (no symlinks), ``fstat``\\s it and reads the header bytes that exist with
``pread``. The header fields that fit in the file are decoded, and the header is checked
with the reader's own :func:`tradingd.segment.reader.validate_header`. A problem (missing,
initialising, truncated, corrupt, foreign, another layout) is recorded, not raised, so
every subcommand can still show what there is.

Only a segment that passes the probe is attached with :class:`SegmentReader` (a shared
read-only mapping, seqlock-consistent reads). A damaged one is read through
:class:`RawView`, which decodes only bytes that exist in the file (``pread``, never a
mapping past the end: a mapping longer than the file dies of SIGBUS when touched).
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import time
from dataclasses import dataclass, field

import numpy as np

from tradingd.errors import (
    SegmentCorrupt,
    SegmentError,
    SegmentForeign,
    SegmentNotFound,
    SegmentNotReady,
    SegmentPermission,
    SegmentUntrusted,
    SegmentVersionMismatch,
)
from tradingd.inspector.format import Value, decode_struct
from tradingd.segment import layout as L
from tradingd.segment import shm
from tradingd.segment.model import LatestValue, SymbolInfo
from tradingd.segment.reader import SegmentReader, _claim, validate_header

#: Problem kinds, as reported in ``--json`` output (``problem.kind``).
KIND_MISSING = "missing"
KIND_PERMISSION = "permission"
KIND_INITIALISING = "initialising"
KIND_TRUNCATED = "truncated"
KIND_CORRUPT = "corrupt"
KIND_FOREIGN = "foreign"
KIND_VERSION = "version_mismatch"
KIND_UNTRUSTED = "untrusted"  # owned by another account than segment.owner

_MASK32 = 0xFFFFFFFF
#: Longest the inspector waits, in all, for latest slots whose seqlock stays odd.
STUCK_BUDGET_S = 2.0


@dataclass(frozen=True)
class Source:
    """A segment by name (``name`` set, ``where`` = /dev/shm/NAME) or a file by path."""

    where: str
    name: str | None = None
    #: uid the file must belong to (segment.owner; root always passes); None: no check
    owner: int | None = None

    @classmethod
    def segment(cls, name: str, owner: int | None = shm.OWNER_SELF) -> Source:
        shm.validate_name(name)
        return cls(shm.segment_path(name), name,
                   os.geteuid() if owner == shm.OWNER_SELF else owner)

    @classmethod
    def file(cls, path: str) -> Source:
        return cls(path, None)


@dataclass(frozen=True)
class FileInfo:
    """What ``fstat`` said about the file: size, permissions, owner, identity, age."""

    size: int
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    dev: int
    ino: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileInfo:
        return cls(st.st_size, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                   st.st_mtime_ns, st.st_dev, st.st_ino)

    @property
    def owner(self) -> str:
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return str(self.uid)

    @property
    def group(self) -> str:
        try:
            return grp.getgrgid(self.gid).gr_name
        except KeyError:
            return str(self.gid)

    def as_dict(self) -> dict[str, object]:
        return {"size": self.size, "mode": f"{self.mode:04o}", "owner": self.owner,
                "group": self.group, "uid": self.uid, "gid": self.gid,
                "mtime_ns": self.mtime_ns, "inode": self.ino}


class SegmentFile:
    """A segment file opened read-only for ``pread`` (nothing is mapped)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        hint = " (is the producer running?)" if source.name else ""
        # O_NONBLOCK|O_NOFOLLOW, then fstat + S_ISREG: a FIFO, symlink or directory is named
        self.fd, st = shm.open_segment(source.where, hint=hint)
        self.info = FileInfo.of(st)

    @property
    def size(self) -> int:
        """The size now (re-read: a producer may be creating or truncating it)."""
        return os.fstat(self.fd).st_size

    def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``offset``; fewer if the file ends first."""
        chunks = []
        while length > 0:
            chunk = os.pread(self.fd, min(length, 1 << 24), offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
            length -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> SegmentFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _mode_text(path: str) -> str:
    try:
        info = FileInfo.of(os.stat(path, follow_symlinks=False))
    except OSError:
        return "mode unknown"
    return f"mode {info.mode:04o}, owner {info.owner}, group {info.group}"


@dataclass(frozen=True)
class Problem:
    """What is wrong with a segment: a kind (for scripts) and the error (for people)."""

    kind: str
    error: SegmentError

    @property
    def message(self) -> str:
        return str(self.error)

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "message": self.message,
                "error": type(self.error).__name__}


def classify(exc: SegmentError, file_size: int | None = None,
             header: dict[str, Value] | None = None) -> str:
    """The problem kind of a segment error."""
    if isinstance(exc, SegmentNotFound):
        return KIND_MISSING
    if isinstance(exc, SegmentUntrusted):
        return KIND_UNTRUSTED
    if isinstance(exc, SegmentPermission):
        return KIND_PERMISSION
    if isinstance(exc, SegmentNotReady):
        return KIND_INITIALISING
    if isinstance(exc, SegmentForeign):
        return KIND_FOREIGN
    if isinstance(exc, SegmentVersionMismatch):
        return KIND_VERSION
    if isinstance(exc, SegmentCorrupt) and file_size is not None:
        total = (header or {}).get("total_size")
        if file_size < L.HEADER.size or (isinstance(total, int) and total > file_size):
            return KIND_TRUNCATED
    return KIND_CORRUPT


@dataclass
class Probe:
    """The header as far as the file has it, and whether it can be trusted."""

    source: Source
    info: FileInfo | None
    header: dict[str, Value] = field(default_factory=dict)
    geometry: L.Geometry | None = None
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def identity_ok(self) -> bool:
        """Magic and layout match: the header's field offsets can be believed."""
        h = self.header
        return (h.get("magic") == L.MAGIC and h.get("layout_major") == L.LAYOUT_MAJOR
                and h.get("layout_fingerprint") == L.LAYOUT_FINGERPRINT)


def probe_file(f: SegmentFile) -> Probe:
    """Read and judge the header of an open segment file (see the module docstring)."""
    size = f.size
    raw = f.read(0, L.HEADER.size)
    header = decode_struct(L.HEADER, raw)
    p = Probe(f.source, f.info, header)
    padded = raw + bytes(L.HEADER.size - len(raw))
    try:
        shm.check_owner(f.source.where, os.fstat(f.fd), f.source.owner, claim=_claim(raw))
        v = validate_header(f.source.where, padded, size, require_live=False)
    except SegmentError as exc:
        p.problem = Problem(classify(exc, size, header), exc)
        p.geometry = _best_effort_geometry(p)
        return p
    p.geometry = v.geometry
    return p


def probe(source: Source) -> Probe:
    """Open ``source``, probe it and close it; a missing file is a problem, not an error."""
    try:
        f = SegmentFile(source)
    except SegmentError as exc:
        return Probe(source, None, problem=Problem(classify(exc), exc))
    with f:
        return probe_file(f)


def _best_effort_geometry(p: Probe) -> L.Geometry | None:
    """The region table of a damaged header, if its own fields agree with each other."""
    if not p.identity_ok:
        return None
    h = p.header
    try:
        geo = L.Geometry(int(h["symtab_capacity"]), int(h["ring_capacity"]),
                         int(h["ring_window"]))
    except (KeyError, ValueError, TypeError):
        return None
    for name in ("symtab_offset", "latest_offset", "ring_offset", "total_size"):
        if h.get(name) != getattr(geo, name):
            return None
    return geo


# ---------------------------------------------------------------------------- views


@dataclass
class RecordBatch:
    """The most recent ring records read: sequence numbers and records, plus notes."""

    seqs: list[int]
    records: np.ndarray  # RECORD_DTYPE (a copy)
    lost: int = 0
    notes: list[str] = field(default_factory=list)


class LiveView:
    """A sound segment through :class:`SegmentReader` (seqlock-consistent reads)."""

    def __init__(self, reader: SegmentReader) -> None:
        self.reader = reader
        self.geometry = reader.geometry
        self.notes: list[str] = []

    def header(self) -> dict[str, int]:
        return self.reader.header()

    def symbols(self) -> list[SymbolInfo]:
        return self.reader.symbols()

    def latest_all(self) -> list[LatestValue | None]:
        """Every slot, each consistent; stuck slots noted. Bounded by STUCK_BUDGET_S in all.

        A slot's lock stays odd while a frozen or dead writer holds it. Each waits at most
        what is left of the overall budget (1 s at most), then every further one gets a
        single short attempt: 4,096 stuck slots cost about STUCK_BUDGET_S, not 4,096 s.
        """
        out: list[LatestValue | None] = []
        count = len(self.reader.symbols())
        deadline = time.monotonic() + STUCK_BUDGET_S
        for i in range(count):
            budget = min(1.0, max(0.0, deadline - time.monotonic()))
            try:
                t = self.reader.latest_within(i, budget)
                out.append(None if t is None else LatestValue._make(t))
            except SegmentError:
                self.notes.append(f"latest slot {i}: the writer is stuck mid-update (seqlock "
                                  f"odd at offset {self._slot_offset(i)})")
                out.append(None)
        return out

    def _slot_offset(self, i: int) -> int:
        return self.geometry.latest_offset + i * L.LATEST.size

    def last_records(self, n: int) -> RecordBatch:
        """The ``n`` most recent intact records (fewer if the ring holds fewer)."""
        sub = self.reader.subscribe("oldest")
        cursor = self.reader.cursor
        sub.position = max(sub.position, cursor - n)
        got = sub.poll_batch(n).copy()
        seqs = seqs_from_stamps(got, sub.position - 1)
        batch = RecordBatch(seqs, got, lost=sub.lost)
        if sub.rejected:
            batch.notes.append(f"{sub.rejected} records failed the sequence stamp check")
        return batch

    def close(self) -> None:
        self.reader.close()


def seqs_from_stamps(records: np.ndarray, last_seq: int) -> list[int]:
    """Full sequence numbers from the 32-bit stamps, given the newest one's full value."""
    ref_lo = last_seq & _MASK32
    return [last_seq - ((ref_lo - int(lo)) & _MASK32) for lo in records["seq_lo"]]


class RawView:
    """A segment read with ``pread`` and decoded by the layout, as far as the bytes go.

    For damaged segments and post-mortem copies whose header fails validation: nothing is
    mapped, every region is bounds-checked against the real file size, and whatever could
    not be read is described in :attr:`notes` (with offsets).
    """

    def __init__(self, f: SegmentFile, probe_: Probe) -> None:
        self.file = f
        self.probe = probe_
        self.geometry = probe_.geometry
        self.notes: list[str] = []

    def _count(self) -> int:
        geo = self.geometry
        if geo is None:
            return 0
        count = self.probe.header.get("symbol_count", 0)
        return min(int(count), geo.symtab_capacity)

    def _entries(self, offset: int, size: int, count: int, what: str) -> list[bytes]:
        data = self.file.read(offset, size * count)
        have = len(data) // size
        if have < count:
            self.notes.append(f"{what} {have}..{count - 1} lie beyond the end of the file "
                              f"(offset {offset + have * size}, file size {self.file.size})")
        return [data[i * size:(i + 1) * size] for i in range(have)]

    def symbols(self) -> list[SymbolInfo]:
        geo = self.geometry
        if geo is None:
            return []
        out = []
        for raw in self._entries(geo.symtab_offset, L.SYMBOL.size, self._count(),
                                 "symbol table entries"):
            e = decode_struct(L.SYMBOL, raw)
            out.append(SymbolInfo(
                name=str(e["name"]), currency=str(e["currency"]),
                asset_class=SymbolInfo.asset_class_name(int(e["asset_class"])),
                price_decimals=int(e["price_decimals"]),
                bar_interval_ns=int(e["bar_interval_ns"]),
                record_count=int(e["record_count"])))
        return out

    def latest_all(self) -> list[LatestValue | None]:
        geo = self.geometry
        if geo is None:
            return []
        out: list[LatestValue | None] = []
        for i, raw in enumerate(self._entries(geo.latest_offset, L.LATEST.size, self._count(),
                                              "latest slots")):
            e = decode_struct(L.LATEST, raw)
            lock = int(e["lock"])
            if lock == 0:
                out.append(None)
                continue
            if lock & 1:
                self.notes.append(f"latest slot {i}: seqlock {lock} is odd (written while "
                                  f"copied, or the writer died mid-update) at offset "
                                  f"{geo.latest_offset + i * L.LATEST.size}")
                out.append(None)
                continue
            out.append(LatestValue((lock - 2) >> 1, float(e["price"]), float(e["volume"]),
                                   int(e["event_ns"]), int(e["publish_ns"]), int(e["valid"])))
        return out

    def last_records(self, n: int) -> RecordBatch:
        geo = self.geometry
        if geo is None:
            return RecordBatch([], np.empty(0, L.RECORD_DTYPE))
        cursor = int(self.probe.header.get("ring_cursor", 0))
        first = max(0, cursor - min(n, geo.ring_capacity))
        seqs: list[int] = []
        rows: list[bytes] = []
        bad = 0
        beyond: list[tuple[int, int]] = []  # (seq, slot offset) of records cut off
        for seq in range(first, cursor):
            off = geo.ring_offset + (seq & (geo.ring_capacity - 1)) * L.RECORD.size
            raw = self.file.read(off, L.RECORD.size)
            if len(raw) < L.RECORD.size:
                beyond.append((seq, off))
                continue
            rec = np.frombuffer(raw, L.RECORD_DTYPE, 1)
            if int(rec["seq_lo"][0]) != seq & _MASK32:
                bad += 1
                continue
            seqs.append(seq)
            rows.append(raw)
        records = (np.frombuffer(b"".join(rows), L.RECORD_DTYPE).copy() if rows
                   else np.empty(0, L.RECORD_DTYPE))
        batch = RecordBatch(seqs, records)
        if beyond:
            offs = [o for _, o in beyond]
            batch.notes.append(f"{len(beyond)} of the newest records (seq {beyond[0][0]}.."
                               f"{beyond[-1][0]}) lie beyond the end of the file: their slots "
                               f"are at offsets {min(offs)}..{max(offs) + L.RECORD.size - 1}, "
                               f"the file has {self.file.size} bytes")
        if bad:
            batch.notes.append(f"{bad} ring slots hold a record whose sequence stamp does not "
                               f"match (overwritten or corrupt): skipped")
        return batch

    def close(self) -> None:
        self.file.close()


View = LiveView | RawView


@dataclass
class Opened:
    """A probed source and the view to read it through (``view`` None if nothing to read)."""

    probe: Probe
    view: View | None

    @property
    def problem(self) -> Problem | None:
        return self.probe.problem

    def close(self) -> None:
        if self.view is not None:
            self.view.close()
            self.view = None

    def __enter__(self) -> Opened:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_source(source: Source) -> Opened:
    """Probe ``source`` and open the right view: the reader if sound, else raw bytes."""
    try:
        f = SegmentFile(source)
    except SegmentError as exc:
        return Opened(Probe(source, None, problem=Problem(classify(exc), exc)), None)
    try:
        p = probe_file(f)
        if p.ok:
            try:
                reader = (SegmentReader.attach(source.name, require_live=False,
                                               owner=source.owner)
                          if source.name is not None
                          else SegmentReader.open_file(source.where, require_live=False))
            except SegmentError as exc:  # changed between the probe and the attach
                p.problem = Problem(classify(exc, f.size, p.header), exc)
                return Opened(p, RawView(f, p))
            f.close()
            # The reader's header is the one it validated (a new producer may have replaced
            # the file between the probe and the attach).
            p.header = dict(reader.header())
            p.geometry = reader.geometry
            return Opened(p, LiveView(reader))
        return Opened(p, RawView(f, p))
    except BaseException:
        f.close()
        raise
