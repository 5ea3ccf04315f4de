"""The fan-out engine: clients, subscriptions, batching, conflation and slow-client handling.

:class:`Hub` knows nothing of sockets or of the WebSocket library: a client is a
:class:`Peer` (send bytes without waiting, report the bytes still queued, close). The daemon
feeds it ring batches (:meth:`Hub.on_records`), client text (:meth:`Hub.on_text`) and the
clock (:meth:`Hub.tick`), all from one asyncio thread, so nothing here locks and nothing
here ever waits: a send only queues bytes in the peer's transport.

Why the reader never waits for a client: each batch is encoded once per symbol (JSON
fragments) and once per distinct (subscription set, coverage start) -- ten clients on
``ticks.*`` share one frame's bytes -- then handed to each peer's non-blocking send. A peer
whose queue is above ``send_buffer_limit`` gets no more ``ticks`` frames: it is *congested*;
the records it misses are counted, it receives only the conflated ``latest`` values of its
symbols (while its queue stays under twice the limit), and when its queue drains below half
the limit it gets one ``gap`` message with the exact count, then ticks again. Congested for
longer than ``slow_client_timeout``: closed with 1013. A peer's memory is therefore bounded
by about twice the limit plus one frame.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from tradingd import __version__
from tradingd.consumer.latency import LatencyHistogram
from tradingd.gateway.protocol import (
    CLOSE_REASONS,
    PROTOCOL_VERSION,
    WILDCARD,
    Channel,
    CloseCode,
    ErrorCode,
    Request,
    RequestError,
    dumps,
    error_message,
    gen_hex,
    latest_object,
    parse_request,
)
from tradingd.segment.model import Record

log = logging.getLogger(__name__)

_enc = json.JSONEncoder(separators=(",", ":")).encode
#: How often heartbeats and slow clients are checked (ns): cheap enough for 1,000s of clients.
_SCAN_NS = 50_000_000
#: A latest message is not sent to a congested client whose queue exceeds this many limits.
_HARD_FACTOR = 2
Slot = tuple[int, float, float, int, int, int]


class Peer(Protocol):
    """One client connection as the hub sees it (implemented over picows in server.py)."""

    def send(self, data: bytes) -> None:
        """Queue one text frame; never blocks."""

    def buffered(self) -> int:
        """Bytes queued in user space, not yet handed to the kernel."""

    def close(self, code: int, reason: str, *, abort: bool = False) -> None:
        """Send a close frame; ``abort``: drop the connection without draining the queue."""


class SegmentView(Protocol):
    """What the hub reads from the attached segment besides the ring batches."""

    def latest(self, symbol_id: int) -> Slot | None:
        """The latest-value slot, consistent (seqlock)."""

    def history(self, to: int, per_symbol: int) -> dict[int, list[tuple[Any, ...]]]:
        """The last ``per_symbol`` rows (RECORD_FIELDS order) of each symbol before ``to``."""


@dataclass(frozen=True)
class Limits:
    """The gateway.* settings the hub enforces."""

    latest_max_rate: float = 10.0
    snapshot_records: int = 100
    heartbeat_interval: float = 1.0
    send_buffer_limit: int = 1 << 20
    slow_client_timeout: float = 5.0
    max_subscriptions: int = 256
    message_rate: float = 50.0
    message_burst: int = 100


#: Types of the messages the gateway sends (metric label ``type``).
MESSAGE_TYPES = ("welcome", "ack", "snapshot", "ticks", "latest", "gap", "status",
                 "heartbeat", "pong", "error")


@dataclass
class Counters:
    """Totals since start (exported as metrics; every label present from the start)."""

    accepted: int = 0
    messages_sent: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MESSAGE_TYPES,
                                                                                 0))
    bytes_sent: int = 0
    records_sent: int = 0
    updates_conflated: int = 0  # latest values sent instead of ticks to congested clients
    updates_dropped: int = 0  # records (and latest values) a congested client missed
    records_lapped: int = 0  # records the gateway itself lost to lapping
    closes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLOSE_REASONS, 0))
    errors: dict[str, int] = field(default_factory=lambda: {c.name.lower(): 0
                                                            for c in ErrorCode})
    congestions: int = 0


def rows_of(records: np.ndarray, seqs: np.ndarray) -> list[tuple[Any, ...]]:
    """``RECORD_DTYPE`` records as JSON-ready rows in RECORD_FIELDS order."""
    return list(zip(seqs.tolist(), (records["event_ns"] // 1_000_000).tolist(),
                    records["open"].tolist(), records["high"].tolist(),
                    records["low"].tolist(), records["close"].tolist(),
                    records["volume"].tolist(), records["publish_ns"].tolist(), strict=True))


@dataclass(eq=False)
class Client:
    """One connection's state."""

    cid: int
    peer: Peer
    remote: str
    connected_ns: int
    subs: set[Channel] = field(default_factory=set)
    tick_sids: frozenset[int] = frozenset()
    latest_sids: frozenset[int] = frozenset()
    last_to: int = 0  # coverage: the "to" of the last ticks/gap/snapshot message
    congested_since: int | None = None
    dropped: int = 0  # records missed while congested (for the gap message)
    last_send_ns: int = 0
    heartbeat_n: int = 0
    tokens: float = 0.0
    tokens_ns: int = 0
    flood_drops: int = 0
    last_rate_error_ns: int = 0
    close_reason: str | None = None

    @property
    def status(self) -> bool:
        return any(c.kind == "status" for c in self.subs)


