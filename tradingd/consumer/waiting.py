"""How a consumer waits for the next record: ``spin``, ``poll`` or ``block``.

The three trade latency against CPU (``consumer.wait.strategy``):

* ``spin``: re-read the ring cursor in a tight loop. Lowest latency (no wake-up: the
  consumer sees the cursor store as soon as the cache line arrives), one core 100 % busy.
* ``poll``: check, then sleep ``poll_interval`` between empty checks (the seed's consumer
  polled every 1 ms). Latency up to the interval; a few hundred wake-ups a second idle.
* ``block``: sleep in the kernel on the segment's futex word until the producer publishes
  (``RingSubscription.wait_for_data``). No CPU while idle; each wake-up costs a
  cross-CPU scheduler wake (~20-30 us in a VM, like a pipe).

Every strategy returns after at most ``timeout`` seconds, so the main loop keeps its
housekeeping (segment checks, watchdog, reports) going while no data arrives, and
returns early when a stop is requested (``stop.is_set()``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from tradingd.segment.reader import RingSubscription

STRATEGIES = ("spin", "poll", "block")
#: The spin loop looks at the stop flag this often (seconds).
_SPIN_SLICE = 0.01


class StopLike(Protocol):
    """What a strategy needs of :class:`tradingd.daemon.signals.StopFlag`."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class WaitStrategy(Protocol):
    """Wait until ``sub`` may have records, ``timeout`` passes, or a stop is requested."""

    name: str

    def wait(self, sub: RingSubscription, timeout: float) -> bool:
        """True if records are available when it returns."""
        ...


class SpinWait:
    """Busy-wait on the cursor (one core busy; the lowest latency).

    ``RingSubscription.spin`` does the spinning (in C, without the GIL, when the fast path
    is built); it is called in slices of at most ``slice_s`` so a stop request is seen.
    """

    name = "spin"

    def __init__(self, stop: StopLike, slice_s: float = _SPIN_SLICE) -> None:
        self._stop = stop
        self._slice = slice_s

    def wait(self, sub: RingSubscription, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if sub.spin(max(0.0, min(left, self._slice))):
                return True
            if left <= self._slice or self._stop.is_set():
                return False


class PollWait:
    """Sleep ``interval`` seconds between empty checks (woken early by a stop signal)."""

    name = "poll"

    def __init__(self, stop: StopLike, interval: float,
                 sleep: Callable[[float], object] | None = None) -> None:
        self._stop = stop
        self.interval = interval
        self._sleep = sleep if sleep is not None else stop.wait

    def wait(self, sub: RingSubscription, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while sub.available <= 0:
            left = deadline - time.monotonic()
            if left <= 0 or self._stop.is_set():
                return False
            self._sleep(min(self.interval, left))
        return True


class BlockWait:
    """Block on the segment's futex until the producer publishes (no CPU while idle).

    A stop signal interrupts the futex wait; ``RingSubscription.wait_for_data`` then
    re-waits for the rest of ``timeout``, so the main loop sees the stop within one
    ``timeout`` (the consumer uses its housekeeping interval, 50 ms).
    """

    name = "block"

    def __init__(self, stop: StopLike) -> None:
        self._stop = stop

    def wait(self, sub: RingSubscription, timeout: float) -> bool:
        if self._stop.is_set():
            return sub.available > 0
        return sub.wait_for_data(timeout)


def make_strategy(name: str, stop: StopLike, poll_interval: float = 0.001) -> WaitStrategy:
    """The strategy called ``name`` (``consumer.wait.strategy``)."""
    if name == "spin":
        return SpinWait(stop)
    if name == "poll":
        return PollWait(stop, poll_interval)
    if name == "block":
        return BlockWait(stop)
    raise ValueError(f"unknown wait strategy {name!r}: expected one of {', '.join(STRATEGIES)}")


__all__ = ["STRATEGIES", "BlockWait", "PollWait", "SpinWait", "WaitStrategy", "make_strategy"]
