"""The real tradingd-consumer process with the real tradingd-producer, end to end.

Every test starts the installed console scripts on a private segment name with a config
written to a temporary directory (metrics on free ports, the bundled market data), reads
the consumer's figures from its metrics endpoint, and kills every process by PID and
removes the segment afterwards, also when a test fails.

The per-symbol figures are checked against values computed here from the CSV files with
the csv module and plain arithmetic: nothing of tradingd's loader, replay or analytics.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import math
import os
import re
import signal
import statistics
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from daemons import START_TIMEOUT, DaemonProcess, command
from prometheus_client.parser import text_string_to_metric_families
from support import promtool_lint

from tradingd.errors import SegmentError
from tradingd.segment import layout as L
from tradingd.segment import shm
from tradingd.segment.reader import SegmentReader

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MARKET_DATA = REPO / "market_data"
WINDOW = 100  # consumer.analysis.window in these tests
HEARTBEAT = 0.05  # segment.heartbeat_interval: timeout = max(5 x 0.05, 0.5 floor) = 0.5 s
HEARTBEAT_TIMEOUT = 0.5
BUNDLED = {  # symbol -> CSV file under market_data/
    "AAPL": "stocks/AAPL.csv", "TSLA": "stocks/TSLA.csv", "BTC-USD": "crypto/BTC-USD.csv",
    "EURUSD": "forex/EURUSD.csv",
}


# ------------------------------------------------------------------ processes


def write_config(workdir: Path, segment: str, *, replay: dict | None = None,
                 segment_extra: dict | None = None, consumer: dict | None = None) -> Path:
    cfg = {
        "segment": {"name": segment, "ring_capacity": 65536, "heartbeat_interval": HEARTBEAT,
                    **(segment_extra or {})},
        "producer": {
            "data_dir": str(MARKET_DATA),
            "replay": {"mode": "fast", "at_end": "stop", **(replay or {})},
            "metrics": {"port": 0},
        },
        "consumer": {
            "wait": {"strategy": "block"},
            "attach_retry_interval": 0.05,
            "data_stale_after": 1.0,
            "analysis": {"window": WINDOW},
            "report_interval": 1.0,
            "metrics": {"port": 0},
            **(consumer or {}),
        },
    }
    path = workdir / f"tradingd-{len(list(workdir.glob('*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


# ------------------------------------------------------------------ metrics
Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


def parse(text: str) -> Scrape:
    out: Scrape = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(url: str) -> Scrape:
    return parse(scrape_text(url))


def value(m: Scrape, name: str, **labels: str) -> float:
    return m[("tradingd_consumer_" + name, tuple(sorted(labels.items())))]


def wait_metrics(url: str, predicate: Callable[[Scrape], bool], timeout: float,
                 what: str, daemon: DaemonProcess) -> Scrape:
    deadline = time.monotonic() + timeout
    m: Scrape = {}
    while time.monotonic() < deadline:
        m = scrape(url)
        if predicate(m):
            return m
        assert daemon.alive(), f"consumer died:\n{daemon.log}"
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}; last scrape: "
                         f"{ {k: v for k, v in m.items() if 'tradingd' in k[0]} }\n"
                         f"consumer log:\n{daemon.log}")


# ------------------------------------------------------------------ independent figures
def csv_figures(path: Path, window: int) -> dict[str, float]:
    """Figures of one CSV file computed the obvious way (the bundled files are clean)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    close = [float(r["Close"]) for r in rows]
    volume = [float(r["Volume"]) for r in rows]
    high = [float(r["High"]) for r in rows]
    low = [float(r["Low"]) for r in rows]
    c, v = close[-window:], volume[-window:]
    returns = [math.log(b / a) for a, b in itertools.pairwise(c)]
    return {
        "records": len(rows),
        "price": close[-1],
        "previous_price": close[-2],
        "first_price": close[0],
        "vwap": sum(x * y for x, y in zip(c, v, strict=True)) / sum(v),
        "volatility": statistics.stdev(returns),
        "log_return_mean": statistics.fmean(returns),
        "window_high": max(high[-window:]),
        "window_low": min(low[-window:]),
        "volume": volume[-1],
        "window_volume": sum(v),
    }


def published(segment: str) -> int:
    with SegmentReader.attach(segment) as r:
        return r.cursor


