"""tradingd.producer.loader: the bundled files, every kind of dirt, layouts, errors, exactness.

Each dirty-input case is loaded three ways (vectorised fast path with the default block,
every row through the exact per-row parser, and 64-byte blocks so that rows straddle
block boundaries) and must give the same bars, reasons, line numbers and counts.
"""

from __future__ import annotations

import csv
import re
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from loader_support import counts, load_every_way, ns, rejected, write

from tradingd import constants as C
from tradingd.errors import ConfigError, DataError, StrictDataError
from tradingd.producer.loader import (
    BUILTIN_FORMATS,
    MAX_BAD_ROW_DETAILS,
    REJECT_REASONS,
    BadRow,
    CsvFormat,
    csv_format,
    load_csv,
)
from tradingd.producer.loader.swar import Scratch, Words, parse_floats
from tradingd.producer.loader.timestamps import ZoneConverter

DATA = Path(__file__).resolve().parents[2] / "market_data"
YAHOO = BUILTIN_FORMATS["yahoo"]
HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"
CLEAN = [
    "2020-01-02,10.0,11.0,9.5,10.5,10.5,1000",
    "2020-01-03,10.5,12.0,10.0,11.0,11.0,2000",
    "2020-01-06,11.0,11.5,10.5,11.2,11.2,1500",
    "2020-01-07,11.2,11.9,11.1,11.8,11.8,1700",
]


# ---------------------------------------------------------------------------------------
# the bundled files
# ---------------------------------------------------------------------------------------

SHIPPED = [
    ("stocks/AAPL.csv", "yahoo", 10538),
    ("stocks/TSLA.csv", "yahoo", 3085),
    ("crypto/BTC-USD.csv", "yahoo", 1828),
    ("forex/EURUSD.csv", "pandas_index", 5000),
]


def rows_of(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))[1:]


@pytest.mark.parametrize(("name", "fmt", "expected_rows"), SHIPPED)
def test_shipped_file_loads_completely(name: str, fmt: str, expected_rows: int) -> None:
    path = DATA / name
    result = load_csv(path, BUILTIN_FORMATS[fmt])
    text_rows = rows_of(path)
    assert len(text_rows) == expected_rows
    assert result.rows_read == expected_rows
    assert len(result.bars) == expected_rows
    assert result.reject_counts == counts() and result.bad_rows == []
    volume_col = 6 if fmt == "yahoo" else 5
    for bar, row in ((result.bars[0], text_rows[0]), (result.bars[-1], text_rows[-1])):
        assert int(bar["event_ns"]) == ns(row[0])
        assert [float(bar[k]) for k in ("open", "high", "low", "close")] == [
            float(x) for x in row[1:5]]
        assert float(bar["volume"]) == float(row[volume_col])
    # every value, not just the ends, equals what float() reads from the text
    assert np.array_equal(result.bars["close"], [float(r[4]) for r in text_rows])
    assert np.array_equal(result.bars["volume"], [float(r[volume_col]) for r in text_rows])


@pytest.mark.parametrize(("name", "fmt", "expected_rows"), SHIPPED)
def test_fast_path_equals_the_exact_parser_on_shipped_files(name: str, fmt: str,
                                                            expected_rows: int) -> None:
    fast = load_csv(DATA / name, BUILTIN_FORMATS[fmt])
    exact = load_csv(DATA / name, BUILTIN_FORMATS[fmt], fast_path=False, block_size=4096)
    numpy_path = load_csv(DATA / name, BUILTIN_FORMATS[fmt], c_parser=False)
    assert np.array_equal(fast.bars, exact.bars)
    assert fast.bars.tobytes() == numpy_path.bars.tobytes()


