"""Flow control end to end: the real producer replaying flat out with
``replay.flow_control: slowest`` and real consumer daemons (block strategy).

* two consumers, one of them slowed down (it sleeps after every batch), on a 4 Ki ring
  the producer laps thousands of times: both consume N records with 0 lost; the same
  setup as a feed (``flow_control: none``) loses records in the slow one, so the check
  can fail;
* a gated consumer ``kill -9``'d: the producer drops it (exited) and the other consumer
  keeps receiving, without loss;
* a gated consumer stopped (SIGSTOP): dropped after ``flow_control_timeout`` (stalled),
  logged and counted by the producer; continued, the consumer says it was dropped.

Every wait runs to a count or an event with a generous cap; nothing asserts a rate.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from daemons import DaemonProcess
from test_consumer_e2e import HEARTBEAT, MARKET_DATA, Scrape, scrape

from tradingd.segment.fastpath import FAST

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(FAST is None, reason="flow control needs the C fast path")]

CAP_S = 240.0  # generous: a loaded 2-vCPU machine; a quiet one needs a few seconds
N = 2_000_000  # records each consumer must receive
RING = 4096




def config(workdir: Path, segment: str, flow_control: str, wait_for: int,
           timeout: float = 30.0) -> Path:
    cfg = {
        "segment": {"name": segment, "ring_capacity": RING, "heartbeat_interval": HEARTBEAT},
        "producer": {
            "data_dir": str(MARKET_DATA),
            "replay": {"mode": "fast", "at_end": "loop", "flow_control": flow_control,
                       "flow_control_wait_for": wait_for,
                       "flow_control_timeout": timeout},
            "metrics": {"port": 0},
        },
        "consumer": {"wait": {"strategy": "block"}, "attach_retry_interval": 0.02,
                     "report_interval": 1.0, "metrics": {"port": 0}},
    }
    path = workdir / f"fc-{flow_control}-{wait_for}-{timeout:g}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def counter(m: Scrape, name: str, **labels: str) -> float:
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def consumed(d: DaemonProcess) -> tuple[float, float]:
    m = scrape(d.metrics_url())
    return (counter(m, "tradingd_consumer_records_consumed_total"),
            counter(m, "tradingd_consumer_records_lost_total"))


def wait_until(what: str, predicate: Callable[[], bool], *daemons: DaemonProcess) -> None:
    deadline = time.monotonic() + CAP_S
    while not predicate():
        for d in daemons:
            assert d.alive(), f"{d.kind} exited {d.proc.poll()} while waiting for {what}:\n{d.log}"
        assert time.monotonic() < deadline, f"{what}: not within {CAP_S:.0f} s\n" + \
            "\n".join(f"--- {d.kind} log:\n{d.log[-3000:]}" for d in daemons)
        time.sleep(0.05)


def run_pair(start: Callable[..., DaemonProcess], cfg: Path, wait_for: int
             ) -> tuple[DaemonProcess, DaemonProcess, DaemonProcess]:
    """Two consumers (the second sleeps 2 ms after every batch) and the producer."""
    fast = start("consumer", cfg)
    slow = start("consumer", cfg, env={"TRADINGD_CONSUMER_TEST_DELAY": "0.002"})
    fast.wait_ready()
    slow.wait_ready()
    producer = start("producer", cfg)
    producer.wait_ready()
    return producer, fast, slow


def test_two_gated_consumers_lose_nothing_and_a_feed_laps_the_slow_one(
        start: Callable[..., DaemonProcess], workdir: Path, segment_name: str) -> None:
    producer, fast, slow = run_pair(start, config(workdir, segment_name, "slowest", 2), 2)
    wait_until(f"both consumers received {N:,} records",
               lambda: min(consumed(fast)[0], consumed(slow)[0]) >= N, producer, fast, slow)
    for d in (fast, slow):
        got, lost = consumed(d)
        assert got >= N and lost == 0, (d.kind, got, lost, d.log[-2000:])
        assert "joined the producer's flow-control gate" in d.log
    assert "flow control: 2 gated consumer(s) joined; replaying" in producer.log
    m = scrape(producer.metrics_url())
    assert counter(m, "tradingd_producer_flow_control_consumers") == 2
    assert counter(m, "tradingd_producer_records_published_total") > 100 * RING
    for d in (slow, fast, producer):
        assert d.stop() == 0

    # the same as a market-data feed: the producer never waits, the slow one is lapped
    producer, fast, slow = run_pair(start, config(workdir, segment_name, "none", 0), 0)
    wait_until("the slow consumer of a feed losing records", lambda: consumed(slow)[1] > 0,
               producer, fast, slow)
    assert "flow-control gate" not in slow.log


def test_a_killed_consumer_does_not_stall_the_replay(
        start: Callable[..., DaemonProcess], workdir: Path, segment_name: str) -> None:
    producer, fast, slow = run_pair(start, config(workdir, segment_name, "slowest", 2), 2)
    wait_until("the slow consumer reading", lambda: consumed(slow)[0] >= 10 * RING,
               producer, fast, slow)
    os.kill(slow.pid, signal.SIGKILL)
    slow.proc.wait(10)
    at_kill = consumed(fast)[0]
    wait_until("the producer dropping the killed consumer",
               lambda: "(PID gone)" in producer.log, producer, fast)
    assert re.search(rf"dropped consumer PID {slow.pid} \(gate slot \d+\)", producer.log)
    wait_until(f"the other consumer receiving {N:,} more records",
               lambda: consumed(fast)[0] >= at_kill + N, producer, fast)
    assert consumed(fast)[1] == 0
    m = scrape(producer.metrics_url())
    assert counter(m, "tradingd_producer_flow_control_drops_total", reason="exited") == 1
    assert counter(m, "tradingd_producer_flow_control_consumers") == 1


def test_a_stalled_consumer_is_dropped_after_the_timeout(
        start: Callable[..., DaemonProcess], workdir: Path, segment_name: str) -> None:
    producer, fast, slow = run_pair(
        start, config(workdir, segment_name, "slowest", 2, timeout=0.5), 2)
    wait_until("the slow consumer reading", lambda: consumed(slow)[0] >= 10 * RING,
               producer, fast, slow)
    os.kill(slow.pid, signal.SIGSTOP)
    t0 = time.monotonic()
    wait_until("the producer dropping the stopped consumer",
               lambda: "while holding the replay" in producer.log, producer, fast)
    assert time.monotonic() - t0 >= 0.5  # not before the timeout
    at_drop = consumed(fast)[0]
    wait_until(f"the other consumer receiving {N:,} more records",
               lambda: consumed(fast)[0] >= at_drop + N, producer, fast)
    assert consumed(fast)[1] == 0
    m = scrape(producer.metrics_url())
    assert counter(m, "tradingd_producer_flow_control_drops_total", reason="stalled") == 1
    os.kill(slow.pid, signal.SIGCONT)
    wait_until("the continued consumer noticing the drop",
               lambda: "dropped this consumer from its flow-control gate" in slow.log,
               producer, fast, slow)
    wait_until("the continued consumer counting what the replay lapped",
               lambda: consumed(slow)[1] > 0, producer, fast, slow)
