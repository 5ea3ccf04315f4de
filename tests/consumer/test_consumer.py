"""ConsumerService in-process: the loop, the snapshot the metrics export, STATUS and reports.

The daemon's process behaviour (signals, sd_notify, real producer) is covered by
tests/test_consumer_e2e.py; here a SegmentWriter in the test plays the producer.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from support import ThreadStop

from tradingd.consumer.daemon import ConsumerService
from tradingd.consumer.waiting import STRATEGIES
from tradingd.daemon.config import Config, load_config
from tradingd.segment.model import SymbolInfo
from tradingd.segment.writer import SegmentWriter

SYMBOLS = [SymbolInfo("AAA"), SymbolInfo("BBB")]


def config(tmp_path: Path, segment: str, strategy: str = "block") -> Config:
    path = tmp_path / "tradingd.yaml"
    path.write_text(f"""
segment: {{name: {segment}}}
consumer:
  wait: {{strategy: {strategy}, poll_interval: 0.001}}
  analysis: {{window: 16}}
  metrics: {{port: 0}}
""")
    return load_config(path)


def publish(w: SegmentWriter, n: int, base: float = 10.0) -> None:
    for i in range(n):
        w.publish(i % 2, i, base, base + 1, base - 1, base + i, 100.0)


def test_waiting_snapshot_and_status(tmp_path: Path, segment_name: str) -> None:
    svc = ConsumerService(config(tmp_path, segment_name), stop=ThreadStop())
    svc.follower.tick()
    assert svc.status_text() == f"waiting for segment /dev/shm/{segment_name}; consumed 0, lost 0"
    s = svc.snapshot()
    assert (s.attached, s.producer_up, s.generation, s.producer_state) == (False, False, 0,
                                                                           "none")
    assert s.heartbeat_timestamp is None and s.last_data_timestamp is None
    assert s.symbols == [] and s.consumed == 0


def test_attached_snapshot_backlog_and_generations(tmp_path: Path, segment_name: str,
                                                   impl: str) -> None:
    svc = ConsumerService(config(tmp_path, segment_name), stop=ThreadStop())
    w1 = SegmentWriter.create(segment_name, SYMBOLS, ring_capacity=256)
    try:
        publish(w1, 6)  # already there at attach: analysed, not timed
        svc.follower.tick()
        publish(w1, 10)
        while svc.follower.poll():
            pass
        s = svc.snapshot()
        assert s.attached and s.producer_up and s.producer_state == "live"
        assert s.generation == w1.generation
        assert s.consumed == 16 and s.lost == 0 and s.lag == 0
        assert sum(c for _, c in s.latency_buckets[-1:]) == 10  # backlog not timed
        assert {st.name: st.records for st in s.symbols} == {"AAA": 8, "BBB": 8}
        assert s.symbol_records == {"AAA": 8, "BBB": 8}
        assert s.heartbeat_timestamp is not None and s.last_data_timestamp is not None
        assert svc.status_text().startswith(f"attached gen {w1.generation >> 32:08x}, ")
    finally:
        w1.close()
    w2 = SegmentWriter.create(segment_name, [SymbolInfo("BBB"), SymbolInfo("CCC")],
                              ring_capacity=256)
    try:
        svc.follower.tick(force=True)  # the old segment is gone: wait, then attach anew
        svc.follower.tick(svc.follower._next_attempt_ns)
        publish(w2, 4, base=50.0)
        while svc.follower.poll():
            pass
        s = svc.snapshot()
        assert s.generation == w2.generation and s.generation_changes == 1
        # figures restart with the new stream; per-symbol counts continue across it
        assert {st.name: st.last_price for st in s.symbols} == {"BBB": 52.0, "CCC": 53.0}
        assert s.symbol_records == {"AAA": 8, "BBB": 10, "CCC": 2}
        assert s.consumed == 20
    finally:
        svc.close()
        w2.close()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_run_reads_what_is_published_until_stopped(tmp_path: Path, segment_name: str,
                                                   strategy: str) -> None:
    stop = ThreadStop()
    svc = ConsumerService(config(tmp_path, segment_name, strategy), stop=stop)
    w = SegmentWriter.create(segment_name, SYMBOLS, ring_capacity=1024)
    done = threading.Event()

    def produce() -> None:
        for _ in range(20):
            publish(w, 5)
            stop.wait(0.005)
        done.set()

    t = threading.Thread(target=produce)
    watchdog = threading.Timer(10, stop.event.set)  # never hang the suite
    watchdog.start()
    t.start()

    def stop_when_done() -> None:
        done.wait(10)
        while svc.follower.consumed < 100 and not stop.is_set():
            stop.wait(0.01)
        stop.event.set()

    threading.Thread(target=stop_when_done).start()
    try:
        svc.run()
    finally:
        watchdog.cancel()
        t.join()
        svc.close()
        w.close()
    assert svc.follower.consumed == 100 and svc.follower.lost == 0
    assert svc.latency.total == 100 - svc.follower.attach_cursor  # published after attach


def test_report_logs_throughput_health_and_symbols(tmp_path: Path, segment_name: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    svc = ConsumerService(config(tmp_path, segment_name), stop=ThreadStop())
    with SegmentWriter.create(segment_name, SYMBOLS, ring_capacity=256) as w:
        svc.follower.tick()
        publish(w, 20)
        while svc.follower.poll():
            pass
        svc.report()
        svc.close()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "report: gen" in text and "consumed 20" in text and "lost 0" in text
    assert "producer up" in text and "data fresh" in text
    assert "symbols: AAA 28 " in text and "BBB 29 " in text