def test_shipped_values_known_from_the_provenance_notes() -> None:
    tsla = load_csv(DATA / "stocks/TSLA.csv", YAHOO).bars
    assert tsla[0]["open"] == 1.266667 and tsla[0]["high"] == 1.666667
    assert tsla[-1]["close"] == 287.809998
    btc = load_csv(DATA / "crypto/BTC-USD.csv", YAHOO).bars
    assert btc["volume"].max() > 2**32
    big = btc["volume"][btc["volume"] > 2**32]
    assert np.array_equal(big, np.round(big))  # integers above 2**32, read exactly
    raw = next(r for r in rows_of(DATA / "crypto/BTC-USD.csv") if int(r[6]) > 2**32)
    assert int(btc["volume"][btc["volume"] > 2**32][0]) == int(raw[6])
    eur = load_csv(DATA / "forex/EURUSD.csv", BUILTIN_FORMATS["pandas_index"]).bars
    assert int(eur[0]["event_ns"]) == ns("2017-04-19 09:00:00")
    assert np.all(np.diff(eur["event_ns"]) % (3600 * 10**9) == 0)
    aapl = load_csv(DATA / "stocks/AAPL.csv", YAHOO).bars
    assert aapl[aapl["event_ns"] == ns("1981-08-10")]["volume"][0] == 0.0  # zero volume kept


def test_shipped_files_match_provenance_checksums() -> None:
    import hashlib

    notes = (DATA / "PROVENANCE.md").read_text()
    for name, _, _ in SHIPPED:
        digest = hashlib.sha256((DATA / name).read_bytes()).hexdigest()
        assert digest in notes, name


# ---------------------------------------------------------------------------------------
# the dirty-input matrix
# ---------------------------------------------------------------------------------------

# (case, line inserted after CLEAN[1] (file line 4), expected reason, detail fragment)
DIRT = [
    ("null row", "2020-01-04,null,null,null,null,null,null", "null_value", "open is 'null'"),
    ("NaN value", "2020-01-04,10,11,9,NaN,10,100", "null_value", "close is 'NaN'"),
    ("empty field", "2020-01-04,10.0,,9.5,10.5,10.5,1000", "empty_field", "high is empty"),
    ("empty timestamp", ",10.0,11,9.5,10.5,10.5,1000", "empty_field", "timestamp is empty"),
    ("zero price", "2020-01-04,0,11.0,9.5,10.5,10.5,1000", "non_positive_price",
     "open 0.0 <= 0"),
    ("negative price", "2020-01-04,10.0,11.0,-9.5,10.5,10.5,1000", "non_positive_price",
     "low -9.5 <= 0"),
    ("high below low", "2020-01-04,10.0,9.0,10.0,10.0,10.0,1000", "high_below_low",
     "high 9.0 < low 10.0"),
    ("open above high", "2020-01-04,12.0,11.0,9.5,10.5,10.5,1000", "price_outside_range",
     "open 12.0 outside [low 9.5, high 11.0]"),
    ("close below low", "2020-01-04,10.0,11.0,9.5,9.0,9.0,1000", "price_outside_range",
     "close 9.0 outside [low 9.5, high 11.0]"),
    ("negative volume", "2020-01-04,10.0,11.0,9.5,10.5,10.5,-5", "negative_volume",
     "volume -5.0 < 0"),
    ("too few fields", "2020-01-04,10.0,11.0,9.5,10.5,1000", "wrong_field_count",
     "6 fields, expected 7"),
    ("too many fields", "2020-01-04,10.0,11.0,9.5,10.5,10.5,1000,7", "wrong_field_count",
     "8 fields, expected 7"),
    ("not a number", "2020-01-04,10.0,11.0,9.5,abc,10.5,1000", "bad_number",
     "close 'abc' is not a number"),
    ("two dots", "2020-01-04,10.0,11.0.1,9.5,10.5,10.5,1000", "bad_number",
     "high '11.0.1' is not a number"),
    ("infinite", "2020-01-04,10.0,1e999,9.5,10.5,10.5,1000", "bad_number", "too large"),
    ("no such day", "2020-02-30,10.0,11.0,9.5,10.5,10.5,1000", "bad_timestamp",
     "'2020-02-30'"),
    ("not a date", "02/01/2020,10.0,11.0,9.5,10.5,10.5,1000", "bad_timestamp",
     "expected an ISO 8601 date"),
    ("duplicate timestamp", "2020-01-03,99.0,99.0,99.0,99.0,99.0,1", "duplicate_timestamp",
     "2020-01-03 00:00:00 UTC is the time of an earlier row"),
    ("out of order", "2020-01-01,10.0,11.0,9.5,10.5,10.5,1000", "out_of_order",
     "2020-01-01 00:00:00 UTC is before"),
]


