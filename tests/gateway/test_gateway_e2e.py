"""tradingd-gateway end to end: a real producer, the real gateway, real WebSocket clients.

Every daemon runs on a private segment and free ports, and is killed by PID afterwards
(the ``stack`` fixture). The tests run to a count with generous caps, never to a rate.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_support import (
    TIMEOUT,
    Coverage,
    Stack,
    WsClient,
    http_get,
    masked_frame,
    raw_ws_connect,
    write_config,
)
from support import promtool_lint
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tradingd import constants as C
from tradingd.segment.reader import SegmentReader

pytestmark = pytest.mark.slow


def ring_records(segment: str) -> tuple[dict[int, Any], list[str]]:
    """Every record still in the segment's ring, by sequence number, and the symbol names."""
    with SegmentReader.attach(segment) as r:
        names = [s.name for s in r.symbols()]
        sub = r.subscribe("oldest")
        first = sub.position
        recs = sub.poll_batch(1 << 20).copy()
    return {first + i: recs[i] for i in range(len(recs))}, names


def row_matches(row: list[Any], rec: Any, names: list[str]) -> bool:
    """A JSON row ``[symbol, seq, t_ms, o, h, l, c, v, publish_ns]`` against a ring record."""
    sym, _seq, t_ms, o, h, lo, c, v, pub = row
    return bool(sym == names[int(rec["symbol_id"])] and t_ms == int(rec["event_ns"]) // 10**6
                and (o, h, lo, c, v) == (float(rec["open"]), float(rec["high"]),
                                         float(rec["low"]), float(rec["close"]),
                                         float(rec["volume"]))
                and pub == int(rec["publish_ns"]))


def start_pair(stack: Stack, config: Path, *, gateway_env: dict[str, str] | None = None
               ) -> tuple[Any, Any]:
    producer = stack.producer(config)
    producer.wait_ready()
    gateway = stack.gateway(config, env=gateway_env)
    gateway.wait_ready()
    return producer, gateway


def subscribe(client: WsClient, *channels: str) -> dict[str, Any]:
    rid = client.request("subscribe", channels=list(channels))
    return client.wait_for(lambda m: m.get("id") == rid)


class Drain:
    """Reads a client in a thread (so the gateway never sees it slow) into a Coverage."""

    def __init__(self, client: WsClient) -> None:
        self.client = client
        self.coverage = Coverage()
        self.messages: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                msg = json.loads(self.client.conn.recv(0.2))
            except TimeoutError:
                continue
            except ConnectionClosed:
                return
            self.messages.append(msg)
            self.coverage.feed(msg)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


@pytest.fixture
def drains() -> Iterator[list[Drain]]:
    made: list[Drain] = []
    yield made
    for d in made:
        d.close()


