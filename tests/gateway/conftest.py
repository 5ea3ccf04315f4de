"""Fixtures for the gateway tests: real producers and gateways, killed by PID afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from daemons import DaemonProcess
from gateway_support import GatewayProcess, WsClient


@dataclass
class Stack:
    """Starts daemons on one private segment; ``cleanup`` ends them all."""

    workdir: Path
    segment: str
    daemons: list[DaemonProcess] = field(default_factory=list)
    clients: list[WsClient] = field(default_factory=list)

    def producer(self, config: Path, env: dict[str, str] | None = None) -> DaemonProcess:
        p = DaemonProcess("producer", config, self.workdir, segment=self.segment, env=env)
        self.daemons.append(p)
        return p

    def gateway(self, config: Path, env: dict[str, str] | None = None) -> GatewayProcess:
        g = GatewayProcess(config, self.segment, self.workdir, env=env)
        self.daemons.append(g)
        return g

    def client(self, url: str, **kwargs: object) -> WsClient:
        c = WsClient(url, **kwargs)
        self.clients.append(c)
        return c

    def cleanup(self) -> None:
        for c in self.clients:
            with contextlib.suppress(Exception):  # a broken connection is fine here
                c.close()
        for d in self.daemons:
            d.cleanup()


@pytest.fixture
def stack(workdir: Path, segment_name: str) -> Iterator[Stack]:
    s = Stack(workdir, segment_name)
    try:
        yield s
    finally:
        s.cleanup()
