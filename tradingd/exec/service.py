"""ExecService: tradingd-exec's state and main loop (no process plumbing: testable in-process).

One round of the loop:

1. **market**: new records of the market segment (a :class:`~tradingd.consumer.follower.Follower`,
   as a consumer reads it); a bar becomes an input only if its symbol has resting orders
   (a bar nobody can trade on changes nothing, so it is neither journaled nor applied);
   a bar older than the symbol's previous one means the replay started over: the session
   ended (DAY orders expire), as does a producer that finished its replay or restarted;
2. **orders**: every client's order ring, round robin, at most ``exec.poll_budget`` records
   from each (a flooding client fills its own ring and waits for credit; the others are
   served every round);
3. the round's inputs are **journaled** (one append), then **applied** to the engine in
   the same order; the reports go to the clients' report rings.

The order path per round and ring is a batch: the records are taken, priced and framed
for the journal in one call (:func:`tradingd.exec.execfast.take_and_frame`, C when
built), the round's frames appended at once, each record applied through the same
``engine.on_order`` a replay uses, and the ring's reports published in one call. The
market, discovery, disconnects and housekeeping run only when due, so an idle round is a
clock read and one stamp read per ring. Every ``GC_FREEZE_INTERVAL_NS`` the objects alive
so far are frozen out of the cyclic GC (see :meth:`ExecService.housekeeping`).

The latency-critical path (order taken -> NEW visible to the client) is one C call when
the round journals nothing before the orders (no bar, attach or disconnect in it):
:func:`tradingd.exec.execfast.take_accept` takes the batch, copies its frames into the
journal's mapping (the journal append still precedes every effect), and publishes the NEW
reports of the batch's leading plain accepts (the checks of ``engine._validate`` against
the engine's own sets and dicts; the status after ACCEPT from the transition table). The
engine then applies every record as before and stays the one that decides: the service
checks each published report against the engine's (exec type and number), the tests check
every byte against the pure-Python path (which predicts nothing). A cancel, a reject or
anything unusual ends the prediction for the rest of its batch: those reports are the
engine's, published after it applied them. A spin loop that found nothing waits for the
next order record in C (:func:`tradingd.exec.execfast.wait_ready`, GIL released) until
the market read, discovery or housekeeping is due.

Slow clients: exec never waits for a report ring. A report that does not fit (the client
has not read enough) is kept in that client's backlog, delivered as the client reads; the
client is counted as slow. A backlog beyond ``exec.report_backlog`` disconnects the client:
the disconnect is journaled, its open orders are canceled, its report ring marked
``disconnected`` (detail 1: slow consumer) and its order ring no longer read. The client
reconnects by creating a new order ring (a restart of ``OrderClient``).

Clients: discovered every ``exec.discovery_interval`` under ``<segment>.orders.*``. A new
order ring generation (a client started, or restarted after a crash) is journaled as an
attach: exec (re)creates the report ring and restates the client's open orders and
positions. After exec itself restarts, the journal says which order ring generations it
knew and how far it had read each: it resumes there, and re-sends the reports after the
client's ``last_report_seq`` (from the client's order ring header): none lost, none twice.
"""

from __future__ import annotations

import bisect
import fcntl
import gc
import logging
import os
import struct
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from tradingd import constants as C
from tradingd.clock import SYSTEM_CLOCK, Clock
from tradingd.consumer.follower import Follower
from tradingd.consumer.waiting import StopLike
from tradingd.daemon.config import Config, ExecConfig, resolve_owner
from tradingd.daemon.logs import OnceLogger
from tradingd.daemon.notify import Notifier
from tradingd.errors import SegmentError, SegmentOwned
from tradingd.exec import execfast
from tradingd.exec import journal as J
from tradingd.exec.engine import Engine, RiskLimits
from tradingd.exec.execfast import publish_reports, take_accept, take_and_frame, wait_ready
from tradingd.exec.protocol import (
    Bar,
    DisconnectReason,
    ExecType,
    OrderFields,
    Report,
    ReportKind,
)
from tradingd.segment import layout as L
from tradingd.segment.channel import (
    KIND_ORDERS,
    KIND_REPORTS,
    ChannelReader,
    ChannelWriter,
    create_channel,
    discover_clients,
    orders_name,
    reports_name,
)
from tradingd.segment.model import Record
from tradingd.segment.reader import SegmentReader

log = logging.getLogger("tradingd.exec.service")