@pytest.mark.parametrize(("case", "line", "reason", "detail"), DIRT, ids=[d[0] for d in DIRT])
def test_dirty_row_is_skipped_with_line_and_reason(tmp_path: Path, case: str, line: str,
                                                    reason: str, detail: str) -> None:
    path = write(tmp_path, [HEADER, CLEAN[0], CLEAN[1], line, CLEAN[2], CLEAN[3]])
    result = load_every_way(path)
    assert rejected(result) == [(4, reason)]
    assert detail in result.bad_rows[0].text
    assert result.reject_counts == counts(**{reason: 1})
    assert result.rows_read == 5
    assert np.array_equal(result.bars, load_csv(write(tmp_path, [HEADER, *CLEAN], name="c.csv"),
                                                YAHOO).bars)  # the first row of a time wins
    assert str(result.bad_rows[0]) == f"{path}:4: {reason}: {result.bad_rows[0].text}"


def test_every_kind_of_dirt_in_one_file_counted_per_reason(tmp_path: Path) -> None:
    # a good row on day 3k, then case k's dirty row: out of order on day 3k-1, a duplicate
    # on day 3k itself, everything else on the otherwise unused day 3k+1
    lines, expected = [HEADER], []
    start = datetime(2021, 1, 1)
    for k, (_, dirty, reason, _) in enumerate(DIRT):
        good_day = start + timedelta(days=3 * k + 1)
        day = good_day + timedelta(days={"out_of_order": -1, "duplicate_timestamp": 0}.get(
            reason, 1))
        lines.append(f"{good_day.date()},10.0,11.0,9.5,10.5,10.5,{k}")
        lines.append(dirty.replace(dirty.split(",")[0], str(day.date()), 1)
                     if dirty.split(",")[0] and reason != "bad_timestamp" else dirty)
        expected.append((len(lines), reason))
    result = load_every_way(write(tmp_path, lines))
    assert rejected(result) == expected
    tally = {reason: 0 for reason in REJECT_REASONS}
    for _, reason in expected:
        tally[reason] += 1
    assert result.reject_counts == tally
    assert result.rows_read == 2 * len(DIRT) and len(result.bars) == len(DIRT)
    assert list(result.bars["volume"]) == list(range(len(DIRT)))


def test_dirt_among_thousands_of_fast_rows_keeps_exact_line_numbers(tmp_path: Path) -> None:
    start = datetime(2001, 1, 1)
    lines = [HEADER]
    for i in range(5000):
        day = (start + timedelta(days=i)).date().isoformat()
        lines.append(f"{day},{10 + i % 7}.125,{12 + i % 7}.5,{9 + i % 7}.0,{11 + i % 7}.25,1,"
                     f"{1000 + i}")
    bad = {1200: "null_value", 2500: "high_below_low", 3333: "wrong_field_count",
           4000: "duplicate_timestamp", 4500: "bad_number"}
    for index, reason in bad.items():
        day = lines[index].split(",")[0]
        lines[index] = {
            "null_value": f"{day},null,null,null,null,null,null",
            "high_below_low": f"{day},10,9,11,10,10,5",
            "wrong_field_count": f"{day},10,11,9",
            "duplicate_timestamp": lines[index - 1],
            "bad_number": f"{day},10,11,9,1O.5,10,5",
        }[reason]
    result = load_every_way(write(tmp_path, lines), small_block=4096)
    assert rejected(result) == [(index + 1, reason) for index, reason in bad.items()]
    assert len(result.bars) == 5000 - len(bad)


def test_duplicate_of_an_earlier_row_across_blocks(tmp_path: Path) -> None:
    lines = [HEADER, *CLEAN, CLEAN[1].replace("10.5,12.0", "10.6,12.0"), CLEAN[3]]
    result = load_every_way(write(tmp_path, lines))
    assert rejected(result) == [(6, "duplicate_timestamp"), (7, "duplicate_timestamp")]
    assert result.bars[1]["open"] == 10.5  # the first one is kept


