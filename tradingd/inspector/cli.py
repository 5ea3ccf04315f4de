"""The ``tradingd-inspect`` command line: options, config, and the exit codes.

Every subcommand takes ``--segment NAME`` (a live segment, ``/dev/shm/NAME``) or
``--file PATH`` (a copied segment file, post-mortem), ``--config PATH`` and ``--json``;
they may come before or after the subcommand. The segment name defaults to the config's
``segment.name``. The config is only required when it supplies that name: with
``--segment``/``--file`` and no ``--config``, the default config is used if it is there
and valid (for ``--heartbeat-factor``'s default), and ignored with a warning otherwise.

Exit codes (``check`` has its own, monitoring-plugin codes: see :mod:`.check`):

* 0: done, the segment is sound (``cleanup``: removed, or nothing to remove);
* 2: the segment is missing, initialising, unreadable or damaged (corrupt, truncated,
  foreign, another layout version); whatever could be shown was shown, and the problem is
  on stderr with its offset (``tradingd.constants.EXIT_SEGMENT_PROBLEM``);
* 1: ``layout`` found C and Python disagreeing (a bug), or any internal error;
* 64: bad command line; 78: bad configuration;
* ``cleanup``: 73 refused because the producer is alive (or one is creating the segment),
  76 refused because the file is foreign or of another layout version (``--force``).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import NoReturn

from tradingd import __version__
from tradingd import constants as C
from tradingd.clock import SYSTEM_CLOCK, Clock
from tradingd.daemon.cli import default_config_path, run_main
from tradingd.daemon.config import Config, check_segment_name, load_config, resolve_owner
from tradingd.errors import ConfigError, SegmentError, TradingdError
from tradingd.inspector import check as check_mod
from tradingd.inspector.cleanup import cleanup
from tradingd.inspector.dump import (
    REGION_NAMES,
    DumpError,
    annotatable,
    dump_lines,
    resolve_range,
)
from tradingd.inspector.format import emit_json
from tradingd.inspector.layoutinfo import c_header_text, layout_report, render_layout
from tradingd.inspector.records import (
    follow,
    last_records,
    latest_rows,
    render_latest,
    render_tail,
)
from tradingd.inspector.source import (
    LiveView,
    Opened,
    SegmentFile,
    Source,
    open_source,
    probe_file,
)
from tradingd.inspector.status import render_status, status_report
from tradingd.inspector.watch import watch
from tradingd.segment import layout as L
from tradingd.segment import liveness, ownership

PROG = "tradingd-inspect"
COMMANDS = ("layout", "status", "latest", "tail", "dump", "watch", "check", "cleanup")


class UsageError(TradingdError):
    """The command line asks for something impossible (e.g. ``--follow`` on a file)."""

    exit_code = C.EXIT_USAGE


# ------------------------------------------------------------------------------ parser


def _segment_name(value: str) -> str:
    problem = check_segment_name(value)
    if problem:
        raise argparse.ArgumentTypeError(f"invalid segment name {value!r}: {problem}")
    return value


def _int(value: str) -> int:
    """Decimal or 0x-hex (offsets are read off hexdump output)."""
    try:
        return int(value, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number (decimal or 0x hex), "
                                         f"got {value!r}") from None


def _positive(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {value!r}") from None
    if not x > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return x


def _add_common(p: argparse.ArgumentParser, *, sub: bool) -> None:
    """The options every subcommand takes; on subparsers they only override when given."""
    def d(value: object) -> object:
        return argparse.SUPPRESS if sub else value

    p.add_argument("--config", metavar="PATH", default=d(None),
                   help=f"configuration file (default: $TRADINGD_CONFIG, "
                        f"{C.DEFAULT_CONFIG_PATH}, ./config/tradingd.yaml); "
                        f"its segment.name is the default segment")
    p.add_argument("--segment", metavar="NAME", type=_segment_name, default=d(None),
                   help="segment name (/dev/shm/NAME), overriding the config")
    p.add_argument("--file", metavar="PATH", default=d(None),
                   help="a copied segment file to inspect instead (post-mortem)")
    p.add_argument("--json", action="store_true", default=d(False),
                   help="machine-readable output")


def _add_factor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--heartbeat-factor", type=_positive, default=None, metavar="N",
                   help="heartbeat timeout in producer heartbeat intervals (default: the "
                        "config's consumer.heartbeat_timeout_factor, else "
                        f"{liveness.DEFAULT_TIMEOUT_FACTOR:g})")


def build_parser(usage_exit: int = C.EXIT_USAGE) -> argparse.ArgumentParser:
    """The parser; ``usage_exit`` is the exit code for a bad command line (3 for check)."""

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            self.print_usage(sys.stderr)
            self.exit(usage_exit, f"{self.prog}: error: {message}\n")

    parser = Parser(prog=PROG, description="Inspect a tradingd shared-memory segment: is it "
                    "alive, what is in it, is it consistent.",
                    epilog="Exit codes: 0 ok; 2 segment missing/initialising/damaged (what "
                    "could be shown was shown); 64 usage; 78 config; check: 0 OK, "
                    "1 WARNING, 2 CRITICAL, 3 UNKNOWN; cleanup: 73 producer alive, "
                    "76 foreign/other version.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_common(parser, sub=False)
    subs = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                 parser_class=Parser)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p = subs.add_parser(name, help=help_, description=help_)
        _add_common(p, sub=True)
        return p

    p = add("layout", "the segment's field table and the sizes C and Python agree on "
                      "(needs no segment)")
    p.add_argument("--c-header", action="store_true",
                   help="print the C header generated from the layout")

    p = add("status", "one status line, then the header fields, counters, regions, symbols")
    _add_factor(p)

    add("latest", "the latest value of each symbol")

    p = add("tail", "the most recent ring records, decoded")
    p.add_argument("-n", "--lines", type=int, default=20, metavar="N",
                   help="how many records (default 20)")
    p.add_argument("-f", "--follow", action="store_true",
                   help="keep printing new records until Ctrl-C (reports lapping)")
    p.add_argument("--duration", type=_positive, default=None, metavar="SECONDS",
                   help="with --follow: stop after this long")

    p = add("dump", "hexdump -C of a region or byte range, each line annotated with its fields")
    p.add_argument("region", nargs="?", choices=(*REGION_NAMES, "all"), default=None,
                   help="region to dump (default header)")
    p.add_argument("--index", type=_int, default=None, metavar="I",
                   help="only entry I of the region (symtab/latest: symbol id; ring: slot)")
    p.add_argument("--seq", type=_int, default=None, metavar="S",
                   help="only the ring slot of record sequence number S")
    p.add_argument("--offset", type=_int, default=None, metavar="O",
                   help="start of a byte range (decimal or 0x hex)")
    p.add_argument("--length", type=_int, default=None, metavar="N",
                   help="length of the byte range (default 256)")
    p.add_argument("-v", "--no-squeeze", dest="squeeze", action="store_false",
                   help="show repeated lines instead of '*' (like hexdump -v)")
    p.add_argument("--plain", action="store_true",
                   help="no annotations: output exactly as hexdump -C -s O -n N")

    p = add("watch", "a live, refreshing view of status, rates and latest prices")
    p.add_argument("--interval", type=_positive, default=1.0, metavar="SECONDS",
                   help="seconds between frames (default 1)")
    p.add_argument("--count", type=int, default=None, metavar="N",
                   help="stop after N frames")
    _add_factor(p)

    p = add("check", "health check with monitoring-plugin exit codes "
                     "(0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)")
    p.add_argument("--data-stale", type=_positive, default=None, metavar="SECONDS",
                   help="WARNING when the newest record is older than this")
    p.add_argument("--data-stale-critical", type=_positive, default=None, metavar="SECONDS",
                   help="CRITICAL when the newest record is older than this")
    p.add_argument("--init-grace", type=_positive, default=ownership.INIT_GRACE_S,
                   metavar="SECONDS", help="how long initialising is only a WARNING "
                   f"(default {ownership.INIT_GRACE_S:g})")
    _add_factor(p)

    p = add("cleanup", "remove a stale segment (refuses while its producer is alive)")
    p.add_argument("--force", action="store_true",
                   help="remove it even if the producer looks alive, or it is not a "
                        "tradingd segment of this version")
    p.add_argument("--dry-run", action="store_true", help="say what would be removed")
    _add_factor(p)
    _add_exec_commands(add)
    return parser


def _add_exec_commands(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """``rings`` and ``orders``: tradingd-exec's per-client rings (issue 18)."""
    p = add("rings", "the per-client order and report rings of the segment (tradingd-exec)")
    p.add_argument("--layout", action="store_true",
                   help="print the rings' field tables instead (needs no segment)")
    p.add_argument("--c-header", action="store_true",
                   help="print the generated C header tools/c/tradingd_orders.h")
    p = add("orders", "open orders and the last execution reports, per client")
    p.add_argument("--client", metavar="NAME", default=None, help="only this client")
    p.add_argument("-n", "--lines", type=int, default=20, metavar="N",
                   help="last reports per client (default 20)")
    p.add_argument("--journal", metavar="PATH", default=None,
                   help="take the open orders from exec's journal (replayed, read-only)")


