"""Exec's byte work per batch: take order records, frame them for the journal, publish reports.

Each function is C (``tradingd.exec._execfast``, ``tradingd/exec/_execfast.c``) when that
is built for this channel layout, else the pure Python below (``*_py``), which is the
reference: the tests (tests/exec/test_execfast.py) check that both give the same records,
the same decoded fields, the same journal bytes and the same report bytes, and that a whole
exec journals and reports the same either way. ``TRADINGD_PURE_PYTHON=1`` forces the Python
versions, as it does for the segment's fast path.

* :func:`take_orders`: up to ``max`` records of an order ring from ``position`` on (each
  the bytes after its stamp; stamp, copy, stamp again, as ``ChannelReader.poll_raw``);
* :func:`encode_orders`: the journal frames of those records as ``OrderIn`` entries,
  joined (``journal.encode`` of each, byte for byte);
* :func:`take_and_frame`: what exec calls once per ring per round: take, read the arrival
  time, decode, price the market orders, frame (None, allocating nothing, when idle);
* :func:`take_accept`: :func:`take_and_frame`, then, in the same C call, the frames copied
  into the journal's mapping and the NEW reports of the batch's leading plain accepts
  published (exec's latency-critical path: order taken -> NEW visible to the client,
  before any Python bookkeeping). The engine still applies every record afterwards and
  stays the one place that decides; the pure-Python version predicts nothing (journals
  nothing, publishes nothing): exec then appends and publishes as it always did, which is
  the reference the tests hold the C path to, byte for byte;
* :func:`wait_ready`: spin until one of the order rings has its next record (GIL released
  in C), or a deadline: how exec's spin loop waits when a round found nothing;
* :func:`publish_reports`: report tuples into a report ring (``ChannelWriter.publish``
  of each: mark, body, stamp, cursor).

Nothing here decides anything about an order: state and rules stay in
:mod:`tradingd.exec.engine`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from types import ModuleType

from tradingd.exec import journal as J
from tradingd.exec.protocol import OrderFields
from tradingd.segment import layout as L
from tradingd.segment.channel import ChannelReader, ChannelWriter
from tradingd.segment.fastpath import optional_extension

log = logging.getLogger(__name__)

_RING_OFFSET = L.CHANNEL_HEADER.size
_CURSOR_OFFSET = L.CHANNEL_HEADER.offset("ring_cursor")
_BODY = L.ORDER.offset("msg_type")  # raw bodies start after the stamp


def _field(name: str) -> slice:
    return slice(L.ORDER.offset(name) - _BODY, L.ORDER.offset(name) - _BODY
                 + L.ORDER[name].size)


_MSG, _TYPE, _SYMBOL = _field("msg_type"), _field("ord_type"), _field("symbol")
_ONE = (1).to_bytes(4, "little")  # msg_type new order / ord_type market


def _load() -> ModuleType | None:
    _execfast = optional_extension("tradingd.exec._execfast")
    if _execfast is None:
        return None
    if f"{L.CHANNEL_FINGERPRINT:016x}" != _execfast.CHANNEL_FINGERPRINT_HEX:
        log.warning("exec C fast path built for channel layout %s, not %016x: rebuild it "
                    "(pip install -e .); using pure Python", _execfast.CHANNEL_FINGERPRINT_HEX,
                    L.CHANNEL_FINGERPRINT)
        return None
    if _execfast.ORDER_BODY_SIZE != J.ORDER_BODY_SIZE:
        log.warning("exec C fast path takes %d-byte order bodies, the journal %d: rebuild it; "
                    "using pure Python", _execfast.ORDER_BODY_SIZE, J.ORDER_BODY_SIZE)
        return None
    return _execfast


FAST = _load()
#: "c" or "python": which implementation this process uses.
IMPLEMENTATION = "c" if FAST is not None else "python"


# ---------------------------------------------------------------------- the reference
def take_orders_py(r: ChannelReader, max: int) -> list[bytes]:
    """Pure-Python :func:`take_orders`: ``ChannelReader.poll_raw`` until none or ``max``."""
    out: list[bytes] = []
    for _ in range(max):
        raw = r.poll_raw()
        if raw is None:
            break
        out.append(bytes(raw[:J.ORDER_BODY_SIZE]))
    return out


def encode_orders_py(client: bytes, generation: int, first_seq: int, arrival_ns: int,
                     raws: list[bytes], refs: list[float]) -> bytes:
    """Pure-Python :func:`encode_orders`: ``journal.encode(OrderIn(...))`` of each, joined."""
    if len(raws) != len(refs):
        raise ValueError("raws and refs differ in length")
    name = client.decode("ascii")
    return b"".join(J.encode(J.OrderIn(name, generation, first_seq + i, arrival_ns, ref, raw))
                    for i, (raw, ref) in enumerate(zip(raws, refs, strict=True)))


def refs_py(raws: list[bytes], ref_of: Callable[[bytes], float]) -> list[float]:
    """The reference price of each record: ``ref_of(symbol)`` for a market new order."""
    refs = [0.0] * len(raws)
    for i, raw in enumerate(raws):
        if raw[_MSG] == _ONE and raw[_TYPE] == _ONE:
            refs[i] = ref_of(raw[_SYMBOL])
    return refs


Frames = tuple[list[bytes], bytes, list[float], int, list[OrderFields]]
_new = tuple.__new__


def take_and_frame_py(r: ChannelReader, max: int, client: bytes, clock: Callable[[], int],
                      ref_of: Callable[[bytes], float]) -> Frames | None:
    """Pure-Python :func:`take_and_frame`: the steps one after the other."""
    first = r.position
    raws = take_orders_py(r, max)
    if not raws:
        return None
    arrival = clock()
    refs = refs_py(raws, ref_of)
    fields = [_new(OrderFields, J._ORDER_BODY.unpack(raw)) for raw in raws]
    return (raws, encode_orders_py(client, r.generation, first, arrival, raws, refs), refs,
            arrival, fields)


Accepted = tuple[list[bytes], bytes, list[float], int, list[OrderFields], int, int]
#: what :func:`take_accept` needs to predict an accept: ``(engine.symbols, book.seen_ids,
#: book.open, book.open_notional, max_order_qty, max_open_orders, max_notional, the status
#: after ACCEPT (fsm), book)``
AcceptContext = tuple[object, ...]


def take_accept_py(r: ChannelReader, max: int, client: bytes, clock: Callable[[], int],
                   ref_of: Callable[[bytes], float], journal: object | None,
                   journal_end: int, w: ChannelWriter | None,
                   ctx: AcceptContext | None) -> Accepted | None:
    """Pure-Python :func:`take_accept`: :func:`take_and_frame_py`; nothing journaled
    (0 bytes), nothing published (0 reports): exec's general path does both."""
    got = take_and_frame_py(r, max, client, clock, ref_of)
    return None if got is None else (*got, 0, 0)


