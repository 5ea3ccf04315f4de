"""``--metrics-port`` / ``--no-metrics`` on tradingd-exec and tradingd-bridge publish|mirror
(``daemon_parser``), and their exposition's conventions (docs/metrics.md): the shared
``tradingd_build_info{daemon=...}``, no ``_created`` series.

Real processes; no producer and no NATS server: both daemons count waiting for their peers
as started (READY=1), so each run is a start, a scrape and a stop.
"""

from __future__ import annotations

import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from daemons import DaemonProcess, command

from tradingd import constants as C

pytestmark = pytest.mark.slow

KINDS = ["exec", "bridge-publish", "bridge-mirror"]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port someone listens on (as an installed daemon would hold 9106)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


@pytest.fixture
def procs() -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for d in reversed(started):
        d.cleanup()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(workdir: Path, kind: str, port: int) -> Path:
    """``kind``'s metrics on ``port``; every other daemon's on 0; NATS where nobody is."""
    cfg: dict[str, Any] = {
        "segment": {"ring_capacity": 4096, "heartbeat_interval": 0.05},
        "producer": {"metrics": {"port": 0}}, "consumer": {"metrics": {"port": 0}},
        "exec": {"journal": str(workdir / "exec.journal"), "metrics": {"port": 0}},
        "bridge": {"nats": {"servers": [f"nats://127.0.0.1:{_closed_port()}"],
                            "connect_timeout": 0.5, "reconnect_wait_max": 0.5},
                   "publish": {"metrics": {"port": 0}},
                   "mirror": {"metrics": {"port": 0},
                              "state_dir": str(workdir / "mirror-state")}},
    }
    section = cfg["exec"] if kind == "exec" else cfg["bridge"][kind.split("-")[1]]
    section["metrics"]["port"] = port
    path = workdir / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def start(kind: str, config: Path, workdir: Path, segment: str,
          extra: list[str]) -> DaemonProcess:
    if kind == "exec":
        return DaemonProcess(kind, config, workdir, segment=segment, extra_args=extra)
    mode = kind.split("-")[1]
    return DaemonProcess(kind, config, workdir, segment=segment,
                         extra_args=[mode, "--feed", segment, *extra])


def config_key(kind: str) -> str:
    return "exec.metrics.port" if kind == "exec" else f"bridge.{kind.split('-')[1]}.metrics.port"


@pytest.mark.parametrize("kind", KINDS)
def test_busy_port_exits_69_naming_the_key_and_metrics_port_moves_it(
        kind: str, workdir: Path, segment_name: str, busy_port: int,
        procs: list[DaemonProcess]) -> None:
    config = write_config(workdir, kind, busy_port)
    refused = start(kind, config, workdir, segment_name, [])
    procs.append(refused)
    assert refused.wait_exit() == C.EXIT_UNAVAILABLE, refused.log
    assert config_key(kind) in refused.log and "--metrics-port" in refused.log
    assert "Traceback" not in refused.log
    moved = start(kind, config, workdir, segment_name, ["--metrics-port", "0"])
    procs.append(moved)
    moved.wait_ready()
    assert moved.metrics_port() != busy_port
    with urllib.request.urlopen(moved.metrics_url(), timeout=10) as resp:
        text = resp.read().decode()
    daemon = kind.split("-")[0]
    assert f'tradingd_build_info{{daemon="{daemon}"' in text
    if daemon == "bridge":
        assert f'mode="{kind.split("-")[1]}"' in text
    assert "_created" not in text
    assert f"tradingd_{daemon}_" in text and "process_start_time_seconds" in text
    assert moved.stop() == 0


@pytest.mark.parametrize("kind", KINDS)
def test_no_metrics_serves_nothing(kind: str, workdir: Path, segment_name: str,
                                   busy_port: int, procs: list[DaemonProcess]) -> None:
    d = start(kind, write_config(workdir, kind, busy_port), workdir, segment_name,
              ["--no-metrics"])
    procs.append(d)
    d.wait_ready()
    assert "metrics on" not in d.log
    assert d.stop() == 0


def test_help_shows_the_mode_section() -> None:
    out = subprocess.run([*command("bridge"), "--help"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert "--metrics-port" in out and "bridge.<mode>.metrics" in out
