"""The real tradingd-producer process, end to end.

Each test starts the installed console script (``.venv/bin/tradingd-producer``, or
``python -m tradingd.producer.daemon`` if it is missing) on a private segment name with a
config written to a temporary directory (metrics on a free port), and listens for its
sd_notify messages on a bound AF_UNIX datagram socket passed as NOTIFY_SOCKET. Every
process is killed by PID and every segment removed afterwards, also when a test fails.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest
import yaml
from daemons import START_TIMEOUT, DaemonProcess
from support import promtool_lint

from tradingd import constants as C
from tradingd.errors import SegmentNotFound
from tradingd.segment import layout as L
from tradingd.segment import shm
from tradingd.segment.reader import SegmentReader

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MARKET_DATA = REPO / "market_data"
BUNDLED_SYMBOLS = ["AAPL", "TSLA", "BTC-USD", "EURUSD"]


class ProducerProcess(DaemonProcess):
    """One real producer process on its own segment name."""

    def __init__(self, config: Path, segment: str, workdir: Path,
                 env: dict[str, str] | None = None) -> None:
        super().__init__("producer", config, workdir, segment=segment, env=env)
        self.segment = segment


@pytest.fixture
def start(workdir: Path, segment_name: str) -> Iterator[Callable[..., ProducerProcess]]:
    """Start producers (killed by PID afterwards); the segment is removed by segment_name."""
    started: list[ProducerProcess] = []

    def _start(config: Path, segment: str = segment_name,
               env: dict[str, str] | None = None) -> ProducerProcess:
        p = ProducerProcess(config, segment, workdir, env)
        started.append(p)
        return p

    yield _start
    for p in started:
        p.cleanup()


def write_config(workdir: Path, *, name: str = "tradingd.yaml", replay: dict | None = None,
                 symbols: list[dict] | None = None, strict: bool = False,
                 extra: dict | None = None) -> Path:
    """A config using the bundled data, a fast heartbeat and a free metrics port."""
    cfg: dict = {
        "segment": {"ring_capacity": 4096, "heartbeat_interval": 0.05},
        "logging": {"level": "info"},
        "producer": {
            "data_dir": str(MARKET_DATA),
            "strict": strict,
            # a year of data per second: a few hundred records/s, little CPU
            "replay": {"mode": "paced", "speed": 365 * 86400.0, "at_end": "loop",
                       "batch_size": 256, **(replay or {})},
            "metrics": {"enabled": True, "address": "127.0.0.1", "port": 0},
        },
        "consumer": {"metrics": {"port": 0}},
    }
    if symbols is not None:
        cfg["producer"]["symbols"] = symbols
    for section, values in (extra or {}).items():
        cfg.setdefault(section, {}).update(values)
    path = workdir / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def statuses(p: ProducerProcess) -> list[str]:
    return [m["STATUS"] for m in p.notify.messages if "STATUS" in m]


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def assert_no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


def test_producer_lifecycle(workdir: Path, start: Callable[..., ProducerProcess],
                            segment_name: str) -> None:
    """READY, data in the segment, heartbeat, STATUS, watchdog, metrics + promtool, SIGTERM."""
    p = start(write_config(workdir), env={"WATCHDOG_USEC": "400000"})  # ping every 0.2 s
    p.wait_ready()
    print(f"\nREADY {p.ready_after:.2f} s after start; RSS {rss_bytes(p.pid) / 2**20:.1f} MiB")
    assert rss_bytes(p.pid) < 80 * 2**20  # requirement: under 80 MB with the bundled data

    with SegmentReader.attach(segment_name) as r:
        h = r.header()
        assert h["producer_pid"] == p.pid and r.state == L.STATE_LIVE
        symbols = r.symbols()
        assert [s.name for s in symbols] == BUNDLED_SYMBOLS
        assert [s.asset_class for s in symbols] == ["stock", "stock", "crypto", "forex"]
        assert symbols[0].bar_interval_ns == 86_400 * 10**9  # daily bars
        assert symbols[3].bar_interval_ns == 3600 * 10**9  # EURUSD hourly
        assert all(s.record_count > 1000 for s in symbols)
        # data flows and the heartbeat advances
        sub = r.subscribe("oldest")
        beats0, cursor0 = h["heartbeat_count"], r.cursor
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (r.cursor <= cursor0 + 10
                                               or r.header()["heartbeat_count"] < beats0 + 3):
            time.sleep(0.05)
        assert r.cursor > cursor0 + 10
        assert r.header()["heartbeat_count"] >= beats0 + 3
        got = sub.poll_batch(100_000)
        assert len(got) > 10 and sub.lost == 0
        assert (got["event_ns"][1:] >= got["event_ns"][:-1]).all()  # time-ordered
        assert (got["symbol_id"] < 4).all()
        first = got[0]
        assert first["event_ns"] == 345_427_200 * 10**9  # AAPL's first bar, 1980-12-12
        assert first["close"] == pytest.approx(0.128348)

    status = p.notify.wait_for(lambda m: m.get("STATUS", "").startswith("replaying "),
                               5)["STATUS"]
    assert re.fullmatch(r"replaying [\d.]+[kMG]?/[\d.]+[kMG]? ticks at [\d.]+[kMG]?/s"
                        r"(, loop \d+)?", status), status

    # WATCHDOG_USEC=400000: the main loop pings every 0.2 s
    deadline = time.monotonic() + START_TIMEOUT  # until 3 pings (a busy machine: later)
    while time.monotonic() < deadline and p.notify.count("WATCHDOG") < 3:
        p.notify.receive(0.1)
    assert p.notify.count("WATCHDOG") >= 3

    port = p.metrics_port()
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    text = body.decode()
    for symbol in BUNDLED_SYMBOLS:
        m = re.search(rf'^tradingd_producer_symbol_records_published_total'
                      rf'{{symbol="{symbol}"}} (\S+)$', text, re.M)
        assert m, f"no symbol_records_published for {symbol}"
    assert re.search(r'^tradingd_build_info\{daemon="producer",.*version="\d', text, re.M)
    assert "_created" not in text  # no half-populated created series
    with SegmentReader.attach(p.segment) as r:
        assert re.search(rf'^tradingd_producer_segment_info\{{.*generation="{r.generation:016x}"',
                         text, re.M)  # the consumer's spelling: no 0x
    assert re.search(r"^tradingd_producer_ring_capacity 4096\.0$", text, re.M)
    assert re.search(r"^tradingd_producer_segment_size_bytes \d", text, re.M)
    hb = float(re.search(r"^tradingd_producer_heartbeat_timestamp_seconds (\S+)$", text,
                         re.M).group(1))  # type: ignore[union-attr]
    assert abs(hb - time.time()) < 60  # a wall-clock time in seconds (not ns, not monotonic)
    assert re.search(r'^tradingd_producer_rows_rejected_total\{file="stocks/AAPL.csv",'
                     r'reason="[a-z_]+"\} ', text, re.M)
    assert "tradingd_producer_publish_batch_duration_seconds_bucket" in text
    assert re.search(r"^process_resident_memory_bytes ", text, re.M)
    assert re.search(r"^python_info\{", text, re.M)
    promtool_lint(body)

    p.proc.send_signal(signal.SIGTERM)
    assert p.wait_exit() == 0
    p.notify.wait_for(lambda m: m.get("STOPPING") == "1", 2)
    assert not os.path.exists(shm.segment_path(segment_name))
    with pytest.raises(urllib.error.URLError) as refused:  # the metrics port is closed
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
    assert isinstance(refused.value.reason, ConnectionRefusedError)
    assert_no_traceback(p.log)


def test_second_producer_is_refused_while_the_first_lives(
        workdir: Path, start: Callable[..., ProducerProcess], segment_name: str) -> None:
    config = write_config(workdir)
    first = start(config)
    first.wait_ready()
    with SegmentReader.attach(segment_name) as r:
        generation = r.generation
    second = start(config)
    assert second.wait_exit() == C.EXIT_SEGMENT_OWNED == 73
    err = second.log
    assert f"PID {first.pid}" in err and "live producer" in err
    assert_no_traceback(err)
    assert not any(m.get("READY") == "1" for m in second.notify.messages)
    assert first.alive()
    with SegmentReader.attach(segment_name) as r:  # the first one's segment, untouched
        assert r.generation == generation and r.state == L.STATE_LIVE
    first.proc.send_signal(signal.SIGINT)
    assert first.wait_exit() == 0
    assert not os.path.exists(shm.segment_path(segment_name))


def test_sigkilled_producer_leaves_a_stale_segment_the_next_reclaims(
        workdir: Path, start: Callable[..., ProducerProcess], segment_name: str) -> None:
    config = write_config(workdir)
    victim = start(config)
    victim.wait_ready()
    with SegmentReader.attach(segment_name) as r:
        old_generation = r.generation
    os.kill(victim.pid, signal.SIGKILL)
    victim.proc.wait(10)
    with SegmentReader.attach(segment_name, require_live=False) as r:  # left behind
        assert r.header()["producer_pid"] == victim.pid and r.state == L.STATE_LIVE
    heir = start(config)
    heir.wait_ready()
    log = heir.log
    assert "reclaimed stale segment" in log
    assert f"generation {old_generation:#x}" in log and f"PID {victim.pid}" in log
    with SegmentReader.attach(segment_name) as r:
        assert r.generation != old_generation and r.header()["producer_pid"] == heir.pid
    heir.proc.send_signal(signal.SIGTERM)
    assert heir.wait_exit() == 0
    assert_no_traceback(heir.log)


def test_replay_stop_at_end_stays_up_and_heartbeats(
        workdir: Path, start: Callable[..., ProducerProcess], segment_name: str) -> None:
    p = start(write_config(workdir, replay={"mode": "fast", "at_end": "stop"}))
    p.wait_ready()
    p.notify.wait_for(lambda m: m.get("STATUS", "").startswith("replay finished"), 10,
                      p.alive)
    with SegmentReader.attach(segment_name) as r:
        assert r.state == L.STATE_FINISHED
        total = sum(s.record_count for s in r.symbols())
        assert r.cursor == total and r.header()["replay_loops"] == 0
        beats = r.header()["heartbeat_count"]
        deadline = time.monotonic() + START_TIMEOUT  # until it beats again
        while r.header()["heartbeat_count"] == beats and time.monotonic() < deadline:
            time.sleep(0.05)
        assert r.header()["heartbeat_count"] > beats
    p.proc.send_signal(signal.SIGTERM)
    assert p.wait_exit() == 0


def test_missing_data_file_exits_66_naming_it(
        workdir: Path, start: Callable[..., ProducerProcess], segment_name: str) -> None:
    symbols = [{"name": "AAPL", "file": "stocks/AAPL.csv", "asset_class": "stock",
                "format": "yahoo"},
               {"name": "GONE", "file": "stocks/NOPE.csv", "asset_class": "stock",
                "format": "yahoo"}]
    p = start(write_config(workdir, symbols=symbols))
    assert p.wait_exit() == C.EXIT_NOINPUT == 66
    err = p.log
    assert "NOPE.csv" in err
    assert_no_traceback(err)
    with pytest.raises(SegmentNotFound):
        SegmentReader.attach(segment_name, require_live=False)


DIRTY_CSV = ("Date,Open,High,Low,Close,Adj Close,Volume\n"
             "2020-01-02,10,11,9,10.5,10.5,100\n"
             "2020-01-03,null,null,null,null,null,null\n"
             "2020-01-06,10,11,9,10.5,10.5,100\n"
             "2020-01-07,10,9,11,10.5,10.5,100\n")
# Clean, but newest first (as Alpha Vantage writes it): loaded whole, in time order.
NEWEST_FIRST_CSV = ("Date,Open,High,Low,Close,Adj Close,Volume\n"
                    "2020-01-06,10,11,9,10.5,10.5,100\n"
                    "2020-01-03,10,11,9,10.5,10.5,100\n"
                    "2020-01-02,10,11,9,10.5,10.5,100\n")


def dirty_config(workdir: Path, *, strict: bool) -> Path:
    data = workdir / "data"
    data.mkdir()
    (data / "DIRTY.csv").write_text(DIRTY_CSV)
    (data / "NEWEST.csv").write_text(NEWEST_FIRST_CSV)
    symbols = [{"name": name, "file": f"{name}.csv", "asset_class": "stock", "format": "yahoo"}
               for name in ("DIRTY", "NEWEST")]
    config = write_config(workdir, symbols=symbols, strict=strict)
    raw = yaml.safe_load(config.read_text())
    raw["producer"]["data_dir"] = str(data)
    config.write_text(yaml.safe_dump(raw))
    return config


def test_bad_rows_are_logged_counted_and_skipped(
        workdir: Path, start: Callable[..., ProducerProcess], segment_name: str) -> None:
    p = start(dirty_config(workdir, strict=False))
    p.wait_ready()
    err = p.log
    assert "DIRTY.csv:3: null_value" in err and "DIRTY.csv:5: " in err
    assert "DIRTY.csv: skipped 2 bad rows" in err
    assert "loaded NEWEST.csv: 3 rows (0 skipped), newest first: reversed" in err
    with SegmentReader.attach(segment_name) as r:
        assert r.header()["rows_rejected"] == 2
        assert [s.record_count for s in r.symbols()] == [2, 3]
    text = urllib.request.urlopen(f"http://127.0.0.1:{p.metrics_port()}/metrics",
                                  timeout=5).read().decode()
    assert re.search(r'^tradingd_producer_rows_rejected_total\{file="DIRTY.csv",'
                     r'reason="null_value"\} 1\.0$', text, re.M)
    assert re.search(r'^tradingd_producer_rows_loaded_total\{file="DIRTY.csv"\} 2\.0$',
                     text, re.M)
    p.proc.send_signal(signal.SIGTERM)
    assert p.wait_exit() == 0


def test_strict_mode_refuses_a_dirty_file_with_65(
        workdir: Path, start: Callable[..., ProducerProcess], segment_name: str) -> None:
    p = start(dirty_config(workdir, strict=True))
    assert p.wait_exit() == C.EXIT_DATAERR == 65
    err = p.log
    assert "DIRTY.csv:3" in err  # file and line of the first bad row
    assert_no_traceback(err)
    assert not os.path.exists(shm.segment_path(segment_name))


def test_bad_config_exits_78_naming_the_key(
        workdir: Path, start: Callable[..., ProducerProcess], segment_name: str) -> None:
    config = write_config(workdir, replay={"speeed": 2.0})
    p = start(config)
    assert p.wait_exit() == C.EXIT_CONFIG == 78
    err = p.log
    assert "producer.replay.speeed" in err
    assert_no_traceback(err)
    assert not os.path.exists(shm.segment_path(segment_name))


def test_busy_metrics_port_exits_69_and_removes_the_segment(
        workdir: Path, start: Callable[..., ProducerProcess], segment_name: str) -> None:
    """A failure after the segment exists still removes it: no segment left behind."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = write_config(workdir)
        raw = yaml.safe_load(config.read_text())
        raw["producer"]["metrics"]["port"] = port
        config.write_text(yaml.safe_dump(raw))
        p = start(config)
        assert p.wait_exit() == C.EXIT_UNAVAILABLE == 69
    err = p.log
    assert f"127.0.0.1:{port}" in err and "created segment" in err
    assert_no_traceback(err)
    assert not os.path.exists(shm.segment_path(segment_name))