def wait_ready_py(readers: Sequence[ChannelReader], deadline_ns: int) -> bool:
    """Pure-Python :func:`wait_ready`: ``ready()`` of each until one is, or the deadline."""
    while True:
        for r in readers:
            if r.ready():
                return True
        if time.monotonic_ns() >= deadline_ns:
            return False


def publish_reports_py(w: ChannelWriter, reports: Sequence[tuple[object, ...]]) -> None:
    """Pure-Python :func:`publish_reports`: ``ChannelWriter.publish`` of each."""
    for rep in reports:
        w.publish(*rep)


# ---------------------------------------------------------------------- what callers use
def take_orders(r: ChannelReader, max: int) -> list[bytes]:
    """Up to ``max`` records of order ring ``r`` from its position on; advances it."""
    if FAST is None:
        return take_orders_py(r, max)
    raws: list[bytes] = FAST.take_orders(r.mapping, _RING_OFFSET, r.capacity, r.position, max)
    r.position += len(raws)
    return raws


def encode_orders(client: bytes, generation: int, first_seq: int, arrival_ns: int,
                  raws: list[bytes], refs: list[float]) -> bytes:
    """The journal frames of ``raws`` as OrderIn entries (ring seqs from ``first_seq``)."""
    if FAST is None:
        return encode_orders_py(client, generation, first_seq, arrival_ns, raws, refs)
    frames: bytes = FAST.encode_orders(client, generation, first_seq, arrival_ns, raws, refs)
    return frames


