"""Replay: merging symbols by event time, fast and paced publishing, looping and stopping.

Pacing is driven by a ManualClock, so every timing assertion is exact. One test replays
into a real segment and reads it back through SegmentReader.
"""

from __future__ import annotations

import numpy as np
import pytest

from tradingd.clock import ManualClock
from tradingd.producer.replay import (
    RateMeter,
    Replayer,
    ReplaySettings,
    bar_interval_ns,
    build_timeline,
    human,
)
from tradingd.segment import layout as L
from tradingd.segment.model import SymbolInfo
from tradingd.segment.reader import SegmentReader
from tradingd.segment.writer import SegmentWriter

SEC = 1_000_000_000
DAY = 86_400 * SEC
BAR_DTYPE = np.dtype([("event_ns", "<i8"), ("open", "<f8"), ("high", "<f8"),
                      ("low", "<f8"), ("close", "<f8"), ("volume", "<f8")])


def bars(times: list[int], base: float = 100.0) -> np.ndarray:
    """Bars at ``times`` whose close encodes (base + index), to trace each record."""
    out = np.zeros(len(times), BAR_DTYPE)
    out["event_ns"] = times
    out["close"] = base + np.arange(len(times))
    out["open"] = out["close"]
    out["high"] = out["close"] + 1
    out["low"] = out["close"] - 1
    out["volume"] = 1000 + np.arange(len(times))
    return out


class FakeSink:
    """Records what the replayer publishes (copies: the replayer reuses its buffers)."""

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []
        self.counters: dict[str, int] = {}
        self.states: list[int] = []

    def publish_batch(self, records: np.ndarray) -> int:
        assert records.dtype == L.RECORD_DTYPE
        self.batches.append(records.copy())
        return 0

    def set_counter(self, field: str, value: int) -> None:
        self.counters[field] = value

    def set_state(self, state: int) -> None:
        self.states.append(state)

    @property
    def records(self) -> np.ndarray:
        return np.concatenate(self.batches) if self.batches else np.empty(0, L.RECORD_DTYPE)


T0 = 1_600_000_000 * SEC  # a data timestamp (2020-09-13)


