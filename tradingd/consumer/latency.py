"""Publish->consume latency: a histogram fed a batch at a time, plus recent raw samples.

Each ring record carries ``publish_ns``, the producer's CLOCK_MONOTONIC time when it
published it; the consumer subtracts it from its own CLOCK_MONOTONIC reading when it has
the record in hand. Both clocks are the same kernel clock, so the difference is the
one-way latency (including any time the consumer spent busy with earlier records).

``prometheus_client.Histogram.observe`` costs about a microsecond per call, more than
reading a record: the counts here are kept in numpy (one ``searchsorted`` and one
``bincount`` per batch) and exported by the consumer's metrics collector at scrape time.
A ring of the most recent raw samples gives exact percentiles for the periodic report.
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from tradingd.segment.fastpath import FAST

#: Histogram upper bounds in seconds: 100 ns to 10 s (a 1-2.5-5 series). The spin path
#: lives below 1 us, a blocked or overloaded host above 1 s: histogram_quantile() can only
#: answer inside these bounds (it reports the top finite bound for anything above it).
BUCKETS_SECONDS: tuple[float, ...] = (
    *(float(f"{m}e{e}") for e in range(-7, 1) for m in ("1", "2.5", "5")), 10.0)
#: Raw samples kept for percentiles.
DEFAULT_RECENT = 65536
#: Latencies staged before they are binned (binning a chunk costs about what binning one
#: producer batch costs).
DEFAULT_STAGE = 8192
_SMALL = 4
#: The C one-pass histogram update of a batch (None: not built).
_LATENCY_OBSERVE = getattr(FAST, "latency_observe", None)
#: Batches at least this long are binned by runs at once (observe_publish_ns).
_RUNS_BATCH = 2048


class LatencyHistogram:
    """Cumulative histogram of latencies (ns in, seconds out) and recent raw samples."""

    def __init__(self, buckets_seconds: tuple[float, ...] = BUCKETS_SECONDS,
                 recent: int = DEFAULT_RECENT, stage: int = DEFAULT_STAGE) -> None:
        bounds = [round(b * 1e9) for b in buckets_seconds]
        if bounds != sorted(set(bounds)) or not bounds:
            raise ValueError("histogram bounds must be increasing and distinct")
        self.buckets_seconds = tuple(buckets_seconds)
        self._bounds = bounds
        self._bounds_np = np.array(bounds, np.int64)
        self.counts = np.zeros(len(bounds) + 1, np.int64)  # last: above the top bound
        self.count = 0
        self.sum_ns = 0
        self._recent = np.zeros(recent, np.int64)
        self._recent_n = 0  # samples ever written to the ring
        # latencies are staged and binned a chunk at a time (see observe_publish_ns)
        self._stage = np.zeros(stage, np.int64)
        self._staged = 0

    def observe_publish_ns(self, now_ns: int, publish_ns: np.ndarray) -> None:
        """Stage the latencies ``now_ns - publish_ns`` of a batch (binned later, in chunks).

        ``publish_ns`` is the records' ``publish_ns`` field (uint64, may be strided). The
        subtraction goes straight into the stage; counts and percentiles bin what is
        staged first, so readers never see a stale histogram.
        """
        n = len(publish_ns)
        if n == 0:
            return
        if n >= _RUNS_BATCH:  # a big batch: bin its runs at once, no staging
            self._flush()
            lat = np.subtract(np.int64(now_ns), publish_ns.view(np.int64))
            self._observe_runs(lat)
            return
        if self._staged + n > len(self._stage):
            self._flush()
            if n > len(self._stage):
                self.observe_ns(np.int64(now_ns) - publish_ns.view(np.int64))
                return
        out = self._stage[self._staged:self._staged + n]
        np.subtract(np.int64(now_ns), publish_ns.view(np.int64), out=out)
        self._staged += n

    def _flush(self) -> None:
        k = self._staged
        if k:
            self._staged = 0
            self.observe_ns(self._stage[:k].copy())

    def observe_ns(self, latencies_ns: np.ndarray) -> None:
        """Add latencies (int64 ns; negative values, from clock skew, count as 0)."""
        n = len(latencies_ns)
        if n == 0:
            return
        if n <= _SMALL:
            self.observe_list_ns(latencies_ns.tolist())
            return
        lat = np.maximum(latencies_ns, 0)
        # The producer stamps a whole published chunk with one publish_ns, and a batch read
        # at once shares one consume time: latencies come in runs of equal values. Bin one
        # value per run, weighted by its length (exact, and ~5x cheaper than binning each).
        starts = np.flatnonzero(np.diff(lat, prepend=lat[0] - 1))
        if len(starts) * 4 < n:
            lengths = np.diff(starts, append=n)
            values = lat[starts]
            idx = np.searchsorted(self._bounds_np, values, side="left")
            self.counts += np.bincount(idx, weights=lengths,
                                       minlength=len(self.counts)).astype(np.int64)
            self.sum_ns += int(np.dot(values, lengths))
        else:
            idx = np.searchsorted(self._bounds_np, lat, side="left")
            self.counts += np.bincount(idx, minlength=len(self.counts))
            self.sum_ns += int(lat.sum())
        self.count += n
        self._push_many(lat)

    def observe_records(self, now_ns: int, records: np.ndarray) -> None:
        """Stage the latencies ``now_ns - publish_ns`` of a batch of ``RECORD_DTYPE`` records.

        The same as :meth:`observe_publish_ns` of their ``publish_ns``; a big batch is
        binned in one C pass when the fast path is built (``latency_observe``: one value
        per run of equal ``publish_ns``, i.e. per writer chunk, not one per record).
        """
        n = len(records)
        if n < _RUNS_BATCH or _LATENCY_OBSERVE is None:
            self.observe_publish_ns(now_ns, records["publish_ns"])
            return
        self._flush()
        self.sum_ns += _LATENCY_OBSERVE(np.ascontiguousarray(records), now_ns,
                                        self._bounds_np, self.counts, self._recent,
                                        self._recent_n)
        self.count += n
        self._recent_n += n

    def c_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(bounds, counts, recent)`` for the C batch path (``Cursor.read_analyse``),
        staged latencies binned first; None without the C path. Report what it added with
        :meth:`observed_in_place`; it writes samples from :attr:`recent_n` on."""
        if _LATENCY_OBSERVE is None:
            return None
        self._flush()
        return self._bounds_np, self.counts, self._recent

    @property
    def recent_n(self) -> int:
        """Samples ever written to the recent ring."""
        return self._recent_n

    def observed_in_place(self, n: int, sum_ns: int) -> None:
        """Account for ``n`` latencies (summing ``sum_ns``) the C batch path binned."""
        self.count += n
        self.sum_ns += sum_ns
        self._recent_n += n

    def _observe_runs(self, lat: np.ndarray) -> None:
        """Bin latencies that come in runs of equal values (a big batch: one consume time,
        one publish_ns per writer chunk) with three passes over them; else as observe_ns."""
        n = len(lat)
        np.maximum(lat, 0, out=lat)
        change = np.flatnonzero(lat[1:] != lat[:-1])
        if (len(change) + 1) * 4 >= n:
            self.observe_ns(lat)
            return
        starts = np.empty(len(change) + 1, np.intp)
        starts[0] = 0
        np.add(change, 1, out=starts[1:])
        lengths = np.diff(starts, append=n)
        values = lat[starts]
        idx = np.searchsorted(self._bounds_np, values, side="left")
        self.counts += np.bincount(idx, weights=lengths,
                                   minlength=len(self.counts)).astype(np.int64)
        self.sum_ns += int(np.dot(values, lengths))
        self.count += n
        self._push_many(lat)

    def observe_list_ns(self, latencies_ns: list[int]) -> None:
        """Add a few latencies given as Python ints (the record-by-record read path)."""
        bounds, counts = self._bounds, self.counts
        for v in latencies_ns:
            v = max(v, 0)
            counts[bisect.bisect_left(bounds, v)] += 1
            self.sum_ns += v
            self._push_one(v)
        self.count += len(latencies_ns)

    def _push_one(self, v: int) -> None:
        self._recent[self._recent_n % len(self._recent)] = v
        self._recent_n += 1

    def _push_many(self, lat: np.ndarray) -> None:
        cap = len(self._recent)
        if len(lat) >= cap:
            # sample j of the stream lives at j % cap, as one at a time (and the C path)
            # put it: the newest cap samples, the oldest of them where the ring says
            tail = lat[-cap:]
            s = (self._recent_n + len(lat)) % cap
            self._recent[s:] = tail[:cap - s]
            self._recent[:s] = tail[cap - s:]
            self._recent_n += len(lat)
            return
        i = self._recent_n % cap
        head = min(len(lat), cap - i)
        self._recent[i:i + head] = lat[:head]
        self._recent[:len(lat) - head] = lat[head:]
        self._recent_n += len(lat)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound in seconds, cumulative count)`` pairs, ending with ``(inf, count)``."""
        self._flush()
        cum = np.cumsum(self.counts).tolist()
        return [*zip(self.buckets_seconds, cum[:-1], strict=True), (math.inf, cum[-1])]

    @property
    def sum_seconds(self) -> float:
        self._flush()
        return self.sum_ns / 1e9

    @property
    def total(self) -> int:
        """Latencies observed (binned or staged)."""
        return self.count + self._staged

    def recent(self) -> np.ndarray:
        """The most recent raw samples (ns), at most the ring's size (a copy, unordered)."""
        self._flush()
        return self._recent[:min(self._recent_n, len(self._recent))].copy()

    def percentiles_ns(self, qs: tuple[float, ...] = (50, 99)) -> tuple[float, ...] | None:
        """Exact percentiles of the recent samples, or None if there are none."""
        samples = self.recent()
        if len(samples) == 0:
            return None
        return tuple(float(v) for v in np.percentile(samples, qs))

    def mark(self) -> int:
        """A position in the sample stream, for :meth:`percentiles_since`."""
        self._flush()
        return self._recent_n

    def percentiles_since(self, mark: int,
                          qs: tuple[float, ...] = (50, 99)) -> tuple[float, ...] | None:
        """Percentiles of the samples observed since ``mark`` (as far as the ring holds them)."""
        self._flush()
        cap = len(self._recent)
        n = min(self._recent_n - mark, cap)
        if n <= 0:
            return None
        end = self._recent_n % cap
        idx = (np.arange(end - n, end)) % cap
        return tuple(float(v) for v in np.percentile(self._recent[idx], qs))


def format_ns(ns: float) -> str:
    """A latency for humans: ``850 ns``, ``12.3 us``, ``4.56 ms``, ``1.2 s``."""
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:.3g} us"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.3g} ms"
    return f"{ns / 1e9:.3g} s"


__all__ = ["BUCKETS_SECONDS", "LatencyHistogram", "format_ns"]
