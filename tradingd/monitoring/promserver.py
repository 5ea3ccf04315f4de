"""A real, private Prometheus server: for ``make monitor`` and tests/monitoring.

Debian's ``prometheus`` package (2.42) runs here on a loopback port of our choosing with a
config written for the occasion (:func:`scrape_config`), its data in a temporary
directory, and is asked through its HTTP API (``/api/v1/query``, ``/api/v1/alerts``).
It is stopped by PID (SIGTERM, then SIGKILL) and its directory removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from tradingd import constants as C
from tradingd.errors import TradingdError

REPO = Path(__file__).resolve().parents[2]
#: The shipped monitoring files (in a checkout).
RULES = REPO / "monitoring" / "prometheus" / "tradingd.rules.yml"
START_TIMEOUT = 30.0


def _terminate_with_parent() -> None:
    """In the child before exec: SIGTERM when our process dies (prctl PR_SET_PDEATHSIG), so
    a killed test or ``make monitor`` leaves no Prometheus behind."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)


class PrometheusError(TradingdError):
    """The prometheus binary is missing, did not start, or its API failed: the message
    says which (install Debian's ``prometheus`` package; its log is quoted)."""

    exit_code = C.EXIT_UNAVAILABLE


def find_binary(name: str) -> str | None:
    """``prometheus`` / ``promtool`` on PATH or in /usr/bin (Debian's package)."""
    found = shutil.which(name)
    if found:
        return found
    path = Path("/usr/bin") / name
    return str(path) if path.exists() else None


def scrape_config(jobs: dict[str, Iterable[str]], rule_files: Iterable[Path], *,
                  interval: str = "1s") -> str:
    """A prometheus.yml scraping ``jobs`` (job name -> ``host:port`` targets)."""
    doc = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval,
                   "scrape_timeout": interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(t)}]}
                           for job, t in jobs.items()],
    }
    return yaml.safe_dump(doc, sort_keys=False)


class PrometheusServer:
    """One prometheus process on ``127.0.0.1:port`` with its config and data in ``workdir``."""

    def __init__(self, config_text: str, workdir: Path, port: int) -> None:
        binary = find_binary("prometheus")
        if binary is None:
            raise PrometheusError("prometheus not found (install Debian's prometheus package)")
        self.workdir = workdir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(config_text)
        self.log_path = workdir / "prometheus.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [binary, f"--config.file={self.config_path}",
             f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
             "--storage.tsdb.retention.time=1d"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, cwd=workdir,
            preexec_fn=_terminate_with_parent)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until ``/-/ready`` answers 200 (raises PrometheusError if it exits or times out)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PrometheusError(f"prometheus exited with {self.proc.returncode}:\n"
                                      f"{self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise PrometheusError(f"prometheus not ready after {timeout} s:\n{self.log}")

    def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/<path>``'s ``data`` (raises PrometheusError on an error status)."""
        query = urllib.parse.urlencode(params)
        url = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
        except (urllib.error.URLError, OSError) as exc:
            raise PrometheusError(f"{url}: {exc}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"{url}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result (a vector: ``[{"metric": {...}, "value": [t, v]}]``)."""
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" \
            else [{"metric": {}, "value": data["result"]}]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing) with their labels and state."""
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def stop(self) -> None:
        """SIGTERM, SIGKILL after 10 s; close the log. The caller removes ``workdir``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                self.proc.wait(10)
        self._log.close()


__all__ = ["RULES", "PrometheusError", "PrometheusServer", "find_binary", "scrape_config"]
