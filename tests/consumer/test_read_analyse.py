"""The consumer's one-pass C batch path (``Cursor.read_analyse``) against the references.

``read_analyse`` reads the ring, feeds the analytics and bins latencies in one pass, with
nothing copied out to Python. Hypothesis draws the symbols (up to the segment's 4,096,
and ids beyond the consumer's capacity), the analysis window, how the writer publishes
and how much the reader takes per call, including a reader that starts lapped; the
result must equal, field for field, the pure-Python reading protocol (``poll_batch``)
feeding the numpy analytics and the numpy latency histogram with the same records.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import new_segment_name, remove_segment_files
from test_analytics import make_records

from tradingd.consumer.analytics import Analytics
from tradingd.consumer.latency import LatencyHistogram
from tradingd.segment.fastpath import FAST
from tradingd.segment.model import SymbolInfo
from tradingd.segment.reader import SegmentReader
from tradingd.segment.writer import SegmentWriter

pytestmark = pytest.mark.skipif(FAST is None, reason="C fast path not built")

def _reference_step(sub_py, analytics: Analytics, latency: LatencyHistogram, max_records: int,
                    now: int, latency_from: int) -> int:
    recs = sub_py.poll_batch(max_records)
    if len(recs):
        analytics.update(recs)
        analytics.flush()
        fresh = recs[recs["seq_lo"].astype(np.int64) >= latency_from]
        if len(fresh):
            latency.observe_ns(np.int64(now) - fresh["publish_ns"].view(np.int64))
    return len(recs)


def _c_step(sub_c, analytics: Analytics, latency: LatencyHistogram, max_records: int,
            now: int, latency_from: int) -> int:
    """One ``read_analyse`` call, its counts handed to the analytics and the histogram."""
    got, ignored, lat_n, lat_sum = sub_c.read_analyse(
        max_records, now, latency_from, analytics.c_state(), latency.c_state(),
        latency.recent_n)
    analytics.applied_in_place(got, ignored, 0)
    latency.observed_in_place(lat_n, lat_sum)
    return int(got)


def assert_same_latency(a: LatencyHistogram, b: LatencyHistogram) -> None:
    assert (a.count, a.sum_ns) == (b.count, b.sum_ns)
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(np.sort(a.recent()), np.sort(b.recent()))


def assert_same(a: Analytics, b: Analytics) -> None:
    a.flush()
    b.flush()
    assert (a.records, a.ignored) == (b.records, b.ignored)
    for name in ("_raw", "_count", "_last", "_prev", "_first", "_last_volume",
                 "_total_volume", "_last_event", "_last_publish"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@settings(max_examples=35, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(symbols=st.sampled_from([1, 4, 9, 64, 4096]), window=st.sampled_from([2, 7, 512]),
       ring_log=st.integers(4, 12), seed=st.integers(0, 2**16),
       pre=st.integers(0, 5000), steps=st.lists(st.tuples(st.integers(0, 3000),
                                                          st.integers(1, 5000)),
                                                min_size=1, max_size=8),
       capacity_cut=st.booleans(), latency_from=st.integers(0, 4000))
def test_read_analyse_equals_poll_batch_plus_the_numpy_paths(
        symbols: int, window: int, ring_log: int, seed: int, pre: int,
        steps: list[tuple[int, int]], capacity_cut: bool, latency_from: int) -> None:
    ring = 1 << ring_log
    capacity = max(1, symbols - 1) if capacity_cut else symbols  # ids beyond: ignored
    total = pre + sum(k for k, _ in steps)
    recs = make_records(max(total, 1), symbols, seed=seed)
    name = new_segment_name()
    try:
        with SegmentWriter.create(name, [SymbolInfo(f"S{i}") for i in range(symbols)],
                                  symbol_capacity=symbols, ring_capacity=ring) as w, \
                SegmentReader.attach(name) as r:
            sub_c, sub_py = r.subscribe("oldest"), r.subscribe("oldest")
            sub_py._read_into = None  # the pure-Python protocol
            a_c = Analytics(capacity, window, use_c=True)
            a_py = Analytics(capacity, window, use_c=False)
            l_c, l_py = LatencyHistogram(recent=1000), LatencyHistogram(recent=1000)
            if pre:  # published before the readers read: with a small ring, they start lapped
                w.publish_batch(recs[:pre])
            pos = pre
            now = time.monotonic_ns()
            for k, take in [(0, 0), *steps]:
                if k:
                    w.publish_batch(recs[pos:pos + k])
                    pos += k
                now += 12345
                if take == 0:
                    continue
                got = _c_step(sub_c, a_c, l_c, take, now, latency_from)
                want = _reference_step(sub_py, a_py, l_py, take, now, latency_from)
                assert got == want
                assert (sub_c.position, sub_c.lost, sub_c.rejected) == (
                    sub_py.position, sub_py.lost, sub_py.rejected)
            assert_same(a_c, a_py)
            assert_same_latency(l_c, l_py)
    finally:
        remove_segment_files(name)


def test_without_latency_state_only_the_analytics_are_fed(segment_name: str) -> None:
    recs = make_records(3000, 4, seed=5)
    with SegmentWriter.create(segment_name, [SymbolInfo(f"S{i}") for i in range(4)],
                              ring_capacity=4096) as w, SegmentReader.attach(segment_name) as r:
        w.publish_batch(recs)
        sub = r.subscribe("oldest")
        a = Analytics(4, 16, use_c=True)
        got, ignored, lat_n, lat_sum = sub.read_analyse(10_000, 0, 0, a.c_state(), None, 0)
        assert (got, ignored, lat_n, lat_sum) == (3000, 0, 0, 0)
        a.applied_in_place(got, ignored, 0)
        assert a.records == 3000 and sub.position == 3000


def test_bad_state_is_a_clear_error(segment_name: str) -> None:
    with SegmentWriter.create(segment_name, [SymbolInfo("A")], ring_capacity=64) as w, \
            SegmentReader.attach(segment_name) as r:
        w.publish(0, 1, 1.0, 1.0, 1.0, 1.0, 1.0)
        sub = r.subscribe("oldest")
        with pytest.raises(TypeError, match="11-tuple"):
            sub.read_analyse(10, 0, 0, (1, 2), None, 0)
        a = Analytics(1, 4, use_c=True)
        state = list(a.c_state() or ())
        state[2] = np.zeros(3)  # buf far too small
        with pytest.raises(ValueError, match="buf"):
            sub.read_analyse(10, 0, 0, tuple(state), None, 0)
        assert sub.position == 0  # nothing consumed by a refused call


@pytest.mark.parametrize("torn", [[], [0], [5, 255, 256, 700], list(range(300, 560))])
def test_records_with_a_wrong_stamp_are_rejected_as_poll_batch_rejects_them(
        segment_name: str, torn: list[int]) -> None:
    """A stamp that is not its position's (a record being rewritten) is dropped and counted,
    alone, at a chunk's edges (read_analyse bins latencies per 256 records) and as a run
    across chunks, before and after latency_from; the figures equal the Python protocol's."""
    recs = make_records(1000, 4, seed=11)
    with SegmentWriter.create(segment_name, [SymbolInfo(f"S{i}") for i in range(4)],
                              ring_capacity=1024, ring_window=16) as w, \
            SegmentReader.attach(segment_name) as r:
        w.publish_batch(recs)
        for i in torn:  # as the writer leaves a record while it rewrites it: the stamp off
            w._ring["seq_lo"][i] = i + 1
        sub_c, sub_py = r.subscribe("oldest"), r.subscribe("oldest")
        sub_py._read_into = None
        a_c, a_py = Analytics(4, 16, use_c=True), Analytics(4, 16, use_c=False)
        l_c, l_py = LatencyHistogram(recent=100), LatencyHistogram(recent=100)
        now, latency_from = time.monotonic_ns(), 400
        got = _c_step(sub_c, a_c, l_c, 10_000, now, latency_from)
        assert got == _reference_step(sub_py, a_py, l_py, 10_000, now, latency_from)
        assert got == 1000 - len(torn) and sub_c.rejected == len(torn)
        assert (sub_c.position, sub_c.lost, sub_c.rejected) == (
            sub_py.position, sub_py.lost, sub_py.rejected)
        assert_same(a_c, a_py)
        assert (l_c.count, l_c.sum_ns) == (l_py.count, l_py.sum_ns)
        assert l_c.count == 600 - sum(1 for i in torn if i >= latency_from)