# -- data checks and the load cache ------------------------------------------------------


def data_config(workdir: Path, files: dict[str, str], **extra: object) -> Path:
    """A config replaying the given CSV texts (name -> text), yahoo format."""
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    for name, text in files.items():
        (data / f"{name}.csv").write_text(text)
    symbols = [{"name": name, "file": f"{name}.csv", "asset_class": "stock", "format": "yahoo"}
               for name in files]
    config = write_config(workdir, symbols=symbols)
    raw = yaml.safe_load(config.read_text())
    raw["producer"]["data_dir"] = str(data)
    raw["producer"].update(extra)
    config.write_text(yaml.safe_dump(raw))
    return config


# The weekdays of January 2020 but the 14th: one gap (weekends are no gaps).
GOOD_CSV = "Date,Open,High,Low,Close,Adj Close,Volume\n" + "".join(
    f"2020-01-{day:02d},10,11,9,10.5,10.5,100\n" for day in range(2, 32)
    if day != 14 and date(2020, 1, day).weekday() < 5)
WRONG_FORMAT_CSV = ("Date,Open,High,Low,Close,Adj Close,Volume\n"
                    "02/01/2020,10,11,9,10.5,10.5,100\n"
                    "03/01/2020,10,11,9,10.5,10.5,100\n"
                    "2020-01-06,10,11,9,10.5,10.5,100\n")


