"""tradingd-producer: load the market data, own the segment, replay into it, as a daemon.

The life of one producer::

    config (exit 78) -> load every symbol's CSV (66 missing, 65 strict) -> merge by time
    -> create the segment, reclaiming a stale one (73 if a live producer owns it, 76 if
       the name holds a file that is not ours to remove) -> metrics endpoint -> READY=1
    -> main loop: replay step, heartbeat, WATCHDOG=1, STATUS=, until SIGTERM/SIGINT
    -> STOPPING=1, state stopped + unlink, metrics endpoint closed, exit 0

Everything after the segment exists runs under one ``try/finally`` that closes it, so
the segment never outlives the process in a half-built or orphaned state except after
SIGKILL, which the next producer reclaims. Domain work lives elsewhere (loader, replay,
ownership, writer); this module wires it to the daemon plumbing (:mod:`tradingd.daemon`).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from typing import NoReturn

from tradingd import __version__
from tradingd.clock import SYSTEM_CLOCK, Clock
from tradingd.daemon.cli import config_from_args, daemon_parser, log_level, run_main
from tradingd.daemon.config import Config, SymbolConfig, resolve_group, resolve_owner
from tradingd.daemon.logs import setup_logging
from tradingd.daemon.notify import Notifier
from tradingd.daemon.signals import StopFlag
from tradingd.errors import DataRefused, SegmentError
from tradingd.producer import cache as load_cache
from tradingd.producer import datafile, loader, quality
from tradingd.producer.flowcontrol import GateSupervisor
from tradingd.producer.metrics import ProducerMetrics
from tradingd.producer.replay import (
    Replayer,
    ReplaySettings,
    Timeline,
    build_timeline,
)
from tradingd.producer.sniff import sniff_file
from tradingd.segment import layout as L
from tradingd.segment import ownership
from tradingd.segment.liveness import process_start_ticks
from tradingd.segment.model import SymbolInfo
from tradingd.segment.reader import SegmentReader
from tradingd.segment.writer import SegmentWriter, assert_owned

PROG = "tradingd-producer"
log = logging.getLogger("tradingd.producer.daemon")

#: Bad rows logged one by one per file; the rest are summed up in one line per file.
BAD_ROWS_LOGGED_PER_FILE = 5
#: Longest sleep of the main loop (watchdog pings, signals and STATUS stay responsive).
MAX_SLEEP_S = 0.25
#: Paced replay: the last stretch before a record is due is spun, not slept: a sleep
#: overshoots by 50-100 us in a VM (timer slack, wake-up), which would be the pacing error.
PACE_SPIN_S = 0.0002
#: Least time between two STATUS progress texts computed (the notifier rate-limits too).
STATUS_EVERY_S = 0.5
#: How often the producer checks that /dev/shm/NAME is still its own file.
OWNERSHIP_CHECK_EVERY_S = 1.0
#: Least time between two reports of repeated year-2262 time wraps (the first is a WARNING).
WRAP_REPORT_EVERY_S = 600.0


class _StoppedWaiting(Exception):
    """SIGTERM/SIGINT arrived while waiting for the segment name: exit 0, create nothing."""


@dataclass(frozen=True)
class MarketData:
    """What loading produced: the symbol table and the merged timeline."""

    symbols: list[SymbolInfo]
    timeline: Timeline
    rows_rejected: int


def seconds_since_process_start() -> float | None:
    """Seconds since this process was started (``/proc``: 10 ms resolution), or None."""
    try:
        ticks = process_start_ticks(os.getpid())
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime - ticks / os.sysconf("SC_CLK_TCK") if ticks else None


# ---------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------


def open_cache(config: Config) -> load_cache.LoadCache | None:
    """The load cache (``producer.cache_dir``, else ``$CACHE_DIRECTORY``), or None."""
    directory = load_cache.cache_directory(config.producer.cache_dir, os.environ)
    if directory is None:
        log.info("no load cache (producer.cache_dir is null and $CACHE_DIRECTORY unset): "
                 "every start parses the CSV files")
        return None
    return load_cache.LoadCache(directory)


_SNIFFED: dict[str, loader.CsvFormat] = {}


def symbol_format(config: Config, sym: SymbolConfig) -> loader.CsvFormat:
    """A symbol's format; ``format: auto`` is sniffed from its file (once per process)
    and logged as the YAML to paste; DataRefused (65) where the sniffer cannot decide."""
    spec = config.format_of(sym)
    if spec != "auto":
        return loader.csv_format(spec)
    key = str(sym.path)
    if key not in _SNIFFED:
        found = sniff_file(sym.path, verify_all=False)
        fmt = found.require()
        log.info("%s: format auto: confidence %s (%.2f); the format found, to pin it under "
                 "producer.formats:\n%s", sym.file, found.level, found.confidence,
                 found.yaml().rstrip())
        _SNIFFED[key] = fmt
    return _SNIFFED[key]


def load_symbol(config: Config, sym: SymbolConfig,
                cache: load_cache.LoadCache | None = None) -> loader.LoadResult:
    """Load one symbol's CSV with its configured layout (strict per the config), from the
    load cache when it holds a valid entry for this file and format."""
    result, _ = _load_one(config, sym, cache, verify=True)
    return result


def _load_one(config: Config, sym: SymbolConfig, cache: load_cache.LoadCache | None, *,
              verify: bool) -> tuple[loader.LoadResult, load_cache.Lookup | None]:
    """The load and, if it came from the cache, its entry (bars checksummed if
    ``verify``; else :meth:`LoadCache.verify` before they are read)."""
    datafile.check_regular(sym.path)  # a FIFO must not block the start-up (exit 66)
    fmt = symbol_format(config, sym)
    if cache is not None:
        found = cache.load(sym.path, fmt, verify=verify)
        result = found.result
        if result is not None and not (config.producer.strict and result.rows_rejected):
            log.debug("%s: from the load cache %s", sym.file, cache.directory)
            return result, found
        if found.corrupt:
            log.warning("%s: load cache entry %s; parsing the CSV again and rebuilding it",
                        sym.file, found.status)
        elif found.status != "absent":
            log.info("%s: load cache entry %s; parsing the CSV again", sym.file,
                     found.status)
    return loader.load_csv(sym.path, fmt, strict=config.producer.strict), None


def store_in_cache(cache: load_cache.LoadCache | None, config: Config, sym: SymbolConfig,
                   result: loader.LoadResult,
                   summary: quality.FileSummary | None = None) -> load_cache.Lookup | None:
    """Keep a checked load for the next start (cache problems are logged, never fatal)."""
    if cache is None or result.from_cache:
        return None  # no cache, or the result came from it
    fmt = symbol_format(config, sym)
    extra = {"summary": quality.summary_to_json(summary)} if summary else None
    try:
        return cache.store(sym.path, fmt, result, extra)
    except OSError as exc:
        log.warning("%s: cannot write the load cache in %s: %s (the next start parses "
                    "the CSV again)", sym.file, cache.directory, exc.strerror or exc)
        return None


@dataclass
class _Loaded:
    sym: SymbolConfig
    result: loader.LoadResult
    entry: load_cache.Lookup | None  # its load cache entry (None: not cached)
    summary: quality.FileSummary


def load_market_data(config: Config, *, notifier: Notifier, stop: StopFlag,
                     metrics: ProducerMetrics | None) -> MarketData | None:
    """Load every configured symbol's CSV and merge them; None if stopped meanwhile.

    With a load cache, a start whose every file is cached maps the merged timeline too
    (no parse, no merge). Raises DataError (66: missing/unreadable file, wrong layout),
    StrictDataError (65) or DataRefused (65: no data rows, mostly rejected).
    """
    symbols = config.producer.symbols
    n = len(symbols)
    loads: list[_Loaded] = []
    rejected = 0
    cache = open_cache(config)
    for i, sym in enumerate(symbols, 1):
        if stop.is_set():
            return None
        notifier.status(f"loading {i}/{n} files ({sym.file})")
        t0 = time.perf_counter()
        result, entry = _load_one(config, sym, cache, verify=False)
        took = time.perf_counter() - t0
        shown = sym.file  # as the operator wrote it in the config
        bad = _log_bad_rows(shown, result)
        rejected += bad
        if metrics is not None:
            metrics.record_load(shown, len(result.bars), result.reject_counts,
                                loader.REJECT_REASONS)
        log.info("loaded %s: %d rows (%d skipped)%s for %s in %.1f ms (%s)",
                 shown, len(result.bars), bad,
                 ", newest first: reversed" if result.newest_first else "", sym.name,
                 took * 1e3, "from the load cache" if result.from_cache else
                 f"{result.rows_read / took if took > 0 else 0.0:.0f} rows/s")
        known = None if entry is None or not entry.extra else quality.summary_from_json(
            entry.extra.get("summary"))
        summary = check_file(config, sym, result, known)
        if entry is None:
            entry = store_in_cache(cache, config, sym, result, summary)
        if metrics is not None:
            metrics.record_gaps(shown, summary.gaps)
        loads.append(_Loaded(sym, result, entry, summary))
    infos = [SymbolInfo(name=x.sym.name, asset_class=x.sym.asset_class,
                        currency=x.sym.currency, price_decimals=x.sym.price_decimals,
                        bar_interval_ns=x.summary.interval_ns, record_count=len(x.result.bars))
             for x in loads]
    timeline = _timeline(config, cache, loads)
    return MarketData(infos, timeline, rejected)


def _timeline(config: Config, cache: load_cache.LoadCache | None,
              loads: list[_Loaded]) -> Timeline:
    """The merged timeline: mapped from the cache if every file was cached, else built
    (after checking the checksum of each cached file's bars) and stored."""
    align = config.producer.replay.align
    tag = {"align": align, "record_dtype": str(L.RECORD_DTYPE.descr)}
    entries = [x.entry for x in loads]
    if cache is not None and loads and all(e is not None and e.result is not None
                                           for e in entries):
        parts = [e for e in entries if e is not None]
        got = cache.load_timeline(parts, tag, L.RECORD_DTYPE)
        if isinstance(got, tuple):
            records, extra = got
            log.info("merged timeline from the load cache: %d records", len(records))
            return Timeline(records=records, per_symbol=tuple(extra["per_symbol"]),
                            loop_shift_ns=int(extra["loop_shift_ns"]))
        if got.startswith("corrupt"):
            log.warning("load cache: merged timeline %s; merging again", got)
    for x in loads:
        if cache is not None and x.entry is not None and not x.entry.verified:
            checked = cache.verify(x.entry)
            if checked.result is None:
                log.warning("%s: load cache entry %s; parsing the CSV again and rebuilding "
                            "it", x.sym.file, checked.status)
                x.result = loader.load_csv(x.sym.path, symbol_format(config, x.sym),
                                           strict=config.producer.strict)
                x.entry = store_in_cache(cache, config, x.sym, x.result, x.summary)
            else:
                x.entry = checked
    timeline = build_timeline([x.result.bars for x in loads], align=align)
    parts = [x.entry for x in loads if x.entry is not None]
    if cache is not None and loads and len(parts) == len(loads):
        try:
            cache.store_timeline(parts, tag, timeline.records,
                                 {"per_symbol": list(timeline.per_symbol),
                                  "loop_shift_ns": timeline.loop_shift_ns})
        except OSError as exc:
            log.warning("cannot write the merged timeline to the load cache in %s: %s",
                        cache.directory, exc.strerror or exc)
    return timeline


def check_file(config: Config, sym: SymbolConfig, result: loader.LoadResult,
               known: quality.FileSummary | None = None) -> quality.FileSummary:
    """Log a file's summary (range, interval, gaps, rejects; ``known``: as the load cache
    kept it); DataRefused (exit 65) if it has no data rows or more than
    ``producer.max_reject_share`` of them were rejected."""
    if known is not None:
        summary = dataclasses.replace(known, path=sym.file)
    else:
        has_volume = "volume" in symbol_format(config, sym).columns
        summary = quality.summarise(result, shown=sym.file, has_volume=has_volume)
    log.info("%s", summary.line())
    problem = quality.refusal(summary, config.producer.max_reject_share)
    if problem:
        raise DataRefused(f"{problem} (symbol {sym.name})")
    return summary


def _log_bad_rows(shown: str, result: loader.LoadResult) -> int:
    """Log a file's first bad rows (``file:line: reason: detail``) and a per-reason summary.

    Only the first few rows of each file are logged one by one: a file with thousands of
    bad rows must not flood the journal. Returns how many rows the file lost.
    """
    counts = {reason: n for reason, n in result.reject_counts.items() if n}
    total = sum(counts.values())
    if not total:
        return 0
    for row in result.bad_rows[:BAD_ROWS_LOGGED_PER_FILE]:
        log.warning("%s", row)
    by_reason = ", ".join(f"{reason} {n}" for reason, n in counts.items())
    more = total - min(total, BAD_ROWS_LOGGED_PER_FILE, len(result.bad_rows))
    log.warning("%s: skipped %d bad row%s (%s)%s", shown, total, "" if total == 1 else "s",
                by_reason, f"; {more} more not shown" if more else "")
    return total


# ---------------------------------------------------------------------------------------
# the daemon
# ---------------------------------------------------------------------------------------


class Producer:
    """One producer run: owns the segment from creation to close."""

    def __init__(self, config: Config, *, clock: Clock = SYSTEM_CLOCK, notifier: Notifier,
                 stop: StopFlag) -> None:
        self.config = config
        self.clock = clock
        self.notifier = notifier
        self.stop = stop
        self.metrics = ProducerMetrics(clock=clock)
        self._wrap_report_ns = 0
        self._wraps_reported = 0

    def run(self) -> int:
        cfg = self.config
        t0 = time.perf_counter()
        data = load_market_data(cfg, notifier=self.notifier, stop=self.stop,
                                metrics=self.metrics)
        if data is None:
            log.info("stopped (%s) while loading", self.stop.reason)
            return 0
        load_s = time.perf_counter() - t0
        self.metrics.load_duration.set(load_s)
        log.info("market data: %d symbols, %d records, %d bad rows skipped, loaded and "
                 "merged in %.0f ms", len(data.symbols), data.timeline.total,
                 data.rows_rejected, load_s * 1e3)
        if self.stop.is_set():
            return 0
        try:
            writer = self._create_segment(data)
        except _StoppedWaiting:
            log.info("stopped (%s) while waiting for the segment name", self.stop.reason)
            return 0
        reader: SegmentReader | None = None
        try:
            writer.set_counter("rows_rejected", data.rows_rejected)
            reader = SegmentReader.attach(writer.name, require_live=False)
            if reader.file_id != writer.file_id:
                raise SegmentError(writer.path, "was replaced by another process right after "
                                                "this producer created it")
            replayer = Replayer(data.timeline, writer, self._replay_settings(),
                                clock=self.clock)
            self.metrics.attach(segment_name=writer.name,
                                symbols=[s.name for s in data.symbols], header=reader,
                                replay=replayer)
            self._serve_metrics()
            if not self.stop.is_set():  # a stop during loading or creation: no READY
                self._ready(writer)
                self._main_loop(writer, replayer)
            log.info("stopping (%s): %s", self.stop.reason,
                     replayer.progress().status_text())
            self.notifier.stopping(f"stopping ({self.stop.reason})")
        finally:
            writer.close()  # state stopped, wake readers, unlink if still ours
            self.metrics.close()
            self.metrics.detach()
            if reader is not None:
                reader.close()
        log.info("segment %s stopped and removed; exiting", writer.path)
        return 0

    def _replay_settings(self) -> ReplaySettings:
        r = self.config.producer.replay
        return ReplaySettings(mode=r.mode, speed=r.speed, at_end=r.at_end,
                              batch_size=r.batch_size, fast_batch_size=r.fast_batch_size,
                              flow_control=r.flow_control)

    def _create_segment(self, data: MarketData) -> SegmentWriter:
        seg = self.config.segment
        gid = resolve_group(self.config)
        interval_ns = int(seg.heartbeat_interval * 1e9)

        gate = self.config.producer.replay.flow_control == "slowest"

        def open_gate(writer: SegmentWriter) -> None:
            # before the ready word: a consumer that attaches sees the gate and joins it
            if not writer.enable_gate(self.config.producer.replay.flow_control_lead):
                log.warning("replay.flow_control: slowest needs the C fast path and the "
                            "companion segment %s.wait; replaying WITHOUT flow control "
                            "(slow consumers are lapped)", seg.name)

        def create() -> SegmentWriter:
            return SegmentWriter.create(
                seg.name, data.symbols, symbol_capacity=seg.symbol_capacity,
                ring_capacity=seg.ring_capacity, mode=seg.mode, group=gid,
                heartbeat_interval_ns=interval_ns, clock=self.clock,
                before_ready=open_gate if gate else None)

        owner = resolve_owner(self.config)
        if owner != os.geteuid():
            log.warning("segment.owner is uid %d but this producer runs as uid %d: readers "
                        "configured alike will refuse its segment", owner, os.geteuid())

        def wait(seconds: float) -> None:
            # waiting for a squatter or another producer: keep the watchdog fed, honour SIGTERM
            self.notifier.status(f"waiting for segment name {seg.name} (see the log)")
            self.notifier.maybe_watchdog(self.clock.monotonic_ns())
            if self.stop.wait(seconds):
                raise _StoppedWaiting

        writer = ownership.create_owned(seg.name, create, clock=self.clock, sleep=wait,
                                        squat_wait_s=seg.squat_wait)
        log.info("created segment %s: generation %#x, %d bytes, ring of %d records, "
                 "mode %04o", writer.path, writer.generation, writer.geometry.total_size,
                 writer.geometry.ring_capacity, seg.mode)
        return writer

    def _serve_metrics(self) -> None:
        m = self.config.producer.metrics
        if not m.enabled:
            log.info("metrics disabled (producer.metrics.enabled: false, or --no-metrics)")
            return
        port = self.metrics.serve(m.address, m.port)
        log.info("metrics on http://%s:%d/metrics", m.address, port)

    def _ready(self, writer: SegmentWriter) -> None:
        r = self.config.producer.replay
        pace = "as fast as possible" if r.mode == "fast" else f"at {r.speed:g}x"
        self.notifier.ready(f"live: replaying {writer.name} {pace}")
        since = seconds_since_process_start()
        log.info("ready: segment %s live, PID %d, replay %s, at the end: %s%s", writer.path,
                 os.getpid(), pace, r.at_end,
                 f" ({since:.2f} s after process start)" if since is not None else "")

    def _log_time_wrap(self, replayer: Replayer, logged: int, now: int) -> int:
        """The year-2262 wrap: one WARNING, then a count at most every WRAP_REPORT_EVERY_S.

        In fast mode with ``at_end: loop`` it recurs every fraction of a second; logged
        each time it filled the journal (1,222 of 1,233 lines in 10 minutes).
        """
        wraps = replayer.time_wraps
        if logged == 0:
            log.warning("replay loop %d: event times would pass the int64 limit (year 2262); "
                        "starting the time shift again from the data's own timestamps (this "
                        "recurs every lap: counted, reported at most every %.0f s)",
                        replayer.loops + 1, WRAP_REPORT_EVERY_S)
            self._wrap_report_ns = now
            self._wraps_reported = wraps
            return wraps
        if now - self._wrap_report_ns >= int(WRAP_REPORT_EVERY_S * 1e9):
            log.info("event times wrapped %d more times (year 2262) in the last %.0f s; %d in "
                     "all", wraps - self._wraps_reported, (now - self._wrap_report_ns) / 1e9,
                     wraps)
            self._wrap_report_ns = now
            self._wraps_reported = wraps
            return wraps
        return logged

    def _gate_supervisor(self, writer: SegmentWriter) -> GateSupervisor | None:
        """The flow-control supervisor when the gate is on (replay.flow_control: slowest)."""
        if not writer.gated:
            return None
        r = self.config.producer.replay
        geo = writer.geometry
        log.info("flow control on: the replay never laps a gated consumer (dropped after "
                 "%.3g s without progress, or when it exits)", r.flow_control_timeout)
        return GateSupervisor(writer, lead=writer.gate_lead,
                              ring_window=geo.ring_window, timeout_s=r.flow_control_timeout,
                              on_drop=lambda reason: self.metrics.flow_control_drops.labels(
                                  reason=reason).inc())

    def _wait_for_consumers(self, writer: SegmentWriter, gate: GateSupervisor) -> bool:
        """``replay.flow_control_wait_for``: hold the first record until that many gated
        consumers joined, heartbeating; False if stopped meanwhile."""
        want = self.config.producer.replay.flow_control_wait_for
        clock, stop = self.clock, self.stop
        hb_ns = int(self.config.segment.heartbeat_interval * 1e9)
        next_hb = 0
        logged = False
        while not stop.is_set():
            now = clock.monotonic_ns()
            have = gate.check(now, False)
            self.metrics.flow_control_consumers.set(have)
            if have >= want:
                if want:
                    log.info("flow control: %d gated consumer(s) joined; replaying", have)
                return True
            if not logged:
                log.info("%s", _gate_wait_text(have, want))
                logged = True
            if now >= next_hb:
                writer.heartbeat(now)
                next_hb = now + hb_ns
                self.notifier.status(_gate_wait_text(have, want))
            self.notifier.maybe_watchdog(now)
            stop.wait(0.005)
        return False

    def _main_loop(self, writer: SegmentWriter, replayer: Replayer) -> None:
        clock, stop, notifier = self.clock, self.stop, self.notifier
        hb_ns = int(self.config.segment.heartbeat_interval * 1e9)
        status_ns = int(STATUS_EVERY_S * 1e9)
        owner_ns = int(OWNERSHIP_CHECK_EVERY_S * 1e9)
        max_sleep_ns = int(MAX_SLEEP_S * 1e9)
        observe = self.metrics.batch_duration.observe
        now = clock.monotonic_ns()
        next_hb = now + hb_ns
        next_status = now
        next_owner_check = now + owner_ns
        wraps_logged = 0
        finished_logged = False
        gate = self._gate_supervisor(writer)
        held = False
        sleeps_counted = 0
        if gate is not None and not self._wait_for_consumers(writer, gate):
            return
        replayer.start(clock.monotonic_ns())
        while not stop.is_set():
            now = clock.monotonic_ns()
            if now >= next_hb:
                writer.heartbeat(now)
                next_hb = now + hb_ns
            if gate is not None:
                self.metrics.flow_control_consumers.set(gate.check(now, held))
                sleeps = writer.gate_waits
                if sleeps > sleeps_counted:
                    self.metrics.flow_control_sleeps.inc(sleeps - sleeps_counted)
                    sleeps_counted = sleeps
            step = replayer.step(now)
            held = step.gated
            if step.published:
                observe(step.duration_ns / 1e9)
            if now >= next_status:
                next_status = now + status_ns
                notifier.status(replayer.progress(now).status_text())
                if replayer.time_wraps > wraps_logged:
                    wraps_logged = self._log_time_wrap(replayer, wraps_logged, now)
            if now >= next_owner_check:
                next_owner_check = now + owner_ns
                assert_owned(writer)  # removed or replaced by someone: exit, restart
            if step.finished and not finished_logged:
                finished_logged = True
                text = replayer.progress(now).status_text()
                log.info("%s (at_end: stop; segment state finished)", text)
                notifier.status(text, force=True)
            notifier.maybe_watchdog(now)
            if step.gated:
                continue  # the gate waited already (bounded): check the consumers, go on
            if step.published and step.next_due_ns is None and not step.finished:
                continue  # more is due now (or fast mode): no sleep
            wake = min(next_hb, next_status, now + max_sleep_ns)
            if step.next_due_ns is not None and step.next_due_ns <= wake:
                sleep_until(clock, stop, step.next_due_ns)  # a record: on time
            elif wake > now:
                stop.wait((wake - now) / 1e9)


def _gate_wait_text(have: int, want: int) -> str:
    return f"flow control: waiting for {want} gated consumer(s) before replaying ({have} joined)"


def sleep_until(clock: Clock, stop: StopFlag, due_ns: int, spin_s: float = PACE_SPIN_S) -> None:
    """Sleep until ``due_ns`` (``clock`` time): the last ``spin_s`` busy-waiting.

    The spin is bounded by real time too, so a test clock that does not advance by itself
    costs at most ``spin_s``.
    """
    spin_ns = int(spin_s * 1e9)
    left = due_ns - clock.monotonic_ns()
    if left > spin_ns:
        stop.wait((left - spin_ns) / 1e9)
        left = due_ns - clock.monotonic_ns()
    give_up = time.monotonic_ns() + min(left, spin_ns)
    while clock.monotonic_ns() < due_ns and time.monotonic_ns() < give_up:
        if stop.is_set():
            return


def run(args: argparse.Namespace) -> int:
    """The producer's body (:func:`main` wraps it in :func:`run_main` for exit codes)."""
    config = config_from_args(args)
    setup_logging(PROG, log_level(args, config))
    log.info("tradingd %s producer starting: config %s, segment %s, PID %d", __version__,
             config.source_path, config.segment.name, os.getpid())
    with Notifier(status_interval=STATUS_EVERY_S) as notifier, \
            StopFlag(ignore_sighup=False) as stop:
        return Producer(config, notifier=notifier, stop=stop).run()


def build_parser() -> argparse.ArgumentParser:
    return daemon_parser(PROG, "Replay market data from CSV files into the tradingd "
                               "shared-memory segment (/dev/shm/NAME).", "producer")


def main(argv: list[str] | None = None) -> NoReturn:
    """Console script ``tradingd-producer``."""
    args = build_parser().parse_args(argv)
    run_main(lambda: run(args), PROG)


if __name__ == "__main__":
    main()
