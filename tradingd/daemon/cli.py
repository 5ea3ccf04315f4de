"""The command line every daemon and tool shares, and how a command ends.

``--config PATH`` is looked for, when not given, in this order:

1. ``$TRADINGD_CONFIG`` if set (and not empty);
2. ``/etc/tradingd/tradingd.yaml`` if it exists (an installed system);
3. ``./config/tradingd.yaml`` (a checkout: the bundled config).

``--segment NAME`` overrides ``segment.name`` (several instances and tests side by side);
``--log-level`` overrides ``logging.level``. Daemons (:func:`daemon_parser`) also take
``--metrics-port PORT`` (overrides ``<section>.metrics.port``; 0 picks a free port) and
``--no-metrics`` (``<section>.metrics.enabled: false``), so a second instance can run beside an
installed one without editing its config.

:func:`run_main` is the one place a command ends: an expected failure (a
:class:`~tradingd.errors.TradingdError`) prints ``prog: message`` and exits with the
error's code, without a traceback; Ctrl-C exits 130; anything else is a bug and shows its
traceback (exit 1).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NoReturn

from tradingd import __version__
from tradingd import constants as C
from tradingd.daemon.config import Config, MetricsConfig, check_segment_name, load_config
from tradingd.daemon.logs import LEVELS, is_journal_stream
from tradingd.errors import TradingdError

#: The bundled config, relative to the working directory (last in the search order).
LOCAL_CONFIG_PATH = "config/tradingd.yaml"
CONFIG_ENV = "TRADINGD_CONFIG"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: stdout went away (``tool | head``)


def default_config_path(env: Mapping[str, str] | None = None) -> str:
    """The config file used without ``--config`` (search order in the module docstring)."""
    env = os.environ if env is None else env
    if env.get(CONFIG_ENV):
        return env[CONFIG_ENV]
    if Path(C.DEFAULT_CONFIG_PATH).is_file():
        return C.DEFAULT_CONFIG_PATH
    return LOCAL_CONFIG_PATH


class ArgumentParser(argparse.ArgumentParser):
    """argparse, exiting with EX_USAGE (64) on a bad command line instead of 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(C.EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _segment_name(value: str) -> str:
    problem = check_segment_name(value)
    if problem:
        raise argparse.ArgumentTypeError(f"invalid segment name {value!r}: {problem}")
    return value


def common_parser(prog: str, description: str) -> ArgumentParser:
    """A parser with ``--config``, ``--segment``, ``--log-level`` and ``--version``."""
    parser = ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--config", metavar="PATH", default=None,
        help=(f"configuration file (default: ${CONFIG_ENV}, else {C.DEFAULT_CONFIG_PATH} "
              f"if it exists, else ./{LOCAL_CONFIG_PATH}; now: {default_config_path()})"))
    parser.add_argument(
        "--segment", metavar="NAME", type=_segment_name, default=None,
        help="shared-memory segment name, overriding segment.name in the config")
    parser.add_argument(
        "--log-level", choices=LEVELS, default=None, type=str.lower,
        help="log level, overriding logging.level in the config")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {value!r}: not a number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {port}: must be 0 to 65535 "
                                         f"(0 picks a free port)")
    return port


def daemon_parser(prog: str, description: str, section: str) -> ArgumentParser:
    """:func:`common_parser` plus the metrics options of the daemon whose config section is
    ``section`` (``producer``, ``consumer``, ``exec``, or dotted: ``bridge.publish``; it must have a
    ``metrics`` map). A daemon whose section depends on its arguments (the bridge's mode)
    sets ``args.metrics_section`` after parsing."""
    parser = common_parser(prog, description)
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--metrics-port", metavar="PORT", type=_port, default=None,
        help=f"serve metrics on this port, overriding {section}.metrics.port (0: a free port)")
    group.add_argument(
        "--no-metrics", action="store_true",
        help=f"serve no metrics, overriding {section}.metrics.enabled")
    parser.set_defaults(metrics_section=section)
    return parser


def metrics_override(args: argparse.Namespace, metrics: MetricsConfig) -> MetricsConfig:
    """``metrics`` with ``--metrics-port`` / ``--no-metrics`` applied."""
    if getattr(args, "no_metrics", False):
        return dataclasses.replace(metrics, enabled=False)
    port = getattr(args, "metrics_port", None)
    if port is not None:
        return dataclasses.replace(metrics, enabled=True, port=port)
    return metrics


def config_from_args(args: argparse.Namespace) -> Config:
    """Load the config the parsed ``--config``/``--segment`` name (raises ConfigError), with a
    daemon's ``--metrics-port`` / ``--no-metrics`` applied to its section."""
    path = args.config if args.config else default_config_path()
    config = load_config(path, segment_override=args.segment)
    section = getattr(args, "metrics_section", None)
    if section is None:
        return config
    replaced = _with_metrics(config, section.split("."), args)
    assert isinstance(replaced, Config)
    return replaced


def _with_metrics(node: object, path: list[str], args: argparse.Namespace) -> object:
    """``node`` with the ``metrics`` map at dotted ``path`` (``exec``, ``bridge.mirror``)
    overridden by the command line; the same object when nothing changes."""
    child = getattr(node, path[0])
    if len(path) == 1:
        metrics = metrics_override(args, child.metrics)
        new = child if metrics == child.metrics else dataclasses.replace(child, metrics=metrics)
    else:
        new = _with_metrics(child, path[1:], args)
    if new is child:
        return node
    return dataclasses.replace(node, **{path[0]: new})  # type: ignore[type-var]


def log_level(args: argparse.Namespace, config: Config) -> str:
    """``--log-level`` if given, else the config's ``logging.level``."""
    return args.log_level or config.logging.level


def _print_error(prog: str, message: str) -> None:
    # Under systemd stderr is the journal: file the line at priority err (3).
    prefix = "<3>" if is_journal_stream(sys.stderr) else ""
    for line in f"{prog}: {message}".split("\n"):
        sys.stderr.write(f"{prefix}{line}\n")
    sys.stderr.flush()


def run_main(fn: Callable[[], int | None], prog: str) -> NoReturn:
    """Run a command's body and exit with the right code; never returns.

    ``fn`` returns the exit code (None means 0). A ``TradingdError`` prints
    ``prog: message`` (no traceback) and exits with its ``exit_code``; KeyboardInterrupt
    exits 130; a closed stdout exits 141 quietly; any other exception is a bug: its
    traceback is logged (priority-prefixed under journald) and the exit code is 1.
    """
    try:
        code = fn()
    except TradingdError as exc:
        _print_error(prog, str(exc))
        code = exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        code = EXIT_INTERRUPTED
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = EXIT_BROKEN_PIPE
    except SystemExit:
        raise
    except BaseException:
        if logging.getLogger().handlers:
            logging.getLogger(prog).critical("internal error (a bug, please report it)",
                                             exc_info=True)
        else:
            traceback.print_exc()
        code = C.EXIT_FAILURE
    sys.exit(C.EXIT_OK if code is None else code)
