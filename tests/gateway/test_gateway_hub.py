"""The hub and the protocol in-process: parsing, shared frames, conflation, slow clients, flood.

The daemon tests (test_gateway_e2e.py) run all of this for real; these pin down the exact
rules with a controlled clock and peers whose send queue the test sets.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from tradingd.gateway.hub import Hub, Limits
from tradingd.gateway.protocol import ErrorCode, RequestError, parse_request
from tradingd.segment import layout as L


class Clock:
    def __init__(self) -> None:
        self.ns = 1_000_000_000

    def __call__(self) -> int:
        return self.ns

    def advance(self, seconds: float) -> None:
        self.ns += int(seconds * 1e9)


class FakePeer:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.queued = 0
        self.closed: tuple[int, str, bool] | None = None

    def send(self, data: bytes) -> None:
        self.frames.append(data)

    def buffered(self) -> int:
        return self.queued

    def close(self, code: int, reason: str, *, abort: bool = False) -> None:
        self.closed = (code, reason, abort)

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(f) for f in self.frames]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages() if m["type"] == kind]


class FakeView:
    def __init__(self) -> None:
        self.slots: dict[int, tuple[int, float, float, int, int, int]] = {}

    def latest(self, sid: int) -> tuple[int, float, float, int, int, int] | None:
        return self.slots.get(sid)

    def history(self, to: int, per_symbol: int) -> dict[int, list[tuple[Any, ...]]]:
        return {}


def batch(first: int, sids: list[int], publish_ns: int) -> np.ndarray:
    recs = np.zeros(len(sids), L.RECORD_DTYPE)
    recs["symbol_id"] = sids
    recs["close"] = np.arange(len(sids)) + 100.0
    recs["publish_ns"] = publish_ns
    recs["seq_lo"] = np.arange(first, first + len(sids))
    return recs


def make_hub(**limits: Any) -> tuple[Hub, Clock, FakeView]:
    clock = Clock()
    hub = Hub(Limits(**limits), clock_ns=clock)
    view = FakeView()
    hub.attach(view, 0xABC, ["AAPL", "TSLA"], 0)
    return hub, clock, view


def subscribe(hub: Hub, peer: FakePeer, *channels: str) -> Any:
    client = hub.add(peer, "test")
    hub.on_text(client, json.dumps({"op": "subscribe", "id": 1, "channels": list(channels)}))
    return client


@pytest.mark.parametrize(("text", "code"), [
    ("nope", ErrorCode.BAD_JSON), ("[[[" * 10, ErrorCode.BAD_JSON),
    ("[]", ErrorCode.BAD_REQUEST), ('{"op": 3}', ErrorCode.BAD_REQUEST),
    ('{"op": "ping", "id": true}', ErrorCode.BAD_REQUEST),
    ('{"op": "ping", "id": {"a": 1}}', ErrorCode.BAD_REQUEST),
    ('{"op": "dance"}', ErrorCode.UNKNOWN_OP),
    ('{"op": "subscribe"}', ErrorCode.BAD_REQUEST),
    ('{"op": "subscribe", "channels": []}', ErrorCode.BAD_REQUEST),
    ('{"op": "subscribe", "channels": [1]}', ErrorCode.BAD_REQUEST),
    ('{"op": "subscribe", "channels": ["ticks"]}', ErrorCode.UNKNOWN_CHANNEL),
    ('{"op": "subscribe", "channels": ["trades.AAPL"]}', ErrorCode.UNKNOWN_CHANNEL),
    ('{"op": "subscribe", "channels": ["ticks.has space"]}', ErrorCode.UNKNOWN_CHANNEL),
    ("[" * 100000, ErrorCode.BAD_JSON),
])
def test_bad_requests_get_their_code(text: str, code: ErrorCode) -> None:
    with pytest.raises(RequestError) as err:
        parse_request(text)
    assert err.value.code == code


def test_good_requests() -> None:
    r = parse_request('{"op":"subscribe","id":"a","channels":["ticks.*","status","ticks.*"]}')
    assert r.op == "subscribe" and r.id == "a"
    assert [c.name for c in r.channels] == ["ticks.*", "status"]  # duplicates folded
    assert parse_request('{"op":"list"}').id is None


def test_clients_with_the_same_subscriptions_share_one_frame() -> None:
    hub, clock, _ = make_hub()
    peers = [FakePeer() for _ in range(3)]
    for p in peers[:2]:
        subscribe(hub, p, "ticks.*")
    subscribe(hub, peers[2], "ticks.TSLA")
    clock.advance(0.001)
    hub.on_records(batch(0, [0, 1, 0], clock.ns - 500_000), 0)
    a, b, c = (p.frames[-1] for p in peers)
    assert a is b  # encoded once
    msg = json.loads(a)
    assert (msg["from"], msg["to"], msg["n"]) == (0, 3, 3)
    assert [r[0] for r in msg["data"]["AAPL"]] == [0, 2]
    assert json.loads(c)["data"] == {"TSLA": [[1, 0, 0.0, 0.0, 0.0, 101.0, 0.0,
                                              clock.ns - 500_000]]}
    # the send latency (publish -> frame written), once per frame written: 0.5 ms
    assert hub.latency.total == 3 and hub.latency.percentiles_ns()[1] == pytest.approx(5e5)


def test_slow_client_is_conflated_gets_an_exact_gap_then_is_closed() -> None:
    hub, clock, view = make_hub(send_buffer_limit=1000, slow_client_timeout=2.0,
                                latest_max_rate=10.0)
    slow, fast = FakePeer(), FakePeer()
    subscribe(hub, slow, "ticks.AAPL")
    subscribe(hub, fast, "ticks.AAPL")
    slow.queued = 5000  # the client stopped reading
    view.slots[0] = (4, 104.0, 1.0, 0, clock.ns, 1)
    hub.on_records(batch(0, [0, 1, 0, 1, 0], clock.ns), 0)
    assert hub.counters.congestions == 1 and not slow.of("ticks")
    assert fast.of("ticks")[-1]["n"] == 3
    slow.queued = 1500  # under twice the limit: conflated latest values are sent
    clock.advance(0.2)
    hub.tick()
    latest = slow.of("latest")
    assert latest and latest[-1]["price"] == 104.0 and hub.counters.updates_conflated == 1
    assert not fast.of("latest")  # not subscribed to latest: only the congested one gets it
    hub.on_records(batch(5, [0, 0], clock.ns), 5)
    slow.queued = 400  # drained below half the limit
    clock.advance(0.1)
    hub.tick()
    gap = slow.of("gap")[-1]
    assert (gap["from"], gap["to"], gap["count"], gap["reason"]) == (0, 7, 5, "slow_client")
    hub.on_records(batch(7, [0], clock.ns), 7)
    assert slow.of("ticks")[-1]["from"] == 7
    # over the limit again, and for longer than slow_client_timeout: closed 1013, aborted
    slow.queued = 5000
    hub.on_records(batch(8, [0], clock.ns), 8)
    clock.advance(2.5)
    hub.tick()
    assert slow.closed is not None and slow.closed[0] == 1013 and slow.closed[2] is True
    assert "slow client" in slow.closed[1]
    assert fast.closed is None and not fast.of("gap")


def test_flood_is_rate_limited_then_closed_1008() -> None:
    hub, _clock, _ = make_hub(message_rate=10.0, message_burst=5)
    peer = FakePeer()
    client = hub.add(peer, "test")
    for i in range(12):
        hub.on_text(client, json.dumps({"op": "ping", "id": i}))
    assert len(peer.of("pong")) == 5
    assert [m["code"] for m in peer.of("error")] == [ErrorCode.RATE_LIMITED]
    assert peer.closed is not None and peer.closed[0] == 1008
    assert hub.counters.errors["rate_limited"] == 6  # the 12th came after the close: ignored


def test_rate_limit_refills() -> None:
    hub, clock, _ = make_hub(message_rate=10.0, message_burst=2)
    peer = FakePeer()
    client = hub.add(peer, "test")
    for _ in range(20):
        hub.on_text(client, '{"op":"ping"}')
        clock.advance(0.1)
    assert len(peer.of("pong")) == 20 and peer.closed is None


def test_subscription_limit_and_unknown_symbol() -> None:
    hub, _, _ = make_hub(max_subscriptions=2)
    peer = FakePeer()
    client = subscribe(hub, peer, "ticks.AAPL", "status")
    hub.on_text(client, '{"op":"subscribe","id":5,"channels":["latest.AAPL"]}')
    hub.on_text(client, '{"op":"subscribe","id":6,"channels":["latest.MSFT"]}')
    errors = peer.of("error")
    assert [(e["code"], e["id"]) for e in errors] == [
        (ErrorCode.TOO_MANY_SUBSCRIPTIONS, 5), (ErrorCode.UNKNOWN_CHANNEL, 6)]
    assert "AAPL, TSLA" in errors[1]["message"]
    assert hub.subscriptions() == {"ticks": 1, "latest": 0, "status": 1}


def test_heartbeats_only_when_idle_with_a_counter() -> None:
    hub, clock, _ = make_hub(heartbeat_interval=1.0)
    peer = FakePeer()
    hub.add(peer, "test")
    for _ in range(35):
        clock.advance(0.1)
        hub.tick()
    assert [m["n"] for m in peer.of("heartbeat")] == [1, 2, 3]


def test_lapping_tells_every_ticks_client() -> None:
    hub, clock, _ = make_hub()
    peer = FakePeer()
    subscribe(hub, peer, "ticks.TSLA")
    hub.on_records(batch(0, [0, 0], clock.ns), 0)
    hub.on_records(batch(10, [1], clock.ns), 10)  # 2..9 were overwritten before we read them
    gap, ticks = peer.of("gap")[-1], peer.of("ticks")[-1]
    assert (gap["from"], gap["to"], gap["count"], gap["reason"]) == (0, 10, 8, "lapped")
    assert (ticks["from"], ticks["to"]) == (10, 11)
    assert hub.counters.records_lapped == 8


def test_generation_change_resnapshots() -> None:
    hub, _clock, view = make_hub()
    peer = FakePeer()
    subscribe(hub, peer, "ticks.AAPL", "latest.TSLA")
    view.slots = {0: (3, 9.5, 1.0, 0, 0, 1), 1: (4, 7.5, 1.0, 0, 0, 1)}
    hub.attach(view, 0xDEF, ["AAPL", "TSLA", "EURUSD"], 100)
    snaps = [m for m in peer.of("snapshot") if m["gen"] == f"{0xDEF:016x}"]
    assert {m["channel"] for m in snaps} == {"ticks.AAPL", "latest.TSLA"}
    ticks = next(m for m in snaps if m["channel"] == "ticks.AAPL")
    assert ticks["to"] == 100 and ticks["latest"]["price"] == 9.5
