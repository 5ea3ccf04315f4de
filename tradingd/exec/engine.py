"""The order book and its rules: one deterministic state machine fed with journaled inputs.

:class:`Engine` is the only writer of order state. It is pure: no clock, no I/O, no
randomness; every time it uses comes in with the input that carries it (an order's
arrival, a bar's publish and receive time). So feeding it the journal again yields the
same reports, bit for bit (:mod:`tradingd.exec.journal`), and a real venue adapter could
take the place of :mod:`tradingd.exec.matching` behind the same inputs and reports.

Inputs and what they produce (every method returns ``[(client, Report), ...]``):

* ``on_order(client, raw_fields, arrival_ns, ref_price)``: a record from a client's order
  ring, as read (garbage included). A new order is validated (message type, side, type,
  time in force, symbol, quantity > 0, limit price > 0 and finite), checked for a duplicate
  id and against the risk limits (max order quantity, max open orders per client, max
  notional per client and symbol: open orders' leaves x price, market orders priced at
  ``ref_price``, the last price exec saw), then accepted (NEW) or rejected with a reason.
  A cancel cancels an open order or is refused (a cancel reject: unknown order, too late).
* ``on_bar(bar, recv_ns)``: fills resting orders of the bar's symbol by the matching rules,
  in time priority; IOC orders are canceled after their first eligible bar.
* ``on_session_end(ns)``: the replay session ended; DAY orders expire.
* ``on_attach(client, ns)``: a client (re)connected with a new order ring: its open orders
  and positions are restated (ExecType ORDER_STATUS / POSITION records).
* ``on_disconnect(client, ns)``: exec dropped the client; its open orders are canceled.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from tradingd.exec import matching
from tradingd.exec.fsm import TRANSITIONS, Event
from tradingd.exec.protocol import (
    OPEN,
    Bar,
    ExecType,
    MsgType,
    OrderFields,
    OrdStatus,
    OrdType,
    RejectReason,
    Report,
    ReportKind,
    Side,
    TimeInForce,
)

log = logging.getLogger(__name__)

_EXEC_OF = {OrdStatus.NEW: ExecType.NEW, OrdStatus.PARTIALLY_FILLED: ExecType.TRADE,
            OrdStatus.FILLED: ExecType.TRADE, OrdStatus.CANCELED: ExecType.CANCELED,
            OrdStatus.REJECTED: ExecType.REJECTED, OrdStatus.EXPIRED: ExecType.EXPIRED}
_SIDES = frozenset(int(s) for s in Side)
_TYPES = frozenset(int(t) for t in OrdType)
_TIFS = frozenset(int(t) for t in TimeInForce)
NO_MARKET_SEQ = -1
_TYPE_NAMES: dict[int, str] = {OrdType.MARKET: "market", OrdType.LIMIT: "limit"}
_new = tuple.__new__  # a NamedTuple without its __new__'s argument parsing (hot path)
#: the transition table (:data:`~tradingd.exec.fsm.TRANSITIONS`, the one source) regrouped by
#: event: ``_NEXT[event][status]`` is the status after ``event``; no Enum hashing per move
_NEXT: dict[Event, dict[OrdStatus, OrdStatus]] = {e: {} for e in Event}
for (_status, _event), _to in TRANSITIONS.items():
    _NEXT[_event][_status] = _to
_ON_ACCEPT = _NEXT[Event.ACCEPT]
_PENDING_NEW = OrdStatus.PENDING_NEW
_LIMIT, _MARKET, _NEW_ORDER, _CANCEL = (int(OrdType.LIMIT), int(OrdType.MARKET),
                                         int(MsgType.NEW_ORDER), int(MsgType.CANCEL))
_EXEC_NEW, _KIND_EXECUTION = ExecType.NEW, ReportKind.EXECUTION
_BUY, _IOC = int(Side.BUY), int(TimeInForce.IOC)


class _R:
    """RejectReason members as plain class attributes (no Enum lookup on the hot path)."""

    NONE = RejectReason.NONE
    DUPLICATE_ID = RejectReason.DUPLICATE_ID
    BAD_SIDE = RejectReason.BAD_SIDE
    BAD_ORD_TYPE = RejectReason.BAD_ORD_TYPE
    BAD_TIME_IN_FORCE = RejectReason.BAD_TIME_IN_FORCE
    BAD_SYMBOL = RejectReason.BAD_SYMBOL
    UNKNOWN_SYMBOL = RejectReason.UNKNOWN_SYMBOL
    BAD_QUANTITY = RejectReason.BAD_QUANTITY
    BAD_PRICE = RejectReason.BAD_PRICE
    MAX_ORDER_QTY = RejectReason.MAX_ORDER_QTY
    MAX_OPEN_ORDERS = RejectReason.MAX_OPEN_ORDERS
    NO_REFERENCE_PRICE = RejectReason.NO_REFERENCE_PRICE
    MAX_NOTIONAL = RejectReason.MAX_NOTIONAL
_isfinite = math.isfinite


@dataclass(frozen=True)
class RiskLimits:
    """Pre-trade checks (``exec.risk``); 0 disables a check."""

    max_order_qty: int = 1_000_000
    max_open_orders: int = 1000
    max_notional: float = 10_000_000.0


@dataclass(slots=True)
class Order:
    """One order's state. Mutated only through :meth:`Engine._apply`."""

    client: str
    client_order_id: int
    symbol: str
    side: int
    ord_type: int
    time_in_force: int
    quantity: int
    limit_price: float
    price_ref: float  # limit price, or the reference price of a market order (notional)
    arrival_ns: int
    send_ns: int
    client_seq: int
    status: OrdStatus = OrdStatus.PENDING_NEW
    cum_qty: int = 0
    notional: float = 0.0  # sum of qty x px of the fills
    symbol_b: bytes = b""  # the symbol as reports carry it

    def __post_init__(self) -> None:
        if not self.symbol_b:
            self.symbol_b = self.symbol.encode("ascii")

    @property
    def leaves(self) -> int:
        return self.quantity - self.cum_qty if self.status in OPEN else 0

    @property
    def avg_px(self) -> float:
        return self.notional / self.cum_qty if self.cum_qty else 0.0


