"""``tradingd-bridge publish``: a local segment's ring, batched onto a NATS (JetStream) feed.

The segment side is the consumer's :class:`~tradingd.consumer.follower.Follower` (read
only; attach, follow producer restarts and generations, drain before letting go). Each
poll of up to ``batch_records`` records becomes one records message (so the batch size
adapts: full batches when the producer is fast, small ones, sent at once, when it is
slow). Records the ring lapped before we read them start a new message whose
``lapped_before`` says how many: counted, published, never hidden.

Flow control: the bytes of messages sent but not yet acknowledged by JetStream are
bounded by ``max_inflight_bytes``; at the bound the bridge stops reading the ring (the
ring is the buffer; if it laps, that is counted as above). Every message not yet
acknowledged is kept: after a NATS outage (or an ack that times out) the bridge
reconnects with backoff, asks the stream for the last records message it stored, drops
from its keep-list what the stream has, and sends the rest again (same ``Nats-Msg-Id``:
the stream's duplicate window stores each batch once). A restarted bridge resumes the
same way, from the ring position after the stream's last stored record (if that
generation is still the segment's). Nothing the ring still holds is lost.

State messages (``live``/``finished``/``down``, with the symbol table) go out on every
change and every ``state_interval``: the mirror's "upstream alive" signal.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from tradingd.bridge import codec
from tradingd.bridge.connection import Connector, close_quietly
from tradingd.bridge.feed import Feed, ensure_stream
from tradingd.bridge.metrics import BridgeMetrics
from tradingd.clock import SYSTEM_CLOCK, Clock
from tradingd.consumer.follower import Follower
from tradingd.daemon.config import Config, resolve_owner
from tradingd.daemon.notify import Notifier
from tradingd.errors import TradingdError
from tradingd.segment import layout as L
from tradingd.segment.model import Record, SymbolInfo
from tradingd.segment.reader import SegmentReader

log = logging.getLogger(__name__)

STATUS_EVERY_NS = 1_000_000_000
#: Seconds the publish bridge sleeps after each ring poll that read records: a deliberately
#: slow bridge, for the lapping tests. Never in production (a warning is logged when set).
TEST_DELAY_ENV = "TRADINGD_BRIDGE_TEST_DELAY"


class ConnectionLost(Exception):
    """The NATS connection broke (or an ack timed out): reconnect and resync."""


@dataclass
class Outgoing:
    """A message built but not yet acknowledged by the stream."""

    subject: str
    payload: bytes
    msg_id: str
    generation: int  # 0 for state messages
    end_seq: int
    records: int
    sent_ns: int = 0
    future: asyncio.Future[Any] | None = None


class PublishBridge:
    """One publish bridge: segment ``segment`` onto ``feed``. Drive with :meth:`run`."""

    def __init__(self, config: Config, *, segment: str, feed: Feed, notifier: Notifier,
                 stop: asyncio.Event, metrics: BridgeMetrics,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        assert config.bridge is not None
        self.config = config
        self.b = config.bridge
        self.p = config.bridge.publish
        self.segment = segment
        self.feed = feed
        self.notifier = notifier
        self.stop = stop
        self.metrics = metrics
        self.clock = clock
        self.host = socket.gethostname()
        self.jetstream = self.b.transport == "jetstream"
        c = config.consumer
        self.follower = Follower(segment, self._on_records, clock=clock,
                                 attach_retry_interval=c.attach_retry_interval,
                                 heartbeat_timeout_factor=c.heartbeat_timeout_factor,
                                 data_stale_after=c.data_stale_after,
                                 on_attach=self._on_attach,
                                 logger=logging.getLogger("tradingd.bridge.follower"),
                                 owner=resolve_owner(config))
        self.pending: deque[Outgoing] = deque()  # built, not acknowledged (in order)
        self.unsent = 0  # index into pending of the first message not sent yet
        self.pending_bytes = 0
        self.synced = False  # the stream's last record is known: reading may start
        self.inflight_bytes = 0
        self.symbols: tuple[SymbolInfo, ...] = ()
        self.symbol_capacity = 0
        self.ring_capacity = 0
        self.generation = 0
        self.expected_seq = 0  # ring sequence after the last record built into a message
        self.resume: tuple[int, int] | None = None  # (generation, next seq) from the stream
        self.origin_state = "down"
        self.origin_reason = "not attached yet"
        self.connected = False
        self.nats_text = "connecting to NATS"
        self._next_state_ns = 0
        self._next_status_ns = 0
        self.acked_records = 0  # records acknowledged by the stream (for STATUS=)
        self.test_delay = float(os.environ.get(TEST_DELAY_ENV, "0") or 0)
        if self.test_delay:
            log.warning("%s=%g: sleeping after every ring poll (a test setting: never in "
                        "production)", TEST_DELAY_ENV, self.test_delay)
        self.acked_record_messages = 0

    # ------------------------------------------------------------------ segment side
    def _on_attach(self, reader: SegmentReader, new_generation: bool) -> None:
        self.symbols = tuple(reader.symbols())
        self.symbol_capacity = reader.geometry.symtab_capacity
        self.ring_capacity = reader.geometry.ring_capacity
        self.generation = reader.generation
        sub = self.follower.subscription
        assert sub is not None
        if self.resume is not None and self.resume[0] == reader.generation:
            # the stream already holds this generation up to resume[1]: continue there
            # (a position the ring has lapped is counted lost by the next poll)
            sub.position = self.resume[1]
            log.info("resuming generation %016x at ring sequence %d (the stream's last)",
                     reader.generation, self.resume[1])
        self.expected_seq = sub.position
        log.info("reading generation %016x from ring sequence %d", reader.generation,
                 sub.position)
        # announce the (new) generation and its symbols before any of its records
        self._queue(self._state_message())
        self._next_state_ns = self.clock.monotonic_ns() + int(self.p.state_interval * 1e9)

    def _on_records(self, records: np.ndarray | list[Record], first: int) -> None:
        if isinstance(records, list):
            arr = np.empty(len(records), L.RECORD_DTYPE)
            for i, r in enumerate(records):
                arr[i] = (0, *r[1:])
            records = arr
        lapped = max(0, first - self.expected_seq)
        if lapped:
            self.metrics.gap_records.labels(cause="origin_lapped").inc(lapped)
            log.warning("lapped on the origin ring: %d records lost before sequence %d "
                        "(published as a gap)", lapped, first)
        n = len(records)
        mono, wall = self.clock.monotonic_ns(), self.clock.wall_ns()
        reader = self.follower.reader
        cursor = reader.cursor if reader is not None else first + n
        payload = codec.encode_records(records, generation=self.generation, first_seq=first,
                                       origin_cursor=cursor, mono_ns=mono, wall_ns=wall,
                                       lapped_before=lapped)
        self._queue(Outgoing(self.feed.records_subject, payload,
                             f"{self.generation:016x}:{first}", self.generation, first + n, n))
        self.expected_seq = first + n

    def _queue(self, m: Outgoing) -> None:
        self.pending.append(m)
        self.pending_bytes += len(m.payload)

    def _dequeue(self) -> Outgoing:
        m = self.pending.popleft()
        self.pending_bytes -= len(m.payload)
        return m

    def _state_message(self) -> Outgoing:
        f = self.follower
        reader = f.reader
        if reader is None:
            state, reason = "down", f.waiting_text()
        elif not f.health().producer_alive:
            state, reason = "down", "origin producer not heartbeating"
        elif reader.state == L.STATE_FINISHED:
            state, reason = "finished", "replay finished"
        elif reader.state == L.STATE_LIVE:
            state, reason = "live", ""
        else:
            state, reason = "down", f"origin state {L.STATE_NAMES.get(reader.state, '?')}"
        if (state, reason) != (self.origin_state, self.origin_reason):
            log.log(logging.WARNING if state == "down" else logging.INFO,
                    "origin %s: %s%s", self.segment, state, f" ({reason})" if reason else "")
        self.origin_state, self.origin_reason = state, reason
        msg = codec.UpstreamState(
            state=state, generation=self.generation if reader is not None else 0,
            cursor=reader.cursor if reader is not None else 0, host=self.host,
            segment=self.segment, symbols=self.symbols, symbol_capacity=self.symbol_capacity,
            ring_capacity=self.ring_capacity, mono_ns=self.clock.monotonic_ns(),
            wall_ns=self.clock.wall_ns(), reason=reason)
        return Outgoing(self.feed.state_subject, codec.encode_state(msg), "", 0, 0, 0)

    # ------------------------------------------------------------------ NATS side
    async def run(self) -> None:
        """Until ``stop``: connect (with backoff), publish, reconnect on failures."""
        connector = Connector(self.b.nats, f"tradingd-bridge-publish {self.feed.name}",
                              on_status=self._nats_down, stop=self.stop)
        first = True
        while not self.stop.is_set():
            self._segment_turn()  # keep following the segment while NATS is away
            nc = await connector.connect()
            if nc is None:
                break
            if not first:
                self.metrics.reconnects.inc()
            first = False
            self.connected = True
            self.metrics.connected.set(1)
            try:
                await self._session(nc, connector)
            except TradingdError:
                raise  # permanent (auth) or a segment problem: the daemon exits
            except Exception as exc:  # NATS client errors of every kind
                if self.stop.is_set():
                    break
                log.warning("NATS connection lost (%s: %s); reconnecting, then resending "
                            "the %d messages not acknowledged", type(exc).__name__, exc,
                            len(self.pending))
            finally:
                self.connected = False
                self.metrics.connected.set(0)
                self._abandon_inflight()
                await close_quietly(nc)

    def _nats_down(self, text: str) -> None:
        self.nats_text = text
        self._segment_turn()
        self.notifier.status(f"{text}; {self._segment_text()}", force=True)
        self.notifier.maybe_watchdog()

    async def _session(self, nc: NATS, connector: Connector) -> None:
        js = nc.jetstream(timeout=max(2.0, self.p.ack_timeout))
        if self.jetstream:
            await ensure_stream(js, self.feed, self.b)
            await self._resync(js)
        self.synced = True
        self.nats_text = f"NATS {nc.connected_url.netloc if nc.connected_url else '?'}"
        log.info("publishing %s to %s (%s)", self.segment, self.feed.records_subject,
                 self.b.transport)
        poll = self.p.poll_interval
        while not self.stop.is_set():
            if nc.is_closed or connector.disconnected.is_set():
                raise ConnectionLost("disconnected")
            read = self._segment_turn()
            now = self.clock.monotonic_ns()
            if now >= self._next_state_ns:
                self._next_state_ns = now + int(self.p.state_interval * 1e9)
                self._queue(self._state_message())
            sent = await self._send(nc, js)
            self._collect_acks(now)
            self._housekeeping(now)
            if not read and not sent:
                await asyncio.sleep(poll)
            elif read and self.test_delay:
                await asyncio.sleep(self.test_delay)
        await self._flush_on_stop(nc)

    def _segment_turn(self) -> int:
        """Poll the ring if the in-flight budget allows; tick the follower. Records read."""
        f = self.follower
        n = 0
        if self.synced and self.pending_bytes < self.p.max_inflight_bytes:
            n = f.poll(self.p.batch_records)
        f.tick()
        return n

    async def _send(self, nc: NATS, js: JetStreamContext) -> int:
        sent = 0
        now = self.clock.monotonic_ns()
        while self.unsent < len(self.pending):
            m = self.pending[self.unsent]
            if self.inflight_bytes and self.inflight_bytes + len(m.payload) > \
                    self.p.max_inflight_bytes:
                break
            m.sent_ns = now
            if self.jetstream:
                headers = {"Nats-Msg-Id": m.msg_id} if m.msg_id else None
                m.future = await js.publish_async(m.subject, m.payload, headers=headers,
                                                  wait_stall=self.p.ack_timeout)
                self.inflight_bytes += len(m.payload)
            else:
                await nc.publish(m.subject, m.payload)
            self.unsent += 1
            sent += 1
        if not self.jetstream and sent:
            # core NATS has no acks: a flush (PING/PONG) bounds what sits in buffers
            await nc.flush(timeout=max(1, round(self.p.ack_timeout)))
            self._count_acked(self.unsent)
        return sent

    def _collect_acks(self, now: int) -> None:
        done = 0
        timeout_ns = int(self.p.ack_timeout * 1e9)
        for m in self.pending:
            if m.future is None:
                break
            if not m.future.done():
                if now - m.sent_ns > timeout_ns:
                    raise ConnectionLost(f"no ack from JetStream within "
                                         f"{self.p.ack_timeout:g} s")
                break
            exc = m.future.exception()
            if exc is not None:
                raise ConnectionLost(f"JetStream refused a publish: {exc}")
            done += 1
        if done:
            self._count_acked(done)

    def _count_acked(self, n: int) -> None:
        for _ in range(n):
            m = self._dequeue()
            self.unsent -= 1
            if m.future is not None:
                self.inflight_bytes -= len(m.payload)
            self.metrics.messages.inc()
            self.metrics.bytes.inc(len(m.payload))
            if m.records:
                self.metrics.records.inc(m.records)
                self.metrics.record_messages.inc()
                self.acked_records += m.records
                self.acked_record_messages += 1
        self.metrics.inflight_bytes.set(self.inflight_bytes)

    def _abandon_inflight(self) -> None:
        """After a failure: every message counts as not sent (resync decides what to resend)."""
        for m in self.pending:
            if m.future is not None and not m.future.done():
                m.future.cancel()
            m.future = None
        self.unsent = 0
        self.inflight_bytes = 0
        self.metrics.inflight_bytes.set(0)

    async def _resync(self, js: JetStreamContext) -> None:
        """Drop from the keep-list what the stream already stored; learn where to resume."""
        try:
            raw = await js.get_last_msg(self.feed.stream, self.feed.records_subject)
        except NotFoundError:
            last = None
        else:
            try:
                b = codec.decode_records(raw.data or b"")
                last = (b.generation, b.end_seq)
            except codec.DecodeError as exc:
                log.warning("the stream's last records message does not decode (%s): "
                            "resuming from the segment's oldest record", exc)
                last = None
        self.resume = last
        if last is None:
            return
        stored = [i for i, m in enumerate(self.pending)
                  if m.generation == last[0] and m.end_seq <= last[1]]
        if stored:
            # everything up to the last stored records message is in the stream
            drop = stored[-1] + 1
            for _ in range(drop):
                self._dequeue()
            log.info("resync: %d messages were stored before the outage, %d to resend",
                     drop, len(self.pending))
        reader = self.follower.reader
        sub = self.follower.subscription
        if (reader is not None and sub is not None and reader.generation == last[0]
                and not any(m.records for m in self.pending) and sub.position < last[1]):
            # a restarted bridge: continue after what the stream already has
            log.info("resuming generation %016x at ring sequence %d (the stream's last)",
                     reader.generation, last[1])
            sub.position = last[1]
            self.expected_seq = last[1]

    async def _flush_on_stop(self, nc: NATS) -> None:
        """On SIGTERM: the final state, then wait (bounded) for the acks."""
        self._queue(self._state_message())
        try:
            js = nc.jetstream()
            await self._send(nc, js)
            deadline = time.monotonic() + min(5.0, self.p.ack_timeout)
            while self.pending and self.pending[0].future is not None \
                    and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
                self._collect_acks(self.clock.monotonic_ns())
        except (TimeoutError, ConnectionLost, OSError):
            pass

    # ------------------------------------------------------------------ reporting
    def _segment_text(self) -> str:
        f = self.follower
        if not f.attached:
            return f.waiting_text()
        return (f"segment {self.segment} gen {self.generation >> 32:08x} {self.origin_state}, "
                f"lost {f.lost}")

    def status_text(self) -> str:
        return (f"{self.nats_text}; {self._segment_text()}; published {self.acked_records} "
                f"records in {self.acked_record_messages} messages, {len(self.pending)} "
                f"unacked ({self.inflight_bytes} B in flight)")

    def _housekeeping(self, now: int) -> None:
        self.notifier.maybe_watchdog(now)
        if now >= self._next_status_ns:
            self._next_status_ns = now + STATUS_EVERY_NS
            self.notifier.status(self.status_text())
            self.metrics.lag.set(max(0, self.follower.lag()) + len(self.pending))


__all__ = ["PublishBridge"]
