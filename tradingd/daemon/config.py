"""The configuration file shared by both daemons and the tools: schema, loading, values.

One YAML file (``config/tradingd.yaml`` in a checkout, ``/etc/tradingd/tradingd.yaml``
installed; search order in :mod:`tradingd.daemon.cli`). :data:`SCHEMA` declares every
key, its rule and its default, once; :func:`load_config` validates a file against it and
returns frozen dataclasses. Every problem is reported, all at once, as
``FILE:LINE: key.path: expected ..., got ...`` in one :class:`ConfigError` (exit 78):
unknown keys, duplicate keys, wrong types and ranges, and rules that span keys (more
symbols than ``segment.symbol_capacity``, an unknown ``format``, two daemons on one port).

Relative paths (``producer.data_dir``) are relative to the directory of the config file,
so a config works wherever the checkout or the package is.
"""

from __future__ import annotations

import difflib
import grp
import os
import pwd
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from tradingd import constants as C
from tradingd.daemon.logs import LEVELS
from tradingd.daemon.schema import (
    INVALID,
    REQUIRED,
    Bool,
    Context,
    DictOf,
    FileMode,
    Int,
    IPAddress,
    ListOf,
    Map,
    Nullable,
    Number,
    OneOf,
    Problem,
    Str,
    format_path,
    parse_yaml,
)
from tradingd.errors import ConfigError
from tradingd.timezones import EXPECTED as ZONE_EXPECTED
from tradingd.timezones import zone_problem

# -- rules shared with the command line -------------------------------------------------

SEGMENT_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,200}")
SEGMENT_NAME_EXPECTED = "a name of 1 to 200 characters from A-Z a-z 0-9 . _ - (no slash)"
#: Symbol names fit the segment's ``char[24]`` (NUL-padded): printable ASCII, no spaces.
SYMBOL_NAME_RE = r"[!-~]{1,23}"
#: Format names known without a ``producer.formats`` entry; ``auto`` guesses the format
#: from the file at each load (tradingd.producer.sniff), refusing where it cannot decide.
BUILTIN_FORMATS = ("yahoo", "pandas_index", "auto")
ASSET_CLASSES = ("stock", "crypto", "forex")
TIMESTAMP_UNITS = ("unix_s", "unix_ms", "unix_us", "unix_ns")


def check_segment_name(name: str) -> str | None:
    """Why ``name`` cannot name a segment (``/dev/shm/NAME``), or None if it can."""
    if not SEGMENT_NAME_RE.fullmatch(name):
        return f"expected {SEGMENT_NAME_EXPECTED}"
    if set(name) == {"."}:
        return "'.' and '..' are directories, not segment names"
    return None


def _segment_name_check(name: str) -> str | None:
    problem = check_segment_name(name)
    return problem if problem and not problem.startswith("expected") else None


def _timestamp_format_check(fmt: str) -> str | None:
    """A strptime format must round-trip a date; else it is not one (or a unit)."""
    if fmt in TIMESTAMP_UNITS:
        return None
    if "%" not in fmt:
        return (f"expected a strptime format (e.g. '%Y-%m-%d %H:%M:%S') or one of "
                f"{', '.join(TIMESTAMP_UNITS)}")
    sample = datetime(2001, 2, 3, 4, 5, 6, 7000)
    try:
        datetime.strptime(sample.strftime(fmt), fmt)
    except ValueError as exc:
        return f"not a valid strptime format ({exc})"
    return None


def _time_format_check(fmt: str) -> str | None:
    """A time-of-day strptime format: round-trips a time and holds no date directive."""
    if "%" not in fmt:
        return "expected a strptime format of the time of day, such as '%H:%M:%S' or '%H%M%S'"
    sample = datetime(2001, 2, 3, 4, 5, 6, 7000)
    try:
        back = datetime.strptime(sample.strftime(fmt), fmt)
    except ValueError as exc:
        return f"not a valid strptime format ({exc})"
    if back.date() != datetime(1900, 1, 1).date():
        return "only time-of-day directives (%H %I %M %S %f %p): the date is timestamp_format's"
    return None


# -- the schema: every key, its rule and its default, in one place -------------------------

_METRICS_FIELDS = {
    "enabled": Bool(True, doc="serve Prometheus metrics over HTTP"),
    "address": IPAddress(C.DEFAULT_METRICS_ADDRESS, doc="address to bind (an IP, not a host name)"),
    "port": Int(REQUIRED, minimum=0, maximum=65535, doc="TCP port; 0 picks a free one"),
}


def _metrics(port: int) -> Map:
    fields = dict(_METRICS_FIELDS)
    fields["port"] = Int(port, minimum=0, maximum=65535, doc="TCP port; 0 picks a free one")
    return Map(fields, doc="the Prometheus metrics endpoint")


_COLUMN = OneOf(Str(pattern=r".+", expected="a column name"),
                Int(minimum=0, maximum=9999), doc="a header name, or a 0-based index")

