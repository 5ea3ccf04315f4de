"""tradingd-data check and cache, as a script runs them: the real command, output, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from loader_support import write

from tradingd import constants as C

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    script = BIN / "tradingd-data"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m",
                                                  "tradingd.producer.datacli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120, env={"PATH": "/usr/bin:/bin"})


def test_check_a_bundled_file_with_its_configured_format() -> None:
    res = run("check", "market_data/stocks/AAPL.csv")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "format yahoo, of symbol AAPL" in out
    assert "10538 data rows: 10538 bars, 0 rejected" in out
    assert "1980-12-12 .. 2022-09-28 (oldest first)" in out
    assert "interval     1 day" in out and "verdict      OK: fit to replay" in out


def test_check_reports_rejects_with_file_line_and_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, [HEADER, "2020-01-02,10,11,9,10.5,10.5,100",
                            "2020-01-03,10,11,9,10.5,10.5,0",
                            "2020-01-06,x,11,9,10.5,10.5,100",
                            "2020-01-07,10,11,9,10.5,10.5,100"])
    res = run("check", str(path), "--format", "yahoo")
    assert res.returncode == C.EXIT_DATA_CHECK_REJECTS == 2, res.stderr
    assert f"{path}:4: bad_number: open 'x' is not a number" in res.stdout
    assert "zero volume  1 bar" in res.stdout and "rejects      bad_number 1" in res.stdout
    data = json.loads(run("check", str(path), "--format", "yahoo", "--json").stdout)
    assert (data["bars"], data["rejected"], data["zero_volume"], data["exit_code"]) == (
        3, 1, 1, 2)
    assert data["rejects"] == {"bad_number": 1} and data["verdict"] == "ok"


def test_check_refuses_what_the_producer_would_refuse(tmp_path: Path) -> None:
    path = write(tmp_path, [HEADER, "02/01/2020,10,11,9,10.5,10.5,100",
                            "03/01/2020,10,11,9,10.5,10.5,100",
                            "2020-01-06,10,11,9,10.5,10.5,100"])
    res = run("check", str(path), "--format", "yahoo")
    assert res.returncode == C.EXIT_DATAERR == 65
    assert "REFUSED" in res.stdout and "Top reasons: bad_timestamp 2" in res.stdout
    assert run("check", str(path), "--format", "yahoo", "--max-reject-share",
               "1").returncode == 2
    empty = write(tmp_path, [HEADER], name="empty.csv")
    res = run("check", str(empty), "--format", "yahoo")
    assert res.returncode == 65 and "no data rows" in res.stdout


def test_check_lists_gaps(tmp_path: Path) -> None:
    days = [f"2021-03-{d:02d}" for d in (1, 2, 3, 4, 5, 8, 9, 12, 15, 16)]  # 10, 11 missing
    path = write(tmp_path, [HEADER, *(f"{d},10,11,9,10.5,10.5,100" for d in days)])
    res = run("check", str(path), "--format", "yahoo")
    assert res.returncode == 0
    assert "gaps         1 (2 missing bars)" in res.stdout
    assert "2021-03-09 -> 2021-03-12 (2 bars missing)" in res.stdout


def test_check_with_a_custom_format_from_the_config(tmp_path: Path) -> None:
    path = write(tmp_path, ["Date;Time;Open;High;Low;Close;Volume",
                            "02/01/2020;09:30;1,5;2;1;1,75;1.000",
                            "02/01/2020;09:31;1,5;2;1;1,75;2.000"])
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"producer": {"formats": {"eu": {
        "delimiter": ";", "columns": {"timestamp": "Date", "time": "Time"},
        "timestamp_format": "%d/%m/%Y", "thousands": ".", "decimal": ","}}}}))
    res = run("--config", str(config), "check", str(path), "--format", "eu")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 data rows: 2 bars" in res.stdout
    res = run("--config", str(config), "check", str(path), "--format", "nope")
    assert res.returncode == C.EXIT_USAGE and "no format 'nope'" in res.stderr


@pytest.mark.parametrize(("args", "code", "fragment"), [
    (["check", "/nonexistent.csv", "--format", "yahoo"], 66, "cannot open"),
    (["sniff", "/nonexistent.csv"], 66, "cannot open"),
    (["check"], 64, "the following arguments are required"),
    (["--config", "/nonexistent.yaml", "check", "x.csv", "--format", "mine"], 78,
     "does not exist"),
])
def test_check_errors_exit_with_their_codes(args: list[str], code: int, fragment: str) -> None:
    res = run(*args)
    assert res.returncode == code and fragment in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_cache_list_and_clear(tmp_path: Path) -> None:
    from tradingd.producer.cache import LoadCache
    from tradingd.producer.loader import BUILTIN_FORMATS, load_csv
    csv = write(tmp_path, [HEADER, "2020-01-02,10,11,9,10.5,10.5,100"])
    store = LoadCache(tmp_path / "cache")
    store.store(csv, BUILTIN_FORMATS["yahoo"], load_csv(csv, BUILTIN_FORMATS["yahoo"]))
    res = run("cache", "list", "--cache-dir", str(tmp_path / "cache"))
    assert res.returncode == 0 and "1 entry" in res.stdout and "valid" in res.stdout
    assert str(csv) in res.stdout
    entries = json.loads(run("cache", "list", "--cache-dir", str(tmp_path / "cache"),
                             "--json").stdout)
    assert entries[0]["bars"] == 1 and entries[0]["state"] == "valid"
    res = run("cache", "clear", "--cache-dir", str(tmp_path / "cache"))
    assert res.returncode == 0 and "removed 2 files" in res.stdout
    assert "0 entries" in run("cache", "list", "--cache-dir", str(tmp_path / "cache")).stdout
    config = tmp_path / "c.yaml"
    config.write_text("producer: {cache_dir: mycache}\n")
    res = run("--config", str(config), "cache", "list")
    assert res.returncode == 0 and str(tmp_path / "mycache") in res.stdout
