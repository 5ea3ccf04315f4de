"""End to end: replay -> segment -> consumer daemon path, beside the C SPSC ring, in one run.

    .venv/bin/python bench/bench_endtoend.py [--seconds 1.5] [--quick] [--c-runs 5]

Prints, for this machine and this run (every figure beside the C ring measured in the
same run; facts.md: the C ring's rate swings 40-275 M rec/s between runs on these VMs,
so its BEST of ``--c-runs`` runs is the reference for the ratios):

1. the C SPSC ring peer (bench/c/spsc_ring.c: 64-byte records, lossless, batches of 1024),
   best and median of several runs, for a 64 Ki and a 1 Mi ring;
2. the producer's fast replay alone into a segment (the Replayer + SegmentWriter the
   daemon runs, in process): the bundled data (4 symbols) and 4,096 synthetic symbols,
   rings 2^16 .. 2^22, and the real ``tradingd-producer`` process;
3. paced replay: publish-time error (actual publish_ns - scheduled time) p50/p99 at
   1 k and 100 k records/s, through the producer daemon's own main loop;
4. end to end: a replaying producer process flat out -> consumer daemon processes
   (``ConsumerService``: block strategy, the C read_analyse pass: read + analytics +
   latency histogram): published, consumed per consumer, lost; 1/2/4 consumers as a feed
   (no flow control) and gated (``replay.flow_control: slowest``), each beside the single
   consumer's rate and the C ring, with the CPU time per record of the producer and of a
   consumer (getrusage in each process) and what two cores allow from them (a process's
   work split between the cores, and whole processes per core: the kernel's way, checked by
   a pinned row), with the consumer-to-producer cost ratio 80 % of one would need;
   4/64/4096 symbols, ring sizes 2^16 .. 2^22;
5. the latency figures the blocking-wait change must not cost, with the sleepers flag
   (waiters.py) off (the old behaviour: a FUTEX_WAKE after every publish) and on: publish
   cost with nobody sleeping, block ping-pong vs os.pipe, spin ping-pong, idle CPU.

``TDBENCH_GATE_LEAD=N`` sets how far the gated producer runs ahead of its slowest consumer
(``SegmentWriter.enable_gate(lead)``; default: ``producer.replay.flow_control_lead``;
0: the whole ring).

Bounded: each measurement runs ``--seconds`` (default 1.5 s); the whole run takes ~75 s
(``--quick``: ~45 s). The machine is shared: absolute figures drift, compare within a run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import multiprocessing as mp
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bench_consumer as bc
import numpy as np
import yaml

from tradingd.clock import SYSTEM_CLOCK, ManualClock
from tradingd.consumer.daemon import ConsumerService
from tradingd.daemon.config import default_config, load_config
from tradingd.daemon.notify import Notifier
from tradingd.producer.daemon import Producer, load_symbol
from tradingd.producer.replay import Replayer, ReplaySettings, Timeline, build_timeline
from tradingd.segment import shm, waiters
from tradingd.segment.fastpath import IMPLEMENTATION
from tradingd.segment.model import SymbolInfo
from tradingd.segment.reader import SegmentReader
from tradingd.segment.writer import SegmentWriter

REPO = Path(__file__).resolve().parent.parent
C_RING = Path(__file__).resolve().parent / "c" / "spsc_ring.c"
BAR = np.dtype([("event_ns", "<i8"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"),
                ("close", "<f8"), ("volume", "<f8")])
CTX = mp.get_context("fork")
GATE_LEAD = int(os.environ.get("TDBENCH_GATE_LEAD", str(default_config().producer.replay
                                                        .flow_control_lead)))


def _m(x: float) -> str:
    return f"{x / 1e6:7.1f} M"


# ------------------------------------------------------------------ 1. the C ring
def c_ring(capacity: int, runs: int, total: int = 30_000_000) -> list[float] | None:
    """Rates (records/s) of ``runs`` runs of bench/c/spsc_ring.c; None without gcc."""
    gcc = shutil.which("gcc")
    if gcc is None:
        print("   (gcc not found: no C ring peer)")
        return None
    with tempfile.TemporaryDirectory(prefix="tdbench-ring-") as tmp:
        exe = os.path.join(tmp, "spsc_ring")
        subprocess.run([gcc, "-O2", "-o", exe, str(C_RING)], check=True, timeout=120)
        cpus = ["0", "1"] if (os.cpu_count() or 1) > 1 else []
        rates = []
        for _ in range(runs):
            out = subprocess.run([exe, str(total), str(capacity), "1024", *cpus], check=True,
                                 capture_output=True, text=True, timeout=120).stdout.split()
            rates.append(float(out[1]))
    return rates


# ------------------------------------------------------------------ data
def bundled_bars() -> list[np.ndarray]:
    cfg = load_config(str(REPO / "config" / "tradingd.yaml"))
    return [load_symbol(cfg, sym).bars for sym in cfg.producer.symbols]


def synthetic_bars(symbols: int, per_symbol: int, spacing_ns: int = 60 * 10**9,
                   seed: int = 0) -> list[np.ndarray]:
    """``symbols`` random walks of ``per_symbol`` bars, interleaved in time."""
    rng = np.random.default_rng(seed)
    out = []
    for s in range(symbols):
        b = np.zeros(per_symbol, BAR)
        b["event_ns"] = 1_600_000_000 * 10**9 + np.arange(per_symbol) * spacing_ns + s
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, per_symbol)))
        b["open"] = b["close"] = close
        b["high"], b["low"] = close * 1.001, close * 0.999
        b["volume"] = rng.integers(1, 10_000, per_symbol)
        out.append(b)
    return out


def infos(bars: list[np.ndarray]) -> list[SymbolInfo]:
    return [SymbolInfo(f"S{i}", record_count=len(b)) for i, b in enumerate(bars)]


# ------------------------------------------------------------------ 2. replay alone
def replay_alone(tl: Timeline, symbols: list[SymbolInfo], ring: int, seconds: float) -> float:
    """Fast replay into a segment in process (no reader): records/s."""
    with SegmentWriter.create(bc._name(), symbols, symbol_capacity=max(64, len(symbols)),
                              ring_capacity=ring) as w:
        rp = Replayer(tl, w, ReplaySettings(mode="fast", at_end="loop"), clock=ManualClock())
        rp.step()  # first touch
        c0, t0 = w.cursor, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            rp.step()
        return (w.cursor - c0) / (time.perf_counter() - t0)


def producer_process_rate(seconds: float, ring: int) -> float:
    """The real tradingd-producer (fast, loop, bundled data): rate from the segment cursor."""
    name = bc._name()
    with _producer_daemon(name, ring) as _, SegmentReader.attach(name) as r:
        c0, t0 = r.cursor, time.monotonic()
        time.sleep(seconds)
        return (r.cursor - c0) / (time.monotonic() - t0)


@contextlib.contextmanager
def _producer_daemon(name: str, ring: int) -> Iterator[subprocess.Popen[bytes]]:
    workdir = Path(tempfile.mkdtemp(prefix="tdbench-"))
    cfg = workdir / "tradingd.yaml"
    cfg.write_text(yaml.safe_dump({
        "segment": {"name": name, "ring_capacity": ring},
        "producer": {"data_dir": str(REPO / "market_data"),
                     "replay": {"mode": "fast", "at_end": "loop"},
                     "metrics": {"enabled": False}},
    }))
    script = Path(sys.executable).parent / "tradingd-producer"
    prod = subprocess.Popen([str(script), "--config", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception), SegmentReader.attach(name):
                break
            time.sleep(0.02)
        yield prod
    finally:
        prod.send_signal(signal.SIGTERM)
        prod.wait(15)
        shutil.rmtree(workdir, ignore_errors=True)


# ------------------------------------------------------------------ 3. pacing
class _Stop:
    """StopFlag's interface, set by a timer."""

    def __init__(self, seconds: float) -> None:
        self._event = threading.Event()
        self.reason = "timer"
        threading.Timer(seconds, self._event.set).start()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)


