"""A real systemd booted as PID 1 of private namespaces, to test the units under it.

The machines tradingd is built on do not run systemd as PID 1, so `systemctl` cannot be tested
there directly. Instead the harness boots /lib/systemd/systemd as PID 1 of fresh PID, mount,
UTS and cgroup namespaces (sandbox-boot.sh does the mounting; the recipe and its hazards are in
../shared/notes/real-systemd-in-tests.md) and drives it with `nsenter`. The host stays as it
was: all writes go to tmpfs and overlays that vanish with the mount namespace, systemd sees only
the units it is given, and `close()` kills the namespace's PID 1 (which takes every process in
the namespace with it) and removes the sandbox's cgroup, even after a failed test.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar
from uuid import uuid4

SYSTEMD = Path("/lib/systemd/systemd")
STOCK_UNIT_DIR = Path("/lib/systemd/system")
BOOT_SCRIPT = Path(__file__).with_name("sandbox-boot.sh")
#: Name prefix of a sandbox (and of its cgroup, directly under the cgroup2 root).
CGROUP_PREFIX = "tradingd-sandbox-"

#: The stock units a minimal systemd needs to boot, journal and shut down.
STOCK_UNITS = (
    "sysinit.target", "basic.target", "sockets.target", "timers.target", "paths.target",
    "slices.target", "local-fs.target", "shutdown.target", "final.target", "exit.target",
    "poweroff.target", "halt.target", "reboot.target", "umount.target", "network.target",
    "network-online.target", "multi-user.target", "systemd-journald.service",
    "systemd-journald.socket", "systemd-journald-dev-log.socket", "systemd-poweroff.service",
    "systemd-exit.service",
)

#: The default target: journald, so that `journalctl -u` works, and nothing else.
SANDBOX_TARGET = """\
[Unit]
Description=tradingd test sandbox
Wants=systemd-journald.service
After=systemd-journald.service
"""

#: A clean environment for commands run inside (no pyenv shims, no pager, no colours).
INNER_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "SYSTEMD_PAGER": "",
    "SYSTEMD_COLORS": "0",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}

T = TypeVar("T")

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the forked unshare, before exec: SIGKILL it when the test process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class SandboxError(RuntimeError):
    """The sandbox could not boot, or a command run inside it failed (message says which)."""


def cgroup2_mount() -> Path | None:
    """Where the cgroup2 hierarchy is mounted on this host, or None when it is not."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            return Path(fields[1])
    return None


def skip_reason() -> str | None:
    """Why a sandbox cannot be booted here (for pytest.skip), or None when it can."""
    if os.geteuid() != 0:
        return "systemd sandbox tests need root (they boot systemd in private namespaces)"
    for tool in ("unshare", "nsenter", "make"):
        if shutil.which(tool) is None:
            return f"systemd sandbox tests need `{tool}`, which is not installed"
    if not os.access(SYSTEMD, os.X_OK):
        return f"systemd sandbox tests need {SYSTEMD} (systemd is not installed)"
    if not os.access("/usr/bin/python3", os.X_OK):
        return "systemd sandbox tests need /usr/bin/python3 (make install builds its venv)"
    if cgroup2_mount() is None:
        return "systemd sandbox tests need a cgroup2 hierarchy (none is mounted)"
    probe = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount", "--uts", "--cgroup", "true"],
        capture_output=True, text=True, timeout=10, check=False,
    )
    if probe.returncode != 0:
        return f"cannot create namespaces here (unshare: {probe.stderr.strip()})"
    return None


