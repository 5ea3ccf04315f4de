"""Plain values passed between the segment code and its users."""

from __future__ import annotations

from typing import NamedTuple

from tradingd.segment.layout import ASSET_CLASS_IDS, ASSET_CLASSES


class SymbolInfo(NamedTuple):
    """One symbol table entry: what a reader needs to label a symbol's data."""

    name: str
    asset_class: str = "unknown"  # stock | crypto | forex | unknown
    currency: str = "USD"
    price_decimals: int = 2
    bar_interval_ns: int = 0
    record_count: int = 0

    @property
    def asset_class_id(self) -> int:
        return ASSET_CLASS_IDS.get(self.asset_class, 0)

    @staticmethod
    def asset_class_name(code: int) -> str:
        return ASSET_CLASSES.get(code, "unknown")


class LatestValue(NamedTuple):
    """A consistent snapshot of one latest-value slot (all fields from the same update)."""

    seq: int  # sequence number of the ring record that last updated the slot
    price: float
    volume: float
    event_ns: int
    publish_ns: int
    valid: int


class Record(NamedTuple):
    """One ring record, decoded: what ``RingSubscription.poll_one`` and ``next`` return.

    The C fast path returns ``tradingd.segment._fastpath.Record`` instead (one allocation rather
    than ten), which reads the same way: indexed like this tuple, or by field name.
    """

    seq: int
    symbol_id: int
    event_ns: int
    publish_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float
