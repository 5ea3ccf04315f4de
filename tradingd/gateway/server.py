"""The WebSocket and HTTP front of the gateway, over picows.

picows (Cython, on asyncio) was measured against ``websockets`` in bench/bench_gateway.py:
it delivered 1.6-2x the frames per second, and it exposes the transport's write queue
(:meth:`PicowsPeer.buffered`), which the slow-client logic needs; ``websockets``'
``broadcast`` has no backpressure at all. Its upgrade hook is also a small router: the
same port serves the live page (``/``, ``/app.js``, ``/style.css``), ``/healthz`` and
the WebSocket endpoint (``/ws``, or ``/`` with an Upgrade header).

Access control happens here, before a connection is accepted: the ``Origin`` allow-list
(HTTP 403), the bearer token (``Authorization: Bearer``, or ``?token=`` for browsers,
which cannot set headers on a WebSocket: HTTP 401), the connection limit (HTTP 503).
Everything after the handshake is the :class:`~tradingd.gateway.hub.Hub`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
import urllib.parse
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)

from tradingd.gateway.hub import Client, Hub
from tradingd.gateway.protocol import CloseCode, ErrorCode, dumps

log = logging.getLogger(__name__)

#: Files of the live page (package data in tradingd/gateway/page/), by URL path.
PAGE_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
              "/index.html": ("index.html", "text/html; charset=utf-8"),
              "/app.js": ("app.js", "text/javascript; charset=utf-8"),
              "/style.css": ("style.css", "text/css; charset=utf-8")}
WS_PATHS = ("/ws", "/")
#: Seconds a closed client has to answer our close frame before it is disconnected.
CLOSE_GRACE = 1.0
#: Reasons a handshake was refused (metric label), with the HTTP status.
REJECTIONS = {"origin": 403, "auth": 401, "limit": 503, "not_found": 404}
_SECURITY_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; "
                               "img-src 'self' data:",
}


def load_page() -> dict[str, tuple[bytes, str]]:
    """The page's files from the package, by URL path (read once at start)."""
    base = resources.files("tradingd.gateway") / "page"
    return {path: ((base / name).read_bytes(), ctype) for path, (name, ctype)
            in PAGE_FILES.items()}


class PicowsPeer:
    """A :class:`~tradingd.gateway.hub.Peer` over a picows transport."""

    __slots__ = ("_buffered", "transport")

    def __init__(self, transport: WSTransport) -> None:
        self.transport = transport
        self._buffered = transport.underlying_transport.get_write_buffer_size

    def send(self, data: bytes) -> None:
        self.transport.send(WSMsgType.TEXT, data)

    def buffered(self) -> int:
        return int(self._buffered())

    def close(self, code: int, reason: str, *, abort: bool = False) -> None:
        t = self.transport
        if t.is_disconnected:
            return
        if not t.is_close_frame_sent:
            t.send_close(WSCloseCode(code), reason.encode()[:120])
        if abort:
            t.disconnect(graceful=False)
        else:  # the client echoes the close (then we disconnect); or it is dropped in 1 s
            asyncio.get_running_loop().call_later(CLOSE_GRACE, t.disconnect)


@dataclass
class Access:
    """Who may connect: Origins besides the page's own, the token, the connection limit."""

    allowed_origins: tuple[str, ...] = ()
    token: str | None = None
    max_connections: int = 256
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REJECTIONS, 0))

    def origin_ok(self, origin: str | None, host: str | None) -> bool:
        """No Origin (not a browser), the page's own origin, or one allowed by the config."""
        if origin is None:
            return True
        if "*" in self.allowed_origins or origin in self.allowed_origins:
            return True
        netloc = urllib.parse.urlsplit(origin).netloc
        return host is not None and netloc == host

    def token_ok(self, headers: Any, query: dict[str, list[str]]) -> bool:
        if self.token is None:
            return True
        given = ""
        auth = headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        elif query.get("token"):
            given = query["token"][0]
        return hmac.compare_digest(given.encode(), self.token.encode())


