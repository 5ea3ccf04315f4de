"""Publishing under a scrape flood: prometheus_client's thread-per-request server vs ours.

    .venv/bin/python bench/bench_scrape_flood.py [--seconds 3] [--scrapers 50]

One process replays the bundled data into a private segment as fast as it can (the
producer's own Replayer, fast mode, batches of 256) while serving a metrics registry of a
few hundred samples;
another process runs ``--scrapers`` threads scraping it back to back. Prints the publish
rate with no scrapes, then under the flood with ``prometheus_client.start_http_server``
(one thread per request: the peer) and with ``tradingd.daemon.metrics_http`` (a pool of
WORKERS threads), plus scrapes answered and the publisher's peak thread count. Absolute
figures drift between runs on a shared VM; compare within one run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import start_http_server

from tradingd.clock import ManualClock
from tradingd.daemon.config import load_config
from tradingd.daemon.metrics_http import WORKERS, start_metrics_server
from tradingd.producer.daemon import load_symbol
from tradingd.producer.replay import Replayer, ReplaySettings, bar_interval_ns, build_timeline
from tradingd.segment.model import SymbolInfo
from tradingd.segment.writer import SegmentWriter

REPO = Path(__file__).resolve().parent.parent

SCRAPER = """
import sys, threading, time, urllib.request
url, n, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
done = [0]
end = time.monotonic() + seconds
def loop():
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                r.read()
            done[0] += 1
        except Exception:
            pass
ts = [threading.Thread(target=loop) for _ in range(n)]
[t.start() for t in ts]
[t.join() for t in ts]
print(done[0])
"""


def registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    g = Gauge("bench_value", "a labelled gauge like the per-symbol series", ["symbol", "kind"],
              registry=reg)
    for i in range(64):
        for kind in ("price", "volume", "records", "age"):
            g.labels(symbol=f"S{i}", kind=kind).set(i)
    return reg


def publish_for(replay_step: Any, writer: SegmentWriter, seconds: float, pid: int,
                peak: list[int]) -> float:
    """Records/s the producer's fast-mode replay publishes in ``seconds``."""
    c0 = writer.cursor
    t0 = time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        for _ in range(50):
            replay_step()
        peak[0] = max(peak[0], len(os.listdir(f"/proc/{pid}/task")))
    return (writer.cursor - c0) / (time.perf_counter() - t0)


def phase(step: Any, writer: SegmentWriter, url: str | None, seconds: float,
          scrapers: int) -> tuple[float, int, int]:
    peak = [len(os.listdir(f"/proc/{os.getpid()}/task"))]
    proc = None
    if url is not None:
        proc = subprocess.Popen([sys.executable, "-c", SCRAPER, url, str(scrapers),
                                 str(seconds + 0.5)], stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)  # let the flood build up
    rate = publish_for(step, writer, seconds, os.getpid(), peak)
    answered = int(proc.communicate(timeout=60)[0].strip() or 0) if proc else 0
    return rate, answered, peak[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--scrapers", type=int, default=50)
    args = ap.parse_args()
    name = f"tdbench-{uuid.uuid4().hex[:8]}"
    cfg = load_config(str(REPO / "config" / "tradingd.yaml"))
    bars = [load_symbol(cfg, sym).bars for sym in cfg.producer.symbols]
    tl = build_timeline(bars)
    syms = [SymbolInfo(f"S{i}", bar_interval_ns=bar_interval_ns(b["event_ns"]),
                       record_count=len(b)) for i, b in enumerate(bars)]
    with SegmentWriter.create(name, syms, ring_capacity=65536, wake_readers=False) as w:
        rp = Replayer(tl, w, ReplaySettings(mode="fast", batch_size=256, at_end="loop"),
                      clock=ManualClock())
        step = rp.step
        base, _, threads0 = phase(step, w, None, args.seconds, 0)
        print(f"no scrapes: {base / 1e6:.2f} M rec/s ({threads0} threads)")
        for label, start in (("prometheus_client start_http_server (thread per request)",
                              lambda reg: start_http_server(0, addr="127.0.0.1", registry=reg)),
                             (f"tradingd metrics_http (pool of {WORKERS})",
                              lambda reg: start_metrics_server(0, "127.0.0.1", reg))):
            server, thread = start(registry())
            url = f"http://127.0.0.1:{server.server_port}/metrics"
            try:
                rate, answered, peak = phase(step, w, url, args.seconds, args.scrapers)
            finally:
                server.shutdown()
                server.server_close()
                thread.join(5)
            print(f"{args.scrapers} scrapers, {label}: {rate / 1e6:.2f} M rec/s "
                  f"({rate / base:.0%} of no scrapes), {answered} scrapes answered, "
                  f"peak {peak} threads")
            time.sleep(0.5)


if __name__ == "__main__":
    main()