def pacing_error(rate: float, seconds: float) -> tuple[float, float, int]:
    """Paced replay through Producer._main_loop: (p50, p99) of publish_ns - due, ns."""
    n = int(rate * seconds)
    spacing = int(1e9 / rate)
    bars = synthetic_bars(1, n, spacing_ns=spacing)
    tl = build_timeline(bars)
    ring = 1 << max(12, int(n - 1).bit_length())
    cfg = default_config()
    cfg = dataclasses.replace(cfg, segment=dataclasses.replace(cfg.segment, ring_capacity=ring))
    with SegmentWriter.create(bc._name(), infos(bars), ring_capacity=ring) as w:
        stop = _Stop(seconds + 0.3)
        producer = Producer(cfg, notifier=Notifier(env={}), stop=stop)  # type: ignore[arg-type]
        rp = Replayer(tl, w, ReplaySettings(mode="paced", speed=1.0, at_end="stop"),
                      clock=SYSTEM_CLOCK)
        producer._main_loop(w, rp)
        with SegmentReader.attach(w.name, require_live=False) as r:
            got = r.subscribe("oldest").poll_batch(ring)
        assert rp._start_ns is not None
        due = rp._start_ns + (got["event_ns"] - int(tl.records["event_ns"][0]))
        err = got["publish_ns"].astype(np.int64) - due
    p50, p99 = np.percentile(err, (50, 99))
    return float(p50), float(p99), len(err)


