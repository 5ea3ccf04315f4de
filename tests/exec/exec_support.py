"""Helpers for the exec tests: order records as the rings carry them, bars, engine drivers."""

from __future__ import annotations

from pathlib import Path

import yaml

from tradingd.exec.engine import Engine
from tradingd.exec.journal import OrderIn, apply
from tradingd.exec.protocol import Bar, MsgType, OrderFields, Report
from tradingd.segment.channel import KIND_ORDERS, body_format

ORDER_BODY = body_format(KIND_ORDERS)
REPO = Path(__file__).resolve().parents[2]


def order_fields(oid: int, side: int, ord_type: int, tif: int, qty: int, px: float = 0.0,
                 symbol: str = "AAPL", msg: int = MsgType.NEW_ORDER, seq: int = 0,
                 send_ns: int = 0) -> OrderFields:
    return OrderFields(msg, seq or oid, oid, side, ord_type, tif, qty, px, send_ns,
                       symbol.encode().ljust(16, b"\0"))


def raw(f: OrderFields) -> bytes:
    return ORDER_BODY.pack(*f)


def submit(engine: Engine, client: str, f: OrderFields, ns: int,
           ref: float = 100.0) -> list[tuple[str, Report]]:
    """Through the journal's apply path, as the daemon does (raw bytes in)."""
    return apply(engine, OrderIn(client, 1, 0, ns, ref, raw(f)))


def bar(seq: int, ns: int, o: float, h: float, lo: float, c: float, v: float,
        symbol: str = "AAPL") -> Bar:
    return Bar(seq, symbol, ns, ns, o, h, lo, c, v)


def write_config(workdir: Path, exec_extra: dict | None = None) -> Path:
    cfg = {
        "segment": {"ring_capacity": 4096, "heartbeat_interval": 0.05},
        "producer": {"data_dir": str(REPO / "market_data"),
                     "replay": {"mode": "paced", "speed": 2 * 365 * 86400.0},
                     "metrics": {"port": 0}},
        "consumer": {"metrics": {"port": 0}},
        "exec": {"journal": str(workdir / "exec.journal"), "wait": {"strategy": "poll"},
                 "discovery_interval": 0.02, "metrics": {"port": 0}, **(exec_extra or {})},
    }
    path = workdir / "tradingd.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
