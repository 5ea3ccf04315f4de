"""Formats as vendors write them: date and time in two columns, banners, formatted numbers,
fixed UTC offsets, strptime patterns on the fast path. Each case writes its own small file
and loads it three ways (fast path, exact per-row parser, 64-byte blocks), which must agree.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from loader_support import counts, load_every_way, ns, rejected, write

from tradingd.daemon.config import parse_config
from tradingd.errors import ConfigError, DataError
from tradingd.producer.loader import CsvFormat, csv_format, load_csv
from tradingd.producer.loader.formatted import (
    formatted_value,
    number_pattern,
    parse_formatted,
)
from tradingd.producer.loader.timestamps import time_parser, timestamp_parser

OHLCV = {"open": "Open", "high": "High", "low": "Low", "close": "Close", "volume": "Volume"}


def event_times(path: Path, fmt: CsvFormat) -> list[int]:
    return load_every_way(path, fmt).bars["event_ns"].tolist()


# -- date and time in two columns -------------------------------------------------------


def test_date_and_time_in_two_columns_european(tmp_path: Path) -> None:
    path = write(tmp_path, ["Date;Time;Open;High;Low;Close;Volume",
                            "02/01/2020;09:30;10;11;9;10.5;100",
                            "02/01/2020;09:31;10.5;11;10;10.7;200",
                            "02/01/2020;16:00;10.7;12;10;11;300",
                            "03/01/2020;09:30;11;12;10;11.5;400"])
    fmt = CsvFormat(delimiter=";", columns={**OHLCV, "timestamp": "Date", "time": "Time"},
                    timestamp_format="%d/%m/%Y")
    assert event_times(path, fmt) == [ns("2020-01-02T09:30"), ns("2020-01-02T09:31"),
                                      ns("2020-01-02T16:00"), ns("2020-01-03T09:30")]


def test_date_and_time_compact_columns_in_a_zone(tmp_path: Path) -> None:
    path = write(tmp_path, ["<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>",
                            "20200102,093000,10,11,9,10.5,100",
                            "20200102,093100,10,11,9,10.5,100",
                            "20200310,160000,10,11,9,10.5,100"])  # after the DST change
    fmt = CsvFormat(columns={"timestamp": "<DATE>", "time": "<TIME>", "open": "<OPEN>",
                             "high": "<HIGH>", "low": "<LOW>", "close": "<CLOSE>",
                             "volume": "<VOL>"},
                    timestamp_format="%Y%m%d", time_format="%H%M%S",
                    timezone="America/New_York")
    assert event_times(path, fmt) == [ns("2020-01-02T09:30", "America/New_York"),
                                      ns("2020-01-02T09:31", "America/New_York"),
                                      ns("2020-03-10T16:00", "America/New_York")]


def test_bad_time_column_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, ["Date,Time,Open,High,Low,Close,Volume",
                            "2020-01-02,09:30,10,11,9,10.5,100",
                            "2020-01-02,25:00,10,11,9,10.5,100",
                            "2020-01-02,,10,11,9,10.5,100"])
    fmt = CsvFormat(columns={**OHLCV, "timestamp": "Date", "time": "Time"})
    result = load_every_way(path, fmt)
    assert rejected(result) == [(3, "bad_timestamp"), (4, "empty_field")]
    assert "time '25:00'" in result.bad_rows[0].text


def test_time_format_must_hold_only_the_time() -> None:
    with pytest.raises(ValueError, match="time-of-day directives"):
        CsvFormat(columns={**OHLCV, "timestamp": "Date", "time": "Time"},
                  time_format="%Y %H:%M")


# -- banners ----------------------------------------------------------------------------


def test_skip_rows_skips_a_banner(tmp_path: Path) -> None:
    path = write(tmp_path, ["https://www.cryptodatadownload.com", "Exported 2024-01-02",
                            "Date,Open,High,Low,Close,Volume",
                            "2020-01-02,10,11,9,10.5,100",
                            "2020-01-03,10,11,9,bad,100"])
    result = load_every_way(path, CsvFormat(skip_rows=2))
    assert len(result.bars) == 1 and rejected(result) == [(5, "bad_number")]


def test_header_mismatch_below_a_banner_hints_skip_rows(tmp_path: Path) -> None:
    path = write(tmp_path, ["https://www.cryptodatadownload.com",
                            "Date,Open,High,Low,Close,Volume",
                            "2020-01-02,10,11,9,10.5,100"])
    with pytest.raises(DataError, match=r"data.csv:1: header does not match.*line 2 looks "
                                        r"like the header.*set skip_rows: 1"):
        load_csv(path, CsvFormat())


def test_skip_rows_past_the_end_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, ["banner", "Date,Open,High,Low,Close,Volume"])
    with pytest.raises(DataError, match="skip_rows reaches past the last line"):
        load_csv(path, CsvFormat(skip_rows=2))


def test_skip_rows_in_a_headerless_file(tmp_path: Path) -> None:
    path = write(tmp_path, ["# exported by a tool", "1577923200,10,11,9,10.5,100",
                            "1578009600,10,11,9,10.5,100"])
    fmt = CsvFormat(header=False, skip_rows=1, timestamp_format="unix_s",
                    columns={"timestamp": 0, "open": 1, "high": 2, "low": 3, "close": 4,
                             "volume": 5})
    assert event_times(path, fmt) == [ns("2020-01-02"), ns("2020-01-03")]


# -- formatted numbers ------------------------------------------------------------------

INVESTING = ['"Date","Price","Open","High","Low","Vol.","Change %"',
             '"01/16/2024","42,742.1","42,520.0","43,578.5","42,047.3","131.48K","0.52%"',
             '"01/15/2024","42,520.0","41,732.4","43,348.9","41,711.9","2.1M","1.89%"',
             '"01/12/2024","41,732.4","46,339.8","46,515.5","41,500.0","1.2b","-9.94%"']
INVESTING_FORMAT = CsvFormat(columns={"timestamp": "Date", "open": "Open", "high": "High",
                                      "low": "Low", "close": "Price", "volume": "Vol."},
                             timestamp_format="%m/%d/%Y", thousands=",",
                             volume_suffixes=True)


def test_investing_com_export_quoted_thousands_suffixes_newest_first(tmp_path: Path) -> None:
    result = load_every_way(write(tmp_path, INVESTING), INVESTING_FORMAT)
    assert result.newest_first and result.rows_rejected == 0
    bars = result.bars
    assert bars["event_ns"].tolist() == [ns("2024-01-12"), ns("2024-01-15"), ns("2024-01-16")]
    assert bars["close"].tolist() == [41732.4, 42520.0, 42742.1]
    assert bars["high"].tolist() == [46515.5, 43348.9, 43578.5]
    assert bars["volume"].tolist() == [1.2e9, 2.1e6, 131480.0]


def test_formatted_numbers_without_the_format_name_the_setting(tmp_path: Path) -> None:
    fmt = CsvFormat(columns=INVESTING_FORMAT.columns, timestamp_format="%m/%d/%Y")
    result = load_every_way(write(tmp_path, INVESTING), fmt)
    assert len(result.bars) == 0 and result.reject_counts == counts(bad_number=3)
    assert "set thousands: ','" in result.bad_rows[0].text


@pytest.mark.parametrize(("text", "hint"), [
    ("131.48K", "volume_suffixes: true"), ("1,5", "decimal: ','"),
    ("1.234,5", "thousands: '.' and decimal: ','"), ("-1.2%", "a percentage"),
])
def test_hints_for_formatted_numbers(tmp_path: Path, text: str, hint: str) -> None:
    path = write(tmp_path, ["Date;Open;High;Low;Close;Volume",
                            f"2020-01-02;10;11;9;10;{text}"])
    result = load_every_way(path, CsvFormat(delimiter=";"))
    assert rejected(result) == [(2, "bad_number")] and hint in result.bad_rows[0].text


def test_european_decimal_comma_and_dot_thousands(tmp_path: Path) -> None:
    path = write(tmp_path, ["Datum;Eröffnung;Hoch;Tief;Schluss;Volumen",
                            "02.01.2020;1.234,5;1.240,25;1.230;1.235,75;1.000.000",
                            "03.01.2020;1.235,75;1.236;1.200,5;1.201;0,5",
                            "06.01.2020;12,5;13;12;12,75;1.00.0"])  # bad grouping
    fmt = CsvFormat(delimiter=";", timestamp_format="%d.%m.%Y", thousands=".", decimal=",",
                    columns={"timestamp": "Datum", "open": "Eröffnung", "high": "Hoch",
                             "low": "Tief", "close": "Schluss", "volume": "Volumen"})
    result = load_every_way(path, fmt)
    assert result.bars["open"].tolist() == [1234.5, 1235.75]
    assert result.bars["low"].tolist() == [1230.0, 1200.5]
    assert result.bars["volume"].tolist() == [1e6, 0.5]
    assert rejected(result) == [(4, "bad_number")]
    assert "thousands separator '.' every 3 digits" in result.bad_rows[0].text


def test_formatted_number_parser_is_exact_or_defers() -> None:
    """Against the exact path's reading of each text: equal bits whenever ok."""
    rng = random.Random(7)
    texts = ["0", "1", "12", "123", "1,234", "12,345.678", "1,234,567.5", ",123", "1,23",
             "1234,567", "12.", ".5", "1.2.3", "", "999,999,999,999.999", "1K", "1.5m",
             "0.000001B", "131.48K", "12e3", "-5", "1,000.000000001", "7,"]
    for _ in range(3000):
        whole = rng.randrange(0, 10 ** rng.randrange(1, 10))
        frac = "".join(rng.choice("0123456789") for _ in range(rng.randrange(0, 8)))
        text = f"{whole:,}" if rng.random() < 0.7 else str(whole)
        if frac or rng.random() < 0.2:
            text += "." + frac
        if rng.random() < 0.3:
            text += rng.choice("KMBkmb")
        texts.append(text)
    raw = np.frombuffer(b"\0" * 32 + ",".join(texts).encode() + b"\0" * 64, np.uint8)
    starts, pos = [], 32
    for text in texts:
        starts.append(pos)
        pos += len(text) + 1
    s = np.array(starts, np.int64)
    e = s + np.array([len(t) for t in texts], np.int64)
    values, ok = parse_formatted(raw, s, e, ",", ".", True)
    pattern = number_pattern(",", ".")
    checked = 0
    for text, value, good in zip(texts, values.tolist(), ok.tolist(), strict=True):
        exact = formatted_value(text, pattern, ",", True)
        if good:
            assert exact is not None and value == exact, text
            checked += 1
    assert checked > 2000


