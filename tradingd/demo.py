"""tradingd-demo (``make demo``): run producer, consumer and gateway; show the live view.

The gateway serves the live page (its URL is printed); ``--screenshot PNG`` opens it in
headless chromium, saves a screenshot and stops (``make demo-screenshot``).

Starts the real daemons as child processes on a private segment name
(``tddemo-PID-xxxx``) and free metrics ports, with the bundled config
(``config/tradingd.yaml``, or ``--config``) plus those overrides, and shows what the
seed's data viewer showed -- per symbol: price, change, volume, VWAP, tick rate -- as the
consumer computes it (read from the consumer's metrics endpoint, so the view is the
consumer's, not a second computation), refreshed until Ctrl-C or ``--duration`` seconds.
The replay runs at a week of data per second (``--speed``), every symbol's history
aligned to start together (``producer.replay.align: start``), and loops, so all four
bundled symbols move from the first second.

On a terminal the table is redrawn in place; when stdout is not a terminal (a pipe, a
log, CI) it prints plain lines, one block per refresh. The daemons' own logs go to a
temporary file, shown if a daemon fails.

Whatever happens (Ctrl-C, SIGTERM, a daemon failing, an error in the view), both daemons
are stopped (SIGTERM, then SIGKILL after a grace period), the private segment is removed
if a killed producer left it behind, and the temporary files are deleted.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tradingd import constants as C
from tradingd.daemon.cli import ArgumentParser, default_config_path, run_main
from tradingd.daemon.config import Config, load_config
from tradingd.errors import TradingdError
from tradingd.segment import shm

PROG = "tradingd-demo"
#: Seconds a daemon gets to stop after SIGTERM before it is killed.
STOP_GRACE = 10.0
#: Seconds to wait for the consumer's metrics endpoint to answer at start.
START_TIMEOUT = 30.0
#: Replay speed of the demo: a week of market data per second (stocks ~5 bars/s, BTC-USD 7,
#: EURUSD's hourly bars ~120/s), with every symbol aligned to start together.
DEFAULT_SPEED = 7 * 86400.0
_PREFIX = "tradingd_consumer_"


class DemoError(TradingdError):
    """A daemon of the demo failed to start or died; its log is shown with the message."""


# ------------------------------------------------------------------ processes
def free_port(address: str = C.DEFAULT_METRICS_ADDRESS) -> int:
    """A TCP port nobody listens on right now (bind to port 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


_PR_SET_PDEATHSIG = 1


def _terminate_with_parent() -> None:
    """In the child before exec: SIGTERM when the demo goes away (prctl PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def daemon_command(name: str) -> list[str]:
    """The console script next to this interpreter, else ``python -m tradingd.<name>.daemon``."""
    script = Path(sys.executable).parent / f"tradingd-{name}"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", f"tradingd.{name}.daemon"]


def demo_config(base: Config, segment: str, producer_port: int, consumer_port: int,
                speed: float | None, gateway_port: int = 0,
                gateway_metrics_port: int = 0) -> dict[str, Any]:
    """The base config file's contents with the demo's overrides, as a YAML-ready dict."""
    data = yaml.safe_load(base.source_path.read_text(encoding="utf-8")) or {}
    data.setdefault("segment", {})["name"] = segment
    producer = data.setdefault("producer", {})
    producer["data_dir"] = str(base.producer.data_dir)  # absolute: the copy lives elsewhere
    producer.setdefault("metrics", {}).update(enabled=True, address=C.DEFAULT_METRICS_ADDRESS,
                                              port=producer_port)
    if speed:
        producer.setdefault("replay", {}).update(mode="paced", speed=speed, at_end="loop",
                                                 align="start")
    consumer = data.setdefault("consumer", {})
    consumer.setdefault("metrics", {}).update(enabled=True, address=C.DEFAULT_METRICS_ADDRESS,
                                              port=consumer_port)
    gateway = data.setdefault("gateway", {})  # the live page: loopback, no token
    gateway.update(address=C.DEFAULT_GATEWAY_ADDRESS, port=gateway_port, token_file=None)
    gateway.setdefault("metrics", {}).update(enabled=True, address=C.DEFAULT_METRICS_ADDRESS,
                                             port=gateway_metrics_port)
    return data


@dataclass
class Daemons:
    """The two child processes, their log file, and how to stop them."""

    segment: str
    workdir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def log_path(self) -> Path:
        return self.workdir / "daemons.log"

    def start(self, name: str, config_path: Path) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)  # our children do not talk to our service manager
        env.pop("JOURNAL_STREAM", None)
        with open(self.log_path, "ab") as log:
            # own session: a Ctrl-C reaches the demo only, which stops the daemons in
            # order; SIGTERM to them if the demo dies without cleaning up (kill -9)
            proc = subprocess.Popen([*daemon_command(name), "--config", str(config_path)],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    env=env, start_new_session=True,
                                    preexec_fn=_terminate_with_parent)
        self.procs[name] = proc
        return proc

    def check(self) -> None:
        """Raise DemoError if a daemon has exited."""
        for name, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                raise DemoError(f"tradingd-{name} exited with code {code}; its log:\n"
                                f"{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join("  " + line for line in text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM both (consumer first), wait, SIGKILL stragglers, remove a left segment."""
        for name in ("gateway", "consumer", "producer"):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        # a producer that had to be killed leaves its segment: the name is ours alone
        with contextlib.suppress(OSError):
            shm.unlink(self.segment)


# ------------------------------------------------------------------ the view
@dataclass
class SymbolRow:
    name: str
    price: float = math.nan
    previous: float = math.nan
    first: float = math.nan
    volume: float = math.nan
    vwap: float = math.nan
    volatility: float = math.nan
    rate: float = math.nan
    records: float = 0.0
    event_time: float = math.nan  # Unix seconds of the last record's event


@dataclass
class View:
    """One scrape of the consumer's metrics, reduced to what the table shows."""

    symbols: dict[str, SymbolRow]
    scalars: dict[str, float]
    generation: str = ""
    state: str = ""


_SYMBOL_FIELDS = {
    "symbol_price": "price", "symbol_previous_price": "previous",
    "symbol_first_price": "first", "symbol_volume": "volume", "symbol_vwap": "vwap",
    "symbol_volatility": "volatility",
    "symbol_records_consumed": "records", "symbol_data_timestamp_seconds": "event_time",
}


def parse_metrics(text: str) -> View:
    """The consumer's exposition text -> :class:`View`."""
    symbols: dict[str, SymbolRow] = {}
    scalars: dict[str, float] = {}
    view = View(symbols, scalars)
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(_PREFIX):
            continue
        short = family.name[len(_PREFIX):]
        for sample in family.samples:
            if short in _SYMBOL_FIELDS and "symbol" in sample.labels:
                sym = sample.labels["symbol"]
                row = symbols.setdefault(sym, SymbolRow(sym))
                if sample.name.endswith("_created"):
                    continue
                setattr(row, _SYMBOL_FIELDS[short], sample.value)
            elif short == "segment_info":
                view.generation = sample.labels.get("generation", "")
                view.state = sample.labels.get("state", "")
            elif not sample.labels:
                scalars[sample.name[len(_PREFIX):]] = sample.value
    return view


def set_rates(view: View, previous: View, elapsed: float) -> None:
    """Per-symbol records/s between two scrapes (what rate() over the records counter says)."""
    for name, row in view.symbols.items():
        before = previous.symbols.get(name)
        if before is not None and elapsed > 0 and row.records >= before.records:
            row.rate = (row.records - before.records) / elapsed


def scrape(url: str, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body: bytes = resp.read()
        return body.decode("utf-8")


def _num(x: float, decimals: int = 2) -> str:
    return "-" if math.isnan(x) else f"{x:,.{decimals}f}"


def _volume(x: float) -> str:
    if math.isnan(x):
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f}{unit}"
    return f"{x:.0f}"


def _change(now: float, then: float, decimals: int) -> str:
    if math.isnan(now) or math.isnan(then) or then == 0:
        return "-"
    return f"{now - then:+,.{decimals}f} ({100 * (now / then - 1):+.2f}%)"


def _date(t: float) -> str:
    if math.isnan(t):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))


