"""Gateway benchmark: WebSocket libraries side by side, then the real tradingd-gateway.

    .venv/bin/python bench/bench_gateway.py [--seconds 5] [--quick]

Prints, for this machine and this run:

A. **Libraries, same fan-out loop**: a minimal server built on ``websockets`` and one on
   ``picows`` each push the same pre-encoded frames to 20 clients (picows clients in another
   process) as fast as the clients take them, checking each client's write queue before
   writing (both servers the same logic): frames/s and MB/s delivered, for single-record
   frames (~110 B) and batched ticks frames (64 records, ~5 KB).
B. **tradingd-gateway, fan-out**: the real tradingd-producer replaying flat out
   (``replay.mode: fast``), the real gateway, 100 clients on ``latest.*`` and 10 on
   ``ticks.*`` (another process): records/s delivered in aggregate to the tick clients,
   latest messages/s, records the gateway lost to lapping, gateway CPU.
C. **publish -> client latency at 1,000 records/s**: a paced writer publishes one record a
   millisecond; 100 clients on ``ticks.*`` (every record to every client) timestamp each
   record on arrival (CLOCK_MONOTONIC, as the record's publish_ns): p50/p99/p99.9; then the
   same with one more client that stalls (subscribes and never reads), to show it does not
   move the others' tail; and 10 clients for scale.

Absolute figures drift between runs on a shared 2-vCPU VM (and the clients share the CPUs
with the gateway); compare ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tradingd.segment import shm
from tradingd.segment.model import SymbolInfo
from tradingd.segment.writer import SegmentWriter

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SYMS = [SymbolInfo(n) for n in ("AAPL", "TSLA", "BTC-USD", "EURUSD")]
QUEUE_LIMIT = 1 << 20  # both library servers: write to a client only below this queue


def _name() -> str:
    return f"td16b-{uuid.uuid4().hex[:8]}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[int] | np.ndarray, qs: tuple[float, ...] = (50, 99, 99.9)) -> str:
    if len(values) == 0:
        return "n/a"
    arr = np.asarray(values, dtype=np.float64) / 1e6
    return " / ".join(f"{v:.2f}" for v in np.percentile(arr, qs)) + " ms"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ============================================================================ clients
def _client_main(url: str, plan: list[tuple[str, bytes | None]], seconds: float,
                 warmup: float, out: Any) -> None:
    """Run len(plan) picows clients: (kind, subscribe message). kind: count | latency |
    stall. Reports per-kind frames, records and latencies (after the warm-up)."""
    from picows import WSListener, WSMsgType, ws_connect

    class Client(WSListener):  # type: ignore[misc]
        def __init__(self, kind: str, sub: bytes | None) -> None:
            self.kind, self.sub = kind, sub
            self.frames = self.records = self.nbytes = 0
            self.lat: list[int] = []
            self.on = False

        def on_ws_connected(self, transport: Any) -> None:
            if self.sub is not None:
                transport.send(WSMsgType.TEXT, self.sub)

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if not self.on or frame.msg_type != WSMsgType.TEXT:
                return
            now = time.monotonic_ns()
            mv = frame.get_payload_as_memoryview()
            self.frames += 1
            self.nbytes += len(mv)
            head = bytes(mv[:200])  # "n" is within the first ~100 bytes
            if self.kind == "latency":
                if head.startswith(b'{"type":"ticks"'):
                    # publish_ns is each row's last field, the only number before a "]"
                    pubs = _PUB.findall(bytes(mv))
                    self.lat.extend(now - int(p) for p in pubs)
                    self.records += len(pubs)
                elif head.startswith(b'{"t":'):  # library peers: {"t": publish_ns, ...}
                    self.lat.append(now - int(head[5:head.index(b",")]))
            elif head.startswith(b'{"type":"ticks"'):
                i = head.find(b'"n":')
                self.records += int(head[i + 4:head.index(b",", i)])

    async def main() -> None:
        clients = []
        stalled = []
        for kind, sub in plan:
            if kind == "stall":
                stalled.append(_stalled_socket(url, sub))
                continue
            # a zero-argument factory (picows passes request and response to one taking 2)
            _, c = await ws_connect(_factory(Client, kind, sub), url, max_frame_size=64 << 20)
            clients.append(c)
        await asyncio.sleep(warmup)
        for c in clients:
            c.on = True
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - t0
        for c in clients:
            c.on = False
        res: dict[str, Any] = {"elapsed": elapsed}
        for kind in {k for k, _ in plan if k != "stall"}:
            mine = [c for c in clients if c.kind == kind]
            res[kind] = {"clients": len(mine), "frames": sum(c.frames for c in mine),
                         "records": sum(c.records for c in mine),
                         "bytes": sum(c.nbytes for c in mine),
                         "lat": np.concatenate([np.asarray(c.lat, np.int64) for c in mine])
                         if mine else np.zeros(0, np.int64)}
        out.put(res)
        for s in stalled:
            s.close()

    asyncio.run(main())


_PUB = re.compile(rb",(\d+)\]")


def _factory(cls: Any, kind: str, sub: bytes | None) -> Any:
    return lambda: cls(kind, sub)


def _stalled_socket(url: str, sub: bytes | None) -> socket.socket:
    """A handshake, one subscribe, then never a read (tiny receive buffer)."""
    import base64
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    if sub:
        mask = os.urandom(4)
        n = len(sub)
        frame = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big") if n >= 126 else bytes(
            [0x81, 0x80 | n])
        sock.sendall(frame + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(sub)))
    return sock


def run_clients(url: str, plan: list[tuple[str, bytes | None]], seconds: float,
                warmup: float = 1.0, processes: int = 1) -> dict[str, Any]:
    """The clients of ``plan`` spread over ``processes`` processes; results summed."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_client_main, args=(url, plan[i::processes], seconds, warmup,
                                                    out)) for i in range(processes)]
    for p in procs:
        p.start()
    try:
        parts = [dict(out.get(timeout=seconds + warmup + 60)) for _ in procs]
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    total: dict[str, Any] = {"elapsed": max(r["elapsed"] for r in parts)}
    for r in parts:
        for kind, v in r.items():
            if kind == "elapsed":
                continue
            t = total.setdefault(kind, {"clients": 0, "frames": 0, "records": 0, "bytes": 0,
                                        "lat": np.zeros(0, np.int64)})
            for key in ("clients", "frames", "records", "bytes"):
                t[key] += v[key]
            t["lat"] = np.concatenate([t["lat"], v["lat"]])
    return total