FORMAT = Map({
    "delimiter": Str(",", pattern=r"[^\r\n\"]", expected="a single character such as , or ;",
                     doc="field separator"),
    "header": Bool(True, doc="the first line names the columns"),
    "columns": Map({
        "timestamp": OneOf(*_COLUMN.options, default="Date"),
        "open": OneOf(*_COLUMN.options, default="Open"),
        "high": OneOf(*_COLUMN.options, default="High"),
        "low": OneOf(*_COLUMN.options, default="Low"),
        "close": OneOf(*_COLUMN.options, default="Close"),
        "volume": Nullable(OneOf(*_COLUMN.options), default="Volume",
                           doc="null: the data has no volume (0 is published)"),
        "time": Nullable(OneOf(*_COLUMN.options), default=None,
                         doc="the time of day's own column (timestamp then holds the date)"),
    }, doc="where each field is: a header name or a 0-based column index"),
    "timestamp_format": Nullable(Str(check=_timestamp_format_check),
                                 doc="strptime format, a unix_* unit, or null for ISO 8601"),
    "time_format": Nullable(Str(check=_time_format_check),
                            doc="strptime format of columns.time, or null for HH:MM[:SS[.f]]"),
    "timezone": Str("UTC", pattern=r".+", expected=ZONE_EXPECTED, check=zone_problem,
                    doc="zone of timestamps that carry no offset"),
    "skip_rows": Int(0, minimum=0, maximum=10_000,
                     doc="lines before the header (a vendor's banner)"),
    "thousands": Nullable(Str(choices=(",", ".", " ", "'", "_")),
                          doc="thousands separator in numbers (46,629.3), or null"),
    "decimal": Str(".", choices=(".", ","), doc="decimal mark"),
    "volume_suffixes": Bool(False, doc="volumes may end in K, M or B (131.48K)"),
}, doc="a CSV layout (fields of tradingd.producer.loader.CsvFormat)")

SYMBOL = Map({
    "name": Str(pattern=SYMBOL_NAME_RE,
                expected="1 to 23 printable ASCII characters without spaces"),
    "file": Str(pattern=r".+", expected="a file path (relative to producer.data_dir)"),
    "asset_class": Str(choices=ASSET_CLASSES),
    "format": Str(pattern=r"[A-Za-z0-9_-]{1,64}",
                  expected=f"{' or '.join(BUILTIN_FORMATS)} or a key of producer.formats"),
    "currency": Str("USD", pattern=r"[A-Za-z0-9]{1,7}", expected="1 to 7 letters or digits"),
    "price_decimals": Int(2, minimum=0, maximum=12),
})

_DEFAULT_SYMBOLS = [
    {"name": "AAPL", "file": "stocks/AAPL.csv", "asset_class": "stock", "format": "yahoo",
     "currency": "USD", "price_decimals": 2},
    {"name": "TSLA", "file": "stocks/TSLA.csv", "asset_class": "stock", "format": "yahoo"},
    {"name": "BTC-USD", "file": "crypto/BTC-USD.csv", "asset_class": "crypto",
     "format": "yahoo"},
    {"name": "EURUSD", "file": "forex/EURUSD.csv", "asset_class": "forex",
     "format": "pandas_index", "currency": "USD", "price_decimals": 5},
]