# ------------------------------------------------------------------------------ config


def _warn(message: str) -> None:
    sys.stderr.write(f"{PROG}: warning: {message}\n")


def load_inspect_config(args: argparse.Namespace) -> Config | None:
    """The config: required when it names the segment (see the module docstring)."""
    if args.config:
        return load_config(args.config, segment_override=args.segment)
    path = default_config_path()
    if args.segment is None and args.file is None:
        return load_config(path)
    if not os.path.isfile(path):
        return None
    try:
        return load_config(path, segment_override=args.segment)
    except ConfigError as exc:
        _warn(f"ignoring the default configuration: {exc}")
        return None


def source_of(args: argparse.Namespace, config: Config | None) -> Source:
    if args.file and args.segment:
        raise UsageError("give --segment NAME or --file PATH, not both")
    if args.file:
        return Source.file(args.file)
    if args.segment:
        return Source.segment(args.segment, owner_of(config))
    assert config is not None
    return Source.segment(config.segment.name, owner_of(config))


def owner_of(config: Config | None) -> int:
    """The account a segment must belong to: ``segment.owner``, else our own."""
    return resolve_owner(config) if config is not None else os.geteuid()


def heartbeat_factor(args: argparse.Namespace, config: Config | None) -> float:
    if getattr(args, "heartbeat_factor", None):
        return float(args.heartbeat_factor)
    if config is not None:
        return config.consumer.heartbeat_timeout_factor
    return liveness.DEFAULT_TIMEOUT_FACTOR


