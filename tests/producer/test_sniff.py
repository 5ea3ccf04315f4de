"""tradingd.producer.sniff (format: auto, tradingd-data sniff): what it finds, and where it
refuses rather than guess. Every case writes its own small file."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from loader_support import ns, write

from tradingd.daemon.config import default_config, parse_config
from tradingd.errors import DataRefused
from tradingd.producer.daemon import symbol_format
from tradingd.producer.loader import csv_format, load_csv
from tradingd.producer.sniff import sniff_file


def walk(n: int, level: float = 100.0, seed: int = 1) -> list[tuple[float, ...]]:
    """OHLC bars of a random walk: each open is the previous close (continuity)."""
    rng = np.random.default_rng(seed)
    out, close = [], level
    for _ in range(n):
        opening = close
        close = opening * math.exp(rng.normal(0, 0.01))
        high = max(opening, close) * (1 + rng.random() * 0.005)
        low = min(opening, close) * (1 - rng.random() * 0.005)
        out.append((round(opening, 2), round(high, 2), round(low, 2), round(close, 2)))
    return out


def days(n: int, first: str = "2021-01-01") -> list[np.datetime64]:
    return list(np.datetime64(first) + np.arange(n))


def found(path: Path) -> dict[str, object]:
    """The sniffed format, as the YAML it prints, parsed back."""
    result = sniff_file(path)
    assert result.format is not None, result.problems
    return yaml.safe_load(result.yaml())[next(iter(yaml.safe_load(result.yaml())))]


def test_yahoo_layout_by_names(tmp_path: Path) -> None:
    bars = walk(40)
    lines = ["Date,Open,High,Low,Close,Adj Close,Volume"]
    lines += [f"{d},{o},{h},{lo},{c},{c},{1000 + i}" for i, (d, (o, h, lo, c)) in
              enumerate(zip(days(40), bars, strict=True))]
    path = write(tmp_path, lines)
    result = sniff_file(path)
    assert result.level == "high" and result.rows_rejected == 0
    assert found(path) == {"delimiter": ",", "header": True, "timezone": "UTC",
                           "timestamp_format": None,
                           "columns": {"timestamp": "Date", "open": "Open", "high": "High",
                                       "low": "Low", "close": "Close", "volume": "Volume"}}


def test_investing_com_export_newest_first(tmp_path: Path) -> None:
    lines = ['"Date","Price","Open","High","Low","Vol.","Change %"']
    for d, (o, h, lo, c) in zip(reversed(days(30, "2024-01-01")), walk(30, 42000),
                                strict=True):
        text = np.datetime_as_string(d)
        us = f"{text[5:7]}/{text[8:10]}/{text[:4]}"
        lines.append(f'"{us}","{c:,.1f}","{o:,.1f}","{h:,.1f}","{lo:,.1f}","131.48K","0.5%"')
    path = write(tmp_path, lines)
    fmt = found(path)
    assert fmt["timestamp_format"] == "%m/%d/%Y" and fmt["thousands"] == ","
    assert fmt["volume_suffixes"] is True
    assert fmt["columns"] == {"timestamp": "Date", "open": "Open", "high": "High",
                              "low": "Low", "close": "Price", "volume": "Vol."}
    result = sniff_file(path)
    assert "rows run newest first (reversed into time order when loaded)" in result.notes
    assert load_csv(path, result.require()).rows_rejected == 0


def test_all_days_twelve_or_less_is_refused_naming_both_readings(tmp_path: Path) -> None:
    lines = ["Date,Open,High,Low,Close,Volume"]
    lines += [f"{d:02d}/01/2021,10,11,9,10.5,100" for d in range(1, 13)]
    result = sniff_file(write(tmp_path, lines))
    assert result.format is None
    assert "both day-first and month-first" in result.problems[0]
    assert "'%d/%m/%Y' or '%m/%d/%Y'" in result.problems[0]
    with pytest.raises(DataRefused, match="format: auto cannot decide"):
        result.require()


def test_day_first_decided_by_a_day_above_twelve(tmp_path: Path) -> None:
    lines = ["Date,Open,High,Low,Close,Volume"]
    lines += [f"{d:02d}/01/2021,10,11,9,10.5,100" for d in range(1, 20)]
    assert found(write(tmp_path, lines))["timestamp_format"] == "%d/%m/%Y"


def test_headerless_epoch_ms_and_continuity_decide_open_and_close(tmp_path: Path) -> None:
    bars = walk(60)
    start = 1_600_000_000_000
    lines = [f"{start + 60_000 * i};{o};{h};{lo};{c};{5 + i}"
             for i, (o, h, lo, c) in enumerate(bars)]
    path = write(tmp_path, lines)
    fmt = found(path)
    assert fmt["header"] is False and fmt["delimiter"] == ";"
    assert fmt["timestamp_format"] == "unix_ms"
    assert fmt["columns"] == {"timestamp": 0, "open": 1, "high": 2, "low": 3, "close": 4,
                              "volume": 5}
    loaded = load_csv(path, sniff_file(path).require())
    assert loaded.bars["open"].tolist() == [b[0] for b in bars]


def test_headerless_prices_that_fit_two_orders_are_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)  # no continuity: each bar on its own
    lines = []
    for i, d in enumerate(days(40)):
        a, b = rng.uniform(10, 11, 2)
        lines.append(f"{d},{a:.2f},{max(a, b) + 1:.2f},{min(a, b) - 1:.2f},{b:.2f},{i}")
    result = sniff_file(write(tmp_path, lines))
    assert result.format is None
    assert "both fit open and close" in result.problems[0]
    assert "set columns.open and columns.close by hand" in result.problems[0]


def test_banner_lines_and_short_names(tmp_path: Path) -> None:
    lines = ["https://www.cryptodatadownload.com", "unix,date,symbol,o,h,l,c,volumefrom,volumeto"]
    for i, (o, h, lo, c) in enumerate(walk(30)):
        lines.append(f"{1609459200 + 86400 * i},x,BTC,{o},{h},{lo},{c},{i + 1},{i * 99}")
    fmt = found(write(tmp_path, lines))
    assert fmt["skip_rows"] == 1 and fmt["timestamp_format"] == "unix_s"
    assert fmt["columns"] == {"timestamp": "unix", "open": "o", "high": "h", "low": "l",
                              "close": "c", "volume": "volumefrom"}


def test_metatrader_date_and_time_columns(tmp_path: Path) -> None:
    lines = ["<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>"]
    for i, (o, h, lo, c) in enumerate(walk(50, 1.1)):
        lines.append(f"2021.03.{1 + i // 24:02d}\t{i % 24:02d}:00:00\t{o}\t{h}\t{lo}\t{c}\t{i}")
    path = write(tmp_path, lines)
    fmt = found(path)
    assert fmt["delimiter"] == "\t" and fmt["timestamp_format"] == "%Y.%m.%d"
    assert fmt["time_format"] is None
    assert fmt["columns"]["timestamp"] == "<DATE>" and fmt["columns"]["time"] == "<TIME>"
    bars = load_csv(path, sniff_file(path).require()).bars
    assert bars["event_ns"][25] == ns("2021-03-02T01:00")


def test_european_numbers(tmp_path: Path) -> None:
    lines = ["Datum;Eröffnung;Hoch;Tief;Schluss;Volumen"]
    for i, (o, h, lo, c) in enumerate(walk(15, 1500)):
        def eu(x: float) -> str:
            return f"{x:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")
        lines.append(f"{13 + i}.01.2020;{eu(o)};{eu(h)};{eu(lo)};{eu(c)};{i}")
    fmt = found(write(tmp_path, lines))
    assert (fmt["thousands"], fmt["decimal"], fmt["timestamp_format"]) == (".", ",",
                                                                          "%d.%m.%Y")


def test_format_auto_in_the_config_is_sniffed_by_the_producer(tmp_path: Path) -> None:
    lines = ["time,open,high,low,close"]
    lines += [f"{d}T10:00:00Z,{o},{h},{lo},{c}" for d, (o, h, lo, c) in
              zip(days(20), walk(20), strict=True)]
    write(tmp_path, lines, name="x.csv")
    text = f"""producer:
  data_dir: {tmp_path}
  symbols: [{{name: X, file: x.csv, asset_class: crypto, format: auto}}]