@dataclass(slots=True)
class Position:
    """Net quantity (signed: + long) and average cost of one client's symbol."""

    qty: int = 0
    avg_px: float = 0.0

    def apply(self, side: int, qty: int, px: float) -> None:
        signed = qty if side == Side.BUY else -qty
        new = self.qty + signed
        if self.qty == 0 or (self.qty > 0) == (signed > 0):  # opening or adding
            self.avg_px = (self.avg_px * abs(self.qty) + px * qty) / abs(new)
        elif new == 0:
            self.avg_px = 0.0
        elif (new > 0) != (self.qty > 0):  # flipped through zero
            self.avg_px = px
        self.qty = new


@dataclass
class ClientBook:
    """Everything exec knows about one client."""

    name: str
    orders: dict[int, Order] = field(default_factory=dict)
    open: dict[int, Order] = field(default_factory=dict)  # insertion order = time priority
    seen_ids: set[int] = field(default_factory=set)
    positions: dict[str, Position] = field(default_factory=dict)
    report_seq: int = 0
    last_client_seq: int = 0
    last_client_order_id: int = 0
    open_notional: dict[str, float] = field(default_factory=dict)


@dataclass
class Counters:
    """What the metrics export about the engine (monotonic counts)."""

    orders: dict[str, int] = field(default_factory=dict)  # by type: market/limit/cancel/bad
    rejects: dict[int, int] = field(default_factory=dict)  # by reason code
    fills: int = 0
    filled_qty: int = 0
    illegal_transitions: int = 0
    expired: int = 0
    reports: int = 0


Out = list[tuple[str, Report]]
Key = tuple[str, int]  # (client, client order id)


