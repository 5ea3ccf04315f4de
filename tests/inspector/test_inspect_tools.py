"""The operator scripts in tools/, run for real: strace against real producers, hexdump.

strace is /usr/bin/strace (Debian package strace); the tests skip if it is missing.
``strace-unit`` is given a stand-in ``systemctl`` on PATH (there is no systemd in the
test environment): it answers ``show -p MainPID --value UNIT`` like systemd does, with the
live producer's PID for one unit and 0 (not running) for another.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from inspector_support import INSPECT, TOOLS, Producer, clean_env, new_name

from tradingd.segment import layout as L
from tradingd.segment import shm
from tradingd.segment.reader import SegmentReader

pytestmark = pytest.mark.slow

SCRIPTS = ["shm-hexdump", "strace-lifecycle", "strace-timing", "strace-summary",
           "strace-unit"]
needs_strace = pytest.mark.skipif(shutil.which("strace") is None,
                                  reason="strace not installed (apt-get install strace)")


def run(script: str, *args: str, env: dict[str, str] | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess[str]:
    e = clean_env()
    e["TRADINGD_INSPECT"] = str(INSPECT)
    e.update(env or {})
    return subprocess.run([str(TOOLS / script), *args], capture_output=True, text=True,
                          timeout=timeout, env=e)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_and_usage_errors(script: str) -> None:
    r = run(script, "--help")
    assert r.returncode == 0 and r.stdout.startswith(f"usage: {script} ")
    assert script in (TOOLS / "README.md").read_text()
    text = (TOOLS / script).read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
    r = run(script, "--no-such-option")
    assert r.returncode == 64 and "unknown option --no-such-option" in r.stderr


@needs_strace
@pytest.mark.parametrize("script", ["strace-timing", "strace-summary"])
def test_no_such_pid(script: str) -> None:
    r = run(script, "-d", "1", "2147483646")
    assert r.returncode == 66 and "no process with PID 2147483646" in r.stderr
    r = run(script, "not-a-pid")
    assert r.returncode == 64 and "PID must be a number" in r.stderr


@needs_strace
def test_strace_lifecycle_of_a_producer(start_producer: Callable[..., Producer]) -> None:
    """create (O_CREAT|O_EXCL), size, map, open up, ... SIGTERM ... unlink, unmap."""
    name = new_name()
    p = start_producer(wrapper=[str(TOOLS / "strace-lifecycle"), "-s", name, "--"],
                       name=name)
    with SegmentReader.attach(name) as r:
        total = r.geometry.total_size
    p.signal(signal.SIGTERM)
    assert p.proc.wait(30) == 0, p.log
    path = shm.segment_path(name)
    lines = [ln for ln in p.log.splitlines() if path in ln or "munmap(" in ln]

    def find(pattern: str) -> int:
        for i, ln in enumerate(lines):
            if re.search(pattern, ln):
                return i
        raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(lines))

    q = re.escape(path)
    create = find(rf'openat\(AT_FDCWD[^,]*, "{q}", O_RDWR\|O_CREAT\|O_EXCL\|O_NOFOLLOW'
                  rf'\|O_CLOEXEC, 0600\)\s+= (\d+)<{q}>')
    fd = re.search(r"= (\d+)<", lines[create]).group(1)  # type: ignore[union-attr]
    claim = find(rf"pwrite64\({fd}<{q}>, .*, {L.HEADER.size}, 0\)\s+= {L.HEADER.size}")
    size = find(rf"fallocate\({fd}<{q}>, 0, 0, {total}\)\s+= 0")
    mapped = find(rf"mmap\(NULL, {total}, PROT_READ\|PROT_WRITE, MAP_SHARED, {fd}<{q}>, 0\)"
                  r"\s+= 0x[0-9a-f]+")
    opened_up = find(rf"fchmod\({fd}<{q}>, 0640\)\s+= 0")
    removed = find(rf'unlink\("{q}"\)\s+= 0')
    addr = re.search(r"= (0x[0-9a-f]+)$", lines[mapped]).group(1)  # type: ignore[union-attr]
    unmapped = find(rf"munmap\({addr}, {total}\)\s+= 0")
    assert create < claim < size < mapped < opened_up < removed < unmapped
    # the producer's own reader attaches read-only, never resizing the segment
    find(rf'openat\(AT_FDCWD[^,]*, "{q}", O_RDONLY\|O_NOCTTY\|O_NONBLOCK\|O_NOFOLLOW'
         rf'\|O_CLOEXEC\)')
    find(rf"mmap\(NULL, {total}, PROT_READ, MAP_SHARED\|MAP_POPULATE, \d+<{q}>, 0\)")
    assert not os.path.exists(path)


@needs_strace
def test_strace_timing_and_summary_of_a_running_producer(live: Producer) -> None:
    r = run("strace-timing", "-d", "1", str(live.pid))
    assert r.returncode == 0, r.stderr
    timed = [ln for ln in r.stderr.splitlines()
             if re.search(r"\d\d:\d\d:\d\d\.\d{6} \w+\(.*<\d+\.\d{6}>$", ln)]
    assert len(timed) > 10, r.stderr[-2000:]
    # the producer sleeps in pselect6 between batches and wakes blocked readers (futex)
    assert any("pselect6(" in ln for ln in timed) and any("futex(" in ln for ln in timed)

    r = run("strace-summary", "-d", "1", str(live.pid))
    assert r.returncode == 0, r.stderr
    assert re.search(r"^% time\s+seconds\s+usecs/call\s+calls\s+errors\s+syscall$",
                     r.stderr, re.M)
    calls = {m[2]: int(m[1]) for m in re.finditer(
        r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", r.stderr, re.M)}
    assert calls.get("pselect6", 0) > 0 and "total" in calls


@needs_strace
def test_strace_unit_attaches_to_the_main_pid(live: Producer, tmp_path: Path) -> None:
    stub = tmp_path / "systemctl"
    stub.write_text(
        "#!/bin/sh\n"
        "# stand-in for: systemctl show -p MainPID --value UNIT\n"
        '[ "$1 $2 $3 $4" = "show -p MainPID --value" ] || exit 1\n'
        f'case "$5" in tradingd-producer.service) echo {live.pid} ;; *) echo 0 ;; esac\n')
    stub.chmod(0o755)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}"}
    r = run("strace-unit", "--summary", "-d", "1", "tradingd-producer.service", env=env)
    assert r.returncode == 0, r.stderr
    assert f"tradingd-producer.service main PID {live.pid}: strace-summary" in r.stderr
    assert re.search(r"^100\.00\s+.*total$", r.stderr, re.M)
    r = run("strace-unit", "--timing", "-d", "0.5", "-e", "trace=pselect6",
            "tradingd-producer.service", env=env)
    assert r.returncode == 0 and re.search(r"pselect6\(.*<\d+\.\d{6}>$", r.stderr, re.M)
    r = run("strace-unit", "tradingd-consumer.service", env=env)
    assert r.returncode == 69
    assert "unit tradingd-consumer.service is not running (MainPID 0)" in r.stderr


def test_shm_hexdump_is_hexdump_of_the_region(live: Producer, tmp_path: Path) -> None:
    copy = tmp_path / "seg.bin"
    shutil.copyfile(shm.segment_path(live.segment), copy)
    with SegmentReader.open_file(str(copy)) as reader:
        geo = reader.geometry

    def hexdump(off: int, n: int) -> str:
        return subprocess.run(["hexdump", "-C", "-s", str(off), "-n", str(n), str(copy)],
                              capture_output=True, text=True, check=True).stdout

    cases = {
        ("header",): (0, L.HEADER.size),
        ("symtab", "2"): (geo.symtab_offset + 2 * L.SYMBOL.size, L.SYMBOL.size),
        ("latest.price", "3"): (geo.latest_offset + 3 * L.LATEST.size
                                + L.LATEST.offset("price"), 8),
    }
    for args, (off, n) in cases.items():
        r = run("shm-hexdump", "-f", str(copy), *args)
        assert r.returncode == 0, r.stderr
        assert r.stdout == hexdump(off, n), args
        assert f"offset {off} (0x{off:x}), {n} bytes" in r.stderr

    # by name, on the live segment: the symbol table does not change while it runs
    r = run("shm-hexdump", live.segment, "symtab", "1")
    assert r.returncode == 0
    assert r.stdout == hexdump(geo.symtab_offset + L.SYMBOL.size, L.SYMBOL.size)
    assert run("shm-hexdump", live.segment, "latest.nope").returncode == 64
    r = run("shm-hexdump", "tdtest-no-such-segment", "header")
    assert r.returncode == 66 and "no segment /dev/shm/tdtest-no-such-segment" in r.stderr
