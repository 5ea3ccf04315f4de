"""``make monitor``: the demo pair plus a local Prometheus with the shipped rules.

Starts tradingd-producer and tradingd-consumer as ``make demo`` does (private segment,
free loopback ports, the bundled data replayed at a week a second) and a private
Prometheus (Debian's ``prometheus``) on 127.0.0.1 scraping both every 5 s with
monitoring/prometheus/tradingd.rules.yml loaded, prints its URL, and then one status line
every ``--refresh`` seconds (targets up, active alerts) until Ctrl-C or ``--duration``.
Everything it started is stopped and removed at the end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
import uuid
from pathlib import Path
from types import FrameType

import yaml

from tradingd import constants as C
from tradingd.daemon.cli import ArgumentParser, default_config_path, run_main
from tradingd.daemon.config import load_config
from tradingd.demo import DEFAULT_SPEED, Daemons, demo_config, free_port
from tradingd.monitoring.promserver import (
    RULES,
    PrometheusError,
    PrometheusServer,
    scrape_config,
)

PROG = "tradingd-monitor"
SCRAPE_INTERVAL = "5s"


class _Stop(Exception):
    """SIGTERM/SIGHUP: stop like Ctrl-C."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def _ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports, none of the daemons' or Prometheus' defaults."""
    reserved = {9090, C.DEFAULT_PRODUCER_METRICS_PORT, C.DEFAULT_CONSUMER_METRICS_PORT}
    ports: list[int] = []
    while len(ports) < n:
        p = free_port()
        if p not in reserved and p not in ports:
            ports.append(p)
    return ports


def status_line(server: PrometheusServer) -> str:
    """Targets up and the active alerts, as one line."""
    up = {s["metric"]["job"]: s["value"][1] for s in server.query('up{job=~"tradingd-.*"}')}
    targets = ", ".join(f"{job} {'up' if v == '1' else 'DOWN'}" for job, v in sorted(up.items()))
    alerts = sorted(f"{a['labels']['alertname']} ({a['state']})" for a in server.alerts())
    return f"targets: {targets or 'not scraped yet'}; alerts: {', '.join(alerts) or 'none'}"


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description="Run the demo producer and consumer and a "
                       "local Prometheus with tradingd's rules; print its URL.")
    p.add_argument("--config", metavar="PATH", default=None,
                   help=f"base configuration (default: {default_config_path()})")
    p.add_argument("--port", type=int, default=0, metavar="PORT",
                   help="Prometheus' port on 127.0.0.1 (default: a free port)")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--refresh", type=float, default=10.0, metavar="SECONDS",
                   help="seconds between status lines (default 10)")
    return p


def _run(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not RULES.exists():
        raise PrometheusError(f"{RULES} not found: run from a tradingd checkout")
    base = load_config(args.config or default_config_path())
    segment = f"tdmon-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    pport, cport, free = _ports(3)
    prom_port = args.port or free
    workdir = Path(tempfile.mkdtemp(prefix="tradingd-monitor-"))
    daemons = Daemons(segment, workdir)
    server: PrometheusServer | None = None
    old = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        config_path = workdir / "tradingd.yaml"
        config_path.write_text(yaml.safe_dump(demo_config(base, segment, pport, cport,
                                                          DEFAULT_SPEED)))
        load_config(config_path)
        prod = daemons.start("producer", config_path)
        daemons.start("consumer", config_path)
        (workdir / "prometheus").mkdir()
        server = PrometheusServer(scrape_config(
            {"tradingd-producer": [f"127.0.0.1:{pport}"],
             "tradingd-consumer": [f"127.0.0.1:{cport}"]}, [RULES],
            interval=SCRAPE_INTERVAL), workdir / "prometheus", prom_port)
        server.wait_ready()
        print(f"{PROG}: Prometheus on {server.url}  (alerts: {server.url}/alerts, rules: "
              f"{server.url}/rules, targets: {server.url}/targets)\n"
              f"{PROG}: producer pid {prod.pid} metrics http://127.0.0.1:{pport}/metrics, "
              f"consumer metrics http://127.0.0.1:{cport}/metrics, segment /dev/shm/{segment}\n"
              f"{PROG}: try a graph of tradingd:consumer_records_consumed:rate1m or "
              f"tradingd:consumer_publish_latency_seconds:p99_rate5m; `kill -9 {prod.pid}` "
              f"shows TradingdProducerDown pending, then firing after 1 minute\n"
              f"{PROG}: Ctrl-C stops everything", flush=True)
        start = time.monotonic()
        while args.duration is None or time.monotonic() - start < args.duration:
            if server.proc.poll() is not None:
                raise PrometheusError(f"prometheus exited:\n{server.log}")
            left = None if args.duration is None else args.duration - (time.monotonic()
                                                                       - start)
            time.sleep(max(0.1, args.refresh if left is None else min(args.refresh, left)))
            print(f"{PROG}: {status_line(server)}", flush=True)
    except (KeyboardInterrupt, _Stop):
        print(f"\n{PROG}: stopping", flush=True)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        with contextlib.suppress(KeyboardInterrupt):
            if server is not None:
                server.stop()
            daemons.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"{PROG}: stopped Prometheus, producer and consumer; segment removed", flush=True)
    return C.EXIT_OK


def main() -> None:
    run_main(_run, PROG)


if __name__ == "__main__":
    main()