def three_symbols() -> list[np.ndarray]:
    # symbol 0 daily, symbol 1 daily offset by 12 h, symbol 2 shares timestamps with 0
    return [
        bars([T0, T0 + DAY, T0 + 2 * DAY], base=100),
        bars([T0 + DAY // 2, T0 + DAY + DAY // 2], base=200),
        bars([T0, T0 + DAY], base=300),
    ]


def test_timeline_merges_by_event_time_with_stable_ties() -> None:
    tl = build_timeline(three_symbols())
    r = tl.records
    assert tl.total == 7 and tl.per_symbol == (3, 2, 2)
    assert list(r["event_ns"]) == sorted(r["event_ns"])
    # equal timestamps keep configuration order: symbol 0 before symbol 2
    assert list(zip(r["symbol_id"].tolist(), r["close"].tolist(), strict=True)) == [
        (0, 100.0), (2, 300.0), (1, 200.0), (0, 101.0), (2, 301.0), (1, 201.0), (0, 102.0)]
    assert r["seq_lo"].max() == 0 and r["publish_ns"].max() == 0  # the writer's fields
    # span (2 days) + one bar (the smallest nominal interval: 1 day)
    assert tl.loop_shift_ns == 2 * DAY + DAY


def test_equal_timestamps_within_a_file_keep_file_order() -> None:
    tl = build_timeline([bars([T0, T0, T0 + 5], base=1), bars([T0], base=9)])
    assert tl.records["close"].tolist() == [1.0, 2.0, 9.0, 3.0]


def test_bar_interval_is_the_median_positive_gap() -> None:
    weekdays = [T0 + d * DAY for d in (0, 1, 2, 3, 4, 7, 8, 9, 10, 11, 14)]
    assert bar_interval_ns(np.array(weekdays)) == DAY
    assert bar_interval_ns(np.array([T0])) == 0
    assert bar_interval_ns(np.array([T0, T0])) == 0


def test_fast_mode_publishes_batches_in_order_and_loops_with_increasing_times() -> None:
    tl = build_timeline(three_symbols())
    sink = FakeSink()
    rp = Replayer(tl, sink, ReplaySettings(mode="fast", fast_batch_size=3, at_end="loop"),
                  clock=ManualClock())
    sizes = [rp.step().published for _ in range(6)]
    # 3 + 3 + 1 (the end of the data: loop in the same step), then loop 2
    assert sizes == [3, 3, 1, 3, 3, 1]
    assert sink.counters == {"replay_loops": 2}
    assert rp.loops == 2
    out = sink.records
    first, second = out[:7], out[7:14]
    assert np.array_equal(first["close"], tl.records["close"])
    assert np.array_equal(second["close"], tl.records["close"])
    assert np.array_equal(second["event_ns"] - first["event_ns"],
                          np.full(7, tl.loop_shift_ns))
    assert int(second["event_ns"][0]) > int(first["event_ns"][-1])  # strictly later
    assert np.all(np.diff(out["event_ns"]) >= 0)
    assert rp.published == len(out)
    assert rp.published_by_symbol.tolist() == np.bincount(out["symbol_id"]).tolist()
    assert sink.states == []  # still live


def test_fast_mode_stop_at_end_marks_finished_and_publishes_nothing_more() -> None:
    tl = build_timeline(three_symbols())
    sink = FakeSink()
    rp = Replayer(tl, sink, ReplaySettings(mode="fast", fast_batch_size=100, at_end="stop"),
                  clock=ManualClock())
    res = rp.step()
    assert res.published == 7 and res.finished
    assert sink.states == [L.STATE_FINISHED]
    again = rp.step()
    assert again.published == 0 and again.finished and again.next_due_ns is None
    assert len(sink.records) == 7 and sink.states == [L.STATE_FINISHED]
    assert rp.progress().status_text() == "replay finished: 7 ticks published; heartbeating"


def test_paced_mode_follows_the_data_clock_times_speed() -> None:
    clock = ManualClock()
    tl = build_timeline(three_symbols())
    sink = FakeSink()
    speed = 86_400.0  # one data day per wall second
    rp = Replayer(tl, sink, ReplaySettings(mode="paced", speed=speed, batch_size=100,
                                           at_end="stop"), clock=clock)
    start = clock.monotonic_ns()
    res = rp.step()
    assert res.published == 2  # both records at T0
    res = rp.step()
    assert res.published == 0
    assert res.next_due_ns == start + SEC // 2  # T0 + 12 h -> half a wall second
    clock.advance(0.5 - 1e-6)
    assert rp.step().published == 0
    clock.advance(1e-6)
    res = rp.step()
    assert res.published == 1 and sink.records["close"][-1] == 200.0
    # a batch holds every record due by now: jump 1.5 s ahead -> 3 records at once
    clock.advance(1.0)
    res = rp.step()
    assert res.published == 3
    assert sink.records["close"].tolist()[-3:] == [101.0, 301.0, 201.0]
    clock.advance(0.5)
    res = rp.step()
    assert res.published == 1 and res.finished
    assert sink.states == [L.STATE_FINISHED]


def test_paced_batches_are_capped_by_batch_size() -> None:
    clock = ManualClock()
    times = [T0 + i * SEC for i in range(50)]
    rp = Replayer(build_timeline([bars(times)]), FakeSink(),
                  ReplaySettings(mode="paced", speed=1.0, batch_size=8, at_end="stop"),
                  clock=clock)
    clock.advance(0.0)
    assert rp.step().published == 1  # only the first record is due at the start
    clock.advance(30)  # 30 more due, at most 8 per step
    got = [rp.step().published for _ in range(5)]
    assert got == [8, 8, 8, 6, 0]
    assert rp.position == 31


def test_paced_loop_continues_the_time_line() -> None:
    clock = ManualClock()
    times = [T0, T0 + 10 * SEC]  # span 10 s, bar 10 s -> loop shift 20 s
    sink = FakeSink()
    rp = Replayer(build_timeline([bars(times)]), sink,
                  ReplaySettings(mode="paced", speed=2.0, batch_size=10, at_end="loop"),
                  clock=clock)
    start = clock.monotonic_ns()
    assert rp.step().published == 1
    clock.advance(5.0)  # 10 data seconds
    assert rp.step().published == 1  # second record; end of data -> loop
    assert rp.loops == 1 and sink.counters["replay_loops"] == 1
    res = rp.step()
    assert res.published == 0
    # loop 2's first record: data time T0 + 20 s -> 10 wall seconds after the start
    assert res.next_due_ns == start + 10 * SEC
    clock.advance(5.0)
    assert rp.step().published == 1
    assert sink.records["event_ns"].tolist() == [T0, T0 + 10 * SEC, T0 + 20 * SEC]


def test_loop_shift_wraps_before_int64_overflows() -> None:
    last = 9_000_000_000 * SEC  # close to the int64 limit (2255)
    tl = build_timeline([bars([last - 100 * DAY, last])])
    rp = Replayer(tl, FakeSink(), ReplaySettings(mode="fast", fast_batch_size=10, at_end="loop"),
                  clock=ManualClock())
    limit = int(np.iinfo(np.int64).max)
    fits = rp.shifts_that_fit
    assert fits >= 2
    assert last + (fits - 1) * tl.loop_shift_ns <= limit < last + fits * tl.loop_shift_ns
    for _ in range(2 * fits + 2):
        rp.step()
    assert rp.time_wraps >= 1
    out = np.concatenate(rp._sink.batches)  # type: ignore[attr-defined]
    assert int(out["event_ns"].max()) <= limit
    assert int(out["event_ns"].min()) == last - 100 * DAY


def test_empty_data_finishes_at_once() -> None:
    sink = FakeSink()
    rp = Replayer(build_timeline([bars([])]), sink,
                  ReplaySettings(mode="paced", at_end="loop"), clock=ManualClock())
    res = rp.step()
    assert res.finished and res.published == 0
    assert sink.states == [L.STATE_FINISHED]


def test_progress_and_status_text_with_rate() -> None:
    clock = ManualClock()
    times = [T0 + i * SEC for i in range(3000)]
    rp = Replayer(build_timeline([bars(times)]), FakeSink(),
                  ReplaySettings(mode="fast", fast_batch_size=1000, at_end="loop"), clock=clock)
    rp.step()
    clock.advance(0.5)
    rp.step()
    clock.advance(0.5)
    p = rp.progress()
    assert (p.published, p.position, p.total, p.loops) == (2000, 2000, 3000, 0)
    assert p.rate == pytest.approx(2000.0)
    assert p.status_text() == "replaying 2k/3k ticks at 2k/s"
    rp.step()  # reaches the end -> loop
    rp.step()
    assert rp.progress().status_text().endswith(", loop 2")


def test_rate_meter_decays_when_nothing_is_published() -> None:
    m = RateMeter(window_s=2.0)
    m.add(0, 0)
    m.add(SEC, 1000)
    assert m.rate(SEC, 1000) == pytest.approx(1000.0)
    assert m.rate(10 * SEC, 1000) == 0.0


@pytest.mark.parametrize(("n", "text"), [(0, "0"), (950, "950"), (1000, "1k"),
                                         (12_345, "12.3k"), (1_234_567, "1.2M"),
                                         (3_400_000, "3.4M"), (250_000, "250k"),
                                         (2.5e9, "2.5G")])
def test_human(n: float, text: str) -> None:
    assert human(n) == text


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="mode"):
        ReplaySettings(mode="slow")
    with pytest.raises(ValueError, match="speed"):
        ReplaySettings(speed=0)
    with pytest.raises(ValueError, match="at_end"):
        ReplaySettings(at_end="rewind")


def test_replay_into_a_real_segment(segment_name: str) -> None:
    tl = build_timeline(three_symbols())
    symbols = [SymbolInfo("A", record_count=3), SymbolInfo("B", record_count=2),
               SymbolInfo("C", record_count=2)]
    with SegmentWriter.create(segment_name, symbols, ring_capacity=64) as w:
        rp = Replayer(tl, w, ReplaySettings(mode="fast", fast_batch_size=4, at_end="loop"),
                      clock=ManualClock())
        with SegmentReader.attach(segment_name) as r:
            sub = r.subscribe("oldest")
            for _ in range(3):  # 4 + 3 (end of data: loop) + 4
                rp.step()
            got = sub.poll_batch(100)
            assert got["seq_lo"].tolist() == list(range(11))
            assert got["close"].tolist()[:7] == tl.records["close"].tolist()
            assert got["event_ns"].tolist()[7:] == (
                tl.records["event_ns"][:4] + tl.loop_shift_ns).tolist()
            assert r.header()["replay_loops"] == 1
            latest = r.latest(1)
            # symbol 1's last record so far: loop 2's third record (seq 9)
            assert latest is not None and (latest.seq, latest.price) == (9, 200.0)
            assert latest.event_ns == T0 + DAY // 2 + tl.loop_shift_ns
            rp.settings = ReplaySettings(mode="fast", fast_batch_size=4, at_end="stop")
            while not rp.step().finished:
                pass
            assert r.state == L.STATE_FINISHED


def test_align_start_makes_every_symbol_begin_together() -> None:
    from tradingd.producer.replay import build_timeline
    day = 86_400 * 10**9
    a = np.zeros(3, dtype=[("event_ns", "<i8"), ("open", "<f8"), ("high", "<f8"),
                           ("low", "<f8"), ("close", "<f8"), ("volume", "<f8")])
    b = a.copy()
    a["event_ns"] = [0, day, 2 * day]
    b["event_ns"] = [100 * day, 100 * day + 3600 * 10**9, 101 * day]
    b["close"] = [7, 8, 9]
    real = build_timeline([a, b])
    assert real.records["symbol_id"].tolist() == [0, 0, 0, 1, 1, 1]
    aligned = build_timeline([a, b], align="start")
    recs = aligned.records
    assert recs["symbol_id"].tolist() == [0, 1, 1, 0, 1, 0]
    assert recs["event_ns"][recs["symbol_id"] == 1].tolist() == [0, 3600 * 10**9, day]
    assert recs["close"][recs["symbol_id"] == 1].tolist() == [7, 8, 9]
    with pytest.raises(ValueError, match="align"):
        build_timeline([a], align="end")


def test_the_producer_passes_fast_batch_size_on() -> None:
    import dataclasses

    from tradingd.daemon.config import default_config
    from tradingd.daemon.notify import Notifier
    from tradingd.daemon.signals import StopFlag
    from tradingd.producer.daemon import Producer

    cfg = default_config()
    replay = dataclasses.replace(cfg.producer.replay, mode="fast", fast_batch_size=4096)
    cfg = dataclasses.replace(cfg, producer=dataclasses.replace(cfg.producer, replay=replay))
    with StopFlag(install=False) as stop:
        settings = Producer(cfg, notifier=Notifier(env={}), stop=stop)._replay_settings()
    assert (settings.mode, settings.fast_batch_size, settings.step_records) == ("fast", 4096,
                                                                                4096)
    assert dataclasses.replace(settings, mode="paced").step_records == settings.batch_size
    with pytest.raises(ValueError, match="fast batch"):
        ReplaySettings(fast_batch_size=0)
