"""Ping-pong latency of the peers tradingd's transport is compared against, in one run.

    .venv/bin/python bench/peers.py [--n 20000]

Each peer is measured exactly as ``bench_consumer.segment_pingpong`` measures tradingd: the
main process pinned to CPU 0 and a forked echo process to CPU 1; per round trip
``t = time.perf_counter_ns()``, send a 64-byte message carrying a counter, busy-wait for the
echo's reply carrying the same counter, ``(perf_counter_ns() - t) / 2``; the result is
``[p50, p99]`` of those one-way times in ns (``np.percentile``). The counter is checked
after the sample is taken, so the check is not timed. The peers:

* ``c_floor``: ``bench/c/pingpong.c``, compiled with gcc at run time: the same ping-pong in C
  over two counters in a MAP_SHARED anonymous mapping, timed with CLOCK_MONOTONIC. The
  hardware floor: what one cross-core cache-line round trip costs on this machine.
* ``python_counter``: the same two counters from plain Python (``memoryview.cast('Q')``,
  one 8-byte store each), no payload. The floor of a Python busy-wait loop: no Python
  transport can beat it, so it tells how much of any Python figure is the interpreter.
* ``python_struct_ring``: plain Python on a ring of tradingd-shaped 64-byte records,
  ``struct.pack_into`` / ``unpack_from`` per record, a cursor stored after the record. What
  a reader/writer written in plain Python on the same layout costs (the facts sheet's
  "plain Python on the same layout, struct per record").
* ``iceoryx2_pubsub``: iceoryx2's Python bindings (``pip install iceoryx2``, 0.10), the
  zero-copy shared-memory middleware most like our transport: two publish-subscribe
  services (ping, pong), a 64-byte ctypes payload, both sides busy-polling ``receive()``.
  The zero-copy path (``loan_uninit``, write the counter in place through ``payload_ptr``,
  ``assume_init().send()``) is used: the typed accessor ``Sample.payload()`` costs ~2.5 us a
  call in 0.10 (``ctypes.cast`` in Python) and ``write_payload`` builds and copies a
  ctypes object, so using them would measure the accessors rather than the transport (it
  makes the figure ~1.7x). Each run gets its own iceoryx2 root directory (a temporary
  directory) and file prefix, so runs never collide and everything it creates is removed;
  what a run killed outright (SIGKILL) left is swept by the next run (its pid is gone).

A peer that cannot run here (gcc missing, iceoryx2 not installed) returns ``None``; so does
one that stalls (no progress for ``STALL_S`` seconds) or fails, with a message on stderr.
Every run reaps or kills its echo process and removes its mappings and files, also on error.
Absolute figures drift between runs on a shared 2-vCPU VM; compare within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib.util
import mmap
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

MAIN_CPU, ECHO_CPU = 0, 1  # as bench_consumer: READER_CPU (the timing side), WRITER_CPU
STALL_S = 10.0  # a busy-wait that sees no progress for this long gives up
C_SOURCE = Path(__file__).resolve().parent / "c" / "pingpong.c"
# Two counters 128 bytes apart: separate cache lines, and not the two halves of one
# 128-byte pair that the adjacent-line prefetcher fetches together (as pingpong.c).
PING_WORD, PONG_WORD = 0, 128
RECORD = struct.Struct("<IIqQddddd")  # tradingd's ring record: seq_lo .. volume, 64 bytes
RING_SLOTS = 4096  # records per ring (power of two)
ICEORYX2_VERSION = "0.10.0"


class PeerError(Exception):
    """A peer run that stalled, whose echo died, or that could not be set up."""


def _pct(values: list[float]) -> list[float]:
    return [float(v) for v in np.percentile(np.asarray(values, dtype=float), (50, 99))]


def _check(n: int) -> None:
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")


def _pin(cpu: int) -> None:
    """Pin the calling process to ``cpu`` when the machine has it (as bench_consumer)."""
    if (os.cpu_count() or 1) > cpu:
        os.sched_setaffinity(0, {cpu})


def _fail(peer: str, why: object) -> None:
    print(f"peers: {peer}: {why}", file=sys.stderr)


# ------------------------------------------------------------------ echo process
class _Echo:
    """The parent's handle on the forked echo process: start handshake, reaping, killing."""

    def __init__(self, pid: int, go_fd: int, ready_fd: int) -> None:
        self.pid, self._go_fd, self._ready_fd = pid, go_fd, ready_fd
        self._reaped = False

    def exited(self) -> bool:
        """True once the echo has exited (without reaping it)."""
        if self._reaped:
            return True
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        return os.waitid(os.P_PID, self.pid, flags) is not None

    def start(self) -> None:
        """Let the echo set up its side, then wait (bounded) until it says it is ready."""
        os.write(self._go_fd, b"g")
        ready, _, _ = select.select([self._ready_fd], [], [], STALL_S)
        if not ready or os.read(self._ready_fd, 1) != b"r":
            raise PeerError(f"echo process not ready within {STALL_S:.0f} s (or it died)")

    def reap(self, kill: bool) -> None:
        """Wait (bounded) for the echo to finish; kill it if it does not, or at once."""
        if self._reaped:
            return
        deadline = time.monotonic() + (0 if kill else STALL_S)
        while not self.exited() and time.monotonic() < deadline:
            time.sleep(0.005)
        try:
            if not self.exited():
                os.kill(self.pid, signal.SIGKILL)
            _, status = os.waitpid(self.pid, 0)
            self._reaped = True
        finally:
            for fd in (self._go_fd, self._ready_fd):
                os.close(fd)
        if not kill and os.waitstatus_to_exitcode(status) != 0:
            raise PeerError(f"echo process failed (exit {os.waitstatus_to_exitcode(status)})")