# ------------------------------------------------------------------ 4. end to end
def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def _producer_child(name: str, tl: Timeline, symbols: list[SymbolInfo], ring: int,
                    ready: Any, stop: Any, go: Any, gated: int, out: Any,
                    cpu: int | None = None) -> None:
    """Replays flat out; with ``gated`` > 0 through the flow-control gate, after that many
    consumers joined. Reports published records and CPU seconds between go and stop."""
    _pin(cpu)
    with SegmentWriter.create(name, symbols, symbol_capacity=max(64, len(symbols)),
                              ring_capacity=ring,
                              before_ready=(lambda w: w.enable_gate(GATE_LEAD)) if gated else None
                              ) as w:
        rp = Replayer(tl, w, ReplaySettings(mode="fast", at_end="loop",
                                            flow_control="slowest" if gated else "none"),
                      clock=ManualClock())
        ready.set()
        while gated and len(w.gate_slots()) < gated and not stop.is_set():
            w.heartbeat()
            time.sleep(0.001)
        mark: tuple[float, int, int, int] | None = None
        while not stop.is_set():
            if mark is None and go.is_set():
                mark = (_cpu_s(), w.cursor, w.gate_waits, w.gate_timeouts)
            for _ in range(8):
                rp.step()
            w.heartbeat()
        if mark is not None:
            out.put({"producer_cpu": _cpu_s() - mark[0], "producer_published": w.cursor - mark[1],
                     "sleeps": w.gate_waits - mark[2], "timeouts": w.gate_timeouts - mark[3]})
        else:
            out.put({"producer_cpu": 0.0, "producer_published": 0, "sleeps": 0, "timeouts": 0})
        out.close()
        out.join_thread()
    os._exit(0)


def _consumer_child(name: str, capacity: int, seconds: float, go: Any, out: Any,
                    cpu: int | None = None) -> None:
    _pin(cpu)
    try:
        _consume(name, capacity, seconds, go, out)
    except BaseException as exc:  # report, never hang the parent
        out.put({"error": repr(exc)})
    out.close()
    out.join_thread()  # the queue's feeder thread has written the result
    os._exit(0)


def _consume(name: str, capacity: int, seconds: float, go: Any, out: Any) -> None:
    logging.disable(logging.WARNING)
    cfg = bc._config(name, "block")
    cfg = dataclasses.replace(cfg, segment=dataclasses.replace(cfg.segment,
                                                               symbol_capacity=capacity))
    svc = ConsumerService(cfg, stop=_NeverStop())
    svc.follower.tick()  # attaches (and joins the gate when the producer runs one)
    reader, sub = svc.follower.reader, svc.follower.subscription
    assert reader is not None and sub is not None
    go.wait(10)
    svc._stop = stop = _Stop(seconds)
    svc.strategy = bc.make_strategy("block", stop)
    sub.position = c0 = max(sub.position, reader.cursor)  # count what is published from now on
    t0, cpu0 = time.perf_counter(), _cpu_s()
    consumed0, lost0 = svc.follower.consumed, svc.follower.lost
    svc.run()
    dt, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    consumed = svc.follower.consumed - consumed0
    out.put({"published": (reader.cursor - c0) / dt, "consumed": consumed / dt,
             "count": consumed, "cpu": cpu, "lost": svc.follower.lost - lost0,
             "gated": svc.follower.gate_slot is not None,
             "implementation": svc.analytics.implementation})
    svc.close()