def _problem_exit(opened: Opened) -> int:
    """Say what is wrong (stderr) and return 2, or 0 if nothing is."""
    if opened.problem is None:
        return C.EXIT_OK
    sys.stderr.write(f"{PROG}: {opened.problem.message}\n")
    return C.EXIT_SEGMENT_PROBLEM


# ------------------------------------------------------------------------------ commands


def cmd_layout(args: argparse.Namespace, clock: Clock) -> int:
    if args.c_header:
        sys.stdout.write(c_header_text())
        return C.EXIT_OK
    config = None
    if args.config:
        config = load_config(args.config, segment_override=args.segment)
    elif os.path.isfile(default_config_path()):
        try:
            config = load_config(default_config_path())
        except ConfigError:
            config = None  # layout needs no config: show the table without regions
    geo = None
    if config is not None:
        cap = config.segment.ring_capacity
        geo = L.Geometry(config.segment.symbol_capacity, cap, L.default_window(cap))
    report = layout_report(geo)
    if args.json:
        emit_json(report)
    else:
        print(render_layout(report))
    return C.EXIT_OK if report["agree"] else C.EXIT_FAILURE


def _open(args: argparse.Namespace) -> tuple[Opened, Config | None]:
    config = load_inspect_config(args)
    return open_source(source_of(args, config)), config


def cmd_status(args: argparse.Namespace, clock: Clock) -> int:
    opened, config = _open(args)
    with opened:
        report = status_report(opened, clock, heartbeat_factor(args, config))
        if args.json:
            emit_json(report)
        else:
            print(render_status(report))
        return _problem_exit(opened)


def _report(args: argparse.Namespace, opened: Opened, key: str, rows: list[dict[str, object]],
            notes: list[str], render: Callable[[list[dict[str, object]]], str],
            empty: str) -> int:
    """Print decoded rows (a table, or --json) with the view's notes; exit by the problem."""
    view = opened.view
    if args.json:
        emit_json({"segment": opened.probe.source.where, key: rows, "notes": notes,
                   "problem": opened.problem.as_dict() if opened.problem else None})
    else:
        if rows:
            print(render(rows))
        elif view is not None and view.geometry is not None:
            print(empty)
        for n in notes:
            print(f"note: {n}")
    return _problem_exit(opened)