def _orphan_check(parent: int) -> None:
    """In the echo: die within a second if the parent goes away (nobody would reap us)."""

    def on_alarm(_signum: int, _frame: Any) -> None:
        if os.getppid() != parent:
            os._exit(3)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 1.0, 1.0)


@contextlib.contextmanager
def _echo_process(echo: Callable[[Callable[[], None]], None]) -> Iterator[_Echo]:
    """Fork the echo, pinned to ECHO_CPU; pin the parent to MAIN_CPU for the block.

    The echo waits for ``_Echo.start`` (so the parent sets up its side first), runs
    ``echo(ready)``, where it calls ``ready()`` once it can answer, and exits. Leaving the
    block reaps it (waiting for it after a clean run, killing it after an error) and
    restores the parent's CPU affinity.
    """
    go_r, go_w = os.pipe()
    ready_r, ready_w = os.pipe()
    parent = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError:
        for fd in (go_r, go_w, ready_r, ready_w):
            os.close(fd)
        raise
    if pid == 0:  # the echo: never returns into the caller's code
        code = 1
        try:
            os.close(go_w)
            os.close(ready_r)
            _orphan_check(parent)
            _pin(ECHO_CPU)
            if select.select([go_r], [], [], STALL_S)[0] and os.read(go_r, 1) == b"g":

                def ready() -> None:
                    os.write(ready_w, b"r")

                echo(ready)
                code = 0
        except PeerError as e:
            _fail("echo", e)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(go_r)
    os.close(ready_w)
    affinity = os.sched_getaffinity(0)
    child = _Echo(pid, go_w, ready_r)
    ok = False
    try:
        _pin(MAIN_CPU)
        yield child
        ok = True
    finally:
        os.sched_setaffinity(0, affinity)
        child.reap(kill=not ok)


