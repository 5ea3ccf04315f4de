"""LatencyHistogram against counting by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tradingd.consumer.latency import BUCKETS_SECONDS, LatencyHistogram, format_ns


def test_buckets_cover_100ns_to_10s() -> None:
    """Below the spin path's sub-microsecond latencies, above a blocked host's seconds."""
    assert BUCKETS_SECONDS[0] == 1e-7 and BUCKETS_SECONDS[-1] == 10.0
    assert BUCKETS_SECONDS[:3] == (1e-7, 2.5e-7, 5e-7)  # exact labels: le="2.5e-07"
    assert list(BUCKETS_SECONDS) == sorted(set(BUCKETS_SECONDS))


def test_a_58ms_tail_is_seen_inside_the_buckets() -> None:
    """The issue's case: p99 58.8 ms was reported as the 10 ms top bucket before."""
    h = LatencyHistogram()
    h.observe_ns(np.array([1_000] * 98 + [58_800_000] * 2, np.int64))
    cum = dict(h.cumulative())
    assert cum[0.05] == 98 and cum[0.1] == 100


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_counts_match_a_direct_count(chunk: int) -> None:
    rng = np.random.default_rng(3)
    lat = (10 ** rng.uniform(1, 8, 5000)).astype(np.int64)  # 10 ns .. 100 ms
    lat[:5] = [100, 99, 101, -5, 10_000_000]  # on, below, above a bound; skew; top bound
    h = LatencyHistogram()
    for i in range(0, len(lat), chunk):
        h.observe_ns(lat[i:i + chunk])
    clipped = np.maximum(lat, 0)
    for bound, cum in h.cumulative():
        want = len(lat) if math.isinf(bound) else int((clipped <= round(bound * 1e9)).sum())
        assert cum == want, bound
    assert h.count == len(lat)
    assert h.sum_ns == int(clipped.sum())


def test_list_path_equals_array_path() -> None:
    a, b = LatencyHistogram(), LatencyHistogram()
    values = [50, 150, 2_000, 70_000, 20_000_000]
    a.observe_ns(np.array(values, np.int64))
    b.observe_list_ns(values)
    assert a.cumulative() == b.cumulative() and a.sum_ns == b.sum_ns


def test_recent_percentiles_and_marks() -> None:
    h = LatencyHistogram(recent=100)
    h.observe_ns(np.full(500, 1_000, np.int64))  # wraps the recent ring
    mark = h.mark()
    h.observe_ns(np.arange(1, 51, dtype=np.int64) * 1000)
    assert h.percentiles_since(mark) == pytest.approx(
        tuple(np.percentile(np.arange(1, 51) * 1000, (50, 99))))
    assert h.percentiles_since(h.mark()) is None
    assert len(h.recent()) == 100
    assert LatencyHistogram().percentiles_ns() is None


@pytest.mark.parametrize("first", [1, 3, 4, 5, 9])
def test_the_recent_ring_keeps_the_newest_samples_whatever_the_batch_sizes(first: int) -> None:
    # a batch at least the ring's size puts sample j at j % size, as single samples do:
    # the next samples then replace the oldest (a batch of 5 into 4 places kept the oldest
    # of it where the next write went, and dropped a newer one)
    stream = np.arange(1, first + 4, dtype=np.int64)
    batched, single = LatencyHistogram(recent=4), LatencyHistogram(recent=4)
    batched.observe_ns(stream[:first])
    for v in stream[first:]:
        batched.observe_ns(np.array([v], np.int64))
    single.observe_list_ns(stream.tolist())
    want = sorted(stream[-4:].tolist())
    assert sorted(batched.recent().tolist()) == want
    assert sorted(single.recent().tolist()) == want
    mark = batched.mark()
    batched.observe_ns(np.array([100, 200], np.int64))
    assert batched.percentiles_since(mark) == pytest.approx(
        tuple(np.percentile([100, 200], (50, 99))))


def test_format_ns() -> None:
    assert [format_ns(x) for x in (850, 12_300, 4_560_000, 1.2e9)] == [
        "850 ns", "12.3 us", "4.56 ms", "1.2 s"]


def test_staged_publish_times_equal_direct_observation() -> None:
    rng = np.random.default_rng(5)
    publish = rng.integers(10**9, 2 * 10**9, 3000).astype(np.uint64)
    now = 2 * 10**9 + 5_000
    staged, direct = LatencyHistogram(stage=1000), LatencyHistogram()
    for i in range(0, 3000, 700):  # chunks that fill and overflow the stage
        staged.observe_publish_ns(now, publish[i:i + 700])
    staged.observe_publish_ns(now, publish[:0])
    big = LatencyHistogram(stage=10)
    big.observe_publish_ns(now, publish)  # larger than the stage: binned at once
    direct.observe_ns(now - publish.astype(np.int64))
    assert staged.total == 3000
    for h in (staged, big):
        assert h.cumulative() == direct.cumulative()
        assert h.sum_ns == direct.sum_ns and h.count == 3000
        assert sorted(h.recent()) == sorted(direct.recent())


def test_runs_of_equal_latencies_are_binned_exactly() -> None:
    # a read batch of several producer chunks: runs of equal values (the run-length path)
    values = [90, 100, 101, 2_600, 2_600, 9_000_000, 20_000_000, -3]
    lat = np.repeat(np.array(values, np.int64), [300, 5, 1000, 7, 1, 64, 2, 40])
    runs, direct = LatencyHistogram(), LatencyHistogram()
    runs.observe_ns(lat)
    direct.observe_list_ns(lat.tolist())
    assert runs.cumulative() == direct.cumulative()
    assert runs.sum_ns == direct.sum_ns and runs.count == direct.count == len(lat)
