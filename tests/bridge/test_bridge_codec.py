"""The bridge's wire format, credentials file, config section, units and docs (no NATS)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tradingd import constants as C
from tradingd.bridge import codec
from tradingd.bridge.connection import Credentials, credentials_path, load_credentials
from tradingd.bridge.feed import Feed, feed_of
from tradingd.daemon.config import ConfigInvalid, default_config, parse_config
from tradingd.errors import ConfigError
from tradingd.segment import layout as L
from tradingd.segment.model import SymbolInfo

REPO = Path(__file__).resolve().parents[2]
UNITS = ("tradingd-bridge-publish.service", "tradingd-bridge-mirror.service")


def ring(n: int, start: float = 100.0) -> np.ndarray:
    r = np.zeros(n, L.RECORD_DTYPE)
    r["seq_lo"] = np.arange(n)
    r["symbol_id"] = np.arange(n) % 3
    r["event_ns"] = 1_600_000_000 * 10**9 + np.arange(n) * 86_400 * 10**9
    r["publish_ns"] = 5_000_000 + np.arange(n) * 1000
    for i, f in enumerate(("open", "high", "low", "close")):
        r[f] = start + np.arange(n) * 0.25 + i
    r["volume"] = 2.0**40 + np.arange(n)  # above 2^32: f64 on the wire too
    return r


def test_records_round_trip() -> None:
    recs = ring(1000)
    payload = codec.encode_records(recs, generation=0xABCDEF, first_seq=4242,
                                   origin_cursor=5300, mono_ns=9_000_000, wall_ns=123,
                                   lapped_before=7)
    assert len(payload) == codec.BATCH_HEADER.size + 1000 * codec.WIRE_RECORD.itemsize
    assert codec.BATCH_HEADER.size == 64 and codec.WIRE_RECORD.itemsize == 60
    assert payload[0] == codec.VERSION and payload[1] == codec.KIND_RECORDS
    b = codec.decode_records(payload)
    assert (b.generation, b.first_seq, b.end_seq, b.origin_cursor, b.lapped_before) == \
        (0xABCDEF, 4242, 5242, 5300, 7)
    back = codec.to_ring_records(b.records)
    for f in ("symbol_id", "event_ns", "publish_ns", "open", "high", "low", "close", "volume"):
        assert np.array_equal(back[f], recs[f]), f


def test_state_round_trip() -> None:
    st = codec.UpstreamState("live", 77, 1234, "host-a", "tradingd",
                             (SymbolInfo("AAPL", "stock"), SymbolInfo("EURUSD", "forex", "USD",
                                                                      5, 3600, 9)),
                             64, 65536, 1, 2)
    assert codec.decode_state(codec.encode_state(st)) == st


@pytest.mark.parametrize(("payload", "reason"), [
    (b"", "shorter than the 2-byte"),
    (b"\x02\x01" + bytes(62), "wire format version 2 at offset 0"),
    (b"\x01\x07", "unknown message kind 7 at offset 1"),
    (b"\x01\x01" + bytes(10), "shorter than the 64-byte batch header"),
    (codec.encode_records(ring(3), generation=1, first_seq=0, origin_cursor=3, mono_ns=0,
                          wall_ns=0)[:-5], "says 3 records, but the"),
    (codec.encode_records(ring(2), generation=0, first_seq=0, origin_cursor=3, mono_ns=0,
                          wall_ns=0), "generation (offset 8) is 0"),
])
def test_records_that_do_not_decode(payload: bytes, reason: str) -> None:
    with pytest.raises(codec.DecodeError, match=re.escape(reason)):
        codec.decode_records(payload)


@pytest.mark.parametrize(("body", "reason"), [
    (b"not json", "not the expected JSON"),
    (b'{"state": "live"}', "not the expected JSON"),
    (codec.encode_state(codec.UpstreamState("live", 1, 0, "h", "s", (), 4, 64, 0, 0))[2:]
     .replace(b'"live"', b'"sleepy"'), "unknown upstream state 'sleepy'"),
])
def test_states_that_do_not_decode(body: bytes, reason: str) -> None:
    with pytest.raises(codec.DecodeError, match=re.escape(reason)):
        codec.decode_state(b"\x01\x02" + body)


def test_feed_names() -> None:
    bridge = default_config().bridge
    assert bridge is not None
    f = feed_of(bridge, "tradingd")
    assert (f.records_subject, f.state_subject, f.stream) == (
        "tradingd.tradingd.records", "tradingd.tradingd.state", "TRADINGD_TRADINGD")
    assert feed_of(bridge, "my.seg").name == "my_seg"  # a subject token has no dots
    assert feed_of(bridge, "x", "desk-a").stream == "TRADINGD_DESK-A"
    assert Feed("p", "f").all_subjects == "p.f.*"


def test_credentials_file(tmp_path: Path) -> None:
    p = tmp_path / "nats"
    p.write_text("# comment\nuser = alice\npassword=s3cr=t\n")
    c = load_credentials(str(p))
    assert (c.user, c.password, c.token) == ("alice", "s3cr=t", None)
    assert c.connect_options() == {"user": "alice", "password": "s3cr=t"}
    p.write_text("token=abc\n")
    assert load_credentials(str(p)).connect_options() == {"token": "abc"}
    assert load_credentials(None) == Credentials()
    p.write_text("user=a\nnkey=SU...\n")
    with pytest.raises(ConfigError, match=r"nats:2: expected user=, password= or token="):
        load_credentials(str(p))
    p.write_text("token=a\nuser=b\n")
    with pytest.raises(ConfigError, match="not both"):
        load_credentials(str(p))
    with pytest.raises(ConfigError, match="cannot read it"):
        load_credentials(str(tmp_path / "missing"))
    # LoadCredential=nats:... -> $CREDENTIALS_DIRECTORY/nats when none is configured
    bridge = default_config().bridge
    assert bridge is not None
    assert credentials_path(bridge.nats, {"CREDENTIALS_DIRECTORY": str(tmp_path)}) == str(p)
    assert credentials_path(bridge.nats, {}) is None


def test_bridge_config_section(tmp_path: Path) -> None:
    src = tmp_path / "t.yaml"
    cfg = parse_config("bridge:\n  feed: desk-a\n  nats:\n    servers: [tls://n1:4222]\n"
                       "    credentials_file: nats.cred\n  mirror:\n    state_dir: st\n", src)
    b = cfg.bridge
    assert b is not None and b.feed == "desk-a" and b.nats.servers == ("tls://n1:4222",)
    assert b.nats.credentials_file == str(tmp_path / "nats.cred")  # relative to the file
    assert b.mirror.state_dir == tmp_path / "st"
    assert b.publish.metrics.port == C.DEFAULT_BRIDGE_PUBLISH_METRICS_PORT == 9104
    assert b.mirror.metrics.port == C.DEFAULT_BRIDGE_MIRROR_METRICS_PORT == 9105
    with pytest.raises(ConfigInvalid) as bad:
        parse_config("bridge:\n  feed: a.b\n  transport: carrier-pigeon\n  nats:\n"
                     "    servers: [http://x]\n  mirror:\n    surprise: 1\n", src)
    text = str(bad.value)
    for where in ("t.yaml:2: bridge.feed", "t.yaml:3: bridge.transport",
                  "bridge.nats.servers[0]", "t.yaml:7: bridge.mirror.surprise"):
        assert where in text, text


def test_exit_code_85_is_permanent() -> None:
    assert C.EXIT_NATS_AUTH == 85 and 85 in C.PERMANENT_EXIT_CODES


@pytest.mark.parametrize("unit", UNITS)
def test_bridge_units(unit: str, tmp_path: Path) -> None:
    """RestartPreventExitStatus= is the permanent codes, exposure <= 1.5, verify is clean."""
    text = (REPO / "systemd" / unit).read_text()
    codes = re.search(r"^RestartPreventExitStatus=(.*)$", text, re.M)
    assert codes and sorted(map(int, codes.group(1).split())) == \
        sorted(C.PERMANENT_EXIT_CODES)
    assert "LoadCredential=nats:/etc/tradingd/nats.cred" in text
    assert re.search(r"^IPAddressDeny=any$", text, re.M)
    assert re.search(r"^IPAddressAllow=localhost$", text, re.M)  # install.sh adds NATS_ALLOW
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    res = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                          str(REPO / "systemd" / unit)], capture_output=True, text=True,
                         timeout=60)
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", res.stdout + res.stderr)
    assert score and float(score.group(1)) <= 1.5, res.stdout
    import sys
    rendered = tmp_path / unit
    rendered.write_text(text.replace("/opt/tradingd", str(Path(sys.executable).parents[1])))
    res = subprocess.run(["systemd-analyze", "verify", str(rendered)], capture_output=True,
                         text=True, timeout=60)
    problems = [line for line in (res.stdout + res.stderr).splitlines()
                if unit in line or "tradingd" in line]
    assert not problems, res.stdout + res.stderr


def test_multi_host_doc_has_the_wire_tables_and_metrics() -> None:
    """docs/multi-host.md shows the generated byte tables and every metric name."""
    doc = (REPO / "docs" / "multi-host.md").read_text()
    assert codec.format_table() in doc, "regenerate: python -m tradingd.bridge.codec"
    from tradingd.bridge.metrics import BridgeMetrics
    names = {m.name for m in BridgeMetrics("publish", process=False).registry.collect()}
    for name in names:
        assert f"`{name}" in doc, name