class GatewayServer:
    """Routes each HTTP request: the page, /healthz, or a WebSocket for the hub."""

    def __init__(self, hub: Hub, access: Access, page: dict[str, tuple[bytes, str]]) -> None:
        self.hub = hub
        self.access = access
        self.page = page

    def _refuse(self, why: str, message: str) -> WSUpgradeResponseWithListener:
        self.access.rejected[why] += 1
        body = (message + "\n").encode()
        return WSUpgradeResponseWithListener(
            WSUpgradeResponse.create_error_response(REJECTIONS[why], body), None)

    def factory(self, request: WSUpgradeRequest) -> WSListener | WSUpgradeResponseWithListener:
        """picows' listener factory: called with each request before the upgrade."""
        url = urllib.parse.urlsplit(request.path.decode("latin-1"))
        headers = request.headers
        upgrade = headers.get("Upgrade", "").lower() == "websocket"
        if not upgrade:
            if url.path in self.page:
                body, ctype = self.page[url.path]
                return WSUpgradeResponseWithListener(WSUpgradeResponse.create_ok_response(
                    body, {"Content-Type": ctype, **_SECURITY_HEADERS}), None)
            if url.path == "/healthz":
                return WSUpgradeResponseWithListener(WSUpgradeResponse.create_ok_response(
                    dumps(self.hub.status), {"Content-Type": "application/json"}), None)
            return self._refuse("not_found", f"no such page: {url.path[:100]}")
        if url.path not in WS_PATHS:
            return self._refuse("not_found", f"no WebSocket endpoint at {url.path[:100]} "
                                             f"(use /ws)")
        if not self.access.origin_ok(headers.get("Origin"), headers.get("Host")):
            log.info("refused a WebSocket from Origin %r (not in gateway.allowed_origins)",
                     headers.get("Origin", "")[:100])
            return self._refuse("origin", "Origin not allowed (gateway.allowed_origins)")
        if not self.access.token_ok(headers, urllib.parse.parse_qs(url.query)):
            return self._refuse("auth", "missing or wrong bearer token (Authorization: Bearer "
                                        "TOKEN, or ?token=TOKEN)")
        if len(self.hub.clients) >= self.access.max_connections:
            return self._refuse("limit", f"too many connections (gateway.max_connections = "
                                         f"{self.access.max_connections}); try again later")
        return _Listener(self.hub)


class _Listener(WSListener):
    """One WebSocket connection: frames in, to the hub; close bookkeeping."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.client: Client | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        sock = transport.underlying_transport.get_extra_info("socket")
        if sock is not None:  # the kernel's queue is bounded too (no autotuning to 4 MiB)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                                self.hub.limits.send_buffer_limit)
        peer = transport.underlying_transport.get_extra_info("peername")
        remote = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.client = self.hub.add(PicowsPeer(transport), remote)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        client = self.client
        if client is None:
            return
        kind = frame.msg_type
        if kind == WSMsgType.TEXT and frame.fin:
            try:
                text = frame.get_payload_as_utf8_text()
            except UnicodeDecodeError:
                self.hub.close(client, CloseCode.INVALID_TEXT, "text frame is not UTF-8",
                               "protocol")
                return
            self.hub.on_text(client, text)
        elif kind == WSMsgType.CLOSE:
            if not transport.is_close_frame_sent:  # the client's close: echo it
                client.close_reason = client.close_reason or "client"
                transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif kind in (WSMsgType.PING, WSMsgType.PONG):
            return
        else:
            self.hub.reject(client, ErrorCode.UNSUPPORTED_DATA,
                            "only unfragmented text frames (JSON) are accepted")

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        client = self.client
        if client is None:
            return
        reason = "gone"
        sent = transport.close_handshake.sent if transport.close_handshake else None
        if sent is not None and sent.code == WSCloseCode.MESSAGE_TOO_BIG:
            reason = "too_big"
        elif sent is not None and sent.code in (WSCloseCode.PROTOCOL_ERROR,
                                                WSCloseCode.INVALID_TEXT):
            reason = "protocol"
        elif transport.close_handshake and transport.close_handshake.recv is not None:
            reason = "client"
        if reason in ("too_big", "protocol") and client.close_reason is None and sent:
            log.info("closed client %d (%s): %d %s", client.cid, client.remote,
                     sent.code.value, sent.reason)
        self.hub.remove(client, reason)


__all__ = ["PAGE_FILES", "REJECTIONS", "Access", "GatewayServer", "PicowsPeer", "load_page"]