def wait_finished(segment: str, timeout: float = START_TIMEOUT) -> int:
    """Wait for the producer's replay to finish (at_end: stop); return records published."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with SegmentReader.attach(segment) as r:
                if r.state == L.STATE_FINISHED:
                    return r.cursor
        except SegmentError:  # not there yet, or still initialising
            pass
        time.sleep(0.02)
    raise AssertionError(f"segment {segment} never reached state finished")


# ------------------------------------------------------------------ tests
def test_figures_match_the_csv_data_and_metrics_lint(
        workdir: Path, segment_name: str, start: Callable[..., DaemonProcess]) -> None:
    cfg = write_config(workdir, segment_name)
    producer = start("producer", cfg)
    consumer = start("consumer", cfg)
    url = consumer.metrics_url()
    total = wait_finished(segment_name)
    m = wait_metrics(url, lambda m: value(m, "records_consumed_total") == total, 10,
                     f"{total} records consumed", consumer)
    assert total == sum(csv_figures(MARKET_DATA / f, WINDOW)["records"] for f in BUNDLED.values())
    assert value(m, "records_lost_total") == 0
    assert value(m, "records_rejected_total") == 0
    assert value(m, "lag_records") == 0
    assert value(m, "producer_up") == 1
    now = time.time()  # a recent wall-clock time (a loaded machine may scrape late)
    assert now - 30.0 < value(m, "producer_heartbeat_timestamp_seconds") <= now
    assert value(m, "last_receive_timestamp_seconds") <= now
    assert m[("tradingd_consumer_segment_info",
              (("generation", f"{producer_generation(segment_name):016x}"),
               ("segment", segment_name), ("state", "finished")))] == 1
    for symbol, rel in BUNDLED.items():
        want = csv_figures(MARKET_DATA / rel, WINDOW)
        assert value(m, "symbol_records_consumed_total", symbol=symbol) == want.pop("records")
        for key, expected in want.items():
            got = value(m, f"symbol_{key}", symbol=symbol)
            assert got == pytest.approx(expected, rel=1e-9), (symbol, key)
    promtool_lint(scrape_text(url))
    assert consumer.stop() == 0
    assert producer.stop() == 0
    assert "Traceback" not in consumer.log


def producer_generation(segment: str) -> int:
    with SegmentReader.attach(segment) as r:
        return r.generation


def test_producer_killed_then_restarted(workdir: Path, segment_name: str,
                                        start: Callable[..., DaemonProcess]) -> None:
    # paced and looping: data and heartbeats keep coming until the kill
    cfg = write_config(workdir, segment_name,
                       replay={"mode": "paced", "speed": 365 * 86400.0, "at_end": "loop"})
    p1 = start("producer", cfg)
    p1.wait_for_notify("READY")
    gen1 = producer_generation(segment_name)
    consumer = start("consumer", cfg)
    url = consumer.metrics_url()
    scrapes: list[Scrape] = []

    def watch(pred: Callable[[Scrape], bool], timeout: float, what: str) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            m = scrape(url)  # raises if the endpoint does not answer: metrics continuous
            scrapes.append(m)
            if pred(m):
                return time.monotonic() - t0
            assert consumer.alive(), consumer.log
            time.sleep(0.01)
        raise AssertionError(f"timed out: {what}\n{consumer.log}")

    watch(lambda m: value(m, "producer_up") == 1 and value(m, "records_consumed_total") > 0,
          10, "consumer attached and reading")
    os.kill(p1.pid, signal.SIGKILL)
    p1.proc.wait(5)
    killed = time.monotonic()
    down_after = watch(lambda m: value(m, "producer_up") == 0, START_TIMEOUT, "producer down")
    # the heartbeat is at most one interval old at the kill: down within the timeout
    # (+ the consumer's 50 ms check and the scrape, which a busy machine delays: the bound
    # tells "by the heartbeat timeout" from a fixed multi-second check, not a latency)
    assert down_after <= HEARTBEAT_TIMEOUT + 3.0, down_after
    assert time.monotonic() - killed >= HEARTBEAT_TIMEOUT - HEARTBEAT - 0.05  # not before
    deadline = time.monotonic() + START_TIMEOUT  # the log line follows at the next check
    while "producer down: heartbeat" not in consumer.log and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "producer down: heartbeat" in consumer.log

    p2 = start("producer", cfg)  # reclaims the stale segment, creates a new generation
    p2.wait_for_notify("READY")
    ready = time.monotonic()
    gen2 = producer_generation(segment_name)
    assert gen2 != gen1
    reattach = watch(lambda m: value(m, "generation_changes_total") == 1
                     and value(m, "producer_up") == 1, START_TIMEOUT, "re-attached")
    # retried every 0.25 s: well before a backoff of many seconds would (busy machine: slack)
    assert time.monotonic() - ready < 10.0, reattach
    before = value(scrapes[-1], "records_consumed_total")
    watch(lambda m: value(m, "records_consumed_total") > before, START_TIMEOUT,
          "reading the new generation")
    last = scrapes[-1]
    assert ("tradingd_consumer_segment_info", (("generation", f"{gen2:016x}"),
                                               ("segment", segment_name),
                                               ("state", "live"))) in last
    consumed = [value(s, "records_consumed_total") for s in scrapes]
    assert consumed == sorted(consumed)  # counters never went backwards
    assert value(last, "records_rejected_total") == 0  # no torn record ever accepted
    assert value(last, "attaches_total") == 2
    assert consumer.alive()
    assert consumer.stop() == 0
    assert "Traceback" not in consumer.log


def test_consumer_started_first_waits_then_attaches(
        workdir: Path, segment_name: str, start: Callable[..., DaemonProcess]) -> None:
    cfg = write_config(workdir, segment_name)
    consumer = start("consumer", cfg, env={"WATCHDOG_USEC": "200000"})
    ready = consumer.wait_for_notify("READY")  # started although there is no producer
    assert "waiting for segment" in ready.get("STATUS", ""), ready
    t0 = time.monotonic()
    while sum(m.get("WATCHDOG") == "1" for m in consumer.notify.drain()) < 3:
        assert time.monotonic() - t0 < START_TIMEOUT, consumer.notify.messages  # pinged
        time.sleep(0.02)
    url = consumer.metrics_url()
    m = scrape(url)
    assert value(m, "attached") == 0 and value(m, "producer_up") == 0
    promtool_lint(scrape_text(url))  # also clean with nothing attached
    time.sleep(0.3)  # several retries: logged once (the periodic report says it too)
    assert consumer.log.count("retrying every") == 1, consumer.log
    start("producer", cfg)
    total = wait_finished(segment_name)
    m = wait_metrics(url, lambda m: value(m, "records_consumed_total") == total, 10,
                     "all records consumed", consumer)
    assert value(m, "attaches_total") == 1 and value(m, "generation_changes_total") == 0
    assert value(m, "records_lost_total") == 0
    gen = producer_generation(segment_name)
    consumer.wait_for_notify("STATUS", timeout=5, match=lambda v: v.startswith(
        f"attached gen {gen >> 32:08x}, ") and "lag 0" in v and "producer finished" in v)
    assert consumer.stop() == 0
    msgs = consumer.notify.drain()
    assert any(x.get("STOPPING") == "1" for x in msgs)


def test_slow_consumer_counts_lapping_exactly_then_catches_up(
        workdir: Path, segment_name: str, start: Callable[..., DaemonProcess]) -> None:
    # A 256-record ring, a replay of the 44 years of data in about 1.5 s (the dense
    # 2017-2024 stretch in bursts of thousands of records), and a consumer sleeping 20 ms
    # after each batch (at most ~200 records): it is lapped many times over.
    cfg = write_config(workdir, segment_name, segment_extra={"ring_capacity": 256},
                       replay={"mode": "paced", "speed": 1e9},
                       consumer={"wait": {"strategy": "poll", "poll_interval": 0.001}})
    consumer = start("consumer", cfg, env={"TRADINGD_CONSUMER_TEST_DELAY": "0.02"})
    url = consumer.metrics_url()
    start("producer", cfg)
    total = wait_finished(segment_name)
    m = wait_metrics(url, lambda m: value(m, "lag_records") == 0
                     and value(m, "records_consumed_total") > 0, 10, "caught up", consumer)
    consumed = value(m, "records_consumed_total")
    lost = value(m, "records_lost_total")
    skipped = value(m, "records_skipped_total")
    assert lost > 0
    assert lost == total - consumed - skipped  # exact: every record read, lost or skipped
    assert value(m, "records_rejected_total") == 0
    assert consumed < total
    assert published(segment_name) == total
    assert "TRADINGD_CONSUMER_TEST_DELAY" in consumer.log  # loudly marked as a test setting
    assert consumer.stop() == 0


def test_sigterm_while_waiting_exits_cleanly(workdir: Path, segment_name: str,
                                             start: Callable[..., DaemonProcess]) -> None:
    cfg = write_config(workdir, segment_name)
    consumer = start("consumer", cfg)
    consumer.wait_for_notify("READY")
    t0 = time.monotonic()
    assert consumer.stop() == 0
    # its waits are bounded by the 50 ms housekeeping: not the seconds of a stuck wait
    assert time.monotonic() - t0 < 8.0
    assert not os.path.exists(shm.segment_path(segment_name))  # nothing created


def _with_data(out: str) -> set[str]:
    """Symbols the demo's view has shown a price for (its rows: SYMBOL PRICE ...)."""
    return {cols[0] for cols in map(str.split, out.splitlines())
            if len(cols) > 1 and cols[0] in BUNDLED and cols[1] != "-"}


