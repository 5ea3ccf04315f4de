"""tradingd.producer.quality: interval, gaps where bars were due, and the refusal rule."""

from __future__ import annotations

import numpy as np

from tradingd.producer.loader import BAR_DTYPE, REJECT_REASONS, BadRow, LoadResult
from tradingd.producer.quality import find_gaps, format_interval, refusal, summarise

MIN = 60 * 10**9
HOUR = 60 * MIN
DAY = 24 * HOUR


def times(*texts: str) -> np.ndarray:
    return np.array(texts, "datetime64[ns]").astype(np.int64)


def result(event_ns: np.ndarray, rejected: int = 0) -> LoadResult:
    bars = np.zeros(len(event_ns), BAR_DTYPE)
    bars["event_ns"] = event_ns
    bars["volume"] = 1.0
    counts = dict.fromkeys(REJECT_REASONS, 0)
    counts["bad_number"] = rejected
    bad = [BadRow("f.csv", 2 + i, "bad_number", "x") for i in range(rejected)]
    return LoadResult("f.csv", bars, len(bars) + rejected, bad, counts)


def test_weekends_are_no_gaps_in_weekday_data_but_a_missing_weekday_is() -> None:
    days = np.arange(np.datetime64("2021-03-01"), np.datetime64("2021-04-01"))
    weekdays = days[np.is_busday(days)]
    t = np.delete(weekdays, 7).astype("datetime64[ns]").astype(np.int64)  # 2021-03-10
    count, missing, listed = find_gaps(t, DAY)
    assert (count, missing) == (1, 1)
    assert str(listed[0]) == "2021-03-09 -> 2021-03-11 (1 bar missing)"


def test_every_day_data_counts_missing_weekend_days() -> None:
    t = np.arange(np.datetime64("2021-03-01"), np.datetime64("2021-03-20")).astype(
        "datetime64[ns]").astype(np.int64)
    t = np.delete(t, [5, 6])  # Saturday and Sunday missing in data that has weekends
    assert find_gaps(t, DAY)[:2] == (1, 2)


def test_intraday_sessions_skip_nights_but_not_holes_within_a_session() -> None:
    day1 = np.arange(9 * 60 + 30, 16 * 60) * MIN + times("2021-03-01")[0]
    day2 = np.arange(9 * 60 + 30, 16 * 60) * MIN + times("2021-03-02")[0]
    day2 = np.delete(day2, range(100, 110))  # ten minutes missing
    t = np.concatenate([day1, day2])
    assert find_gaps(t, MIN)[:2] == (1, 10)


def test_around_the_clock_data_counts_every_missing_bar() -> None:
    t = np.arange(0, 3 * 24 * 60) * MIN + times("2021-03-01")[0]
    t = np.delete(t, range(1000, 1030))
    count, missing, _ = find_gaps(t, MIN)
    assert (count, missing) == (1, 30)


def test_forex_weekend_close_is_no_gap() -> None:
    start = times("2021-03-01")[0]  # a Monday
    t = np.arange(0, 14 * 24) * HOUR + start
    weekday = (t // DAY + 3) % 7
    hour = (t % DAY) // HOUR
    closed = (weekday == 5) | ((weekday == 4) & (hour >= 22)) | ((weekday == 6) & (hour < 22))
    assert find_gaps(t[~closed], HOUR)[:2] == (0, 0)


def test_summary_and_refusal() -> None:
    t = times("2021-03-01", "2021-03-02", "2021-03-03", "2021-03-04")
    s = summarise(result(t))
    assert (s.bars, s.rows, s.interval_ns, s.gaps, s.rejected) == (4, 4, DAY, 0, 0)
    assert refusal(s, 0.5) is None
    s = summarise(result(t[:1], rejected=2))
    assert s.reject_share == 2 / 3
    problem = refusal(s, 0.5)
    assert problem and "2 of 3 rows rejected (67%" in problem and "bad_number 2" in problem
    assert refusal(s, 0.7) is None
    empty = summarise(result(t[:0]))
    assert "no data rows" in (refusal(empty, 1.0) or "")


def test_format_interval() -> None:
    assert [format_interval(x) for x in (DAY, 2 * DAY, HOUR, 5 * MIN, 10**9, 0)] == [
        "1 day", "2 days", "1 h", "5 min", "1 s", "unknown"]
