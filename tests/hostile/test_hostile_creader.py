"""The C reader in tools/c/, written to docs/segment-layout.md "Writing a reader", agrees
with tradingd's own reader on hostile files and on fuzzed segments.

The issue's finding: a reader written from the old document accepted 122 of 4,000 mutants
the project refuses. tools/c/tradingd_reader.c now follows the document's steps; on the
same mutants as the Python reader it must accept exactly the same ones.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from fuzz_worker import base_segments, mutate
from hostile_support import HOSTILE_KINDS, header_of, plant, remove_planted

from tradingd.errors import TradingdError
from tradingd.segment import layout as L
from tradingd.segment import shm
from tradingd.segment.reader import SegmentReader

C_DIR = Path(__file__).resolve().parents[2] / "tools" / "c"
MUTANTS = 400


@pytest.fixture(scope="module")
def c_reader(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    exe = tmp_path_factory.mktemp("c") / "tradingd_reader"
    subprocess.run(["gcc", "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", str(C_DIR),
                    str(C_DIR / "tradingd_reader.c"), "-o", str(exe)], check=True, timeout=60)
    return exe


def run_c(exe: Path, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(exe), name], capture_output=True, text=True, errors="replace",
                          timeout=20)


@pytest.mark.parametrize("kind", sorted(HOSTILE_KINDS))
def test_c_reader_refuses_planted_files(kind: str, c_reader: Path, segment_name: str) -> None:
    path = shm.segment_path(segment_name)
    try:
        plant(kind, path, f"{segment_name}-src")
        res = run_c(c_reader, segment_name)
    finally:
        remove_planted(path)
    assert res.returncode == 76, (res.returncode, res.stderr)


def _python_accepts(name: str) -> bool:
    """tradingd's verdict in the C reader's terms: usable and past initialising."""
    try:
        with SegmentReader.attach(name, require_live=False) as r:
            return r.header()["state"] not in (L.STATE_EMPTY, L.STATE_INITIALISING)
    except TradingdError:
        return False


def _has_odd_lock(data: bytes) -> bool:
    """A stuck slot costs each reader a second: such mutants are left to the fuzz test."""
    if len(data) < L.HEADER.size:
        return False
    h = header_of(data)
    count = min(h["symbol_count"], h["symtab_capacity"], L.MAX_SYMTAB_CAPACITY)
    for i in range(count):
        off = h["latest_offset"] + i * L.LATEST.size
        if off + 8 <= len(data) and int.from_bytes(data[off:off + 8], "little") & 1:
            return True
    return False


def test_c_reader_accepts_exactly_what_tradingd_accepts(c_reader: Path,
                                                        segment_name: str) -> None:
    rng = random.Random(12)
    bases = base_segments(f"{segment_name}-b")
    path = shm.segment_path(segment_name)
    compared = accepted = 0
    disagreements = []
    for _ in range(MUTANTS):
        data, ops = mutate(rng, rng.choice(bases))
        if _has_odd_lock(data):
            continue
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        try:
            ours = _python_accepts(segment_name)
            theirs = run_c(c_reader, segment_name)
        finally:
            os.unlink(path)
        assert theirs.returncode in (0, 66, 75, 76, 77), theirs.stderr
        compared += 1
        accepted += ours
        if ours != (theirs.returncode == 0):
            disagreements.append((ops, ours, theirs.returncode, theirs.stderr.strip()))
    print(f"\n{compared} mutants compared, {accepted} accepted by both")
    assert compared > MUTANTS // 2 and accepted > 20
    assert not disagreements, disagreements[:5]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown)")
def test_c_reader_checks_the_owner(c_reader: Path, segment_name: str) -> None:
    """A file of another uid is exit 77, unless TRADINGD_OWNER_UID names that account."""
    path = shm.segment_path(segment_name)
    bases = base_segments(f"{segment_name}-o")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, bases[0])
        os.fchown(fd, 12345, 12345)  # as if user 12345 had created it
    finally:
        os.close(fd)
    try:
        squatted = subprocess.run([str(c_reader), segment_name], capture_output=True,
                                  timeout=20)
        trusted = subprocess.run([str(c_reader), segment_name], capture_output=True,
                                 timeout=20, env={**os.environ, "TRADINGD_OWNER_UID": "12345"})
    finally:
        os.unlink(path)
    assert squatted.returncode == 77 and b"owned by another account" in squatted.stderr
    assert trusted.returncode == 0, trusted.stderr