class SymbolBook:
    """One symbol's resting orders, kept so a bar touches only the orders it can fill.

    Market orders in arrival order; buy limits by price descending, sell limits by price
    ascending (then arrival): price-time priority. A bar fills market orders, then buys
    while limit >= low, then sells while limit <= high; everything else stays untouched,
    so a bar costs O(orders it can fill), not O(resting orders). IOC orders are also kept
    apart: each is canceled after its first eligible bar.

    Limits are kept as price levels: a sorted list of the distinct prices (``-price`` for
    buys) and, per price, a dict of its orders in arrival order (acceptance order is
    arrival order, so appending keeps time priority). Adding an order at a price that
    already rests is a dict store, not an insertion into a list of every order.
    """

    def __init__(self) -> None:
        self.market: dict[Key, Order] = {}
        self.buy_prices: list[float] = []  # -price, ascending = best (highest) buy first
        self.sell_prices: list[float] = []  # price, ascending = best (lowest) sell first
        self.buy_levels: dict[float, dict[Key, Order]] = {}
        self.sell_levels: dict[float, dict[Key, Order]] = {}
        self.orders: dict[Key, tuple[Order, int]] = {}
        self.ioc: dict[Key, Order] = {}

    def __len__(self) -> int:
        return len(self.orders)

    def add(self, o: Order, seq: int) -> None:
        key = (o.client, o.client_order_id)
        self.orders[key] = (o, seq)
        if o.ord_type == _MARKET:
            self.market[key] = o
        else:
            if o.side == _BUY:
                px, levels, prices = -o.limit_price, self.buy_levels, self.buy_prices
            else:
                px, levels, prices = o.limit_price, self.sell_levels, self.sell_prices
            level = levels.get(px)
            if level is None:
                level = levels[px] = {}
                bisect.insort(prices, px)
            level[key] = o
        if o.time_in_force == _IOC:
            self.ioc[key] = o

    def remove(self, o: Order) -> None:
        key = (o.client, o.client_order_id)
        entry = self.orders.pop(key, None)
        if entry is None:
            return
        self.ioc.pop(key, None)
        if o.ord_type == _MARKET:
            self.market.pop(key, None)
            return
        if o.side == _BUY:
            px, levels, prices = -o.limit_price, self.buy_levels, self.buy_prices
        else:
            px, levels, prices = o.limit_price, self.sell_levels, self.sell_prices
        level = levels.get(px)
        if level is None or level.pop(key, None) is None or level:
            return
        del levels[px]
        i = bisect.bisect_left(prices, px)
        if i < len(prices) and prices[i] == px:
            del prices[i]

    def candidates(self, bar: Bar) -> list[Order]:
        """Orders the bar's prices reach, in priority order (eligibility checked later)."""
        out = list(self.market.values())
        for neg in self.buy_prices:
            if -neg < bar.low:
                break
            out.extend(self.buy_levels[neg].values())
        for px in self.sell_prices:
            if px > bar.high:
                break
            out.extend(self.sell_levels[px].values())
        return out