SCHEMA = Map({
    "segment": Map({
        "name": Str(C.DEFAULT_SEGMENT_NAME, pattern=SEGMENT_NAME_RE.pattern,
                    expected=SEGMENT_NAME_EXPECTED, check=_segment_name_check,
                    doc="/dev/shm/NAME; --segment overrides it"),
        "mode": FileMode("0640", allowed=0o644, required=0o600,
                         doc="permissions of the segment file (group/other write refused: "
                             "the producer is the only writer)"),
        "group": Nullable(Str(pattern=r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?",
                              expected="a group name")),
        "symbol_capacity": Int(64, minimum=1, maximum=4096),
        "ring_capacity": Int(65536, minimum=64, maximum=2**26, power_of_two=True),
        "heartbeat_interval": Number(0.1, minimum=0.01, maximum=10.0, unit="seconds"),
        "owner": Nullable(OneOf(Str(pattern=r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?",
                                    expected="a user name"), Int(minimum=0, maximum=2**32 - 2)),
                          doc="account the segment file must belong to (readers refuse any "
                              "other); null: the reader's own"),
        "squat_wait": Number(15.0, minimum=0.0, maximum=50.0, unit="seconds",
                             doc="how long the producer waits for another account's file at "
                                 "the name to go away before exiting 75 (restarted)"),
    }),
    "logging": Map({
        "level": Str("info", choices=LEVELS, lower=True),
    }),
    "producer": Map({
        "data_dir": Str("../market_data", pattern=r".+", expected="a directory path",
                        doc="relative to the config file's directory"),
        "strict": Bool(False, doc="refuse to start on any bad row"),
        "max_reject_share": Number(0.5, minimum=0.0, maximum=1.0,
                                   doc="refuse to start (exit 65) when more of a file's rows "
                                       "than this are rejected, even with strict off"),
        "cache_dir": Nullable(Str(pattern=r".+", expected="a directory path"),
                              doc="load cache directory (relative to this file); null: "
                                  "$CACHE_DIRECTORY (systemd CacheDirectory=) or no cache"),
        "symbols": ListOf(SYMBOL, _DEFAULT_SYMBOLS, min_items=1),
        "formats": DictOf(Str(pattern=r"[A-Za-z0-9_-]{1,64}",
                              expected="a format name of letters, digits, _ and -"),
                          FORMAT, {}),
        "replay": Map({
            "mode": Str("paced", choices=("paced", "fast")),
            "speed": Number(86400.0, minimum=0.0, exclusive_minimum=True,
                            unit="data seconds per second"),
            "at_end": Str("loop", choices=("loop", "stop")),
            "align": Str("start", choices=("none", "start")),
            "batch_size": Int(256, minimum=1, maximum=65536),
            "fast_batch_size": Int(65536, minimum=1, maximum=1 << 24),
            "flow_control": Str("none", choices=("none", "slowest"),
                                doc="fast replay: slowest = never lap the slowest live "
                                    "gated consumer (backtests); none = a feed (never waits)"),
            "flow_control_timeout": Number(2.0, minimum=0.01, maximum=3600.0,
                                           unit="seconds",
                                           doc="a gated consumer holding the replay without "
                                               "progress this long is dropped from the gate"),
            "flow_control_wait_for": Int(0, minimum=0, maximum=32,
                                         doc="with flow control, wait for this many gated "
                                             "consumers before the first record"),
            "flow_control_lead": Int(131072, minimum=0, maximum=1 << 31,
                                     doc="most records the replay runs ahead of its slowest "
                                         "gated consumer (0: the whole ring)"),
        }),
        "metrics": _metrics(C.DEFAULT_PRODUCER_METRICS_PORT),
    }),
    "consumer": Map({
        "wait": Map({
            "strategy": Str("poll", choices=("spin", "poll", "block")),
            "poll_interval": Number(0.001, minimum=0.00001, maximum=1.0, unit="seconds"),
        }),
        "heartbeat_timeout_factor": Number(5.0, minimum=2.0, maximum=1000.0,
                                           unit="heartbeat intervals"),
        "data_stale_after": Number(5.0, minimum=0.0, exclusive_minimum=True,
                                   unit="seconds"),
        "attach_retry_interval": Number(0.25, minimum=0.01, maximum=60.0, unit="seconds"),
        "analysis": Map({
            "window": Int(512, minimum=2, maximum=1_000_000),
        }),
        "report_interval": Number(10.0, minimum=0.0, exclusive_minimum=True,
                                  unit="seconds"),
        "metrics": _metrics(C.DEFAULT_CONSUMER_METRICS_PORT),
        "flow_control": Bool(True, doc="join the producer's flow-control gate when it runs "
                                       "one (replay.flow_control: slowest)"),
    }),
    # tradingd-bridge (docs/multi-host.md): a segment over NATS JetStream to other hosts
    "bridge": Map({
        "nats": Map({
            "servers": ListOf(Str(pattern=r"(nats|tls)://[^\s/]+",
                                  expected="a URL nats://HOST:PORT or tls://HOST:PORT"),
                              [C.DEFAULT_NATS_URL], min_items=1),
            "credentials_file": Nullable(Str(pattern=r".+", expected="a file path"),
                                         doc="user=/password= or token= lines; null: "
                                             "$CREDENTIALS_DIRECTORY/nats if set, else none"),
            "tls": Map({
                "ca_file": Nullable(Str(pattern=r".+", expected="a file path")),
                "cert_file": Nullable(Str(pattern=r".+", expected="a file path")),
                "key_file": Nullable(Str(pattern=r".+", expected="a file path")),
            }, doc="used when the server offers TLS (or a tls:// URL)"),
            "connect_timeout": Number(2.0, minimum=0.1, maximum=60.0, unit="seconds"),
            "reconnect_wait_max": Number(5.0, minimum=0.05, maximum=300.0, unit="seconds",
                                         doc="backoff ceiling while NATS is unreachable"),
        }),
        "subject_prefix": Str(C.DEFAULT_BRIDGE_SUBJECT_PREFIX, pattern=r"[A-Za-z0-9_-]{1,32}",
                              expected="1 to 32 letters, digits, _ or -"),
        "feed": Nullable(Str(pattern=r"[A-Za-z0-9_-]{1,64}",
                             expected="1 to 64 letters, digits, _ or - (a subject token)"),
                         doc="the stream's name on NATS; null: the origin segment's name"),
        "transport": Str("jetstream", choices=("jetstream", "core"),
                         doc="core: no persistence, no replay (gaps counted)"),
        "stream": Map({
            "max_bytes": Int(1 << 30, minimum=1 << 20, maximum=1 << 50),
            "max_age": Number(3600.0, minimum=1.0, maximum=365 * 86400.0, unit="seconds"),
            "replicas": Int(1, minimum=1, maximum=5),
            "storage": Str("file", choices=("file", "memory")),
        }, doc="retention: what a mirror can recover after an outage"),
        "publish": Map({
            "batch_records": Int(1024, minimum=1, maximum=65536),
            "max_inflight_bytes": Int(8 << 20, minimum=1 << 16, maximum=1 << 30),
            "poll_interval": Number(0.001, minimum=0.00001, maximum=1.0, unit="seconds"),
            "state_interval": Number(1.0, minimum=0.05, maximum=60.0, unit="seconds"),
            "ack_timeout": Number(5.0, minimum=0.1, maximum=300.0, unit="seconds"),
            "metrics": _metrics(C.DEFAULT_BRIDGE_PUBLISH_METRICS_PORT),
        }),
        "mirror": Map({
            "upstream_timeout": Number(3.0, minimum=0.1, maximum=3600.0, unit="seconds",
                                       doc="silence after which the upstream counts as down"),
            "fetch_messages": Int(64, minimum=1, maximum=4096),
            "state_dir": Str(C.DEFAULT_BRIDGE_STATE_DIR, pattern=r".+",
                             expected="a directory path"),
            "start": Str("first", choices=("first", "new"),
                         doc="with no saved position: everything retained, or new only"),
            "metrics": _metrics(C.DEFAULT_BRIDGE_MIRROR_METRICS_PORT),
        }),
    }),
    "gateway": Map({
        "address": IPAddress(C.DEFAULT_GATEWAY_ADDRESS,
                             doc="address the WebSocket server binds (loopback by default)"),
        "port": Int(C.DEFAULT_GATEWAY_PORT, minimum=0, maximum=65535,
                    doc="WebSocket and page port; 0 picks a free one"),
        "max_connections": Int(256, minimum=1, maximum=100_000),
        "allowed_origins": ListOf(Str(pattern=r"\*|https?://[^/\s]+",
                                      expected="'*' or an origin such as http://host:port"),
                                  [], doc="browser Origins allowed besides the page's own"),
        "token_file": Nullable(Str(pattern=r".+", expected="a file path"),
                               doc="bearer token file; null: the systemd credential "
                                   "gateway-token if present, else no authentication"),
        "latest_max_rate": Number(10.0, minimum=0.0, exclusive_minimum=True, maximum=1000.0,
                                  unit="updates per second per symbol"),
        "snapshot_records": Int(100, minimum=0, maximum=10_000),
        "heartbeat_interval": Number(1.0, minimum=0.05, maximum=60.0, unit="seconds"),
        "send_buffer_limit": Int(1_048_576, minimum=4096, maximum=1 << 30,
                                 doc="bytes queued per client before it is conflated"),
        "slow_client_timeout": Number(5.0, minimum=0.0, exclusive_minimum=True,
                                      maximum=3600.0, unit="seconds"),
        "max_message_bytes": Int(65536, minimum=256, maximum=16 << 20),
        "max_subscriptions": Int(256, minimum=1, maximum=100_000),
        "message_rate": Number(50.0, minimum=0.0, exclusive_minimum=True,
                               unit="client messages per second"),
        "message_burst": Int(100, minimum=1, maximum=100_000),
        "max_records_per_frame": Int(2048, minimum=1, maximum=65536),
        "poll_interval": Number(0.001, minimum=0.0001, maximum=1.0, unit="seconds"),
        "heartbeat_timeout_factor": Number(5.0, minimum=2.0, maximum=1000.0,
                                           unit="heartbeat intervals"),
        "data_stale_after": Number(5.0, minimum=0.0, exclusive_minimum=True,
                                   unit="seconds"),
        "attach_retry_interval": Number(0.25, minimum=0.01, maximum=60.0, unit="seconds"),
        "metrics": _metrics(C.DEFAULT_GATEWAY_METRICS_PORT),
    }),
})


