"""Consumer benchmark: throughput, one-way latency per wait strategy, pipe for comparison.

    .venv/bin/python bench/bench_consumer.py [--seconds 3] [--rate 2000] [--quick]

Prints, for this machine and this run:

* analytics alone: records/s through ``Analytics.update`` for several batch sizes;
* consumer read path: records/s through ``poll_batch`` + analytics + latency histogram
  (the daemon's ``ConsumerService`` data path) draining a pre-filled ring, and live, with
  the real tradingd-producer replaying the bundled data as fast as it can (records/s
  published, consumed, and lost to lapping: the two processes share the machine's CPUs);
* one-way latency (publish_ns -> consumer has the record), writer in another process
  publishing ONE record at a time at a modest rate, for each wait strategy (spin, poll,
  block), two ways: the transport (strategy wait + ``poll_one``) and the daemon's whole
  path (``ConsumerService.run``: wait + ``poll_batch`` + analytics, timed at its sink);
* CPU used by an idle consumer (no data arriving) for each strategy (the daemon's loop);
* os.pipe in the same run: 64-byte ping-pong (round trip / 2) and one-way wake-up at the
  same modest rate, the reader blocked in read() as the ``block`` strategy is in futex.

Absolute figures drift between runs on a shared 2-vCPU VM; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import multiprocessing as mp
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import peers
import yaml

from tradingd.consumer.analytics import Analytics
from tradingd.consumer.daemon import ConsumerService
from tradingd.consumer.waiting import STRATEGIES, make_strategy
from tradingd.daemon.config import Config, default_config
from tradingd.segment import layout as L
from tradingd.segment.fastpath import IMPLEMENTATION
from tradingd.segment.model import SymbolInfo
from tradingd.segment.reader import SegmentReader
from tradingd.segment.writer import SegmentWriter

SYMS = [SymbolInfo(n) for n in ("AAPL", "TSLA", "BTC-USD", "EURUSD")]
PIN = True  # --no-pin turns CPU pinning of the latency runs off
REPO = Path(__file__).resolve().parent.parent


class _NeverStop:
    def is_set(self) -> bool:
        return False

    def wait(self, timeout: float | None = None) -> bool:
        time.sleep(timeout or 0)
        return False


class _TimedStop:
    """Set after ``seconds``; ``wait`` sleeps like StopFlag.wait."""

    def __init__(self, seconds: float) -> None:
        self._event = threading.Event()
        self._timer = threading.Timer(seconds, self._event.set)
        self._timer.daemon = True
        self._timer.start()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)


def _name() -> str:
    return f"tdbench-{uuid.uuid4().hex[:8]}"


def _records(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    recs = np.zeros(n, L.RECORD_DTYPE)
    recs["symbol_id"] = rng.integers(0, len(SYMS), n)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    recs["close"] = recs["open"] = close
    recs["high"] = close * 1.001
    recs["low"] = close * 0.999
    recs["volume"] = rng.integers(1, 10_000, n)
    return recs


def _config(name: str, strategy: str, poll_interval: float = 0.001) -> Config:
    base = default_config()
    c = base.consumer
    return dataclasses.replace(
        base, segment=dataclasses.replace(base.segment, name=name),
        consumer=dataclasses.replace(
            c, wait=dataclasses.replace(c.wait, strategy=strategy, poll_interval=poll_interval),
            report_interval=3600.0))


def _pct(values: np.ndarray | list[float], qs: tuple[float, ...] = (50, 99)) -> list[float]:
    return [float(v) for v in np.percentile(np.asarray(values, dtype=float), qs)]


# ------------------------------------------------------------------ throughput
def bench_analytics(seconds: float) -> dict[int, float]:
    """records/s through Analytics.update per batch size."""
    out = {}
    for size in (1, 16, 256, 4096):
        recs = _records(size)
        a = Analytics(64, 512)
        n = 0
        t0 = time.perf_counter()
        while (dt := time.perf_counter() - t0) < seconds / 4:
            a.update(recs)
            n += size
        out[size] = n / dt
    return out


def bench_drain(total: int) -> float:
    """records/s through the daemon's data path draining a pre-filled ring (one process)."""
    name = _name()
    recs = _records(total)
    with SegmentWriter.create(name, SYMS, ring_capacity=1 << 18, ring_window=8192,
                              wake_readers=False) as w:
        svc = ConsumerService(_config(name, "spin"), stop=_NeverStop())
        svc.follower.tick()
        best = 0.0
        for _ in range(3):
            w.publish_batch(recs)
            t0 = time.perf_counter()
            while svc.follower.poll(4096):
                pass
            best = max(best, total / (time.perf_counter() - t0))
        assert svc.follower.lost == 0
        svc.close()
    return best


