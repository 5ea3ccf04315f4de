"""The journal: every input exec acts on, appended to a file before it takes effect.

Inputs are the engine's (:mod:`tradingd.exec.engine`): an order ring record exactly as read
(garbage included) with its arrival time and reference price, a market bar that was applied,
the market's symbol table, a session end, a client attaching with a new order ring, a client
disconnected. Exec writes the inputs of one polling round in one ``write`` and only then
applies them; replaying the file through a fresh engine (:func:`replay`) yields the same
reports bit for bit, which is how a restarted exec (after ``kill -9``) recovers its open
orders, report numbers and ring positions.

File format: ``TDJOURN1`` then frames ``<u32 length><u32 crc32(payload)><payload>``; the
payload's first byte is the entry type. A frame cut short or failing its CRC (exec killed
mid-write) ends the journal: it is truncated there on recovery, logged with its offset.
Zero bytes where the next frame header would be, up to the end of the file, are space exec
had reserved and not used yet: a clean end (no frame has length 0: a payload has at least
its type byte). The frames are those of the first journal version: older journals read as
before; only the reserved zero tail is new (since exec appends through a mapping).

Appending is a copy into a shared mapping of the file (``MAP_SHARED``), not a ``write``
system call per round: the file grows by ``GROW_BYTES`` at a time (``posix_fallocate``: a
full disk is an error when it grows, not a SIGBUS at a later copy); the unused zero tail
is cut off again at :meth:`Journal.close`, and at the next start after a ``kill -9``.
What is copied into the mapping is in the page cache at once, exactly where a ``write``
would have put it: it survives the process being killed, and any reader of the
file sees it. With ``exec.journal_fsync`` the round's bytes are also ``msync``-ed (survives
a machine crash, costs a disk flush per round).
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from tradingd import constants as C
from tradingd.errors import TradingdError
from tradingd.exec.engine import Engine, Out, RiskLimits
from tradingd.exec.protocol import Bar, OrderFields
from tradingd.segment.channel import KIND_ORDERS, body_format

log = logging.getLogger(__name__)

FILE_MAGIC = b"TDJOURN1"
_FRAME = struct.Struct("<II")
_ORDER_BODY = body_format(KIND_ORDERS)
ORDER_BODY_SIZE = _ORDER_BODY.size
_O = struct.Struct(f"<QQQd{ORDER_BODY_SIZE}s")
_B = struct.Struct("<QqQdddddQQ")
_S = struct.Struct("<Q")
_E = struct.Struct("<QI")
_A = struct.Struct("<QQ")
_D = struct.Struct("<QI")
_C = struct.Struct("<QQdd")
_new = tuple.__new__
#: how much the journal file grows at a time (reserved zero space, cut off at close)
GROW_BYTES = 4 << 20


class JournalError(TradingdError):
    """The journal file cannot be used: not a tradingd journal, or unreadable/unwritable.

    Check ``exec.journal`` (the path) and its permissions; a file that is not a journal is
    never overwritten: move it away. Exit 78 (configuration) since the path is config.
    """

    exit_code = C.EXIT_CONFIG


class OrderIn(NamedTuple):
    client: str
    generation: int  # the order ring's generation
    ring_seq: int
    arrival_ns: int
    ref_price: float
    raw: bytes  # the record's fields after its stamp, as read (ORDER_BODY_SIZE bytes)


class BarIn(NamedTuple):
    bar: Bar
    recv_ns: int
    market_generation: int


class SymbolsIn(NamedTuple):
    market_generation: int
    names: tuple[str, ...]


class SessionEndIn(NamedTuple):
    ns: int
    reason: int  # 1 replay looped, 2 replay finished, 3 time went backwards, 4 new market


class AttachIn(NamedTuple):
    client: str
    generation: int
    ns: int


class DisconnectIn(NamedTuple):
    client: str
    ns: int
    reason: int


class ConfigIn(NamedTuple):
    """The engine's rules from here on (written at every start: replay needs no config)."""

    max_order_qty: int
    max_open_orders: int
    max_notional: float
    participation: float


Entry = OrderIn | BarIn | SymbolsIn | SessionEndIn | AttachIn | DisconnectIn | ConfigIn


def _name(s: str) -> bytes:
    b = s.encode("ascii")
    return bytes([len(b)]) + b


