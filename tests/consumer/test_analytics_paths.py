"""The analytics' C one-pass update and its numpy path give the figures of the reference.

``test_analytics.py`` checks the figures against a record-by-record reference; here
hypothesis draws the symbol count (up to the segment's 4,096), window, batch splits and
out-of-capacity ids, and both implementations must match that reference and each other.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_analytics import assert_matches, make_records, reference

from tradingd.clock import ManualClock
from tradingd.consumer.analytics import Analytics
from tradingd.segment.fastpath import FAST

IMPLS = ["numpy", *(["c"] if FAST is not None else [])]


def feed(impl: str, recs: np.ndarray, capacity: int, window: int, cuts: list[int]) -> Analytics:
    a = Analytics(capacity, window, clock=ManualClock(), stage_records=300,
                  use_c=impl == "c")
    assert a.implementation == impl
    pos = 0
    for cut in [*sorted(cuts), len(recs)]:
        if cut > pos:
            a.update(recs[pos:cut])
            pos = cut
    return a


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(symbols=st.sampled_from([1, 3, 8, 9, 64, 4096]), window=st.sampled_from([2, 5, 64, 600]),
       n=st.integers(1, 6000), seed=st.integers(0, 2**16),
       cuts=st.lists(st.integers(0, 6000), max_size=6))
def test_both_paths_match_the_reference(impl: str, symbols: int, window: int, n: int,
                                        seed: int, cuts: list[int]) -> None:
    recs = make_records(n, symbols, seed=seed)
    a = feed(impl, recs, max(symbols, 1), window, [c for c in cuts if c < n])
    assert a.records == n
    assert_matches(a, reference(recs, window))


@pytest.mark.parametrize("impl", IMPLS)
def test_a_capacity_beyond_4096_symbols(impl: str) -> None:  # C: heap slot tables
    recs = make_records(9000, 5000, seed=11)
    a = feed(impl, recs, 5000, 3, [4000])
    assert_matches(a, reference(recs, 3))


@pytest.mark.parametrize("impl", IMPLS)
def test_ids_beyond_capacity_are_ignored_by_both(impl: str) -> None:
    recs = make_records(5000, 12, seed=3)
    a = feed(impl, recs, 8, 16, [2500])  # ids 8..11 do not fit
    kept = recs[recs["symbol_id"] < 8]
    assert a.ignored == len(recs) - len(kept)
    assert_matches(a, reference(kept, 16))


@pytest.mark.skipif(FAST is None, reason="C fast path not built")
def test_c_and_numpy_states_are_identical() -> None:
    recs = make_records(20000, 4096, seed=5)
    a, b = (feed(impl, recs, 4096, 8, [7000, 7001, 15000]) for impl in ("c", "numpy"))
    for name in ("_count", "_last", "_prev", "_first", "_last_volume", "_last_event",
                 "_last_publish"):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name
    assert np.allclose(a._total_volume, b._total_volume, rtol=1e-12)
    assert np.array_equal(a._buf, b._buf)


def test_forcing_c_without_the_extension_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import tradingd.consumer.analytics as mod
    monkeypatch.setattr(mod, "FAST", None)
    with pytest.raises(ValueError, match="not built"):
        Analytics(4, 8, use_c=True)
    assert Analytics(4, 8).implementation == "numpy"