class Engine:
    """The order book of every client; see the module docstring for inputs and outputs."""

    def __init__(self, limits: RiskLimits | None = None, participation: float = 0.1,
                 symbols: Iterable[str] = ()) -> None:
        if not 0 < participation <= 1:
            raise ValueError(f"participation must be in (0, 1], not {participation}")
        self.limits = limits or RiskLimits()
        self.participation = participation
        self.symbols: set[str] = set(symbols)
        self.clients: dict[str, ClientBook] = {}
        self.book: dict[str, SymbolBook] = {}  # symbol -> resting orders
        self._arrivals = 0  # acceptance sequence: the time in price-time priority
        self.counters = Counters()
        self.bars_applied = 0

    def configure(self, limits: RiskLimits, participation: float) -> None:
        """New rules from here on (open orders keep what they were accepted under)."""
        if not 0 < participation <= 1:
            raise ValueError(f"participation must be in (0, 1], not {participation}")
        self.limits = limits
        self.participation = participation

    # ------------------------------------------------------------------ helpers
    def client(self, name: str) -> ClientBook:
        book = self.clients.get(name)
        if book is None:
            book = self.clients[name] = ClientBook(name)
        return book

    def accept_context(self, client: str) -> tuple[object, ...] | None:
        """What :func:`tradingd.exec.execfast.take_accept` reads to predict that
        :meth:`on_order` accepts a new order of ``client`` (the same objects the checks of
        :meth:`_validate` read, and the status after ACCEPT from the transition table);
        None until the client has a book. Valid until :meth:`on_symbols` or
        :meth:`configure` replace what it holds."""
        book = self.clients.get(client)
        if book is None:
            return None
        lim = self.limits
        return (self.symbols, book.seen_ids, book.open, book.open_notional,
                int(lim.max_order_qty), int(lim.max_open_orders), float(lim.max_notional),
                int(_ON_ACCEPT[_PENDING_NEW]), book)

    def open_orders(self) -> list[Order]:
        return [o for c in self.clients.values() for o in c.open.values()]

    def _report(self, out: Out, book: ClientBook, o: Order | None, *, exec_type: int,
                status: int, ns: int, kind: ReportKind = ReportKind.EXECUTION,
                reason: int = 0, last_qty: int = 0, last_px: float = 0.0,
                market_seq: int = NO_MARKET_SEQ, fields: OrderFields | None = None) -> None:
        book.report_seq += 1
        self.counters.reports += 1
        if o is not None:
            r = _new(Report, (exec_type, book.report_seq, o.client_order_id, status, reason,
                              last_qty, last_px, o.cum_qty, o.leaves, o.avg_px, market_seq,
                              ns, o.send_ns, o.side, kind, o.symbol_b, o.client_seq))
        else:
            assert fields is not None
            side = fields.side if fields.side in _SIDES else 0
            r = Report(exec_type, book.report_seq, fields.client_order_id, status, reason, 0,
                       0.0, 0, 0, 0.0, market_seq, ns, fields.send_ns, side, kind,
                       fields.symbol[:16], fields.client_seq)
        out.append((book.name, r))

    def _apply(self, o: Order, event: Event) -> bool:
        """Move ``o`` by the transition table; an illegal move is counted, logged, refused."""
        new = _NEXT[event].get(o.status)
        if new is None:
            self.counters.illegal_transitions += 1
            log.error("illegal transition refused: order %s/%d is %s, event %s",
                      o.client, o.client_order_id, o.status.name, event.value)
            return False
        was_open = o.status in OPEN
        o.status = new
        book = self.clients[o.client]
        if new in OPEN and not was_open:
            book.open[o.client_order_id] = o
            self._arrivals += 1
            sb = self.book.get(o.symbol)
            if sb is None:
                sb = self.book[o.symbol] = SymbolBook()
            sb.add(o, self._arrivals)
        elif was_open and new not in OPEN:
            book.open.pop(o.client_order_id, None)
            sym = self.book.get(o.symbol)
            if sym is not None:
                sym.remove(o)
                if not sym:
                    del self.book[o.symbol]
        return True

    def _count(self, key: str) -> None:
        self.counters.orders[key] = self.counters.orders.get(key, 0) + 1

    def _reject_count(self, reason: int) -> None:
        self.counters.rejects[reason] = self.counters.rejects.get(reason, 0) + 1

    # ------------------------------------------------------------------ inputs
    def on_symbols(self, names: Iterable[str]) -> None:
        """The market segment's symbol table (orders for other symbols are rejected)."""
        self.symbols = set(names)

    def on_order(self, client: str, f: OrderFields, arrival_ns: int,
                 ref_price: float) -> Out:
        """One order ring record (new order, cancel, or anything else: rejected)."""
        book = self.clients.get(client)
        if book is None:
            book = self.client(client)
        out: Out = []
        if f.client_seq > book.last_client_seq:
            book.last_client_seq = f.client_seq
        msg = f.msg_type
        if msg == _NEW_ORDER:
            self._new_order(book, f, arrival_ns, ref_price, out)
        elif msg == _CANCEL:
            self._count("cancel")
            self._cancel(book, f, arrival_ns, out)
        else:
            self._count("bad")
            self._reject_count(RejectReason.UNKNOWN_MSG_TYPE)
            self._report(out, book, None, exec_type=ExecType.REJECTED,
                         status=OrdStatus.REJECTED, ns=arrival_ns,
                         reason=RejectReason.UNKNOWN_MSG_TYPE, fields=f)
        return out

    def _validate(self, book: ClientBook, f: OrderFields, symbol: str | None,
                  ref_price: float) -> int:
        # module constants, not RejectReason.X: an Enum attribute costs a lookup per check
        if f.client_order_id in book.seen_ids:
            return _R.DUPLICATE_ID
        if f.side not in _SIDES:
            return _R.BAD_SIDE
        ord_type = f.ord_type
        if ord_type not in _TYPES:
            return _R.BAD_ORD_TYPE
        if f.time_in_force not in _TIFS:
            return _R.BAD_TIME_IN_FORCE
        if symbol is None:
            return _R.BAD_SYMBOL
        if symbol not in self.symbols:
            return _R.UNKNOWN_SYMBOL
        qty = f.quantity
        if qty <= 0:
            return _R.BAD_QUANTITY
        is_limit = ord_type == _LIMIT
        if is_limit and not (_isfinite(f.limit_price) and f.limit_price > 0):
            return _R.BAD_PRICE
        lim = self.limits
        if lim.max_order_qty and qty > lim.max_order_qty:
            return _R.MAX_ORDER_QTY
        if lim.max_open_orders and len(book.open) >= lim.max_open_orders:
            return _R.MAX_OPEN_ORDERS
        if lim.max_notional:
            px = f.limit_price if is_limit else ref_price
            if not (_isfinite(px) and px > 0):
                return _R.NO_REFERENCE_PRICE
            if book.open_notional.get(symbol, 0.0) + qty * px > lim.max_notional:
                return _R.MAX_NOTIONAL
        return _R.NONE

    def _new_order(self, book: ClientBook, f: OrderFields, ns: int, ref_price: float,
                   out: Out) -> None:
        """Validate, then accept (NEW) or reject. The accept path is written out inline
        (no helper calls, no Enum hashing): it is exec's per-order cost; every step is the
        general one's (``_apply``, ``_report``), and the golden, property and replay tests
        hold it to them."""
        symbol = _SYMBOLS.get(f.symbol)
        if symbol is None:  # not cached yet (or garbage, cached as None)
            symbol = _symbol(f.symbol)
        ord_type = f.ord_type
        counts = self.counters.orders
        key = _TYPE_NAMES.get(ord_type, "bad")
        counts[key] = counts.get(key, 0) + 1
        qty, side, is_limit = f.quantity, f.side, ord_type == _LIMIT
        reason = self._validate(book, f, symbol, ref_price)
        if reason is _R.DUPLICATE_ID or symbol is None:
            # no order is created: the existing one (or none) is left exactly as it was
            self._reject_count(reason)
            self._report(out, book, None, exec_type=ExecType.REJECTED,
                         status=OrdStatus.REJECTED, ns=ns, reason=reason, fields=f)
            return
        oid = f.client_order_id
        book.seen_ids.add(oid)
        if oid > book.last_client_order_id:
            book.last_client_order_id = oid
        ok = ord_type in _TYPES and side in _SIDES
        px_ref = (f.limit_price if is_limit else ref_price) if ok else 0.0
        o = Order(book.name, oid, symbol, side, ord_type, f.time_in_force,
                  qty, f.limit_price if is_limit else 0.0,
                  px_ref if _isfinite(px_ref) else 0.0, ns, f.send_ns, f.client_seq,
                  _PENDING_NEW, 0, 0.0, _symbol_bytes(symbol))
        book.orders[oid] = o
        if reason is not _R.NONE:
            self._reject_count(reason)
            self._apply(o, Event.REJECT)
            self._report(out, book, o, exec_type=ExecType.REJECTED, status=o.status, ns=ns,
                         reason=reason)
            return
        new = _ON_ACCEPT.get(o.status)
        if new is None:  # cannot happen for a fresh order; the general path counts it
            self._apply(o, Event.ACCEPT)
            return
        # _apply(o, ACCEPT), from PENDING_NEW (not open) to NEW (open):
        o.status = new
        book.open[oid] = o
        self._arrivals += 1
        sb = self.book.get(symbol)
        if sb is None:
            sb = self.book[symbol] = SymbolBook()
        sb.add(o, self._arrivals)
        on = book.open_notional
        on[symbol] = on.get(symbol, 0.0) + o.quantity * o.price_ref
        # _report(exec_type NEW): cum 0, leaves = quantity, avg 0
        book.report_seq += 1
        self.counters.reports += 1
        out.append((book.name, _new(Report, (
            _EXEC_NEW, book.report_seq, oid, new, 0, 0, 0.0, 0, o.quantity, 0.0,
            NO_MARKET_SEQ, ns, o.send_ns, side, _KIND_EXECUTION, o.symbol_b,
            o.client_seq))))

    def _release_notional(self, o: Order, qty: int) -> None:
        book = self.clients[o.client]
        left = book.open_notional.get(o.symbol, 0.0) - qty * o.price_ref
        book.open_notional[o.symbol] = left if left > 1e-9 else 0.0

    def _cancel(self, book: ClientBook, f: OrderFields, ns: int, out: Out) -> None:
        o = book.orders.get(f.client_order_id)
        if o is None or o.status not in OPEN:
            reason = (RejectReason.UNKNOWN_ORDER if o is None
                      else RejectReason.TOO_LATE_TO_CANCEL)
            self._reject_count(reason)
            if o is None:
                self._report(out, book, None, exec_type=ExecType.REJECTED,
                             status=OrdStatus.REJECTED, ns=ns, reason=reason,
                             kind=ReportKind.CANCEL_REJECT, fields=f)
            else:
                self._report(out, book, o, exec_type=ExecType.ORDER_STATUS, status=o.status,
                             ns=ns, reason=reason, kind=ReportKind.CANCEL_REJECT)
            return
        self._cancel_order(o, ns, out)

    def _cancel_order(self, o: Order, ns: int, out: Out, reason: int = 0,
                      market_seq: int = NO_MARKET_SEQ) -> None:
        leaves = o.leaves
        if self._apply(o, Event.CANCEL):
            self._release_notional(o, leaves)
            self._report(out, self.clients[o.client], o, exec_type=ExecType.CANCELED,
                         status=o.status, ns=ns, reason=reason, market_seq=market_seq)

    def on_bar(self, bar: Bar, recv_ns: int) -> Out:
        """Fill the resting orders of ``bar.symbol`` that may trade on it (time priority)."""
        out: Out = []
        resting = self.book.get(bar.symbol)
        if not resting:
            return out
        self.bars_applied += 1
        liquidity = matching.bar_liquidity(bar, self.participation)
        ioc = [o for o in resting.ioc.values() if matching.eligible(o.arrival_ns, bar)]
        for o in resting.candidates(bar):
            if liquidity is not None and liquidity <= 0:
                break
            if not matching.eligible(o.arrival_ns, bar):
                continue
            px = matching.fill_price(o.side, o.ord_type, o.limit_price, bar)
            qty = matching.fill_quantity(o.leaves, liquidity) if px is not None else 0
            if px is not None and qty > 0:
                self._fill(o, qty, px, bar, recv_ns, out)
                if liquidity is not None:
                    liquidity -= qty
        for o in ioc:  # IOC: what the first eligible bar did not fill is canceled
            if o.status in OPEN:
                self._cancel_order(o, recv_ns, out, market_seq=bar.seq)
        return out

    def _fill(self, o: Order, qty: int, px: float, bar: Bar, ns: int, out: Out) -> None:
        event = Event.FILL if qty == o.leaves else Event.PARTIAL_FILL
        status_before, cum_before, notional_before = o.status, o.cum_qty, o.notional
        o.cum_qty += qty
        o.notional += qty * px
        if not self._apply(o, event):
            o.status, o.cum_qty, o.notional = status_before, cum_before, notional_before
            return
        self._release_notional(o, qty)
        book = self.clients[o.client]
        book.positions.setdefault(o.symbol, Position()).apply(o.side, qty, px)
        self.counters.fills += 1
        self.counters.filled_qty += qty
        self._report(out, book, o, exec_type=ExecType.TRADE, status=o.status, ns=ns,
                     last_qty=qty, last_px=px, market_seq=bar.seq)

    def on_session_end(self, ns: int) -> Out:
        """The replay session ended: every open DAY order expires."""
        out: Out = []
        for o in self.open_orders():
            if o.time_in_force == TimeInForce.DAY:
                leaves = o.leaves
                if self._apply(o, Event.EXPIRE):
                    self._release_notional(o, leaves)
                    self.counters.expired += 1
                    self._report(out, self.clients[o.client], o, exec_type=ExecType.EXPIRED,
                                 status=o.status, ns=ns)
        return out

    def on_attach(self, client: str, ns: int) -> Out:
        """A client connected with a new order ring: restate its open orders and positions."""
        book = self.client(client)
        out: Out = []
        for o in book.open.values():
            self._report(out, book, o, exec_type=ExecType.ORDER_STATUS, status=o.status, ns=ns)
        for sym, pos in sorted(book.positions.items()):
            if pos.qty:
                book.report_seq += 1
                self.counters.reports += 1
                out.append((client, Report(
                    ExecType.ORDER_STATUS, book.report_seq, 0, 0, 0, pos.qty, 0.0, 0, 0,
                    pos.avg_px, NO_MARKET_SEQ, ns, 0, Side.BUY if pos.qty > 0 else Side.SELL,
                    ReportKind.POSITION, sym.encode("ascii"), 0)))
        return out

    def on_disconnect(self, client: str, ns: int) -> Out:
        """Exec dropped ``client`` (too slow): cancel its open orders (cancel on disconnect)."""
        book = self.client(client)
        out: Out = []
        for o in list(book.open.values()):
            self._cancel_order(o, ns, out, reason=RejectReason.CLIENT_DISCONNECTED)
        return out