#: order -> report latency histogram bucket bounds (seconds)
LATENCY_BUCKETS = (1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 1e-2, 0.1, 1.0)
_PEEK = struct.Struct("<I20xI32x16s")  # msg_type, ord_type, symbol of a raw order body
_LATENCY_BUCKETS_NS = tuple(round(b * 1e9) for b in LATENCY_BUCKETS)
_new = tuple.__new__
_EXEC_NEW = ExecType.NEW
#: how often the spin loop does housekeeping (market state, heartbeats, watchdog)
HOUSEKEEPING_INTERVAL_NS = 100_000
#: how often the objects alive so far are frozen out of the cyclic GC (see housekeeping)
GC_FREEZE_INTERVAL_NS = 50_000_000
_SESSION_LOOPED, _SESSION_FINISHED, _SESSION_BACKWARDS, _SESSION_NEW_MARKET = 1, 2, 3, 4
STATUS_INTERVAL_NS = 1_000_000_000
#: how often a round reads the market segment (and does the follower's housekeeping)
MARKET_INTERVAL_NS = 200_000
#: the longest the spin loop waits in one :func:`~tradingd.exec.execfast.wait_ready` call
#: (then it looks at ``stop`` and at what is due again)
SPIN_WAIT_MAX_NS = 50_000


class ExecLocked(SegmentOwned):
    """Another tradingd-exec holds the journal (and so owns the report rings): refusing.

    Stop the other one, or give this one another journal and ``--segment`` (exit 73).
    """


@dataclass(eq=False)  # identity: links are kept in sets
class ClientLink:
    """One client as exec sees it: its order ring, its report ring, what is owed to it."""

    name: str
    orders: ChannelReader | None = None
    reports: ChannelWriter | None = None
    backlog: deque[Report] = field(default_factory=deque)
    retained: deque[Report] = field(default_factory=deque)
    disconnected: bool = False
    pending_disconnect: bool = False
    slow: bool = False
    slow_events: int = 0
    delivered: int = 0
    dropped: int = 0
    orders_read: int = 0
    wakeups: int = 0
    switch_to: ChannelReader | None = None
    problem: str = ""
    name_b: bytes = b""
    room: int = 0  # reports known to fit in the report ring (0: look at the credit)
    accept_ctx: tuple[object, ...] | None = None  # engine.accept_context (None: rebuild)

    def __post_init__(self) -> None:
        self.name_b = self.name.encode("ascii")


class OrderBatch(NamedTuple):
    """Order records taken from one client's ring in one round: journaled as one run of
    frames (``OrderIn`` entries, ring seqs ``first_seq``...), then applied in order."""

    link: ClientLink
    generation: int
    first_seq: int
    arrival_ns: int
    raws: list[bytes]
    refs: list[float]
    frames: bytes  # the journal frames of the OrderIn entries, joined
    fields: list[OrderFields]  # the records decoded (as journal.apply decodes them)
    journaled: bool = False  # frames already copied into the journal (take_accept)
    published: int = 0  # leading NEW reports already published (take_accept)


def default_journal_path(env: dict[str, str] | None = None) -> str:
    """``$STATE_DIRECTORY/exec.journal`` under systemd, else ``./tradingd-exec.journal``."""
    env = dict(os.environ) if env is None else env
    state = env.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return os.path.join(state, C.DEFAULT_EXEC_JOURNAL_NAME)
    return os.path.abspath(C.DEFAULT_EXEC_LOCAL_JOURNAL)


