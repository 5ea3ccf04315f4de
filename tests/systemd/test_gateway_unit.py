"""tradingd-gateway.service: offline checks, then `make install` and the unit under a real systemd.

Same harness as test_systemd_units.py (systemd_sandbox.py, one sandbox for this module): the
gateway runs as its own user in group tradingd with the token from LoadCredential=, serves a
real WebSocket client from the test process (the sandbox shares the host's network), follows a
producer killed with -9, and is neither stopped nor restarted with it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from systemd_sandbox import Sandbox
from test_systemd_units import (
    CONFIG,
    MAX_EXPOSURE,
    NO_PROXY,
    PREFIX,
    PRODUCER,
    free_port,
    listening_addresses,
    main_pid,
    make_command,
    n_restarts,
    running,
    unit_settings,
)
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tradingd import constants

pytestmark = pytest.mark.systemd

REPO = Path(__file__).resolve().parents[2]
GATEWAY = "tradingd-gateway.service"
TOKEN_FILE = f"{constants.DEFAULT_CONFIG_PATH.rsplit('/', 1)[0]}/gateway-token"
SEGMENT = f"/dev/shm/{constants.DEFAULT_SEGMENT_NAME}"

SET_PORTS = """
import sys, yaml
path, p, c, g, gm = sys.argv[1], *map(int, sys.argv[2:])
with open(path) as f:
    cfg = yaml.safe_load(f)
cfg["producer"]["metrics"]["port"] = p
cfg["consumer"]["metrics"]["port"] = c
cfg["gateway"]["port"] = g
cfg["gateway"]["metrics"]["port"] = gm
with open(path, "w") as f:
    yaml.safe_dump(cfg, f, sort_keys=False)
