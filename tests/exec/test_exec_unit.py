"""The tradingd-exec unit, offline: verify, exposure <= 1.5, the settings every unit has."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tradingd import constants

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "tradingd-exec.service"
MAX_EXPOSURE = 1.5


def settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            k, v = line.split("=", 1)
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def test_unit_settings() -> None:
    s = settings()
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["Restart"] == ["on-failure"] and s["RemoveIPC"] == ["yes"]
    assert s["User"] == ["tradingd-exec"] and s["Group"] == ["tradingd-exec"]
    assert s["SupplementaryGroups"] == ["tradingd"]
    assert s["StateDirectory"] == ["tradingd-exec"]
    codes = sorted(int(c) for v in s["RestartPreventExitStatus"] for c in v.split())
    assert codes == sorted(constants.PERMANENT_EXIT_CODES)
    for binding in ("BindsTo", "PartOf", "Requires"):
        assert binding not in s
    sysusers = (UNIT.parent / "tradingd.sysusers").read_text()
    assert re.search(r"^u\s+tradingd-exec\s", sysusers, re.M)
    assert re.search(r"^m\s+tradingd-exec\s+tradingd$", sysusers, re.M)
    assert "tradingd-exec.service" in (UNIT.parent / "install.sh").read_text()


def test_exposure_score() -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    res = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                          str(UNIT)], capture_output=True, text=True, timeout=60, check=False)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", res.stdout + res.stderr)
    assert found, res.stdout + res.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, res.stdout


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    prefix = Path(sys.prefix)
    if not (prefix / "bin" / "tradingd-exec").exists():
        pytest.skip(f"{prefix} has no tradingd-exec console script")
    (tmp_path / UNIT.name).write_text(UNIT.read_text().replace("/opt/tradingd", str(prefix)))
    res = subprocess.run(["systemd-analyze", "verify", UNIT.name], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr
