"""Every tradingd-inspect subcommand against a segment a real producer is writing.

One producer (module fixture) serves the read-only tests; text and ``--json`` forms are
both checked, the JSON parsed and compared with what the reader sees. ``dump`` lines are
compared with real ``hexdump -C`` output of the same bytes (a copy of the segment, so
the two reads see the same file).
"""

from __future__ import annotations

import json
import re
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from inspector_support import INSPECT, START_TIMEOUT, Producer, clean_env, inspect, inspect_cli

from tradingd import constants as C
from tradingd.inspector.dump import HEX_WIDTH
from tradingd.segment import cheader, shm
from tradingd.segment import layout as L
from tradingd.segment.reader import SegmentReader

pytestmark = pytest.mark.slow

BUNDLED = ["AAPL", "TSLA", "BTC-USD", "EURUSD"]


# ----------------------------------------------------------------------------- layout


def test_layout_table_is_the_layout() -> None:
    r = inspect("layout", "--json")
    assert r.code == 0
    data = r.json()
    rows = [{k: f[k] for k in ("struct", "field", "offset", "size", "type", "meaning")}
            for f in data["fields"]]
    assert rows == L.layout_table()
    regions = {f["struct"]: f["region"] for f in data["fields"]}
    assert regions == {"header": "header", "symbol": "symtab", "latest": "latest",
                       "record": "ring"}
    for s in data["structs"]:
        struct_ = next(x for x in L.STRUCTS if x.name == s["struct"])
        assert s["python_size"] == s["numpy_itemsize"] == s["c_size"] == struct_.size
        assert s["agree"] is True
    # every field's offset is pinned in the generated C header
    assert all(f["c_offset"] == f["offset"] for f in data["fields"])
    assert data["fingerprint"] == f"0x{L.LAYOUT_FINGERPRINT:016x}"

    text = inspect("layout").out
    assert "C and Python agree on every size and offset" in text
    ring_cursor = L.HEADER["ring_cursor"]
    assert re.search(rf"^header\s+header\s+{ring_cursor.offset}\s+8\s+u64\s+ring_cursor\s",
                     text, re.M)
    assert re.search(r"^record\s+ring\s+64\s+64\s+64\s+0\s+yes$", text, re.M)


def test_layout_c_header_is_the_generated_one() -> None:
    r = inspect_cli("layout", "--c-header")
    assert r.code == 0
    assert r.out == cheader.generate()


# ----------------------------------------------------------------------------- status


def test_status_text_and_json(live: Producer) -> None:
    r = inspect("status", "--segment", live.segment)
    assert r.code == 0, r.err
    first = r.out.splitlines()[0]
    assert re.fullmatch(
        rf"tradingd v1\.{L.LAYOUT_MINOR} segment /dev/shm/{live.segment}, "
        r"generation [0-9a-f]{8}…, "
        rf"pid {live.pid} \(alive\), state live, heartbeat \d+ [µm]?s ago, "
        r"[\d.]+[kMG]? records, ring 16384 x 64 B", first), first
    assert re.search(r"^\s+64\s+state\s+2 \(live\)\s+live$", r.out, re.M)
    assert "Consistency: ok" in r.out
    for sym in BUNDLED:
        assert re.search(rf"^\s*\d+\s+{re.escape(sym)}\s", r.out, re.M)

    data = inspect("status", "--segment", live.segment, "--json").json()
    with SegmentReader.attach(live.segment) as reader:
        h = reader.header()
        geo = reader.geometry
    assert data["ok"] is True and data["problem"] is None
    assert data["header"]["generation"] == h["generation"]
    assert data["header"]["producer_pid"] == live.pid
    assert data["state"] == "live"
    assert data["liveness"]["alive"] is True and data["liveness"]["healthy"] is True
    assert data["counters"]["ring_cursor"] <= reader_cursor(live.segment)
    assert [(x["region"], x["offset"], x["size"]) for x in data["regions"]] == [
        (name, off, size) for name, off, size, _s, _n in geo.regions()]
    assert [s["name"] for s in data["symbols"]] == BUNDLED
    assert data["consistency"] == []
    fields = {f["field"]: f for f in data["fields"]}
    assert fields["magic"]["offset"] == 0 and fields["magic"]["note"] == "ok"
    assert fields["wake_seq"]["offset"] == L.HEADER.offset("wake_seq")
    assert data["segment"]["file"]["size"] == geo.total_size


def reader_cursor(name: str) -> int:
    with SegmentReader.attach(name) as r:
        return r.cursor


# ----------------------------------------------------------------------------- latest, tail


