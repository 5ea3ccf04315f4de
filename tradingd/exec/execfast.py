"""Exec's byte work per batch: take order records, frame them for the journal, publish reports.

Three functions, each in C (``tradingd.exec._execfast``, ``tradingd/exec/_execfast.c``) when
that is built for this channel layout, else in the pure Python below, which is the
reference: the tests (tests/exec/test_execfast.py) check that both give the same records,
the same journal bytes and the same report bytes. ``TRADINGD_PURE_PYTHON=1`` forces the
Python versions, as it does for the segment's fast path.

* :func:`take_orders`: up to ``max`` records of an order ring from ``position`` on (each
  the bytes after its stamp; stamp, copy, stamp again, as ``ChannelReader.poll_raw``);
* :func:`encode_orders`: the journal frames of those records as ``OrderIn`` entries,
  joined (``journal.encode`` of each, byte for byte);
* :func:`publish_reports`: report tuples into a report ring (``ChannelWriter.publish``
  of each: mark, body, stamp, cursor).

Nothing here decides anything about an order: state and rules stay in
:mod:`tradingd.exec.engine`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from types import ModuleType

from tradingd.exec import journal as J
from tradingd.segment import layout as L
from tradingd.segment.channel import ChannelReader, ChannelWriter

log = logging.getLogger(__name__)

_RING_OFFSET = L.CHANNEL_HEADER.size
_CURSOR_OFFSET = L.CHANNEL_HEADER.offset("ring_cursor")


def _load() -> ModuleType | None:
    if os.environ.get("TRADINGD_PURE_PYTHON") == "1":
        return None
    try:
        from tradingd.exec import _execfast
    except ImportError:
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


def publish_reports(w: ChannelWriter, reports: Sequence[tuple[object, ...]]) -> None:
    """Publish ``reports`` into report ring ``w`` (the caller checked its credit)."""
    if FAST is None:
        publish_reports_py(w, reports)
        return
    FAST.publish_reports(w.mapping, _RING_OFFSET, w.capacity, _CURSOR_OFFSET, reports)


__all__ = ["FAST", "IMPLEMENTATION", "encode_orders", "encode_orders_py", "publish_reports",
           "publish_reports_py", "take_orders", "take_orders_py"]
