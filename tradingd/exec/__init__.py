"""tradingd-exec: order management over shared memory, against the replayed market.

This wing owns the order state and everything about it: the life cycle as a transition
table (:mod:`.fsm`, FIX 4.4 OrdStatus), the matching rules against replayed bars
(:mod:`.matching`), the deterministic order book (:mod:`.engine`), the input journal
(:mod:`.journal`), the daemon's loop over the clients' rings (:mod:`.service`,
:mod:`.daemon`, :mod:`.metrics`) and the client library (:mod:`.client`,
:class:`OrderClient`). The ring format itself (order and report rings, "channels") belongs
to the segment wing (:mod:`tradingd.segment.channel`, declared in
:mod:`tradingd.segment.layout`). Imports point one way: exec -> consumer (it follows the
market segment as a consumer does) -> segment.
"""

from tradingd.exec.client import (
    ClientDisconnected,
    ExecUnavailable,
    OrderClient,
    OrderRingFull,
    Position,
)
from tradingd.exec.engine import Engine, RiskLimits
from tradingd.exec.protocol import (
    ExecType,
    OrdStatus,
    OrdType,
    RejectReason,
    Report,
    ReportKind,
    Side,
    TimeInForce,
)

__all__ = ["ClientDisconnected", "Engine", "ExecType", "ExecUnavailable", "OrdStatus",
           "OrdType", "OrderClient", "OrderRingFull", "Position", "RejectReason", "Report",
           "ReportKind", "RiskLimits", "Side", "TimeInForce"]