def test_a_newest_first_file_loads_completely_into_time_order(tmp_path: Path) -> None:
    """Alpha Vantage and Investing.com exports run newest first: nothing is lost to that."""
    oldest_first = load_every_way(write(tmp_path, [HEADER, *CLEAN], name="old.csv"))
    result = load_every_way(write(tmp_path, [HEADER, *reversed(CLEAN)], name="new.csv"))
    assert result.newest_first and not oldest_first.newest_first
    assert np.array_equal(result.bars, oldest_first.bars)
    assert result.bad_rows == [] and result.rows_read == len(CLEAN)


def test_a_newest_first_file_reports_rows_against_its_order(tmp_path: Path) -> None:
    """One stray row does not turn the file around; rows out of its order are named."""
    newest = list(reversed(CLEAN))
    lines = [HEADER, *newest[:2], "2020-01-08,11.0,12.0,10.5,11.5,11.5,900",  # line 4
             *newest[2:], CLEAN[0].replace("10.0,11.0", "10.1,11.0")]  # line 7: duplicate
    result = load_every_way(write(tmp_path, lines))
    assert result.newest_first
    assert rejected(result) == [(4, "out_of_order"), (7, "duplicate_timestamp")]
    assert "2020-01-08 00:00:00 UTC is after the time of an earlier row (the file runs " \
           "newest first)" in str(result.bad_rows[0])
    assert np.array_equal(result.bars["event_ns"], [ns(line[:10]) for line in CLEAN])
    assert result.bars[0]["open"] == 10.0  # of the duplicates, the first in the file is kept


def test_a_newest_first_file_finds_duplicates_of_rows_blocks_back(tmp_path: Path) -> None:
    lines = [HEADER, *reversed(CLEAN[1:]), CLEAN[2].replace("11.0,11.5", "11.1,11.5"),
             CLEAN[0]]  # line 5 repeats line 3's time, two rows (and blocks) back
    result = load_every_way(write(tmp_path, lines))
    assert result.newest_first and rejected(result) == [(5, "duplicate_timestamp")]
    assert len(result.bars) == len(CLEAN) and result.bars[2]["open"] == 11.0


def test_rows_of_one_time_then_newest_first_decide_late(tmp_path: Path) -> None:
    """While every time seen is the same the order is open; the first change decides."""
    lines = [HEADER, CLEAN[3], CLEAN[3].replace("11.2,11.9", "11.3,11.9"), *reversed(CLEAN[:3])]
    result = load_every_way(write(tmp_path, lines), small_block=48)
    assert result.newest_first and rejected(result) == [(3, "duplicate_timestamp")]
    assert len(result.bars) == len(CLEAN)


def test_blank_and_whitespace_lines_are_not_rows(tmp_path: Path) -> None:
    lines = [HEADER, CLEAN[0], "", "   ", CLEAN[1], "", CLEAN[2], "bad"]
    result = load_every_way(write(tmp_path, lines))
    assert rejected(result) == [(8, "wrong_field_count")]
    assert result.rows_read == 4 and len(result.bars) == 3


def test_spaces_and_quotes_around_values_are_accepted(tmp_path: Path) -> None:
    lines = [HEADER, '2020-01-02,"10.0", 11.0 ,9.5,10.5,10.5,"1000"', CLEAN[1]]
    result = load_every_way(write(tmp_path, lines))
    assert result.rows_read == 2 and len(result.bars) == 2 and not result.bad_rows
    assert result.bars[0]["open"] == 10.0 and result.bars[0]["volume"] == 1000.0


@pytest.mark.parametrize("variant", ["crlf", "bom", "no final newline", "all three"])
def test_line_end_and_encoding_variants_give_the_same_bars(tmp_path: Path,
                                                          variant: str) -> None:
    lines = [HEADER, *CLEAN]
    clean = load_csv(write(tmp_path, lines, name="clean.csv"), YAHOO)
    crlf = variant in ("crlf", "all three")
    path = write(tmp_path, lines, newline="\r\n" if crlf else "\n",
                 final_newline=variant not in ("no final newline", "all three"),
                 prefix=b"\xef\xbb\xbf" if variant in ("bom", "all three") else b"")
    result = load_every_way(path)
    assert np.array_equal(result.bars, clean.bars)
    assert result.rows_read == len(CLEAN) and not result.bad_rows


