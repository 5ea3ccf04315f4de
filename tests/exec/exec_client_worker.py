"""A client process for the exec end-to-end tests (run as ``python exec_client_worker.py``).

Modes:
  trade  submit --orders orders (mixed market/limit/IOC, both sides) every --interval s,
         reading reports as it goes; at the end wait until every order is terminal
  flood  submit --orders limit orders as fast as the ring allows, reading no reports
         unless --read
Every report is written to --out as one JSON line as soon as it is read (so a test can
look at what a process got before it was killed), then a final {"done": ...} line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from tradingd.exec import ClientDisconnected, OrderClient, OrderRingFull
from tradingd.exec.protocol import OPEN, ReportKind


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--segment", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--mode", choices=("trade", "flood"), default="trade")
    p.add_argument("--orders", type=int, default=100)
    p.add_argument("--interval", type=float, default=0.002)
    p.add_argument("--read", action="store_true")
    p.add_argument("--capacity", type=int, default=4096)
    a = p.parse_args()
    out = open(a.out, "a", buffering=1)  # noqa: SIM115 (line-buffered until exit)
    c = OrderClient(a.name, segment=a.segment, capacity=a.capacity, connect_timeout=30.0,
                    wait="poll", poll_interval=0.0002)
    first_id = c._next_id
    out.write(json.dumps({"start": {"first_id": first_id, "generation": c.generation}}) + "\n")
    sent: list[int] = []
    credit_waits = 0
    disconnected = ""

    def drain() -> None:
        while (r := c.poll()) is not None:
            out.write(json.dumps({"report": [*r[:15], r.symbol.decode("latin1"), r[16]]})
                      + "\n")

    flood_until = time.monotonic() + 20.0  # a flood stops by itself (the test waits 40 s)
    try:
        for i in range(a.orders):
            if a.mode == "trade":
                kind = i % 4
                if kind == 0:
                    oid = c.submit("AAPL", "buy", 1 + i % 7, timeout=30.0)
                elif kind == 1:
                    oid = c.submit("AAPL", "sell", 3, price=0.01, tif="ioc", timeout=30.0)
                elif kind == 2:
                    oid = c.submit("TSLA", "buy", 2, price=1e9 if i % 8 == 2 else 0.5,
                                   tif="gtc", timeout=30.0)
                else:
                    oid = c.submit("BTC-USD", "sell", 1, timeout=30.0)
                sent.append(oid)
                drain()
                time.sleep(a.interval)
            else:
                if time.monotonic() > flood_until:
                    break
                if c._credit_left() <= 0:
                    credit_waits += 1
                try:
                    sent.append(c.submit("AAPL", "buy", 1, price=0.01, tif="gtc",
                                         timeout=30.0))
                except OrderRingFull:
                    break
                if a.read:
                    drain()
        if a.mode == "trade":  # until every order of ours is terminal (GTC far away: cancel)
            deadline = time.monotonic() + 60
            canceled = False
            while time.monotonic() < deadline:
                drain()
                open_ids = [k for k, v in c.orders.items() if v.ord_status in OPEN
                            and v.report_kind == ReportKind.EXECUTION]
                missing = [k for k in sent if k not in c.orders]
                if not open_ids and not missing:
                    break
                if not canceled and not missing:
                    for k in open_ids:
                        c.cancel(k, timeout=30.0)
                    canceled = True
                time.sleep(0.005)
        else:
            drain()
    except ClientDisconnected as exc:
        disconnected = str(exc)
    out.write(json.dumps({"done": {"sent": sent, "gaps": c.gaps, "credit_waits": credit_waits,
                                   "disconnected": disconnected,
                                   "positions": {k: [v.qty, v.avg_px]
                                                 for k, v in c.positions().items()}}}) + "\n")
    out.close()
    c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
