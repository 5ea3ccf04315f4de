"""Running the real daemons in tests: the process, its log, its sd_notify socket.

Used by the end-to-end tests of the producer and the consumer (importable as
``daemons`` from tests/). Every process is killed by PID in ``cleanup`` (the fixtures
call it in a finalizer), so a failing test leaves nothing running.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BIN = Path(sys.executable).parent
START_TIMEOUT = 20.0  # generous for a loaded CI box; benchmarks measure the real figures
#: Variables of a surrounding systemd or shell that must not leak into a test's daemon.
_SCRUB = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "TRADINGD_CONFIG",
          "CACHE_DIRECTORY")


def command(kind: str) -> list[str]:
    """The installed console script ``tradingd-KIND``, else the module it runs
    (``python -m tradingd.producer.daemon``; ``tradingd.demo``)."""
    script = BIN / f"tradingd-{kind}"
    module = {"demo": "tradingd.demo"}.get(kind, f"tradingd.{kind}.daemon")
    return [str(script)] if script.exists() else [sys.executable, "-m", module]


class NotifyListener:
    """A bound AF_UNIX datagram socket standing in for systemd's notify socket."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="tdn-")  # short: sun_path is 108 bytes
        self.path = os.path.join(self._dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[dict[str, str]] = []

    def _store(self, data: bytes) -> dict[str, str]:
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        self.messages.append(fields)
        return fields

    def receive(self, timeout: float) -> dict[str, str] | None:
        """The next message, waiting up to ``timeout`` seconds."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            return self._store(self.sock.recv(4096))
        except TimeoutError:
            return None

    def drain(self) -> list[dict[str, str]]:
        """Every message received so far (reads what is queued without waiting)."""
        self.sock.setblocking(False)
        try:
            while True:
                self._store(self.sock.recv(4096))
        except BlockingIOError:
            return self.messages

    def count(self, key: str) -> int:
        """Messages received so far that set ``key=1``."""
        return sum(m.get(key) == "1" for m in self.messages)

    def wait_for(self, predicate: Callable[[dict[str, str]], bool], timeout: float,
                 alive: Callable[[], bool] = lambda: True) -> dict[str, str]:
        """The first message (already received or new) that matches, else fail."""
        for m in self.messages:
            if predicate(m):
                return m
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.receive(min(0.2, deadline - time.monotonic()))
            if m is not None and predicate(m):
                return m
            if m is None and not alive():
                break
        raise AssertionError(f"no matching notify message in {timeout} s; got "
                             f"{self.messages}")

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)


class DaemonProcess:
    """One real tradingd-producer or tradingd-consumer: its output in a file, its notify socket."""

    def __init__(self, kind: str, config: Path, workdir: Path, *, segment: str | None = None,
                 env: dict[str, str] | None = None, extra_args: list[str] | None = None,
                 wrapper: list[str] | None = None) -> None:
        self.kind = kind
        self.notify = NotifyListener()
        n = len(list(workdir.glob(f"{kind}-*.log")))
        self.log_path = workdir / f"{kind}-{n}.log"
        full_env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
        full_env["NOTIFY_SOCKET"] = self.notify.path
        full_env.update(env or {})
        # "bridge-publish" logs as bridge-publish-N.log and runs tradingd-bridge
        args = [*command(kind.split("-")[0]), "--config", str(config)]
        if segment is not None:
            args += ["--segment", segment]
        args = [*(wrapper or []), *args, *(extra_args or [])]  # wrapper: e.g. ip netns exec
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in cleanup)
        self.started = time.monotonic()
        self.ready_after: float | None = None
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, cwd=workdir, env=full_env)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float = START_TIMEOUT) -> dict[str, str]:
        """Wait for READY=1; records how long it took in ``ready_after``."""
        try:
            msg = self.notify.wait_for(lambda m: m.get("READY") == "1", timeout, self.alive)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nexit code {self.proc.poll()}; log:\n{self.log}") \
                from None
        self.ready_after = time.monotonic() - self.started
        return msg

    def wait_for_notify(self, key: str, value: str = "1", timeout: float = START_TIMEOUT,
                        match: Callable[[str], bool] | None = None) -> dict[str, str]:
        """The first message (received already or within ``timeout``) setting ``key``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.notify.drain():
                if key in m and (match(m[key]) if match else m[key] == value):
                    return m
            assert self.alive(), f"{self.kind} exited {self.proc.poll()}:\n{self.log}"
            time.sleep(0.01)
        raise AssertionError(f"no {key}={value} from {self.kind}; log:\n{self.log}")

    def wait_exit(self, timeout: float = START_TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.kind} did not exit; log:\n{self.log}") from None

    def metrics_url(self, timeout: float = START_TIMEOUT) -> str:
        """The metrics URL the daemon logged (it binds port 0 in tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"metrics on (http://127\.0\.0\.1:\d+/metrics)", self.log)
            if m:
                return m.group(1)
            assert self.alive(), f"{self.kind} exited {self.proc.poll()}:\n{self.log}"
            time.sleep(0.02)
        raise AssertionError(f"no metrics line in the {self.kind} log:\n{self.log}")

    def metrics_port(self) -> int:
        return int(self.metrics_url().rsplit(":", 1)[1].split("/", 1)[0])

    def stop(self, timeout: float = 10.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()
        self.notify.close()
