"""The consumer: a read-only attachment to the segment, analysis, and reports.

:mod:`.follower` stays attached across producer restarts (generations) and keeps "producer
dead" apart from "data stale"; :mod:`.waiting` holds the wait strategies (spin, poll,
block); :mod:`.analytics` computes the per-symbol figures with numpy and :mod:`.latency`
the publish-to-read histogram; :mod:`.daemon` is ``tradingd-consumer`` and
:mod:`.metrics` its Prometheus collector.
"""

from tradingd.consumer.analytics import Analytics, SymbolStats
from tradingd.consumer.follower import Follower, Health
from tradingd.consumer.latency import LatencyHistogram
from tradingd.consumer.waiting import WaitStrategy, make_strategy

__all__ = ["Analytics", "Follower", "Health", "LatencyHistogram", "SymbolStats",
           "WaitStrategy", "make_strategy"]
