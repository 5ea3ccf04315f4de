"""The values that travel in order and report records: FIX 4.4 codes and tradingd's own.

Enum values are what the rings carry (``tradingd.segment.layout`` ORDER / REPORT); FIX
``OrdStatus`` and ``ExecType`` are stored as the ASCII code of their FIX character
(``'0'`` -> 48), so a FIX engine or a person reading a hexdump recognises them.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple


class MsgType(IntEnum):
    """ORDER.msg_type."""

    NEW_ORDER = 1
    CANCEL = 2


class Side(IntEnum):
    """FIX Side (54)."""

    BUY = 1
    SELL = 2


class OrdType(IntEnum):
    """FIX OrdType (40)."""

    MARKET = 1
    LIMIT = 2


class TimeInForce(IntEnum):
    """FIX TimeInForce (59)."""

    DAY = 0
    GTC = 1
    IOC = 3


class OrdStatus(IntEnum):
    """FIX OrdStatus (39); PENDING_NEW is the state of an order exec has not judged yet."""

    PENDING_NEW = ord("A")
    NEW = ord("0")
    PARTIALLY_FILLED = ord("1")
    FILLED = ord("2")
    CANCELED = ord("4")
    REJECTED = ord("8")
    EXPIRED = ord("C")


TERMINAL = frozenset({OrdStatus.FILLED, OrdStatus.CANCELED, OrdStatus.REJECTED,
                      OrdStatus.EXPIRED})
OPEN = frozenset({OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED})


class ExecType(IntEnum):
    """FIX ExecType (150)."""

    NEW = ord("0")
    TRADE = ord("F")
    CANCELED = ord("4")
    REJECTED = ord("8")
    EXPIRED = ord("C")
    ORDER_STATUS = ord("I")


class ReportKind(IntEnum):
    """REPORT.report_kind: what the record is."""

    EXECUTION = 1  # FIX ExecutionReport (35=8)
    CANCEL_REJECT = 2  # FIX OrderCancelReject (35=9): the order is unchanged
    POSITION = 3  # tradingd: a position restated to a (re)connected client


class RejectReason(IntEnum):
    """REPORT.reject_reason: why an order or cancel was refused."""

    NONE = 0
    DUPLICATE_ID = 1
    UNKNOWN_SYMBOL = 2
    BAD_QUANTITY = 3
    BAD_PRICE = 4
    MAX_ORDER_QTY = 5
    MAX_OPEN_ORDERS = 6
    MAX_NOTIONAL = 7
    UNKNOWN_MSG_TYPE = 8
    BAD_SIDE = 9
    BAD_ORD_TYPE = 10
    BAD_TIME_IN_FORCE = 11
    BAD_SYMBOL = 12
    NO_REFERENCE_PRICE = 13
    UNKNOWN_ORDER = 14
    TOO_LATE_TO_CANCEL = 15
    CLIENT_DISCONNECTED = 16  # canceled because exec disconnected the client


class DisconnectReason(IntEnum):
    """Report ring header ``detail`` when its state is disconnected."""

    NONE = 0
    SLOW_CONSUMER = 1  # the report backlog outgrew exec.report_backlog
    EXEC_STOPPED = 2


def reason_name(code: int) -> str:
    """``MAX_NOTIONAL`` -> ``max_notional`` (metric label); unknown codes as ``code_N``."""
    try:
        return RejectReason(code).name.lower()
    except ValueError:
        return f"code_{code}"


class Report(NamedTuple):
    """One execution report: the REPORT record's fields after the stamp, in layout order."""

    exec_type: int
    report_seq: int
    client_order_id: int
    ord_status: int
    reject_reason: int
    last_qty: int
    last_px: float
    cum_qty: int
    leaves_qty: int
    avg_px: float
    market_seq: int
    transact_ns: int
    order_send_ns: int
    side: int
    report_kind: int
    symbol: bytes
    client_seq: int

    def describe(self) -> str:
        """``#3 id 7 AAPL TRADE PARTIALLY_FILLED 10 @ 150.25 cum 10 leaves 90``."""
        sym = self.symbol.rstrip(b"\0").decode("ascii", "replace")
        kind = ReportKind(self.report_kind).name if self.report_kind in (1, 2, 3) else "?"
        text = (f"#{self.report_seq} {kind} id {self.client_order_id} {sym} "
                f"{_name(ExecType, self.exec_type)} {_name(OrdStatus, self.ord_status)}")
        if self.last_qty:
            text += f" {self.last_qty} @ {self.last_px:.6g}"
        text += f" cum {self.cum_qty} leaves {self.leaves_qty}"
        if self.reject_reason:
            text += f" reason {reason_name(self.reject_reason)}"
        return text


def _name(enum: type[IntEnum], value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return str(value)


class OrderFields(NamedTuple):
    """An ORDER record's fields after the stamp, in layout order (garbage included)."""

    msg_type: int
    client_seq: int
    client_order_id: int
    side: int
    ord_type: int
    time_in_force: int
    quantity: int
    limit_price: float
    send_ns: int
    symbol: bytes


class Bar(NamedTuple):
    """A market record as the matching rules see it (a replayed bar)."""

    seq: int
    symbol: str
    event_ns: int
    publish_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float


__all__ = ["OPEN", "TERMINAL", "Bar", "DisconnectReason", "ExecType", "MsgType", "OrdStatus",
           "OrdType", "OrderFields", "RejectReason", "Report", "ReportKind", "Side",
           "TimeInForce", "reason_name"]