@contextlib.contextmanager
def _watchdog(progress: Callable[[], int], echo: _Echo | None = None) -> Iterator[None]:
    """Bound the parent's busy-waits: raise PeerError when ``progress()`` has not moved for
    STALL_S seconds or the echo has died. A 1 s SIGALRM tick, so the timed loops carry no
    extra code; main thread only (elsewhere the run is unbounded)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    last, since = -1, time.monotonic()

    def on_alarm(_signum: int, _frame: Any) -> None:
        nonlocal last, since
        if echo is not None and echo.exited():
            raise PeerError("echo process died")
        now, p = time.monotonic(), progress()
        if p != last:
            last, since = p, now
        elif now - since > STALL_S:
            raise PeerError(f"no reply for {STALL_S:.0f} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 1.0, 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _echo_watchdog(progress: Callable[[], int]) -> None:
    """In the echo (on _orphan_check's 1 s tick): exit when ``progress()`` has not moved for
    STALL_S seconds, or when the parent is gone."""
    parent = os.getppid()
    last, since = -1, time.monotonic()

    def on_alarm(_signum: int, _frame: Any) -> None:
        nonlocal last, since
        now, p = time.monotonic(), progress()
        if os.getppid() != parent:
            os._exit(3)
        if p != last:
            last, since = p, now
        elif now - since > STALL_S:
            print(f"peers: echo: no ping for {STALL_S:.0f} s", file=sys.stderr, flush=True)
            os._exit(2)

    signal.signal(signal.SIGALRM, on_alarm)


# ------------------------------------------------------------------ 1. C floor
def c_floor(n: int, period_ns: int = 0) -> list[float] | None:
    """The hardware floor: bench/c/pingpong.c, built with gcc -O2 into a temporary dir.

    With ``period_ns``, one-way latency of records sent one every ``period_ns`` by a
    writer that sleeps in between (``c_paced``).
    """
    _check(n)
    gcc = shutil.which("gcc")
    if gcc is None:
        _fail("c_floor", "gcc not found")
        return None
    if not C_SOURCE.is_file():
        _fail("c_floor", f"{C_SOURCE} missing")
        return None
    cpus = [str(MAIN_CPU), str(ECHO_CPU)] if (os.cpu_count() or 1) > ECHO_CPU else []
    with tempfile.TemporaryDirectory(prefix="tdbench-peers-") as tmp:
        exe = os.path.join(tmp, "pingpong")
        try:
            subprocess.run([gcc, "-O2", "-o", exe, str(C_SOURCE)], check=True,
                           capture_output=True, text=True, timeout=120)
        except subprocess.CalledProcessError as e:
            _fail("c_floor", f"gcc failed: {e.stderr.strip()}")
            return None
        except subprocess.TimeoutExpired:
            _fail("c_floor", "gcc timed out")
            return None
        try:  # each wait inside is bounded by 10 s; this bounds the whole run
            paced = [str(period_ns)] if period_ns else []
            if paced and not cpus:
                cpus = ["-1", "-1"]
            out = subprocess.run([exe, str(n), *cpus, *paced], check=True, capture_output=True,
                                 text=True, timeout=2 * STALL_S + n * (1e-4 + period_ns / 1e9))
        except subprocess.CalledProcessError as e:
            _fail("c_floor", f"pingpong failed (exit {e.returncode}): {e.stderr.strip()}")
            return None
        except subprocess.TimeoutExpired:  # run() killed it; the echo dies with it
            _fail("c_floor", "pingpong timed out")
            return None
    words = out.stdout.split()
    if len(words) != 4 or words[0] != "p50" or words[2] != "p99":
        _fail("c_floor", f"unexpected output {out.stdout!r}")
        return None
    return [float(words[1]), float(words[3])]


def c_paced(rate: float, seconds: float) -> list[float] | None:
    """One-way floor at ``rate`` records/s from a writer sleeping between records, in C."""
    return c_floor(max(1, int(rate * seconds)), int(1e9 / rate))


# ------------------------------------------------------------------ 2. Python counters
@contextlib.contextmanager
def _shared_counters(size: int) -> Iterator[tuple[mmap.mmap, memoryview, memoryview]]:
    """An anonymous MAP_SHARED mapping (the fork shares it) with the ping and pong counters
    as one-word ``memoryview.cast('Q')`` views (single 8-byte stores); released after."""
    buf = mmap.mmap(-1, size)
    mv = memoryview(buf)
    ca = mv[PING_WORD:PING_WORD + 8].cast("Q")
    cb = mv[PONG_WORD:PONG_WORD + 8].cast("Q")
    try:
        yield buf, ca, cb
    finally:
        ca.release()
        cb.release()
        mv.release()
        buf.close()


def python_counter(n: int) -> list[float] | None:
    """Plain Python both sides, two 8-byte counters, no payload: the Python loop floor."""
    _check(n)
    with _shared_counters(8192) as (_buf, ca, cb):
        return _counter_pingpong(n, ca, cb)


def _counter_pingpong(n: int, ca: memoryview, cb: memoryview) -> list[float] | None:
    rtt: list[float] = []

    def echo(ready: Callable[[], None]) -> None:
        _echo_watchdog(lambda: cb[0])
        ready()
        for i in range(1, n + 1):
            while ca[0] < i:
                pass
            cb[0] = ca[0]

    try:
        with _echo_process(echo) as child:
            child.start()
            with _watchdog(rtt.__len__, child):
                clock = time.perf_counter_ns
                for i in range(1, n + 1):
                    t = clock()
                    ca[0] = i
                    while cb[0] < i:
                        pass
                    rtt.append((clock() - t) / 2)
                    if cb[0] != i:
                        raise PeerError(f"echo returned {cb[0]}, expected {i}")
    except (PeerError, OSError) as e:
        _fail("python_counter", e)
        return None
    return _pct(rtt)


# ------------------------------------------------------------------ 3. Python struct ring
def python_struct_ring(n: int) -> list[float] | None:
    """Plain Python on tradingd's layout: struct per 64-byte record, then the cursor."""
    _check(n)
    size = RECORD.size
    ring_a = 256  # ping ring: RING_SLOTS records; the pong ring follows it
    ring_b = ring_a + RING_SLOTS * size
    with _shared_counters(ring_b + RING_SLOTS * size) as (buf, ca, cb):  # the cursors
        return _ring_pingpong(n, buf, ca, cb, ring_a, ring_b)


def _ring_pingpong(n: int, buf: mmap.mmap, ca: memoryview, cb: memoryview, ring_a: int,
                   ring_b: int) -> list[float] | None:
    size, mask = RECORD.size, RING_SLOTS - 1
    pack, unpack = RECORD.pack_into, RECORD.unpack_from
    rtt: list[float] = []

    def echo(ready: Callable[[], None]) -> None:
        _echo_watchdog(lambda: cb[0])
        ready()
        for i in range(1, n + 1):
            while ca[0] < i:
                pass
            off = (i & mask) * size
            pack(buf, ring_b + off, *unpack(buf, ring_a + off))
            cb[0] = i

    try:
        with _echo_process(echo) as child:
            child.start()
            with _watchdog(rtt.__len__, child):
                clock = time.perf_counter_ns
                for i in range(1, n + 1):
                    off = (i & mask) * size
                    t = clock()
                    pack(buf, ring_a + off, i, 1, i, i, 1.0, 2.0, 3.0, 4.0, 5.0)
                    ca[0] = i
                    while cb[0] < i:
                        pass
                    rec = unpack(buf, ring_b + off)
                    rtt.append((clock() - t) / 2)
                    if rec[0] != i:
                        raise PeerError(f"echo returned record {rec[0]}, expected {i}")
    except (PeerError, OSError) as e:
        _fail("python_struct_ring", e)
        return None
    return _pct(rtt)


# ------------------------------------------------------------------ 4. iceoryx2
class _Msg64(ctypes.Structure):
    """The iceoryx2 payload: a u64 counter padded to 64 bytes (one record's size)."""

    _fields_ = (("counter", ctypes.c_uint64), ("pad", ctypes.c_uint8 * 56))

    @staticmethod
    def type_name() -> str:
        """The type's name in the service's contract (both sides must agree)."""
        return "tdbench::Msg64"


def _iox2_ports(iox2: Any, cfg: Any, sub_name: str, pub_name: str,
                create: bool) -> tuple[Any, ...]:
    """A node (our private config, no signal handlers) and its subscriber and publisher."""
    node = (iox2.NodeBuilder.new().config(cfg)
            .signal_handling_mode(iox2.SignalHandlingMode.Disabled)
            .create(iox2.ServiceType.Ipc))
    services = []
    for name in (sub_name, pub_name):
        builder = node.service_builder(iox2.ServiceName.new(name)).publish_subscribe(_Msg64)
        services.append(builder.create() if create else builder.open())
    sub = services[0].subscriber_builder().create()
    pub = services[1].publisher_builder().create()
    return node, services, sub, pub


def _iox2_run(iox2: Any, n: int, cfg: Any, tag: str) -> list[float]:
    """The ping-pong; every iceoryx2 object it makes is released before it returns.

    Each process makes its own node and ports after the fork (none is shared by fork): the
    parent creates both services, then lets the echo open them.
    """
    ping, pong = f"tdbench/{tag}/ping", f"tdbench/{tag}/pong"
    at = _Msg64.from_address
    rtt: list[float] = []

    def echo(ready: Callable[[], None]) -> None:
        node, services, sub, pub = _iox2_ports(iox2, cfg, ping, pong, create=False)
        done = [0]
        _echo_watchdog(lambda: done[0])
        ready()
        recv, loan = sub.receive, pub.loan_uninit
        for i in range(1, n + 1):
            while (sample := recv()) is None:
                pass
            reply = loan()
            at(reply.payload_ptr).counter = at(sample.payload_ptr).counter
            reply.assume_init().send()
            done[0] = i
        del sample
        sub.delete()
        pub.delete()
        del services, node

    with _echo_process(echo) as child:
        node, services, sub, pub = _iox2_ports(iox2, cfg, pong, ping, create=True)
        sample = None
        try:
            child.start()
            with _watchdog(rtt.__len__, child):
                clock, recv, loan = time.perf_counter_ns, sub.receive, pub.loan_uninit
                for i in range(n):
                    t = clock()
                    msg = loan()
                    at(msg.payload_ptr).counter = i
                    msg.assume_init().send()
                    while (sample := recv()) is None:
                        pass
                    rtt.append((clock() - t) / 2)
                    if (got := at(sample.payload_ptr).counter) != i:
                        raise PeerError(f"echo returned {got}, expected {i}")
        finally:
            del sample
            sub.delete()
            pub.delete()
            del services, node
    return _pct(rtt)


_IOX2_SHM = re.compile(r"tdb(\d+)-[0-9a-f]{12}_")
_IOX2_ROOT = re.compile(r"tdbench-iox2-(\d+)-")


def _sweep_iox2_leftovers() -> None:
    """Remove what an earlier run killed outright (SIGKILL: no finally ran) left behind.

    Only our own names (``_IOX2_SHM`` in /dev/shm, ``_IOX2_ROOT`` in the temp dir) whose
    owning process (the pid in the name) is gone.
    """

    def dead(pid: str) -> bool:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    for name in os.listdir("/dev/shm"):
        if (m := _IOX2_SHM.match(name)) and dead(m[1]):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join("/dev/shm", name))
    tmp = tempfile.gettempdir()
    for name in os.listdir(tmp):
        if (m := _IOX2_ROOT.match(name)) and dead(m[1]):
            shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)