@pytest.mark.parametrize(("text", "fragment"), [
    (WRONG_FORMAT_CSV, "BAD.csv: 2 of 3 rows rejected (67%, more than "
                       "producer.max_reject_share 50%)"),
    ("Date,Open,High,Low,Close,Adj Close,Volume\n", "BAD.csv: no data rows"),
])
def test_a_file_mostly_rejected_or_empty_refuses_the_start_with_65(
        workdir: Path, start: Callable[..., ProducerProcess], segment_name: str, text: str,
        fragment: str) -> None:
    p = start(data_config(workdir, {"GOOD": GOOD_CSV, "BAD": text}))
    assert p.wait_exit() == C.EXIT_DATAERR == 65
    err = p.log
    assert fragment in err, err
    if "rejected" in fragment:
        assert "Top reasons: bad_timestamp 2" in err and "BAD.csv:2: bad_timestamp" in err
    assert_no_traceback(err)
    assert not os.path.exists(shm.segment_path(segment_name))


def test_the_reject_share_is_configurable(
        workdir: Path, start: Callable[..., ProducerProcess]) -> None:
    p = start(data_config(workdir, {"GOOD": GOOD_CSV, "BAD": WRONG_FORMAT_CSV},
                          max_reject_share=0.8))
    p.wait_ready()
    assert "BAD.csv: 1 bars of 3 rows" in p.log
    p.proc.send_signal(signal.SIGTERM)
    assert p.wait_exit() == 0


