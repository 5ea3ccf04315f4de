"""Data files that are not files, a warning that recurred every 0.5 s, a scrape flood.

* A FIFO (or a directory) as a CSV used to block the start-up in ``open()`` and ignore
  SIGTERM: now refused at once, exit 66, naming what it is.
* Fast mode with ``at_end: loop`` on data near the int64 limit wrapped the event times on
  nearly every status tick, logging the same WARNING each time (1,222 of 1,233 lines in
  10 minutes): now one WARNING, then a count at most every 10 minutes.
* 50 concurrent scrapes were 50 threads competing with the publishing loop: now a fixed
  pool (tradingd.daemon.metrics_http), so the thread count stays bounded under a flood and
  publishing goes on.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from daemons import DaemonProcess
from hostile_support import CSV_HEADER, producer, write_config

from tradingd import constants as C
from tradingd.daemon.metrics_http import WORKERS
from tradingd.segment import shm
from tradingd.segment.reader import SegmentReader


def test_fifo_data_file_is_refused_at_once_with_66(segment_name: str, workdir: Path) -> None:
    os.mkfifo(workdir / "T.csv", 0o600)
    t0 = time.monotonic()
    res = producer(write_config(workdir), segment_name)
    out = res.stdout + res.stderr
    assert res.returncode == C.EXIT_NOINPUT, out
    assert "T.csv: is a FIFO (named pipe), not a regular file" in out, out
    assert time.monotonic() - t0 < 20  # an interpreter start on a loaded box, no blocking
    assert not os.path.lexists(shm.segment_path(segment_name))


def test_directory_data_file_is_refused_with_66(segment_name: str, workdir: Path) -> None:
    os.mkdir(workdir / "T.csv")
    res = producer(write_config(workdir), segment_name)
    assert res.returncode == C.EXIT_NOINPUT and "is a directory" in res.stderr, res.stderr


def test_year_2262_wrap_is_warned_once_then_counted(segment_name: str, workdir: Path) -> None:
    # two bars 230 years apart: every loop of the replay passes the int64 limit
    (workdir / "W.csv").write_text(CSV_HEADER + "1970-01-02,1,2,0.5,1.5,1.5,10\n"
                                                "2200-01-01,1,2,0.5,1.5,1.5,10\n")
    cfg = write_config(workdir, csv="W.csv", replay={"mode": "fast", "at_end": "loop"})
    prod = DaemonProcess("producer", cfg, workdir, segment=segment_name)
    try:
        prod.wait_ready()
        with SegmentReader.attach(segment_name) as r:
            deadline = time.monotonic() + 30
            while r.header()["replay_loops"] < 5000:  # thousands of wraps, many status ticks
                assert time.monotonic() < deadline and prod.alive(), prod.log
                time.sleep(0.05)
        time.sleep(1.5)  # three more status ticks, each of which used to log it again
        assert prod.stop() == 0
    finally:
        prod.cleanup()
    log = prod.log
    assert log.count("would pass the int64 limit (year 2262)") == 1, log
    assert len(log.splitlines()) < 20, log


def test_scrape_flood_keeps_threads_bounded_and_publishing_going(segment_name: str,
                                                                 workdir: Path) -> None:
    cfg = write_config(workdir, replay={"mode": "fast", "at_end": "loop"})
    prod = DaemonProcess("producer", cfg, workdir, segment=segment_name)
    stop = threading.Event()
    answered = [0]
    threads: list[threading.Thread] = []
    try:
        prod.wait_ready()
        url = prod.metrics_url()
        with urllib.request.urlopen(url, timeout=10) as resp:  # the pool's first worker
            resp.read()
        before = len(os.listdir(f"/proc/{prod.pid}/task"))

        def scrape() -> None:
            while not stop.is_set():
                try:
                    with urllib.request.urlopen(url, timeout=10) as resp:
                        if b"tradingd_producer" in resp.read():
                            answered[0] += 1
                except (urllib.error.URLError, ConnectionError, OSError):
                    pass  # refused beyond MAX_IN_FLIGHT: closed at once, by design

        threads += [threading.Thread(target=scrape, daemon=True) for _ in range(50)]
        with SegmentReader.attach(segment_name) as r:
            c0 = r.cursor
            for t in threads:
                t.start()
            most = before
            deadline = time.monotonic() + 30
            while answered[0] < 100 or r.cursor == c0:  # to a count, with a generous cap
                assert time.monotonic() < deadline and prod.alive(), prod.log
                most = max(most, len(os.listdir(f"/proc/{prod.pid}/task")))
                time.sleep(0.01)
            assert r.cursor > c0  # still publishing under the flood
        assert most <= before + WORKERS, (before, most)
    finally:
        stop.set()
        prod.cleanup()
        for t in threads:
            t.join(15)