# -- exec: tradingd-exec, order management (issue 18) -----------------------------------

EXEC_SCHEMA = Map({
    "journal": Nullable(Str(pattern=r".+", expected="a file path"),
                        doc="the input journal; relative to the config file's directory; "
                            "null: $STATE_DIRECTORY/exec.journal under systemd, else "
                            "./tradingd-exec.journal; --journal overrides it"),
    "journal_fsync": Bool(False, doc="fsync the journal every polling round"),
    "wait": Map({
        "strategy": Str("poll", choices=("spin", "poll")),
        "poll_interval": Number(0.0001, minimum=0.000001, maximum=1.0, unit="seconds"),
    }),
    "poll_budget": Int(C.DEFAULT_EXEC_POLL_BUDGET, minimum=1, maximum=65536,
                       doc="most records taken from one client's order ring per round"),
    "discovery_interval": Number(0.1, minimum=0.005, maximum=60.0, unit="seconds"),
    "report_ring_capacity": Int(4096, minimum=64, maximum=2**20, power_of_two=True),
    "report_backlog": Int(65536, minimum=0, maximum=2**24,
                          doc="reports kept for a client whose report ring is full; "
                              "beyond this it is disconnected"),
    "mode": FileMode("0640", allowed=0o666, required=0o600,
                     doc="permissions of the report rings exec creates"),
    "participation": Number(0.1, minimum=0.0, exclusive_minimum=True, maximum=1.0,
                            unit="fraction of a bar's volume"),
    "risk": Map({
        "max_order_qty": Int(1_000_000, minimum=0, doc="0: no limit"),
        "max_open_orders": Int(1000, minimum=0, doc="per client; 0: no limit"),
        "max_notional": Number(10_000_000.0, minimum=0.0,
                               unit="price x quantity per client and symbol; 0: no limit"),
    }),
    "metrics": _metrics(C.DEFAULT_EXEC_METRICS_PORT),
})
SCHEMA.fields["exec"] = EXEC_SCHEMA