# -- time zones -------------------------------------------------------------------------


@pytest.mark.parametrize(("zone", "offset_h"), [("+05:30", 5.5), ("-05:00", -5),
                                                ("UTC-5", -5), ("UTC+05:30", 5.5)])
def test_fixed_utc_offsets(tmp_path: Path, zone: str, offset_h: float) -> None:
    path = write(tmp_path, ["Date,Open,High,Low,Close,Volume",
                            "2020-01-02 09:30:00,10,11,9,10.5,100",
                            "2020-07-02 09:30:00,10,11,9,10.5,100"])
    got = event_times(path, CsvFormat(timezone=zone))
    shift = int(offset_h * 3600) * 10**9
    assert got == [ns("2020-01-02T09:30") - shift, ns("2020-07-02T09:30") - shift]


def test_etc_gmt_is_refused_with_what_it_means() -> None:
    with pytest.raises(ValueError, match=r"'Etc/GMT-5' is POSIX notation with the sign "
                                         r"inverted: it means UTC\+05:00"):
        CsvFormat(timezone="Etc/GMT-5")
    cfg = "producer: {formats: {f: {timezone: Etc/GMT+5}}}"
    with pytest.raises(ConfigError, match=r"producer.formats.f.timezone.*it means "
                                          r"UTC-05:00.*'-05:00'"):
        parse_config(cfg, Path("/tmp/x.yaml"))