def test_latest_text_and_json(live: Producer) -> None:
    deadline = time.monotonic() + 15  # the replay reaches BTC-USD's first bar (2019) in ~4 s
    while True:
        data = inspect("latest", "--segment", live.segment, "--json").json()
        rows = data["symbols"]
        if all(r["valid"] for r in rows) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [r["symbol"] for r in rows] == BUNDLED
    assert [r["asset_class"] for r in rows] == ["stock", "stock", "crypto", "forex"]
    assert all(r["valid"] and r["price"] > 0 for r in rows)
    assert all(r["seq"] < reader_cursor(live.segment) for r in rows)
    assert all(r["event_time"].endswith("Z") for r in rows)

    text = inspect("latest", "--segment", live.segment).out
    lines = text.splitlines()
    assert lines[0].split() == ["id", "symbol", "class", "price", "volume", "event",
                                "time", "(UTC)", "age", "seq"]
    eur = next(ln for ln in lines if " EURUSD " in ln)
    assert re.search(r"\s\d+\.\d{5}\s", eur), eur  # five decimals for forex
    aapl = next(ln for ln in lines if " AAPL " in ln)
    assert re.search(r"\s\d+\.\d{2}\s", aapl), aapl


def test_tail_text_and_json(live: Producer) -> None:
    data = inspect("tail", "-n", "7", "--segment", live.segment, "--json").json()
    recs = data["records"]
    assert len(recs) == 7
    seqs = [r["seq"] for r in recs]
    assert seqs == list(range(seqs[0], seqs[0] + 7))
    assert all(r["symbol"] in BUNDLED for r in recs)
    assert all(r["low"] <= r["close"] <= r["high"] for r in recs)
    with SegmentReader.attach(live.segment) as reader:
        sub = reader.subscribe("oldest")
        sub.position = seqs[0]
        got = sub.poll_batch(7)
        assert [float(x) for x in got["close"]] == [r["close"] for r in recs]
        assert [int(x) for x in got["event_ns"]] == [r["event_ns"] for r in recs]

    text = inspect("tail", "-n", "3", "--segment", live.segment).out.splitlines()
    assert text[0].split()[:3] == ["seq", "symbol", "event"]
    assert len(text) == 2 + 3


def test_tail_follow_prints_new_records(live: Producer) -> None:
    r = inspect_cli("tail", "--follow", "-n", "20", "--duration", "1", "--json",
                    "--segment", live.segment)
    assert r.code == 0, r.err
    events = [json.loads(line) for line in r.out.splitlines()]
    records = [e for e in events if "seq" in e]
    assert len(records) >= 20  # the 20 before, then what arrived (a busy machine: fewer)
    seqs = [e["seq"] for e in records]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # none skipped, none twice
    assert events[-1]["event"] == "end" and events[-1]["reason"] == "duration"
    assert events[-1]["records"] == len(records) and events[-1]["lost"] == 0

    text = inspect_cli("tail", "-f", "-n", "2", "--duration", "0.5",
                       "--segment", live.segment)
    assert text.code == 0
    assert re.search(r"# end of follow \(duration\): \d+ records shown, 0 lost", text.out)
    # the column header and its rule first, as plain tail prints them
    header, rule, first = text.out.splitlines()[:3]
    plain = inspect("tail", "-n", "1", "--segment", live.segment).out.splitlines()

    def columns(header: str, rule: str) -> list[str]:  # each name above its rule of dashes
        assert set(rule.replace(" ", "")) == {"-"}, rule
        return [header[m.start():m.end()].strip() for m in re.finditer(r"-+", rule)]

    # the same columns as plain tail, but "published" (always "just now" when following)
    assert columns(header, rule) == columns(plain[0], plain[1])[:-1]
    assert len(first) == len(rule)  # the records line up under it


# ----------------------------------------------------------------------------- dump