def bench_live(seconds: float, strategy: str, ring: int = 65536) -> dict[str, float]:
    """The real producer replaying as fast as it can (fast, loop) and the daemon's loop."""
    name = _name()
    workdir = Path(tempfile.mkdtemp(prefix="tdbench-"))
    cfg = workdir / "tradingd.yaml"
    cfg.write_text(yaml.safe_dump({
        "segment": {"name": name, "ring_capacity": ring},
        "producer": {"data_dir": str(REPO / "market_data"),
                     "replay": {"mode": "fast", "at_end": "loop"},
                     "metrics": {"enabled": False}},
        "consumer": {"metrics": {"enabled": False}},
    }))
    script = Path(sys.executable).parent / "tradingd-producer"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "tradingd.producer.daemon"]
    prod = subprocess.Popen([*cmd, "--config", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(f"/dev/shm/{name}") and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        svc = ConsumerService(_config(name, strategy), stop=_TimedStop(seconds))
        svc.follower.tick()
        reader = svc.follower.reader
        assert reader is not None, "producer segment not live"
        c0, t0 = reader.cursor, time.perf_counter()
        sub = svc.follower.subscription
        assert sub is not None
        backlog = c0 - sub.position  # in the ring at attach: read, but published before t0
        consumed0, lost0 = svc.follower.consumed + backlog, svc.follower.lost
        svc.run()
        dt = time.perf_counter() - t0
        published = reader.cursor - c0
        consumed = svc.follower.consumed - consumed0
        lost = svc.follower.lost - lost0
        svc.close()
    finally:
        prod.send_signal(signal.SIGTERM)
        prod.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    return {"published_per_s": published / dt, "consumed_per_s": consumed / dt,
            "lost": lost, "published": published, "consumed": consumed}


# ------------------------------------------------------------------ latency
# Latency runs pin the reader to CPU 0 and the writer to CPU 1 (when there are two): the
# scheduler otherwise moves them around between runs, and a writer landing on the
# spinning reader's CPU measures the scheduler, not the transport.
READER_CPU, WRITER_CPU = 0, 1


def _pin(cpu: int) -> None:
    if PIN and (os.cpu_count() or 1) > cpu:
        os.sched_setaffinity(0, {cpu})


def _unpin() -> None:
    os.sched_setaffinity(0, range(os.cpu_count() or 1))


def _paced(rate: float, seconds: float, send: Any) -> None:
    """Call ``send(i)`` ``rate`` times a second; the same loop for the segment and the pipe."""
    period = 1.0 / rate
    t_next = time.monotonic()
    t_end = t_next + seconds
    i = 0
    while t_next < t_end:
        t_next += period
        while (left := t_next - time.monotonic()) > 0:
            time.sleep(left if left > 2e-4 else 0)
        send(i)
        i += 1


def _paced_writer(name: str, rate: float, seconds: float, go: Any) -> None:
    _pin(WRITER_CPU)
    with SegmentWriter.create(name, SYMS, ring_capacity=1 << 12, wake_readers=True,
                              heartbeat_interval_ns=10**9) as w:
        go.set()
        time.sleep(0.3)  # let the reader attach and settle
        pub = w.publish
        _paced(rate, seconds, lambda i: pub(i & 3, i, 1.0, 1.0, 1.0, 1.0 + (i % 7) * 0.01, 10.0))
        time.sleep(0.2)


def _start_paced(rate: float, seconds: float) -> tuple[str, Any]:
    ctx = mp.get_context("fork")
    name = _name()
    go = ctx.Event()
    p = ctx.Process(target=_paced_writer, args=(name, rate, seconds, go))
    p.start()
    go.wait(10)
    return name, p


def latency_transport(strategy: str, rate: float, seconds: float) -> list[float]:
    """Wait with the strategy, read with poll_one, timestamp: one-way latency in ns."""
    name, p = _start_paced(rate, seconds)
    lat: list[int] = []
    _pin(READER_CPU)
    try:
        with SegmentReader.attach(name) as r:
            sub = r.subscribe("latest")
            wait = make_strategy(strategy, _NeverStop(), 0.001)
            mono = time.monotonic_ns
            t_end = time.monotonic() + seconds + 0.6
            while strategy == "spin" and time.monotonic() < t_end:  # one C call: wait + read
                if (rec := sub.next(0.05)) is not None:
                    lat.append(mono() - rec[3])
            while time.monotonic() < t_end:
                if not wait.wait(sub, 0.05):
                    continue
                while (rec := sub.poll_one()) is not None:
                    lat.append(mono() - rec[3])
    finally:
        _unpin()
        p.join(5)
    return [*_pct(lat), len(lat)]


def latency_daemon(strategy: str, rate: float, seconds: float) -> list[float]:
    """The daemon's loop (ConsumerService.run) with the strategy: latency at its sink."""
    name, p = _start_paced(rate, seconds)
    _pin(READER_CPU)
    try:
        svc = ConsumerService(_config(name, strategy), stop=_TimedStop(seconds + 0.5))
        svc.run()
        samples = svc.latency.recent()
        svc.close()
    finally:
        _unpin()
        p.join(5)
    return [*_pct(samples), len(samples)]


def idle_cpu(strategy: str, seconds: float) -> float:
    """CPU share (%) of the daemon's loop attached to a live segment where nothing arrives."""
    name = _name()
    with SegmentWriter.create(name, SYMS, ring_capacity=1 << 10):
        svc = ConsumerService(_config(name, strategy), stop=_TimedStop(seconds))
        svc.follower.tick()
        c0, t0 = time.process_time(), time.perf_counter()
        svc.run()
        cpu = (time.process_time() - c0) / (time.perf_counter() - t0) * 100
        svc.close()
    return cpu


def _segment_echo(name_a: str, name_b: str, n: int, strategy: str, go: Any) -> None:
    _pin(WRITER_CPU)
    with SegmentReader.attach(name_a) as ra, \
            SegmentWriter.create(name_b, SYMS, ring_capacity=1 << 12,
                                 wake_readers=strategy == "block") as wb:
        sub = ra.subscribe("latest")
        go.set()
        publish = wb.publish
        if strategy == "spin":  # one C call waits and reads
            nxt = sub.next
            for _ in range(n):
                while (rec := nxt(1.0)) is None:
                    pass
                publish(0, rec[2], 1.0, 1.0, 1.0, 1.0, 1.0)
            return
        for _ in range(n):
            while not sub.wait_for_data(1.0):
                pass
            rec = sub.poll_one()
            publish(0, rec[2], 1.0, 1.0, 1.0, 1.0, 1.0)


#: Round trips before the timed ones: one lap of the ping-pong rings (4096 records), so the
#: timed ones run in steady state, stamp-first reads included (they start after one lap).
WARMUP = 1 << 12


def segment_pingpong(n: int, strategy: str) -> list[float]:
    """Ping-pong through two segments (round trip / 2), as facts.md measures the peers."""
    n += WARMUP
    ctx = mp.get_context("fork")
    name_a, name_b = _name(), _name()
    rtt = []
    with SegmentWriter.create(name_a, SYMS, ring_capacity=1 << 12,
                              wake_readers=strategy == "block") as wa:
        go = ctx.Event()
        p = ctx.Process(target=_segment_echo, args=(name_a, name_b, n, strategy, go))
        p.start()
        _pin(READER_CPU)
        try:
            go.wait(10)
            with SegmentReader.attach(name_b) as rb:
                sub = rb.subscribe("latest")
                clock, publish = time.perf_counter_ns, wa.publish
                if strategy == "spin":
                    nxt = sub.next
                    for i in range(n):
                        t = clock()
                        publish(0, i, 1.0, 1.0, 1.0, 1.0, 1.0)
                        while nxt(1.0) is None:
                            pass
                        rtt.append((clock() - t) / 2)
                    del rtt[:WARMUP]
                else:
                    for i in range(n):
                        t = clock()
                        publish(0, i, 1.0, 1.0, 1.0, 1.0, 1.0)
                        while not sub.wait_for_data(1.0):
                            pass
                        sub.poll_one()
                        rtt.append((clock() - t) / 2)
                    del rtt[:WARMUP]
        finally:
            _unpin()
            p.join(10)
            if p.is_alive():
                p.kill()
    return _pct(rtt)


# ------------------------------------------------------------------ pipe
def _echo(rfd: int, wfd: int, n: int) -> None:
    _pin(WRITER_CPU)
    for _ in range(n):
        os.write(wfd, os.read(rfd, 64))
    os._exit(0)


def pipe_pingpong(n: int) -> list[float]:
    """One-way latency = round trip / 2 of a 64-byte message, ns (p50, p99)."""
    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        _echo(a_r, b_w, n)
    _pin(READER_CPU)
    msg = b"x" * 64
    rtt = []
    for _ in range(n):
        t = time.perf_counter_ns()
        os.write(a_w, msg)
        os.read(b_r, 64)
        rtt.append((time.perf_counter_ns() - t) / 2)
    _unpin()
    os.waitpid(pid, 0)
    for fd in (a_r, a_w, b_r, b_w):
        os.close(fd)
    return _pct(rtt)


def pipe_oneway(rate: float, seconds: float) -> list[float]:
    """Reader blocked in read(); writer sends a timestamped 64-byte message at ``rate``."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _pin(WRITER_CPU)
        time.sleep(0.3)
        _paced(rate, seconds, lambda i: os.write(w, struct.pack("<Q56x", time.monotonic_ns())))
        os._exit(0)
    os.close(w)
    _pin(READER_CPU)
    lat = []
    while True:
        data = os.read(r, 64)
        if not data:
            break
        now = time.monotonic_ns()
        lat.append(now - struct.unpack_from("<Q", data)[0])
    _unpin()
    os.waitpid(pid, 0)
    os.close(r)
    return [*_pct(lat), len(lat)]


def _c_paced(rate: float, seconds: float) -> list[float] | None:
    """The same one-way measurement in C (bench/c/pingpong.c): the floor of this VM."""
    res = peers.c_paced(rate, seconds)
    return None if res is None else [*res, int(rate * seconds)]


# ------------------------------------------------------------------ report
def _us(ns: float) -> str:
    return f"{ns / 1e3:8.2f} us"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="time per latency run")
    ap.add_argument("--rate", type=float, default=2000.0,
                    help="records/s the latency writer publishes (one at a time)")
    ap.add_argument("--rounds", type=int, default=3, help="latency runs per row (median)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin reader/writer CPUs")
    ap.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    args = ap.parse_args()
    global PIN
    PIN = not args.no_pin
    logging.disable(logging.WARNING)  # the consumers here report "producer down" etc.
    secs = 0.5 if args.quick else args.seconds
    print(f"tradingd consumer benchmark (segment fast path: {IMPLEMENTATION}, "
          f"{os.cpu_count()} CPUs)\n")

    print("Throughput")
    for size, rate in bench_analytics(1.0 if args.quick else 2.0).items():
        print(f"  analytics alone, batches of {size:5d}:          {rate / 1e6:8.2f} M rec/s")
    total = 1 << 16 if args.quick else 1 << 17
    print(f"  poll_batch + analytics, draining {total} records: "
          f"{bench_drain(total) / 1e6:6.2f} M rec/s")
    print("  live: the real producer replaying flat out (fast, loop), the daemon's loop:")
    for strategy, ring in (("spin", 1 << 16), ("block", 1 << 16), ("block", 1 << 20)):
        live = bench_live(1.0 if args.quick else 3.0, strategy, ring)
        print(f"    {strategy:5s} ring {ring:7d}: published {live['published_per_s'] / 1e6:.2f}"
              f" M rec/s, consumed {live['consumed_per_s'] / 1e6:.2f} M rec/s, lost "
              f"{live['lost']} ({100 * live['lost'] / max(1, live['published']):.1f} %)")

    rounds = 1 if args.quick else args.rounds
    pin = "reader on CPU 0, writer on CPU 1" if PIN else "not pinned"
    print(f"\nOne-way latency, one record at a time at {args.rate:.0f} rec/s, {pin} "
          f"(p50 / p99; median of {rounds} runs, taken in turn)")
    rows: dict[str, list[list[float]]] = {}
    runs: list[tuple[str, Any]] = [
        *[(f"{s:5s} transport (strategy wait + poll_one)", (latency_transport, s))
          for s in STRATEGIES],
        *[(f"{s:5s} daemon path (poll_batch/one + analytics)", (latency_daemon, s))
          for s in STRATEGIES],
        ("pipe  one-way, reader blocked in read()", (pipe_oneway, None)),
        ("peer: C, spinning reader (floor)", (_c_paced, None)),
    ]
    for _ in range(rounds):
        for label, (fn, strategy) in runs:
            res = fn(args.rate, secs) if strategy is None else fn(strategy, args.rate, secs)
            if res is not None:  # a peer that cannot run here says why on stderr
                rows.setdefault(label, []).append(res)
    for label, results in rows.items():
        p50, p99, n = np.median(np.array(results), axis=0)
        print(f"  {label:44s} {_us(p50)} {_us(p99)}  ({int(n)} samples/run)")

    n_pp = 2000 if args.quick else 20000
    print(f"\nPing-pong (round trip / 2, {n_pp} round trips), {pin} "
          f"(p50 / p99; median of {rounds} runs, taken in turn)")
    spinning: list[tuple[str, Any]] = [  # busy-polling, like the spin strategy
        ("spin  tradingd, two segments (next + publish)", lambda n: segment_pingpong(n, "spin")),
        ("peer: C, two counters (hardware floor)", peers.c_floor),
        ("peer: plain Python, two counters (loop floor)", peers.python_counter),
        ("peer: plain Python, struct records on a ring", peers.python_struct_ring),
        ("peer: iceoryx2 0.10 Python, pub/sub (zero-copy)", peers.iceoryx2_pubsub),
    ]
    blocking: list[tuple[str, Any]] = [  # woken by the kernel
        ("block tradingd, two segments (futex)", lambda n: segment_pingpong(n, "block")),
        ("peer: os.pipe, 64-byte messages", pipe_pingpong),
    ]
    pp: dict[str, list[list[float]]] = {}
    for _ in range(rounds):
        for runs, n in ((spinning, n_pp), (blocking, n_pp // 4)):
            for label, fn in runs:
                res = fn(n)
                if res is not None:  # a peer that cannot run here (not installed) says why
                    pp.setdefault(label, []).append(res)
    for label, _fn in [*spinning, *blocking]:
        if label not in pp:
            print(f"  {label:48s}        -           -  (not available here)")
            continue
        p50, p99 = np.median(np.array(pp[label]), axis=0)
        print(f"  {label:48s} {_us(p50)} {_us(p99)}")

    print("\nCPU of an idle consumer (attached, no data), daemon loop")
    for strategy in STRATEGIES:
        print(f"  {strategy:5s}: {idle_cpu(strategy, 1.0 if args.quick else 2.0):6.1f} % "
              f"of one CPU")


if __name__ == "__main__":
    main()