class _NeverStop:
    def is_set(self) -> bool:
        return False

    def wait(self, timeout: float | None = None) -> bool:
        time.sleep(timeout or 0)
        return False


@dataclasses.dataclass
class E2E:
    """One end-to-end run: each consumer's figures and the producer's CPU cost."""

    consumers: list[dict[str, Any]]
    producer_ns: float  # producer CPU ns per record published
    consumer_ns: float  # consumer CPU ns per record consumed (mean over the consumers)
    sleeps: int  # times the gated producer slept on the gate
    timeouts: int  # of those, sleeps that ended by their time limit, not by a consumer

    @property
    def worst(self) -> float:
        return min(r["consumed"] for r in self.consumers)

    def bound(self, k: int) -> float:
        """What two cores allow each of k consumers from these per-record CPU costs:
        r * (P + k * C) <= 2 s of CPU per second, and no process beyond one core."""
        p, c = self.producer_ns, self.consumer_ns
        if not (p > 0 and c > 0):
            return float("nan")
        return min(1e9 / p, 1e9 / c, 2e9 / (p + k * c))

    def placed(self, k: int) -> float:
        """What two cores allow each of k consumers when no process runs on both cores at
        once in a time slice: the best split of the k + 1 processes into two groups, each
        group time-sharing one core (j consumers beside the producer, k - j on the other).
        The kernel keeps a busy process where it is (measured: 3 processes on 2 cores,
        unpinned, run as the best split pinned), so this, not ``bound``, is what a run
        reaches; ``bound`` needs one process's work split between the cores."""
        p, c = self.producer_ns, self.consumer_ns
        if not (p > 0 and c > 0):
            return float("nan")
        return max(1e9 / max(p + j * c, (k - j) * c) for j in range(k + 1))


def end_to_end(tl: Timeline, symbols: list[SymbolInfo], ring: int, consumers: int,
               seconds: float, gated: bool = False, pin: bool = False) -> E2E:
    """A producer process flat out, ``consumers`` consumer processes: their figures.
    ``pin``: the producer on CPU 0, every consumer on CPU 1 (the split ``E2E.placed``
    finds best when a consumer costs less than half the producer)."""
    name = bc._name()
    ready, stop, go = CTX.Event(), CTX.Event(), CTX.Event()
    pout, out = CTX.Queue(), CTX.Queue()
    prod = CTX.Process(target=_producer_child, args=(name, tl, symbols, ring, ready, stop, go,
                                                     consumers if gated else 0, pout,
                                                     0 if pin else None))
    prod.start()
    procs = []
    try:
        if not ready.wait(30):
            raise RuntimeError("producer did not start")
        capacity = max(64, len(symbols))
        procs = [CTX.Process(target=_consumer_child,
                             args=(name, capacity, seconds, go, out, 1 if pin else None))
                 for _ in range(consumers)]
        for p in procs:
            p.start()
        time.sleep(0.3)  # attached (and joined)
        go.set()
        results = [out.get(timeout=seconds + 30) for _ in procs]
        for r in results:
            if "error" in r:
                raise RuntimeError(f"consumer failed: {r['error']}")
        stop.set()
        pres = pout.get(timeout=30)
    finally:
        stop.set()
        for p in [*procs, prod]:
            p.join(10)
            if p.is_alive():
                p.kill()
        shm.unlink(name)
        shm.unlink(name + waiters.SUFFIX)
    pub = pres["producer_published"]
    count = sum(r["count"] for r in results)
    return E2E(results, pres["producer_cpu"] / pub * 1e9 if pub else float("nan"),
               sum(r["cpu"] for r in results) / count * 1e9 if count else float("nan"),
               pres["sleeps"], pres["timeouts"])


# ------------------------------------------------------------------ 5. latency before/after
@contextlib.contextmanager
def sleepers(enabled: bool) -> Iterator[None]:
    """Writers created inside run with the sleepers flag (new) or without (old behaviour)."""
    original = waiters.Companion.create
    if not enabled:
        waiters.Companion.create = classmethod(lambda cls, *a, **k: None)  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        waiters.Companion.create = original  # type: ignore[method-assign]


