"""Segment benchmark: tradingd's costs side by side with the Python IPC peers, in one run.

    .venv/bin/python bench/bench_segment.py [--seconds 2] [--quick]

Prints, for this machine and this run:
  * one publish, one latest-slot snapshot: C fast path and pure Python (ns per call);
  * batch transfer writer process -> reader process through the ring, the reader
    validating every record's sequence stamp (records/s), C and pure-Python writers;
  * the peers measured the same way in the same run: os.pipe with 64-byte messages,
    multiprocessing.Queue, and a plain-Python struct ring.
Absolute figures drift between runs on a shared VM; compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import struct
import sys
import time
import timeit
import uuid

import numpy as np

from tradingd.segment import layout as L
from tradingd.segment import reader as reader_mod
from tradingd.segment import writer as writer_mod
from tradingd.segment.fastpath import FAST
from tradingd.segment.model import SymbolInfo
from tradingd.segment.reader import SegmentReader
from tradingd.segment.writer import SegmentWriter

SYMS = [SymbolInfo(f"S{i}") for i in range(4)]
REC = 64


def _name() -> str:
    return f"tdbench-{uuid.uuid4().hex[:8]}"


def _per_call(fn, seconds: float) -> float:
    n = 10_000
    t = timeit.timeit(fn, number=n)
    n = max(n, int(n * seconds / 5 / max(t, 1e-9)))
    return min(timeit.repeat(fn, number=n, repeat=5)) / n * 1e9


def micro(seconds: float, pure: bool) -> tuple[float, float]:
    """ns per publish and per latest-slot snapshot."""
    saved = writer_mod.FAST, reader_mod.FAST
    if pure:
        writer_mod.FAST = reader_mod.FAST = None
    name = _name()
    try:
        with SegmentWriter.create(name, SYMS, ring_capacity=65536, wake_readers=False) as w, \
                SegmentReader.attach(name) as r:
            pub, latest = w.publish, r.latest_tuple
            pub_ns = _per_call(lambda: pub(1, 5, 1.0, 2.0, 0.5, 1.5, 10.0), seconds)
            lat_ns = _per_call(lambda: latest(1), seconds)
    finally:
        writer_mod.FAST, reader_mod.FAST = saved
    return pub_ns, lat_ns


# ------------------------------------------------------------------ ring transfer
def _ring_writer(name: str, total: int, batch: int, pure: bool, go) -> None:
    if pure:
        writer_mod.FAST = None
    recs = np.zeros(batch, L.RECORD_DTYPE)
    recs["symbol_id"] = np.arange(batch) % len(SYMS)
    # 2^18 records = 16 MiB: the ring stays in the last-level cache (a 64 MiB ring halves
    # the rate here); 8192-record batches = the writer's window.
    with SegmentWriter.create(name, SYMS, ring_capacity=1 << 18, ring_window=batch,
                              wake_readers=False) as w:
        go.wait()
        for _ in range(total // batch):
            w.publish_batch(recs)
        w.set_state(L.STATE_FINISHED)
        time.sleep(0.5)


def ring_transfer(total: int, pure_writer: bool) -> tuple[float, int]:
    """records/s read by a reader process that validates every record; records lost."""
    name = _name()
    ctx = mp.get_context("fork")
    go = ctx.Event()
    p = ctx.Process(target=_ring_writer, args=(name, total, 8192, pure_writer, go))
    p.start()
    try:
        while True:
            try:
                r = SegmentReader.attach(name)
                break
            except Exception:
                time.sleep(0.01)
        sub = r.subscribe("latest")
        got = 0
        go.set()
        t0 = None
        while True:
            b = sub.poll_batch(8192)  # validates every record's seq stamp
            if len(b):
                if t0 is None:
                    t0 = time.perf_counter()
                got += len(b)
            elif r.state != L.STATE_LIVE and sub.position >= r.cursor:
                break
        dt = time.perf_counter() - (t0 or time.perf_counter())
        lost = sub.lost
        r.close()
    finally:
        p.join(10)
        if p.is_alive():
            p.kill()
    return got / dt if dt else 0.0, lost


# ------------------------------------------------------------------ peers
def _pipe_writer(fd: int, n: int) -> None:
    msg = b"x" * REC
    for _ in range(n):
        os.write(fd, msg)
    os.close(fd)


def peer_pipe(n: int) -> float:
    r, w = os.pipe()
    ctx = mp.get_context("fork")
    p = ctx.Process(target=_pipe_writer, args=(w, n))
    t0 = time.perf_counter()
    p.start()
    os.close(w)
    left = n * REC
    while left:
        chunk = os.read(r, min(left, 65536))
        if not chunk:
            break
        left -= len(chunk)
    dt = time.perf_counter() - t0
    p.join()
    os.close(r)
    return n / dt


def _queue_writer(q, n: int) -> None:
    msg = b"x" * REC
    for _ in range(n):
        q.put(msg)
    q.put(None)


def peer_queue(n: int) -> float:
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_queue_writer, args=(q, n))
    t0 = time.perf_counter()
    p.start()
    while q.get() is not None:
        pass
    dt = time.perf_counter() - t0
    p.join()
    return n / dt


def peer_struct_ring(n: int) -> float:
    """Plain Python on a ring: struct per record (the seed-style prototype)."""
    import mmap
    buf = mmap.mmap(-1, 4096 * REC)
    fmt = struct.Struct("<IIqQddddd")
    t0 = time.perf_counter()
    for s in range(n):
        fmt.pack_into(buf, (s & 4095) * REC, s, 1, 2, 3, 1.0, 2.0, 3.0, 4.0, 5.0)
        fmt.unpack_from(buf, (s & 4095) * REC)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="time per micro-benchmark")
    ap.add_argument("--quick", action="store_true", help="smaller transfers (smoke run)")
    args = ap.parse_args()
    scale = 0.1 if args.quick else 1.0
    print(f"tradingd segment benchmark  python {sys.version.split()[0]}  numpy "
          f"{np.__version__}  cpus {os.cpu_count()}  C fast path: "
          f"{'built' if FAST else 'NOT built'}")
    print("\n-- per call (ns, best of 5) --------------------------------- target")
    impls = ([("C fast path", False)] if FAST else []) + [("pure Python", True)]
    for label, pure in impls:
        pub, lat = micro(args.seconds, pure)
        print(f"publish one record       {label:12s} {pub:8.0f} ns          <= 300 ns")
        print(f"latest-slot snapshot     {label:12s} {lat:8.0f} ns          <= 200 ns")
    print("\n-- process -> process throughput (records/s) ----------------------")
    total = int(40_000_000 * scale) // 8192 * 8192
    for label, pure in impls:
        rate, lost = ring_transfer(total if not pure else total // 4, pure)
        print(f"tradingd ring, batches, reader validates every record, {label} writer: "
              f"{rate / 1e6:7.1f} M/s  (lapped, lost: {lost})   target >= 60 M/s")
    n = int(1_000_000 * scale)
    print(f"peer: os.pipe, 64-byte messages:                 {peer_pipe(n) / 1e6:7.2f} M/s")
    print(f"peer: multiprocessing.Queue, 64-byte items:      "
          f"{peer_queue(n // 5) / 1e6:7.2f} M/s")
    print(f"peer: plain-Python struct ring (one process):    "
          f"{peer_struct_ring(n) / 1e6:7.2f} M/s")
    print("(facts.md, same kind of machine: iceoryx2 Python ~0.41 M/s, pyzmq ipc ~0.7 M/s, "
          "C SPSC ring ~200 M/s)")


if __name__ == "__main__":
    main()