# ============================================================================ A: libraries
def _frames(kind: str) -> list[bytes]:
    """Representative frames: {"t": publish_ns-slot, ...} so clients can time them."""
    row = [123456, 1664323200000, 149.84, 151.0, 148.5, 149.84, 146510000.0, 0]
    if kind == "single":
        body = json.dumps({"data": {"AAPL": [row]}}, separators=(",", ":"))
    else:
        body = json.dumps({"data": {"AAPL": [row] * 64}}, separators=(",", ":"))
    return [body.encode()]


def _server_main(lib: str, port: int, kind: str, ready: Any, stop: Any) -> None:
    import logging
    logging.getLogger("picows").setLevel(logging.ERROR)  # its pause/resume notes
    payload = _frames(kind)[0]
    prefix = b'{"t":'

    def frame() -> bytes:
        return prefix + str(time.monotonic_ns()).encode() + b"," + payload[1:]

    async def pump(writers: list[Any]) -> None:
        while not stop.is_set():
            if not writers:
                await asyncio.sleep(0.01)
                continue
            data = frame()
            sent = False
            for buffered, write in list(writers):
                if buffered() < QUEUE_LIMIT:
                    write(data)
                    sent = True
            await asyncio.sleep(0 if sent else 0.0005)

    async def main_picows() -> None:
        from picows import WSListener, WSMsgType, ws_create_server
        writers: list[Any] = []

        class L(WSListener):  # type: ignore[misc]
            def on_ws_connected(self, t: Any) -> None:
                self.entry = (t.underlying_transport.get_write_buffer_size,
                              lambda d, t=t: t.send(WSMsgType.TEXT, d))
                writers.append(self.entry)

            def on_ws_disconnected(self, t: Any) -> None:
                writers.remove(self.entry)

        server = await ws_create_server(lambda r: L(), "127.0.0.1", port)
        ready.set()
        await pump(writers)
        server.close()

    async def main_websockets() -> None:
        import websockets
        from websockets.asyncio.server import serve
        writers: list[Any] = []

        async def handler(ws: Any) -> None:
            entry = (ws.transport.get_write_buffer_size,
                     lambda d, ws=ws: websockets.broadcast([ws], d.decode()))
            writers.append(entry)
            try:
                await ws.wait_closed()
            finally:
                writers.remove(entry)

        async with serve(handler, "127.0.0.1", port, compression=None, max_queue=None):
            ready.set()
            await pump(writers)

    asyncio.run(main_picows() if lib == "picows" else main_websockets())