@dataclass(frozen=True)
class ExecRiskConfig:
    max_order_qty: int
    max_open_orders: int
    max_notional: float


@dataclass(frozen=True)
class ExecWaitConfig:
    strategy: str  # spin | poll
    poll_interval: float


@dataclass(frozen=True)
class ExecConfig:
    journal: Path | None  # absolute; None: the default location (see EXEC_SCHEMA)
    journal_fsync: bool
    wait: ExecWaitConfig
    poll_budget: int
    discovery_interval: float
    report_ring_capacity: int
    report_backlog: int
    mode: int
    participation: float
    risk: ExecRiskConfig
    metrics: MetricsConfig


def _build_exec(e: dict[str, Any], source: Path) -> ExecConfig:
    journal = (source.parent / e["journal"]).resolve() if e["journal"] else None
    return ExecConfig(journal=journal, journal_fsync=e["journal_fsync"],
                      wait=ExecWaitConfig(**e["wait"]), poll_budget=e["poll_budget"],
                      discovery_interval=e["discovery_interval"],
                      report_ring_capacity=e["report_ring_capacity"],
                      report_backlog=e["report_backlog"], mode=e["mode"],
                      participation=e["participation"], risk=ExecRiskConfig(**e["risk"]),
                      metrics=MetricsConfig(**e["metrics"]))


def _exec_cross_checks(v: dict[str, Any], ctx: Context) -> None:
    """exec.metrics must not share a port with the producer's or the consumer's."""
    em = _get(v, "exec", "metrics")
    if not (_valid(em) and _valid(*em.values())) or not em["enabled"] or em["port"] == 0:
        return
    for daemon in ("producer", "consumer"):
        m = _get(v, daemon, "metrics")
        if (_valid(m) and _valid(*m.values()) and m["enabled"]
                and (m["address"], m["port"]) == (em["address"], em["port"])):
            ctx.error(("exec", "metrics", "port"), f"{em['address']}:{em['port']} is also "
                      f"{daemon}.metrics: two daemons cannot share a port")


# -- the values the daemons get ---------------------------------------------------------


@dataclass(frozen=True)
class SegmentConfig:
    name: str
    mode: int  # permission bits, e.g. 0o640
    group: str | None  # None: the producer's own group
    symbol_capacity: int
    ring_capacity: int
    heartbeat_interval: float  # seconds
    owner: str | int | None = None  # None: the reader's own account
    squat_wait: float = 15.0  # seconds


@dataclass(frozen=True)
class LoggingConfig:
    level: str  # debug | info | warning | error


@dataclass(frozen=True)
class ColumnsConfig:
    """Where each field is: a header name or a 0-based index (volume may be absent)."""

    timestamp: str | int
    open: str | int
    high: str | int
    low: str | int
    close: str | int
    volume: str | int | None
    time: str | int | None = None  # the time of day's own column


@dataclass(frozen=True)
class FormatConfig:
    """A CSV layout from ``producer.formats`` (fields of ``tradingd.producer.loader.CsvFormat``)."""

    delimiter: str
    header: bool
    columns: ColumnsConfig
    timestamp_format: str | None  # strptime format, unix_s|ms|us|ns, or None: ISO 8601
    timezone: str  # IANA name or fixed offset (tradingd.timezones)
    skip_rows: int = 0
    time_format: str | None = None  # columns.time's format; None: HH:MM[:SS[.f]]
    thousands: str | None = None
    decimal: str = "."
    volume_suffixes: bool = False


@dataclass(frozen=True)
class SymbolConfig:
    name: str
    file: str  # as written in the config
    path: Path  # file resolved against producer.data_dir
    asset_class: str  # stock | crypto | forex
    format: str  # yahoo | pandas_index | a key of producer.formats
    currency: str
    price_decimals: int