def test_load_summary_is_logged_and_gaps_are_a_metric(
        workdir: Path, start: Callable[..., ProducerProcess]) -> None:
    p = start(data_config(workdir, {"GOOD": GOOD_CSV}))
    p.wait_ready()
    assert ("GOOD.csv: 21 bars of 21 rows, 2020-01-02 .. 2020-01-31, interval 1 day, 1 gap "
            "(1 missing bars; first 2020-01-13 -> 2020-01-15 (1 bar missing))") in p.log
    text = urllib.request.urlopen(f"http://127.0.0.1:{p.metrics_port()}/metrics",
                                  timeout=5).read().decode()
    assert re.search(r'^tradingd_producer_data_gaps\{file="GOOD.csv"\} 1\.0$', text, re.M)
    p.proc.send_signal(signal.SIGTERM)
    assert p.wait_exit() == 0


def cache_config(workdir: Path) -> Path:
    config = write_config(workdir)
    raw = yaml.safe_load(config.read_text())
    raw["producer"]["cache_dir"] = str(workdir / "cache")
    config.write_text(yaml.safe_dump(raw))
    return config


def test_restart_after_sigkill_maps_the_warm_cache(
        workdir: Path, start: Callable[..., ProducerProcess], segment_name: str) -> None:
    """First start parses and fills the cache; after kill -9 the next start maps it: same
    data in the segment, every file 'from the load cache'."""
    config = cache_config(workdir)
    cold = start(config)
    cold.wait_ready()
    assert "from the load cache" not in cold.log
    with SegmentReader.attach(segment_name) as r:
        counts = [s.record_count for s in r.symbols()]
    entries = sorted((workdir / "cache").glob("*.npy"))
    assert len(entries) == 5 and not list((workdir / "cache").glob(".*"))  # 4 + merged
    os.kill(cold.pid, signal.SIGKILL)
    assert cold.wait_exit() == -signal.SIGKILL
    warm = start(config)
    warm.wait_ready()
    log = warm.log
    assert log.count("from the load cache") == 5, log
    assert "merged timeline from the load cache" in log
    with SegmentReader.attach(segment_name) as r:
        assert [s.record_count for s in r.symbols()] == counts
    print(f"\nREADY cold {cold.ready_after:.2f} s, warm {warm.ready_after:.2f} s")
    warm.proc.send_signal(signal.SIGTERM)
    assert warm.wait_exit() == 0