class Hub:
    """Every client's subscriptions and the data path from ring batches to frames."""

    def __init__(self, limits: Limits, *, clock_ns: Callable[[], int] = time.monotonic_ns
                 ) -> None:
        self.limits = limits
        self._clock = clock_ns
        self.clients: dict[int, Client] = {}
        self._next_cid = 1
        self.counters = Counters()
        self.latency = LatencyHistogram()
        self.view: SegmentView | None = None
        self.generation = 0
        self.symbols: list[str] = []
        self._sid: dict[str, int] = {}
        self._names_json: list[str] = []
        self.known_symbols: set[str] = set()  # of every generation seen (validation)
        self.pos = 0  # next ring sequence number the hub will see
        self.status: dict[str, Any] = {"producer": "down", "attached": False, "gen": None,
                                       "state": "none", "data": "stale"}
        self._latest_interval_ns = int(1e9 / limits.latest_max_rate)
        self._latest_sent: dict[int, int] = {}
        self._latest_dirty: set[int] = set()
        self._next_scan = 0
        self._congested: set[Client] = set()

    # ------------------------------------------------------------------ connections
    def add(self, peer: Peer, remote: str) -> Client:
        """A new connection: registered, and greeted with ``welcome``."""
        now = self._clock()
        client = Client(self._next_cid, peer, remote, now, tokens=float(self.limits.message_burst),
                        tokens_ns=now, last_send_ns=now)
        self._next_cid += 1
        self.clients[client.cid] = client
        self.counters.accepted += 1
        self._send(client, "welcome", dumps({
            "type": "welcome", "server": f"tradingd-gateway {__version__}",
            "protocol": PROTOCOL_VERSION, "heartbeat_interval": self.limits.heartbeat_interval,
            "latest_max_rate": self.limits.latest_max_rate, "symbols": self.symbols,
            "status": self.status}), now)
        return client

    def remove(self, client: Client, reason: str) -> None:
        """The connection is gone; count why (the hub's own reason wins)."""
        if self.clients.pop(client.cid, None) is None:
            return
        self._congested.discard(client)
        why = client.close_reason or reason
        self.counters.closes[why] = self.counters.closes.get(why, 0) + 1

    def close(self, client: Client, code: CloseCode, reason: str, why: str, *,
              abort: bool = False) -> None:
        """Close a client for ``why`` (a CLOSE_REASONS label), with a close frame."""
        if client.close_reason is None:
            client.close_reason = why
            log.info("closing client %d (%s): %d %s", client.cid, client.remote, code, reason)
            client.peer.close(int(code), reason, abort=abort)

    def close_all(self, code: CloseCode, reason: str, why: str) -> None:
        for client in list(self.clients.values()):
            self.close(client, code, reason, why)

    # ------------------------------------------------------------------ client input
    def on_text(self, client: Client, text: str) -> None:
        """One text frame from a client: rate-limited, parsed, answered."""
        if client.close_reason is not None:  # closing: nothing more is answered
            return
        now = self._clock()
        if not self._admit(client, now):
            return
        try:
            request = parse_request(text)
            self._handle(client, request, now)
        except RequestError as exc:
            self.reject(client, exc.code, exc.message, exc.request_id)

    def reject(self, client: Client, code: ErrorCode, message: str,
               request_id: Any = None) -> None:
        """Answer with an error message and count it."""
        name = code.name.lower()
        self.counters.errors[name] = self.counters.errors.get(name, 0) + 1
        self._send(client, "error", error_message(code, message, request_id), self._clock())

    def _admit(self, client: Client, now: int) -> bool:
        """Token bucket: ``message_rate`` per second, ``message_burst`` deep."""
        lim = self.limits
        client.tokens = min(float(lim.message_burst),
                            client.tokens + (now - client.tokens_ns) * lim.message_rate / 1e9)
        client.tokens_ns = now
        if client.tokens >= 1.0:
            client.tokens -= 1.0
            client.flood_drops = 0
            return True
        client.flood_drops += 1
        self.counters.errors["rate_limited"] = self.counters.errors.get("rate_limited", 0) + 1
        if client.flood_drops > lim.message_burst:
            self.close(client, CloseCode.POLICY_VIOLATION,
                       f"flood: more than {lim.message_rate:g} messages/s", "flood")
        elif now - client.last_rate_error_ns >= 1_000_000_000:
            client.last_rate_error_ns = now
            self._send(client, "error", error_message(
                ErrorCode.RATE_LIMITED, f"over {lim.message_rate:g} messages/s (burst "
                f"{lim.message_burst}): messages dropped; keep on and the connection is "
                f"closed (1008)"), now)
        return False

    def _handle(self, client: Client, req: Request, now: int) -> None:
        if req.op == "ping":
            self._send(client, "pong", dumps({"type": "pong", "id": req.id,
                                               "ts": time.time()}), now)
        elif req.op == "list":
            self._send(client, "ack", dumps({
                "type": "ack", "op": "list", "id": req.id,
                "channels": sorted(c.name for c in client.subs), "symbols": self.symbols,
                "gen": gen_hex(self.generation)}), now)
        elif req.op == "subscribe":
            self._subscribe(client, req, now)
        else:
            removed = [c for c in req.channels if c in client.subs]
            client.subs.difference_update(req.channels)
            self._resolve(client)
            self._send(client, "ack", dumps({"type": "ack", "op": "unsubscribe", "id": req.id,
                                              "channels": [c.name for c in removed]}), now)

    def _subscribe(self, client: Client, req: Request, now: int) -> None:
        for ch in req.channels:
            if (ch.kind != "status" and ch.symbol != WILDCARD and self.known_symbols
                    and ch.symbol not in self._sid and ch.symbol not in self.known_symbols):
                raise RequestError(ErrorCode.UNKNOWN_CHANNEL,
                                   f"unknown channel {ch.name!r}: symbols are "
                                   f"{', '.join(self.symbols) or '(none yet)'}", req.id)
        new = [c for c in req.channels if c not in client.subs]
        if len(client.subs) + len(new) > self.limits.max_subscriptions:
            raise RequestError(ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                               f"{len(client.subs)} subscribed + {len(new)} new > "
                               f"gateway.max_subscriptions = {self.limits.max_subscriptions}",
                               req.id)
        had_ticks = bool(client.tick_sids)
        client.subs.update(new)
        self._resolve(client)
        self._send(client, "ack", dumps({"type": "ack", "op": "subscribe", "id": req.id,
                                          "channels": [c.name for c in req.channels]}), now)
        self._snapshots(client, new, now, reset_coverage=not had_ticks)

    def _resolve(self, client: Client) -> None:
        """Channel names -> symbol ids of the current generation."""
        ticks: set[int] = set()
        latest: set[int] = set()
        for ch in client.subs:
            target = ticks if ch.kind == "ticks" else latest if ch.kind == "latest" else None
            if target is None:
                continue
            if ch.symbol == WILDCARD:
                target.update(range(len(self.symbols)))
            elif ch.symbol in self._sid:
                target.add(self._sid[ch.symbol])
        client.tick_sids, client.latest_sids = frozenset(ticks), frozenset(latest)

    # ------------------------------------------------------------------ snapshots
    def _snapshots(self, client: Client, channels: Iterable[Channel], now: int, *,
                   reset_coverage: bool) -> None:
        chans = list(channels)
        if any(c.kind == "status" for c in chans):
            self._send(client, "status", dumps({"type": "status", "snapshot": True,
                                                 **self.status}), now)
        view = self.view
        if view is None:
            return
        tick_sids = self._expand(c for c in chans if c.kind == "ticks")
        latest_sids = self._expand(c for c in chans if c.kind == "latest")
        gen = gen_hex(self.generation)
        history = (view.history(self.pos, self.limits.snapshot_records)
                   if tick_sids and self.limits.snapshot_records else {})
        for sid in tick_sids:
            rows = history.get(sid, [])
            slot = latest_object(view.latest(sid))
            if slot is not None and slot["seq"] >= self.pos and rows:
                # the slot moved past "to" since: the latest value as of "to" is the last row
                r = rows[-1]
                slot = {"seq": r[0], "price": r[5], "volume": r[6], "t_ms": r[1],
                        "publish_ns": r[7]}
            latest = _enc(slot)
            records = _enc(rows)
            self._send(client, "snapshot", (
                f'{{"type":"snapshot","channel":{_enc("ticks." + self.symbols[sid])},"gen":"{gen}",'
                f'"to":{self.pos},"latest":{latest},"records":{records}}}').encode(), now)
        for sid in latest_sids:
            self._send(client, "snapshot", dumps({
                "type": "snapshot", "channel": f"latest.{self.symbols[sid]}", "gen": gen,
                "latest": latest_object(view.latest(sid))}), now)
        if tick_sids and (reset_coverage or client.congested_since is None):
            client.last_to = self.pos

    def _expand(self, channels: Iterable[Channel]) -> list[int]:
        sids: set[int] = set()
        for ch in channels:
            if ch.symbol == WILDCARD:
                sids.update(range(len(self.symbols)))
            elif ch.symbol in self._sid:
                sids.add(self._sid[ch.symbol])
        return sorted(sids)

    # ------------------------------------------------------------------ the segment
    def attach(self, view: SegmentView, generation: int, symbols: list[str], pos: int) -> None:
        """Attached to a (new) segment at ring position ``pos``: resync every client.

        Each client's channels are re-resolved against the new symbol table and get fresh
        snapshots of the new generation (coverage restarts at ``pos``).
        """
        self.view, self.generation, self.pos = view, generation, pos
        self.symbols = list(symbols)
        self._sid = {name: i for i, name in enumerate(self.symbols)}
        self._names_json = [_enc(name) for name in self.symbols]
        self.known_symbols.update(self.symbols)
        self._latest_sent.clear()
        self._latest_dirty.clear()
        now = self._clock()
        for client in list(self.clients.values()):
            self._resolve(client)
            self._congested.discard(client)
            client.congested_since, client.dropped = None, 0
            self._snapshots(client, [c for c in client.subs if c.kind != "status"], now,
                            reset_coverage=True)

    def detach(self) -> None:
        """No segment any more (the producer went away): nothing to read until attach."""
        self.view = None

    def set_status(self, status: dict[str, Any], event: str | None = None) -> None:
        """New producer/segment state: sent to ``status`` subscribers when it changed."""
        if status == self.status and event is None:
            return
        self.status = status
        msg = {"type": "status", **status}
        if event is not None:
            msg["event"] = event
        data = dumps(msg)
        now = self._clock()
        for client in list(self.clients.values()):
            if client.status:
                self._send(client, "status", data, now)

    def on_records(self, batch: np.ndarray | list[Record], first: int) -> None:
        """A batch read from the ring (records ``first`` .. ``first+len-1``, maybe lapped).

        A ``RECORD_DTYPE`` array (poll_batch) or a list of Record-order tuples (poll_one).
        """
        now = self._clock()
        n = len(batch)
        if isinstance(batch, list):
            frags, end = self._fragments_list(batch)
            first = batch[0][0] if batch else first
        else:
            frags = self._fragments_array(batch, first)
            end = first + n
        if first > self.pos:  # the producer lapped the gateway: tell every ticks client
            self._lapped(self.pos, first, now)
        self.pos = max(self.pos, end)
        if not frags:
            return
        self._latest_dirty.update(frags)
        cache: dict[tuple[frozenset[int], int], tuple[bytes, int, int]] = {}
        latencies: list[int] = []
        records = nbytes = 0
        pos, limit = self.pos, self.limits.send_buffer_limit
        gen = gen_hex(self.generation)
        for client in list(self.clients.values()):
            sids = client.tick_sids
            if not sids:
                continue
            key = (sids, client.last_to)
            hit = cache.get(key)
            if hit is None:
                parts = [(sid, frags[sid]) for sid in sids if sid in frags]
                if not parts:
                    continue
                count = sum(p[1][1] for p in parts)
                oldest = min(p[1][2] for p in parts)
                body = ",".join(f"{self._names_json[sid]}:{f[0]}" for sid, f in parts)
                frame = (f'{{"type":"ticks","gen":"{gen}","from":{client.last_to},'
                         f'"to":{self.pos},"n":{count},"data":{{{body}}}}}').encode()
                hit = cache[key] = (frame, count, oldest)
            frame, count, oldest = hit
            if client.congested_since is not None:
                client.dropped += count
                self.counters.updates_dropped += count
                continue
            peer = client.peer
            if peer.buffered() + len(frame) > limit:
                self._congest(client, now)
                client.dropped += count
                self.counters.updates_dropped += count
                continue
            if client.close_reason is not None:
                continue
            peer.send(frame)  # _send inlined: this loop runs per client per batch
            client.last_send_ns = now
            client.last_to = pos
            records += count
            nbytes += len(frame)
            latencies.append(now - oldest)
        c = self.counters
        c.records_sent += records
        c.messages_sent["ticks"] += len(latencies)
        c.bytes_sent += nbytes
        if len(latencies) > 8:  # one histogram update per batch, not one per client
            self.latency.observe_ns(np.asarray(latencies, np.int64))
        elif latencies:
            self.latency.observe_list_ns(latencies)

    def _fragments_array(self, batch: np.ndarray, first: int
                         ) -> dict[int, tuple[str, int, int]]:
        """Per symbol with ticks subscribers: (JSON rows, count, oldest publish_ns)."""
        wanted = self._tick_wanted()
        sids = batch["symbol_id"]
        present = np.unique(sids)
        out: dict[int, tuple[str, int, int]] = {}
        self._latest_dirty.update(int(s) for s in present)
        for s in present.tolist():
            if s not in wanted or s >= len(self.symbols):
                continue
            idx = np.flatnonzero(sids == s)
            sub = batch[idx]
            rows = rows_of(sub, idx + first)
            out[s] = (_enc(rows), len(rows), int(sub["publish_ns"].min()))
        return out

    def _fragments_list(self, batch: list[Record]
                        ) -> tuple[dict[int, tuple[str, int, int]], int]:
        wanted = self._tick_wanted()
        rows: dict[int, list[tuple[Any, ...]]] = {}
        end = self.pos
        for r in batch:
            self._latest_dirty.add(r[1])
            end = r[0] + 1
            if r[1] in wanted and r[1] < len(self.symbols):
                rows.setdefault(r[1], []).append(
                    (r[0], r[2] // 1_000_000, r[4], r[5], r[6], r[7], r[8], r[3]))
        return {s: (_enc(v), len(v), min(x[7] for x in v)) for s, v in rows.items()}, end

    def _tick_wanted(self) -> set[int]:
        wanted: set[int] = set()
        for client in self.clients.values():
            wanted |= client.tick_sids
        return wanted

    def _lapped(self, start: int, end: int, now: int) -> None:
        count = end - start
        self.counters.records_lapped += count
        gen = gen_hex(self.generation)
        for client in list(self.clients.values()):
            if not client.tick_sids:
                continue
            if client.congested_since is not None:
                client.dropped += count
                continue
            self._send(client, "gap", dumps({
                "type": "gap", "gen": gen, "from": client.last_to, "to": end, "count": count,
                "reason": "lapped"}), now)
            client.last_to = end

    def _congest(self, client: Client, now: int) -> None:
        client.congested_since = now
        self._congested.add(client)
        self.counters.congestions += 1
        log.info("client %d (%s) is slow: %d bytes queued > gateway.send_buffer_limit %d; "
                 "conflating its updates", client.cid, client.remote, client.peer.buffered(),
                 self.limits.send_buffer_limit)

    # ------------------------------------------------------------------ the clock
    def tick(self) -> None:
        """Housekeeping each loop turn: conflated latest sends, slow clients, heartbeats."""
        now = self._clock()
        if self._latest_dirty:
            self._flush_latest(now)
        if now >= self._next_scan:
            self._next_scan = now + _SCAN_NS
            self._scan(now)

    def _flush_latest(self, now: int) -> None:
        view = self.view
        if view is None:
            self._latest_dirty.clear()
            return
        due = [s for s in self._latest_dirty
               if now - self._latest_sent.get(s, -self._latest_interval_ns)
               >= self._latest_interval_ns]
        if not due:
            return
        gen = gen_hex(self.generation)
        hard = _HARD_FACTOR * self.limits.send_buffer_limit
        for sid in due:
            self._latest_dirty.discard(sid)
            if sid >= len(self.symbols):
                continue
            self._latest_sent[sid] = now
            slot = latest_object(view.latest(sid))
            if slot is None:
                continue
            frame = (f'{{"type":"latest","channel":{_enc("latest." + self.symbols[sid])},'
                     f'"gen":"{gen}",{_enc(slot)[1:]}').encode()
            for client in list(self.clients.values()):
                congested = client.congested_since is not None
                if not (sid in client.latest_sids or (congested and sid in client.tick_sids)):
                    continue
                if congested:
                    if client.peer.buffered() > hard:
                        self.counters.updates_dropped += 1
                        continue
                    if sid in client.tick_sids:  # in place of that symbol's ticks
                        self.counters.updates_conflated += 1
                elif client.peer.buffered() + len(frame) > self.limits.send_buffer_limit:
                    self._congest(client, now)
                    self.counters.updates_dropped += 1
                    continue
                self._send(client, "latest", frame, now)
                self.latency.observe_list_ns([now - slot["publish_ns"]])

    def _scan(self, now: int) -> None:
        lim = self.limits
        timeout = int(lim.slow_client_timeout * 1e9)
        for client in list(self._congested):
            since = client.congested_since
            if since is None:
                self._congested.discard(client)
                continue
            if client.peer.buffered() <= lim.send_buffer_limit // 2:
                self._recover(client, now)
            elif now - since > timeout:
                self._congested.discard(client)
                self.close(client, CloseCode.TRY_AGAIN_LATER,
                           f"slow client: over {lim.send_buffer_limit} bytes queued for "
                           f"{lim.slow_client_timeout:g} s", "slow_client", abort=True)
        hb_ns = int(lim.heartbeat_interval * 1e9)
        for client in list(self.clients.values()):
            if now - client.last_send_ns >= hb_ns and client.close_reason is None:
                client.heartbeat_n += 1
                self._send(client, "heartbeat", b'{"type":"heartbeat","n":%d,"ts":%.3f}'
                           % (client.heartbeat_n, time.time()), now)

    def _recover(self, client: Client, now: int) -> None:
        """A congested client's queue drained: tell it what it missed, then resume ticks."""
        self._congested.discard(client)
        client.congested_since = None
        if client.tick_sids:
            self._send(client, "gap", dumps({
                "type": "gap", "gen": gen_hex(self.generation), "from": client.last_to,
                "to": self.pos, "count": client.dropped, "reason": "slow_client"}), now)
            client.last_to = self.pos
        client.dropped = 0
        log.info("client %d (%s) caught up; ticks resume", client.cid, client.remote)

    # ------------------------------------------------------------------ sending
    def _send(self, client: Client, kind: str, data: bytes, now: int) -> None:
        if client.close_reason is not None:
            return
        client.peer.send(data)
        client.last_send_ns = now
        c = self.counters
        c.messages_sent[kind] = c.messages_sent.get(kind, 0) + 1
        c.bytes_sent += len(data)

    # ------------------------------------------------------------------ figures
    def subscriptions(self) -> dict[str, int]:
        """Subscribed channels by kind, over every client."""
        out = {"ticks": 0, "latest": 0, "status": 0}
        for client in self.clients.values():
            for ch in client.subs:
                out[ch.kind] += 1
        return out


__all__ = ["MESSAGE_TYPES", "Client", "Counters", "Hub", "Limits", "Peer", "SegmentView",
           "rows_of"]
