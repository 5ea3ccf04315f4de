"""tradingd-exec: order management over shared memory, simulated against the replayed market.

Process plumbing around :class:`~tradingd.exec.service.ExecService`, as the other daemons
have it: one YAML config (``exec:`` section), ``--config``/``--segment``/``--journal``,
``--metrics-port PORT``/``--no-metrics`` (overriding ``exec.metrics``);
``READY=1`` once the journal is replayed and the loop runs (waiting for the producer counts
as running), ``STATUS=`` (clients, open orders, fills), ``WATCHDOG=1`` from the main loop,
``STOPPING=1`` and exit 0 on SIGTERM/SIGINT. Exit 73 if another exec holds the journal.
"""

from __future__ import annotations

import logging

from tradingd.daemon.cli import config_from_args, daemon_parser, log_level, run_main
from tradingd.daemon.logs import setup_logging
from tradingd.daemon.metrics_http import MetricsServer
from tradingd.daemon.notify import Notifier
from tradingd.daemon.signals import StopFlag
from tradingd.exec.metrics import make_registry
from tradingd.exec.service import ExecService
from tradingd.segment import shm

PROG = "tradingd-exec"
log = logging.getLogger("tradingd.exec.daemon")


def _run() -> int:
    parser = daemon_parser(PROG, "Order management: take orders from clients' shared-memory "
                                 "rings, fill them against the replayed market, report back.",
                           "exec")
    parser.add_argument("--journal", metavar="PATH", default=None,
                        help="the input journal, overriding exec.journal")
    args = parser.parse_args()
    config = config_from_args(args)
    setup_logging(PROG, log_level(args, config))
    shm.check_platform()
    x = config.exec
    assert x is not None
    with StopFlag(ignore_sighup=True) as stop, Notifier() as notifier:
        service = ExecService(config, stop=stop, journal_path=args.journal, notifier=notifier)
        server = None
        try:
            if x.metrics.enabled:
                server = MetricsServer(make_registry(service), x.metrics.address,
                                       x.metrics.port, "exec.metrics.port")
                log.info("metrics on %s", server.url)
            log.info("exec starting: segment %s, journal %s (%d inputs replayed), wait %s, "
                     "budget %d per ring per round, participation %g", config.segment.name,
                     service.journal_path, service.replayed, x.wait.strategy, x.poll_budget,
                     x.participation)
            service.round()
            notifier.ready(service.status_text())
            service.run()
            log.info("stopping (%s): %s", stop.reason, service.status_text())
            notifier.stopping("stopping")
        finally:
            service.close()
            if server is not None:
                server.close()
    return 0


def main() -> None:
    """Console script ``tradingd-exec``."""
    run_main(_run, PROG)


if __name__ == "__main__":
    main()