@pytest.fixture(scope="module")
def copy(live: Producer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The live segment's bytes, frozen: dump and hexdump must read the same file."""
    dst = tmp_path_factory.mktemp("dump") / "segment.bin"
    shutil.copyfile(shm.segment_path(live.segment), dst)
    return dst


def hexdump(path: Path, offset: int, length: int, *extra: str) -> list[str]:
    p = subprocess.run(["hexdump", "-C", *extra, "-s", str(offset), "-n", str(length),
                        str(path)], capture_output=True, text=True, check=True)
    return p.stdout.splitlines()


def expected_range(path: Path, args: list[str]) -> tuple[int, int]:
    """The bytes a dump should cover, from the reader's own geometry and the layout."""
    if "--offset" in args:
        return int(args[args.index("--offset") + 1], 0), int(args[args.index("--length") + 1], 0)
    with SegmentReader.open_file(str(path)) as r:
        geo = r.geometry
    if args[0] == "all":
        return 0, geo.total_size
    region = {name: (off, size, s) for name, off, size, s, _n in geo.regions()}[args[0]]
    if "--index" in args:
        i = int(args[args.index("--index") + 1])
        return region[0] + i * region[2].size, region[2].size
    return region[0], region[1]


@pytest.mark.parametrize("args", [
    ["header"], ["symtab"], ["latest"], ["ring"], ["all"], ["ring", "--index", "3"],
    ["symtab", "--index", "2"], ["--offset", "5", "--length", "40"],
    ["--offset", "0x100", "--length", "0x50"], ["latest", "-v"],
])
def test_dump_matches_hexdump(copy: Path, args: list[str]) -> None:
    offset, length = expected_range(copy, args)
    theirs = hexdump(copy, offset, length, *(["-v"] if "-v" in args else []))
    plain = inspect("dump", *args, "--file", str(copy), "--plain")
    assert plain.code == 0
    assert plain.out.splitlines() == theirs
    annotated = inspect("dump", *args, "--file", str(copy)).out.splitlines()
    assert len(annotated) == len(theirs)
    for ours, line in zip(annotated, theirs, strict=True):
        assert ours[:len(line)] == line
        rest = ours[len(line):]
        assert rest == "" or (rest.startswith(" ") and len(ours) > HEX_WIDTH)


def test_dump_annotations_name_the_fields(copy: Path, live: Producer) -> None:
    lines = inspect("dump", "header", "--file", str(copy), "-v").out.splitlines()
    by_offset = {int(ln[:8], 16): ln for ln in lines if ln[:8].strip() and "|" in ln}
    assert f'magic="TRADINGD" layout_major=1 layout_minor={L.LAYOUT_MINOR}' in by_offset[0]
    line = by_offset[L.HEADER.offset("ring_cursor") // 16 * 16]
    assert re.search(r"header: ring_cursor=\d+", line)
    line = by_offset[L.HEADER.offset("producer_pid") // 16 * 16]
    assert f"producer_pid={live.pid}" in line

    data = inspect("dump", "symtab", "--index", "2", "--file", str(copy), "--json").json()
    fields = {f["field"]: f for ln in data["lines"] for f in ln.get("fields", [])}
    assert fields["name"]["value"] == "BTC-USD"
    assert fields["asset_class"]["value"] == L.ASSET_CLASS_IDS["crypto"]
    with SegmentReader.open_file(str(copy)) as r:
        base = r.geometry.symtab_offset + 2 * L.SYMBOL.size
    assert fields["name"]["offset"] == base + L.SYMBOL.offset("name")
    assert fields["record_count"]["offset"] == base + L.SYMBOL.offset("record_count")

    with SegmentReader.open_file(str(copy)) as r:
        seq, cap = r.cursor - 3, r.geometry.ring_capacity
    ring = inspect("dump", "--seq", str(seq), "--file", str(copy)).out
    assert f"ring[{seq % cap}]: seq_lo={seq & 0xFFFFFFFF} " in ring.splitlines()[0]


def test_dump_by_name_reads_the_live_segment(live: Producer) -> None:
    r = inspect("dump", "header", "--segment", live.segment, "--plain")
    assert r.code == 0
    assert r.out.splitlines()[0].endswith("|TRADINGD........|")
    bad = inspect("dump", "ring", "--index", "99999", "--segment", live.segment)
    assert bad.code == C.EXIT_USAGE and "ring has 16384 entries" in bad.err


# ----------------------------------------------------------------------------- watch, check


def test_watch_frames(live: Producer) -> None:
    r = inspect_cli("watch", "--count", "3", "--interval", "0.3", "--json",
                    "--segment", live.segment)
    assert r.code == 0, r.err
    frames = [json.loads(line) for line in r.out.splitlines()]
    assert [f["frame"] for f in frames] == [0, 1, 2]
    assert frames[0]["rates"]["records_per_s"] is None
    assert frames[2]["rates"]["records_per_s"] > 0
    # every 50 ms: ~20/s, never more; a busy machine may beat less often
    assert 0 < frames[2]["rates"]["heartbeats_per_s"] < 40
    assert [x["symbol"] for x in frames[2]["latest"]] == BUNDLED
    assert frames[2]["records"] > frames[0]["records"]

    text = inspect("watch", "--count", "2", "--interval", "0.1", "--segment", live.segment)
    assert text.code == 0
    assert text.out.count("tradingd-inspect watch:") == 2
    assert "\x1b[2J" not in text.out  # not a terminal: no clearing
    assert re.search(r"rates: [\d.]+[kMG]? records/s, [\d.]+ heartbeats/s", text.out)


def test_check_ok(live: Producer) -> None:
    r = inspect_cli("check", "--segment", live.segment, "--data-stale", "30")
    assert r.code == 0, r.out
    assert re.match(rf"TRADINGD OK - segment /dev/shm/{live.segment} live, pid {live.pid}, "
                    r"heartbeat .* ago, .* records, last record .* ago \| heartbeat_age=", r.out)
    data = inspect("check", "--segment", live.segment, "--json").json()
    assert data["status"] == "OK" and data["code"] == 0 and data["pid"] == live.pid


def test_cleanup_refuses_a_live_segment(live: Producer) -> None:
    r = inspect_cli("cleanup", "--segment", live.segment)
    assert r.code == C.EXIT_SEGMENT_OWNED
    assert f"PID {live.pid}" in r.err and "producer is alive" in r.err
    assert Path(shm.segment_path(live.segment)).exists()
    data = inspect("cleanup", "--segment", live.segment, "--json").json()
    assert data["action"] == "refused" and data["verdict"] == "live"
    assert Path(shm.segment_path(live.segment)).exists()


def test_tail_follow_reports_lapping_and_ends_on_ctrl_c(
        start_producer: Callable[..., Producer]) -> None:
    """A follower whose output nobody reads falls behind a 64-record ring: lapped.

    Each step waits for what it needs (the follower following, the producer far ahead, the
    lapping reported), not for a fixed time: a busy machine only makes it slower."""
    p = start_producer(segment={"ring_capacity": 64}, replay={"speed": 10 * 365 * 86400.0})
    follower = subprocess.Popen([str(INSPECT), "tail", "-f", "-n", "0", "--json",
                                 "--segment", p.segment], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=clean_env())
    assert follower.stdout is not None and follower.stderr is not None
    try:
        # following: its first record is out
        ready, _, _ = select.select([follower.stdout], [], [], START_TIMEOUT)
        assert ready, "the follower printed nothing"
        out = follower.stdout.readline()
        # nobody reads: the pipe fills, the follower blocks writing, the producer laps it
        with SegmentReader.attach(p.segment) as r:
            far = r.cursor + 20_000  # the pipe's worth of records and the ring, many times
            deadline = time.monotonic() + START_TIMEOUT
            while r.cursor < far and time.monotonic() < deadline:
                time.sleep(0.05)
            assert r.cursor >= far, "the producer did not get ahead"
        # read again: the follower resumes and finds itself lapped; then Ctrl-C
        deadline = time.monotonic() + 2 * START_TIMEOUT
        while '"event":"lapped"' not in out.replace(" ", ""):
            line = follower.stdout.readline()
            assert line and time.monotonic() < deadline, out[-2000:]
            out += line
        follower.send_signal(signal.SIGINT)
        out += follower.stdout.read()
        err = follower.stderr.read()
        follower.wait(timeout=START_TIMEOUT)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0 and "Traceback" not in err, err
    events = [json.loads(line) for line in out.splitlines()]
    lapped = [e for e in events if e.get("event") == "lapped"]
    assert lapped and all(e["lost"] > 0 for e in lapped)
    end = events[-1]
    assert end["event"] == "end" and end["reason"] == "interrupted"
    assert end["lost"] == lapped[-1]["lost_total"] > 0
    seqs = [e["seq"] for e in events if "seq" in e]
    assert seqs == sorted(set(seqs))  # increasing, never repeated, never torn


def test_config_names_the_segment(live: Producer, tmp_path: Path) -> None:
    cfg = yaml.safe_load(live.config.read_text())
    cfg["segment"]["name"] = live.segment
    path = tmp_path / "named.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = inspect("check", "--config", str(path))
    assert r.code == 0 and f"segment /dev/shm/{live.segment} live" in r.out
    r = inspect("status", "--config", str(path), "--json")
    assert r.code == 0 and r.json()["segment"]["name"] == live.segment
    # --segment overrides the config's name
    r = inspect("check", "--config", str(path), "--segment", "tdtest-none-here")
    assert r.code == 2 and "tdtest-none-here does not exist" in r.out


@pytest.mark.parametrize("argv", [
    ["tail", "--duration", "1"],
    ["dump", "ring", "--offset", "0"],
    ["watch", "--count", "0"],
    ["latest", "--file", "/tmp/x"],
])
def test_bad_command_lines_exit_64(live: Producer, argv: list[str]) -> None:
    r = inspect(*argv, "--segment", live.segment)
    assert r.code == C.EXIT_USAGE, r
    assert r.err.startswith(("tradingd-inspect: ", "usage: "))