class Sandbox:
    """One systemd booted in private namespaces; commands run inside it through nsenter."""

    def __init__(self, workdir: Path, repo: Path) -> None:
        self.name = f"{CGROUP_PREFIX}{uuid4().hex[:8]}"
        self.workdir = workdir
        self.repo = repo
        self.boot_log = workdir / "boot.log"
        self.pid1: int | None = None
        self._unshare: subprocess.Popen[bytes] | None = None
        mount = cgroup2_mount()
        self._cgroup = mount / self.name if mount else None

    # --- lifecycle ------------------------------------------------------------------------

    def boot(self, timeout: float = 30.0) -> None:
        """Boot systemd and wait until it is up (raises SandboxError with its log otherwise)."""
        sweep_stale_cgroups()
        units = self.workdir / "units"
        units.mkdir()
        for unit in STOCK_UNITS:
            shutil.copy2(STOCK_UNIT_DIR / unit, units / unit)
        (units / "sandbox.target").write_text(SANDBOX_TARGET)
        # Should the test process die without running close() (SIGKILL, a crash), the kernel
        # kills unshare (PR_SET_PDEATHSIG), and unshare's --kill-child the namespace's PID 1,
        # which ends every process in it: no stray systemd outlives the test run.
        with self.boot_log.open("wb") as log:
            self._unshare = subprocess.Popen(
                ["unshare", "--pid", "--kill-child=SIGKILL", "--mount", "--uts",
                 "--mount-proc", "--propagation=private", "sh", str(BOOT_SCRIPT), "stage1",
                 self.name, str(self.workdir), str(self.repo)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        self.pid1 = self.wait_until(self._forked_child, timeout, "unshare to fork PID 1")
        self.wait_until(self._manager_up, timeout, "systemd in the sandbox to finish booting")

    def close(self) -> None:
        """End the sandbox: kill its PID 1 (and so all its processes), remove its cgroup."""
        proc = self._unshare
        if proc is None:
            return
        try:
            if proc.poll() is None:
                pid1 = self.pid1 if self.pid1 is not None else self._forked_child()
                if pid1 is not None:
                    os.kill(pid1, signal.SIGKILL)
                else:
                    os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        finally:
            self._unshare = None
            self._remove_cgroup()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- commands inside --------------------------------------------------------------------

    def run(self, argv: Sequence[str], *, check: bool = True, timeout: float = 60.0,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run argv inside the sandbox (its mounts, PIDs, hostname), as root."""
        if self.pid1 is None:
            raise SandboxError("the sandbox is not booted")
        cmd = ["nsenter", f"--target={self.pid1}", "--mount", "--pid", "--uts", "--cgroup",
               "--", *argv]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                             env=INNER_ENV, input=input, check=False)
        if check and res.returncode != 0:
            raise SandboxError(
                f"in the sandbox, `{' '.join(argv)}` exited {res.returncode}\n"
                f"--- stdout\n{res.stdout}--- stderr\n{res.stderr}"
            )
        return res

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`systemctl ARGS` inside the sandbox."""
        return self.run(["systemctl", "--no-pager", *args], check=check)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        """`systemctl show UNIT -p PROP...` as a dict (values as systemd prints them)."""
        out = self.systemctl("show", unit, *(f"--property={p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str) -> list[dict[str, str]]:
        """The journal entries of `journalctl -u UNIT` (JSON fields: MESSAGE, PRIORITY...)."""
        out = self.run(["journalctl", "--no-pager", "--output=json", f"--unit={unit}"]).stdout
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def wait_until(self, probe: Callable[[], T | None], timeout: float, what: str,
                   interval: float = 0.1) -> T:
        """Poll probe until it returns something other than None/False; raise after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value is not None and value is not False:
                return value
            if self._unshare is not None and self._unshare.poll() is not None:
                raise SandboxError(f"the sandbox died while waiting for {what}\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise SandboxError(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(interval)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines systemd wrote to its console (boot.log), for error messages."""
        try:
            text = self.boot_log.read_text(errors="replace")
        except OSError:
            return ""
        return "--- systemd console (tail)\n" + "\n".join(text.splitlines()[-lines:])

    # --- internals --------------------------------------------------------------------------

    def _forked_child(self) -> int | None:
        """The host PID of the process unshare forked (PID 1 of the namespace)."""
        if self._unshare is None:
            return None
        pid = self._unshare.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def _manager_up(self) -> bool:
        """True once systemd answers and has finished its initial transaction."""
        try:
            state = self.run(["systemctl", "is-system-running"], check=False, timeout=10)
        except subprocess.TimeoutExpired:
            return False
        return state.stdout.strip() in ("running", "degraded")

    def _remove_cgroup(self) -> None:
        """Remove the sandbox's cgroup tree (left behind when PID 1 was killed)."""
        if self._cgroup is not None:
            remove_cgroup_tree(self._cgroup, wait=10.0)


def remove_cgroup_tree(root: Path, wait: float = 0.0) -> bool:
    """rmdir a sandbox's cgroup tree, deepest first; False if a part is still in use.

    Only empty cgroups can be removed (rmdir fails with EBUSY while a process is in one), so
    this never disturbs a sandbox that is still running; `wait` gives dying processes time.
    """
    if not root.name.startswith(CGROUP_PREFIX):
        raise ValueError(f"not a sandbox cgroup: {root}")
    deadline = time.monotonic() + wait
    while root.exists():
        try:
            for dirpath, _dirs, _files in sorted(os.walk(root), key=lambda w: -len(w[0])):
                os.rmdir(dirpath)
        except FileNotFoundError:
            continue
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
    return True


def sweep_stale_cgroups() -> None:
    """Remove empty cgroups of sandboxes whose test process was killed before close()."""
    mount = cgroup2_mount()
    if mount is not None:
        for path in mount.glob(f"{CGROUP_PREFIX}*"):
            remove_cgroup_tree(path)