def cmd_latest(args: argparse.Namespace, clock: Clock) -> int:
    opened, _config = _open(args)
    with opened:
        view = opened.view
        rows = (latest_rows(view.symbols(), view.latest_all(), clock.monotonic_ns())
                if view is not None and view.geometry is not None else [])
        notes = list(view.notes) if view is not None else []
        return _report(args, opened, "symbols", rows, notes, render_latest,
                       "(no symbols in the segment)")


def cmd_tail(args: argparse.Namespace, clock: Clock) -> int:
    if args.lines < 0:
        raise UsageError(f"-n must not be negative (got {args.lines})")
    if args.duration is not None and not args.follow:
        raise UsageError("--duration only applies with --follow")
    opened, _config = _open(args)
    with opened:
        view = opened.view
        if args.follow:
            if opened.problem is not None:
                return _problem_exit(opened)
            if not isinstance(view, LiveView) or opened.probe.source.name is None:
                raise UsageError("--follow needs a live segment (--segment NAME), not a "
                                 "copied file")
            symbols = view.symbols()
            start = view.reader.cursor - args.lines
            follow(view, symbols, start, clock, as_json=args.json, duration_s=args.duration)
            return C.EXIT_OK
        rows: list[dict[str, object]] = []
        notes: list[str] = []
        if view is not None and view.geometry is not None:
            rows, notes = last_records(view, args.lines, view.symbols(), clock)
            notes = [*view.notes, *notes]
        return _report(args, opened, "records", rows, notes, render_tail,
                       "(no records in the ring)")


def cmd_dump(args: argparse.Namespace, clock: Clock) -> int:
    config = load_inspect_config(args)
    source = source_of(args, config)
    with SegmentFile(source) as f:
        p = probe_file(f)
        size = f.size
        try:
            off, length, what = resolve_range(p, size, args.region, args.index, args.seq,
                                              args.offset, args.length)
        except DumpError as exc:
            if p.problem is None:
                raise
            sys.stderr.write(f"{PROG}: {exc}\n{PROG}: {p.problem.message}\n"
                             f"{PROG}: the header and --offset/--length ranges can still be "
                             f"dumped\n")
            return C.EXIT_SEGMENT_PROBLEM
        lines = list(dump_lines(f, p, off, length, squeeze=args.squeeze,
                                annotations=not (args.plain and not args.json),
                                want_fields=args.json))
    if args.json:
        emit_json({"segment": source.where, "offset": off, "length": length, "what": what,
                   "file_size": size, "annotated": annotatable(p),
                   "problem": p.problem.as_dict() if p.problem else None,
                   "lines": [ln.as_dict() for ln in lines]}, compact=True)
    else:
        for ln in lines:
            print(ln.text(args.plain))
    if off + length > size:
        _warn(f"{source.where} ends at offset {size} (0x{size:x}): {what} "
              f"({off}..{off + length - 1}) is cut short by {off + length - max(off, size)} "
              f"bytes")
    if not annotatable(p) and not args.plain:
        _warn("no field annotations: the header is not a tradingd v"
              f"{L.LAYOUT_MAJOR} header of this layout")
    if p.problem is not None:
        sys.stderr.write(f"{PROG}: {p.problem.message}\n")
        return C.EXIT_SEGMENT_PROBLEM
    return C.EXIT_OK


def cmd_watch(args: argparse.Namespace, clock: Clock) -> int:
    if args.count is not None and args.count < 1:
        raise UsageError(f"--count must be at least 1 (got {args.count})")
    config = load_inspect_config(args)
    return watch(source_of(args, config), clock, factor=heartbeat_factor(args, config),
                 interval=args.interval, count=args.count, as_json=args.json)


def cmd_check(args: argparse.Namespace, clock: Clock) -> int:
    """Never raises: anything that stops the check from judging is UNKNOWN (3)."""
    try:
        config = load_inspect_config(args)
        opts = check_mod.CheckOptions(heartbeat_factor=heartbeat_factor(args, config),
                                      data_stale_s=args.data_stale,
                                      data_stale_critical_s=args.data_stale_critical,
                                      init_grace_s=args.init_grace)
        with open_source(source_of(args, config)) as opened:
            result = check_mod.evaluate(opened, clock, opts)
    except TradingdError as exc:
        result = check_mod.CheckResult(check_mod.Status.UNKNOWN, str(exc))
    except Exception as exc:  # a bug: still answer the monitoring system, in its terms
        traceback.print_exc()
        result = check_mod.CheckResult(check_mod.Status.UNKNOWN,
                                       f"internal error: {type(exc).__name__}: {exc}")
    if args.json:
        emit_json(result.as_dict())
    else:
        print(result.line())
    return int(result.status)


