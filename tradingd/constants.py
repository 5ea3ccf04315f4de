"""Constants that more than one module needs: exit codes, default names and ports.

One place for each of these facts, so the daemons, the units'
``RestartPreventExitStatus=`` and the docs cannot drift apart.
"""

from __future__ import annotations

# Exit codes, from sysexits.h where one fits. The systemd units list the permanent ones
# in RestartPreventExitStatus= so a bad config does not restart-loop.
EXIT_OK = 0
EXIT_FAILURE = 1  # unexpected internal error (a bug): worth a restart
EXIT_USAGE = 64  # EX_USAGE: bad command line
EXIT_DATAERR = 65  # EX_DATAERR: bad rows in strict mode; a file mostly rejected or empty
EXIT_NOINPUT = 66  # EX_NOINPUT: a data file is missing or unreadable
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: the metrics address/port cannot be bound (retry)
EXIT_SEGMENT_PROBLEM = 2  # tradingd-inspect: segment missing/initialising/damaged (shown)
EXIT_SEGMENT_OWNED = 73  # EX_CANTCREAT: another live producer owns the segment
EXIT_PROTOCOL = 76  # EX_PROTOCOL: segment of another layout/version, or foreign
EXIT_NOPERM = 77  # EX_NOPERM: not allowed to create/open the segment
EXIT_CONFIG = 78  # EX_CONFIG: invalid configuration
EXIT_DATA_CHECK_REJECTS = 2  # tradingd-data check: the file loads, but rows were rejected
EXIT_NATS_AUTH = 85  # tradingd-bridge: the NATS server refused the credentials (or TLS)

#: Exit codes that a restart cannot fix (listed in the units' RestartPreventExitStatus=).
PERMANENT_EXIT_CODES = (EXIT_USAGE, EXIT_DATAERR, EXIT_NOINPUT, EXIT_SEGMENT_OWNED,
                        EXIT_PROTOCOL, EXIT_NOPERM, EXIT_CONFIG, EXIT_NATS_AUTH)

DEFAULT_SEGMENT_NAME = "tradingd"
SHM_DIR = "/dev/shm"
DEFAULT_CONFIG_PATH = "/etc/tradingd/tradingd.yaml"
DEFAULT_PRODUCER_METRICS_PORT = 9101
DEFAULT_CONSUMER_METRICS_PORT = 9102
DEFAULT_METRICS_ADDRESS = "127.0.0.1"

# tradingd-gateway (WebSocket API and live page): loopback only by default.
DEFAULT_GATEWAY_ADDRESS = "127.0.0.1"
DEFAULT_GATEWAY_PORT = 8765
DEFAULT_GATEWAY_METRICS_PORT = 9103
#: Name of the systemd credential (LoadCredential=) holding the gateway's bearer token.
GATEWAY_TOKEN_CREDENTIAL = "gateway-token"
# tradingd-exec (order management, issue 18)
DEFAULT_EXEC_METRICS_PORT = 9106
DEFAULT_EXEC_POLL_BUDGET = 64  # records per client order ring per polling round
DEFAULT_EXEC_JOURNAL_NAME = "exec.journal"  # in $STATE_DIRECTORY (systemd StateDirectory=)
DEFAULT_EXEC_LOCAL_JOURNAL = "tradingd-exec.journal"  # in the working directory otherwise
# Issue 12 (hostile and exhausted hosts): resources and squatting. Neither is permanent:
# a restart may succeed once the operator freed space or removed the squatter's file.
EXIT_OSERR = 71  # EX_OSERR: no room or memory for the segment (/dev/shm full, RLIMIT_*)
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL: the segment name is held by another account's file
# tradingd-bridge (issue 17): NATS JetStream bridge between hosts
DEFAULT_BRIDGE_PUBLISH_METRICS_PORT = 9104
DEFAULT_BRIDGE_MIRROR_METRICS_PORT = 9105
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_BRIDGE_SUBJECT_PREFIX = "tradingd"
DEFAULT_BRIDGE_STATE_DIR = "/var/lib/tradingd-bridge"
#: The credential name units pass with LoadCredential= ($CREDENTIALS_DIRECTORY/nats).
BRIDGE_CREDENTIAL_NAME = "nats"