def test_a_corrupt_cache_entry_is_rebuilt_not_trusted(
        workdir: Path, start: Callable[..., ProducerProcess], segment_name: str) -> None:
    config = cache_config(workdir)
    first = start(config)
    first.wait_ready()
    with SegmentReader.attach(segment_name) as r:
        counts = [s.record_count for s in r.symbols()]
    first.proc.send_signal(signal.SIGTERM)
    assert first.wait_exit() == 0
    cache = workdir / "cache"
    (timeline,) = cache.glob("timeline-*.npy")
    biggest = max((p for p in cache.glob("*.npy") if p != timeline),
                  key=lambda q: q.stat().st_size)
    for damaged in (timeline, biggest):
        data = bytearray(damaged.read_bytes())
        data[-100] ^= 0xFF  # one flipped byte in the records
        damaged.write_bytes(bytes(data))
    second = start(config)
    second.wait_ready()
    log = second.log
    assert "merged timeline corrupt: " in log and "checksum mismatch" in log
    assert "checksum mismatch (corrupted); parsing the CSV again and rebuilding it" in log
    assert "merged timeline from the load cache" not in log
    with SegmentReader.attach(segment_name) as r:
        assert [s.record_count for s in r.symbols()] == counts
    second.proc.send_signal(signal.SIGTERM)
    assert second.wait_exit() == 0
    third = start(config)
    third.wait_ready()
    assert "merged timeline from the load cache" in third.log
    assert "corrupt" not in third.log
    third.proc.send_signal(signal.SIGTERM)
    assert third.wait_exit() == 0


