"""The systemd units, as installed by `make install`, under a real systemd.

Two kinds of tests:

* offline checks of the unit files (no systemd needed): `systemd-analyze verify`, the exposure
  score of `systemd-analyze security --offline=true`, and RestartPreventExitStatus= against
  tradingd.constants.PERMANENT_EXIT_CODES;
* the units run by a real systemd booted in private namespaces (systemd_sandbox.py): one
  sandbox for the whole module, `make install` run inside it (so /opt, /etc and the users exist
  only there), then start, crash, hang, stop, bad config, permissions and uninstall.

The sandbox shares the host's network namespace: the daemons' metrics ports are free ports
picked for this run, written into the installed config.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from systemd_sandbox import Sandbox

from tradingd import constants

pytestmark = pytest.mark.systemd

REPO = Path(__file__).resolve().parents[2]
UNIT_DIR = REPO / "systemd"
PRODUCER = "tradingd-producer.service"
CONSUMER = "tradingd-consumer.service"
UNITS = (PRODUCER, CONSUMER)
MAX_EXPOSURE = 1.5
SEGMENT = f"/dev/shm/{constants.DEFAULT_SEGMENT_NAME}"
PREFIX = "/opt/tradingd"
CONFIG = constants.DEFAULT_CONFIG_PATH
INSTALLED_DATA_DIR = f"{PREFIX}/share/market_data"


# --- reading unit files -----------------------------------------------------------------------

def unit_settings(path: Path) -> dict[str, list[str]]:
    """Every `Key=value` of a unit file, by key, values in file order (keys may repeat)."""
    settings: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


# --- offline checks (no sandbox) -------------------------------------------------------------

@pytest.mark.parametrize("unit", UNITS)
def test_restart_prevent_exit_status_is_the_permanent_exit_codes(unit: str) -> None:
    values = unit_settings(UNIT_DIR / unit)["RestartPreventExitStatus"]
    codes = sorted(int(code) for value in values for code in value.split())
    assert codes == sorted(constants.PERMANENT_EXIT_CODES)


@pytest.mark.parametrize("unit", UNITS)
def test_units_have_the_required_service_settings(unit: str) -> None:
    s = unit_settings(UNIT_DIR / unit)
    assert s["Type"] == ["notify"]
    assert s["NotifyAccess"] == ["main"]
    assert s["Restart"] == ["on-failure"]
    assert s["RemoveIPC"] == ["yes"]
    assert "WatchdogSec" in s and "TimeoutStartSec" in s and "TimeoutStopSec" in s
    assert s["IPAddressDeny"] == ["any"] and s["IPAddressAllow"] == ["localhost"]


def test_consumer_is_not_bound_to_the_producer() -> None:
    """Only ordering and a weak pull: stopping/restarting the producer must not touch it."""
    s = unit_settings(UNIT_DIR / CONSUMER)
    for binding in ("BindsTo", "PartOf", "Requires", "Requisite", "PropagatesStopTo"):
        assert PRODUCER not in " ".join(s.get(binding, [])), binding
    assert s["After"] == [PRODUCER]
    # Own primary group: RemoveIPC= on the consumer must not reach objects of group tradingd.
    assert s["Group"] == ["tradingd-consumer"] and s["SupplementaryGroups"] == ["tradingd"]


@pytest.mark.parametrize("unit", UNITS)
def test_exposure_score(unit: str) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    res = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNIT_DIR / unit)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", res.stdout + res.stderr)
    assert found, res.stdout + res.stderr
    score = float(found.group(1))
    print(f"{unit}: exposure {score}")
    assert score <= MAX_EXPOSURE, res.stdout


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` is clean for the units installed with PREFIX=this venv.

    verify checks that ExecStart= exists, so the units are rendered as install.mk renders them,
    with PREFIX pointing at the environment running the tests (it has the console scripts).
    The units installed at /opt/tradingd are verified again inside the sandbox below.
    """
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    prefix = Path(sys.prefix)
    if not (prefix / "bin" / "tradingd-producer").exists():
        pytest.skip(f"{prefix} has no tradingd console scripts (package not installed)")
    for unit in UNITS:
        text = (UNIT_DIR / unit).read_text().replace("/opt/tradingd", str(prefix))
        (tmp_path / unit).write_text(text)
    res = subprocess.run(["systemd-analyze", "verify", *UNITS], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr


# --- under a real systemd ---------------------------------------------------------------------

@dataclass
class Installed:
    """The sandbox after `make install`, with the metrics ports the daemons were given."""

    box: Sandbox
    producer_port: int
    consumer_port: int
    install_seconds: float


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the sandbox shares the host's network)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_command(target: str) -> list[str]:
    """`make TARGET` in the checkout as seen inside the sandbox, via the Makefile if it
    includes systemd/install.mk, else with install.mk alone (same rules either way)."""
    src = "/run/sandbox/src"
    makefile = (REPO / "Makefile").read_text() if (REPO / "Makefile").exists() else ""
    if re.search(r"^\s*-?include\s+systemd/install\.mk", makefile, re.M):
        return ["make", "--no-print-directory", "-C", src, target]
    return ["make", "--no-print-directory", "-C", src, "-f", "systemd/install.mk", target]


SET_PORTS = """
import sys, yaml
path, producer, consumer = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path) as f:
    cfg = yaml.safe_load(f)
cfg["producer"]["metrics"]["port"] = producer
cfg["consumer"]["metrics"]["port"] = consumer
with open(path, "w") as f:
    yaml.safe_dump(cfg, f, sort_keys=False)
"""


@pytest.fixture(scope="module")
def installed(sandbox: Sandbox) -> Iterator[Installed]:
    """`make install` inside the sandbox, then this run's metrics ports in the config."""
    t0 = time.monotonic()
    out = sandbox.run(make_command("install"), timeout=300)
    seconds = time.monotonic() - t0
    print(out.stdout, out.stderr, f"make install: {seconds:.1f} s", sep="\n")
    ports = (free_port(), free_port())
    while ports[1] == ports[0]:
        ports = (ports[0], free_port())
    sandbox.run([f"{PREFIX}/bin/python", "-c", SET_PORTS, CONFIG, str(ports[0]), str(ports[1])])
    yield Installed(sandbox, ports[0], ports[1], seconds)
    # Whatever the tests did, stop the daemons gracefully before the sandbox is killed.
    sandbox.systemctl("stop", *UNITS, check=False)


#: Straight to loopback, whatever http_proxy says.
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def scrape(port: int) -> dict[str, float]:
    """The unlabelled samples of http://127.0.0.1:PORT/metrics, by sample name."""
    with NO_PROXY.open(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


def try_scrape(port: int) -> dict[str, float] | None:
    try:
        return scrape(port)
    except OSError:
        return None


def listening_addresses(port: int) -> set[str]:
    """Local IPv4 addresses with a TCP socket LISTENing on port (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr_hex, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(addr_hex)[::-1]))
    return found


def running(box: Sandbox, unit: str) -> bool:
    props = box.show(unit, "ActiveState", "SubState")
    return props == {"ActiveState": "active", "SubState": "running"}


def ensure_started(inst: Installed) -> None:
    """Both units active (started if a previous test left them stopped or failed)."""
    box = inst.box
    if not (running(box, PRODUCER) and running(box, CONSUMER)):
        box.systemctl("reset-failed", *UNITS, check=False)
        box.systemctl("start", *UNITS)
    box.wait_until(lambda: running(box, PRODUCER) and running(box, CONSUMER), 30,
                   "both units to be active")
    box.wait_until(lambda: try_scrape(inst.consumer_port), 15, "consumer metrics")
    box.wait_until(
        lambda: (try_scrape(inst.consumer_port) or {}).get("tradingd_consumer_producer_up") == 1,
        15, "the consumer to see the producer up")


def main_pid(box: Sandbox, unit: str) -> int:
    return int(box.show(unit, "MainPID")["MainPID"])


def n_restarts(box: Sandbox, unit: str) -> int:
    return int(box.show(unit, "NRestarts")["NRestarts"])


def daemon_entries(box: Sandbox, unit: str, pid: int) -> list[dict[str, str]]:
    """Journal entries process `pid` of the unit wrote (not systemd's messages about it)."""
    return [e for e in box.journal(unit)
            if e.get("_SYSTEMD_UNIT") == unit and e.get("_PID") == str(pid)]


def systemd_messages(box: Sandbox, unit: str) -> list[str]:
    """What systemd itself logged about the unit (Started..., Watchdog timeout...)."""
    return [str(e.get("MESSAGE")) for e in box.journal(unit) if e.get("_PID") == "1"]


def messages(entries: list[dict[str, str]]) -> str:
    return "\n".join(str(e.get("MESSAGE", "")) for e in entries)


def test_make_install_layout(installed: Installed) -> None:
    box = installed.box
    for path in (f"{PREFIX}/bin/tradingd-producer", f"{PREFIX}/bin/tradingd-consumer",
                 f"/etc/systemd/system/{PRODUCER}", f"/etc/systemd/system/{CONSUMER}",
                 "/etc/sysusers.d/tradingd.conf", CONFIG):
        box.run(["test", "-e", path])
    # The installed config points at the installed data, and the data is there.
    check = box.run([f"{PREFIX}/bin/python", "-m", "tradingd.daemon.configcheck", CONFIG]).stdout
    assert f"data_dir: {INSTALLED_DATA_DIR}" in check
    csvs = box.run(["find", INSTALLED_DATA_DIR, "-name", "*.csv"]).stdout.split()
    assert len(csvs) >= 1
    # Users from sysusers.d: the readers (consumer, exec) read through group tradingd, nobody
    # else is in it.
    assert box.run(["id", "-nG", "tradingd-consumer"]).stdout.split() == [
        "tradingd-consumer", "tradingd"]
    # the readers of the segment: the consumer, the bridge's publish side and exec
    members = box.run(["getent", "group", "tradingd"]).stdout.strip().rsplit(":", 1)[1]
    # the segment's readers: consumer, exec, gateway (tests/systemd/test_gateway_unit.py) and
    # the bridge's publish side (issue 17)
    assert sorted(members.split(",")) == ["tradingd-bridge", "tradingd-consumer",
                                          "tradingd-exec", "tradingd-gateway"]
    assert box.run(["id", "-nG", "tradingd"]).stdout.split() == ["tradingd"]
    # The installed units are clean for systemd-analyze verify too (real paths here).
    res = box.run(["systemd-analyze", "verify", f"/etc/systemd/system/{PRODUCER}",
                   f"/etc/systemd/system/{CONSUMER}"], check=False)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr
    # tools/ is installed (no checkout needed on a service host), runnable
    for tool in TOOLS:
        box.run(["test", "-x", f"{PREFIX}/tools/{tool}"])
    for path in ("README.md", "c/tradingd_segment.h", "c/tradingd_reader.c"):
        box.run(["test", "-f", f"{PREFIX}/tools/{path}"])
    assert "usage: strace-unit" in box.run([f"{PREFIX}/tools/strace-unit", "--help"]).stdout
    print(f"make install took {installed.install_seconds:.1f} s")


def test_start_both(installed: Installed) -> None:
    box = installed.box
    box.systemctl("start", PRODUCER, CONSUMER)
    # Type=notify: `systemctl start` returns once READY=1 arrived, and the unit is "active
    # (running)" only after it; before READY it stays "activating (start)".
    for unit in UNITS:
        props = box.show(unit, "ActiveState", "SubState", "StatusText", "NRestarts", "Result")
        assert props["ActiveState"] == "active" and props["SubState"] == "running", props
        assert props["NRestarts"] == "0" and props["Result"] == "success"
        status = box.systemctl("status", unit).stdout
        assert "Active: active (running)" in status
        # STATUS= text shown by `systemctl status` (the daemon sets one at least on READY).
        assert re.search(r'^\s*Status: ".+"', status, re.M), status
    # Metrics served, on loopback only.
    for port, prefix in ((installed.producer_port, "tradingd_producer_"),
                         (installed.consumer_port, "tradingd_consumer_")):
        samples = box.wait_until(lambda p=port: try_scrape(p), 15, f"metrics on port {port}")
        assert any(name.startswith(prefix) for name in samples)
        # The hardening leaves /proc readable enough for the client's process metrics.
        assert samples.get("process_resident_memory_bytes", 0) > 0
        assert listening_addresses(port) == {"127.0.0.1"}
    box.wait_until(
        lambda: (try_scrape(installed.consumer_port) or {}).get("tradingd_consumer_producer_up")
        == 1, 15, "the consumer to report the producer up")
    # Logs in the journal, filed at the priority given by their <N> prefix: info lines (start,
    # attach...) at 6, and no line with the prefix left in its text.
    for unit in UNITS:
        pid = main_pid(box, unit)
        box.wait_until(lambda u=unit, p=pid: any(e["PRIORITY"] == "6"
                                                 for e in daemon_entries(box, u, p)),
                       10, f"an info line from {unit} in the journal")
        entries = daemon_entries(box, unit, pid)
        assert not re.search(r"^<\d>", messages(entries), re.M), "prefix not parsed"
        assert all(e.get("SYSLOG_IDENTIFIER") == unit.removesuffix(".service") for e in entries)
        assert any(m.startswith("Started ") for m in systemd_messages(box, unit))


#: The scripts of tools/ that `make install` puts in PREFIX/tools.
TOOLS = ("shm-hexdump", "strace-lifecycle", "strace-summary", "strace-timing", "strace-unit")


def test_installed_tools_read_the_running_segment(installed: Installed) -> None:
    """The README's tools run from PREFIX/tools with nothing of tradingd on PATH:
    shm-hexdump finds the installed tradingd-inspect beside it."""
    box = installed.box
    ensure_started(installed)
    bare = ["env", "-i", "PATH=/usr/bin:/bin"]
    out = box.run([*bare, f"{PREFIX}/tools/shm-hexdump", constants.DEFAULT_SEGMENT_NAME,
                   "header.magic"]).stdout
    assert out.splitlines()[0].endswith("|TRADINGD|"), out


SEGMENT_ACCESS = """
import errno, json, os, sys
result = {}
for what, flags in (("read", os.O_RDONLY), ("write", os.O_RDWR)):
    try:
        os.close(os.open(sys.argv[1], flags | os.O_NOFOLLOW))
        result[what] = "ok"
    except OSError as exc:
        result[what] = errno.errorcode[exc.errno]
print(json.dumps(result))
"""


def access_as(box: Sandbox, user: str) -> dict[str, str]:
    """What `user` (with its groups) may do with the segment: open for read, for write."""
    gid = box.run(["id", "-g", user]).stdout.strip()
    out = box.run(["setpriv", f"--reuid={user}", f"--regid={gid}", "--init-groups",
                   "/usr/bin/python3", "-c", SEGMENT_ACCESS, SEGMENT]).stdout
    return dict(json.loads(out))


def test_segment_permissions(installed: Installed) -> None:
    box = installed.box
    ensure_started(installed)
    owner = box.run(["stat", "--format=%a %U %G", SEGMENT]).stdout.split()
    assert owner == ["640", "tradingd", "tradingd"]
    assert access_as(box, "tradingd") == {"read": "ok", "write": "ok"}  # the owner (control)
    assert access_as(box, "tradingd-consumer") == {"read": "ok", "write": "EACCES"}
    assert access_as(box, "nobody") == {"read": "EACCES", "write": "EACCES"}


def test_kill_9_producer_is_restarted_and_consumer_follows(installed: Installed) -> None:
    box = installed.box
    ensure_started(installed)
    producer_pid, restarts = main_pid(box, PRODUCER), n_restarts(box, PRODUCER)
    consumer_pid = main_pid(box, CONSUMER)
    changes = scrape(installed.consumer_port)["tradingd_consumer_generation_changes_total"]
    box.run(["kill", "-KILL", str(producer_pid)])
    box.wait_until(lambda: n_restarts(box, PRODUCER) == restarts + 1, 20, "a producer restart")
    box.wait_until(lambda: running(box, PRODUCER), 20, "the restarted producer to be READY")
    assert main_pid(box, PRODUCER) != producer_pid
    # The consumer was neither stopped nor restarted, and moved to the new generation.
    box.wait_until(
        lambda: (try_scrape(installed.consumer_port) or {}).get(
            "tradingd_consumer_generation_changes_total", 0) > changes,
        15, "the consumer to count a generation change")
    assert main_pid(box, CONSUMER) == consumer_pid
    assert n_restarts(box, CONSUMER) == 0
    assert running(box, CONSUMER)


def test_hung_producer_is_killed_by_the_watchdog(installed: Installed) -> None:
    box = installed.box
    ensure_started(installed)
    timeouts = sum("Watchdog timeout" in m for m in systemd_messages(box, PRODUCER))
    producer_pid, restarts = main_pid(box, PRODUCER), n_restarts(box, PRODUCER)
    consumer_pid = main_pid(box, CONSUMER)
    watchdog = float(box.show(PRODUCER, "WatchdogUSec")["WatchdogUSec"].removesuffix("s"))
    box.run(["kill", "-STOP", str(producer_pid)])
    t0 = time.monotonic()
    box.wait_until(lambda: n_restarts(box, PRODUCER) == restarts + 1, watchdog + 20,
                   "the watchdog to restart the stopped producer")
    elapsed = time.monotonic() - t0
    box.wait_until(lambda: running(box, PRODUCER), 20, "the restarted producer to be READY")
    assert main_pid(box, PRODUCER) != producer_pid
    told = systemd_messages(box, PRODUCER)
    assert sum("Watchdog timeout" in m for m in told) == timeouts + 1, told
    print(f"watchdog restart {elapsed:.1f} s after SIGSTOP (WatchdogSec={watchdog:g}s)")
    assert main_pid(box, CONSUMER) == consumer_pid


def test_stopping_the_consumer_leaves_the_segment(installed: Installed) -> None:
    """RemoveIPC=yes on the consumer must not take the producer's segment with it."""
    box = installed.box
    ensure_started(installed)
    before = box.run(["stat", "--format=%i", SEGMENT]).stdout
    producer_pid = main_pid(box, PRODUCER)
    box.systemctl("stop", CONSUMER)
    assert box.run(["stat", "--format=%i", SEGMENT]).stdout == before
    assert main_pid(box, PRODUCER) == producer_pid and running(box, PRODUCER)
    box.systemctl("start", CONSUMER)


def test_stop_producer_removes_segment_consumer_keeps_running(installed: Installed) -> None:
    box = installed.box
    ensure_started(installed)
    consumer_pid = main_pid(box, CONSUMER)
    box.systemctl("stop", PRODUCER)
    props = box.show(PRODUCER, "ActiveState", "Result", "ExecMainStatus")
    assert props == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}
    assert box.run(["test", "-e", SEGMENT], check=False).returncode == 1, "segment left behind"
    box.wait_until(
        lambda: (try_scrape(installed.consumer_port) or {}).get("tradingd_consumer_producer_up")
        == 0, 15, "the consumer to report the producer down")
    assert running(box, CONSUMER) and main_pid(box, CONSUMER) == consumer_pid


BAD_KEY = "no_such_setting_for_the_test"


def test_bad_config_fails_once_without_restart_loop(installed: Installed) -> None:
    box = installed.box
    box.systemctl("stop", PRODUCER)
    box.systemctl("reset-failed", PRODUCER, check=False)
    good = box.run(["cat", CONFIG]).stdout
    box.run(["sh", "-c", f"cat > {CONFIG}"], input=f"{BAD_KEY}: 1\n{good}")
    try:
        start = box.systemctl("start", PRODUCER, check=False)
        assert start.returncode != 0
        props = box.show(PRODUCER, "ActiveState", "Result", "ExecMainStatus", "NRestarts")
        assert props == {"ActiveState": "failed", "Result": "exit-code",
                         "ExecMainStatus": str(constants.EXIT_CONFIG), "NRestarts": "0"}
        # Longer than RestartSec: still failed, still not restarted.
        time.sleep(2.5)
        assert box.show(PRODUCER, "ActiveState", "NRestarts") == {
            "ActiveState": "failed", "NRestarts": "0"}
        entries = daemon_entries(box, PRODUCER, int(box.show(PRODUCER, "ExecMainPID")[
            "ExecMainPID"]))
        errors = [e for e in entries if BAD_KEY in str(e.get("MESSAGE"))]
        assert errors, messages(entries)
        assert all(e["PRIORITY"] == "3" for e in errors), errors
        assert "Traceback" not in messages(entries)
    finally:
        box.run(["sh", "-c", f"cat > {CONFIG}"], input=good)
        box.systemctl("reset-failed", PRODUCER, check=False)


def test_make_uninstall(installed: Installed) -> None:
    """Last: `make uninstall` stops the units and removes what `make install` put, but for
    the config the tests edited (their metrics ports), which it keeps as .rpmsave."""
    box = installed.box
    ensure_started(installed)
    edited = box.run(["cat", CONFIG]).stdout
    box.run(make_command("uninstall"), timeout=120)
    for unit in UNITS:
        assert box.show(unit, "LoadState")["LoadState"] == "not-found"
    for path in (PREFIX, f"/etc/systemd/system/{PRODUCER}", f"/etc/systemd/system/{CONSUMER}",
                 "/etc/sysusers.d/tradingd.conf", CONFIG, f"{CONFIG}.dist"):
        assert box.run(["test", "-e", path], check=False).returncode == 1, path
    assert box.run(["cat", f"{CONFIG}.rpmsave"]).stdout == edited
    assert box.run(["test", "-e", SEGMENT], check=False).returncode == 1
    leftovers = box.run(["pgrep", "-f", "tradingd-"], check=False).stdout
    assert not leftovers.strip(), leftovers
    # A config nobody edited goes with the rest (and with it /etc/tradingd).
    box.run(["rm", f"{CONFIG}.rpmsave"])
    box.run(make_command("install"), timeout=300)
    box.run(make_command("uninstall"), timeout=120)
    for path in (PREFIX, "/etc/tradingd"):
        assert box.run(["test", "-e", path], check=False).returncode == 1, path

