"""Live: a real Prometheus scrapes a real producer, consumer and gateway with the shipped rules.

Prometheus (Debian's 2.42 binary) listens on a free loopback port and scrapes both daemons
every second on the free ports given to them with ``--metrics-port``. Then every dashboard
panel query and every recording rule must return at least one series through the HTTP
API (polled with a generous cap), the scraped metric names must be exactly the documented
ones, and after a ``kill -9`` of the producer the shipped TradingdProducerDown alert must
become pending (and a copy with ``for: 2s``, from a rule override file, firing).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from daemons import DaemonProcess
from monitoring_support import RULES, panel_queries
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tradingd.demo import free_port
from tradingd.exec.client import OrderClient
from tradingd.exec.protocol import ExecType
from tradingd.monitoring import catalog, rules
from tradingd.monitoring.promserver import PrometheusServer, find_binary, scrape_config

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DATA_TIMEOUT = 60.0  # generous: a loaded CI box; it takes ~10 s here
ALERT_TIMEOUT = 45.0
#: $__rate_interval as Grafana computes it for a 1 s scrape interval (4 x scrape), rounded up.
RATE_INTERVAL = "5s"
RESERVED_PORTS = {9090, 9101, 9102, 9103, 9104, 9105, 9106}


def port() -> int:
    p = free_port()
    while p in RESERVED_PORTS:
        p = free_port()
    return p


def write_config(workdir: Path) -> Path:
    cfg = {
        "segment": {"ring_capacity": 4096, "heartbeat_interval": 0.05},
        "producer": {
            "data_dir": str(REPO / "market_data"),
            # a year of data per second: a few hundred records/s, every symbol moving
            "replay": {"mode": "paced", "speed": 365 * 86400.0, "at_end": "loop",
                       "align": "start", "batch_size": 256},
            # the command line moves the ports (--metrics-port): these would collide
            "metrics": {"port": 9101},
        },
        "consumer": {"wait": {"strategy": "block"}, "attach_retry_interval": 0.05,
                     "report_interval": 5.0, "metrics": {"port": 9102}},
        "gateway": {"port": 0, "metrics": {"port": 9103}},
        "exec": {"journal": str(workdir / "exec.journal"), "discovery_interval": 0.05,
                 "wait": {"strategy": "poll"}, "metrics": {"port": 9106}},
        # no NATS server: the mirror waits for it (READY), every family is served
        "bridge": {"nats": {"servers": [f"nats://127.0.0.1:{free_port()}"],
                            "connect_timeout": 0.5, "reconnect_wait_max": 0.5},
                   "mirror": {"metrics": {"port": 9105},
                              "state_dir": str(workdir / "mirror-state")}},
    }
    path = workdir / "tradingd.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def prom_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="tdprom-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for d in reversed(started):
        d.cleanup()


def poll(what: str, check: Callable[[], tuple[bool, object]], timeout: float) -> object:
    """Call ``check`` until it says done (returns its detail), else fail with the last."""
    deadline = time.monotonic() + timeout
    while True:
        done, detail = check()
        if done:
            return detail
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s: {detail}")
        time.sleep(0.5)


class WsReader:
    """A WebSocket client of the gateway, subscribed to ticks.* and read in a thread."""

    def __init__(self, gateway: DaemonProcess) -> None:
        m = poll("the gateway's port in its log", lambda: (
            bool(found := re.search(r"gateway on http://127\.0\.0\.1:(\d+)/", gateway.log)),
            found), 20)
        assert isinstance(m, re.Match)
        self.conn = connect(f"ws://127.0.0.1:{m.group(1)}/ws", open_timeout=20).__enter__()
        self.conn.send(json.dumps({"op": "subscribe", "id": 1,
                                   "channels": ["ticks.*", "latest.*", "status"]}))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.conn.recv(0.2)
            except TimeoutError:
                continue
            except ConnectionClosed:
                return

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.conn.close()


def override_file(path: Path) -> Path:
    """TradingdProducerDown with ``for: 2s``, so the test also sees it fire quickly."""
    shipped = next(a for a in rules.alerts() if a.name == "TradingdProducerDown")
    quick = dataclasses.replace(shipped, for_="2s")
    path.write_text(yaml.safe_dump({"groups": [
        {"name": "tradingd-test-overrides", "rules": [rules.rule_dict(quick)]}]}))
    return path


def test_prometheus_scrapes_the_daemons_queries_return_data_and_alerts_fire(
        workdir: Path, segment_name: str, prom_dir: Path,
        daemons: list[DaemonProcess], capsys: pytest.CaptureFixture[str]) -> None:
    if find_binary("prometheus") is None:
        pytest.skip("prometheus not installed (Debian package prometheus; make test-deps)")
    config = write_config(workdir)
    pport, cport, prom_port = port(), port(), port()
    while len({pport, cport, prom_port}) < 3:
        cport, prom_port = port(), port()
    producer = DaemonProcess("producer", config, workdir, segment=segment_name,
                             extra_args=["--metrics-port", str(pport)])
    daemons.append(producer)
    producer.wait_ready()
    consumer = DaemonProcess("consumer", config, workdir, segment=segment_name,
                             extra_args=["--metrics-port", str(cport)])
    daemons.append(consumer)
    consumer.wait_ready()
    assert producer.metrics_port() == pport and consumer.metrics_port() == cport
    gport = port()
    while gport in (pport, cport, prom_port):
        gport = port()
    gateway = DaemonProcess("gateway", config, workdir, segment=segment_name,
                            extra_args=["--metrics-port", str(gport)])
    daemons.append(gateway)
    gateway.wait_ready()
    assert gateway.metrics_port() == gport
    client = WsReader(gateway)  # a subscribed client, so every gateway panel has data
    exec_d = DaemonProcess("exec", config, workdir, segment=segment_name,
                           extra_args=["--metrics-port", "0"])
    daemons.append(exec_d)
    exec_d.wait_ready()
    eport = exec_d.metrics_port()
    # a client with a rejected order: every exec family (per client, by reason) has data
    orders = OrderClient("mon", segment=segment_name, wait="poll")
    try:
        orders.submit("NOSUCH", "buy", 1, 1.0)
        orders.wait_for(lambda r: r.exec_type == ExecType.REJECTED, timeout=30)
        mirror = DaemonProcess("bridge-mirror", config, workdir, segment=f"{segment_name}m",
                               extra_args=["mirror", "--feed", segment_name,
                                           "--metrics-port", "0"])
        daemons.append(mirror)
        mirror.wait_ready()
        mport = mirror.metrics_port()
    except BaseException:
        orders.close()
        client.close()
        raise

    server = PrometheusServer(scrape_config(
        {"tradingd-producer": [f"127.0.0.1:{pport}"], "tradingd-consumer": [f"127.0.0.1:{cport}"],
         "tradingd-gateway": [f"127.0.0.1:{gport}"], "tradingd-exec": [f"127.0.0.1:{eport}"],
         "tradingd-bridge-mirror": [f"127.0.0.1:{mport}"]},
        [RULES, override_file(prom_dir / "overrides.yml")]), prom_dir, prom_port)
    try:
        server.wait_ready()
        queries = [q.substituted({"$__rate_interval": RATE_INTERVAL}) for q in panel_queries()]
        records = [r.record for g in rules.groups() for r in g.rules
                   if isinstance(r, rules.Record)]

        healthy = {"TradingdProducerDown", "TradingdHeartbeatStale", "TradingdTargetDown",
                   "TradingdGenerationMismatch"}

        def all_have_data() -> tuple[bool, object]:
            """Every query has data and no health alert is active (pending or firing):
            a slow scrape on a loaded box may make one pending for a moment."""
            empty = [q for q in [*queries, *records] if not server.query(q)]
            active = {a["labels"]["alertname"] for a in server.alerts()} & healthy
            return not empty and not active, (empty, active)

        t0 = time.monotonic()
        poll("every panel query and recording rule to return data, no health alert active",
             all_have_data, DATA_TIMEOUT)
        waited = time.monotonic() - t0

        # exactly the documented names are scraped (catalog = docs/metrics.md)
        live = {s["metric"]["__name__"] for s in server.query(
            'count by (__name__) ({__name__=~"tradingd_.+", job=~"tradingd-.*"})')}
        documented = {n for n in catalog.metric_names() if n.startswith("tradingd_")}
        assert live == documented, (live - documented, documented - live)
        # one spelling of the generation: consumer and producer join without label_replace
        joined = server.query("tradingd_consumer_segment_info and on(segment, generation) "
                              "tradingd_producer_segment_info")
        assert len(joined) == 1 and joined[0]["metric"]["generation"]
        firing = {a["labels"]["alertname"] for a in server.alerts() if a["state"] == "firing"}
        # nothing wrong with a healthy pair (the mirror has no upstream here, on purpose)
        assert not firing - {"TradingdBridgeUpstreamDown"}, firing

        os.kill(producer.pid, signal.SIGKILL)
        producer.proc.wait(10)

        def producer_down() -> tuple[bool, object]:
            states = {(a["labels"]["alertname"], a["state"]) for a in server.alerts()}
            want = {("TradingdProducerDown", "pending"), ("TradingdProducerDown", "firing")}
            return want <= states, states

        t1 = time.monotonic()
        poll("TradingdProducerDown pending (shipped) and firing (override)", producer_down,
             ALERT_TIMEOUT)
        down_after = time.monotonic() - t1
        ages = server.query("tradingd:consumer_producer_heartbeat_age_seconds")
        assert ages and float(ages[0]["value"][1]) > 0
    finally:
        server.stop()
        client.close()
        orders.close()
    with capsys.disabled():
        print(f"\n[monitoring live] {len(queries)} panel queries + {len(records)} recording "
              f"rules returned data after {waited:.1f} s; TradingdProducerDown pending/firing "
              f"{down_after:.1f} s after kill -9")