def encode(e: Entry) -> bytes:
    """One framed entry."""
    if isinstance(e, OrderIn):
        p = b"O" + _name(e.client) + _O.pack(e.generation, e.ring_seq, e.arrival_ns,
                                             e.ref_price, e.raw)
    elif isinstance(e, BarIn):
        b = e.bar
        p = b"B" + _B.pack(b.seq, b.event_ns, b.publish_ns, b.open, b.high, b.low, b.close,
                           b.volume, e.recv_ns, e.market_generation) + b.symbol.encode("ascii")
    elif isinstance(e, SymbolsIn):
        p = b"S" + _S.pack(e.market_generation) + "\n".join(e.names).encode("ascii")
    elif isinstance(e, SessionEndIn):
        p = b"E" + _E.pack(e.ns, e.reason)
    elif isinstance(e, AttachIn):
        p = b"A" + _name(e.client) + _A.pack(e.generation, e.ns)
    elif isinstance(e, ConfigIn):
        p = b"C" + _C.pack(*e)
    else:
        p = b"D" + _name(e.client) + _D.pack(e.ns, e.reason)
    return _FRAME.pack(len(p), zlib.crc32(p)) + p


def decode(p: bytes) -> Entry:
    """An entry from its payload (raises ValueError on an unknown type)."""
    t = p[:1]
    if t in (b"O", b"A", b"D"):
        n = p[1]
        client = p[2:2 + n].decode("ascii")
        rest = p[2 + n:]
        if t == b"O":
            g, s, a, ref, raw = _O.unpack(rest)
            return OrderIn(client, g, s, a, ref, raw)
        if t == b"A":
            return AttachIn(client, *_A.unpack(rest))
        return DisconnectIn(client, *_D.unpack(rest))
    if t == b"B":
        seq, ev, pub, o, h, lo, c, v, recv, gen = _B.unpack_from(p, 1)
        sym = p[1 + _B.size:].decode("ascii")
        return BarIn(Bar(seq, sym, ev, pub, o, h, lo, c, v), recv, gen)
    if t == b"S":
        (gen,) = _S.unpack_from(p, 1)
        text = p[1 + _S.size:].decode("ascii")
        return SymbolsIn(gen, tuple(text.split("\n")) if text else ())
    if t == b"E":
        return SessionEndIn(*_E.unpack_from(p, 1))
    if t == b"C":
        return ConfigIn(*_C.unpack_from(p, 1))
    raise ValueError(f"unknown journal entry type {t!r}")


def apply(engine: Engine, e: Entry) -> Out:
    """Feed one entry to the engine: the ONE path both live processing and replay take."""
    if isinstance(e, OrderIn):
        return engine.on_order(e.client, _new(OrderFields, _ORDER_BODY.unpack(e.raw)),
                               e.arrival_ns, e.ref_price)
    if isinstance(e, BarIn):
        return engine.on_bar(e.bar, e.recv_ns)
    if isinstance(e, SymbolsIn):
        engine.on_symbols(e.names)
        return []
    if isinstance(e, SessionEndIn):
        return engine.on_session_end(e.ns)
    if isinstance(e, AttachIn):
        return engine.on_attach(e.client, e.ns)
    if isinstance(e, ConfigIn):
        engine.configure(RiskLimits(e.max_order_qty, e.max_open_orders, e.max_notional),
                         e.participation)
        return []
    return engine.on_disconnect(e.client, e.ns)


@dataclass
class ReadResult:
    entries: list[Entry]
    valid_end: int  # offset after the last whole frame
    size: int
    problem: str | None  # why reading stopped before the end