def render(view: View, decimals: dict[str, int], order: list[str], elapsed: float,
           rate: float) -> list[str]:
    """The table as lines of text: every configured symbol, ``-`` until it has data."""
    s = view.scalars
    up = "up" if s.get("producer_up") == 1 else "DOWN"
    consumed = int(s.get("records_consumed_total", 0))
    head = (f"tradingd demo  {elapsed:6.1f} s   generation {view.generation[:8] or '-'} "
            f"({view.state or '-'})   producer {up}   consumed {consumed:,} ({rate:,.0f}/s)"
            f"   lost {int(s.get('records_lost_total', 0))}   lag "
            f"{int(s.get('lag_records', 0))}")
    cols = (f"{'SYMBOL':<9} {'DATA TIME (UTC)':<16} {'PRICE':>12} {'CHANGE':>22} "
            f"{'SINCE START':>11} {'VOLUME':>9} {'VWAP':>12} {'VOLAT.':>7} {'RATE/s':>7} "
            f"{'RECORDS':>8}")
    lines = [head, cols]
    names = [*order, *sorted(n for n in view.symbols if n not in order)]
    for name in names:
        row = view.symbols.get(name, SymbolRow(name))
        d = decimals.get(name, 2)
        since = ("-" if math.isnan(row.first) or math.isnan(row.price) or row.first == 0
                 else f"{100 * (row.price / row.first - 1):+.2f}%")
        vol = "-" if math.isnan(row.volatility) else f"{100 * row.volatility:.2f}%"
        lines.append(
            f"{name:<9} {_date(row.event_time):<16} {_num(row.price, d):>12} "
            f"{_change(row.price, row.previous, d):>22} {since:>11} {_volume(row.volume):>9} "
            f"{_num(row.vwap, d):>12} {vol:>7} {_num(row.rate, 1):>7} {int(row.records):>8,}")
    return lines