def test_format_auto_sniffs_a_vendor_layout_and_loads_it(
        workdir: Path, start: Callable[..., ProducerProcess], segment_name: str) -> None:
    rows = ["Datum;Zeit;Eröffnung;Hoch;Tief;Schluss;Volumen"]
    for day in range(13, 29):
        for hour in range(9, 17):
            rows.append(f"{day:02d}.01.2020;{hour:02d}:00;1.234,5;1.240,25;1.230,0;"
                        f"1.235,75;{day * hour}")
    data = workdir / "data"
    data.mkdir()
    (data / "EU.csv").write_text("\n".join(rows) + "\n")
    config = write_config(workdir, symbols=[{"name": "EU", "file": "EU.csv",
                                             "asset_class": "stock", "format": "auto"}])
    raw = yaml.safe_load(config.read_text())
    raw["producer"]["data_dir"] = str(data)
    config.write_text(yaml.safe_dump(raw))
    p = start(config)
    p.wait_ready()
    log = p.log
    assert "EU.csv: format auto: confidence high" in log, log
    assert 'timestamp_format: "%d.%m.%Y"' in log and 'decimal: ","' in log
    with SegmentReader.attach(segment_name) as r:
        assert [s.record_count for s in r.symbols()] == [16 * 8]
    p.proc.send_signal(signal.SIGTERM)
    assert p.wait_exit() == 0
