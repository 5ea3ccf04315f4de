"""tradingd-gateway: serve the segment to web clients over WebSocket, and the live page.

Shaped like tradingd-consumer: one YAML config (the ``gateway:`` section), ``--config`` /
``--segment``, READY/STATUS/WATCHDOG/STOPPING to systemd, priority-prefixed logs, metrics
on their own port (``gateway.metrics``, 9103), exit 0 on SIGTERM.

One thread runs everything that touches clients or the segment: an asyncio loop whose main
task reads the ring (a :class:`~tradingd.consumer.follower.Follower`, so attaching, producer
restarts, generations and the two health signals work exactly as in the consumer), hands
each batch to the :class:`~tradingd.gateway.hub.Hub`, and when caught up waits in the
segment's futex for at most ``gateway.poll_interval`` (woken by the producer's next publish),
then lets the clients' I/O run. Client input and new connections are therefore handled
within one poll interval (1 ms), and a record reaches the frames without a poll's delay.
Sends never wait (they queue in the transports), so no client can hold the reader. After a
(re)attach the backlog already in the ring is not replayed as live updates: clients get
snapshots of the new generation instead (latest slots plus the last
``gateway.snapshot_records`` records per symbol).

``TRADINGD_GATEWAY_TEST_DELAY=SECONDS`` makes the gateway sleep that long after each batch:
a deliberately slow gateway, so that tests can make the producer lap it. Never in production.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from picows import ws_create_server

from tradingd import constants as C
from tradingd.clock import SYSTEM_CLOCK, Clock
from tradingd.consumer.follower import Follower
from tradingd.daemon.cli import config_from_args, daemon_parser, log_level, run_main
from tradingd.daemon.config import Config, GatewayConfig, resolve_owner
from tradingd.daemon.logs import setup_logging
from tradingd.daemon.metrics_http import MetricsServer
from tradingd.daemon.notify import Notifier
from tradingd.daemon.signals import StopFlag
from tradingd.errors import ConfigError, GatewayUnavailable
from tradingd.gateway.hub import Hub, Limits, Slot, rows_of
from tradingd.gateway.metrics import GatewaySnapshot, make_registry
from tradingd.gateway.protocol import CloseCode, gen_hex
from tradingd.gateway.server import Access, GatewayServer, load_page
from tradingd.segment import layout as L
from tradingd.segment import shm
from tradingd.segment.reader import SegmentReader

PROG = "tradingd-gateway"
log = logging.getLogger("tradingd.gateway.daemon")

TEST_DELAY_ENV = "TRADINGD_GATEWAY_TEST_DELAY"
#: Records scanned back from the reading position for snapshots (at most half the ring).
HISTORY_SCAN = 16384
#: How often the status (producer up, data fresh, generation) is re-evaluated (ns).
_STATUS_NS = 50_000_000
_SYSTEMD_STATUS_NS = 1_000_000_000
#: Shortest token accepted (a shorter one is guessable).
MIN_TOKEN_LENGTH = 16


class SegmentHistory:
    """The hub's :class:`~tradingd.gateway.hub.SegmentView` over an attached reader."""

    def __init__(self, reader: SegmentReader) -> None:
        self._reader = reader
        self._cache: tuple[int, int, dict[int, list[tuple[Any, ...]]]] | None = None

    def latest(self, symbol_id: int) -> Slot | None:
        return self._reader.latest_tuple(symbol_id)

    def history(self, to: int, per_symbol: int) -> dict[int, list[tuple[Any, ...]]]:
        """The last ``per_symbol`` records of each symbol among the ring's records < ``to``.

        One numpy copy of up to HISTORY_SCAN records, cached for the same ``to`` (a hundred
        clients subscribing at once cost one scan).
        """
        if self._cache is not None and self._cache[:2] == (to, per_symbol):
            return self._cache[2]
        reader = self._reader
        scan = min(HISTORY_SCAN, reader.geometry.ring_capacity // 2)
        sub = reader.subscribe("latest")
        sub.position = max(0, to - scan)
        records = sub.poll_batch(max(0, to - sub.position))
        first = sub.position - len(records)
        seqs = np.arange(first, first + len(records), dtype=np.int64)
        keep = seqs < to
        records, seqs = records[keep], seqs[keep]
        out: dict[int, list[tuple[Any, ...]]] = {}
        sids = records["symbol_id"]
        for sid in np.unique(sids).tolist():
            idx = np.flatnonzero(sids == sid)[-per_symbol:]
            out[int(sid)] = rows_of(records[idx], seqs[idx])
        self._cache = (to, per_symbol, out)
        return out


def read_token(g: GatewayConfig, env: dict[str, str] | None = None) -> str | None:
    """The bearer token: ``gateway.token_file``, else the systemd credential, else None."""
    env = dict(os.environ) if env is None else env
    path: Path | None = g.token_file
    key = "gateway.token_file"
    if path is None:
        creds = env.get("CREDENTIALS_DIRECTORY")
        if not creds:
            return None
        path = Path(creds) / C.GATEWAY_TOKEN_CREDENTIAL
        key = f"credential {C.GATEWAY_TOKEN_CREDENTIAL} (LoadCredential=)"
        try:
            if not path.exists():  # the unit passes other credentials, not ours
                return None
        except OSError as exc:  # the directory is there but not ours to read: never run open
            raise ConfigError(f"{key}: cannot access {path}: {exc.strerror or exc}") from None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{key}: cannot read the token file {path}: {why}") from None
    if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
        raise ConfigError(f"{key}: the token in {path} must be at least {MIN_TOKEN_LENGTH} "
                          f"characters without spaces (e.g. `openssl rand -hex 32`)")
    return token


def limits_of(g: GatewayConfig) -> Limits:
    return Limits(latest_max_rate=g.latest_max_rate, snapshot_records=g.snapshot_records,
                  heartbeat_interval=g.heartbeat_interval,
                  send_buffer_limit=g.send_buffer_limit,
                  slow_client_timeout=g.slow_client_timeout,
                  max_subscriptions=g.max_subscriptions, message_rate=g.message_rate,
                  message_burst=g.message_burst)


class GatewayService:
    """The gateway's state and main loop (in-process testable; no signals, no argv)."""

    def __init__(self, config: Config, *, stop: Any, notifier: Notifier | None = None,
                 clock: Clock = SYSTEM_CLOCK, test_delay: float = 0.0,
                 env: dict[str, str] | None = None) -> None:
        g = config.gateway
        self.config = config
        self.g = g
        self._stop = stop
        self._notifier = notifier
        self._clock = clock
        self._test_delay = test_delay
        self.hub = Hub(limits_of(g), clock_ns=clock.monotonic_ns)
        self.access = Access(g.allowed_origins, read_token(g, env), g.max_connections)
        self.server = GatewayServer(self.hub, self.access, load_page())
        self.follower = Follower(
            config.segment.name, self.hub.on_records, clock=clock,
            attach_retry_interval=g.attach_retry_interval,
            heartbeat_timeout_factor=g.heartbeat_timeout_factor,
            data_stale_after=g.data_stale_after, on_attach=self._on_attach,
            logger=logging.getLogger("tradingd.gateway.follower"),
            owner=resolve_owner(config))  # segment.owner: only the producer account's file
        self._pending: SegmentReader | None = None
        self._instruments: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port = 0
        self._next_status = 0
        self._next_systemd = 0
        self._rate_mark = (clock.monotonic_ns(), 0, 0)

    # ------------------------------------------------------------------ segment
    def _on_attach(self, reader: SegmentReader, new_generation: bool) -> None:
        self._pending = reader  # handled in the loop, after the follower's bookkeeping

    def _attach(self, reader: SegmentReader) -> None:
        sub = self.follower.subscription
        if sub is None or self.follower.reader is not reader:
            return
        sub.position = max(sub.position, reader.cursor)  # snapshots replace the backlog
        previous = self.hub.generation
        infos = reader.symbols()
        names = [s.name for s in infos]
        self._instruments = [{"name": s.name, "asset_class": s.asset_class,
                              "currency": s.currency, "price_decimals": s.price_decimals}
                             for s in infos]
        self.hub.symbols = names
        event = "generation_change" if previous and previous != reader.generation else "attached"
        self.hub.generation = reader.generation
        self.hub.set_status(self._status(), event)
        self.hub.attach(SegmentHistory(reader), reader.generation, names, sub.position)

    def _status(self) -> dict[str, Any]:
        f = self.follower
        h = f.health()
        reader = f.reader
        state = L.STATE_NAMES.get(reader.state, "unknown") if reader is not None else "none"
        return {"producer": "up" if h.producer_alive else "down", "attached": h.attached,
                "gen": gen_hex(f.generation), "state": state,
                "data": "fresh" if h.data_fresh else "stale", "symbols": self.hub.symbols,
                "instruments": self._instruments}

    def _update_status(self) -> None:
        new = self._status()
        old = self.hub.status
        if new == old:
            return
        event = None
        if new["producer"] != old.get("producer"):
            event = f"producer_{new['producer']}"
        elif new["attached"] != old.get("attached"):
            event = "attached" if new["attached"] else "detached"
        elif new["data"] != old.get("data"):
            event = f"data_{new['data']}"
        elif new["state"] != old.get("state"):
            event = f"state_{new['state']}"
        self.hub.set_status(new, event)

    # ------------------------------------------------------------------ running
    async def start(self) -> None:
        """Bind the WebSocket/page port (GatewayUnavailable if it cannot)."""
        g = self.g
        self._loop = asyncio.get_running_loop()
        try:
            self._server = await ws_create_server(
                self.server.factory, g.address, g.port, max_frame_size=g.max_message_bytes,
                enable_auto_ping=True, auto_ping_idle_timeout=max(10.0, g.heartbeat_interval * 5),
                auto_ping_reply_timeout=10.0, websocket_handshake_timeout=5,
                logger_name="gateway", reuse_address=True)
        except OSError as exc:
            raise GatewayUnavailable(f"cannot listen on {g.address}:{g.port}: "
                                     f"{exc.strerror or exc} (gateway.port; 0 picks a free "
                                     f"port)") from None
        self.port = int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.g.address}]" if ":" in self.g.address else self.g.address
        return f"http://{host}:{self.port}/"

    async def run(self) -> None:
        """Read and serve until ``stop`` is set; then close every client (1001)."""
        f, hub, clock = self.follower, self.hub, self._clock
        max_records = self.g.max_records_per_frame
        idle = self.g.poll_interval
        f.tick()
        while not self._stop.is_set():
            n = f.poll(max_records)
            if n and self._test_delay:
                time.sleep(self._test_delay)
            now = clock.monotonic_ns()
            f.tick(now)
            if f.reader is not None and f.reader.state == L.STATE_STOPPED:
                f.tick(force=True)
            if self._pending is not None:
                reader, self._pending = self._pending, None
                self._attach(reader)
            elif f.reader is None and hub.view is not None:
                hub.detach()
            if now >= self._next_status:
                self._next_status = now + _STATUS_NS
                self._update_status()
            hub.tick()
            self._housekeeping(now)
            if n >= max_records:  # behind: read on after the clients' I/O
                await asyncio.sleep(0)
            elif (sub := f.subscription) is not None and f.reader is not None \
                    and f.reader.state in L.RUNNING_STATES:
                # caught up: sleep in the segment's futex, woken the moment the producer
                # publishes (about 25 us here, rather than up to a poll interval later), at
                # most poll_interval; then the clients' I/O runs
                sub.wait_for_data(idle)
                await asyncio.sleep(0)
            else:
                await asyncio.sleep(idle)
        hub.close_all(CloseCode.GOING_AWAY, "gateway stopping", "shutdown")
        await asyncio.sleep(0.2)  # let the close frames go out
        self._server.close()

    def _housekeeping(self, now: int) -> None:
        if self._notifier is None:
            return
        self._notifier.maybe_watchdog(now)
        if now >= self._next_systemd:
            self._next_systemd = now + _SYSTEMD_STATUS_NS
            self._notifier.status(self.status_text(now))

    def status_text(self, now: int | None = None) -> str:
        """``serving 3 clients on :8765, gen 7f3a1c2b, producer up, 812 rec/s in, ...``."""
        now = self._clock.monotonic_ns() if now is None else now
        t0, read0, sent0 = self._rate_mark
        read, sent = self.follower.consumed, sum(self.hub.counters.messages_sent.values())
        dt = max((now - t0) / 1e9, 1e-9)
        self._rate_mark = (now, read, sent)
        st = self.hub.status
        where = (f"gen {self.follower.generation >> 32:08x}" if self.follower.attached
                 else self.follower.waiting_text())
        return (f"serving {len(self.hub.clients)} clients on :{self.port}, {where}, producer "
                f"{st['producer']}, data {st['data']}, {(read - read0) / dt:.0f} rec/s in, "
                f"{(sent - sent0) / dt:.0f} msg/s out")

    def close(self) -> None:
        self.follower.close()

    # ------------------------------------------------------------------ metrics
    def _snapshot(self) -> GatewaySnapshot:
        hub, c, f = self.hub, self.hub.counters, self.follower
        return GatewaySnapshot(
            segment=f.name, generation=f.generation, attached=f.attached,
            producer_up=hub.status.get("producer") == "up", connections=len(hub.clients),
            accepted=c.accepted, rejected=dict(self.access.rejected),
            subscriptions=hub.subscriptions(), messages_sent=dict(c.messages_sent),
            bytes_sent=c.bytes_sent, records_read=f.consumed, records_sent=c.records_sent,
            records_lapped=c.records_lapped, updates_conflated=c.updates_conflated,
            updates_dropped=c.updates_dropped, congestions=c.congestions,
            closes=dict(c.closes), errors=dict(c.errors),
            generation_changes=f.generation_changes, latency_buckets=hub.latency.cumulative(),
            latency_sum=hub.latency.sum_seconds)

    def snapshot(self) -> GatewaySnapshot:
        """The figures, taken in the event loop's thread (called from the scrape thread)."""
        loop = self._loop
        if loop is None or not loop.is_running():
            return self._snapshot()

        async def take() -> GatewaySnapshot:
            return self._snapshot()

        return asyncio.run_coroutine_threadsafe(take(), loop).result(timeout=5)


