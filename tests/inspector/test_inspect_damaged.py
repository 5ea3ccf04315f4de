"""Corrupt, foreign and truncated segments: shown as far as possible, never a traceback.

Each file is a real segment's bytes (written by SegmentWriter) altered field by field
through the layout's dtype, never by hand-written offsets. Every subcommand that reads a
segment must say what is wrong and at which offset, exit 2 (check: CRITICAL or, for a
file still being created, WARNING), and show what exists: the header fields that fit in
the file, the latest slots of a file truncated inside its ring. Files larger on paper
than on disk are also put under /dev/shm and read by name: mapping past the end of the
file would kill the tool with SIGBUS.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from inspector_support import inspect, inspect_cli, new_name, remove_segment

from tradingd import constants as C
from tradingd.segment import layout as L
from tradingd.segment import shm
from tradingd.segment.model import SymbolInfo
from tradingd.segment.writer import SegmentWriter

SYMBOLS = [SymbolInfo("AAPL", "stock"), SymbolInfo("BTC-USD", "crypto"),
           SymbolInfo("EURUSD", "forex", price_decimals=5)]
RING = 256


@pytest.fixture(scope="module")
def good() -> bytes:
    name = new_name()
    try:
        with SegmentWriter.create(name, SYMBOLS, symbol_capacity=4, ring_capacity=RING) as w:
            for i in range(40):
                w.publish(i % 3, 1_700_000_000 * 10**9 + i, 1.0 + i, 2.0 + i, 0.5 + i,
                          1.5 + i, 100.0 + i)
            with open(shm.segment_path(name), "rb") as f:
                return f.read()
    finally:
        remove_segment(name)


def with_field(data: bytes, **fields: int) -> bytes:
    buf = bytearray(data)
    hdr = np.frombuffer(buf, L.HEADER_DTYPE, count=1)
    for k, v in fields.items():
        hdr[0][k] = v
    return bytes(buf)


def geometry(data: bytes) -> L.Geometry:
    h = np.frombuffer(data, L.HEADER_DTYPE, count=1)[0]
    return L.Geometry(int(h["symtab_capacity"]), int(h["ring_capacity"]),
                      int(h["ring_window"]))


def bigger_ring(d: bytes) -> bytes:
    """Capacities and total_size that agree with each other, but not with the file."""
    geo = L.Geometry(4, RING * 64, L.default_window(RING * 64))
    return with_field(d, ring_capacity=geo.ring_capacity, ring_window=geo.ring_window,
                      total_size=geo.total_size)


# (id, how to damage, problem kind, a fragment of the message)
CASES: list[tuple[str, Callable[[bytes], bytes], str, str]] = [
    ("magic", lambda d: with_field(d, magic=int.from_bytes(b"NOTOURS!", "little")),
     "foreign", "magic b'NOTOURS!' at offset 0 is not b'TRADINGD'"),
    ("fingerprint", lambda d: with_field(d, layout_fingerprint=0x1234), "version_mismatch",
     f"layout fingerprint 0x0000000000001234 != 0x{L.LAYOUT_FINGERPRINT:016x} expected"),
    ("major", lambda d: with_field(d, layout_major=2), "version_mismatch",
     f"layout version 2.{L.LAYOUT_MINOR} (offset {L.HEADER.offset('layout_major')})"),
    ("truncated-header", lambda d: d[:100], "truncated",
     f"the file is 100 bytes, smaller than the {L.HEADER.size}-byte header"),
    ("truncated-ring", lambda d: d[:geometry(d).ring_offset + 3 * 64 + 10], "truncated",
     f"header total_size (offset {L.HEADER.offset('total_size')}) is"),
    ("sizes-larger-than-file", bigger_ring, "truncated",
     f"header total_size (offset {L.HEADER.offset('total_size')}) is"),
    ("capacity-disagrees", lambda d: with_field(d, ring_capacity=RING * 4), "corrupt",
     f"header field total_size (offset {L.HEADER.offset('total_size')})"),
    ("symbol-count", lambda d: with_field(d, symbol_count=99), "corrupt",
     f"header field symbol_count (offset {L.HEADER.offset('symbol_count')}) = 99"),
    ("foreign-text", lambda d: b"PostgreSQL shared memory\n" * 40, "foreign",
     "at offset 0 is not b'TRADINGD'"),
]


@pytest.fixture(params=CASES, ids=[c[0] for c in CASES])
def damaged(request: pytest.FixtureRequest, good: bytes,
            tmp_path: Path) -> tuple[Path, str, str, bytes]:
    _id, damage, kind, fragment = request.param
    data = damage(good)
    path = tmp_path / "segment.bin"
    path.write_bytes(data)
    return path, kind, fragment, data


def test_every_command_says_what_is_wrong(damaged: tuple[Path, str, str, bytes]) -> None:
    path, kind, fragment, _data = damaged
    for cmd in (["status"], ["latest"], ["tail", "-n", "5"], ["dump"]):
        r = inspect(*cmd, "--file", str(path))
        assert r.code == C.EXIT_SEGMENT_PROBLEM, (cmd, r.err)
        assert fragment in r.err, (cmd, r.err)
        j = inspect(*cmd, "--file", str(path), "--json")
        assert j.code == C.EXIT_SEGMENT_PROBLEM
        assert j.json()["problem"]["kind"] == kind, cmd
    r = inspect("check", "--file", str(path))
    assert r.code == 2 and r.out.startswith("TRADINGD CRITICAL - ") and fragment in r.out


def test_status_shows_the_header_fields_that_exist(
        damaged: tuple[Path, str, str, bytes]) -> None:
    path, kind, _fragment, data = damaged
    status = inspect("status", "--file", str(path), "--json").json()
    have = {p.name for p in L.HEADER.placed if p.offset + p.size <= len(data)}
    assert set(status["header"]) == have
    if kind != "foreign":
        assert status["header"]["magic"] == L.MAGIC
    text = inspect("status", "--file", str(path)).out
    if len(data) < L.HEADER.size:
        assert "(beyond end of file)" in text


def test_truncated_ring_still_shows_symbols_and_latest(good: bytes, tmp_path: Path) -> None:
    geo = geometry(good)
    path = tmp_path / "cut.bin"
    path.write_bytes(good[:geo.ring_offset + 3 * 64 + 10])
    status = inspect("status", "--file", str(path), "--json").json()
    assert [r["present"] for r in status["regions"]] == [True, True, True, False]
    assert [s["name"] for s in status["symbols"]] == [s.name for s in SYMBOLS]
    latest = inspect("latest", "--file", str(path), "--json").json()["symbols"]
    assert [r["seq"] for r in latest] == [39, 37, 38]  # the last record of each symbol
    assert latest[2]["price_text"] == f"{1.5 + 38:.5f}"  # EURUSD: 5 decimals
    tail = inspect("tail", "-n", "5", "--file", str(path), "--json").json()
    assert tail["records"] == []
    assert any("beyond the end of the file" in n for n in tail["notes"])
    dump = inspect("dump", "ring", "--file", str(path))
    assert dump.code == C.EXIT_SEGMENT_PROBLEM
    assert f"ends at offset {len(good[:geo.ring_offset + 3 * 64 + 10])}" in dump.err
    assert "ring[0]: seq_lo=" in dump.out


def test_empty_file_is_initialising(tmp_path: Path) -> None:
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    r = inspect("status", "--file", str(path))
    assert r.code == C.EXIT_SEGMENT_PROBLEM and "file is empty" in r.err
    r = inspect("check", "--file", str(path))
    assert r.code == 1 and "initialising" in r.out


@pytest.mark.parametrize("damage", [bigger_ring, lambda d: d[:L.HEADER.size + 64]],
                         ids=["sizes-larger", "truncated"])
def test_by_name_never_maps_past_the_end(good: bytes, damage: Callable[[bytes], bytes],
                                         segment_name: str) -> None:
    with open(shm.segment_path(segment_name), "wb") as f:
        f.write(damage(good))
    # separate processes for the commands that read data (a SIGBUS would show as -7)
    for cmd in (["status"], ["tail"], ["dump", "ring"]):
        r = inspect_cli(*cmd, "--segment", segment_name)
        assert r.code == 2, (cmd, r.code, r.err)
        assert "truncated" in r.err + r.out, cmd
    for cmd in (["latest"], ["check"], ["watch", "--count", "1"]):
        r = inspect(*cmd, "--segment", segment_name)
        assert r.code == 2, (cmd, r.code, r.err)
        assert "truncated" in r.err + r.out, cmd
    # the header names this test process as its producer: alive, so only --force removes it
    r = inspect("cleanup", "--segment", segment_name)
    assert r.code == C.EXIT_SEGMENT_OWNED and f"producer PID {os.getpid()} is running" in r.err
    r = inspect("cleanup", "--segment", segment_name, "--force")
    assert r.code == 0 and "removed" in r.out and "(forced)" in r.out
    assert not os.path.exists(shm.segment_path(segment_name))


def test_symlink_is_refused(tmp_path: Path, good: bytes) -> None:
    target = tmp_path / "real.bin"
    target.write_bytes(good)
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    r = inspect("status", "--file", str(link))
    assert r.code == C.EXIT_SEGMENT_PROBLEM and "symbolic link" in r.err