def _demo_pids(out: str) -> tuple[str, list[int]]:
    m = re.search(r"segment /dev/shm/(\S+); producer pid (\d+).*consumer pid (\d+)", out)
    assert m, out
    gateway = re.search(r"gateway pid (\d+)", out)  # the demo runs tradingd-gateway too
    return m.group(1), [int(m.group(2)), int(m.group(3)), *([int(gateway.group(1))]
                                                            if gateway else [])]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:  # a zombie not yet reaped counts as gone
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


def _catches(pid: int, sig: int) -> bool:
    """Whether the process has a handler for ``sig`` (/proc/PID/status SigCgt)."""
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return bool(int(fields["SigCgt"], 16) & (1 << (sig - 1)))


@pytest.mark.parametrize("how", ["duration", "sigint"])
def test_demo_leaves_no_process_or_segment(how: str) -> None:
    # a replay of the whole bundled data set in ~1.5 s; Ctrl-C once every symbol has shown
    # data (however long a busy machine takes), or after --duration (data or not)
    cmd = [*command("demo"), "--refresh", "0.5", "--speed", "1e9"]
    if how == "duration":
        cmd += ["--duration", "3"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)
    out = ""
    try:
        if how == "sigint":
            out = proc.stdout.readline().decode()  # type: ignore[union-attr]
            segment, _ = _demo_pids(out)
            deadline = time.monotonic() + START_TIMEOUT
            while not os.path.exists(shm.segment_path(segment)):
                assert time.monotonic() < deadline and proc.poll() is None, out
                time.sleep(0.05)
            while _with_data(out) != set(BUNDLED):
                line = proc.stdout.readline().decode()  # type: ignore[union-attr]
                assert line and time.monotonic() < deadline, out
                out += line
            # a SIGINT the demo ignores (inherited SIG_IGN) would hang here: say so instead
            assert _catches(proc.pid, signal.SIGINT), "the demo does not handle SIGINT"
            proc.send_signal(signal.SIGINT)  # Ctrl-C
            out += proc.communicate(timeout=30)[0].decode()
        else:
            out = proc.communicate(timeout=60)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with contextlib.suppress(AssertionError):  # never leave the demo's daemons behind
            segment, pids = _demo_pids(out)
            for pid in pids:
                if not _gone(pid):
                    os.kill(pid, signal.SIGKILL)
            shm.unlink(segment)
    segment, pids = _demo_pids(out)
    assert proc.returncode == 0, out
    assert "PRICE" in out and "VWAP" in out and "RATE/s" in out
    assert "\x1b[" not in out  # not a terminal: plain lines, no screen control
    assert all(_gone(pid) for pid in pids), out
    assert not os.path.exists(shm.segment_path(segment)), out
    assert "Traceback" not in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.split() and line.split()[0] in BUNDLED}
    assert rows.keys() == BUNDLED.keys(), out  # a row per symbol
    if how == "sigint":
        assert _with_data(out) == set(BUNDLED), out
