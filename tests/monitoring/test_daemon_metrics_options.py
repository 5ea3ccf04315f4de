"""``--metrics-port`` and ``--no-metrics`` on the real daemons: a second instance runs beside
one holding the configured port (the README's strace-lifecycle case, exit 69 before)."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from daemons import DaemonProcess

from tradingd import constants as C

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port someone listens on (as an installed daemon would hold 9101)."""
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


def config_with_port(workdir: Path, port: int) -> Path:
    cfg = {"segment": {"ring_capacity": 4096},
           "producer": {"data_dir": str(REPO / "market_data"),
                        "replay": {"mode": "paced", "speed": 86400.0},
                        "metrics": {"port": port}},
           "consumer": {"metrics": {"port": port + 1 if port < 65535 else port - 1}}}
    path = workdir / "busy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("kind", ["producer", "consumer"])
def test_busy_configured_port_exits_69_and_metrics_port_moves_it(
        kind: str, workdir: Path, segment_name: str, busy_port: int,
        procs: list[DaemonProcess]) -> None:
    config = config_with_port(workdir, busy_port)
    if kind == "consumer":  # the consumer's configured port is the busy one
        raw = yaml.safe_load(config.read_text())
        raw["consumer"]["metrics"]["port"] = busy_port
        raw["producer"]["metrics"]["port"] = 0
        config.write_text(yaml.safe_dump(raw))
    refused = DaemonProcess(kind, config, workdir, segment=segment_name)
    procs.append(refused)
    assert refused.wait_exit() == C.EXIT_UNAVAILABLE
    assert "--metrics-port" in refused.log
    moved = DaemonProcess(kind, config, workdir, segment=segment_name,
                          args=["--metrics-port", "0"])
    procs.append(moved)
    moved.wait_ready()
    url = moved.metrics_url()
    assert moved.metrics_port() != busy_port
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert f'tradingd_build_info{{daemon="{kind}"'.encode() in resp.read()
    assert moved.stop() == 0


@pytest.mark.parametrize("kind", ["producer", "consumer"])
def test_no_metrics_serves_nothing(kind: str, workdir: Path, segment_name: str,
                                   busy_port: int, procs: list[DaemonProcess]) -> None:
    d = DaemonProcess(kind, config_with_port(workdir, busy_port), workdir,
                      segment=segment_name, args=["--no-metrics"])
    procs.append(d)
    d.wait_ready()
    assert "metrics on" not in d.log
    assert d.stop() == 0


def test_bad_metrics_port_exits_64(workdir: Path, segment_name: str,
                                   procs: list[DaemonProcess]) -> None:
    d = DaemonProcess("producer", config_with_port(workdir, 0), workdir, segment=segment_name,
                      args=["--metrics-port", "70000"])
    procs.append(d)
    assert d.wait_exit() == C.EXIT_USAGE
    assert "invalid port 70000" in d.log
