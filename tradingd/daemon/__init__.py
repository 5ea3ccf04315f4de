"""Daemon plumbing shared by the producer, the consumer and the tools.

Nothing here knows about market data or segments: readiness and watchdog notifications
to systemd (:mod:`.notify`), logging with journald priorities (:mod:`.logs`), stopping on
SIGTERM/SIGINT (:mod:`.signals`) and the common command line (:mod:`.cli`).
"""
