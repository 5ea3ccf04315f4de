"""C interoperability: the checked-in header is the generated one, and a C reader compiled
with gcc reads what the Python writer wrote, exactly as the Python reader does."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tradingd.segment import cheader
from tradingd.segment.model import SymbolInfo
from tradingd.segment.reader import SegmentReader
from tradingd.segment.writer import SegmentWriter

ROOT = Path(__file__).resolve().parents[2]
C_DIR = ROOT / "tools" / "c"


def test_checked_in_header_is_generated_from_the_layout() -> None:
    checked_in = (C_DIR / "tradingd_segment.h").read_text()
    assert checked_in == cheader.generate(), (
        "tools/c/tradingd_segment.h is stale: run `make c-header` and commit it")


@pytest.fixture(scope="module")
def c_reader(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    exe = tmp_path_factory.mktemp("c") / "tradingd_reader"
    subprocess.run(["gcc", "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", str(C_DIR),
                    str(C_DIR / "tradingd_reader.c"), "-o", str(exe)], check=True, timeout=60)
    return exe


def python_view(name: str) -> str:
    """The C reader's output format, produced by the Python reader."""
    with SegmentReader.attach(name) as r:
        lines = [f"segment /dev/shm/{name} generation {r.generation:016x} state live "
                 f"cursor {r.cursor}"]
        for i, sym in enumerate(r.symbols()):
            v = r.latest(i)
            lines.append(f"{sym.name} never-written" if v is None else
                         f"{sym.name} seq={v.seq} price={v.price:.17g} volume={v.volume:.17g} "
                         f"event_ns={v.event_ns} valid={v.valid}")
    return "\n".join(lines) + "\n"


def test_c_reader_agrees_with_python_reader(segment_name: str, c_reader: Path) -> None:
    syms = [SymbolInfo("AAPL", "stock"), SymbolInfo("TSLA", "stock"),
            SymbolInfo("BTC-USD", "crypto"), SymbolInfo("EURUSD", "forex"),
            SymbolInfo("IDLE", "stock")]
    with SegmentWriter.create(segment_name, syms, ring_capacity=256) as w:
        # real closing figures from the bundled files, and a volume above 2^32
        w.publish(0, 1664323200 * 10**9, 147.64, 150.64, 144.84, 149.839996, 146514500)
        w.publish(1, 1664323200 * 10**9, 283.08, 289.0, 277.57, 287.809998, 54492200)
        w.publish(2, 1706313600 * 10**9, 41815.6, 41926.4, 41622.1, 41658.429688, 24899555328)
        w.publish(3, 1518015600 * 10**9, 1.23427, 1.23444, 1.22904, 1.22904, 6143)
        w.publish(2, 1706400000 * 10**9, 41658.4, 42000.0, 41500.0, 0.1 + 0.2, 46342323118)
        out = subprocess.run([str(c_reader), segment_name], capture_output=True, text=True,
                             timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout == python_view(segment_name)
        assert "BTC-USD seq=4 price=0.30000000000000004 volume=46342323118 " in out.stdout
        assert "IDLE never-written" in out.stdout


def test_c_reader_refuses_missing_and_foreign(segment_name: str, c_reader: Path) -> None:
    out = subprocess.run([str(c_reader), segment_name], capture_output=True, text=True)
    assert out.returncode == 66 and "No such file" in out.stderr
    Path(f"/dev/shm/{segment_name}").write_bytes(b"x" * 4096)
    out = subprocess.run([str(c_reader), segment_name], capture_output=True, text=True)
    assert out.returncode == 76 and "not a tradingd segment" in out.stderr


def test_checked_in_layout_doc_is_generated_from_the_layout() -> None:
    from tradingd.segment import layout_doc
    checked_in = (ROOT / "docs" / "segment-layout.md").read_text()
    assert checked_in == layout_doc.generate(), (
        "docs/segment-layout.md is stale: run `make docs` and commit it")


def test_c_fast_path_is_built_where_a_compiler_exists() -> None:
    """The extension is optional at install time; `make test` must not silently lose it."""
    from tradingd.segment import fastpath
    if shutil.which("gcc") is None:
        pytest.skip("no C compiler: the pure-Python path is in use")
    assert fastpath.FAST is not None, "tradingd.segment._fastpath did not build: see pip's output"