@dataclass(frozen=True)
class ReplayConfig:
    mode: str  # paced | fast
    speed: float  # data seconds per wall-clock second (paced)
    at_end: str  # loop | stop
    align: str  # none (real history) | start (every symbol starts together)
    batch_size: int
    fast_batch_size: int = 65536  # records per publish in fast mode
    flow_control: str = "none"  # none (a feed) | slowest (never lap a gated consumer)
    flow_control_timeout: float = 2.0  # s without progress before a consumer is dropped
    flow_control_wait_for: int = 0  # gated consumers to wait for before the first record
    flow_control_lead: int = 131072  # most records ahead of the slowest gated consumer


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool
    address: str
    port: int  # 0: any free port


@dataclass(frozen=True)
class ProducerConfig:
    data_dir: Path  # absolute
    strict: bool
    symbols: tuple[SymbolConfig, ...]
    formats: Mapping[str, FormatConfig]  # read-only
    replay: ReplayConfig
    metrics: MetricsConfig
    max_reject_share: float = 0.5  # refuse a file with more of its rows rejected
    cache_dir: Path | None = None  # absolute; None: $CACHE_DIRECTORY or no cache


@dataclass(frozen=True)
class WaitConfig:
    strategy: str  # spin | poll | block
    poll_interval: float  # seconds


@dataclass(frozen=True)
class AnalysisConfig:
    window: int  # records per symbol


@dataclass(frozen=True)
class ConsumerConfig:
    wait: WaitConfig
    heartbeat_timeout_factor: float
    data_stale_after: float
    attach_retry_interval: float
    analysis: AnalysisConfig
    report_interval: float
    metrics: MetricsConfig
    flow_control: bool = True  # join the producer's flow-control gate when it runs one


@dataclass(frozen=True)
class NatsTlsConfig:
    ca_file: str | None
    cert_file: str | None
    key_file: str | None


@dataclass(frozen=True)
class NatsConfig:
    servers: tuple[str, ...]
    credentials_file: str | None
    tls: NatsTlsConfig
    connect_timeout: float
    reconnect_wait_max: float


@dataclass(frozen=True)
class StreamConfig:
    max_bytes: int
    max_age: float  # seconds
    replicas: int
    storage: str  # file | memory


@dataclass(frozen=True)
class BridgePublishConfig:
    batch_records: int
    max_inflight_bytes: int
    poll_interval: float
    state_interval: float
    ack_timeout: float
    metrics: MetricsConfig


@dataclass(frozen=True)
class GatewayConfig:
    """``gateway:``: tradingd-gateway's WebSocket server (docs/websocket-api.md)."""

    address: str
    port: int
    max_connections: int
    allowed_origins: tuple[str, ...]
    token_file: Path | None  # resolved against the config file's directory
    latest_max_rate: float  # Hz per symbol
    snapshot_records: int
    heartbeat_interval: float
    send_buffer_limit: int  # bytes
    slow_client_timeout: float
    max_message_bytes: int
    max_subscriptions: int
    message_rate: float
    message_burst: int
    max_records_per_frame: int
    poll_interval: float
    heartbeat_timeout_factor: float
    data_stale_after: float
    attach_retry_interval: float
    metrics: MetricsConfig


@dataclass(frozen=True)
class BridgeMirrorConfig:
    upstream_timeout: float
    fetch_messages: int
    state_dir: Path  # absolute
    start: str  # first | new
    metrics: MetricsConfig


@dataclass(frozen=True)
class BridgeConfig:
    nats: NatsConfig
    subject_prefix: str
    feed: str | None  # None: the segment's name
    transport: str  # jetstream | core
    stream: StreamConfig
    publish: BridgePublishConfig
    mirror: BridgeMirrorConfig


@dataclass(frozen=True)
class Config:
    segment: SegmentConfig
    logging: LoggingConfig
    producer: ProducerConfig
    consumer: ConsumerConfig
    gateway: GatewayConfig
    source_path: Path  # absolute path of the file read
    exec: ExecConfig | None = None  # tradingd-exec (always set by load_config)
    bridge: BridgeConfig | None = None  # None only for Configs built by hand

    def format_of(self, symbol: SymbolConfig) -> FormatConfig | str:
        """A symbol's custom layout, or the built-in format's name."""
        return self.producer.formats.get(symbol.format, symbol.format)


class ConfigInvalid(ConfigError):
    """The file was read but breaks the schema; ``problems`` lists every problem."""

    def __init__(self, source: Path, problems: list[Problem]) -> None:
        self.source = source
        self.problems = sorted(problems, key=lambda p: (p.line or 0, format_path(p.path)))
        lines = [p.format(str(source)) for p in self.problems]
        if len(lines) == 1:
            message = f"invalid configuration: {lines[0]}"
        else:
            message = (f"invalid configuration {source} ({len(lines)} problems):\n  "
                       + "\n  ".join(lines))
        super().__init__(message)


# -- loading ----------------------------------------------------------------------------