def test_config_formats_carry_every_new_key() -> None:
    cfg = parse_config("""
producer:
  formats:
    mt4:
      delimiter: ";"
      skip_rows: 1
      columns: {timestamp: Date, time: Time, volume: null}
      timestamp_format: "%Y.%m.%d"
      time_format: "%H:%M"
      timezone: "+02:00"
      thousands: " "
      decimal: ","
      volume_suffixes: true
""", Path("/tmp/x.yaml"))
    fmt = csv_format(cfg.producer.formats["mt4"])
    assert (fmt.skip_rows, fmt.time_format, fmt.timezone, fmt.thousands, fmt.decimal,
            fmt.volume_suffixes) == (1, "%H:%M", "+02:00", " ", ",", True)
    assert fmt.columns["time"] == "Time" and "volume" not in fmt.columns
    with pytest.raises(ConfigError, match="thousands and decimal are both"):
        parse_config("producer: {formats: {f: {thousands: ',', decimal: ','}}}",
                     Path("/tmp/x.yaml"))


# -- strptime patterns on the fast path ---------------------------------------------------


@pytest.mark.parametrize(("pattern", "text"), [
    ("%Y%m%d %H%M%S", "20200102 093000"),
    ("%d/%m/%Y %H:%M", "02/01/2020 09:30"),
    ("%m/%d/%Y %I:%M %p", "01/02/2020 09:30 PM"),
    ("%d.%m.%y", "02.01.20"),
    ("%b %d, %Y", "Jan 02, 2020"),
    ("%Y-%m-%d %H:%M:%S.%f", "2020-01-02 09:30:00.250"),
    ("%Y.%m.%d", "2020.01.02"),
])
def test_strptime_patterns_compile_to_the_fast_path(tmp_path: Path, pattern: str,
                                                     text: str) -> None:
    assert timestamp_parser(pattern).layouts, pattern  # type: ignore[attr-defined]
    lines = ["Date,Open,High,Low,Close,Volume"]
    lines += [f'"{text}",10,11,9,10.5,100' if "," in text else f"{text},10,11,9,10.5,100"]
    result = load_every_way(write(tmp_path, lines), CsvFormat(timestamp_format=pattern))
    from datetime import datetime
    assert result.bars["event_ns"].tolist() == [ns(datetime.strptime(text, pattern)
                                                   .isoformat())]