def cmd_cleanup(args: argparse.Namespace, clock: Clock) -> int:
    if args.file:
        raise UsageError("cleanup removes a segment by name (--segment); a copied file is "
                         "yours to delete with rm")
    config = load_inspect_config(args)
    source = source_of(args, config)
    assert source.name is not None
    result = cleanup(source.name, clock, force=args.force, dry_run=args.dry_run,
                     heartbeat_factor=heartbeat_factor(args, config), owner=source.owner)
    if args.json:
        emit_json(result.as_dict())
    else:
        stream = sys.stderr if result.action in ("refused", "changed") else sys.stdout
        stream.write(f"{PROG}: {result.message}\n" if stream is sys.stderr
                     else f"{result.message}\n")
    return result.code


HANDLERS: dict[str, Callable[[argparse.Namespace, Clock], int]] = {
    "layout": cmd_layout, "status": cmd_status, "latest": cmd_latest, "tail": cmd_tail,
    "dump": cmd_dump, "watch": cmd_watch, "check": cmd_check, "cleanup": cmd_cleanup,
}


def _exec_segment(args: argparse.Namespace) -> str:
    if args.file:
        raise UsageError("rings/orders read the live rings beside a segment (--segment)")
    config = load_inspect_config(args)
    source = source_of(args, config)
    assert source.name is not None
    return source.name


def cmd_rings(args: argparse.Namespace, clock: Clock) -> int:
    from tradingd.inspector.rings import render_layout, render_rings, ring_rows
    if args.c_header or args.layout:
        from tradingd.exec.cheader import generate
        if args.c_header:
            sys.stdout.write(generate())
        elif args.json:
            emit_json({"channel_fingerprint": f"{L.CHANNEL_FINGERPRINT:016x}",
                       "fields": L.channel_table()})
        else:
            print(render_layout())
        return C.EXIT_OK
    segment = _exec_segment(args)
    rows = ring_rows(segment, clock)
    if args.json:
        emit_json({"segment": segment, "rings": rows})
    else:
        print(render_rings(rows))
    return C.EXIT_SEGMENT_PROBLEM if any(r.get("problem") for r in rows) else C.EXIT_OK


def cmd_orders(args: argparse.Namespace, clock: Clock) -> int:
    from tradingd.inspector.rings import order_report, render_orders
    if args.lines < 0:
        raise UsageError(f"-n must not be negative (got {args.lines})")
    rep = order_report(_exec_segment(args), args.client, args.lines, args.journal)
    if args.json:
        emit_json(rep)
    else:
        print(render_orders(rep))
    return C.EXIT_SEGMENT_PROBLEM if rep["problems"] else C.EXIT_OK


HANDLERS.update({"rings": cmd_rings, "orders": cmd_orders})
EXEC_COMMANDS = ("rings", "orders")  # beside COMMANDS: tradingd-exec's rings


def run(args: argparse.Namespace, clock: Clock = SYSTEM_CLOCK) -> int:
    """Run the parsed command; segment errors that stop it early exit 2 with the message."""
    try:
        return HANDLERS[args.command](args, clock)
    except SegmentError as exc:
        if args.command == "cleanup":
            raise
        sys.stderr.write(f"{PROG}: {exc}\n")
        return C.EXIT_SEGMENT_PROBLEM


def _is_check(argv: Sequence[str]) -> bool:
    """Is the subcommand ``check`` (whose bad command line must exit 3, UNKNOWN)?"""
    takes_value = {"--config", "--segment", "--file"}
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in takes_value:
            skip = True
            continue
        if not a.startswith("-"):
            return a == "check"
    return False


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of ``tradingd-inspect``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    is_check = _is_check(argv)
    parser = build_parser(usage_exit=3 if is_check else C.EXIT_USAGE)
    args = parser.parse_args(argv)
    if is_check:
        sys.exit(cmd_check(args, SYSTEM_CLOCK))
    run_main(lambda: run(args), PROG)


if __name__ == "__main__":
    main()
