"""Helpers for the exec tests: order records as the rings carry them, bars, engine drivers."""

from __future__ import annotations

from tradingd.exec.engine import Engine
from tradingd.exec.journal import OrderIn, apply
from tradingd.exec.protocol import Bar, MsgType, OrderFields, Report
from tradingd.segment.channel import KIND_ORDERS, body_format

ORDER_BODY = body_format(KIND_ORDERS)


def order_fields(oid: int, side: int, ord_type: int, tif: int, qty: int, px: float = 0.0,
                 symbol: str = "AAPL", msg: int = MsgType.NEW_ORDER, seq: int = 0,
                 send_ns: int = 0) -> OrderFields:
    return OrderFields(msg, seq or oid, oid, side, ord_type, tif, qty, px, send_ns,
                       symbol.encode().ljust(16, b"\0"))


def raw(f: OrderFields) -> bytes:
    return ORDER_BODY.pack(*f)


def submit(engine: Engine, client: str, f: OrderFields, ns: int,
           ref: float = 100.0) -> list[tuple[str, Report]]:
    """Through the journal's apply path, as the daemon does (raw bytes in)."""
    return apply(engine, OrderIn(client, 1, 0, ns, ref, raw(f)))


def bar(seq: int, ns: int, o: float, h: float, lo: float, c: float, v: float,
        symbol: str = "AAPL") -> Bar:
    return Bar(seq, symbol, ns, ns, o, h, lo, c, v)