def iceoryx2_pubsub(n: int) -> list[float] | None:
    """iceoryx2's Python bindings: pub/sub ping and pong services, busy-polled receive()."""
    _check(n)
    if importlib.util.find_spec("iceoryx2") is None:
        _fail("iceoryx2_pubsub", f"not installed (pip install iceoryx2=={ICEORYX2_VERSION})")
        return None
    try:
        import iceoryx2 as iox2
    except ImportError as e:
        _fail("iceoryx2_pubsub", f"cannot import: {e}")
        return None
    _sweep_iox2_leftovers()
    tag = uuid.uuid4().hex
    prefix = f"tdb{os.getpid()}-{tag[:12]}_"  # every file it puts in /dev/shm starts with this
    try:
        with tempfile.TemporaryDirectory(prefix=f"tdbench-iox2-{os.getpid()}-") as root:
            cfg = iox2.config.default()  # not the global one: no config-file lookup
            cfg.global_cfg.root_path = iox2.Path.new(root + "/")
            cfg.global_cfg.prefix = iox2.FileName.new(prefix)
            try:
                return _iox2_run(iox2, n, cfg, tag)
            except Exception as e:  # iceoryx2's errors, PeerError, OSError
                _fail("iceoryx2_pubsub", repr(e) if not isinstance(e, PeerError) else e)
                return None
    finally:  # what iceoryx2 leaves in /dev/shm (its global_mgmt word; a killed node's)
        for name in os.listdir("/dev/shm"):
            if name.startswith(prefix):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join("/dev/shm", name))