def test_fast_path_agrees_with_strptime_on_many_texts(tmp_path: Path) -> None:
    """Valid and invalid texts of several patterns: the three ways agree (load_every_way)
    and every good bar equals strptime's reading."""
    from datetime import datetime, timedelta
    rng = random.Random(3)
    for pattern in ("%m/%d/%Y %I:%M %p", "%d-%b-%y", "%Y%m%d %H%M%S"):
        lines = ["Date,Open,High,Low,Close,Volume"]
        start = datetime(1995, 1, 1)
        for i in range(400):
            moment = start + timedelta(minutes=7919 * i)
            text = moment.strftime(pattern)
            if rng.random() < 0.1:  # dirt: a wrong byte somewhere
                k = rng.randrange(len(text))
                text = text[:k] + rng.choice("x9 /:") + text[k + 1:]
            lines.append(f"{text},10,11,9,10.5,100")
        result = load_every_way(write(tmp_path, lines, name=f"p{pattern[1]}.csv"),
                                CsvFormat(timestamp_format=pattern))
        good = {row.line for row in result.bad_rows}
        expected = []
        for number, line in enumerate(lines[1:], 2):
            if number in good:
                continue
            expected.append(ns(datetime.strptime(line.split(",")[0].strip(), pattern)
                                  .isoformat()))
        assert sorted(set(expected)) == result.bars["event_ns"].tolist()


def test_time_parser_layouts_exist_for_common_time_formats() -> None:
    for spec in ("iso", "%H%M%S", "%H:%M", "%I:%M %p"):
        assert time_parser(spec).layouts, spec  # type: ignore[attr-defined]


# -- the fast path takes these rows (none left to the exact path) ---------------------------


