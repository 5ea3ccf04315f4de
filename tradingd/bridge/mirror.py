"""``tradingd-bridge mirror``: a NATS feed written into a local segment, as its producer.

The mirror is the producer of a local segment (same symbols, symbol capacity and ring
capacity as the origin's), created the way the producer creates its own
(:func:`tradingd.segment.ownership.create_owned` + :class:`SegmentWriter`: exclusive
creation, a stale segment reclaimed, mode/group, heartbeat, ready word last). Before the
ready word it fills the header's ``upstream_*`` fields (layout v1.3): which origin segment
on which host it mirrors, that generation, the next origin sequence number to apply, the
last JetStream sequence applied, how far behind it is. Local consumers, ``tradingd-inspect``
and the gateway then work on this host unchanged.

* **Order, no duplicates**: records messages carry (generation, first_seq); the mirror
  keeps the origin sequence number it expects next and writes only what comes after it
  (a re-sent or overlapping batch is trimmed; never a record twice, never out of order).
  A jump forward is a gap, counted by cause: lapped at the origin (the batch says so) or
  no longer retained by the stream.
* **Generations**: a state message with a new origin generation (the origin producer
  restarted) closes the local segment (state stopped, unlinked) and creates it anew with
  the new symbol table: local consumers follow it as they follow a producer restart.
* **Upstream down** is its own state (``header.state = upstream_down``, 5) with the reason
  in ``header.upstream_state``: the origin producer is down (the publish bridge says so),
  the publish bridge is silent for ``upstream_timeout``, or NATS is unreachable. The
  mirror itself stays alive and heartbeating: consumers do not call it "producer dead".
* **Resume**: it reads the stream with an ephemeral pull consumer from the sequence after
  the last one it applied. That sequence is in the header of its segment (exact even
  after ``kill -9``: ``upstream_seq_offset``, one word stored before the first record of a
  batch that changes it, maps this ring's cursor to the next origin sequence number, so a
  batch half written when the mirror died is completed, never written twice) and in a
  state file (``state_dir``) written every second and on a clean stop (when the segment
  is removed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from tradingd.bridge import codec
from tradingd.bridge.connection import Connector, close_quietly
from tradingd.bridge.feed import Feed
from tradingd.bridge.metrics import BridgeMetrics
from tradingd.clock import SYSTEM_CLOCK, Clock
from tradingd.daemon.config import Config, resolve_group
from tradingd.daemon.logs import OnceLogger
from tradingd.daemon.notify import Notifier
from tradingd.errors import NatsAuthError, TradingdError
from tradingd.segment import layout as L
from tradingd.segment import ownership
from tradingd.segment.model import SymbolInfo
from tradingd.segment.reader import SegmentReader
from tradingd.segment.writer import SegmentWriter, assert_owned

log = logging.getLogger(__name__)

STATUS_EVERY_NS = 1_000_000_000
#: Seconds the mirror sleeps after each fetch: a deliberately slow mirror, for the tests.
#: Never set it in production (a warning is logged when it is set).
TEST_DELAY_ENV = "TRADINGD_BRIDGE_TEST_DELAY"
SAVE_EVERY_NS = 1_000_000_000
OWNER_CHECK_EVERY_NS = 1_000_000_000
_STATE_OF = {"live": (L.STATE_LIVE, L.UPSTREAM_LIVE),
             "finished": (L.STATE_FINISHED, L.UPSTREAM_FINISHED),
             "down": (L.STATE_UPSTREAM_DOWN, L.UPSTREAM_ORIGIN_DOWN)}


@dataclass(frozen=True)
class Position:
    """Where the mirror stands in the feed: enough to resume exactly."""

    stream_seq: int  # last JetStream sequence applied (0: none)
    generation: int  # origin generation of the local segment (0: none)
    next_seq: int  # origin sequence number expected next
    source: str


class Mirror:
    """One mirror: ``feed`` into local segment ``segment``. Drive with :meth:`run`."""

    def __init__(self, config: Config, *, segment: str, feed: Feed, notifier: Notifier,
                 stop: asyncio.Event, metrics: BridgeMetrics,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        assert config.bridge is not None
        self.config = config
        self.b = config.bridge
        self.m = config.bridge.mirror
        self.segment = segment
        self.feed = feed
        self.notifier = notifier
        self.stop = stop
        self.metrics = metrics
        self.clock = clock
        self.jetstream = self.b.transport == "jetstream"
        self.writer: SegmentWriter | None = None
        self.generation = 0  # origin generation of the local segment
        self.expected: int | None = None  # origin seq expected next
        self.stream_seq = 0  # last JetStream sequence applied
        self.last_stream_seq_seen = 0
        self.upstream: codec.UpstreamState | None = None
        self.upstream_code = L.UPSTREAM_NATS_DOWN
        self.last_msg_ns: int | None = None
        self.connected = False
        self._offset = -1  # upstream_seq_offset as last stored
        self._offset = -1  # upstream_seq_offset as last stored
        self.gap_total = 0
        self.lag = 0
        self.nats_text = "connecting to NATS"
        self._once = OnceLogger(log)
        self._decode_reasons: set[str] = set()
        self._next_hb = 0
        self._next_status = 0
        self._next_save = 0
        self._next_owner = 0
        self.state_path = Path(self.m.state_dir) / f"{feed.name}--{segment}.json"
        self.test_delay = float(os.environ.get(TEST_DELAY_ENV, "0") or 0)
        if self.test_delay:
            log.warning("%s=%g: sleeping after every fetch (a test setting: never in "
                        "production)", TEST_DELAY_ENV, self.test_delay)

    # ------------------------------------------------------------------ position
    def recover(self) -> Position | None:
        """The exact position from a stale segment of ours, else the state file."""
        pos = self._from_segment()
        saved = self._from_file()
        if pos is not None and (saved is None or pos.stream_seq >= saved.stream_seq):
            return pos
        return saved

    def _from_segment(self) -> Position | None:
        try:
            reader = SegmentReader.attach(self.segment, require_live=False)
        except (TradingdError, OSError):
            return None
        try:
            h = reader.header()
            if not h["upstream_state"] or not h["upstream_generation"]:
                return None
            cursor = h["ring_cursor"]
            # the records at the ring's end are origin records cursor-1+offset and before
            next_seq = cursor + h["upstream_seq_offset"] if cursor else h["upstream_next_seq"]
            return Position(h["upstream_stream_seq"], h["upstream_generation"], next_seq,
                            f"segment {reader.where} (left by PID {h['producer_pid']})")
        finally:
            reader.close()

    def _from_file(self) -> Position | None:
        try:
            d = json.loads(self.state_path.read_text())
            return Position(int(d["stream_seq"]), int(d["generation"]), int(d["next_seq"]),
                            f"state file {self.state_path}")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring the state file %s: %s", self.state_path, exc)
            return None

    def save(self) -> None:
        """Write the position to the state file (atomically: write, fsync, rename)."""
        if not self.jetstream or self.stream_seq == 0 or self.expected is None:
            return
        data = json.dumps({"stream_seq": self.stream_seq, "generation": self.generation,
                           "next_seq": self.expected, "feed": self.feed.name,
                           "segment": self.segment})
        tmp = self.state_path.with_suffix(".tmp")
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.state_path)
        except OSError as exc:
            self._once.transition("save", str(exc), logging.WARNING,
                                  "cannot save the mirror position to %s: %s (a restart "
                                  "after a clean stop will start from bridge.mirror.start)",
                                  self.state_path, exc)

    # ------------------------------------------------------------------ local segment
    def _create(self, symbols: tuple[SymbolInfo, ...], symbol_capacity: int,
                ring_capacity: int, generation: int, host: str, origin_segment: str,
                ready_state: int, upstream_code: int) -> None:
        seg = self.config.segment
        gid = resolve_group(self.config)
        hb_ns = int(seg.heartbeat_interval * 1e9)
        capacity = max(symbol_capacity, len(symbols), 1)

        def before_ready(w: SegmentWriter) -> None:
            w.set_counter("upstream_state", upstream_code)
            w.set_counter("upstream_generation", generation)
            w.set_counter("upstream_next_seq", self.expected or 0)
            w.set_counter("upstream_seq_offset", self.expected or 0)  # ring cursor 0 here
            w.set_counter("upstream_stream_seq", self.stream_seq)
            w.set_text("upstream_segment", origin_segment)
            w.set_text("upstream_host", host)

        def create() -> SegmentWriter:
            return SegmentWriter.create(
                self.segment, symbols, symbol_capacity=capacity, ring_capacity=ring_capacity,
                mode=seg.mode, group=gid, heartbeat_interval_ns=hb_ns, clock=self.clock,
                ready_state=ready_state, before_ready=before_ready)

        self.writer = ownership.create_owned(self.segment, create, clock=self.clock)
        self._offset = self.expected or 0
        self.generation = generation
        self.metrics.generations.inc()
        log.info("created mirror segment %s (generation %016x) of %s:%s generation %016x: "
                 "%d symbols, ring of %d records, state %s", self.writer.path,
                 self.writer.generation, host, origin_segment, generation, len(symbols),
                 ring_capacity, L.STATE_NAMES[ready_state])

    def _close_segment(self, why: str) -> None:
        if self.writer is not None:
            log.info("closing mirror segment %s (%s)", self.writer.path, why)
            self.writer.close()
            self.writer = None

    def create_from_stale(self, pos: Position) -> None:
        """After a restart: recreate the segment of the generation we were mirroring."""
        try:
            reader = SegmentReader.attach(self.segment, require_live=False)
        except (TradingdError, OSError):
            return
        try:
            if reader.header()["upstream_generation"] != pos.generation:
                return
            symbols = tuple(reader.symbols())
            geo = reader.geometry
            host = reader.header_text("upstream_host")
            origin = reader.header_text("upstream_segment")
        finally:
            reader.close()
        self._create(symbols, geo.symtab_capacity, geo.ring_capacity, pos.generation, host,
                     origin, L.STATE_UPSTREAM_DOWN, L.UPSTREAM_NATS_DOWN)

    def _set_upstream(self, code: int) -> None:
        if code == self.upstream_code and self.writer is not None and \
                self.writer.state == self._segment_state(code):
            return
        if code != self.upstream_code:
            level = logging.INFO if code in (L.UPSTREAM_LIVE, L.UPSTREAM_FINISHED) \
                else logging.WARNING
            log.log(level, "upstream %s (was %s)", L.UPSTREAM_NAMES[code],
                    L.UPSTREAM_NAMES[self.upstream_code])
        self.upstream_code = code
        self.metrics.upstream_up.set(1 if code in (L.UPSTREAM_LIVE, L.UPSTREAM_FINISHED)
                                     else 0)
        if self.writer is not None:
            self.writer.set_counter("upstream_state", code)
            self.writer.set_state(self._segment_state(code))

    @staticmethod
    def _segment_state(code: int) -> int:
        if code == L.UPSTREAM_LIVE:
            return L.STATE_LIVE
        if code == L.UPSTREAM_FINISHED:
            return L.STATE_FINISHED
        return L.STATE_UPSTREAM_DOWN

    # ------------------------------------------------------------------ applying
    def apply(self, data: bytes, stream_seq: int) -> None:
        """Apply one message (records or state); undecodable ones are counted and skipped."""
        now = self.clock.monotonic_ns()
        self.last_msg_ns = now
        try:
            kind = codec.kind_of(data)
            if kind == codec.KIND_STATE:
                self._apply_state(codec.decode_state(data))
            else:
                self._apply_records(codec.decode_records(data), stream_seq)
        except codec.DecodeError as exc:
            self.metrics.decode_errors.inc()
            reason = str(exc).split(":")[0]
            if reason not in self._decode_reasons:
                self._decode_reasons.add(reason)
                log.error("skipped a message that does not decode (stream sequence %d, %d "
                          "bytes): %s (further ones like it are counted, not logged)",
                          stream_seq, len(data), exc)
        if stream_seq:
            self.stream_seq = stream_seq
            self.last_stream_seq_seen = stream_seq
            self.metrics.applied_stream_seq.set(stream_seq)
            if self.writer is not None:
                # committed after the message's records: a resume refetches from here + 1
                self.writer.set_counter("upstream_stream_seq", stream_seq)

    def _apply_state(self, st: codec.UpstreamState) -> None:
        self.upstream = st
        if st.generation and (st.generation != self.generation or self.writer is None):
            if self.generation and st.generation != self.generation:
                log.info("origin %s:%s has a new generation %016x (was %016x): the origin "
                         "producer restarted", st.host, st.segment, st.generation,
                         self.generation)
            if st.generation != self.generation:
                self._close_segment("new origin generation")
                self.expected = None
            segment_state, code = _STATE_OF[st.state]
            self._create(st.symbols, st.symbol_capacity, st.ring_capacity, st.generation,
                         st.host, st.segment, segment_state, code)
        if self.writer is not None and st.generation == self.generation:
            self.writer.set_counter("upstream_cursor", st.cursor)
        self._set_upstream(_STATE_OF[st.state][1])

    def _apply_records(self, b: codec.Batch, stream_seq: int) -> None:
        w = self.writer
        if w is None or b.generation != self.generation:
            # records of a generation whose symbol table we have not seen (it was no
            # longer retained, or we started in the middle): cannot be written
            self._gap("no_symbol_table", b.count)
            self._once.transition("orphan", b.generation, logging.WARNING,
                                  "records of origin generation %016x arrive before its "
                                  "state message: skipped and counted as a gap until it "
                                  "comes", b.generation)
            return
        start = 0
        if self.expected is None:
            # the first batch of a generation here: what the publisher lost just before it
            # (lapped on the origin ring) is still a gap, as the batch says
            self._gap("origin_lapped", b.lapped_before)
        else:
            if b.end_seq <= self.expected:
                self.metrics.duplicates.inc(b.count)
                return
            if b.first_seq < self.expected:
                start = self.expected - b.first_seq
                self.metrics.duplicates.inc(start)
            elif b.first_seq > self.expected:
                missing = b.first_seq - self.expected
                lapped = min(missing, b.lapped_before)
                self._gap("origin_lapped", lapped)
                cause = "core_loss" if not self.jetstream else "retention"
                self._gap(cause, missing - lapped)
                if missing - lapped:
                    log.warning("gap: %d records (origin sequence %d..%d) %s", missing - lapped,
                                self.expected, b.first_seq - 1,
                                "lost on core NATS" if not self.jetstream
                                else "no longer retained by the stream")
        wire = b.records[start:] if start else b.records
        offset = b.first_seq + start - w.cursor  # origin seq - this ring's seq
        if offset != self._offset:  # one 8-byte store, before the batch's first record
            w.set_counter("upstream_seq_offset", offset)
            self._offset = offset
        w.publish_batch(codec.to_ring_records(wire))
        self.expected = b.end_seq
        now_wall = self.clock.wall_ns()
        # the records' own origin timestamps, on the origin's wall clock
        origin_wall = (np.int64(b.origin_wall_ns - b.origin_mono_ns)
                       + wire["publish_ns"].astype(np.int64))
        delays = np.int64(now_wall) - origin_wall
        self.metrics.observe_delays_ns(delays)
        w.set_counter("upstream_next_seq", self.expected)
        w.set_counter("upstream_cursor", max(b.origin_cursor, b.end_seq))
        w.set_counter("upstream_lag_ns", max(0, int(delays[-1])))
        self.metrics.records.inc(len(wire))
        self.metrics.record_messages.inc()
        self.metrics.bytes.inc(b.count * codec.WIRE_RECORD.itemsize + codec.BATCH_HEADER.size)

    def _gap(self, cause: str, n: int) -> None:
        if n <= 0:
            return
        self.metrics.gap_records.labels(cause=cause).inc(n)
        self.gap_total += n
        if self.writer is not None:
            self.writer.set_counter("upstream_gap_records", self.gap_total)

    # ------------------------------------------------------------------ running
    async def run(self) -> None:
        """Recover the position, then (re)connect and apply until ``stop``."""
        pos = self.recover()
        if pos is not None and self.jetstream:
            log.info("resuming after stream sequence %d (origin generation %016x, next "
                     "origin sequence %d) from the %s", pos.stream_seq, pos.generation,
                     pos.next_seq, pos.source)
            self.stream_seq = pos.stream_seq
            self.create_from_stale(pos)
            self.generation = pos.generation
            self.expected = pos.next_seq
        connector = Connector(self.b.nats, f"tradingd-bridge-mirror {self.feed.name}",
                              on_status=self._nats_down, stop=self.stop)
        first = True
        try:
            while not self.stop.is_set():
                nc = await connector.connect()
                if nc is None:
                    break
                if not first:
                    self.metrics.reconnects.inc()
                first = False
                self.metrics.connected.set(1)
                self.connected = True
                try:
                    await self._session(nc, connector)
                except NatsAuthError:
                    raise
                except Exception as exc:
                    if isinstance(exc, TradingdError):
                        raise
                    if self.stop.is_set():
                        break
                    log.warning("NATS session ended (%s: %s); reconnecting and resuming "
                                "after stream sequence %d", type(exc).__name__, exc,
                                self.stream_seq)
                finally:
                    self.connected = False
                    self.metrics.connected.set(0)
                    await close_quietly(nc)
        finally:
            self.save()
            self._close_segment("stopping")

    def _nats_down(self, text: str) -> None:
        self.nats_text = text
        self._set_upstream(L.UPSTREAM_NATS_DOWN)
        self._housekeeping(self.clock.monotonic_ns())

    async def _session(self, nc: NATS, connector: Connector) -> None:
        self.nats_text = f"NATS {nc.connected_url.netloc if nc.connected_url else '?'}"
        if self.jetstream:
            await self._jetstream_session(nc, connector)
        else:
            await self._core_session(nc, connector)

    async def _jetstream_session(self, nc: NATS, connector: Connector) -> None:
        js = nc.jetstream(timeout=5.0)
        psub = await self._subscribe(js, connector)
        if psub is None:
            return
        self.nats_text = f"NATS {nc.connected_url.netloc if nc.connected_url else '?'}"
        self.last_msg_ns = self.clock.monotonic_ns()
        try:
            while not self.stop.is_set():
                if nc.is_closed or connector.disconnected.is_set():
                    raise ConnectionError("disconnected from NATS")
                try:
                    msgs = await psub.fetch(self.m.fetch_messages, timeout=0.25)
                except TimeoutError:
                    msgs = []
                except NotFoundError:  # the consumer went away (server restarted)
                    raise ConnectionError("the stream consumer is gone") from None
                for msg in msgs:
                    self._apply_msg(msg)
                self._housekeeping(self.clock.monotonic_ns())
                if self.test_delay and msgs:
                    await asyncio.sleep(self.test_delay)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(psub.unsubscribe(), 1.0)

    async def _subscribe(self, js: JetStreamContext,
                         connector: Connector) -> JetStreamContext.PullSubscription | None:
        """An ephemeral pull consumer from the sequence after the last applied."""
        await self._check_position(js)
        if self.stream_seq:
            policy, start = api.DeliverPolicy.BY_START_SEQUENCE, self.stream_seq + 1
        elif self.m.start == "new":
            policy, start = api.DeliverPolicy.NEW, None
        else:
            policy, start = api.DeliverPolicy.ALL, None
        cc = api.ConsumerConfig(deliver_policy=policy, opt_start_seq=start,
                                ack_policy=api.AckPolicy.NONE, inactive_threshold=60.0,
                                filter_subject=self.feed.all_subjects,
                                max_waiting=4, headers_only=False)
        while not self.stop.is_set():
            try:
                return await js.pull_subscribe(self.feed.all_subjects, durable=None,
                                               stream=self.feed.stream, config=cc)
            except NotFoundError:
                self.nats_text = (f"waiting for stream {self.feed.stream} (no publish bridge "
                                  f"has created it yet)")
                self._once.transition("stream", "missing", logging.WARNING, "%s",
                                      self.nats_text)
                self._set_upstream(L.UPSTREAM_BRIDGE_SILENT)
                self._housekeeping(self.clock.monotonic_ns())
                await asyncio.sleep(0.5)
                if connector.disconnected.is_set():
                    raise ConnectionError("disconnected from NATS") from None
        return None

    async def _check_position(self, js: JetStreamContext) -> None:
        """A saved position past the stream's end means the stream was recreated: restart."""
        if not self.stream_seq:
            return
        try:
            info = await js.stream_info(self.feed.stream)
        except NotFoundError:
            return
        last = info.state.last_seq if info.state else 0
        if last < self.stream_seq:
            log.warning("stream %s ends at sequence %d, before the %d this mirror applied "
                        "last: the stream was recreated; reading it from its start",
                        self.feed.stream, last, self.stream_seq)
            self.stream_seq = 0

    def _apply_msg(self, msg: Msg) -> None:
        md = msg.metadata
        seq = md.sequence.stream if md.sequence else 0
        if self.stream_seq and seq > self.stream_seq + 1:
            log.warning("stream sequence jumped from %d to %d: %d messages no longer "
                        "retained by %s", self.stream_seq, seq, seq - self.stream_seq - 1,
                        self.feed.stream)
        self.lag = int(md.num_pending or 0)
        self.apply(msg.data, seq)

    async def _core_session(self, nc: NATS, connector: Connector) -> None:
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=4096)

        async def cb(msg: Msg) -> None:
            await queue.put(msg.data)

        sub = await nc.subscribe(self.feed.all_subjects, cb=cb)
        self.last_msg_ns = self.clock.monotonic_ns()
        try:
            while not self.stop.is_set():
                if nc.is_closed or connector.disconnected.is_set():
                    raise ConnectionError("disconnected from NATS")
                try:
                    data = await asyncio.wait_for(queue.get(), 0.25)
                    self.apply(data, 0)
                    while not queue.empty():
                        self.apply(queue.get_nowait(), 0)
                except TimeoutError:
                    pass
                self.lag = queue.qsize()
                self._housekeeping(self.clock.monotonic_ns())
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    def _housekeeping(self, now: int) -> None:
        w = self.writer
        if w is not None and now >= self._next_hb:
            self._next_hb = now + int(self.config.segment.heartbeat_interval * 1e9)
            w.heartbeat(now)
        if w is not None and now >= self._next_owner:
            self._next_owner = now + OWNER_CHECK_EVERY_NS
            assert_owned(w)
        if (self.connected and self.last_msg_ns is not None
                and now - self.last_msg_ns > self.m.upstream_timeout * 1e9):
            self._set_upstream(L.UPSTREAM_BRIDGE_SILENT)
        self.metrics.lag.set(self.lag)
        if now >= self._next_save:
            self._next_save = now + SAVE_EVERY_NS
            self.save()
        self.notifier.maybe_watchdog(now)
        if now >= self._next_status:
            self._next_status = now + STATUS_EVERY_NS
            self.notifier.status(self.status_text())

    def status_text(self) -> str:
        up = L.UPSTREAM_NAMES[self.upstream_code]
        where = (f"segment {self.segment} of origin gen {self.generation >> 32:08x}"
                 if self.writer is not None else f"no segment yet ({self.segment})")
        if self.upstream_code not in (L.UPSTREAM_LIVE, L.UPSTREAM_FINISHED):
            up = f"UPSTREAM DOWN ({up})"
        return (f"{self.nats_text}; {where}; upstream {up}; applied stream seq "
                f"{self.stream_seq}, lag {self.lag} messages, gaps {self.gap_total}")


__all__ = ["Mirror", "Position"]