def load_config(path: str | os.PathLike[str], *,
                segment_override: str | None = None) -> Config:
    """Read, validate and return the configuration in ``path``.

    ``segment_override`` (``--segment``) replaces ``segment.name``. Raises ConfigError
    (exit 78) for a missing or unreadable file, text that is not YAML or not a mapping,
    and every schema problem at once (:class:`ConfigInvalid`).
    """
    source = Path(os.path.abspath(path))
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"configuration file {source} does not exist (give another "
                          f"with --config or TRADINGD_CONFIG)") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"configuration file {source} is not UTF-8 text "
                          f"(byte offset {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {source}: "
                          f"{exc.strerror or exc}") from None
    return parse_config(text, source, segment_override=segment_override)


def parse_config(text: str, source: Path, *, segment_override: str | None = None) -> Config:
    """Validate YAML ``text`` read from ``source`` (which anchors relative paths)."""
    try:
        parsed = parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else str(source)
        what = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {what}") from None
    data = {} if parsed.data is None else parsed.data  # an empty file: all defaults
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections (segment, logging, "
                          f"producer, consumer) at the top level, got "
                          f"{type(data).__name__}")
    ctx = Context(parsed.lines, list(parsed.problems))
    values = SCHEMA.validate(data, (), ctx)
    if segment_override is not None:
        problem = check_segment_name(segment_override)
        if problem:
            ctx.problems.append(Problem(("--segment",), f"{problem}, got {segment_override!r}"))
        elif isinstance(values["segment"], dict):
            values["segment"]["name"] = segment_override
    _cross_checks(values, ctx)
    _exec_cross_checks(values, ctx)
    if ctx.problems:
        raise ConfigInvalid(source, ctx.problems)
    return _build(values, source)


def _valid(*values: Any) -> bool:
    return all(v is not INVALID for v in values)


def _get(values: Any, *keys: str) -> Any:
    """``values[k1][k2]...``, or INVALID if any level is (a whole section may be)."""
    for key in keys:
        if values is INVALID:
            return INVALID
        values = values[key]
    return values


