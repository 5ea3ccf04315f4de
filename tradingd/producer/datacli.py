"""tradingd-data: look at market data files the way the producer will load them.

    tradingd-data check FILE [--format NAME] [--config CFG] [--json]
    tradingd-data sniff FILE [--json]
    tradingd-data cache list|clear [--config CFG] [--cache-dir DIR]

``check`` loads a file with a format (a built-in name, a key of ``producer.formats``, or
``auto``; without ``--format``: the format of the configured symbol whose file it is, else
``auto``) and prints rows, range, inferred bar interval, gaps, zero-volume bars and
rejected rows by reason with file:line. Exit codes for scripts: 0 fit to replay and no row
rejected; 2 fit, but rows were rejected; 65 the producer would refuse it (no data rows,
or more than ``producer.max_reject_share`` rejected); 66 unusable (missing, wrong
header); 64 bad command line; 78 bad config.

``sniff`` guesses a file's format and prints it as the YAML to paste under
``producer.formats``, with how sure it is; where it cannot decide it says what to set by
hand (exit 65). ``cache`` lists or clears the producer's load cache.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import NoReturn

from tradingd import constants as C
from tradingd.daemon.cli import ArgumentParser, default_config_path, run_main
from tradingd.daemon.config import Config, load_config
from tradingd.errors import TradingdError
from tradingd.producer import quality
from tradingd.producer.loader import BUILTIN_FORMATS, CsvFormat, csv_format, load_csv

PROG = "tradingd-data"


class UsageError(TradingdError):
    """The command line names something that does not exist (a format, a file)."""

    exit_code = C.EXIT_USAGE


def _config(args: argparse.Namespace, required: bool) -> Config | None:
    """The config (``--config``, else the default search), or None if not needed and the
    default one does not exist."""
    path = args.config or default_config_path()
    if not args.config and not required and not Path(path).is_file():
        return None
    return load_config(path)


def resolve_format(args: argparse.Namespace, path: Path) -> tuple[CsvFormat, str]:
    """(format, how it was chosen) for ``check``."""
    name = args.format
    if name and name in BUILTIN_FORMATS:
        return BUILTIN_FORMATS[name], name
    if name == "auto":
        return _sniffed(path), "auto (sniffed)"
    config = _config(args, required=bool(name))
    if name:
        assert config is not None
        if name not in config.producer.formats:
            known = [*BUILTIN_FORMATS, *config.producer.formats, "auto"]
            raise UsageError(f"no format {name!r} (known: {', '.join(known)}; from "
                             f"{config.source_path})")
        return csv_format(config.producer.formats[name]), f"{name} ({config.source_path})"
    if config is not None:
        target = path.resolve()
        for sym in config.producer.symbols:
            if sym.path.resolve() == target:
                spec = config.format_of(sym)
                if spec == "auto":
                    return _sniffed(path), f"auto (sniffed), of symbol {sym.name}"
                return (csv_format(spec),
                        f"{sym.format}, of symbol {sym.name} in {config.source_path}")
    return _sniffed(path), "auto (sniffed; no configured symbol reads this file)"


def _sniffed(path: Path) -> CsvFormat:
    from tradingd.producer.sniff import sniff_file
    return sniff_file(path).require()


def cmd_check(args: argparse.Namespace) -> int:
    path = Path(args.file)
    fmt, how = resolve_format(args, path)
    result = load_csv(path, fmt)
    summary = quality.summarise(result, shown=str(path), has_volume="volume" in fmt.columns)
    share = args.max_reject_share
    if share is None:
        config = _config(args, required=False)
        share = config.producer.max_reject_share if config else 0.5
    problem = quality.refusal(summary, share)
    code = (C.EXIT_DATAERR if problem else
            C.EXIT_DATA_CHECK_REJECTS if summary.rejected else C.EXIT_OK)
    if args.json:
        print(json.dumps({**summary.as_dict(), "format": fmt.key(), "format_from": how,
                          "verdict": "refused" if problem else "ok",
                          "problem": problem, "exit_code": code}, indent=2))
        return code
    print(f"{path}: format {how}")
    for label, value in _check_lines(summary):
        print(f"  {label:<12} {value}")
    verdict = (f"REFUSED (exit {code}): {problem}" if problem else
               "OK: fit to replay" + (f" ({summary.rejected} rows skipped, exit {code})"
                                      if summary.rejected else ""))
    print(f"  {'verdict':<12} {verdict}")
    return code


def _check_lines(s: quality.FileSummary) -> list[tuple[str, str]]:
    lines = [("rows", f"{s.rows} data rows: {s.bars} bars, {s.rejected} rejected "
                      f"({s.reject_share:.1%})")]
    if s.first_ns is not None and s.last_ns is not None:
        order = "newest first in the file, reversed" if s.newest_first else "oldest first"
        lines.append(("range", f"{quality.format_time(s.first_ns)} .. "
                               f"{quality.format_time(s.last_ns)} ({order})"))
    lines.append(("interval", quality.format_interval(s.interval_ns)))
    gaps = f"{s.gaps}" + (f" ({s.missing_bars} missing bars)" if s.gaps else "")
    lines.append(("gaps", gaps))
    lines += [("", f"  {gap}") for gap in s.first_gaps]
    if s.gaps > len(s.first_gaps):
        lines.append(("", f"  ... {s.gaps - len(s.first_gaps)} more"))
    lines.append(("zero volume", f"{s.zero_volume} bar{'s' if s.zero_volume != 1 else ''}"))
    if s.rejected:
        lines.append(("rejects", ", ".join(f"{r} {n}" for r, n in s.reject_counts.items())))
        lines += [("", f"  {row}") for row in s.bad_rows]
        if s.rejected > len(s.bad_rows):
            lines.append(("", f"  ... {s.rejected - len(s.bad_rows)} more"))
    else:
        lines.append(("rejects", "none"))
    return lines


def cmd_sniff(args: argparse.Namespace) -> int:
    from tradingd.producer.sniff import sniff_file
    result = sniff_file(Path(args.file))
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(result.report(), end="")
    return C.EXIT_OK if result.format is not None else C.EXIT_DATAERR


def cmd_cache(args: argparse.Namespace) -> int:
    from tradingd.producer import cache
    directory = Path(args.cache_dir) if args.cache_dir else None
    if directory is None:
        config = _config(args, required=False)
        directory = cache.cache_directory(config.producer.cache_dir if config else None,
                                          os.environ)
    if directory is None:
        raise UsageError("no cache directory: give --cache-dir, set producer.cache_dir in "
                         "the config, or run where $CACHE_DIRECTORY is set")
    store = cache.LoadCache(directory)
    if args.action == "list":
        entries = store.entries()
        if args.json:
            print(json.dumps([e.as_dict() for e in entries], indent=2))
            return C.EXIT_OK
        print(f"{directory}: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}")
        for e in entries:
            print(f"  {e.line()}")
        return C.EXIT_OK
    removed, freed = store.clear()
    print(f"{directory}: removed {removed} file{'s' if removed != 1 else ''} "
          f"({freed / 1e6:.1f} MB)")
    return C.EXIT_OK


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog=PROG, description="Check, sniff and cache market data files "
                                                   "as tradingd-producer loads them.")
    parser.add_argument("--config", metavar="PATH", default=None,
                        help=f"configuration file (default: the usual search; now "
                             f"{default_config_path()})")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    check = sub.add_parser("check", help="load a file and report rows, range, interval, "
                                         "gaps, zero-volume bars and rejects")
    check.add_argument("file", metavar="FILE")
    check.add_argument("--format", metavar="NAME", default=None,
                       help="yahoo, pandas_index, a key of producer.formats, or auto "
                            "(default: the configured symbol's format, else auto)")
    check.add_argument("--max-reject-share", type=float, default=None, metavar="X",
                       help="refuse above this share of rejected rows (default: the "
                            "config's producer.max_reject_share, 0.5)")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.set_defaults(run=cmd_check)
    sniff = sub.add_parser("sniff", help="guess a file's format; print it as config YAML")
    sniff.add_argument("file", metavar="FILE")
    sniff.add_argument("--json", action="store_true", help="machine-readable output")
    sniff.set_defaults(run=cmd_sniff)
    cache = sub.add_parser("cache", help="list or clear the producer's load cache")
    cache.add_argument("action", choices=("list", "clear"))
    cache.add_argument("--cache-dir", metavar="DIR", default=None,
                       help="the cache directory (default: producer.cache_dir, else "
                            "$CACHE_DIRECTORY)")
    cache.add_argument("--json", action="store_true", help="machine-readable output")
    cache.set_defaults(run=cmd_cache)
    return parser


def main(argv: list[str] | None = None) -> NoReturn:
    """Console script ``tradingd-data``."""
    args = build_parser().parse_args(argv)

    def body() -> int:
        code: int = args.run(args)
        sys.stdout.flush()
        return code

    run_main(body, PROG)


if __name__ == "__main__":
    main()