def publish_cost(seconds: float) -> float:
    """ns per C publish with wake_readers on and nobody blocked."""
    with SegmentWriter.create(bc._name(), bc.SYMS, ring_capacity=1 << 12) as w:
        pub = w.publish
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for i in range(1000):
                pub(0, i, 1.0, 1.0, 1.0, 1.0, 1.0)
            n += 1000
        return (time.perf_counter() - t0) / n * 1e9


def _pp(label: str, res: list[float] | None) -> None:
    if res is None:
        print(f"   {label:50s}    -")
        return
    print(f"   {label:50s} {res[0] / 1e3:8.2f} us {res[1] / 1e3:8.2f} us")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--c-runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    secs = 0.7 if args.quick else args.seconds
    print(f"tradingd end-to-end benchmark (fast path: {IMPLEMENTATION}, {os.cpu_count()} CPUs,"
          f" load average {os.getloadavg()[0]:.1f} at start)\n")

    print("1. C SPSC ring peer, 64-byte records, batches of 1024 (reader CPU 0, writer CPU 1)")
    best_c = {}
    for cap in (1 << 16, 1 << 20):
        rates = c_ring(cap, 2 if args.quick else args.c_runs)
        if rates:
            best_c[cap] = max(rates)
            print(f"   ring {cap:8d}: best {_m(max(rates))} rec/s, median "
                  f"{_m(statistics.median(rates))}, runs: "
                  + " ".join(f"{r / 1e6:.0f}" for r in rates))
    c_ref = max(best_c.values()) if best_c else float("nan")

    bundled = bundled_bars()
    tl4 = build_timeline(bundled)
    many = synthetic_bars(4096, 64)
    tl4096 = build_timeline(many)
    rings = [1 << 16, 1 << 20] if args.quick else [1 << k for k in range(16, 23)]
    print(f"\n2. fast replay alone into the segment (fast_batch_size 65536), {secs:.1f} s each")
    print("   ring      bundled data (4 symbols)   4096 synthetic symbols")
    for ring in rings:
        a = replay_alone(tl4, infos(bundled), ring, secs / 2)
        b = replay_alone(tl4096, infos(many), ring, secs / 2)
        print(f"   2^{ring.bit_length() - 1:<2d}     {_m(a)} rec/s ({a / c_ref:4.2f}x C)"
              f"    {_m(b)} rec/s")
    rate = producer_process_rate(secs, 1 << 20)
    print(f"   tradingd-producer process, ring 2^20, bundled data: {_m(rate)} rec/s "
          f"({rate / c_ref:.2f}x the C ring's best)")

    print("\n3. paced replay, publish_ns - scheduled time (the daemon's main loop)")
    for r in (1_000, 100_000):
        p50, p99, n = pacing_error(r, secs)
        print(f"   {r:7d} rec/s: p50 {p50 / 1e3:7.1f} us, p99 {p99 / 1e3:7.1f} us ({n} records)")

    print("\n4. end to end: producer process flat out -> consumer daemon path (block: "
          f"read_analyse + analytics + latency), {secs:.1f} s each")
    print("   feed = no flow control (the producer never waits: a slow consumer is lapped);\n"
          "   gated = replay.flow_control: slowest (the producer never laps a consumer)")
    print("   config                          published  consumed (each)        lost"
          "        vs 1 / C ring;  CPU ns/rec prod cons -> 2 cores allow: split / placed")

    def row(label: str, tl: Timeline, syms: list[SymbolInfo], ring: int, k: int,
            gated: bool = False, single: float | None = None, pin: bool = False) -> E2E:
        res = end_to_end(tl, syms, ring, k, secs, gated, pin)
        rs = res.consumers
        pub = statistics.mean(r["published"] for r in rs)
        cons = " ".join(_m(r["consumed"]).strip() for r in rs)
        lost = " ".join(str(r["lost"]) for r in rs)
        rel = f"{res.worst / single * 100:3.0f} %" if single else "  1  "
        if gated and not all(r["gated"] for r in rs):
            lost += " (NOT all gated)"
        sleeps = f"  (gate sleeps {res.sleeps}, {res.timeouts} timed out)" if gated else ""
        print(f"   {label:30s} {_m(pub)}/s  {cons:22s} {lost:11s} {rel} "
              f"{res.worst / c_ref:4.2f}x C;  {res.producer_ns:5.1f} {res.consumer_ns:5.1f} -> "
              f"{_m(res.bound(k)).strip()} / {_m(res.placed(k)).strip()}{sleeps}")
        return res

    def verdict(k: int, res: E2E, single: E2E) -> None:
        """The k-consumer row against the single consumer and what two cores allow."""
        one = single.worst
        need = 1.25 / k  # k * C <= P / 0.8: k consumers on one core, the producer alone
        print(f"      {k} consumers: each {res.worst / one * 100:.0f} % of one; two cores "
              f"allow {res.placed(k) / one * 100:.0f} % (whole processes per core; "
              f"{res.bound(k) / one * 100:.0f} % if a consumer's work were split between "
              f"the cores): the run reaches {res.worst / res.placed(k) * 100:.0f} % of that."
              f"\n      80 % of one needs a consumer <= {need:.3g}x the producer's CPU per "
              f"record; measured {res.consumer_ns / res.producer_ns:.2f}x")

    bundled_syms = infos(bundled)
    for gated in (False, True):
        tag = "gated" if gated else "feed "
        one = row(f"{tag} 1 consumer, 4 sym, 2^20", tl4, bundled_syms, 1 << 20, 1, gated)
        again = row(f"{tag} 1 consumer (again)", tl4, bundled_syms, 1 << 20, 1, gated)
        best = one if one.worst >= again.worst else again
        multi = {k: row(f"{tag} {k} consumers, 4 sym, 2^20", tl4, bundled_syms, 1 << 20, k,
                       gated, best.worst) for k in (2, 4)}
        if gated:
            if (os.cpu_count() or 1) >= 2:
                row("gated 2 consumers, pinned", tl4, bundled_syms, 1 << 20, 2, True,
                    best.worst, pin=True)
            for k, res in multi.items():
                verdict(k, res, best)
    for label, tl, syms in (("64 sym", build_timeline(synthetic_bars(64, 4096)), 64),
                            ("4096 sym", tl4096, 4096)):
        row(f"feed  1 consumer, {label}, 2^20", tl, infos(many[:syms]) if syms == 4096 else
            [SymbolInfo(f"S{i}") for i in range(syms)], 1 << 20, 1)
    for ring in rings:
        row(f"feed  1 consumer, 4 sym, 2^{ring.bit_length() - 1}", tl4, bundled_syms, ring, 1)
    print("   (2 cores allow, from the CPU ns per record measured in that run, P the producer's,"
          " C a consumer's:\n    split = min(1/P, 1/C, 2/(P + k C)), a process's work split"
          " between the cores; placed = the best\n    max over j of 1/max(P + j C, (k - j) C),"
          " each process on one core, j consumers beside the\n    producer; pinned: the "
          "producer on CPU 0, the consumers on CPU 1. A consumer's CPU includes its\n    reads,"
          " analytics, latency, waits)")

    print("\n5. latency figures, sleepers flag off (old: FUTEX_WAKE every publish) / on")
    n_pp = 2000 if args.quick else 5000
    for enabled in (False, True):
        tag = "on " if enabled else "off"
        with sleepers(enabled):
            print(f"   [flag {tag}] C publish, wake_readers on, nobody blocked: "
                  f"{publish_cost(secs / 2):.0f} ns")
            _pp(f"[flag {tag}] block ping-pong one-way (p50 / p99)",
                bc.segment_pingpong(n_pp // 4, "block"))
            _pp(f"[flag {tag}] one-way at 2000 rec/s, block daemon path",
                bc.latency_daemon("block", 2000, secs)[:2])
            print(f"   [flag {tag}] idle consumer CPU, block: "
                  f"{bc.idle_cpu('block', secs):.1f} %")
    _pp("os.pipe ping-pong one-way (p50 / p99)", bc.pipe_pingpong(n_pp // 4))
    _pp("os.pipe one-way at 2000 rec/s", bc.pipe_oneway(2000, secs)[:2])
    _pp("spin ping-pong one-way (p50 / p99)", bc.segment_pingpong(n_pp, "spin"))
    print(f"\nload average at the end {os.getloadavg()[0]:.1f} (2 vCPUs shared)")


if __name__ == "__main__":
    main()