class ExecService:
    """The exec daemon's state and loop; ``stop`` ends :meth:`run`."""

    def __init__(self, config: Config, *, stop: StopLike, journal_path: str | None = None,
                 notifier: Notifier | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        assert config.exec is not None
        self.config = config
        self.x: ExecConfig = config.exec
        self.segment = config.segment.name
        self._stop = stop
        self._notifier = notifier
        self._clock = clock
        self._once = OnceLogger(log)
        self.lock = threading.Lock()  # engine + links: main loop vs the scrape thread
        path = journal_path or (str(self.x.journal) if self.x.journal else None) \
            or default_journal_path()
        self.journal_path = path
        self._lock_fd = self._take_lock(path)
        risk = self.x.risk
        self.engine = Engine(RiskLimits(risk.max_order_qty, risk.max_open_orders,
                                        risk.max_notional), self.x.participation)
        self.links: dict[str, ClientLink] = {}
        self._positions: dict[tuple[str, int], int] = {}  # (client, ring gen) -> records read
        self._known_gens: dict[str, set[int]] = {}
        self._market_gen = 0
        self._last_bar = (0, -1)  # (market generation, seq) of the last bar journaled
        self._last_event: dict[str, int] = {}
        self._finished_gen = 0
        self._symbol_names: list[str] = []
        self._symbol_ids: dict[str, int] = {}
        self._pending: list[J.Entry] = []
        self._published: set[ClientLink] = set()  # links given reports this round
        self._active: list[ClientLink] = []  # links whose order rings are read (cached)
        self._disconnect_due = False  # some link has pending_disconnect set
        self._next_house = 0
        self._next_freeze = 0
        self._retain = self.x.report_ring_capacity + self.x.report_backlog
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.rounds = 0
        self.replayed = 0
        self.journal_errors = 0
        self.prediction_errors = 0  # NEW reports of take_accept the engine did not make
        self._rr = 0
        self._hb_ns = int(config.segment.heartbeat_interval * 1e9)
        self._next_hb = 0
        self._next_discovery = 0
        self._next_market = 0
        self._next_status = 0
        self.journal = J.Journal(path, fsync=self.x.journal_fsync)
        self._recover()
        self._record([J.ConfigIn(risk.max_order_qty, risk.max_open_orders, risk.max_notional,
                                 self.x.participation)])
        self.follower = Follower(self.segment, self._on_market, clock=clock,
                                 attach_retry_interval=0.25, on_attach=self._on_market_attach,
                                 logger=logging.getLogger("tradingd.exec.market"),
                                 owner=resolve_owner(config))

    # ------------------------------------------------------------------ start-up
    @staticmethod
    def _take_lock(path: str) -> int:
        lock_path = path + ".lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise J.JournalError(f"journal lock {lock_path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ExecLocked(lock_path, "another tradingd-exec holds this journal's lock: "
                                        "stop it, or use another --journal") from None
        return fd

    def _recover(self) -> None:
        """Replay the journal: open orders, report numbers, ring positions, market position."""
        entries = self.journal.recovered
        for e in entries:
            self._track(e)
            for client, r in J.apply(self.engine, e):
                self._retained(client).append(r)
        self.replayed = len(entries)
        if entries:
            log.info("journal %s: replayed %d inputs: %d clients, %d open orders, %d reports",
                     self.journal_path, len(entries), len(self.engine.clients),
                     len(self.engine.open_orders()), self.engine.counters.reports)
        self.journal.recovered = []

    def _retained(self, client: str) -> deque[Report]:
        link = self._link(client)
        if link.retained.maxlen != self._retain:
            link.retained = deque(link.retained, maxlen=self._retain)
        return link.retained

    def _link(self, client: str) -> ClientLink:
        link = self.links.get(client)
        if link is None:
            link = self.links[client] = ClientLink(client, retained=deque(maxlen=self._retain))
        return link

    def _track(self, e: J.Entry) -> None:
        """What the service itself keeps from an input (besides the engine's state)."""
        if isinstance(e, J.OrderIn):
            self._positions[(e.client, e.generation)] = e.ring_seq + 1
            self._known_gens.setdefault(e.client, set()).add(e.generation)
        elif isinstance(e, J.AttachIn):
            self._known_gens.setdefault(e.client, set()).add(e.generation)
            self._positions.setdefault((e.client, e.generation), 0)
            self._link(e.client).disconnected = False
        elif isinstance(e, J.DisconnectIn):
            self._link(e.client).disconnected = True
        elif isinstance(e, J.SymbolsIn):
            self._market_gen = e.market_generation
        elif isinstance(e, J.SessionEndIn):
            self._last_event.clear()
        elif isinstance(e, J.BarIn):
            self._last_event[e.bar.symbol] = e.bar.event_ns
            self._last_bar = (e.market_generation, e.bar.seq)

    # ------------------------------------------------------------------ journal + apply
    def _record(self, entries: list[J.Entry], batches: list[OrderBatch] | None = None) -> None:
        """Journal the inputs (one append), then apply them in order and route the reports.

        ``batches``: order records taken this round, per client ring, after ``entries``;
        framed per batch at once (the same bytes as ``J.encode`` of each ``OrderIn``) and
        applied one by one through the same ``engine.on_order`` replay uses.
        """
        if not entries and not batches:
            return
        frames = [J.encode(e) for e in entries]
        count = len(entries)
        if entries:  # the engine's symbols or limits may change: predictions rebuilt
            for lk in self.links.values():
                lk.accept_ctx = None
        if batches:
            for b in batches:
                if not b.journaled:  # (take_accept copied the others there already)
                    frames.append(b.frames)
                    count += len(b.raws)
        self.journal.append(frames, count)
        now = self._clock.monotonic_ns()
        with self.lock:
            for e in entries:
                self._track(e)
                if isinstance(e, J.AttachIn):
                    self._open_report_ring(e.client, fresh=True)
                out = J.apply(self.engine, e)
                first = isinstance(e, J.OrderIn)
                for client, r in out:
                    self._route(client, r, now, first)
                    first = False
            if batches:
                for b in batches:
                    self._apply_batch(b, now)

    def _apply_batch(self, b: OrderBatch, now: int) -> None:
        """Apply one client's orders (what ``_track`` + ``J.apply`` do per ``OrderIn``)."""
        link = b.link
        name = link.name
        self._positions[(name, b.generation)] = b.first_seq + len(b.raws)
        gens = self._known_gens.get(name)
        if gens is None:
            gens = self._known_gens[name] = set()
        gens.add(b.generation)
        on_order = self.engine.on_order
        arrival = b.arrival_ns
        reps: list[Report] = []
        send_ns: list[int] = []
        others: list[tuple[str, Report]] = []
        for f, ref in zip(b.fields, b.refs, strict=True):
            out = on_order(name, f, arrival, ref)
            if not out:
                continue
            client, r = out[0]
            if r.order_send_ns:
                send_ns.append(r.order_send_ns)
            if client == name and len(out) == 1:
                reps.append(r)
                continue
            for client, r in out:
                if client == name:
                    reps.append(r)
                else:  # (on_order reports only to its own client; kept general)
                    others.append((client, r))
        self._route_many(link, reps, b.published)  # first: the client waits for these
        for client, r in others:
            self._route(client, r, now, False)
        if send_ns:  # the latency histogram, once per batch
            counts, bounds = self.latency_counts, _LATENCY_BUCKETS_NS
            total = 0
            for sent in send_ns:
                ns = now - sent
                counts[bisect.bisect_left(bounds, ns)] += 1
                total += ns
            self.latency_sum += total / 1e9

    def _route_many(self, link: ClientLink, reps: list[Report], done: int = 0) -> None:
        """``_route`` of each report (latency already observed), with one credit check.

        ``done``: the leading reports take_accept already published (its predictions of
        NEW reports): each is checked against the engine's (exec type and number; the
        tests check every byte), counted as delivered, not published again.
        """
        if not reps:
            return
        link.retained.extend(reps)
        if done:
            self._check_predicted(link, reps, done)
            link.delivered += done
            link.room = 0
            self._published.add(link)
            if done == len(reps):
                return
            reps = reps[done:]
        w = link.reports
        if link.disconnected or w is None:
            link.dropped += len(reps)
            return
        k = 0
        if not link.backlog:
            room = link.room  # credit known from an earlier look (it only grows)
            if room < len(reps):
                room = self._free(link)
            k = max(0, min(room, len(reps)))
            link.room = room - k
            if k:
                publish_reports(w, reps if k == len(reps) else reps[:k])
                link.delivered += k
                self._published.add(link)
        if k == len(reps):
            return
        if not link.slow:
            link.slow = True
            link.slow_events += 1
            log.warning("client %s is slow: its report ring is full; keeping its reports "
                        "(at most %d) until it reads", link.name, self.x.report_backlog)
        link.backlog.extend(reps[k:])
        if len(link.backlog) > self.x.report_backlog and not link.pending_disconnect:
            link.pending_disconnect = True
            self._disconnect_due = True

    def _check_predicted(self, link: ClientLink, reps: list[Report], done: int) -> None:
        """The engine's reports for the records whose NEW take_accept published: the same?

        A difference is a bug of the C prediction (the client already has its report):
        counted in ``prediction_errors`` (metric ``tradingd_exec_accept_prediction_errors_total``,
        alert ``TradingdExecAcceptPredictionErrors``) and logged, the first and then every
        1,000th (a systematic bug would otherwise log every order); the engine's state is
        what counts.
        """
        seq = reps[0].report_seq
        for i in range(done):
            r = reps[i]
            if r.exec_type != _EXEC_NEW or r.report_seq != seq + i:
                self.prediction_errors += 1
                if self.prediction_errors % 1000 == 1:
                    log.error("client %s: the C accept path published NEW as report %d, the "
                              "engine made %s (a bug: please report it; %d so far)",
                              link.name, seq + i, r, self.prediction_errors)

    def _route(self, client: str, r: Report, now: int, response: bool) -> None:
        link = self._link(client)
        link.retained.append(r)
        if response and r.order_send_ns:
            self._observe_latency(now - r.order_send_ns)
        w = link.reports
        if link.disconnected or w is None:
            link.dropped += 1
            return
        if not link.backlog and self._free(link) > 0:
            w.publish(*r)
            link.room = 0  # (looked up again by the next _route_many)
            link.delivered += 1
            self._published.add(link)
            return
        if not link.slow:
            link.slow = True
            link.slow_events += 1
            log.warning("client %s is slow: its report ring is full; keeping its reports "
                        "(at most %d) until it reads", client, self.x.report_backlog)
        link.backlog.append(r)
        if len(link.backlog) > self.x.report_backlog and not link.pending_disconnect:
            link.pending_disconnect = True
            self._disconnect_due = True

    def _observe_latency(self, ns: int) -> None:
        self.latency_counts[bisect.bisect_left(_LATENCY_BUCKETS_NS, ns)] += 1
        self.latency_sum += ns / 1e9

    def _free(self, link: ClientLink) -> int:
        w, r = link.reports, link.orders
        if w is None:
            return 0
        consumed = 0
        if r is not None and r.peer_generation == w.generation:
            consumed = r.peer_consumed
        return w.free(consumed)

    def _deliver(self, link: ClientLink) -> None:
        w = link.reports
        if w is None or link.disconnected:
            return
        free = self._free(link)
        while link.backlog and free > 0:
            w.publish(*link.backlog.popleft())
            link.room = 0
            link.delivered += 1
            free -= 1
            self._published.add(link)
        if link.slow and not link.backlog:
            link.slow = False
            log.info("client %s caught up with its reports", link.name)

    # ------------------------------------------------------------------ report rings
    def _open_report_ring(self, client: str, *, fresh: bool) -> None:
        """(Re)create ``<segment>.reports.<client>`` for the client's current order ring.

        ``fresh``: a new order ring generation (the restatement follows as reports).
        Otherwise (exec restarted) the reports after the client's ``last_report_seq`` are
        published again, so the client sees each report exactly once.
        """
        link = self._link(client)
        r = link.orders
        if r is None:
            return
        if link.reports is not None:
            link.reports.close()
            link.reports = None
        book = self.engine.client(client)
        try:
            gid = os.stat(r.where).st_gid
        except OSError:
            gid = -1
        try:
            link.room = 0
            link.reports = create_channel(
                reports_name(self.segment, client), KIND_REPORTS, client=client,
                capacity=self.x.report_ring_capacity, mode=self.x.mode,
                group=gid if gid != os.getegid() else -1, heartbeat_interval_ns=self._hb_ns,
                peer_generation=r.generation, clock=self._clock,
                initial={"peer_consumed": r.position, "last_client_seq": book.last_client_seq,
                         "last_client_order_id": book.last_client_order_id})
        except (SegmentError, OSError) as exc:
            link.problem = f"cannot create its report ring: {exc}"
            self._once.once(("reports", client, str(exc)), logging.ERROR,
                            "client %s: %s", client, link.problem)
            return
        link.problem = ""
        link.backlog.clear()
        link.slow = False
        if not fresh:
            done = r.word("last_report_seq")
            for rep in link.retained:
                if rep.report_seq > done:
                    link.backlog.append(rep)
            if link.backlog and link.backlog[0].report_seq != done + 1:
                log.warning("client %s: reports %d..%d are no longer kept: not re-sent",
                            client, done + 1, link.backlog[0].report_seq - 1)
            self._deliver(link)
        log.info("client %s: report ring %s generation %016x (order ring generation %016x, "
                 "%s)", client, link.reports.path, link.reports.generation, r.generation,
                 "restating its orders" if fresh else
                 f"resuming after report {r.word('last_report_seq')}")

    # ------------------------------------------------------------------ discovery
    def discover(self) -> list[J.Entry]:
        """Attach new order rings, follow restarted clients, let go of departed ones.

        Under :attr:`lock`: rings are closed, reopened and links added here, and a scrape
        (:meth:`ring_rows`) must never read a ring being closed nor iterate ``links`` while
        it grows.
        """
        with self.lock:
            return self._discover()

    def _discover(self) -> list[J.Entry]:
        entries: list[J.Entry] = []
        names = set(discover_clients(self.segment))
        for name in sorted(names | {n for n, lk in self.links.items() if lk.orders}):
            link = self._link(name)
            r = link.orders
            if r is not None and not r.intact():
                log.error("client %s: its order ring %s shrank under exec: no longer read "
                          "(the client must create a new one)", name, r.where)
                r.close()
                link.orders = None
                link.disconnected = True
                continue
            if r is not None:
                status = r.name_status()
                if status == "same":
                    continue
                if link.switch_to is None:
                    self._drain_into(link, entries)
                    log.info("client %s: order ring %s (%s)", name,
                             "replaced: the client restarted" if status == "replaced"
                             else "removed: the client left", r.where)
                    r.close()
                    link.orders = None
                    if status == "gone" and link.reports is not None:
                        link.reports.close()
                        link.reports = None
            if name not in names:
                continue
            try:
                new = ChannelReader(orders_name(self.segment, name), kind=KIND_ORDERS)
            except (SegmentError, OSError) as exc:
                link.problem = str(exc)
                self._once.transition(("attach", name), str(exc), logging.INFO,
                                      "client %s: not attached yet: %s", name, exc)
                continue
            self._once.transition(("attach", name), "ok", logging.INFO,
                                  "client %s: order ring %s generation %016x, owner PID %d",
                                  name, new.where, new.generation, new.owner_pid)
            link.orders = new
            known = new.generation in self._known_gens.get(name, set())
            if known:
                new.position = self._positions.get((name, new.generation), 0)
                if not link.disconnected:
                    self._open_report_ring(name, fresh=False)
            else:
                link.disconnected = False
                entries.append(J.AttachIn(name, new.generation, self._clock.monotonic_ns()))
        return entries

    def _drain_into(self, link: ClientLink, entries: list[J.Entry]) -> None:
        r = link.orders
        if r is None or link.disconnected:
            return
        while (raw := r.poll_raw()) is not None:
            entries.append(self._order_in(link, r, raw))

    # ------------------------------------------------------------------ inputs
    def _order_in(self, link: ClientLink, r: ChannelReader, raw: bytes) -> J.OrderIn:
        now = self._clock.monotonic_ns()
        msg, ord_type, sym = _PEEK.unpack_from(raw)
        ref = 0.0
        if msg == 1 and ord_type == 1:
            ref = self._ref_price(sym)
        link.orders_read += 1
        return J.OrderIn(link.name, r.generation, r.position - 1, now, ref,
                         bytes(raw[:J.ORDER_BODY_SIZE]))

    def _ref_price(self, sym: bytes) -> float:
        reader = self.follower.reader
        sid = self._symbol_ids.get(sym.rstrip(b"\0").decode("ascii", "replace"))
        if reader is None or sid is None:
            return 0.0
        t = reader.latest_tuple(sid)
        return float(t[1]) if t is not None else 0.0

    def _on_market_attach(self, reader: SegmentReader, new_generation: bool) -> None:
        names = [s.name for s in reader.symbols()]
        self._symbol_names = names
        self._symbol_ids = {n: i for i, n in enumerate(names)}
        sub = self.follower.subscription
        if sub is not None:
            # Start with new bars (older ones cannot fill orders arriving from now on), or,
            # back on the market segment we journaled bars of, right after the last one.
            gen, seq = self._last_bar
            start = reader.cursor
            if gen == reader.generation and seq + 1 >= sub.position:
                start = min(seq + 1, start)
            sub.position = start
        if reader.generation != self._market_gen:
            if self._market_gen:
                self._pending.append(J.SessionEndIn(self._clock.monotonic_ns(),
                                                    _SESSION_NEW_MARKET))
                self._last_event.clear()
            self._pending.append(J.SymbolsIn(reader.generation, tuple(names)))
            self._market_gen = reader.generation

    def _on_market(self, records: np.ndarray | list[Record], first_seq: int) -> None:
        book, names = self.engine.book, self._symbol_names
        now = self._clock.monotonic_ns()
        rows = records if isinstance(records, list) else records.tolist()
        for i, rec in enumerate(rows):
            sid = rec[1]
            if sid >= len(names):
                continue
            sym = names[sid]
            ev = rec[2]
            last = self._last_event.get(sym)
            if last is not None and ev < last:
                self._pending.append(J.SessionEndIn(now, _SESSION_BACKWARDS))
                self._last_event.clear()
            self._last_event[sym] = ev
            if sym in book:
                seq = rec[0] if isinstance(records, list) else first_seq + i
                self._pending.append(J.BarIn(Bar(seq, sym, ev, rec[3], rec[4], rec[5], rec[6],
                                                 rec[7], rec[8]), now, self._market_gen))

    def _check_market_state(self) -> None:
        reader = self.follower.reader
        if reader is None:
            return
        if reader.state == L.STATE_FINISHED and self._finished_gen != reader.generation:
            self._finished_gen = reader.generation
            self._pending.append(J.SessionEndIn(self._clock.monotonic_ns(), _SESSION_FINISHED))

    # ------------------------------------------------------------------ the loop
    def round(self) -> int:
        """One polling round; returns the number of inputs it took.

        The order path is kept short: the market, discovery and disconnects are looked at
        only when due; an idle round is a clock read and one stamp read per client ring.
        """
        now = self._clock.monotonic_ns()
        entries = self._pending
        self._pending = []
        if self._disconnect_due:
            self._disconnect_due = False
            for link in self.links.values():
                if link.pending_disconnect and not link.disconnected:
                    link.pending_disconnect = False
                    entries.append(J.DisconnectIn(link.name, now,
                                                  DisconnectReason.SLOW_CONSUMER))
                    self._disconnect(link)
            self._refresh_active()
        if now >= self._next_discovery:
            self._next_discovery = now + int(self.x.discovery_interval * 1e9)
            entries.extend(self.discover())
            self._refresh_active()
        if now >= self._next_market:
            # the market every MARKET_INTERVAL_NS, not every round: a bar can only fill
            # orders that arrived before it was published, so reading it a little later
            # changes nothing, and the order path stays short
            self._next_market = now + MARKET_INTERVAL_NS
            self.follower.poll(16384)
            self.follower.tick(now)
        if self._pending:
            entries.extend(self._pending)
            self._pending = []
        links = self._active
        clock = self._clock.monotonic_ns
        batches: list[OrderBatch] | None = None
        n = len(entries)
        if links:
            budget = self.x.poll_budget
            k = len(links)
            self._rr = rr = (self._rr + 1) % k
            # the accept path in one C call (journal copy, then the NEWs published) while
            # nothing else of this round is journaled before the orders, and as long as
            # every earlier batch of the round went there too (the journal's order)
            fast = n == 0
            journal = self.journal
            for i in range(k):
                link = links[(rr + i) % k]
                r = link.orders
                if r is None or link.disconnected:
                    continue
                tail = journal.tail() if fast else None
                if tail is not None:
                    ctx = link.accept_ctx
                    if ctx is None:
                        ctx = link.accept_ctx = self.engine.accept_context(link.name)
                    w = link.reports if not link.backlog else None
                    got7 = take_accept(r, budget, link.name_b, clock, self._ref_price,
                                       tail[0], tail[1], w, ctx)
                    if got7 is None:
                        continue
                    raws, frames, refs, arrival, fields, journaled, published = got7
                    if journaled:
                        journal.advance(journaled, len(raws))
                    else:
                        fast = False
                    batch = _new(OrderBatch, (link, r.generation, r.position - len(raws),
                                              arrival, raws, refs, frames, fields,
                                              journaled != 0, published))
                else:
                    got = take_and_frame(r, budget, link.name_b, clock, self._ref_price)
                    if got is None:
                        continue
                    raws, frames, refs, arrival, fields = got
                    batch = _new(OrderBatch, (link, r.generation, r.position - len(raws),
                                              arrival, raws, refs, frames, fields, False, 0))
                if batches is None:
                    batches = []
                batches.append(batch)
                link.orders_read += len(raws)
                n += len(raws)
        if n:
            self._record(entries, batches)
        for link in links:
            if link.backlog:
                self._deliver(link)
        if batches is not None:
            for b in batches:
                w, r = b.link.reports, b.link.orders
                if w is not None and r is not None:
                    w.set_consumed(r.position)
        if self._published:
            for link in self._published:  # FUTEX_WAKE only for clients that block
                if (link.reports is not None and link.orders is not None
                        and link.orders.word("wants_wake")):
                    link.reports.wake()
                    link.wakeups += 1
            self._published.clear()
        self.rounds += 1
        return n

    def _refresh_active(self) -> None:
        """The links whose order rings a round reads (after discovery or a disconnect)."""
        self._active = [lk for lk in self.links.values() if lk.orders is not None
                        and not lk.disconnected]
        for lk in self._active:
            w, r = lk.reports, lk.orders
            if w is not None and r is not None:
                w.set_consumed(r.position)

    def _disconnect(self, link: ClientLink) -> None:
        log.warning("client %s disconnected: %d reports waiting (exec.report_backlog %d); "
                    "its open orders are canceled", link.name, len(link.backlog),
                    self.x.report_backlog)
        link.disconnected = True
        link.backlog.clear()
        if link.reports is not None:
            link.reports.set_state(L.STATE_DISCONNECTED, DisconnectReason.SLOW_CONSUMER)

    def housekeeping(self, now: int) -> None:
        if now >= self._next_freeze:
            # exec's state (orders, books, the reports kept for clients) is long-lived and
            # acyclic: reference counting frees it. Left to the cyclic GC, every collection
            # of the old generation would walk all of it (measured: ~2 us per order at
            # tens of thousands of resting orders). Frozen objects are never walked again
            # (still freed by reference counting); young cycles are still collected.
            self._next_freeze = now + GC_FREEZE_INTERVAL_NS
            gc.freeze()
        self._check_market_state()
        if now >= self._next_hb:
            self._next_hb = now + self._hb_ns
            for link in self.links.values():
                if link.reports is not None:
                    link.reports.heartbeat(now)
        if self._notifier is not None:
            self._notifier.maybe_watchdog(now)
            if now >= self._next_status:
                self._next_status = now + STATUS_INTERVAL_NS
                self._notifier.status(self.status_text())

    def step(self) -> int:
        """One iteration of :meth:`run`: a round, and the housekeeping when it is due."""
        n = self.round()
        now = self._clock.monotonic_ns()
        if now >= self._next_house:
            self._next_house = now + HOUSEKEEPING_INTERVAL_NS
            self.housekeeping(now)
        return n

    def wait_orders(self) -> bool:
        """After a round that found nothing (spin strategy): wait for the next order record
        in :func:`~tradingd.exec.execfast.wait_ready` (C: a few loads per ring and spin,
        the GIL released) until the first of the market read, discovery and housekeeping
        is due (at most ``SPIN_WAIT_MAX_NS``). A lone order is then taken within about a
        hundred nanoseconds of its publication, not after the rest of an idle Python
        round. Returns at once (False) when a round has work of its own: inputs pending, a
        disconnect due, reports kept for a slow client."""
        if self._pending or self._disconnect_due:
            return False
        readers = []
        for link in self._active:
            if link.backlog:
                return False
            r = link.orders
            if r is not None and not link.disconnected:
                readers.append(r)
        now = self._clock.monotonic_ns()
        deadline = min(self._next_discovery, self._next_market, self._next_house,
                       now + SPIN_WAIT_MAX_NS)
        if deadline <= now:
            return False
        return wait_ready(readers, deadline)

    def run(self) -> None:
        """Poll until ``stop`` is set."""
        stop, step = self._stop, self.step
        spin = self.x.wait.strategy == "spin"
        # the C wait reads CLOCK_MONOTONIC: only with the system clock (tests may pass
        # another); without C, an idle round is itself the spin
        spin_wait = spin and execfast.FAST is not None and self._clock is SYSTEM_CLOCK
        interval = self.x.wait.poll_interval
        idle = 0
        while not stop.is_set():
            if step():
                idle = 0
                continue
            idle += 1
            if spin_wait:
                self.wait_orders()
            elif not spin and idle > 100:
                stop.wait(interval)

    def close(self) -> None:
        """Stop: report rings marked stopped (detail: exec stopped) and removed."""
        with self.lock:  # a scrape may be reading these rings (ring_rows)
            for link in self.links.values():
                if link.reports is not None:
                    link.reports.set_word("detail", DisconnectReason.EXEC_STOPPED)
                    link.reports.close()
                    link.reports = None
                if link.orders is not None:
                    link.orders.close()
                    link.orders = None
        self.follower.close()
        self.journal.close()
        os.close(self._lock_fd)

    # ------------------------------------------------------------------ reporting
    def status_text(self) -> str:
        e = self.engine
        connected = sum(1 for lk in self.links.values() if lk.reports is not None)
        slow = sum(1 for lk in self.links.values() if lk.slow)
        market = "market attached" if self.follower.attached else "market down"
        return (f"{connected} clients, {len(e.open_orders())} open orders, "
                f"{sum(e.counters.orders.values())} orders, {e.counters.fills} fills, "
                f"{slow} slow, {market}")

    def ring_rows(self) -> list[dict[str, object]]:
        """Per-client ring state (for metrics and STATUS); call it holding :attr:`lock`.

        Never raises: the main loop closes and reopens rings under the same lock, but a
        ring found closed anyway (released memory: ``ValueError``) reads as no ring, so a
        scrape cannot fail with a 500.
        """
        return [self._ring_row(name, lk) for name, lk in sorted(self.links.items())]

    @staticmethod
    def _ring_row(name: str, lk: ClientLink) -> dict[str, object]:
        row: dict[str, object] = {
            "client": name, "order_ring_depth": 0, "report_ring_depth": 0,
            "backlog": len(lk.backlog), "slow": lk.slow, "slow_events": lk.slow_events,
            "disconnected": lk.disconnected, "delivered": lk.delivered,
            "orders_read": lk.orders_read, "connected": False, "wakeups": lk.wakeups,
            "client_alive": False}
        r, w = lk.orders, lk.reports
        try:
            if r is not None:
                row["order_ring_depth"] = r.cursor - r.position
                row["client_alive"] = r.owner_alive()
            if w is not None:
                consumed = (r.word("peer_consumed") if r is not None
                            and r.word("peer_generation") == w.generation else 0)
                row["report_ring_depth"] = w.cursor - consumed
                row["connected"] = True
        except ValueError:  # a ring closed under us (its memoryviews released)
            row.update(order_ring_depth=0, report_ring_depth=0, connected=False,
                       client_alive=False)
        return row

def is_response(r: Report) -> bool:
    """Is ``r`` the direct answer to an order input (ack, reject, cancel, cancel reject)?"""
    return (r.exec_type in (ExecType.NEW, ExecType.REJECTED, ExecType.CANCELED)
            or r.report_kind == ReportKind.CANCEL_REJECT)


__all__ = ["LATENCY_BUCKETS", "ClientLink", "ExecLocked", "ExecService",
           "default_journal_path", "is_response"]