# ------------------------------------------------------------------ main
class _Terminated(Exception):
    """SIGTERM/SIGHUP to the demo: stop like on Ctrl-C."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Terminated(signal.Signals(signum).name)


def _wait_for_metrics(url: str, daemons: Daemons) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        daemons.check()
        try:
            scrape(url, timeout=1.0)
            return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise DemoError(f"the consumer's metrics {url} did not answer within "
                                f"{START_TIMEOUT:.0f} s; the daemons' log:\n"
                                f"{daemons.log_tail()}") from None
            time.sleep(0.1)


def run_view(url: str, daemons: Daemons, config: Config, *, duration: float | None,
             refresh: float, tty: bool) -> None:
    decimals = {s.name: s.price_decimals for s in config.producer.symbols}
    order = [s.name for s in config.producer.symbols]
    start = time.monotonic()
    last: tuple[float, float] | None = None
    previous: View | None = None
    while True:
        daemons.check()
        now = time.monotonic()
        try:
            view = parse_metrics(scrape(url))
        except (urllib.error.URLError, OSError) as exc:
            print(f"(consumer metrics not answering: {exc})", flush=True)
            view = None
        if view is not None:
            consumed = view.scalars.get("records_consumed_total", 0.0)
            rate = 0.0 if last is None else (consumed - last[1]) / max(now - last[0], 1e-9)
            if previous is not None and last is not None:
                set_rates(view, previous, now - last[0])
            last, previous = (now, consumed), view
            lines = render(view, decimals, order, now - start, rate)
            if tty:
                sys.stdout.write("\x1b[H\x1b[2J" + "\n".join(lines) + "\n\n(Ctrl-C to stop)\n")
            else:
                sys.stdout.write("\n".join(lines) + "\n\n")
            sys.stdout.flush()
        if duration is not None and now - start >= duration:
            return
        wake = refresh if duration is None else min(refresh, duration - (now - start))
        time.sleep(max(0.05, wake))


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description="Run tradingd-producer, tradingd-consumer and "
                       "tradingd-gateway on the bundled market data and show the consumer's "
                       "live per-symbol view until Ctrl-C (or --duration); the gateway's live "
                       "page URL is printed.")
    p.add_argument("--config", metavar="PATH", default=None,
                   help=f"base configuration (default: {default_config_path()}); the demo "
                        f"overrides the segment name and metrics ports")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="stop after this many seconds (default: run until Ctrl-C)")
    p.add_argument("--refresh", type=float, default=1.0, metavar="SECONDS",
                   help="seconds between screen refreshes (default 1)")
    p.add_argument("--speed", type=float, default=DEFAULT_SPEED, metavar="FACTOR",
                   help=f"replay paced at this many data seconds per second (default "
                        f"{DEFAULT_SPEED:.0f}: a week of data a second); 0: the config's "
                        f"producer.replay")
    p.add_argument("--gateway-port", type=int, default=0, metavar="PORT",
                   help="port of the live page and WebSocket API (default: a free port)")
    p.add_argument("--screenshot", metavar="PNG", default=None,
                   help="open the live page in headless chromium once every symbol shows a "
                        "price, save a screenshot to PNG, and stop")
    return p


def _screenshot(page: str, path: str, config: Config, daemons: Daemons) -> None:
    """The live page in headless chromium, every symbol priced, saved as a PNG."""
    from tradingd.gateway import browser

    symbols = [s.name for s in config.producer.symbols]
    with browser.Browser(1280, 720) as b:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            daemons.check()
            try:
                b.open(page)
                b.wait_for(lambda st: browser.all_prices_shown(st, symbols), 10,
                           "a price for every symbol")
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise DemoError(f"the live page {page} showed no prices within "
                                    f"{START_TIMEOUT:.0f} s; the daemons' log:\n"
                                    f"{daemons.log_tail()}") from None
        time.sleep(2.0)  # let the charts fill
        shot = b.screenshot(path)
    print(f"{PROG}: screenshot of the live page written to {shot.resolve()}", flush=True)


def _run(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.duration is not None and args.duration <= 0:
        _parser().error("--duration must be positive")
    if args.refresh <= 0:
        _parser().error("--refresh must be positive")
    if args.speed < 0:
        _parser().error("--speed must be positive (or 0: the config's replay settings)")
    base = load_config(args.config or default_config_path())
    segment = f"tddemo-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    ports: set[int] = set()
    while len(ports) < 4:
        ports.add(free_port())
    consumer_port, producer_port, gateway_port, gateway_metrics_port = sorted(ports)
    if args.gateway_port:
        gateway_port = args.gateway_port
    workdir = Path(tempfile.mkdtemp(prefix="tradingd-demo-"))
    daemons = Daemons(segment, workdir)
    old = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        config_path = workdir / "tradingd.yaml"
        config_path.write_text(yaml.safe_dump(
            demo_config(base, segment, producer_port, consumer_port, args.speed, gateway_port,
                        gateway_metrics_port)))
        config = load_config(config_path)  # validate the overrides before starting anything
        prod = daemons.start("producer", config_path)
        cons = daemons.start("consumer", config_path)
        gate = daemons.start("gateway", config_path)
        url = f"http://127.0.0.1:{consumer_port}/metrics"
        page = f"http://{C.DEFAULT_GATEWAY_ADDRESS}:{gateway_port}/"
        print(f"{PROG}: segment /dev/shm/{segment}; producer pid {prod.pid} (metrics "
              f"http://127.0.0.1:{producer_port}/metrics), consumer pid {cons.pid} "
              f"(metrics {url}), gateway pid {gate.pid}; daemon logs in {daemons.log_path}",
              flush=True)
        print(f"{PROG}: live page {page}  (WebSocket API "
              f"ws://{C.DEFAULT_GATEWAY_ADDRESS}:{gateway_port}/ws)", flush=True)
        _wait_for_metrics(url, daemons)
        if args.screenshot:
            _screenshot(page, args.screenshot, config, daemons)
            return C.EXIT_OK
        run_view(url, daemons, config, duration=args.duration, refresh=args.refresh,
                 tty=sys.stdout.isatty())
    except (KeyboardInterrupt, _Terminated):
        print(f"\n{PROG}: stopping", flush=True)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        with _ignoring_interrupts():
            daemons.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    left = [n for n, p in daemons.procs.items() if p.returncode not in (0, None)]
    if left:
        print(f"{PROG}: {', '.join(left)} exited with an error; log was:\n"
              f"{daemons.log_tail()}", file=sys.stderr)
    print(f"{PROG}: stopped producer, consumer and gateway; segment /dev/shm/{segment} removed",
          flush=True)
    return C.EXIT_OK


@contextlib.contextmanager
def _ignoring_interrupts() -> Iterator[None]:
    """Let cleanup finish even if Ctrl-C is pressed again meanwhile."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def main() -> None:
    """Console script ``tradingd-demo`` (``make demo``)."""
    run_main(_run, PROG)


if __name__ == "__main__":
    main()