def wait_until(predicate: Any, timeout: float = TIMEOUT, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------------


def test_snapshot_and_updates_match_the_segment(stack: Stack, workdir: Path) -> None:
    _, gateway = start_pair(stack, write_config(workdir))
    client = stack.client(gateway.ws_url)
    welcome = client.recv()
    assert welcome["type"] == "welcome" and welcome["protocol"] == 1
    assert welcome["symbols"] == ["AAPL", "TSLA", "BTC-USD", "EURUSD"]
    ack = subscribe(client, "ticks.*", "latest.*", "status")
    assert ack == {"type": "ack", "op": "subscribe", "id": ack["id"],
                   "channels": ["ticks.*", "latest.*", "status"]}
    cov = Coverage()
    snapshots: dict[str, dict[str, Any]] = {}
    latest: list[dict[str, Any]] = []
    deadline = time.monotonic() + TIMEOUT
    # (symbols whose data ended stop until the replay loops: EURUSD covers a year, 1 s here)
    while cov.delivered < 300 or len({m["channel"] for m in latest}) < 2:
        assert time.monotonic() < deadline, (f"not enough data: {cov.delivered} records, "
                                             f"latest of {({m['channel'] for m in latest})}")
        msg = client.recv()
        cov.feed(msg)
        if msg["type"] == "snapshot":
            snapshots[msg["channel"]] = msg
        elif msg["type"] == "latest":
            latest.append(msg)
    assert cov.breaks == [] and cov.gaps == []
    assert set(snapshots) == {f"{k}.{s}" for k in ("ticks", "latest")
                              for s in welcome["symbols"]}
    ring, names = ring_records(stack.segment)
    # every record delivered is the ring's record of that sequence number, field for field
    assert all(row_matches(row, ring[seq], names) for seq, row in cov.records.items())
    # snapshots: the last records of the symbol before "to", and the latest slot
    for sym in names:
        snap = snapshots[f"ticks.{sym}"]
        rows = snap["records"]
        assert 0 < len(rows) <= 100 and all(r[0] < snap["to"] for r in rows)
        assert all(row_matches([sym, *r], ring[r[0]], names) for r in rows)
        slot = snap["latest"]
        assert slot["seq"] < snap["to"] and slot["price"] == float(ring[slot["seq"]]["close"])
    # latest.<SYMBOL>: the slot's values, which are the record of its seq; at most 10/s
    for m in latest:
        rec = ring[m["seq"]]
        assert names[int(rec["symbol_id"])] == m["channel"].removeprefix("latest.")
        assert (m["price"], m["volume"], m["t_ms"]) == (
            float(rec["close"]), float(rec["volume"]), int(rec["event_ns"]) // 10**6)
    for sym in names:
        times = [m["publish_ns"] for m in latest if m["channel"] == f"latest.{sym}"]
        assert all(b > a for a, b in itertools.pairwise(times))
    rid = client.request("list")
    listed = client.wait_for(lambda m: m.get("id") == rid)
    assert listed["channels"] == ["latest.*", "status", "ticks.*"]
    rid = client.request("unsubscribe", channels=["latest.*"])
    assert client.wait_for(lambda m: m.get("id") == rid)["channels"] == ["latest.*"]
    rid = client.request("ping")
    assert client.wait_for(lambda m: m.get("id") == rid)["type"] == "pong"


def test_lapped_gateway_sends_gaps_with_the_exact_count(stack: Stack, workdir: Path) -> None:
    """A slowed gateway lapped by a flat-out producer: every seq delivered or counted."""
    config = write_config(workdir, replay={"mode": "fast"}, segment={"ring_capacity": 1024},
                          gateway={"max_records_per_frame": 256})
    _, gateway = start_pair(stack, config, gateway_env={"TRADINGD_GATEWAY_TEST_DELAY": "0.01"})
    client = stack.client(gateway.ws_url)
    subscribe(client, "ticks.*")
    cov = Coverage()
    deadline = time.monotonic() + TIMEOUT
    while len(cov.gaps) < 5 or cov.delivered < 2000:
        assert time.monotonic() < deadline, f"{len(cov.gaps)} gaps, {cov.delivered} records"
        cov.feed(client.recv())
    assert cov.breaks == []
    gen = next(iter(cov.last_to))
    lost = sum(g["count"] for g in cov.gaps)
    assert all(g["reason"] == "lapped" and g["count"] > 0 for g in cov.gaps)
    # all four symbols subscribed: each sequence number is either delivered or in a gap count
    assert cov.delivered + lost == cov.last_to[gen] - cov.start[gen]
    assert gateway.sample("records_lapped_total") >= lost


def test_producer_kill_9_and_restart(stack: Stack, workdir: Path) -> None:
    config = write_config(workdir)
    producer, gateway = start_pair(stack, config)
    client = stack.client(gateway.ws_url)
    subscribe(client, "status", "ticks.*")
    cov = Coverage()

    def until(pred: Any) -> dict[str, Any]:
        def check(m: dict[str, Any]) -> bool:
            cov.feed(m)
            return bool(pred(m))
        return client.wait_for(check)

    first = until(lambda m: m["type"] == "status")
    old_gen = first["gen"]
    until(lambda m: m["type"] == "ticks")
    os.kill(producer.pid, signal.SIGKILL)
    down = until(lambda m: m["type"] == "status" and m["producer"] == "down")
    assert down["event"] == "producer_down" and down["gen"] == old_gen
    stack.producer(config).wait_ready()
    change = until(lambda m: m["type"] == "status" and m.get("event") == "generation_change")
    new_gen = change["gen"]
    assert new_gen != old_gen and change["producer"] == "up"
    snap = until(lambda m: m["type"] == "snapshot")
    assert snap["gen"] == new_gen
    ticks = until(lambda m: m["type"] == "ticks")
    assert ticks["gen"] == new_gen and ticks["from"] >= 0
    assert cov.breaks == []
    assert gateway.sample("generation_changes_total") == 1
    assert gateway.alive()


def expect_error(client: WsClient, msg: Any, code: int) -> dict[str, Any]:
    client.send(msg if isinstance(msg, str | bytes) else json.dumps(msg))
    err = client.wait_for(lambda m: m["type"] == "error")
    assert err["code"] == code, err
    return err


def test_bad_input_gets_error_codes_or_closes_never_crashes(stack: Stack, workdir: Path,
                                                            drains: list[Drain]) -> None:
    config = write_config(workdir, gateway={"max_subscriptions": 3, "message_rate": 20.0,
                                            "message_burst": 10, "max_message_bytes": 1024})
    _, gateway = start_pair(stack, config)
    bystander = stack.client(gateway.ws_url)
    subscribe(bystander, "ticks.*")
    watch = Drain(bystander)
    drains.append(watch)

    c = stack.client(gateway.ws_url)
    c.recv()
    expect_error(c, "this is not json", 4000)
    expect_error(c, "[1, 2]", 4001)
    expect_error(c, {"id": 1}, 4001)
    assert expect_error(c, {"op": "zap", "id": 7}, 4002)["id"] == 7
    expect_error(c, {"op": "subscribe", "id": 8, "channels": ["nope.AAPL"]}, 4003)
    expect_error(c, {"op": "subscribe", "id": 9, "channels": ["ticks.NOSUCH"]}, 4003)
    expect_error(c, {"op": "subscribe", "id": 10, "channels": "ticks.AAPL"}, 4001)
    expect_error(c, {"op": "subscribe", "id": 11, "channels": [
        "ticks.AAPL", "ticks.TSLA", "latest.AAPL", "status"]}, 4004)
    expect_error(c, b"\x00\x01binary", 4006)
    subscribe(c, "status")  # still usable after all that

    big = stack.client(gateway.ws_url)
    big.send("x" * 2000)
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            big.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009

    flood = stack.client(gateway.ws_url)
    flood.recv()
    for i in range(200):
        try:
            flood.send({"op": "ping", "id": i})
        except ConnectionClosed:
            break
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            flood.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert any(m.get("code") == 4005 for m in flood.received)

    raw = raw_ws_connect(gateway.port, rcvbuf=65536)
    raw.sendall(masked_frame(b"\xff\xfe not utf-8"))
    data = b""
    while chunk := raw.recv(65536):
        data += chunk
    raw.close()
    assert b"\x88" in data  # a close frame came back (1007)

    wait_until(lambda: gateway.sample("clients_closed_total", 'reason="flood"') == 1,
               what="the flood close to be counted")
    assert gateway.sample("clients_closed_total", 'reason="too_big"') == 1
    assert gateway.sample("clients_closed_total", 'reason="protocol"') == 1
    for code in ("bad_json", "unknown_op", "unknown_channel", "too_many_subscriptions",
                 "unsupported_data", "rate_limited"):
        assert gateway.sample("request_errors_total", f'code="{code}"') >= 1, code
    assert gateway.sample("request_errors_total", 'code="bad_request"') >= 3
    # the gateway is fine and the bystander never missed a record
    before = watch.coverage.delivered
    wait_until(lambda: watch.coverage.delivered > before + 20, what="bystander data")
    assert watch.coverage.breaks == [] and watch.coverage.gaps == []
    assert gateway.alive()
    assert "Traceback" not in gateway.log


def test_access_origin_token_and_connection_limit(stack: Stack, workdir: Path) -> None:
    token = "s3cret-token-0123456789abcdef"
    (workdir / "token").write_text(token + "\n")
    config = write_config(workdir, gateway={
        "token_file": "token", "allowed_origins": ["http://allowed.example:8080"],
        "max_connections": 2})
    _, gateway = start_pair(stack, config)
    url = gateway.ws_url

    def status_of(**kwargs: Any) -> int:
        with pytest.raises(InvalidStatus) as refused:
            stack.client(url, **kwargs)
        return int(refused.value.response.status_code)

    assert status_of() == 401
    assert status_of(additional_headers={"Authorization": "Bearer wrong-token-000000000"}) == 401
    ok = stack.client(url, additional_headers={"Authorization": f"Bearer {token}"},
                      origin="http://allowed.example:8080")
    assert ok.recv()["type"] == "welcome"
    assert status_of(additional_headers={"Authorization": f"Bearer {token}"},
                     origin="http://evil.example") == 403
    same = stack.client(f"{url}?token={token}", origin=f"http://127.0.0.1:{gateway.port}")
    assert same.recv()["type"] == "welcome"
    assert status_of(additional_headers={"Authorization": f"Bearer {token}"}) == 503
    # the page itself is static (no data without the token) and always served
    code, body = http_get(gateway.url)
    assert code == 200 and b"<title>tradingd live</title>" in body
    code, body = http_get(gateway.url + "app.js")
    assert code == 200 and b"new WebSocket" in body
    assert http_get(gateway.url + "nope")[0] == 404
    assert json.loads(http_get(gateway.url + "healthz")[1])["producer"] == "up"
    for reason, n in (("auth", 2), ("origin", 1), ("limit", 1), ("not_found", 1)):
        assert gateway.sample("connections_rejected_total", f'reason="{reason}"') == n, reason
    assert gateway.sample("connections") == 2


def test_bad_token_file_exits_78_naming_the_key(stack: Stack, workdir: Path) -> None:
    (workdir / "short").write_text("abc\n")
    g = stack.gateway(write_config(workdir, gateway={"token_file": "short"}))
    assert g.wait_exit() == C.EXIT_CONFIG
    assert "gateway.token_file" in g.log and "at least 16 characters" in g.log
    assert "Traceback" not in g.log
    g2 = stack.gateway(write_config(workdir, gateway={"token_file": "missing"}, name="b.yaml"))
    assert g2.wait_exit() == C.EXIT_CONFIG and "missing" in g2.log


def test_stalled_client_is_conflated_then_closed_memory_bounded(
        stack: Stack, workdir: Path, drains: list[Drain]) -> None:
    """A client that stops reading while another reads: bounded memory, conflation, 1013."""
    config = write_config(workdir, replay={"speed": 5.0e8},  # some 5k records/s
                          gateway={"send_buffer_limit": 262144, "slow_client_timeout": 2.0})
    _, gateway = start_pair(stack, config)
    reader = stack.client(gateway.ws_url)
    subscribe(reader, "ticks.*")
    watch = Drain(reader)
    drains.append(watch)
    wait_until(lambda: watch.coverage.delivered > 1000, what="the reading client's data")
    baseline = gateway.rss()

    stalled = raw_ws_connect(gateway.port, rcvbuf=4096)
    stalled.sendall(masked_frame(json.dumps({"op": "subscribe", "id": 1,
                                             "channels": ["ticks.*", "latest.*"]}).encode()))
    peak = baseline
    deadline = time.monotonic() + 45
    while gateway.sample("clients_closed_total", 'reason="slow_client"') < 1:
        assert time.monotonic() < deadline, "the stalled client was never closed"
        peak = max(peak, gateway.rss())
        time.sleep(0.2)
    stalled.close()
    dropped = gateway.sample("updates_dropped_total")
    print(f"\ngateway RSS {baseline / 2**20:.1f} MiB -> peak {peak / 2**20:.1f} MiB; "
          f"{dropped:.0f} updates dropped, {gateway.sample('updates_conflated_total'):.0f} "
          f"conflated for the stalled client")
    assert gateway.sample("slow_client_episodes_total") >= 1
    assert dropped > 1000
    assert gateway.sample("updates_conflated_total") >= 1
    assert peak - baseline < 40 * 2**20
    before = watch.coverage.delivered
    wait_until(lambda: watch.coverage.delivered > before + 1000, what="more data after")
    # the reading client got everything, in order, throughout
    assert watch.coverage.breaks == []
    assert watch.coverage.gaps == [], [(g["reason"], g["count"]) for g in watch.coverage.gaps]
    assert "slow client" in gateway.log
    assert gateway.alive()


def test_lifecycle_notify_metrics_lint_and_sigterm(stack: Stack, workdir: Path) -> None:
    producer, gateway = start_pair(stack, write_config(workdir))
    status = gateway.wait_for_notify("STATUS", match=lambda s: "producer up" in s)
    assert status["STATUS"].startswith("serving ")
    client = stack.client(gateway.ws_url)
    subscribe(client, "ticks.AAPL", "latest.TSLA", "status")
    client.wait_for(lambda m: m["type"] == "ticks")
    text = gateway.metrics()
    for name in ("connections 1.0", 'subscriptions{kind="ticks"} 1.0',
                 'subscriptions{kind="latest"} 1.0', 'subscriptions{kind="status"} 1.0',
                 'messages_sent_total{type="ticks"}', "sent_bytes_total",
                 "send_latency_seconds_bucket", 'clients_closed_total{reason="slow_client"} 0.0',
                 "updates_conflated_total", "updates_dropped_total"):
        assert f"tradingd_gateway_{name}" in text, name
    assert gateway.sample("send_latency_seconds_count") >= 1
    promtool_lint(text)
    # WebSocket-level ping, answered with a pong. The client keeps reading meanwhile: ticks
    # keep coming, and a client that stops reading stops reading the pong too (its queue
    # fills and the connection applies backpressure), which a loaded machine makes likely.
    pong = client.conn.ping()
    deadline = time.monotonic() + TIMEOUT
    while not pong.is_set() and time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            client.recv(timeout=0.05)
    assert pong.is_set(), f"no pong within {TIMEOUT} s"
    # heartbeats when idle: a client with no data channels gets one a second, counted
    idle = stack.client(gateway.ws_url)
    beats = [idle.wait_for(lambda m: m["type"] == "heartbeat")["n"] for _ in range(2)]
    assert beats == [1, 2]
    gateway.proc.send_signal(signal.SIGTERM)
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            client.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert gateway.wait_exit() == 0
    assert any(m.get("STOPPING") == "1" for m in gateway.notify.drain())
    assert "Traceback" not in gateway.log
    assert producer.alive()