"""


def test_gateway_unit_settings() -> None:
    s = unit_settings(REPO / "systemd" / GATEWAY)
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["Restart"] == ["on-failure"] and s["RemoveIPC"] == ["yes"]
    codes = sorted(int(c) for v in s["RestartPreventExitStatus"] for c in v.split())
    assert codes == sorted(constants.PERMANENT_EXIT_CODES)
    assert s["User"] == ["tradingd-gateway"] and s["Group"] == ["tradingd-gateway"]
    assert s["SupplementaryGroups"] == ["tradingd"]
    assert s["LoadCredential"] == [f"{constants.GATEWAY_TOKEN_CREDENTIAL}:{TOKEN_FILE}"]
    assert s["IPAddressDeny"] == ["any"] and s["IPAddressAllow"] == ["localhost"]
    assert s["ProtectSystem"] == ["strict"]  # read-only file system
    for binding in ("BindsTo", "PartOf", "Requires", "Requisite"):
        assert PRODUCER not in " ".join(s.get(binding, [])), binding


def test_gateway_exposure_score() -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    res = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                          str(REPO / "systemd" / GATEWAY)], capture_output=True, text=True,
                         timeout=60, check=False)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", res.stdout + res.stderr)
    assert found, res.stdout + res.stderr
    print(f"{GATEWAY}: exposure {found.group(1)}")
    assert float(found.group(1)) <= MAX_EXPOSURE, res.stdout


def test_gateway_unit_verifies(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    prefix = Path(sys.prefix)
    if not (prefix / "bin" / "tradingd-gateway").exists():
        pytest.skip(f"{prefix} has no tradingd-gateway console script")
    text = (REPO / "systemd" / GATEWAY).read_text().replace("/opt/tradingd", str(prefix))
    (tmp_path / GATEWAY).write_text(text)
    res = subprocess.run(["systemd-analyze", "verify", GATEWAY], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr


@dataclass
class Installed:
    box: Sandbox
    port: int
    metrics_port: int
    token: str


PROBE = """[Service]
Type=oneshot
LoadCredential=probe:{token}
ExecStart=/bin/sh -c 'test -s "$CREDENTIALS_DIRECTORY/probe"'
"""
#: A drop-in for sandboxes whose systemd cannot provide credentials: the token from a file
#: the gateway's user may read, named by gateway.token_file (read by the daemon the same way).
NO_CREDENTIALS = """[Service]
LoadCredential=
"""


def credentials_work(box: Sandbox) -> bool:
    """Whether this systemd fills LoadCredential= directories.

    Seen: systemd 252 booted in the test sandbox (container=unshare, nested mount namespace)
    leaves /run/credentials/UNIT empty even for a root unit; on a booted host it works.
    """
    box.run(["sh", "-c", "cat > /etc/systemd/system/tdcred-probe.service"],
            input=PROBE.format(token=TOKEN_FILE))
    box.systemctl("daemon-reload")
    ok = box.systemctl("start", "tdcred-probe.service", check=False).returncode == 0
    box.run(["rm", "-f", "/etc/systemd/system/tdcred-probe.service"])
    box.systemctl("daemon-reload")
    return ok


@pytest.fixture(scope="module")
def installed(sandbox: Sandbox) -> Iterator[Installed]:
    sandbox.run(make_command("install"), timeout=300)
    if not credentials_work(sandbox):
        print("this systemd provides no credentials (LoadCredential=): the gateway gets its "
              "token through gateway.token_file instead")
        readable = "/etc/tradingd/gateway-token.sandbox"
        sandbox.run(["install", "-m", "0400", "-o", "tradingd-gateway", TOKEN_FILE, readable])
        sandbox.run(["mkdir", "-p", f"/etc/systemd/system/{GATEWAY}.d"])
        sandbox.run(["sh", "-c", f"cat > /etc/systemd/system/{GATEWAY}.d/sandbox.conf"],
                    input=NO_CREDENTIALS)
        sandbox.run(["sed", "-i", f"s#^  token_file: null#  token_file: {readable}#", CONFIG])
        sandbox.systemctl("daemon-reload")
    ports = set()
    while len(ports) < 4:
        ports.add(free_port())
    p, c, g, gm = sorted(ports)
    sandbox.run([f"{PREFIX}/bin/python", "-c", SET_PORTS, CONFIG, str(p), str(c), str(g),
                 str(gm)])
    token = sandbox.run(["cat", TOKEN_FILE]).stdout.strip()
    yield Installed(sandbox, g, gm, token)
    sandbox.systemctl("stop", GATEWAY, PRODUCER, check=False)


def ws(inst: Installed) -> object:
    return connect(f"ws://127.0.0.1:{inst.port}/ws", open_timeout=10,
                   additional_headers={"Authorization": f"Bearer {inst.token}"})


def next_of(conn: object, kind: str, timeout: float = 20.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = json.loads(conn.recv(max(0.1, deadline - time.monotonic())))  # type: ignore[attr-defined]
        if msg["type"] == kind:
            return dict(msg)
    raise AssertionError(f"no {kind} message")


def test_install_puts_the_gateway_and_its_token(installed: Installed) -> None:
    box = installed.box
    for path in (f"{PREFIX}/bin/tradingd-gateway", f"/etc/systemd/system/{GATEWAY}",
                 f"{PREFIX}/share/doc/tradingd/websocket-api.md"):
        box.run(["test", "-e", path])
    assert box.run(["stat", "--format=%a %U", TOKEN_FILE]).stdout.split() == ["600", "root"]
    assert re.fullmatch(r"[0-9a-f]{64}", installed.token)
    assert box.run(["id", "-nG", "tradingd-gateway"]).stdout.split() == [
        "tradingd-gateway", "tradingd"]
    res = box.run(["systemd-analyze", "verify", f"/etc/systemd/system/{GATEWAY}"], check=False)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr


def test_gateway_serves_follows_the_producer_and_is_locked_down(installed: Installed) -> None:
    box = installed.box
    start = box.systemctl("start", PRODUCER, GATEWAY, check=False)
    assert start.returncode == 0, "\n".join(str(e.get("MESSAGE")) for e in box.journal(GATEWAY))
    assert running(box, GATEWAY)
    status = box.systemctl("status", GATEWAY).stdout
    assert re.search(r'^\s*Status: "serving ', status, re.M), status
    assert listening_addresses(installed.port) == {"127.0.0.1"}
    assert listening_addresses(installed.metrics_port) == {"127.0.0.1"}
    # the page's static files (package data in the installed venv) need no token
    with NO_PROXY.open(f"http://127.0.0.1:{installed.port}/", timeout=10) as resp:
        assert resp.status == 200 and b"tradingd live" in resp.read()
    # the token from LoadCredential= is required
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{installed.port}/ws", open_timeout=10)
    assert refused.value.response.status_code == 401
    with ws(installed) as conn:  # type: ignore[attr-defined]
        conn.send(json.dumps({"op": "subscribe", "id": 1, "channels": ["status", "ticks.*"]}))
        first = next_of(conn, "status")
        deadline = time.monotonic() + 30
        while first["producer"] != "up":  # the units started together: it may attach later
            assert time.monotonic() < deadline, "\n".join(
                str(e.get("MESSAGE")) for e in box.journal(GATEWAY))
            try:
                first = next_of(conn, "status")
            except (TimeoutError, AssertionError):
                raise AssertionError("the gateway never saw the producer up:\n" + "\n".join(
                    str(e.get("MESSAGE")) for e in box.journal(GATEWAY))) from None
        assert next_of(conn, "ticks")["gen"] == first["gen"]
        gateway_pid, restarts = main_pid(box, GATEWAY), n_restarts(box, PRODUCER)
        box.run(["kill", "-KILL", str(main_pid(box, PRODUCER))])
        box.wait_until(lambda: n_restarts(box, PRODUCER) == restarts + 1, 30,
                       "a producer restart")
        deadline = time.monotonic() + 30
        while True:
            msg = next_of(conn, "status")
            if msg.get("event") == "generation_change":
                break
            assert time.monotonic() < deadline, "no generation change"
        assert msg["gen"] != first["gen"]
        assert next_of(conn, "ticks")["gen"] == msg["gen"]
    assert main_pid(box, GATEWAY) == gateway_pid and n_restarts(box, GATEWAY) == 0
    # the gateway reads the segment through group tradingd and cannot write it
    pid = main_pid(box, GATEWAY)
    status_text = box.run(["cat", f"/proc/{pid}/status"]).stdout
    assert re.search(r"^CapEff:\s+0+$", status_text, re.M)
    maps = box.run(["cat", f"/proc/{pid}/maps"]).stdout
    assert any(SEGMENT in line and line.split()[1].startswith("r-") for line in
               maps.splitlines())
    entries = [e for e in box.journal(GATEWAY) if e.get("_PID") == str(pid)]
    assert any(e["PRIORITY"] == "6" and "gateway on http://127.0.0.1:" in e["MESSAGE"]
               for e in entries)
    box.systemctl("stop", GATEWAY)
    props = box.show(GATEWAY, "ActiveState", "Result", "ExecMainStatus")
    assert props == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}
    assert running(box, PRODUCER)


def test_uninstall_removes_the_gateway(installed: Installed) -> None:
    box = installed.box
    # (the sandbox's own additions first: uninstall removes only what install put)
    box.run(["rm", "-rf", "/etc/tradingd/gateway-token.sandbox",
             f"/etc/systemd/system/{GATEWAY}.d"])
    box.run(make_command("uninstall"), timeout=120)
    assert box.show(GATEWAY, "LoadState")["LoadState"] == "not-found"
    for path in (f"/etc/systemd/system/{GATEWAY}", TOKEN_FILE):
        assert box.run(["test", "-e", path], check=False).returncode == 1, path
    # the sandbox edited the config (ports, token_file): uninstall keeps it as .rpmsave, and
    # that is all that is left of /etc/tradingd
    left = box.run(["ls", "-A", "/etc/tradingd"], check=False).stdout.split()
    assert left == ["tradingd.yaml.rpmsave"], left
