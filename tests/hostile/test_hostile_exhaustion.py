"""A full /dev/shm, resource limits, and a producer killed while creating its segment.

* /dev/shm full: a 1 MiB tmpfs mounted over /dev/shm in a private mount namespace
  (``unshare --mount``), a producer needing 4 MiB: used to die of SIGBUS (exit 135) while
  pre-faulting and leave a half-built file; now ENOSPC from ``posix_fallocate``, exit 71,
  a message naming the bytes and ``df /dev/shm``, nothing left in the tmpfs.
* ``prlimit --fsize``: EFBIG (Python ignores SIGXFSZ), exit 71, file removed.
* ``prlimit --as``: the writer's mmap fails with ENOMEM, exit 71, file removed.
* SIGKILL during creation (after the PID claim, or after reserving): the file names its
  dead creator, so the next producer reclaims it at once instead of waiting ~5 s.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemons import DaemonProcess
from hostile_support import PRODUCER, env, header_of, inspect, producer, run, write_config

from tradingd import constants as C
from tradingd.segment import layout as L
from tradingd.segment import shm
from tradingd.segment.ownership import INIT_GRACE_S

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mount namespaces)")


@root_only
def test_full_dev_shm_is_enospc_naming_the_size_and_leaves_nothing(segment_name: str,
                                                                   workdir: Path) -> None:
    cfg = write_config(workdir, segment={"ring_capacity": 65536})
    script = (f"mount -t tmpfs -o size=1m tdtest-tmpfs /dev/shm || exit 99; "
              f"{PRODUCER} --config {cfg} --segment {segment_name}; echo rc=$?; "
              f"echo left=$(ls -A /dev/shm | wc -l)")
    res = run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script])
    out = res.stdout + res.stderr
    assert res.returncode != 99, out
    need = L.Geometry(8, 65536, L.default_window(65536)).total_size
    assert f"rc={C.EXIT_OSERR}" in res.stdout, out
    assert f"no room for the {need} bytes" in out and "df /dev/shm" in out, out
    assert "left=0" in res.stdout, out  # the half-built file was removed
    assert not os.path.lexists(shm.segment_path(segment_name))  # the real /dev/shm untouched


def test_file_size_limit_is_a_typed_error_and_removes_the_file(segment_name: str,
                                                               workdir: Path) -> None:
    cfg = write_config(workdir, segment={"ring_capacity": 65536})
    res = producer(cfg, segment_name, prefix=["prlimit", "--fsize=1000000"])
    out = res.stdout + res.stderr
    assert res.returncode == C.EXIT_OSERR, out
    assert "RLIMIT_FSIZE" in out and "File too large" in out, out
    assert not os.path.lexists(shm.segment_path(segment_name))


def _import_vm_peak_bytes() -> int:
    """Address space a producer process needs before its segment (imports, threads)."""
    code = ("import tradingd.producer.daemon, tradingd.segment.writer\n"
            "print(open('/proc/self/status').read())")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env=env())
    m = re.search(r"VmPeak:\s+(\d+) kB", res.stdout)
    assert m, res.stdout + res.stderr
    return int(m.group(1)) * 1024


def test_address_space_limit_fails_the_mapping_typed_and_removes_the_file(
        segment_name: str, workdir: Path) -> None:
    ring = 2**21  # 128 MiB: the limit leaves room for the interpreter, not for the segment
    cfg = write_config(workdir, segment={"ring_capacity": ring})
    limit = _import_vm_peak_bytes() + 48 * 2**20
    res = producer(cfg, segment_name, prefix=["prlimit", f"--as={limit}"])
    out = res.stdout + res.stderr
    assert res.returncode == C.EXIT_OSERR, out
    assert "ENOMEM" in out and "cannot map" in out, out
    assert not os.path.lexists(shm.segment_path(segment_name))


KILLER = """
import os, signal, sys
from tradingd.segment import shm
from tradingd.segment.model import SymbolInfo
from tradingd.segment.writer import SegmentWriter
point = sys.argv[2]
real = getattr(shm, point)
def die(*args):
    if point == "prefault":  # after the claim, the reservation and the mapping
        real(*args)
    os.kill(os.getpid(), signal.SIGKILL)
setattr(shm, point, die)
sym = SymbolInfo(name="T", asset_class="stock", currency="USD", price_decimals=2,
                 bar_interval_ns=86400 * 10**9, record_count=0)
SegmentWriter.create(sys.argv[1], [sym], symbol_capacity=8, ring_capacity=1024)
"""


@pytest.mark.parametrize("point", ["reserve", "prefault"])
def test_kill_during_creation_is_reclaimed_at_once(point: str, segment_name: str,
                                                   workdir: Path) -> None:
    killed = subprocess.run([sys.executable, "-c", KILLER, segment_name, point], timeout=60,
                            env=env(), capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    path = shm.segment_path(segment_name)
    with open(path, "rb") as f:
        data = f.read(L.HEADER.size)
    h = header_of(data)
    assert h["state"] == L.STATE_INITIALISING and h["magic"] == 0  # being created...
    pid = h["producer_pid"]
    assert pid > 0  # ...by a process that is dead: its PID was recorded first
    cfg = write_config(workdir)
    check = inspect("check", "--config", str(cfg), "--segment", segment_name)
    assert check.returncode == 2 and f"left half-initialised by producer PID {pid}" in \
        check.stdout, check.stdout
    prod = DaemonProcess("producer", cfg, workdir, segment=segment_name)
    try:
        t0 = time.monotonic()
        prod.wait_ready()
        assert time.monotonic() - t0 < INIT_GRACE_S + 10  # loaded box; no grace waited out
        log = prod.log
        assert f"left half-initialised by producer PID {pid}, which is not running" in log, log
        assert "waiting up to" not in log and "creating it right now" not in log, log
        assert prod.stop() == 0
    finally:
        prod.cleanup()
    assert not os.path.lexists(path)