def rows_left_to_the_exact_path(path: Path, fmt: CsvFormat,
                                monkeypatch: pytest.MonkeyPatch) -> int:
    """Lines the exact path parsed, with the C parser and with the numpy fast path (the
    larger count)."""
    from tradingd.producer.loader import load as load_module
    from tradingd.producer.loader import native
    seen = [0]
    original = load_module.parse_slow
    original_lines = native.parse_slow_lines

    def counting(block, lines, todo, plan, log):  # type: ignore[no-untyped-def]
        seen[0] += len(todo)
        return original(block, lines, todo, plan, log)

    def counting_lines(block, numbers, starts, ends, plan, log):  # type: ignore[no-untyped-def]
        seen[0] += len(numbers)
        return original_lines(block, numbers, starts, ends, plan, log)

    monkeypatch.setattr(load_module, "parse_slow", counting)
    monkeypatch.setattr(native, "parse_slow_lines", counting_lines)
    counts = []
    for c_parser in (True, False):
        seen[0] = 0
        load_csv(path, fmt, c_parser=c_parser)
        counts.append(seen[0])
    return max(counts)


@pytest.mark.parametrize(("lines", "fmt"), [
    (INVESTING, INVESTING_FORMAT),
    (["Date;Time;Open;High;Low;Close;Volume", "02/01/2020;09:30;1,5;2;1;1,75;1.000",
      "02/01/2020;09:31;1,5;2;1;1,75;2.000"],
     CsvFormat(delimiter=";", columns={**OHLCV, "timestamp": "Date", "time": "Time"},
               timestamp_format="%d/%m/%Y",
               thousands=".", decimal=",")),
    (["Date,Open,High,Low,Close,Volume", "20200102 093000,10,11,9,10.5,100",
      "20200102 093100,10,11,9,10.5,100"], CsvFormat(timestamp_format="%Y%m%d %H%M%S")),
    (["Date,Open,High,Low,Close,Volume", '"2020-01-02","10","11","9","10.5","100"'],
     CsvFormat(timezone="-05:00")),
])
def test_clean_rows_of_the_new_formats_take_the_fast_path(
        tmp_path: Path, lines: list[str], fmt: CsvFormat,
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, lines)
    assert rows_left_to_the_exact_path(path, fmt, monkeypatch) == 0
    assert load_csv(path, fmt).rows_rejected == 0


def test_bit_parallel_quote_parity_equals_a_running_count() -> None:
    from tradingd.producer.loader.tokens import _inside_quotes
    rng = np.random.default_rng(5)
    for n in (1, 63, 64, 65, 1000, 4099):
        quote = rng.random(n) < 0.1
        expected = (np.cumsum(quote) & 1).astype(bool)
        assert np.array_equal(_inside_quotes(quote), expected), n


def test_random_quoting_agrees_between_the_fast_and_the_exact_path(tmp_path: Path) -> None:
    """Quotes around whole fields, inside fields, escaped, unbalanced, across lines:
    whatever the tokeniser accepts must parse as the csv module does (load_every_way)."""
    rng = random.Random(11)
    fmt = CsvFormat(columns={**OHLCV, "timestamp": "Date"}, thousands=",",
                    volume_suffixes=True)
    for round_ in range(6):
        lines = ["Date,Open,High,Low,Close,Volume"]
        for i in range(300):
            cells = [f"2020-01-01 00:{i // 60:02d}:{i % 60:02d}", "1,010.5", "1,020", "1,000",
                     "1,015.25", rng.choice(["1.5K", "12", "2M", "7"])]
            out = []
            for cell in cells:
                roll = rng.random()
                if roll < 0.6 or "," in cell:
                    text = f'"{cell}"'
                    if roll > 0.97:
                        text = f'"{cell[:1]}""{cell[1:]}"'  # an escaped quote inside
                    elif roll > 0.95:
                        text = f' "{cell}"'  # a space before the quote
                else:
                    text = cell
                out.append(text)
            if round_ % 2 and rng.random() < 0.02:
                out[-1] = out[-1][:-1]  # an unbalanced quote (odd rounds only)
            lines.append(",".join(out))
        result = load_every_way(write(tmp_path, lines, name=f"q{round_}.csv"), fmt)
        assert len(result.bars) + result.rows_rejected == result.rows_read
        assert len(result.bars) > 200, result.reject_counts