def read_entries(path: str) -> ReadResult:
    """Every whole entry of the journal at ``path`` (a torn tail is reported, not raised)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return ReadResult([], 0, 0, None)
    except OSError as exc:
        raise JournalError(f"journal {path}: cannot read: {exc.strerror or exc}") from None
    if not data:
        return ReadResult([], 0, 0, None)
    if not data.startswith(FILE_MAGIC):
        raise JournalError(f"journal {path}: does not start with {FILE_MAGIC!r}: not a "
                           f"tradingd-exec journal; refusing to append to it (move it away)")
    pos = len(FILE_MAGIC)
    entries: list[Entry] = []
    problem = None
    while pos < len(data):
        if pos + _FRAME.size > len(data):
            problem = f"torn frame header at offset {pos}"
            break
        n, crc = _FRAME.unpack_from(data, pos)
        if n == 0 and crc == 0:  # reserved space: a clean end if nothing but zeros follows
            if data.count(0, pos) != len(data) - pos:
                problem = f"empty frame at offset {pos} followed by data"
            break
        payload = data[pos + _FRAME.size:pos + _FRAME.size + n]
        if len(payload) < n:
            problem = f"frame at offset {pos} cut short ({len(payload)} of {n} bytes)"
            break
        if zlib.crc32(payload) != crc:
            problem = f"frame at offset {pos} fails its CRC"
            break
        try:
            entries.append(decode(payload))
        except (ValueError, struct.error, UnicodeDecodeError) as exc:
            problem = f"frame at offset {pos} does not decode: {exc}"
            break
        pos += _FRAME.size + n
    return ReadResult(entries, pos, len(data), problem)


class Journal:
    """The open journal: recovered entries, then appends (copies into a shared mapping)."""

    def __init__(self, path: str, *, fsync: bool = False) -> None:
        self.path = path
        self._fsync = fsync
        result = read_entries(path)
        self.recovered = result.entries
        if result.problem is not None:
            log.warning("journal %s: %s; truncating the torn tail (%d bytes) at offset %d",
                        path, result.problem, result.size - result.valid_end,
                        result.valid_end)
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise JournalError(f"journal {path}: cannot open for writing: "
                               f"{exc.strerror or exc}") from None
        if result.valid_end == 0:
            os.ftruncate(self._fd, 0)
            os.write(self._fd, FILE_MAGIC)
            self._end = len(FILE_MAGIC)
        else:
            os.ftruncate(self._fd, result.valid_end)  # a torn tail, reserved zeros: gone
            self._end = result.valid_end
        self._mm: mmap.mmap | None = None
        self._size = 0  # mapped: none until the first append (the file stays as recovered)
        self.bytes_written = 0
        self.entries_written = 0

    def _map(self, size: int) -> None:
        """Grow the file to ``size`` bytes (zeros: reserved) and map all of it.

        ``posix_fallocate``, not a sparse ``ftruncate``: the blocks are reserved here, so a
        full disk is an error now (JournalError), not a SIGBUS at a later copy.
        """
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        try:
            os.posix_fallocate(self._fd, self._end, size - self._end)
            self._mm = mmap.mmap(self._fd, size, mmap.MAP_SHARED,
                                 mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as exc:
            raise JournalError(f"journal {self.path}: cannot grow it to {size} bytes: "
                               f"{exc.strerror or exc}") from None
        self._size = size

    def append(self, frames: list[bytes], entries: int | None = None) -> None:
        """Append encoded entries (one copy into the mapping; then msync if configured).

        A frame may hold several entries back to back (a batch of orders framed at once,
        :func:`tradingd.exec.execfast.encode_orders`): ``entries`` says how many in all.
        """
        if not frames:
            return
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        n = len(data)
        end = self._end
        if end + n > self._size:
            self._map(end + n + GROW_BYTES)
        mm = self._mm
        assert mm is not None
        mm[end:end + n] = data
        self._end = end + n
        if self._fsync:
            start = end - end % mmap.PAGESIZE
            mm.flush(start, end + n - start)
        self.bytes_written += n
        self.entries_written += len(frames) if entries is None else entries

    def tail(self) -> tuple[mmap.mmap, int] | None:
        """``(mapping, end)``: where the next frames go, for a C caller that copies them
        there itself (:func:`tradingd.exec.execfast.take_accept`) and then calls
        :meth:`advance`; None when appends must go through :meth:`append` (not mapped
        yet, or fsync mode: its msync must precede the frames' effect)."""
        if self._mm is None or self._fsync:
            return None
        return self._mm, self._end

    def advance(self, n: int, entries: int) -> None:
        """``n`` bytes of ``entries`` frames were copied at the :meth:`tail` end."""
        self._end += n
        self.bytes_written += n
        self.entries_written += entries

    def close(self) -> None:
        """Unmap and cut the reserved zero tail off: the file ends with its last frame."""
        if self._fd >= 0:
            if self._mm is not None:
                self._mm.close()
                self._mm = None
            os.ftruncate(self._fd, self._end)
            os.close(self._fd)
            self._fd = -1


def replay(entries: list[Entry], engine: Engine | None = None) -> Iterator[tuple[Entry, Out]]:
    """Each entry with the reports it produced, applied to ``engine`` (a fresh one if None)."""
    eng = engine if engine is not None else Engine()
    for e in entries:
        yield e, apply(eng, e)


__all__ = ["FILE_MAGIC", "AttachIn", "BarIn", "ConfigIn", "DisconnectIn", "Entry", "Journal",
           "JournalError", "OrderIn", "SessionEndIn", "SymbolsIn", "apply", "decode",
           "encode", "read_entries", "replay"]