def test_crlf_file_with_dirt_reports_the_same_lines(tmp_path: Path) -> None:
    lines = [HEADER, CLEAN[0], "2020-01-03,1,2,3,4,5,6", "", CLEAN[2], CLEAN[3]]
    result = load_every_way(write(tmp_path, lines, newline="\r\n", final_newline=False,
                                  prefix=b"\xef\xbb\xbf"))
    assert rejected(result) == [(3, "high_below_low")]
    assert result.rows_read == 4


def test_bad_row_details_are_capped_but_all_counted(tmp_path: Path) -> None:
    lines = [HEADER] + [f"2020-01-{1 + i % 28:02d},null,null,null,null,null,null"
                        for i in range(MAX_BAD_ROW_DETAILS + 250)] + [CLEAN[0]]
    result = load_csv(write(tmp_path, lines), YAHOO)
    assert result.reject_counts == counts(null_value=MAX_BAD_ROW_DETAILS + 250)
    assert len(result.bad_rows) == MAX_BAD_ROW_DETAILS
    assert [r.line for r in result.bad_rows] == list(range(2, MAX_BAD_ROW_DETAILS + 2))
    assert len(result.bars) == 1 and result.rows_rejected == MAX_BAD_ROW_DETAILS + 250


# ---------------------------------------------------------------------------------------
# strict mode and files that cannot be used at all
# ---------------------------------------------------------------------------------------


def test_strict_mode_refuses_the_first_bad_row(tmp_path: Path) -> None:
    path = write(tmp_path, [HEADER, CLEAN[0], "2020-01-03,10,9,11,10,10,5", "x", CLEAN[2]])
    with pytest.raises(StrictDataError) as info:
        load_csv(path, YAHOO, strict=True)
    assert info.value.exit_code == C.EXIT_DATAERR == 65
    message = str(info.value)
    assert message.startswith(f"{path}:3: high_below_low: high 9.0 < low 11.0")
    assert "strict" in message and "wrong_field_count 1" in message
    assert load_csv(write(tmp_path, [HEADER, *CLEAN], name="ok.csv"), YAHOO,
                    strict=True).rows_read == len(CLEAN)


def test_strict_mode_also_refuses_order_problems(tmp_path: Path) -> None:
    path = write(tmp_path, [HEADER, CLEAN[0], CLEAN[2], CLEAN[1]])
    with pytest.raises(StrictDataError, match=r"data\.csv:4: out_of_order"):
        load_csv(path, YAHOO, strict=True, block_size=64)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "AAPL.csv"
    with pytest.raises(DataError) as info:
        load_csv(path, YAHOO)
    assert not isinstance(info.value, StrictDataError)
    assert info.value.exit_code == C.EXIT_NOINPUT == 66
    assert str(info.value) == f"{path}: cannot open: No such file or directory"


