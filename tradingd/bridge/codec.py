"""The bridge's wire format: ring records batched into NATS messages, and upstream state.

Two message kinds, both starting with a version byte and a kind byte (docs/multi-host.md
has the byte tables, generated from the structs below):

* **records** (kind 1), on subject ``<prefix>.<feed>.records``: a 64-byte batch header
  (origin generation, ring sequence number of the first record, record count, the origin's
  ring cursor, the origin clock pair ``mono_ns``/``wall_ns`` taken when the message was
  built, and how many records the publisher lost to lapping just before this batch),
  then ``count`` records of 60 bytes: the 64-byte ring record without its stamp (symbol id,
  event and publish times, OHLC, volume; little-endian), so encoding and decoding are one
  strided byte copy each, not one copy per field.
  The records of one message are consecutive in the origin ring: record ``i`` has
  sequence number ``first_seq + i``, so no per-record sequence is sent.
* **state** (kind 2), on subject ``<prefix>.<feed>.state``: the two bytes, then UTF-8 JSON
  (the origin's state ``live``/``finished``/``down``, generation, cursor, host, segment,
  symbol table, ring geometry, clock pair). Sent on every change and every
  ``state_interval`` (it is the publish bridge's heartbeat too).

Decoding never trusts the bytes: a wrong version, kind, length or count raises
:class:`DecodeError` (the mirror counts it, logs it once and skips the message).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from tradingd.errors import TradingdError
from tradingd.segment import layout as L
from tradingd.segment.model import SymbolInfo

VERSION = 1
KIND_RECORDS = 1
KIND_STATE = 2

#: Batch header: version, kind, flags, count, then seven u64/i64 words (64 bytes in all).
BATCH_HEADER = struct.Struct("<BBHI7Q")
BATCH_HEADER_FIELDS = (
    ("version", "u8", "wire format version (1)"),
    ("kind", "u8", "1 = records"),
    ("flags", "u16", "0 (reserved)"),
    ("count", "u32", "records in this message"),
    ("generation", "u64", "origin segment generation"),
    ("first_seq", "u64", "origin ring sequence number of the first record"),
    ("origin_cursor", "u64", "origin ring cursor when the message was built"),
    ("origin_mono_ns", "u64", "origin CLOCK_MONOTONIC when the message was built"),
    ("origin_wall_ns", "u64", "origin wall clock (ns since epoch) at the same instant"),
    ("lapped_before", "u64", "records lost to lapping at the origin just before first_seq"),
    ("reserved", "u64", "0"),
)
#: One record on the wire: the ring record's bytes 4..63 (all but the stamp ``seq_lo``).
_STAMP = L.RECORD["seq_lo"].size
WIRE_RECORD = np.dtype({
    "names": [p.name for p in L.RECORD.placed[1:]],
    "formats": [p.field.ctype.numpy for p in L.RECORD.placed[1:]],
    "offsets": [p.offset - _STAMP for p in L.RECORD.placed[1:]],
    "itemsize": L.RECORD.size - _STAMP,
})
WIRE_RECORD_FIELDS = (
    ("symbol_id", "u32", "index into the symbol table (of the state message)"),
    ("event_ns", "i64", "event time (ns since epoch, UTC)"),
    ("publish_ns", "u64", "origin CLOCK_MONOTONIC when the origin producer published it"),
    ("open", "f64", "open price"), ("high", "f64", "high price"), ("low", "f64", "low price"),
    ("close", "f64", "close price"), ("volume", "f64", "volume"),
)
MAX_SYMBOLS = 65535
#: Most records one message may declare (a 16 MiB payload: far above any batch we build).
MAX_COUNT = (16 << 20) // WIRE_RECORD.itemsize

UPSTREAM_STATES = ("live", "finished", "down")


class DecodeError(TradingdError):
    """A NATS message on the bridge's subjects is not a message of this wire format.

    The mirror counts it (``tradingd_bridge_decode_errors_total``), logs the first one
    per reason and skips it: it is never applied. A version this mirror does not know
    means the publish bridge is newer: upgrade the mirror.
    """


@dataclass(frozen=True)
class Batch:
    """A decoded records message (``records`` is a ``WIRE_RECORD`` array)."""

    generation: int
    first_seq: int
    origin_cursor: int
    origin_mono_ns: int
    origin_wall_ns: int
    lapped_before: int
    records: np.ndarray

    @property
    def count(self) -> int:
        return len(self.records)

    @property
    def end_seq(self) -> int:
        """Sequence number after the last record."""
        return self.first_seq + len(self.records)


@dataclass(frozen=True)
class UpstreamState:
    """A decoded state message: what the publish bridge knows of its origin segment."""

    state: str  # live | finished | down
    generation: int  # 0: no segment attached yet
    cursor: int
    host: str
    segment: str
    symbols: tuple[SymbolInfo, ...]
    symbol_capacity: int
    ring_capacity: int
    mono_ns: int
    wall_ns: int
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "generation": self.generation, "cursor": self.cursor,
                "host": self.host, "segment": self.segment,
                "symbols": [s._asdict() for s in self.symbols],
                "symbol_capacity": self.symbol_capacity, "ring_capacity": self.ring_capacity,
                "mono_ns": self.mono_ns, "wall_ns": self.wall_ns, "reason": self.reason}


def encode_records(records: np.ndarray, *, generation: int, first_seq: int,
                   origin_cursor: int, mono_ns: int, wall_ns: int,
                   lapped_before: int = 0) -> bytes:
    """A records message for ``records`` (``RECORD_DTYPE`` ring records, consecutive)."""
    n = len(records)
    body = np.ascontiguousarray(records).view(np.uint8).reshape(n, L.RECORD.size)[:, _STAMP:]
    head = BATCH_HEADER.pack(VERSION, KIND_RECORDS, 0, n, generation, first_seq,
                             origin_cursor, mono_ns, wall_ns, lapped_before, 0)
    return head + body.tobytes()  # one strided copy


def encode_state(state: UpstreamState) -> bytes:
    """A state message."""
    return bytes((VERSION, KIND_STATE)) + json.dumps(state.to_json(),
                                                     separators=(",", ":")).encode()


def kind_of(payload: bytes) -> int:
    """The message kind (KIND_RECORDS or KIND_STATE); DecodeError for anything else."""
    if len(payload) < 2:
        raise DecodeError(f"message of {len(payload)} bytes is shorter than the 2-byte "
                          f"version/kind prefix")
    if payload[0] != VERSION:
        raise DecodeError(f"wire format version {payload[0]} at offset 0 (this mirror "
                          f"reads version {VERSION}: upgrade it if the publisher is newer)")
    if payload[1] not in (KIND_RECORDS, KIND_STATE):
        raise DecodeError(f"unknown message kind {payload[1]} at offset 1")
    return payload[1]


def decode_records(payload: bytes) -> Batch:
    """Decode a records message; DecodeError if its bytes do not add up."""
    if kind_of(payload) != KIND_RECORDS:
        raise DecodeError("not a records message (kind 2, state, at offset 1)")
    if len(payload) < BATCH_HEADER.size:
        raise DecodeError(f"records message of {len(payload)} bytes is shorter than the "
                          f"{BATCH_HEADER.size}-byte batch header")
    (_, _, _, count, generation, first_seq, cursor, mono, wall, lapped,
     _) = BATCH_HEADER.unpack_from(payload)
    body = len(payload) - BATCH_HEADER.size
    if count > MAX_COUNT or body != count * WIRE_RECORD.itemsize:
        raise DecodeError(f"batch header (offset 4) says {count} records, but the "
                          f"{body} bytes after the header hold "
                          f"{body / WIRE_RECORD.itemsize:g} records of "
                          f"{WIRE_RECORD.itemsize} bytes")
    if generation == 0:
        raise DecodeError("batch header generation (offset 8) is 0")
    records = np.frombuffer(payload, WIRE_RECORD, count, BATCH_HEADER.size)
    return Batch(generation, first_seq, cursor, mono, wall, lapped, records)


def decode_state(payload: bytes) -> UpstreamState:
    """Decode a state message; DecodeError if it is not one."""
    if kind_of(payload) != KIND_STATE:
        raise DecodeError("not a state message (kind 1, records, at offset 1)")
    try:
        d = json.loads(payload[2:].decode())
        symbols = tuple(SymbolInfo(**s) for s in d["symbols"])
        state = UpstreamState(
            state=str(d["state"]), generation=int(d["generation"]), cursor=int(d["cursor"]),
            host=str(d["host"]), segment=str(d["segment"]), symbols=symbols,
            symbol_capacity=int(d["symbol_capacity"]), ring_capacity=int(d["ring_capacity"]),
            mono_ns=int(d["mono_ns"]), wall_ns=int(d["wall_ns"]),
            reason=str(d.get("reason", "")))
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise DecodeError(f"state message body is not the expected JSON: {exc}") from None
    if state.state not in UPSTREAM_STATES:
        raise DecodeError(f"state message: unknown upstream state {state.state!r}")
    if len(symbols) > min(state.symbol_capacity, MAX_SYMBOLS):
        raise DecodeError(f"state message: {len(symbols)} symbols exceed symbol_capacity "
                          f"{state.symbol_capacity}")
    return state


def to_ring_records(wire: np.ndarray) -> np.ndarray:
    """Wire records as ``RECORD_DTYPE`` (for ``SegmentWriter.publish_batch``)."""
    n = len(wire)
    out = np.empty(n, L.RECORD_DTYPE)
    u8 = out.view(np.uint8).reshape(n, L.RECORD.size)
    u8[:, :_STAMP] = 0  # the writer stamps seq_lo
    u8[:, _STAMP:] = np.ascontiguousarray(wire).view(np.uint8).reshape(n, WIRE_RECORD.itemsize)
    return out


def format_table() -> str:
    """The byte tables of docs/multi-host.md (generated: a test checks the doc)."""
    lines = ["| offset | field | type | meaning |", "|---:|---|---|---|"]
    off = 0
    sizes = {"u8": 1, "u16": 2, "u32": 4, "u64": 8}
    for name, typ, meaning in BATCH_HEADER_FIELDS:
        lines.append(f"| {off} | `{name}` | {typ} | {meaning} |")
        off += sizes[typ]
    assert off == BATCH_HEADER.size, off
    lines += ["", f"Then `count` records of {WIRE_RECORD.itemsize} bytes each "
              "(packed, little-endian):", "", "| offset | field | type | meaning |",
              "|---:|---|---|---|"]
    for name, typ, meaning in WIRE_RECORD_FIELDS:
        offset = WIRE_RECORD.fields[name][1] if WIRE_RECORD.fields else 0
        lines.append(f"| {offset} | `{name}` | {typ} | {meaning} |")
    return "\n".join(lines) + "\n"


__all__ = ["BATCH_HEADER", "KIND_RECORDS", "KIND_STATE", "VERSION", "WIRE_RECORD", "Batch",
           "DecodeError", "UpstreamState", "decode_records", "decode_state",
           "encode_records", "encode_state", "format_table", "kind_of", "to_ring_records"]


if __name__ == "__main__":  # the byte tables for docs/multi-host.md
    print(format_table(), end="")