def _cross_checks(v: dict[str, Any], ctx: Context) -> None:
    """Rules spanning several keys, checked wherever the keys involved are valid."""
    symbols, formats = _get(v, "producer", "symbols"), _get(v, "producer", "formats")
    capacity = _get(v, "segment", "symbol_capacity")
    if _valid(symbols, capacity) and len(symbols) > capacity:
        ctx.error(("producer", "symbols"),
                  f"{len(symbols)} symbols do not fit segment.symbol_capacity = {capacity}")
    first: dict[str, int] = {}
    for i, sym in enumerate(symbols if _valid(symbols) else ()):
        if not _valid(sym):
            continue
        name, fmt = sym["name"], sym["format"]
        if _valid(name) and name in first:
            ctx.error(("producer", "symbols", i, "name"),
                      f"duplicate symbol {name!r} (also producer.symbols[{first[name]}])")
        if _valid(name):
            first.setdefault(name, i)
        if _valid(fmt, formats) and fmt not in BUILTIN_FORMATS and fmt not in formats:
            known = [*BUILTIN_FORMATS, *formats]
            close = difflib.get_close_matches(fmt, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            ctx.error(("producer", "symbols", i, "format"),
                      f"expected {' or '.join(known)} (built-in, or a key of "
                      f"producer.formats), got {fmt!r}{hint}")
    for name, fmt in (formats.items() if _valid(formats) else ()):
        path = ("producer", "formats", name)
        if name in BUILTIN_FORMATS:
            ctx.error(path, "this is a built-in format's name: choose another")
        if (_valid(fmt) and _valid(fmt["thousands"], fmt["decimal"])
                and fmt["thousands"] is not None and fmt["thousands"] == fmt["decimal"]):
            ctx.error((*path, "thousands"),
                      f"thousands and decimal are both {fmt['decimal']!r}")
        if not _valid(fmt) or fmt["header"] is not False or not _valid(fmt["columns"]):
            continue
        named = [f"{col}: {where!r}" for col, where in fmt["columns"].items()
                 if isinstance(where, str)]
        if named:
            ctx.error((*path, "columns"),
                      "header is false, so every column must be a 0-based index; "
                      f"these are header names (given or defaulted): {', '.join(named)}")
    _gateway_port_checks(v, ctx)
    pm, cm = _get(v, "producer", "metrics"), _get(v, "consumer", "metrics")
    if not (_valid(pm, cm) and _valid(*pm.values(), *cm.values())):
        return
    if (pm["enabled"] and cm["enabled"] and pm["port"] != 0
            and (pm["address"], pm["port"]) == (cm["address"], cm["port"])):
        ctx.error(("consumer", "metrics", "port"),
                  f"{cm['address']}:{cm['port']} is also producer.metrics: the two daemons "
                  f"cannot share a port")


def _gateway_port_checks(v: dict[str, Any], ctx: Context) -> None:
    """The gateway's two listeners must not collide with each other or the daemons' metrics."""
    g = _get(v, "gateway")
    if not _valid(g) or not _valid(g["address"], g["port"], g["metrics"]):
        return
    taken: list[tuple[str, tuple[str, int]]] = [("gateway.port", (g["address"], g["port"]))]
    for section in ("producer", "consumer", "gateway"):
        m = _get(v, section, "metrics")
        if _valid(m) and _valid(*m.values()) and m["enabled"]:
            taken.append((f"{section}.metrics.port", (m["address"], m["port"])))
    seen: dict[tuple[str, int], str] = {}
    for key, where in taken:
        if where[1] == 0:
            continue
        if where in seen and key.startswith("gateway"):
            ctx.error(tuple(key.split(".")), f"{where[0]}:{where[1]} is also {seen[where]}: "
                                             f"two listeners cannot share a port")
        elif where in seen and seen[where].startswith("gateway"):
            ctx.error(tuple(seen[where].split(".")), f"{where[0]}:{where[1]} is also {key}: "
                                                     f"two listeners cannot share a port")
        seen.setdefault(where, key)


def _build(v: dict[str, Any], source: Path) -> Config:
    p, c = v["producer"], v["consumer"]
    data_dir = (source.parent / p["data_dir"]).resolve()
    formats = {
        name: FormatConfig(**{**f, "columns": ColumnsConfig(**f["columns"])})
        for name, f in p["formats"].items()
    }
    producer = ProducerConfig(
        data_dir=data_dir,
        strict=p["strict"],
        symbols=tuple(SymbolConfig(**s, path=data_dir / s["file"]) for s in p["symbols"]),
        formats=MappingProxyType(formats),
        replay=ReplayConfig(**p["replay"]),
        metrics=MetricsConfig(**p["metrics"]),
        max_reject_share=p["max_reject_share"],
        cache_dir=None if p["cache_dir"] is None else (source.parent / p["cache_dir"]).resolve(),
    )
    consumer = ConsumerConfig(
        wait=WaitConfig(**c["wait"]),
        heartbeat_timeout_factor=c["heartbeat_timeout_factor"],
        data_stale_after=c["data_stale_after"],
        attach_retry_interval=c["attach_retry_interval"],
        analysis=AnalysisConfig(**c["analysis"]),
        report_interval=c["report_interval"],
        flow_control=c["flow_control"],
        metrics=MetricsConfig(**c["metrics"]),
    )
    g = v["gateway"]
    token = g["token_file"]
    gateway = GatewayConfig(**{
        **g, "allowed_origins": tuple(g["allowed_origins"]),
        "token_file": None if token is None else (source.parent / token).resolve(),
        "metrics": MetricsConfig(**g["metrics"])})
    return Config(segment=SegmentConfig(**v["segment"]), logging=LoggingConfig(**v["logging"]),
                  producer=producer, consumer=consumer, source_path=source, gateway=gateway,
                  exec=_build_exec(v["exec"], source),
                  bridge=_build_bridge(v["bridge"], source))


def _build_bridge(b: dict[str, Any], source: Path) -> BridgeConfig:
    n, p, m = b["nats"], b["publish"], b["mirror"]

    def rel(path: str | None) -> str | None:
        return None if path is None else str((source.parent / path).resolve())

    tls = NatsTlsConfig(**{k: rel(v) for k, v in n["tls"].items()})
    return BridgeConfig(
        nats=NatsConfig(servers=tuple(n["servers"]), credentials_file=rel(n["credentials_file"]),
                        tls=tls, connect_timeout=n["connect_timeout"],
                        reconnect_wait_max=n["reconnect_wait_max"]),
        subject_prefix=b["subject_prefix"], feed=b["feed"], transport=b["transport"],
        stream=StreamConfig(**b["stream"]),
        publish=BridgePublishConfig(**{**p, "metrics": MetricsConfig(**p["metrics"])}),
        mirror=BridgeMirrorConfig(**{**m, "state_dir": Path(rel(m["state_dir"]) or "."),
                                     "metrics": MetricsConfig(**m["metrics"])}))


def default_config(source: str | os.PathLike[str] = "config/tradingd.yaml") -> Config:
    """The schema's defaults, as if ``source`` were an empty file (for tests and tools)."""
    return parse_config("", Path(os.path.abspath(source)))


def resolve_group(config: Config) -> int | None:
    """The gid of ``segment.group`` (None: the producer's own); ConfigError if unknown."""
    name = config.segment.group
    if name is None:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ConfigError(f"{config.source_path}: segment.group: no group named {name!r} "
                          f"on this machine (create it, or set group: null)") from None


def resolve_owner(config: Config) -> int:
    """The uid ``segment.owner`` names (None: this process's euid); ConfigError if unknown."""
    owner = config.segment.owner
    if owner is None:
        return os.geteuid()
    if isinstance(owner, int):
        return owner
    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise ConfigError(f"{config.source_path}: segment.owner: no user named {owner!r} on "
                          f"this machine (the producer's account, e.g. tradingd; or null)"
                          ) from None