@pytest.mark.parametrize(("content", "fragment"), [
    (b"", "the file is empty"),
    (b"\n" + HEADER.encode(), "the first line is empty"),
    (b"Datum;Er\xc3\xb6ffnung;Hoch;Tief;Schluss;Volumen\n2020-01-02;1;2;0.5;1;5\n",
     "header does not match the format: no column named 'Date' for timestamp"),
    (b",Open,High,Low,Close,Volume\n2017-04-19 09:00:00,1,1,1,1,1\n",
     "no column named 'Date'"),
    (b"Date,Open,High,Low,Close,Close,Volume\n", "2 columns named 'Close'"),
    ("Date,Open,High,Low,Close,Volume\n".encode("utf-16"), "UTF-16"),
    (b"\x1f\x8b\x08\x00rest", "gzip-compressed"),
    (b"Date,Open,High,Low,Close,Volume\r2020-01-02,1,2,0.5,1,5\r", "CR only"),
    (HEADER.encode() + b"\n2020-01-01,1,2,0.5,1,1,1\n2020-01-02,1,2,0.5,1,1,\xff\xfe\n",
     ":3: not UTF-8 text (byte 0xff"),
])
def test_unusable_file_is_a_clear_error(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_csv(path, YAHOO)
    assert info.value.exit_code == 66
    assert str(info.value).startswith(str(path)) and fragment in str(info.value)


def test_directory_instead_of_a_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a directory, not a regular file") as info:
        load_csv(tmp_path, YAHOO)
    assert info.value.exit_code == 66


def test_header_only_file_has_no_bars(tmp_path: Path) -> None:
    result = load_csv(write(tmp_path, [HEADER], final_newline=False), YAHOO)
    assert len(result.bars) == 0 and result.rows_read == 0 and not result.bad_rows


# ---------------------------------------------------------------------------------------
# layouts
# ---------------------------------------------------------------------------------------


def test_custom_layout_semicolon_no_header_unix_ms(tmp_path: Path) -> None:
    # volume first, timestamp last: indices, not names; epoch numbers are UTC whatever the
    # zone says
    fmt = CsvFormat(delimiter=";", header=False, timestamp_format="unix_ms",
                    timezone="America/New_York",
                    columns={"volume": 0, "open": 1, "high": 2, "low": 3, "close": 4,
                             "timestamp": 5})
    lines = ["120;1.5;2.25;1.25;2.0;1609459200000",
             "130;2.0;2.5;1.75;2.25;1609459260000",
             "140;2.25;2.75;2.0;2.5;1609459320500"]
    result = load_every_way(write(tmp_path, lines), fmt)
    assert list(result.bars["event_ns"]) == [1609459200000 * 10**6, 1609459260000 * 10**6,
                                             1609459320500 * 10**6]
    assert list(result.bars["volume"]) == [120.0, 130.0, 140.0]
    assert list(result.bars["high"]) == [2.25, 2.5, 2.75]


@pytest.mark.parametrize(("unit", "text", "expected"), [
    ("unix_s", "1609459200", 1609459200 * 10**9),
    ("unix_s", "1609459200.25", 1609459200_250_000_000),
    ("unix_ms", "-1000", -10**9),
    ("unix_us", "1609459200123456", 1609459200123456 * 1000),
    ("unix_ns", "1609459200123456789", 1609459200123456789),
])
def test_epoch_units(tmp_path: Path, unit: str, text: str, expected: int) -> None:
    fmt = CsvFormat(header=False, timestamp_format=unit,
                    columns={"timestamp": 0, "open": 1, "high": 1, "low": 1, "close": 1})
    result = load_every_way(write(tmp_path, [f"{text},5"]), fmt)
    assert int(result.bars[0]["event_ns"]) == expected and result.bars[0]["volume"] == 0.0


def test_strptime_layout_in_a_zone_with_daylight_saving(tmp_path: Path) -> None:
    fmt = CsvFormat(delimiter="\t", header=True, timestamp_format="%d.%m.%Y %H:%M",
                    timezone="Europe/Berlin",
                    columns={"timestamp": "Zeit", "open": "Kurs", "high": "Kurs",
                             "low": "Kurs", "close": "Kurs", "volume": "Stück"})
    stamps = ["27.03.2021 12:00", "28.03.2021 01:30", "28.03.2021 03:30", "29.03.2021 09:00",
              "31.10.2021 01:30", "31.10.2021 03:30", "1.11.2021 09:00"]
    lines = ["Zeit\tKurs\tStück"] + [f"{s}\t{10 + i}.5\t{i}" for i, s in enumerate(stamps)]
    result = load_every_way(write(tmp_path, lines), fmt)
    expected = [ns(datetime.strptime(s, "%d.%m.%Y %H:%M").isoformat(), "Europe/Berlin")
                for s in stamps]
    assert list(result.bars["event_ns"]) == expected
    assert result.bars["event_ns"][2] - result.bars["event_ns"][1] == 3600 * 10**9  # DST


def test_zone_conversion_matches_zoneinfo_in_gaps_and_repeated_hours() -> None:
    zone = ZoneInfo("America/New_York")
    converter = ZoneConverter(zone)
    walls = []
    for day in ("2021-03-14", "2021-11-07", "1999-04-04", "2030-11-03"):
        base = datetime.fromisoformat(day)
        walls += [base + timedelta(minutes=m) for m in range(0, 24 * 60, 7)]
    wall_ns = np.array([ns(w.isoformat()) for w in walls], np.int64)  # as if UTC
    expected = [ns(w.isoformat(), "America/New_York") for w in walls]
    assert list(converter.to_utc(wall_ns)) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("2021-06-01", "2021-06-01T00:00:00+00:00"),
    ("2021-06-01 10:30", "2021-06-01T10:30:00+00:00"),
    ("2021-06-01T10:30:15", "2021-06-01T10:30:15+00:00"),
    ("2021-06-01 10:30:15.5", "2021-06-01T10:30:15.500000+00:00"),
    ("2021-06-01T10:30:15Z", "2021-06-01T10:30:15+00:00"),
    ("2021-06-01 10:30:15+02:00", "2021-06-01T08:30:15+00:00"),
    ("2021-06-01 10:30:15-0530", "2021-06-01T16:00:15+00:00"),
])
def test_iso_timestamp_shapes(tmp_path: Path, text: str, expected: str) -> None:
    result = load_every_way(write(tmp_path, [HEADER, f"{text},1,2,0.5,1,1,7"]))
    assert int(result.bars[0]["event_ns"]) == ns(expected)