def bench_libraries(seconds: float, clients: int) -> dict[str, dict[str, float]]:
    print(f"\nA. WebSocket libraries, the same fan-out loop, {clients} clients (picows "
          f"clients in another process), {seconds:g} s each")
    results: dict[str, dict[str, float]] = {}
    ctx = mp.get_context("spawn")
    for kind in ("single", "batched"):
        for lib in ("websockets", "picows"):
            port = _free_port()
            ready, stop = ctx.Event(), ctx.Event()
            srv = ctx.Process(target=_server_main, args=(lib, port, kind, ready, stop))
            srv.start()
            try:
                ready.wait(20)
                res = run_clients(f"ws://127.0.0.1:{port}/", [("count", None)] * clients,
                                  seconds)
            finally:
                stop.set()
                srv.join(10)
                if srv.is_alive():
                    srv.kill()
            c = res["count"]
            fps, mbs = c["frames"] / res["elapsed"], c["bytes"] / res["elapsed"] / 1e6
            results.setdefault(kind, {})[lib] = fps
            print(f"  {kind:8} frames ({len(_frames(kind)[0]) + 25:5d} B)  {lib:10}  "
                  f"{fps / 1e3:8.1f} k frames/s  {mbs:7.1f} MB/s")
        r = results[kind]
        print(f"  {kind:8} picows / websockets: {r['picows'] / max(r['websockets'], 1):.2f}x")
    return results