def take_and_frame(r: ChannelReader, max: int, client: bytes, clock: Callable[[], int],
                   ref_of: Callable[[bytes], float]) -> Frames | None:
    """Take up to ``max`` records of ``r`` (advancing it); if any, read their arrival time
    (``clock()``, after taking them), decode them (``OrderFields``), price the market
    orders (``ref_of(symbol)``) and frame them for the journal: ``(raws, frames, refs,
    arrival_ns, fields)``; None if there was no record to take."""
    if FAST is None:
        return take_and_frame_py(r, max, client, clock, ref_of)
    out: Frames | None = FAST.take_and_frame(r.mapping, _RING_OFFSET, r.capacity, r.position,
                                             max, client, r.generation, clock, ref_of,
                                             OrderFields)
    if out is not None:
        r.position += len(out[0])
    return out


def take_accept(r: ChannelReader, max: int, client: bytes, clock: Callable[[], int],
                ref_of: Callable[[bytes], float], journal: object | None, journal_end: int,
                w: ChannelWriter | None, ctx: AcceptContext | None) -> Accepted | None:
    """:func:`take_and_frame`, plus ``(journaled, published)``: the frames' bytes copied
    into ``journal`` (the journal's writable mapping, or None) at ``journal_end`` (0 if they
    do not fit: the caller appends them), and, only if they were, the NEW reports of the
    leading records that ``engine.on_order`` will accept, published into ``w`` (None: no
    prediction) within its credit, numbered from ``book.report_seq + 1``."""
    if FAST is None:
        return take_accept_py(r, max, client, clock, ref_of, journal, journal_end, w, ctx)
    out: Accepted | None = FAST.take_accept(
        r.mapping, _RING_OFFSET, r.capacity, r.position, max, client, r.generation, clock,
        ref_of, OrderFields, journal, journal_end, None if w is None else w.mapping,
        0 if w is None else w.capacity, 0 if w is None else w.generation, ctx)
    if out is not None:
        r.position += len(out[0])
    return out


def wait_ready(readers: Sequence[ChannelReader], deadline_ns: int) -> bool:
    """Spin until the record at the position of one of ``readers`` is published (True) or
    CLOCK_MONOTONIC (``time.monotonic_ns``) reaches ``deadline_ns`` (False); in C the GIL
    is released meanwhile."""
    if FAST is None:
        return wait_ready_py(readers, deadline_ns)
    ready: bool = FAST.wait_ready([(r.mapping, r.capacity, r.position) for r in readers],
                                  _RING_OFFSET, deadline_ns)
    return ready


def publish_reports(w: ChannelWriter, reports: Sequence[tuple[object, ...]]) -> None:
    """Publish ``reports`` into report ring ``w`` (the caller checked its credit)."""
    if FAST is None:
        publish_reports_py(w, reports)
        return
    FAST.publish_reports(w.mapping, _RING_OFFSET, w.capacity, _CURSOR_OFFSET, reports)


__all__ = ["FAST", "IMPLEMENTATION", "encode_orders", "encode_orders_py", "publish_reports",
           "publish_reports_py", "refs_py", "take_accept", "take_accept_py", "take_and_frame",
           "take_and_frame_py", "take_orders", "take_orders_py", "wait_ready", "wait_ready_py"]
