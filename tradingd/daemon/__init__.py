"""Daemon plumbing shared by every daemon and tool, and the configuration they read.

Nothing here knows about market data or segments: readiness and watchdog notifications
to systemd (:mod:`.notify`), logging with journald priorities (:mod:`.logs`), stopping on
SIGTERM/SIGINT (:mod:`.signals`), the YAML configuration (:mod:`.config`, its schema
machinery in :mod:`.schema`), the common command line (:mod:`.cli`) and
``tradingd-config`` (:mod:`.configcheck`). Imports point one way: ``cli`` builds on
``config``, never the reverse; the domain wings import from here, never the other way.
"""

from tradingd.daemon.cli import common_parser, config_from_args, run_main
from tradingd.daemon.config import Config, load_config

__all__ = ["Config", "common_parser", "config_from_args", "load_config", "run_main"]
