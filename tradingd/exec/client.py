"""OrderClient: what a strategy calls to trade through tradingd-exec.

::

    from tradingd.exec import OrderClient
    with OrderClient("alice") as c:           # registers /dev/shm/tradingd.orders.alice
        oid = c.submit("AAPL", "buy", 10)     # market order, DAY
        c.submit("AAPL", "sell", 5, price=200.0, tif="GTC")
        for r in c.reports(timeout=2.0):      # execution reports, as they arrive
            print(r.describe())
        print(c.positions())

Creating the client creates its order ring (``<segment>.orders.<name>``; a leftover from a
crashed earlier run of the same client is reclaimed) and waits until exec has answered with
the report ring (``<segment>.reports.<name>``): exec then restates the client's open orders
and positions, and tells it where its order ids and sequence numbers continue. ``submit``
never blocks exec: it writes into the client's own ring, and waits (``timeout``) only when
exec has not yet taken the last ``capacity`` records (:class:`OrderRingFull` after that).

When exec restarts, it creates a new report ring and re-sends every report after the last
one this client processed (``last_report_seq`` in the order ring header): :meth:`reports`
follows the new ring by itself, and each report is seen exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from tradingd import constants as C
from tradingd.constants import DEFAULT_SEGMENT_NAME
from tradingd.errors import SegmentError, TradingdError
from tradingd.exec.protocol import (
    OPEN,
    ExecType,
    MsgType,
    OrdStatus,
    OrdType,
    Report,
    ReportKind,
    Side,
    TimeInForce,
)
from tradingd.segment import layout as L
from tradingd.segment import shm
from tradingd.segment.channel import (
    KIND_ORDERS,
    KIND_REPORTS,
    ChannelReader,
    body_format,
    create_channel,
    orders_name,
    reports_name,
)

_SIDES = {"buy": Side.BUY, "sell": Side.SELL}
_TIFS = {"day": TimeInForce.DAY, "gtc": TimeInForce.GTC, "ioc": TimeInForce.IOC}
_CHECK_EVERY_NS = 20_000_000  # how often an idle reader looks for a replaced report ring
#: How a client waits for reports, as the consumer waits for records: ``spin`` (busy, the
#: lowest latency), ``poll`` (sleep ``poll_interval`` between looks), ``block`` (sleep on the
#: report ring's futex until exec publishes: no CPU while idle, a wake-up's latency).
WAIT_STRATEGIES = ("spin", "poll", "block")
_BLOCK_SLICE_S = 0.02  # a blocked reader still looks for a replaced ring this often
# the hot path's constants (no Enum or layout lookups per order or report)
_LIMIT, _MARKET, _NEW_ORDER = int(OrdType.LIMIT), int(OrdType.MARKET), int(MsgType.NEW_ORDER)
_TRADE, _KIND_EXECUTION, _KIND_POSITION = (int(ExecType.TRADE), int(ReportKind.EXECUTION),
                                           int(ReportKind.POSITION))
_H = L.CHANNEL_HEADER
_RING = _H.size
_W_CURSOR = _H.word("ring_cursor")
_W_CONSUMED = _H.word("peer_consumed")
_W_LAST_REPORT = _H.word("last_report_seq")
_MASK32 = 0xFFFFFFFF
_REPORT_BODY = body_format(KIND_REPORTS)
_SYMBOL_BYTES: dict[str, bytes] = {}
_SYMBOL_NAMES: dict[bytes, str] = {}
_new = tuple.__new__


class ExecUnavailable(TradingdError):
    """tradingd-exec did not answer the client's registration in time.

    Is tradingd-exec running for this segment (``systemctl status tradingd-exec``)? It
    must be able to read the client's order ring (group and mode).
    """

    exit_code = C.EXIT_UNAVAILABLE


class OrderRingFull(TradingdError):
    """Exec has not taken the client's earlier orders: the order ring stayed full.

    Exec is down or overloaded; the order was NOT sent. Retry later.
    """

    exit_code = C.EXIT_UNAVAILABLE


class ClientDisconnected(TradingdError):
    """Exec disconnected this client (it read its reports too slowly); orders canceled.

    Create a new OrderClient to reconnect (exec restates what is left).
    """

    exit_code = C.EXIT_UNAVAILABLE


@dataclass
class Position:
    """Net quantity (+ long, - short) and average cost, from the fills and restatements."""

    qty: int = 0
    avg_px: float = 0.0


class OrderClient:
    """One client's connection to tradingd-exec (not thread-safe: one thread uses it)."""

    def __init__(self, name: str, *, segment: str = DEFAULT_SEGMENT_NAME,
                 capacity: int = 4096, mode: int = 0o640, group: str | int | None = None,
                 connect_timeout: float = 10.0, wait: str = "spin",
                 poll_interval: float = 0.0005, heartbeat_interval: float = 0.1) -> None:
        if not name or len(name) > 31 or not all(c.isalnum() or c in "_-" for c in name):
            raise TradingdError(f"invalid client name {name!r}: 1-31 of A-Z a-z 0-9 _ -")
        if wait not in WAIT_STRATEGIES:
            raise TradingdError(f"unknown wait strategy {wait!r}: expected one of "
                                f"{', '.join(WAIT_STRATEGIES)}")
        self.name = name
        self.segment = segment
        self.wait = wait
        self.poll_interval = poll_interval
        self._w = create_channel(orders_name(segment, name), KIND_ORDERS, client=name,
                                 capacity=capacity, mode=mode, group=shm.resolve_group(group),
                                 heartbeat_interval_ns=int(heartbeat_interval * 1e9))
        self.generation = self._w.generation
        self._words = self._w._words  # the order ring's header words (heartbeat)
        self._stamps = self._w._stamps
        self._mask = self._w._mask
        self._stride = self._w._stride
        self._capacity = self._w.capacity
        self._pack = body_format(KIND_ORDERS).pack_into
        if wait == "block":
            self._w.set_word("wants_wake", 1)  # exec then FUTEX_WAKEs us after reports
        self._hb_word = L.CHANNEL_HEADER.word("heartbeat_ns")
        self._r: ChannelReader | None = None
        self._credit = 0  # orders exec has taken (from its report ring header)
        self.last_report_seq = 0
        self.gaps = 0
        self.reports_seen = 0
        self._positions: dict[str, Position] = {}
        self.orders: dict[int, Report] = {}  # client order id -> its latest report
        self._next_check = 0
        self._seq = 0
        self._next_id = 1
        try:
            self._connect(connect_timeout)
        except BaseException:
            self._w.close()
            raise
        r = self._reader()
        self._seq = r.word("last_client_seq")
        self._next_id = r.word("last_client_order_id") + 1

    def _reader(self) -> ChannelReader:
        assert self._r is not None
        return self._r

    # ------------------------------------------------------------------ connection
    def _attach_reports(self) -> bool:
        """Attach the report ring answering our order ring; False if it is not there yet."""
        try:
            r = ChannelReader(reports_name(self.segment, self.name), kind=KIND_REPORTS)
        except (SegmentError, OSError):
            return False
        if r.word("peer_generation") != self.generation or r.state != L.STATE_LIVE:
            r.close()
            return False
        if self._r is not None:
            self._r.close()
        self._r = r
        self._w.set_consumed(0)
        self._w.set_word("peer_generation", r.generation)  # after the count it qualifies
        self._credit = max(self._credit, r.peer_consumed)
        return True

    def _connect(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._attach_reports():
            if time.monotonic() > deadline:
                raise ExecUnavailable(
                    f"no answer from tradingd-exec within {timeout:g} s: its report ring "
                    f"{shm.segment_path(reports_name(self.segment, self.name))} for order "
                    f"ring generation {self.generation:016x} did not appear (is tradingd-exec "
                    f"running for segment {self.segment!r}?)")
            time.sleep(0.002)

    def _check_reports_ring(self) -> None:
        """Follow exec to a new report ring (exec restarted); raise if we were dropped."""
        r = self._r
        if r is not None and r.state == L.STATE_DISCONNECTED:
            raise ClientDisconnected(f"tradingd-exec disconnected client {self.name} "
                                     f"(reason {r.word('detail')}: slow consumer)")
        if r is None or r.name_status() != "same" or r.state == L.STATE_STOPPED:
            self._attach_reports()

    # ------------------------------------------------------------------ orders
    def _credit_left(self) -> int:
        r = self._r
        if r is not None:
            c = r.peer_consumed
            if c > self._credit:
                self._credit = c
        return self._w.free(self._credit)

    def _send(self, *body: object, timeout: float) -> None:
        if self._credit_left() <= 0:
            deadline = time.monotonic() + timeout
            while self._credit_left() <= 0:
                if time.monotonic() > deadline:
                    raise OrderRingFull(f"order ring of client {self.name} full for "
                                        f"{timeout:g} s: exec is not taking orders")
                self._check_reports_ring()
                if self.wait != "spin":
                    time.sleep(self.poll_interval)
        self._w.publish(*body)

    def submit(self, symbol: str, side: str | int, quantity: int, price: float | None = None,
               *, tif: str | int = "day", ord_type: int | None = None,
               client_order_id: int | None = None, timeout: float = 5.0) -> int:
        """Send a new order; return its client order id. A price makes it a limit order.

        The common case is written out (the ring's protocol, ``ChannelWriter.publish``,
        inline: mark, body, stamp, cursor): a submit is the client's share of the order ->
        acknowledgement round trip. A full ring goes the general way (:meth:`_send`).
        """
        s = _SIDES.get(side, side) if isinstance(side, str) else side
        t = _TIFS.get(tif, -1) if isinstance(tif, str) else tif
        if t == -1 and isinstance(tif, str):
            t = _TIFS.get(tif.lower(), -1)
        if ord_type is None:
            ord_type = _LIMIT if price is not None else _MARKET
        oid = self._next_id if client_order_id is None else client_order_id
        if oid >= self._next_id:
            self._next_id = oid + 1
        self._seq += 1
        sym = _SYMBOL_BYTES.get(symbol)
        if sym is None:
            sym = symbol.encode("ascii")
            if len(_SYMBOL_BYTES) < 4096:
                _SYMBOL_BYTES[symbol] = sym
        now = time.monotonic_ns()
        words = self._words
        words[self._hb_word] = now
        px = 0.0 if price is None else float(price)
        w = self._w
        cursor = words[_W_CURSOR]
        if cursor - self._credit >= self._capacity:  # no credit known: look, or wait
            self._send(_NEW_ORDER, self._seq, oid, s, ord_type, t, quantity, px, now, sym,
                       timeout=timeout)
            return oid
        slot = cursor & self._mask
        i = slot * self._stride
        stamps = self._stamps
        stamps[i] = ~cursor & _MASK32
        self._pack(w.mapping, _RING + slot * w._rec + 4, _NEW_ORDER, self._seq, oid, s,
                   ord_type, t, quantity, px, now, sym)
        stamps[i] = cursor & _MASK32
        words[_W_CURSOR] = cursor + 1
        return oid

    def cancel(self, client_order_id: int, *, timeout: float = 5.0) -> None:
        """Ask exec to cancel an order (answered by a CANCELED report or a cancel reject)."""
        self._seq += 1
        now = time.monotonic_ns()
        self._send(MsgType.CANCEL, self._seq, client_order_id, 0, 0, 0, 0, 0.0, now, b"",
                   timeout=timeout)

    # ------------------------------------------------------------------ reports
    def poll(self) -> Report | None:
        """The next report, or None if none is there now.

        ``ChannelReader.poll`` written out (stamp, copy, stamp again), as in :meth:`submit`.
        """
        r = self._r
        if r is not None:
            p = r.position
            i = (p & r._mask) * r._stride
            lo = p & _MASK32
            stamps = r._stamps
            if stamps[i] == lo:
                t = _REPORT_BODY.unpack_from(r._mm, _RING + (p & r._mask) * r._rec + 4)
                if stamps[i] == lo:
                    r.position = p + 1
                    return self._took(_new(Report, t), p + 1)
        now = time.monotonic_ns()
        if now >= self._next_check:
            self._next_check = now + _CHECK_EVERY_NS
            self._words[self._hb_word] = now
            self._check_reports_ring()
        return None

    def _took(self, rep: Report, position: int) -> Report:
        words = self._words
        words[_W_CONSUMED] = position  # credit for exec's report ring
        seq = rep.report_seq
        if self.last_report_seq and seq != self.last_report_seq + 1:
            self.gaps += 1
        self.last_report_seq = seq
        words[_W_LAST_REPORT] = seq
        self.reports_seen += 1
        self._account(rep)
        return rep

    def _account(self, rep: Report) -> None:
        kind = rep.report_kind
        if kind == _KIND_EXECUTION:
            self.orders[rep.client_order_id] = rep
            if rep.exec_type != _TRADE:
                return
        sym = _SYMBOL_NAMES.get(rep.symbol)
        if sym is None:
            sym = rep.symbol.rstrip(b"\0").decode("ascii", "replace")
            if len(_SYMBOL_NAMES) < 4096:
                _SYMBOL_NAMES[rep.symbol] = sym
        if kind == _KIND_POSITION:
            self._positions[sym] = Position(rep.last_qty, rep.avg_px)
            return
        if rep.exec_type == _TRADE and rep.last_qty:
            p = self._positions.setdefault(sym, Position())
            signed = rep.last_qty if rep.side == Side.BUY else -rep.last_qty
            new = p.qty + signed
            if p.qty == 0 or (p.qty > 0) == (signed > 0):
                p.avg_px = (p.avg_px * abs(p.qty) + rep.last_px * rep.last_qty) / abs(new)
            elif new == 0:
                p.avg_px = 0.0
            elif (new > 0) != (p.qty > 0):
                p.avg_px = rep.last_px
            p.qty = new

    def next_report(self, timeout: float = 5.0) -> Report | None:
        """Wait (by the client's wait strategy) for the next report; None after ``timeout``."""
        rep = self.poll()
        if rep is not None:
            return rep
        deadline = time.monotonic() + timeout
        spin, block = self.wait == "spin", self.wait == "block"
        while True:
            r = self._r
            wake = r.word("wake_seq") if block and r is not None else 0
            rep = self.poll()
            if rep is not None:
                return rep
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if block and r is not None and r is self._r:
                r.wait_wake(wake, min(left, _BLOCK_SLICE_S))
            elif not spin:
                time.sleep(self.poll_interval)

    def reports(self, timeout: float | None = None) -> Iterator[Report]:
        """Reports as they arrive; ends after ``timeout`` seconds without one (None: never)."""
        while True:
            rep = self.next_report(3600.0 if timeout is None else timeout)
            if rep is None:
                if timeout is not None:
                    return
                continue
            yield rep

    def wait_for(self, predicate: Callable[[Report], bool], timeout: float = 5.0) -> Report:
        """Read reports until one matches; raise TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            rep = self.next_report(max(0.0, deadline - time.monotonic()))
            if rep is not None and predicate(rep):
                return rep
            if rep is None:
                raise TimeoutError(f"no matching report within {timeout:g} s")

    def positions(self) -> dict[str, Position]:
        """Net position per symbol from the fills seen (and exec's restatement)."""
        return {k: Position(v.qty, v.avg_px) for k, v in self._positions.items() if v.qty}

    def open_orders(self) -> dict[int, Report]:
        """Orders whose latest report leaves them open (new or partially filled)."""
        return {k: v for k, v in self.orders.items() if v.ord_status in OPEN}

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Unregister: remove the order ring (exec keeps this client's orders resting)."""
        if self._r is not None:
            self._r.close()
            self._r = None
        self._w.close()

    def __enter__(self) -> OrderClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "ClientDisconnected",
    "ExecUnavailable",
    "OrdStatus",
    "OrderClient",
    "OrderRingFull",
    "Position",
]
