"""The WebSocket protocol of tradingd-gateway: channels, message shapes, error and close codes.

One place for every fact a client relies on (docs/websocket-api.md is checked against this
module by tests/gateway/test_gateway_protocol_doc.py). JSON text frames both ways, in the
conventions of the big exchange streams (Kraken v2, Binance, Coinbase):

* client -> gateway: ``{"op": "subscribe" | "unsubscribe" | "list" | "ping", "id": N, ...}``,
  each answered with ``{"type": "ack", "op": ..., "id": N, ...}`` (or an ``error`` with the id);
* gateway -> client: ``welcome``, ``ack``, ``snapshot``, ``ticks``, ``latest``, ``gap``,
  ``status``, ``heartbeat``, ``pong``, ``error`` (field ``type``).

A ring record travels as an array, in :data:`RECORD_FIELDS` order, grouped by symbol:
``"data": {"AAPL": [[seq, t_ms, open, high, low, close, volume, publish_ns], ...]}``.
Arrays rather than objects keep a frame of a thousand records about a third the size.

Coverage: every ``ticks`` and ``gap`` message to a connection carries ``from``/``to``
(ring sequence numbers). A ``ticks`` message holds every record of the connection's
``ticks.*`` channels with ``from <= seq < to``; a ``gap`` says ``count`` records in
``[from, to)`` were not delivered (lapped by the producer, or dropped for a slow client).
So each message's ``from`` equals the previous one's ``to``, until a generation change
(new snapshots restart it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

PROTOCOL_VERSION = 1

#: Positions of a record's fields in its JSON array.
RECORD_FIELDS = ("seq", "t_ms", "open", "high", "low", "close", "volume", "publish_ns")

#: Operations a client may send.
OPS = ("subscribe", "unsubscribe", "list", "ping")

#: Channel kinds: ``ticks.<SYMBOL>`` every record; ``latest.<SYMBOL>`` the latest-value
#: slot, conflated; ``status`` producer and gateway state. ``<SYMBOL>`` may be ``*``.
KINDS = ("ticks", "latest", "status")
WILDCARD = "*"
_SYMBOL_RE = re.compile(r"[!-~]{1,23}")


class ErrorCode(IntEnum):
    """Codes of ``{"type": "error"}`` messages: the request was refused, the connection lives."""

    BAD_JSON = 4000  #: the text frame is not JSON
    BAD_REQUEST = 4001  #: JSON, but not an object with a known shape (types, fields)
    UNKNOWN_OP = 4002  #: ``op`` is not one of OPS
    UNKNOWN_CHANNEL = 4003  #: a channel name that does not exist (kind or symbol)
    TOO_MANY_SUBSCRIPTIONS = 4004  #: the request would exceed gateway.max_subscriptions
    RATE_LIMITED = 4005  #: more messages than gateway.message_rate allows (message dropped)
    UNSUPPORTED_DATA = 4006  #: a binary or fragmented frame (text frames only)


class CloseCode(IntEnum):
    """WebSocket close codes the gateway uses (RFC 6455 section 7.4)."""

    NORMAL = 1000
    GOING_AWAY = 1001  #: the gateway is stopping
    PROTOCOL_ERROR = 1002
    INVALID_TEXT = 1007  #: a text frame that is not UTF-8
    POLICY_VIOLATION = 1008  #: flood: kept sending past the rate limit
    MESSAGE_TOO_BIG = 1009  #: a frame above gateway.max_message_bytes
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013  #: slow client: over the send buffer for slow_client_timeout


#: Reasons clients were closed, as counted (metric label ``reason``).
CLOSE_REASONS = ("client", "slow_client", "flood", "too_big", "protocol", "shutdown",
                 "gone", "error")


class RequestError(Exception):
    """A client request that gets an ``error`` message (the connection stays open)."""

    def __init__(self, code: ErrorCode, message: str, request_id: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


@dataclass(frozen=True)
class Channel:
    """A parsed channel name: kind and symbol (``*`` for all; ``""`` for status)."""

    kind: str
    symbol: str

    @property
    def name(self) -> str:
        return self.kind if self.kind == "status" else f"{self.kind}.{self.symbol}"


def parse_channel(name: object) -> Channel:
    """``"ticks.AAPL"`` -> Channel("ticks", "AAPL"); RequestError(UNKNOWN_CHANNEL) if bad."""
    if not isinstance(name, str):
        raise RequestError(ErrorCode.BAD_REQUEST, f"a channel must be a string, got {name!r}")
    if name == "status":
        return Channel("status", "")
    kind, dot, symbol = name.partition(".")
    if not dot or kind not in ("ticks", "latest"):
        raise RequestError(ErrorCode.UNKNOWN_CHANNEL,
                           f"unknown channel {name[:80]!r}: expected ticks.<SYMBOL>, "
                           f"latest.<SYMBOL> (<SYMBOL> may be *) or status")
    if symbol != WILDCARD and not _SYMBOL_RE.fullmatch(symbol):
        raise RequestError(ErrorCode.UNKNOWN_CHANNEL,
                           f"unknown channel {name[:80]!r}: not a symbol name")
    return Channel(kind, symbol)


@dataclass(frozen=True)
class Request:
    """A decoded client message."""

    op: str
    id: Any  # echoed back in the ack (int or string; None when absent)
    channels: tuple[Channel, ...] = ()


def parse_request(text: str) -> Request:
    """Decode one client text frame; RequestError with the right code when it is bad."""
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RequestError(ErrorCode.BAD_JSON, f"not JSON: {str(exc)[:120]}") from None
    if not isinstance(msg, dict):
        raise RequestError(ErrorCode.BAD_REQUEST,
                           f"expected a JSON object, got {type(msg).__name__}")
    rid = msg.get("id")
    if rid is not None and (isinstance(rid, bool) or not isinstance(rid, int | str)
                            or (isinstance(rid, str) and len(rid) > 64)):
        raise RequestError(ErrorCode.BAD_REQUEST, "id must be an integer or a short string")
    op = msg.get("op")
    if not isinstance(op, str):
        raise RequestError(ErrorCode.BAD_REQUEST, "missing \"op\" (subscribe, unsubscribe, "
                                                  "list, ping)", rid)
    if op not in OPS:
        raise RequestError(ErrorCode.UNKNOWN_OP, f"unknown op {op[:40]!r}: expected one of "
                                                 f"{', '.join(OPS)}", rid)
    if op in ("subscribe", "unsubscribe"):
        names = msg.get("channels")
        if not isinstance(names, list) or not names:
            raise RequestError(ErrorCode.BAD_REQUEST,
                               f"{op} needs \"channels\": a non-empty list of channel names",
                               rid)
        try:
            channels = tuple(dict.fromkeys(parse_channel(n) for n in names))
        except RequestError as exc:
            exc.request_id = rid
            raise
        return Request(op, rid, channels)
    return Request(op, rid)


# -- gateway -> client ---------------------------------------------------------------------

_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=True).encode


def dumps(obj: object) -> bytes:
    """Compact JSON as UTF-8 bytes (what goes into a text frame)."""
    return _dumps(obj).encode()


def error_message(code: ErrorCode, message: str, request_id: Any = None) -> bytes:
    msg: dict[str, Any] = {"type": "error", "code": int(code), "error": code.name.lower(),
                           "message": message}
    if request_id is not None:
        msg["id"] = request_id
    return dumps(msg)


def gen_hex(generation: int) -> str | None:
    """A generation as clients see it: 16 hex digits (JS numbers cannot hold 64 bits)."""
    return f"{generation:016x}" if generation else None


def latest_object(slot: tuple[int, float, float, int, int, int] | None) -> dict[str, Any] | None:
    """A latest-value slot ``(seq, price, volume, event_ns, publish_ns, valid)`` as JSON."""
    if slot is None or not slot[5]:
        return None
    seq, price, volume, event_ns, publish_ns, _ = slot
    return {"seq": seq, "price": price, "volume": volume, "t_ms": event_ns // 1_000_000,
            "publish_ns": publish_ns}


__all__ = ["CLOSE_REASONS", "KINDS", "OPS", "PROTOCOL_VERSION", "RECORD_FIELDS", "WILDCARD",
           "Channel", "CloseCode", "ErrorCode", "Request", "RequestError", "dumps",
           "error_message", "gen_hex", "latest_object", "parse_channel", "parse_request"]