def test_nanosecond_fractions_on_the_fast_path(tmp_path: Path) -> None:
    lines = [HEADER] + [f"2021-06-01 10:30:{i:02d}.{i * 7919:09d},1,2,0.5,1,1,7"
                        for i in range(50)]
    result = load_every_way(write(tmp_path, lines))
    assert int(result.bars[3]["event_ns"]) == ns("2021-06-01 10:30:03") + 3 * 7919


def test_timestamps_outside_64_bit_nanoseconds_are_bad(tmp_path: Path) -> None:
    lines = [HEADER, "1677-09-20,1,2,0.5,1,1,7", "1980-01-01,1,2,0.5,1,1,7",
             "2262-04-12,1,2,0.5,1,1,7"]
    result = load_every_way(write(tmp_path, lines))
    assert rejected(result) == [(2, "bad_timestamp"), (4, "bad_timestamp")]
    assert "64-bit nanosecond" in result.bad_rows[0].text


def test_header_names_match_ignoring_case_spaces_and_quotes(tmp_path: Path) -> None:
    lines = ['"DATE", open ,High,LOW,"Close",Volume', "2020-01-02,1,2,0.5,1,7"]
    assert len(load_every_way(write(tmp_path, lines)).bars) == 1


def test_headerless_file_takes_the_usual_field_count(tmp_path: Path) -> None:
    fmt = CsvFormat(header=False, columns={"timestamp": 0, "open": 1, "high": 2, "low": 3,
                                           "close": 4, "volume": 5})
    lines = ["2020-01-02,1,2"] + [f"2020-01-0{d},1,2,0.5,1.5,{d}" for d in range(3, 7)]
    result = load_every_way(write(tmp_path, lines), fmt)
    assert rejected(result) == [(1, "wrong_field_count")] and len(result.bars) == 4
    with pytest.raises(DataError, match="reads low from column index 3 but the rows have 3 fields"):
        load_csv(write(tmp_path, ["2020-01-02,1,2"], name="short.csv"), fmt)


# ---------------------------------------------------------------------------------------
# formats from the configuration
# ---------------------------------------------------------------------------------------


