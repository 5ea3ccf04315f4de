"""The tradingd-bridge units under a real systemd (the sandbox of systemd_sandbox.py).

`make install` inside the sandbox, a real nats-server (with a user and password) on the
host's loopback (the sandbox shares the network), then: the producer, the publish bridge
and a mirror (its ExecStart changed by a drop-in to mirror into another segment name) as
units; credentials from a file (``bridge.nats.credentials_file``: the sandboxed systemd does
not populate ``LoadCredential=``'s directory); the mirror's
segment owned by tradingd:tradingd 0640 with the upstream fields filled; wrong credentials
make the unit fail once with exit 85 and no restart (RestartPreventExitStatus=).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from systemd_sandbox import Sandbox
from test_systemd_units import CONFIG, PREFIX, free_port, make_command

pytestmark = pytest.mark.systemd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bridge"))
from bridge_support import NatsServer  # noqa: E402

PUBLISH = "tradingd-bridge-publish.service"
MIRROR = "tradingd-bridge-mirror.service"
PRODUCER = "tradingd-producer.service"
MIRROR_SEGMENT = "tradingd-mirror"

SET_CONFIG = """
import sys, yaml
path, url = sys.argv[1], sys.argv[2]
ports = [int(p) for p in sys.argv[3:]]
with open(path) as f:
    cfg = yaml.safe_load(f)
cfg["producer"]["metrics"]["port"] = ports[0]
cfg["consumer"]["metrics"]["port"] = ports[1]
cfg["bridge"]["nats"]["servers"] = [url]
cfg["bridge"]["nats"]["reconnect_wait_max"] = 0.5
cfg["bridge"]["publish"]["metrics"]["port"] = ports[2]
cfg["bridge"]["mirror"]["metrics"]["port"] = ports[3]
# LoadCredential= leaves $CREDENTIALS_DIRECTORY empty under this sandboxed systemd 252, so
# the credentials come from a file readable by group tradingd here (both bridge users)
cfg["bridge"]["nats"]["credentials_file"] = "/etc/tradingd/nats-test.cred"
with open(path, "w") as f:
    yaml.safe_dump(cfg, f, sort_keys=False)
"""

DROP_IN = ("[Service]\nExecStart=\n"
           f"ExecStart={PREFIX}/bin/tradingd-bridge --config {CONFIG} "
           f"--segment {MIRROR_SEGMENT} --feed tradingd mirror\n")


@pytest.fixture(scope="module")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    ns = NatsServer(tmp_path_factory.mktemp("nats"), user="tradingd", password="s3cret")
    yield ns
    ns.cleanup()


@pytest.fixture(scope="module")
def box(sandbox: Sandbox, nats: NatsServer) -> Iterator[Sandbox]:
    sandbox.run(make_command("install"), timeout=300)
    ports = [str(free_port()) for _ in range(4)]
    sandbox.run([f"{PREFIX}/bin/python", "-c", SET_CONFIG, CONFIG, nats.url, *ports])
    sandbox.run(["mkdir", "-p", f"/etc/systemd/system/{MIRROR}.d"])
    sandbox.run(["sh", "-c", f"cat > /etc/systemd/system/{MIRROR}.d/segment.conf"],
                input=DROP_IN)
    write_creds(sandbox, "user=tradingd\npassword=s3cret\n")
    sandbox.systemctl("daemon-reload")
    yield sandbox
    sandbox.systemctl("stop", PUBLISH, MIRROR, PRODUCER, check=False)


def write_creds(box: Sandbox, text: str) -> None:
    box.run(["sh", "-c", "umask 027; cat > /etc/tradingd/nats-test.cred; "
                         "chgrp tradingd /etc/tradingd/nats-test.cred"], input=text)


def status(box: Sandbox, unit: str) -> str:
    return box.show(unit, "StatusText")["StatusText"]


def journal_text(box: Sandbox, unit: str) -> str:
    return "\n".join(str(e.get("MESSAGE")) for e in box.journal(unit))


def test_bridge_units_run_and_mirror(box: Sandbox) -> None:
    box.systemctl("start", PRODUCER, PUBLISH, MIRROR)
    try:
        box.wait_until(lambda: "upstream live" in status(box, MIRROR), 60,
                       "the mirror unit to say upstream live")
    except Exception as exc:
        raise AssertionError(f"{exc}: {status(box, MIRROR)!r}\n{journal_text(box, MIRROR)}\n"
                             f"{journal_text(box, PUBLISH)}") from None
    assert "published" in status(box, PUBLISH)
    st = box.run(["stat", "-c", "%U %G %a", f"/dev/shm/{MIRROR_SEGMENT}"]).stdout.split()
    assert st == ["tradingd", "tradingd", "640"]
    out = box.run([f"{PREFIX}/bin/tradingd-inspect", "status", "--segment", MIRROR_SEGMENT,
                   "--config", CONFIG]).stdout
    assert "mirror of " in out.splitlines()[0] and ":tradingd gen" in out.splitlines()[0]
    assert box.show(MIRROR, "ActiveState")["ActiveState"] == "active"
    # the state directory exists for the mirror's position file
    box.wait_until(lambda: box.run(["sh", "-c", "ls /var/lib/tradingd-bridge/"],
                                   check=False).stdout.strip(), 15, "the position file")


def test_wrong_credentials_fail_once_with_85(box: Sandbox) -> None:
    write_creds(box, "user=tradingd\npassword=wrong\n")
    box.systemctl("restart", PUBLISH, check=False)
    box.wait_until(lambda: box.show(PUBLISH, "ActiveState")["ActiveState"] == "failed", 30,
                   "the publish unit to fail")
    props = box.show(PUBLISH, "ExecMainStatus", "NRestarts", "Result")
    assert props["ExecMainStatus"] == "85", props
    time.sleep(2.0)  # RestartSec=1s: a restart would have happened by now
    assert box.show(PUBLISH, "NRestarts")["NRestarts"] == "0"
    text = journal_text(box, PUBLISH)
    assert "refused the connection" in text and "Authorization Violation" in text
    write_creds(box, "user=tradingd\npassword=s3cret\n")
    box.systemctl("reset-failed", PUBLISH, check=False)
    box.systemctl("start", PUBLISH)
    box.wait_until(lambda: "published" in status(box, PUBLISH), 30, "publishing again")
