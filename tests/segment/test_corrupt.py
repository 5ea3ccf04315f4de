"""Corrupt, foreign, truncated and initialising segments: each refused with its own error.

Files are built from a real segment's bytes, altered field by field through the layout
(never by hand-written offsets), and written to /dev/shm under a private name.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest

from tradingd.errors import (
    SegmentCorrupt,
    SegmentError,
    SegmentForeign,
    SegmentNotReady,
    SegmentVersionMismatch,
)
from tradingd.segment import layout as L
from tradingd.segment import shm
from tradingd.segment.model import SymbolInfo
from tradingd.segment.reader import SegmentReader
from tradingd.segment.writer import SegmentWriter


@pytest.fixture(scope="module")
def good_bytes() -> bytes:
    name = f"tdtest-good-{id(object()):x}"
    with SegmentWriter.create(name, [SymbolInfo("AAPL"), SymbolInfo("TSLA")],
                              symbol_capacity=4, ring_capacity=256) as w:
        for i in range(10):
            w.publish(i % 2, i, 1.0, 2.0, 0.5, 1.5, 100.0)
        with open(shm.segment_path(name), "rb") as f:
            return f.read()


def with_field(data: bytes, field: str, value: int) -> bytes:
    buf = bytearray(data)
    hdr = np.frombuffer(buf, L.HEADER_DTYPE, count=1)
    hdr[0][field] = value
    return bytes(buf)


def write(name: str, data: bytes) -> str:
    path = shm.segment_path(name)
    with open(path, "wb") as f:
        f.write(data)
    return path




CASES: list[tuple[str, Callable[[bytes], bytes], type[SegmentError], str]] = [
    ("wrong magic", lambda d: with_field(d, "magic", int.from_bytes(b"NOTOURS!", "little")),
     SegmentForeign, "magic b'NOTOURS!' at offset 0 is not b'TRADINGD'"),
    ("foreign text file", lambda d: b"PostgreSQL shared memory\n" * 40,
     SegmentForeign, "not a tradingd segment"),
    ("other major version", lambda d: with_field(d, "layout_major", 2),
     SegmentVersionMismatch, f"layout version 2.{L.LAYOUT_MINOR} (offset 8) != 1.x expected"),
    ("other fingerprint", lambda d: with_field(d, "layout_fingerprint", 0xDEADBEEF),
     SegmentVersionMismatch, "layout fingerprint 0x00000000deadbeef != 0x"),
    ("truncated inside the ring", lambda d: d[: len(d) // 2],
     SegmentCorrupt, "truncated: header total_size (offset 32)"),
    ("shorter than the header", lambda d: d[:100],
     SegmentCorrupt,
     f"truncated: the file is 100 bytes, smaller than the {L.HEADER.size}-byte header"),
    ("header sizes larger than the file",
     lambda d: with_field(with_field(d, "ring_capacity", 1024), "total_size",
                          L.Geometry(4, 1024, 64).total_size),
     SegmentCorrupt, "but the file has only"),
    ("ring capacity not a power of two", lambda d: with_field(d, "ring_capacity", 300),
     SegmentCorrupt, "ring capacity must be a power of two"),
    ("region offset moved", lambda d: with_field(d, "ring_offset", 640),
     SegmentCorrupt, "ring_offset (offset 176) = 640 != "),
    ("record size of another build", lambda d: with_field(d, "ring_record_size", 72),
     SegmentCorrupt, "ring_record_size (offset 192) = 72 != 64"),
    ("symbol count over capacity", lambda d: with_field(d, "symbol_count", 99),
     SegmentCorrupt, "symbol_count (offset 144) = 99 > symtab_capacity 4"),
    ("unknown state", lambda d: with_field(d, "state", 99),
     SegmentCorrupt, "state (offset 64) = 99 is not a known state"),
    ("still initialising", lambda d: with_field(d, "state", L.STATE_INITIALISING),
     SegmentNotReady, "still initialising"),
    ("being created: fields half written, magic not yet",
     lambda d: with_field(with_field(with_field(d, "magic", 0), "ring_record_size", 0),
                          "state", L.STATE_INITIALISING),
     SegmentNotReady, "still initialising (magic not written yet)"),
    ("fresh from ftruncate (all zero)", lambda d: bytes(len(d)),
     SegmentNotReady, "still initialising (magic not written yet)"),
    ("empty file", lambda d: b"", SegmentNotReady, "file is empty"),
]


@pytest.mark.parametrize(("case", "mutate", "error", "message"), CASES,
                         ids=[c[0] for c in CASES])
def test_bad_segment_is_refused_with_its_own_error(
        segment_name: str, good_bytes: bytes, case: str, mutate: Callable[[bytes], bytes],
        error: type[SegmentError], message: str) -> None:
    path = write(segment_name, mutate(good_bytes))
    with pytest.raises(error) as by_name:
        SegmentReader.attach(segment_name)
    assert type(by_name.value) is error
    assert message in str(by_name.value)
    assert str(by_name.value).startswith(f"segment {path}: ")
    with pytest.raises(error):  # the post-mortem path validates the same way
        SegmentReader.open_file(path, require_live=True)


def test_the_unaltered_copy_is_accepted(segment_name: str, good_bytes: bytes) -> None:
    write(segment_name, good_bytes)
    with SegmentReader.attach(segment_name) as r:
        assert r.cursor == 10
        assert r.latest(1).seq == 9


def test_no_crash_in_a_fresh_process(segment_name: str, good_bytes: bytes) -> None:
    """A truncated file whose header promises more: a clean error, not SIGBUS."""
    write(segment_name, good_bytes[:L.HEADER.size + 64])
    code = ("import sys\nfrom tradingd.segment.reader import SegmentReader\nfrom tradingd.errors "
            "import SegmentError\ntry:\n    SegmentReader.attach(sys.argv[1])\nexcept "
            "SegmentError as e:\n    print(e)\n    sys.exit(3)\n")
    out = subprocess.run([sys.executable, "-c", code, segment_name], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 3, out.stderr
    assert "truncated" in out.stdout and out.stderr == ""
