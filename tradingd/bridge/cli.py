"""``tradingd-bridge publish|mirror``: the two bridge daemons' command line and life.

Both are daemons like the producer and the consumer: one YAML config (``bridge:``
section), ``--config``/``--segment``/``--log-level``, plus ``--feed`` (the feed's name on
NATS: by default the origin segment's name, so on the mirror host ``--feed`` names the
origin's segment while ``--segment`` names the local one). ``READY=1`` once started
(waiting for NATS or for the origin segment counts as started: the unit must not fail
while its peers are away), ``STATUS=`` lines, ``WATCHDOG=1`` from the event loop,
``STOPPING=1`` and exit 0 on SIGTERM/SIGINT, metrics on ``bridge.<mode>.metrics``
(``--metrics-port PORT`` / ``--no-metrics`` override it, as on every daemon).

Exit codes: 78 bad config, 64 bad command line, 85 NATS refused the credentials (no
restart loop: the units list it in ``RestartPreventExitStatus=``), 73/76/77 as the
producer for the mirror's local segment.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from typing import NoReturn

from tradingd import __version__
from tradingd.bridge.connection import quiet_nats_client_tasks
from tradingd.bridge.feed import feed_of
from tradingd.bridge.metrics import BridgeMetrics
from tradingd.bridge.mirror import Mirror
from tradingd.bridge.publish import PublishBridge
from tradingd.daemon.cli import config_from_args, daemon_parser, log_level, run_main
from tradingd.daemon.logs import setup_logging
from tradingd.daemon.notify import Notifier
from tradingd.daemon.signals import StopFlag
from tradingd.segment import shm

PROG = "tradingd-bridge"
log = logging.getLogger("tradingd.bridge")
MODES = ("publish", "mirror")


def build_parser() -> argparse.ArgumentParser:
    parser = daemon_parser(PROG, "Bridge a tradingd segment to other hosts over NATS "
                                 "JetStream: 'publish' a local segment's records to a feed, "
                                 "or 'mirror' a feed into a local segment.",
                           "bridge.<mode>")
    parser.add_argument("mode", choices=MODES,
                        help="publish: local segment -> NATS; mirror: NATS -> local segment")
    parser.add_argument("--feed", metavar="NAME", default=None,
                        help="the feed's name on NATS (default: bridge.feed, else the "
                             "origin segment's name)")
    return parser


async def _amain(args: argparse.Namespace) -> int:
    args.metrics_section = f"bridge.{args.mode}"  # --metrics-port/--no-metrics: this mode's
    config = config_from_args(args)
    assert config.bridge is not None
    setup_logging(f"{PROG}-{args.mode}", log_level(args, config))
    shm.check_platform()
    mode = args.mode
    segment = config.segment.name
    feed = feed_of(config.bridge, segment, args.feed)
    metrics = BridgeMetrics(mode, {"feed": feed.name, "segment": segment,
                                   "transport": config.bridge.transport})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(quiet_nats_client_tasks)
    with StopFlag(ignore_sighup=True) as flag, Notifier() as notifier:
        loop.add_reader(flag.fileno(), stop.set)
        mcfg = config.bridge.publish.metrics if mode == "publish" else \
            config.bridge.mirror.metrics
        daemon: PublishBridge | Mirror | None = None
        try:
            if mcfg.enabled:
                log.info("metrics on %s", metrics.serve(mcfg.address, mcfg.port))
            log.info("tradingd %s bridge %s starting: segment %s, feed %s (stream %s), "
                     "NATS %s, %s, PID %d", __version__, mode, segment, feed.name, feed.stream,
                     ", ".join(config.bridge.nats.servers), config.bridge.transport,
                     os.getpid())
            if mode == "publish":
                daemon = PublishBridge(config, segment=segment, feed=feed, notifier=notifier,
                                       stop=stop, metrics=metrics)
            else:
                daemon = Mirror(config, segment=segment, feed=feed, notifier=notifier,
                                stop=stop, metrics=metrics)
            notifier.ready(f"starting: {mode} {segment} <-> {feed.records_subject}")
            await daemon.run()
            log.info("stopping (%s): %s", flag.reason, daemon.status_text())
            notifier.stopping("stopping")
        finally:
            loop.remove_reader(flag.fileno())
            if isinstance(daemon, PublishBridge):
                daemon.follower.close()
            metrics.close()
    return 0


def main(argv: list[str] | None = None) -> NoReturn:
    """Console script ``tradingd-bridge``."""
    args = build_parser().parse_args(argv)
    run_main(lambda: asyncio.run(_amain(args)), PROG)


if __name__ == "__main__":
    main()