def _test_delay() -> float:
    text = os.environ.get(TEST_DELAY_ENV, "")
    if not text:
        return 0.0
    try:
        value = max(0.0, float(text))
    except ValueError:
        log.warning("ignoring %s=%r: not a number of seconds", TEST_DELAY_ENV, text)
        return 0.0
    log.warning("%s=%s: sleeping after every batch (a test setting: never in production)",
                TEST_DELAY_ENV, text)
    return value


async def _serve(service: GatewayService, notifier: Notifier) -> None:
    await service.start()
    g = service.g
    log.info("gateway on %s (WebSocket %sws, page %s), segment %s, %s", service.url,
             service.url.replace("http", "ws", 1), service.url, service.config.segment.name,
             "bearer token required" if service.access.token else "no authentication")
    if g.address not in ("127.0.0.1", "::1"):
        log.warning("gateway.address %s is not loopback: reachable from other hosts",
                    g.address)
    notifier.ready(service.status_text())
    await service.run()


def _run() -> int:
    parser = daemon_parser(PROG, "Serve the tradingd segment to web clients over WebSocket "
                                 "(docs/websocket-api.md) and a live page at /.", "gateway")
    args = parser.parse_args()
    config = config_from_args(args)
    setup_logging(PROG, log_level(args, config))
    shm.check_platform()
    # picows logs a client's bad frame at error level; the gateway logs (info) and counts it
    logging.getLogger("picows").setLevel(logging.CRITICAL)
    g = config.gateway
    with StopFlag(ignore_sighup=True) as stop, Notifier() as notifier:
        service = GatewayService(config, stop=stop, notifier=notifier, test_delay=_test_delay())
        server = None
        try:
            if g.metrics.enabled:
                server = MetricsServer(make_registry(service.snapshot), g.metrics.address,
                                       g.metrics.port, "gateway.metrics.port")
                log.info("metrics on %s", server.url)
            asyncio.run(_serve(service, notifier))
            log.info("stopping (%s): %d connections served, %d records read",
                     stop.reason, service.hub.counters.accepted, service.follower.consumed)
            notifier.stopping("stopping")
        finally:
            service.close()
            if server is not None:
                server.close()
    return 0


def main() -> None:
    """Console script ``tradingd-gateway``."""
    run_main(_run, PROG)


if __name__ == "__main__":
    main()