"""
    config = parse_config(text, tmp_path / "c.yaml")
    fmt = symbol_format(config, config.producer.symbols[0])
    assert "volume" not in fmt.columns and fmt.columns["timestamp"] == "time"
    assert default_config().format_of(default_config().producer.symbols[0]) == "yahoo"
    assert csv_format("yahoo") is not None


def test_sniff_command_prints_yaml_that_the_config_accepts(tmp_path: Path) -> None:
    lines = ["Date,Open,High,Low,Close,Volume"]
    lines += [f"{d},{o},{h},{lo},{c},{i}" for i, (d, (o, h, lo, c)) in
              enumerate(zip(days(20), walk(20), strict=True))]
    path = write(tmp_path, lines, name="My File.csv")
    res = subprocess.run([str(Path(sys.executable).parent / "tradingd-data"), "sniff",
                          str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "# confidence: high" in res.stdout and "my_file:" in res.stdout
    pasted = "producer:\n  formats:\n" + "".join(f"    {line}\n"
                                                 for line in res.stdout.splitlines())
    config = parse_config(pasted, tmp_path / "c.yaml")
    assert csv_format(config.producer.formats["my_file"]).columns["close"] == "Close"
    bad = write(tmp_path, ["a,b,c,d,e", *(f"0{d}/01/2021,1,2,0.5,1" for d in range(1, 9))],
                name="bad.csv")
    res = subprocess.run([str(Path(sys.executable).parent / "tradingd-data"), "sniff",
                          str(bad)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 65 and "REFUSED" in res.stdout


def test_the_producer_verifies_on_the_head_only(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from tradingd.producer import sniff
    monkeypatch.setattr(sniff, "HEAD_BYTES", 4096)
    lines = ["Date,Open,High,Low,Close,Volume"]
    lines += [f"{d},{o},{h},{lo},{c},{i}" for i, (d, (o, h, lo, c)) in
              enumerate(zip(days(400), walk(400), strict=True))]
    path = write(tmp_path, lines)
    head = sniff_file(path, verify_all=False)
    assert head.format is not None and 0 < head.rows_checked < 400
    assert any(note.startswith("verified on the first 4 KiB") for note in head.notes)
    assert sniff_file(path).rows_checked == 400
