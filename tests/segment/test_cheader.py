"""C interoperability: the checked-in header is the generated one, and a C reader compiled
with gcc reads what the Python writer wrote, exactly as the Python reader does."""

from __future__ import annotations

import os
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


def _readme_c_commands() -> list[str]:
    """The README's "From C" commands, one shell line each, as written there."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index("### From C"):]
    block = block[block.index("```bash\n") + 8:]
    block = block[:block.index("\n```")]
    return [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_c_reader_build_leaves_no_untracked_file(segment_name: str) -> None:
    """The README's build works as written and its binary is git-ignored (no stray
    ``tradingd_reader`` among the untracked files); the reader it builds reads a segment."""
    if shutil.which("gcc") is None or shutil.which("git") is None:
        pytest.skip("needs gcc and git")
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse"], capture_output=True).returncode:
        pytest.skip("not a git checkout")
    build, run = _readme_c_commands()

    def untracked() -> set[str]:
        return set(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain",
                                   "--untracked-files=all"], capture_output=True, text=True,
                                  check=True).stdout.splitlines())

    before = untracked()
    subprocess.run(["sh", "-ec", build], cwd=ROOT, check=True, timeout=120)
    assert untracked() == before, "the README's C build left files git sees"
    binary = run.split()[0]
    assert (ROOT / binary).is_file()
    assert subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", binary]).returncode == 0
    with SegmentWriter.create(segment_name, [SymbolInfo("AAPL", "stock")], ring_capacity=64) as w:
        w.publish(0, 1664323200 * 10**9, 147.64, 150.64, 144.84, 149.839996, 146514500)
        line = run.replace(" tradingd", f" {segment_name}")  # a private segment, not the default
        out = subprocess.run(["sh", "-ec", line], cwd=ROOT, capture_output=True, text=True,
                             timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout == python_view(segment_name)


def test_make_c_header_docs_rewrite_only_what_changed(tmp_path: Path) -> None:
    """``make c-header docs`` keeps an up-to-date file as it is (same mtime: the venv, which
    depends on the header, is not rebuilt) and replaces a stale one."""
    if shutil.which("make") is None:
        pytest.skip("needs make")
    venv = ROOT / ".venv"
    if not (venv / ".installed-stamp").exists():
        pytest.skip("the venv was not made by `make venv`")
    # the Makefile alone, in a scratch tree: the checkout's own files are not touched
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    header = tmp_path / "tools" / "c" / "tradingd_segment.h"
    doc = tmp_path / "docs" / "segment-layout.md"
    header.parent.mkdir(parents=True)
    doc.parent.mkdir()
    header.write_text(cheader.generate())
    doc.write_text("stale\n")
    old = 1_000_000_000
    for f in (header, doc):
        os.utime(f, ns=(old, old))

    def make() -> str:
        return subprocess.run(["make", "--no-print-directory", "-C", str(tmp_path),
                               f"VENV={venv}", "-o", str(venv / ".installed-stamp"),
                               "c-header", "docs"], capture_output=True, text=True,
                              check=True, timeout=120).stdout

    out = make()
    assert header.stat().st_mtime_ns == old, out  # unchanged: not rewritten
    from tradingd.segment import layout_doc
    assert doc.read_text() == layout_doc.generate() and doc.stat().st_mtime_ns != old, out
    assert "tradingd_segment.h: unchanged" in out and "segment-layout.md: regenerated" in out
    mtime = doc.stat().st_mtime_ns
    make()
    assert doc.stat().st_mtime_ns == mtime and header.stat().st_mtime_ns == old
    assert sorted(p.name for p in tmp_path.rglob("*.tmp")) == []
