"""The journal: entries round-trip, a torn tail is cut off, a foreign file is refused, and a
replay yields the same reports as the live run did."""

from __future__ import annotations

from pathlib import Path

import pytest
from exec_support import bar, order_fields, raw

from tradingd.exec import journal as J
from tradingd.exec.engine import Engine
from tradingd.exec.protocol import MsgType, OrdType, Side, TimeInForce


def script() -> list[J.Entry]:
    return [
        J.ConfigIn(1000, 10, 1e6, 0.5),
        J.SymbolsIn(42, ("AAPL", "TSLA")),
        J.AttachIn("a", 7, 5),
        J.OrderIn("a", 7, 0, 10, 100.0, raw(order_fields(1, Side.BUY, OrdType.MARKET,
                                                          TimeInForce.DAY, 30))),
        J.OrderIn("a", 7, 1, 11, 0.0, raw(order_fields(2, Side.SELL, OrdType.LIMIT,
                                                        TimeInForce.GTC, 5, 101.0))),
        J.BarIn(bar(3, 20, 100.0, 102.0, 99.0, 101.5, 40.0), 21, 42),
        J.OrderIn("a", 7, 2, 30, 0.0, raw(order_fields(2, 0, 0, 0, 0, msg=MsgType.CANCEL))),
        J.OrderIn("a", 7, 3, 31, 0.0, b"\xff" * J.ORDER_BODY_SIZE),
        J.SessionEndIn(40, 1),
        J.DisconnectIn("a", 50, 1),
    ]


def test_entries_round_trip_and_replay_matches_live(tmp_path: Path) -> None:
    path = tmp_path / "j"
    live = Engine()
    live_reports = [r for e in script() for r in J.apply(live, e)]
    j = J.Journal(str(path))
    j.append([J.encode(e) for e in script()])
    j.close()
    got = J.read_entries(str(path))
    assert got.problem is None and got.entries == script()
    replayed = [r for _e, out in J.replay(got.entries) for r in out]
    assert replayed == live_reports
    # 40 volume x 0.5: 20 to share; the market buy takes them all, the sell limit none
    assert live.counters.fills == 1 and live.counters.filled_qty == 20
    assert live.counters.expired == 1  # the rest of the DAY market order, at the session end


def test_torn_tail_is_truncated_and_appending_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "j"
    j = J.Journal(str(path))
    j.append([J.encode(e) for e in script()[:4]])
    j.close()
    whole = path.stat().st_size
    with open(path, "ab") as f:
        f.write(J.encode(script()[4])[:-3])  # killed mid-write
    j = J.Journal(str(path))
    assert j.recovered == script()[:4]
    assert path.stat().st_size == whole
    j.append([J.encode(script()[4])])
    j.close()
    assert J.read_entries(str(path)).entries == script()[:5]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # a flipped bit: the CRC catches it
    path.write_bytes(bytes(data))
    assert "CRC" in (J.read_entries(str(path)).problem or "")


def test_a_file_that_is_not_a_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j"
    path.write_bytes(b"hello, not a journal")
    with pytest.raises(J.JournalError, match="not a tradingd-exec journal"):
        J.Journal(str(path))
    assert path.read_bytes() == b"hello, not a journal"


def test_reserved_zero_tail_is_a_clean_end_and_is_cut_off(tmp_path: Path) -> None:
    """What a kill -9 leaves: the frames, then the zeros exec had reserved (no warning)."""
    path, killed = tmp_path / "j", tmp_path / "killed"
    j = J.Journal(str(path))
    j.append([J.encode(e) for e in script()[:3]])
    whole = len(J.FILE_MAGIC) + sum(len(J.encode(e)) for e in script()[:3])
    assert path.stat().st_size == whole + J.GROW_BYTES  # reserved while open
    got = J.read_entries(str(path))  # readable while open, the zeros a clean end
    assert got.entries == script()[:3] and got.problem is None and got.valid_end == whole
    killed.write_bytes(path.read_bytes())  # the file as a kill -9 leaves it
    j.close()
    assert path.stat().st_size == whole  # a clean stop cuts the reserve off
    j2 = J.Journal(str(killed))  # the next start after the kill cuts it off too
    assert j2.recovered == script()[:3] and killed.stat().st_size == whole
    j2.append([J.encode(script()[3])])
    j2.close()
    assert J.read_entries(str(killed)).entries == script()[:4]
    data = bytearray(killed.read_bytes())
    data[whole:whole + 8] = bytes(8)  # an empty frame with data after it is not an end
    killed.write_bytes(bytes(data))
    assert "empty frame" in (J.read_entries(str(killed)).problem or "")


def test_fsync_mode_appends_across_a_growth_of_the_file(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """exec.journal_fsync: each append msync-ed (page-aligned ranges), across remappings."""
    monkeypatch.setattr(J, "GROW_BYTES", 4096)  # grow (remap) every few appends
    path = tmp_path / "j"
    j = J.Journal(str(path), fsync=True)
    entries = script() * 40
    for e in entries:
        j.append([J.encode(e)])
    j.close()
    got = J.read_entries(str(path))
    assert got.problem is None and got.entries == entries
    assert path.stat().st_size == got.valid_end
