"""Matching rules against replayed bars: pure functions, no state.

* Only a bar published after the order arrived can fill it (``eligible``): exec never fills
  against prices the client could already have seen.
* A market order fills at the bar's open.
* A buy limit fills when the bar's low <= limit, at min(limit, open); a sell limit when the
  bar's high >= limit, at max(limit, open). The price is clamped into [low, high], so a bar
  whose open lies outside its own range still never yields a price outside it.
* The quantity is capped by the liquidity left on the bar: ``floor(participation x
  volume)`` shared by every order on that bar in time priority. A bar with volume 0 (a
  source without volume: forex files often have none) has no cap.
"""

from __future__ import annotations

import math

from tradingd.exec.protocol import Bar, OrdType, Side


def eligible(arrival_ns: int, bar: Bar) -> bool:
    """Can ``bar`` fill an order that arrived at ``arrival_ns`` (both CLOCK_MONOTONIC)?"""
    return bar.publish_ns > arrival_ns


def bar_liquidity(bar: Bar, participation: float) -> int | None:
    """Quantity the bar may fill in total; None means uncapped (no volume in the data)."""
    if not bar.volume > 0:
        return None
    return math.floor(participation * bar.volume)


def fill_price(side: int, ord_type: int, limit: float, bar: Bar) -> float | None:
    """The price an order would fill at on ``bar``, or None if the bar does not reach it."""
    if ord_type == OrdType.MARKET:
        px = bar.open
    elif side == Side.BUY:
        if not bar.low <= limit:
            return None
        px = min(limit, bar.open)
    else:
        if not bar.high >= limit:
            return None
        px = max(limit, bar.open)
    return min(max(px, bar.low), bar.high)


def fill_quantity(leaves: int, liquidity: int | None) -> int:
    """How much of ``leaves`` a bar with ``liquidity`` left can fill."""
    return leaves if liquidity is None else max(0, min(leaves, liquidity))


__all__ = ["bar_liquidity", "eligible", "fill_price", "fill_quantity"]
