"""tradingd-exec as a unit under a real systemd (the tests/systemd sandbox): installed by
``make install``, started beside the producer, an order placed from a client in the sandbox,
killed with SIGKILL and restarted by systemd with its orders recovered from the journal."""

from __future__ import annotations

import socket
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "systemd"))
from systemd_sandbox import Sandbox, skip_reason

pytestmark = [pytest.mark.slow, pytest.mark.systemd]

REPO = Path(__file__).resolve().parents[2]
PY = "/opt/tradingd/bin/python"
CONFIG = "/etc/tradingd/tradingd.yaml"

SET_PORTS = """
import sys, yaml
path = sys.argv[1]
with open(path) as f:
    cfg = yaml.safe_load(f)
for daemon, port in zip(("producer", "consumer", "exec"), sys.argv[2:]):
    cfg[daemon]["metrics"]["port"] = int(port)
cfg["producer"]["replay"]["speed"] = 31536000.0
with open(path, "w") as f:
    yaml.safe_dump(cfg, f, sort_keys=False)
"""

CLIENT = textwrap.dedent("""
    import sys
    from tradingd.exec import OrderClient
    c = OrderClient(sys.argv[1], group="tradingd-exec", connect_timeout=30)
    if sys.argv[2] == "submit":
        print(c.submit("AAPL", "buy", 5, price=0.001, tif="gtc"))
        r = c.next_report(30)
        print(r.describe() if r else "no report")
    else:
        for r in c.reports(timeout=3):
            print(r.describe())
    c._r.close()
    c._w.abandon()  # leave the ring as a crashed client would (the restart reclaims it)
""")


def free_ports(n: int) -> list[str]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [str(s.getsockname()[1]) for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    sb = Sandbox(tmp_path_factory.mktemp("exec-sandbox"), REPO)
    try:
        sb.boot()
        sb.run(["make", "--no-print-directory", "-C", "/run/sandbox/src", "install"],
               timeout=300)
        sb.run([PY, "-c", SET_PORTS, CONFIG, *free_ports(3)])
        yield sb
        sb.systemctl("stop", "tradingd-exec", "tradingd-producer", check=False)
    finally:
        sb.close()


def active(sb: Sandbox, unit: str) -> bool:
    return sb.show(unit, "ActiveState")["ActiveState"] == "active"


def test_exec_unit_takes_orders_and_survives_sigkill(box: Sandbox) -> None:
    box.systemctl("start", "tradingd-producer", "tradingd-exec")
    box.wait_until(lambda: active(box, "tradingd-exec") or None, 30, "tradingd-exec active")
    out = box.run([PY, "-c", CLIENT, "sysclient", "submit"], timeout=60).stdout
    assert "NEW NEW cum 0 leaves 5" in out, out
    ls = box.run(["ls", "-l", "/dev/shm"]).stdout
    assert "tradingd-exec tradingd-exec" in ls and "tradingd.reports.sysclient" in ls, ls
    pid = box.show("tradingd-exec", "MainPID")["MainPID"]
    box.run(["kill", "-9", pid])
    box.wait_until(lambda: (box.show("tradingd-exec", "MainPID")["MainPID"] not in ("0", pid)
                            and active(box, "tradingd-exec")) or None, 30,
                   "systemd to restart tradingd-exec")
    journal = box.run(["journalctl", "--no-pager", "-u", "tradingd-exec"]).stdout
    assert "inputs replayed" in journal
    assert box.run(["test", "-s", "/var/lib/tradingd-exec/exec.journal"], check=False) \
        .returncode == 0
    # the client, restarted: its resting order comes back restated from the journal
    out = box.run([PY, "-c", CLIENT, "sysclient", "read"], timeout=60).stdout
    assert "ORDER_STATUS NEW cum 0 leaves 5" in out, out
    assert box.show("tradingd-exec", "NRestarts")["NRestarts"] == "1"
