"""Running a real producer and a real tradingd-gateway, and talking to the gateway.

Importable as ``gateway_support`` from tests/gateway/. The daemons are the installed console
scripts on a private segment name with free ports (the gateway binds port 0 and logs the
port); :class:`WsClient` is a real WebSocket client (the ``websockets`` package), and
:class:`Coverage` checks the protocol's sequence promise on what a client received.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import socket
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from daemons import DaemonProcess
from websockets.sync.client import ClientConnection, connect

REPO = Path(__file__).resolve().parents[2]
MARKET_DATA = REPO / "market_data"
#: Straight to loopback, whatever http_proxy says.
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
TIMEOUT = 20.0  # generous caps for a loaded machine; tests run to a count, not a rate


def write_config(workdir: Path, *, replay: dict[str, Any] | None = None,
                 gateway: dict[str, Any] | None = None, segment: dict[str, Any] | None = None,
                 symbols: list[dict[str, Any]] | None = None, name: str = "tradingd.yaml"
                 ) -> Path:
    """Bundled data, a fast heartbeat, every port 0 (free)."""
    cfg: dict[str, Any] = {
        "segment": {"ring_capacity": 65536, "heartbeat_interval": 0.05, **(segment or {})},
        "producer": {
            "data_dir": str(MARKET_DATA),
            "replay": {"mode": "paced", "speed": 365 * 86400.0, "at_end": "loop",
                       **(replay or {})},
            "metrics": {"port": 0},
        },
        "consumer": {"metrics": {"port": 0}},
        "gateway": {"port": 0, "metrics": {"port": 0}, **(gateway or {})},
    }
    if symbols is not None:
        cfg["producer"]["symbols"] = symbols
    path = workdir / name
    path.write_text(yaml.safe_dump(cfg))
    return path


class GatewayProcess(DaemonProcess):
    """A real tradingd-gateway; ``port`` is read from its log (it binds port 0)."""

    def __init__(self, config: Path, segment: str, workdir: Path,
                 env: dict[str, str] | None = None) -> None:
        super().__init__("gateway", config, workdir, segment=segment, env=env)
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                m = re.search(r"gateway on http://127\.0\.0\.1:(\d+)/", self.log)
                if m:
                    self._port = int(m.group(1))
                    break
                assert self.alive(), f"gateway exited {self.proc.poll()}:\n{self.log}"
                time.sleep(0.02)
            else:
                raise AssertionError(f"no 'gateway on' line in the log:\n{self.log}")
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def metrics(self) -> str:
        with NO_PROXY.open(self.metrics_url(), timeout=5) as resp:
            return str(resp.read().decode())

    def sample(self, name: str, labels: str = "") -> float:
        """One sample of the metrics, e.g. ``sample("clients_closed_total", 'reason="flood"')``."""
        full = f"tradingd_gateway_{name}"
        pattern = rf"^{re.escape(full)}{re.escape('{' + labels + '}') if labels else ''} (\S+)$"
        m = re.search(pattern, self.metrics(), re.M)
        assert m, f"no sample {full}{{{labels}}} in the metrics"
        return float(m.group(1))

    def rss(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")


class WsClient:
    """A real WebSocket client (websockets' sync API) with JSON helpers."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.conn: ClientConnection = connect(url, open_timeout=TIMEOUT, **kwargs).__enter__()
        self.received: list[dict[str, Any]] = []
        self._next_id = 1

    def send(self, msg: dict[str, Any] | str | bytes) -> None:
        self.conn.send(msg if isinstance(msg, str | bytes) else json.dumps(msg))

    def request(self, op: str, **fields: Any) -> int:
        rid = self._next_id
        self._next_id += 1
        self.send({"op": op, "id": rid, **fields})
        return rid

    def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        msg = json.loads(self.conn.recv(timeout))
        self.received.append(msg)
        return dict(msg)

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool],
                 timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next message matching ``predicate`` (others are kept in ``received``)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching message in {timeout} s; last: "
                                     f"{[m.get('type') for m in self.received[-20:]]}")
            msg = self.recv(left)
            if predicate(msg):
                return msg

    def close(self) -> None:
        self.conn.close()


@dataclass
class Coverage:
    """Checks that ticks/gap messages chain (``from`` == previous ``to``) per generation."""

    last_to: dict[str, int] = field(default_factory=dict)
    records: dict[int, list[Any]] = field(default_factory=dict)  # seq -> row (+ symbol)
    gaps: list[dict[str, Any]] = field(default_factory=list)
    delivered: int = 0
    breaks: list[str] = field(default_factory=list)
    start: dict[str, int] = field(default_factory=dict)

    def feed(self, msg: dict[str, Any]) -> None:
        t = msg.get("type")
        gen = msg.get("gen")
        if t == "snapshot" and str(msg.get("channel", "")).startswith("ticks."):
            self.last_to[gen] = msg["to"]
            self.start.setdefault(gen, msg["to"])
        elif t in ("ticks", "gap"):
            if gen not in self.last_to:
                self.breaks.append(f"{t} before any snapshot of generation {gen}")
            elif msg["from"] != self.last_to[gen]:
                self.breaks.append(f"{t} from {msg['from']} != previous to "
                                   f"{self.last_to[gen]}")
            self.last_to[gen] = msg["to"]
            if t == "gap":
                self.gaps.append(msg)
            else:
                n = 0
                for sym, rows in msg["data"].items():
                    for row in rows:
                        if not msg["from"] <= row[0] < msg["to"]:
                            self.breaks.append(f"record {row[0]} outside [{msg['from']}, "
                                               f"{msg['to']})")
                        self.records[row[0]] = [sym, *row]
                        n += 1
                if n != msg["n"]:
                    self.breaks.append(f"n {msg['n']} != {n} records")
                self.delivered += n


@dataclass
class Stack:
    """Starts daemons on one private segment; ``cleanup`` ends them all."""

    workdir: Path
    segment: str
    daemons: list[DaemonProcess] = field(default_factory=list)
    clients: list[WsClient] = field(default_factory=list)

    def producer(self, config: Path, env: dict[str, str] | None = None) -> DaemonProcess:
        p = DaemonProcess("producer", config, self.workdir, segment=self.segment, env=env)
        self.daemons.append(p)
        return p

    def gateway(self, config: Path, env: dict[str, str] | None = None) -> GatewayProcess:
        g = GatewayProcess(config, self.segment, self.workdir, env=env)
        self.daemons.append(g)
        return g

    def client(self, url: str, **kwargs: object) -> WsClient:
        c = WsClient(url, **kwargs)
        self.clients.append(c)
        return c

    def cleanup(self) -> None:
        for c in self.clients:
            with contextlib.suppress(Exception):  # a broken connection is fine here
                c.close()
        for d in self.daemons:
            d.cleanup()


def raw_ws_connect(port: int, *, rcvbuf: int = 4096, path: str = "/ws") -> socket.socket:
    """A WebSocket handshake over a plain socket with a tiny receive buffer (a client that
    will stop reading); returns the socket after the 101 response."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, "connection closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def masked_frame(payload: bytes, opcode: int = 0x1, fin: bool = True) -> bytes:
    """One client->server frame (clients must mask)."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with NO_PROXY.open(req, timeout=5) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


__all__ = ["Coverage", "GatewayProcess", "Stack", "WsClient", "http_get", "masked_frame",
           "raw_ws_connect", "write_config"]