_PRINTABLE = bytes(range(0x21, 0x7F))
_SYMBOLS: dict[bytes, str | None] = {}
_SYMBOL_BYTES: dict[str, bytes] = {}


def _symbol_bytes(symbol: str) -> bytes:
    """``symbol.encode("ascii")``, cached (symbols come from :func:`_symbol`: bounded)."""
    b = _SYMBOL_BYTES.get(symbol)
    if b is None:
        b = symbol.encode("ascii")
        if len(_SYMBOL_BYTES) < 4096:
            _SYMBOL_BYTES[symbol] = b
    return b


def _symbol(raw: bytes) -> str | None:
    """The symbol of a record: NUL-padded printable ASCII, else None (garbage)."""
    known = _SYMBOLS.get(raw, False)
    if known is not False:
        return known  # type: ignore[return-value]
    name = raw.rstrip(b"\0")
    sym = name.decode("ascii") if name and not name.translate(None, _PRINTABLE) else None
    if len(_SYMBOLS) < 4096:  # a cache of what clients send; garbage cannot grow it unbounded
        _SYMBOLS[raw] = sym
    return sym


__all__ = ["NO_MARKET_SEQ", "ClientBook", "Counters", "Engine", "Order", "Position",
           "RiskLimits", "SymbolBook"]
