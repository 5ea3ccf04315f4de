"""``tradingd-inspect rings`` / ``orders`` on rings written here (no exec needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from exec_support import order_fields, raw

from tradingd.exec import journal as J
from tradingd.exec.engine import Engine
from tradingd.exec.protocol import OrdType, Side, TimeInForce
from tradingd.segment.channel import (
    KIND_ORDERS,
    KIND_REPORTS,
    ChannelWriter,
    orders_name,
    reports_name,
)

INSPECT = [str(Path(sys.executable).parent / "tradingd-inspect")]


def inspect(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*INSPECT, *args], capture_output=True, text=True, timeout=60)


def test_rings_and_orders(segment_name: str, tmp_path: Path) -> None:
    eng = Engine(symbols=["AAPL"])
    entries: list[J.Entry] = [J.SymbolsIn(1, ("AAPL",))]
    for i, (side, px) in enumerate([(Side.BUY, 10.0), (Side.SELL, 50.0), (Side.BUY, -1.0)]):
        entries.append(J.OrderIn("alice", 7, i, 100 + i, 20.0,
                                 raw(order_fields(i + 1, side, OrdType.LIMIT, TimeInForce.GTC,
                                                  5, px))))
    journal = tmp_path / "exec.journal"
    j = J.Journal(str(journal))
    j.append([J.encode(e) for e in entries])
    j.close()
    o = ChannelWriter.create(orders_name(segment_name, "alice"), KIND_ORDERS, client="alice",
                             capacity=64)
    r = ChannelWriter.create(reports_name(segment_name, "alice"), KIND_REPORTS,
                             client="alice", capacity=64, peer_generation=o.generation)
    try:
        for e in entries:
            for _c, rep in J.apply(eng, e):
                r.publish(*rep)
        out = inspect("--segment", segment_name, "rings", "--json")
        assert out.returncode == 0, out.stderr
        rows = {x["kind"]: x for x in json.loads(out.stdout)["rings"]}
        assert rows["reports"]["written"] == 3 and rows["orders"]["owner_alive"]
        assert rows["reports"]["peer_generation"] == f"{o.generation:016x}"
        out = inspect("--segment", segment_name, "orders", "--json")
        assert out.returncode == 0, out.stderr
        rep = json.loads(out.stdout)
        assert sorted(x["id"] for x in rep["open_orders"]) == [1, 2]
        assert [x["reject_reason"] for x in rep["last_reports"]] == ["none", "none",
                                                                       "bad_price"]
        out = inspect("--segment", segment_name, "orders", "--journal", str(journal))
        assert out.returncode == 0, out.stderr
        assert "from the journal" in out.stdout and "alice" in out.stdout
        text = inspect("--segment", segment_name, "rings").stdout
        assert "alice" in text and "reports" in text
    finally:
        o.close()
        r.close()
    out = inspect("--segment", segment_name, "rings")
    assert out.returncode == 0 and "no order or report rings" in out.stdout


def test_rings_layout_and_c_header() -> None:
    out = inspect("rings", "--layout")
    assert out.returncode == 0 and "client_order_id" in out.stdout and "512 bytes" in out.stdout
    out = inspect("rings", "--c-header")
    root = Path(__file__).resolve().parents[2]
    assert out.stdout == (root / "tools" / "c" / "tradingd_orders.h").read_text()