# ------------------------------------------------------------------ main
PEERS: dict[str, Callable[[int], list[float] | None]] = {
    "c_floor": c_floor,
    "python_counter": python_counter,
    "python_struct_ring": python_struct_ring,
    "iceoryx2_pubsub": iceoryx2_pubsub,
}


def main() -> None:
    """Print each peer's one-way p50/p99 in us, one line a peer."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="round trips per peer")
    ap.add_argument("peers", nargs="*", metavar="PEER",
                    help=f"peers to run (default: all): {', '.join(PEERS)}")
    args = ap.parse_args()
    if args.n < 1:
        ap.error("--n must be >= 1")
    if unknown := [p for p in args.peers if p not in PEERS]:
        ap.error(f"unknown peer(s) {', '.join(unknown)}; known: {', '.join(PEERS)}")
    print(f"peers: ping-pong one-way latency (round trip / 2), n={args.n}, "
          f"main on CPU {MAIN_CPU}, echo on CPU {ECHO_CPU}, cpus {os.cpu_count()}")
    print(f"{'peer':22s} {'p50 us':>8s} {'p99 us':>8s}")
    for name in args.peers or PEERS:
        try:
            result = PEERS[name](args.n)
        except Exception as e:  # one broken peer must not hide the others' figures
            _fail(name, f"failed: {e!r}")
            result = None
        if result is None:
            print(f"{name:22s} {'-':>8s} {'-':>8s}", flush=True)
        else:
            print(f"{name:22s} {result[0] / 1e3:8.2f} {result[1] / 1e3:8.2f}", flush=True)


if __name__ == "__main__":
    main()