def test_csv_format_from_names_and_config_objects() -> None:
    assert csv_format("yahoo") is BUILTIN_FORMATS["yahoo"]
    assert csv_format(YAHOO) is YAHOO
    columns = SimpleNamespace(timestamp=0, open=1, high=2, low=3, close=4, volume=None)
    section = SimpleNamespace(delimiter=";", header=False, columns=columns,
                              timestamp_format=None, timezone="Europe/Paris")
    fmt = csv_format(section)
    assert fmt.timestamp_format == "iso" and "volume" not in fmt.columns
    assert fmt.delimiter == ";" and fmt.timezone == "Europe/Paris"
    assert hash(fmt) == hash(csv_format(section)) and fmt == csv_format(section)
    with pytest.raises(ConfigError, match="unknown CSV format 'yahooo'") as info:
        csv_format("yahooo")
    assert info.value.exit_code == C.EXIT_CONFIG
    with pytest.raises(ConfigError, match=re.escape("delimiter '.'")):
        csv_format(SimpleNamespace(**{**vars(section), "delimiter": "."}))


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"delimiter": ",,"}, "delimiter"),
    ({"delimiter": "1"}, "delimiter"),
    ({"columns": {"timestamp": "Date", "open": "Open"}}, "missing ['high', 'low', 'close']"),
    ({"columns": {**dict(YAHOO.columns), "vwap": "VWAP"}}, "unknown ['vwap']"),
    ({"columns": {**dict(YAHOO.columns), "open": -1}}, "columns.open"),
    ({"header": False}, "has no header: use a 0-based index"),
    ({"timestamp_format": "unix_minutes"}, "timestamp_format"),
    ({"timestamp_format": "%Q"}, "timestamp_format"),
    ({"timezone": "Mars/Olympus"}, "timezone 'Mars/Olympus'"),
])
def test_invalid_formats_are_refused(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        CsvFormat(**kwargs)  # type: ignore[arg-type]


def test_bad_row_text() -> None:
    row = BadRow("market_data/x.csv", 17, "high_below_low", "high 1.0 < low 2.0")
    assert str(row) == "market_data/x.csv:17: high_below_low: high 1.0 < low 2.0"
    assert row.message == str(row)


# ---------------------------------------------------------------------------------------
# exactness of the vectorised number parser against float()
# ---------------------------------------------------------------------------------------


def parse_tokens(tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
    text = (",".join(tokens) + "\n").encode()
    raw = np.frombuffer(b"\0" * 32 + text + b"\0" * 64, np.uint8)
    seps = np.flatnonzero((raw == ord(",")) | (raw == ord("\n")))
    starts = np.concatenate([[32], seps[:-1] + 1])
    return parse_floats(Words(raw), starts, seps, Scratch())


def check_against_float(tokens: list[str]) -> int:
    values, ok = parse_tokens(tokens)
    plain = re.compile(r"\d+\.?\d*|\.\d+")
    for token, value, good in zip(tokens, values, ok, strict=True):
        if good:
            assert plain.fullmatch(token) and float(token) == value, token
    return int(ok.sum())


def test_number_parser_is_exact_or_defers() -> None:
    rng = np.random.default_rng(7)
    odd = ["", ".", "5.", ".5", "1.2.3", "..", "00", "0", "1e5", " 1", "+3", "-1", "x",
           "9" * 15, "9" * 16, "9" * 17, "9" * 15 + ".5", "0.000000000001", "123456789.1234567",
           "9007199254740993", "1234567.8901234"]
    tokens = []
    for _ in range(20000):
        kind = rng.integers(0, 5)
        if kind == 0:
            tokens.append(str(rng.integers(0, 10 ** int(rng.integers(1, 17)))))
        elif kind == 1:
            tokens.append(f"{rng.random() * 10.0 ** rng.integers(-3, 12):.{rng.integers(0, 9)}f}")
        elif kind == 2:
            tokens.append(repr(float(rng.random() * 10.0 ** rng.integers(-5, 10))))
        elif kind == 3:
            tokens.append(str(rng.choice(odd)))
        else:
            tokens.append("".join(rng.choice(list("0123456789."), rng.integers(1, 18))))
    assert check_against_float(tokens) > 10000  # most are plain decimals it must take


@pytest.mark.parametrize("scale", range(8))
def test_number_parser_fixed_decimals_with_corrupt_rows(scale: int) -> None:
    rng = np.random.default_rng(scale)
    tokens = []
    for i in range(3000):
        token = (f"{rng.random() * 10.0 ** rng.integers(0, 9):.{scale}f}" if scale
                 else str(rng.integers(0, 10 ** int(rng.integers(1, 16)))))
        if i and rng.random() < 0.1:  # damage one character, keep the dot where it is
            chars = list(token)
            j = int(rng.integers(0, len(chars)))
            if chars[j] != ".":
                chars[j] = str(rng.choice([".", "x", " ", "-", "/"]))
            token = "".join(chars)
        tokens.append(token)
    assert check_against_float(tokens) > 2500
