"""The latency histogram's C split of a batch into publish_ns runs gives the same figures."""

from __future__ import annotations

import numpy as np
import pytest

from tradingd.consumer import latency as lat_mod
from tradingd.consumer.latency import LatencyHistogram
from tradingd.segment import layout as L


def batch(n: int, run: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    recs = np.zeros(n, L.RECORD_DTYPE)
    steps = rng.integers(0, 3_000_000, n // run + 1)
    recs["publish_ns"] = np.repeat(10**12 + np.cumsum(steps), run)[:n]
    return recs


def figures(h: LatencyHistogram) -> tuple[list[tuple[float, int]], float, int, list[int]]:
    return h.cumulative(), h.sum_seconds, h.total, sorted(h.recent().tolist())


@pytest.mark.skipif(lat_mod._LATENCY_OBSERVE is None, reason="C fast path not built")
@pytest.mark.parametrize(("n", "run"), [(3000, 1024), (5000, 1), (100_000, 1024), (70_000, 7)])
def test_runs_path_matches_the_per_record_path(n: int, run: int) -> None:
    now = 10**12 + 2 * 3_000_000 * (n // run + 1)
    by_runs, by_records = LatencyHistogram(recent=65536), LatencyHistogram(recent=65536)
    recs = batch(n, run)
    for part in (recs[:n // 3], recs[n // 3:]):
        by_runs.observe_records(now, part)
        by_records.observe_ns(np.int64(now) - part["publish_ns"].astype(np.int64))
    assert figures(by_runs) == figures(by_records)