# ============================================================================ B, C: gateway
class Gateway:
    """The real tradingd-gateway (and optionally the real producer) on a private segment."""

    def __init__(self, segment: str, producer: dict[str, Any] | None = None,
                 gateway: dict[str, Any] | None = None) -> None:
        self.segment = segment
        self.dir = Path(tempfile.mkdtemp(prefix="td16b-"))
        cfg: dict[str, Any] = {
            "segment": {"name": segment, "ring_capacity": 1 << 18, "heartbeat_interval": 0.05},
            "producer": {"data_dir": str(REPO / "market_data"), "metrics": {"port": 0},
                         "replay": producer or {}},
            "consumer": {"metrics": {"port": 0}},
            "gateway": {"port": 0, "metrics": {"port": 0}, "max_connections": 1000,
                        "max_records_per_frame": 4096, **(gateway or {})},
            "logging": {"level": "warning"},
        }
        self.config = self.dir / "tradingd.yaml"
        self.config.write_text(yaml.safe_dump(cfg))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.log = self.dir / "daemons.log"

    def start(self, kind: str) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET",)}
        with open(self.log, "ab") as log:
            p = subprocess.Popen([str(BIN / f"tradingd-{kind}"), "--config", str(self.config),
                                  "--log-level", "info"], stdout=log, stderr=log,
                                 stdin=subprocess.DEVNULL, env=env)
        self.procs.append(p)
        return p

    def port(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"gateway on http://127\.0\.0\.1:(\d+)/", self.log.read_text())
            if m:
                return int(m.group(1))
            time.sleep(0.05)
        raise RuntimeError(f"the gateway did not start:\n{self.log.read_text()[-2000:]}")

    def metrics(self) -> str:
        m = re.findall(r"metrics on (http://127\.0\.0\.1:\d+/metrics)", self.log.read_text())
        import urllib.request
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        return str(opener.open(m[-1], timeout=5).read().decode())

    def sample(self, name: str) -> float:
        m = re.search(rf"^tradingd_gateway_{name} (\S+)$", self.metrics(), re.M)
        return float(m.group(1)) if m else float("nan")

    def send_latency(self) -> str:
        """The gateway's own publish -> frame written histogram: p50/p99 as
        histogram_quantile() computes them (linear within a bucket), share within 5 ms."""
        text = self.metrics()
        found = re.findall(r'^tradingd_gateway_send_latency_seconds_bucket\{le="([^"]+)"\}'
                           r" (\S+)$", text, re.M)
        buckets = sorted((float(le), float(n)) for le, n in found)
        total = buckets[-1][1] if buckets else 0.0
        if not total:
            return "n/a"

        def quantile(q: float) -> float:
            rank, lo, below = q * total, 0.0, 0.0
            for le, n in buckets:
                if n >= rank:
                    return lo + (le - lo) * (rank - below) / max(n - below, 1e-9)
                lo, below = le, n
            return lo

        within = next((n for le, n in buckets if le == 0.005), 0.0)
        return (f"p50 {quantile(0.5) * 1e3:.2f} ms, p99 {quantile(0.99) * 1e3:.2f} ms, "
                f"{100 * within / total:.1f} % <= 5 ms")

    def close(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        with contextlib.suppress(OSError):
            shm.unlink(self.segment)
        shutil.rmtree(self.dir, ignore_errors=True)


def _sub(*channels: str) -> bytes:
    return json.dumps({"op": "subscribe", "id": 1, "channels": list(channels)}).encode()


def bench_fanout(seconds: float, n_latest: int, n_ticks: int) -> None:
    print(f"\nB. tradingd-gateway fan-out: producer flat out (replay.mode fast), {n_latest} "
          f"clients on latest.*, {n_ticks} on ticks.*, {seconds:g} s")
    g = Gateway(_name(), producer={"mode": "fast", "batch_size": 4096})
    try:
        g.start("producer")
        time.sleep(1.0)
        gw = g.start("gateway")
        url = f"ws://127.0.0.1:{g.port()}/ws"
        lapped0 = g.sample("records_lapped_total")
        read0 = g.sample("records_read_total")
        cpu0 = _cpu_seconds(gw.pid)
        plan = ([("latest", _sub("latest.*"))] * n_latest
                + [("ticks", _sub("ticks.*"))] * n_ticks)
        t0 = time.monotonic()
        res = run_clients(url, plan, seconds, warmup=2.0, processes=2)
        wall = time.monotonic() - t0
        cpu = (_cpu_seconds(gw.pid) - cpu0) / wall
        read = g.sample("records_read_total") - read0
        lapped = g.sample("records_lapped_total") - lapped0
        t, lt = res["ticks"], res["latest"]
        el = res["elapsed"]
        print(f"  ticks clients: {t['records'] / el / 1e3:8.1f} k records/s delivered in "
              f"aggregate ({t['records'] / el / max(n_ticks, 1) / 1e3:.1f} k/s each, "
              f"{t['frames'] / el:.0f} frames/s, {t['bytes'] / el / 1e6:.1f} MB/s)")
        print(f"  latest clients: {lt['frames'] / el:8.0f} messages/s in aggregate "
              f"({lt['frames'] / el / max(n_latest, 1):.1f}/s each; latest_max_rate 10/s "
              f"x 4 symbols)")
        print(f"  gateway read {read / wall / 1e3:.1f} k records/s from the ring, lapped "
              f"{100 * lapped / max(read + lapped, 1):.1f} % (the producer publishes "
              f"millions/s); gateway CPU {100 * cpu:.0f} %")
    finally:
        g.close()


def _paced_writer(name: str, rate: float, seconds: float, ready: Any) -> None:
    with SegmentWriter.create(name, SYMS, ring_capacity=1 << 16,
                              heartbeat_interval_ns=50_000_000) as w:
        ready.set()
        pub, hb = w.publish, w.heartbeat
        period = 1.0 / rate
        t_next = time.monotonic()
        end = t_next + seconds
        next_hb = 0.0
        i = 0
        while (now := time.monotonic()) < end:
            if now >= next_hb:
                hb()
                next_hb = now + 0.05
            while (left := t_next - time.monotonic()) > 0:
                time.sleep(left if left > 2e-4 else 0)
            pub(i & 3, 1_600_000_000_000_000_000 + i, 1.0, 1.0, 1.0, 100.0 + (i % 7), 10.0)
            i += 1
            t_next += period


def bench_latency(seconds: float, rate: float, scenarios: list[tuple[int, bool]]) -> None:
    print(f"\nC. publish -> client latency at {rate:.0f} records/s (one record a "
          f"{1e3 / rate:g} ms), clients on ticks.*, {seconds:g} s each: p50 / p99 / p99.9")
    ctx = mp.get_context("fork")
    for clients, stall in scenarios:
        name = _name()
        ready = ctx.Event()
        writer = ctx.Process(target=_paced_writer, args=(name, rate, seconds + 8, ready))
        writer.start()
        ready.wait(10)
        g = Gateway(name, gateway={"send_buffer_limit": 65536, "slow_client_timeout": 2.0})
        try:
            g.start("gateway")
            url = f"ws://127.0.0.1:{g.port()}/ws"
            plan: list[tuple[str, bytes | None]] = [("latency", _sub("ticks.*"))] * clients
            if stall:
                plan.append(("stall", _sub("ticks.*")))
            res = run_clients(url, plan, seconds, warmup=2.0, processes=2 if clients > 20 else 1)
            lat = res["latency"]
            extra = ""
            if stall:
                closed = re.search(r'clients_closed_total\{reason="slow_client"\} (\S+)',
                                   g.metrics())
                extra = (f"; stalled client: {g.sample('slow_client_episodes_total'):.0f} "
                         f"slow episode, {g.sample('updates_dropped_total'):.0f} updates "
                         f"dropped for it, closed 1013: {closed.group(1) if closed else '?'}")
            print(f"  {clients:3d} clients{' + 1 stalled' if stall else '':12}: "
                  f"{_pct(lat['lat'])}  ({lat['records'] / res['elapsed'] / 1e3:.1f} k "
                  f"records/s delivered{extra})")
            print(f"      gateway side (publish -> frame written, per frame): "
                  f"{g.send_latency()}")
        finally:
            g.close()
            writer.join(seconds + 20)
            if writer.is_alive():
                writer.kill()
            with contextlib.suppress(OSError):
                shm.unlink(name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--quick", action="store_true", help="2 s runs, fewer clients")
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--repeat", type=int, default=1, help="latency runs per scenario")
    ap.add_argument("--only", choices=("libraries", "fanout", "latency"), default=None)
    args = ap.parse_args()
    s = 2.0 if args.quick else args.seconds
    print(f"tradingd-gateway benchmark; {os.cpu_count()} CPUs shared with everything else "
          f"running (figures drift between runs: compare within one run)")
    if args.only in (None, "libraries"):
        bench_libraries(min(s, 3.0), 20)
    if args.only in (None, "fanout"):
        bench_fanout(s, 20 if args.quick else 100, 10)
    if args.only not in (None, "latency"):
        return
    scen = [(20, False), (20, True)] if args.quick else [(100, False), (100, True), (10, False)]
    bench_latency(s, args.rate, [sc for sc in scen for _ in range(max(1, args.repeat))])


if __name__ == "__main__":
    main()
