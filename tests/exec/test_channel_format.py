"""Order/report rings: the generated header and doc are current, the C client works against a
real exec, and the ring machinery (creation, credit, reclaiming, refusing) holds."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from daemons import DaemonProcess
from exec_support import write_config

from tradingd.errors import SegmentForeign, SegmentOwned
from tradingd.exec import cheader
from tradingd.segment import layout as L
from tradingd.segment.channel import (
    KIND_ORDERS,
    KIND_REPORTS,
    ChannelReader,
    ChannelWriter,
    create_channel,
    discover_clients,
    orders_name,
)

ROOT = Path(__file__).resolve().parents[2]
C_DIR = ROOT / "tools" / "c"


def test_checked_in_orders_header_and_doc_are_generated() -> None:
    assert (C_DIR / "tradingd_orders.h").read_text() == cheader.generate(), (
        "tools/c/tradingd_orders.h is stale: run `make c-header`")
    assert (ROOT / "docs" / "order-rings.md").read_text() == cheader.generate_doc(), (
        "docs/order-rings.md is stale: run `make docs`")


def test_data_segment_layout_is_untouched_by_the_channel_structs() -> None:
    assert L.STRUCTS == (L.HEADER, L.SYMBOL, L.LATEST, L.RECORD)
    # the data segment's fingerprint (layout v1.3): the channel structs do not enter it
    assert L.LAYOUT_FINGERPRINT == 0x121071abd5ae2479
    assert L.CHANNEL_FINGERPRINT != L.LAYOUT_FINGERPRINT
    assert (L.CHANNEL_HEADER.size, L.ORDER.size, L.REPORT.size) == (512, 128, 128)


def test_channel_create_read_credit_and_ready_word(segment_name: str) -> None:
    name = orders_name(segment_name, "c1")
    w = ChannelWriter.create(name, KIND_ORDERS, client="c1", capacity=4, mode=0o640)
    try:
        assert stat.S_IMODE(os.stat(f"/dev/shm/{name}").st_mode) == 0o640
        assert discover_clients(segment_name) == ["c1"]
        r = ChannelReader(name, kind=KIND_ORDERS)
        assert r.state == L.STATE_LIVE and r.client == "c1" and r.owner_alive()
        assert r.poll() is None  # an empty slot never reads as record 0
        for i in range(4):
            assert w.free(r.position) == 4 - i
            w.publish(1, i, 100 + i, 1, 2, 0, 5, 1.5, 0, b"AAPL")
        assert w.free(r.position) == 0  # the writer may not overrun the reader
        got = [r.poll() for _ in range(5)]
        assert [g[2] for g in got[:4]] == [100, 101, 102, 103] and got[4] is None
        assert w.free(r.position) == 4
        with pytest.raises(SegmentForeign):
            ChannelReader(name, kind=KIND_REPORTS)
        r.close()
    finally:
        w.close()
    assert not os.path.exists(f"/dev/shm/{name}")


def test_a_shrunk_ring_is_noticed_before_it_is_read(segment_name: str) -> None:
    name = orders_name(segment_name, "c3")
    w = ChannelWriter.create(name, KIND_ORDERS, client="c3", capacity=64)
    try:
        r = ChannelReader(name, kind=KIND_ORDERS)
        assert r.intact()
        os.truncate(f"/dev/shm/{name}", L.CHANNEL_HEADER.size)  # a hostile client
        assert not r.intact()  # exec lets it go instead of touching the lost pages
        r.close()
    finally:
        w.close()


def test_create_channel_refuses_a_live_owner_and_reclaims_a_dead_one(segment_name: str) -> None:
    name = orders_name(segment_name, "c2")
    w = ChannelWriter.create(name, KIND_ORDERS, client="c2", capacity=4)
    with pytest.raises(SegmentOwned):
        create_channel(name, KIND_ORDERS, client="c2", capacity=4)
    w.abandon()  # as if killed: the file stays, state live, owner PID ...
    # ... is ours and alive: fake a dead owner by rewriting the PID to one that exists no more
    dead = subprocess.Popen(["true"])
    dead.wait()
    with open(f"/dev/shm/{name}", "r+b") as f:
        f.seek(L.CHANNEL_HEADER.offset("owner_pid"))
        f.write(dead.pid.to_bytes(8, "little"))
    w2 = create_channel(name, KIND_ORDERS, client="c2", capacity=4)
    assert w2.generation != w.generation
    w2.close()
    Path(f"/dev/shm/{name}").write_bytes(b"not a channel" * 100)
    with pytest.raises(SegmentForeign):
        create_channel(name, KIND_ORDERS, client="c2", capacity=4)


@pytest.fixture(scope="module")
def c_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    exe = tmp_path_factory.mktemp("c") / "order_client"
    subprocess.run(["gcc", "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", str(C_DIR),
                    str(C_DIR / "tradingd_order_client.c"), "-o", str(exe)], check=True,
                   timeout=60)
    return exe


@pytest.mark.slow
def test_c_client_round_trips_against_a_real_exec(c_client: Path, workdir: Path,
                                                  segment_name: str) -> None:
    cfg = write_config(workdir)
    procs = [DaemonProcess("producer", cfg, workdir, segment=segment_name)]
    try:
        procs[0].wait_ready()
        procs.append(DaemonProcess("exec", cfg, workdir, segment=segment_name))
        procs[1].wait_ready()
        for first in (1, 101):  # twice: the second run resumes the ids after the first's
            out = subprocess.run([str(c_client), segment_name, "cc", "100"],
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            assert f"first id {first}\n" in out.stdout
            assert "acks 100 " in out.stdout and "rejects 0" in out.stdout
        assert "last_report_seq 400 " in out.stdout  # 2 runs x 100 x (NEW + CANCELED)
        assert procs[1].alive()
    finally:
        for p in procs:
            p.cleanup()
        for e in os.listdir("/dev/shm"):
            if e.startswith(segment_name + "."):
                os.unlink(f"/dev/shm/{e}")
