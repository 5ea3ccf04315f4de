"""SegmentWriter and SegmentReader against real /dev/shm segments, in C and pure Python."""

from __future__ import annotations

import grp
import os
import pickle
import stat
import time

import numpy as np
import pytest

from tradingd.errors import (
    SegmentExists,
    SegmentNotFound,
    SegmentStopped,
    TradingdError,
)
from tradingd.segment import layout as L
from tradingd.segment import shm
from tradingd.segment.model import LatestValue, Record, SymbolInfo
from tradingd.segment.reader import SegmentReader
from tradingd.segment.writer import SegmentWriter

SYMBOLS = [SymbolInfo("AAPL", "stock"), SymbolInfo("BTC-USD", "crypto", price_decimals=2),
           SymbolInfo("EURUSD", "forex", price_decimals=5)]


def make(name: str, **kw: object) -> SegmentWriter:
    kw.setdefault("ring_capacity", 1024)
    return SegmentWriter.create(name, SYMBOLS, symbol_capacity=8, **kw)  # type: ignore[arg-type]


def batch(first_sym: int, n: int, nsym: int = 3) -> np.ndarray:
    recs = np.zeros(n, L.RECORD_DTYPE)
    recs["symbol_id"] = (np.arange(n) + first_sym) % nsym
    recs["event_ns"] = np.arange(n) * 1000
    recs["close"] = np.arange(n) + 0.5
    recs["volume"] = np.arange(n) * 2.0
    return recs


def test_create_is_exclusive_mode_0640_and_live(segment_name: str, impl: str) -> None:
    with make(segment_name) as w:
        st = os.stat(shm.segment_path(segment_name))
        assert stat.S_IMODE(st.st_mode) == 0o640
        assert st.st_size == w.geometry.total_size
        with pytest.raises(SegmentExists):
            make(segment_name)
        with SegmentReader.attach(segment_name) as r:
            h = r.header()
            assert h["state"] == L.STATE_LIVE
            assert h["generation"] == w.generation != 0
            assert h["producer_pid"] == os.getpid()
            assert h["layout_fingerprint"] == L.LAYOUT_FINGERPRINT
            assert [s.name for s in r.symbols()] == ["AAPL", "BTC-USD", "EURUSD"]
            assert r.symbols()[2].asset_class == "forex"
    assert not os.path.exists(shm.segment_path(segment_name))


def test_generation_is_new_for_each_creation(segment_name: str) -> None:
    gens = set()
    for _ in range(3):
        with make(segment_name) as w:
            gens.add(w.generation)
    assert len(gens) == 3


def test_create_does_not_follow_a_symlink(segment_name: str, tmp_path) -> None:
    target = tmp_path / "victim"
    target.write_bytes(b"keep me")
    os.symlink(target, shm.segment_path(segment_name))
    with pytest.raises(SegmentExists):
        make(segment_name)
    assert target.read_bytes() == b"keep me"


def test_mode_and_group_are_applied(segment_name: str) -> None:
    gid = os.getgid()
    with make(segment_name, mode=0o600, group=grp.getgrgid(gid).gr_name):
        st = os.stat(shm.segment_path(segment_name))
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert st.st_gid == gid


def test_failed_creation_leaves_nothing_behind(segment_name: str) -> None:
    bad = [SymbolInfo("X" * 30)]
    with pytest.raises(TradingdError, match="longer than 23"):
        SegmentWriter.create(segment_name, bad, ring_capacity=64)
    assert not os.path.lexists(shm.segment_path(segment_name))


def test_publish_one_and_read_back(segment_name: str, impl: str) -> None:
    with make(segment_name) as w, SegmentReader.attach(segment_name) as r:
        sub = r.subscribe("oldest")
        assert sub.poll_one() is None
        for i in range(5):
            assert w.publish(i % 3, 10 + i, 1.0, 2.0, 0.5, 1.5 + i, 1e10 + i) == i
        got = [sub.poll_one() for _ in range(5)]
        assert [g[0] for g in got] == [0, 1, 2, 3, 4]
        assert got[4][1:3] == (1, 14) and got[4][7:] == (5.5, 1e10 + 4)
        assert sub.poll_one() is None
        latest = r.latest(1)
        assert isinstance(latest, LatestValue)
        assert (latest.seq, latest.price, latest.volume, latest.event_ns, latest.valid) == (
            4, 5.5, 1e10 + 4, 14, 1)
        assert r.latest(2).seq == 2
        assert r.cursor == 5


def test_latest_of_unwritten_symbol_is_none(segment_name: str, impl: str) -> None:
    with make(segment_name) as w, SegmentReader.attach(segment_name) as r:
        w.publish(0, 1, 1, 1, 1, 1, 1)
        assert r.latest(1) is None
        with pytest.raises(IndexError):
            r.latest(8)


def test_batch_publish_and_batch_read(segment_name: str, impl: str) -> None:
    with make(segment_name) as w, SegmentReader.attach(segment_name) as r:
        sub = r.subscribe("oldest")
        recs = batch(0, 600)
        assert w.publish_batch(recs) == 0
        got = sub.poll_batch(10_000).copy()
        assert len(got) == 600 and sub.position == 600 and sub.lost == 0
        assert np.array_equal(got["seq_lo"], np.arange(600))
        assert np.array_equal(got["close"], recs["close"])
        assert (got["publish_ns"] > 0).all()
        # latest slot of each symbol = its last record in the batch
        for sym in range(3):
            last = max(i for i in range(600) if i % 3 == sym)
            v = r.latest(sym)
            assert (v.seq, v.price, v.volume, v.event_ns) == (last, last + 0.5, last * 2.0,
                                                              last * 1000)


def test_batch_read_across_the_ring_wrap(segment_name: str, impl: str) -> None:
    with make(segment_name) as w, SegmentReader.attach(segment_name) as r:
        w.publish_batch(batch(0, 700))
        sub = r.subscribe("latest")
        w.publish_batch(batch(700, 500))  # slots 700..1023 then 0..175
        got = sub.poll_batch(10_000)
        assert len(got) == 500 and sub.lost == 0
        assert np.array_equal(got["seq_lo"], np.arange(700, 1200))


def test_lapping_is_counted_exactly_and_reader_resumes_at_oldest_intact(
        segment_name: str, impl: str) -> None:
    with make(segment_name) as w, SegmentReader.attach(segment_name) as r:
        one, many = r.subscribe("oldest"), r.subscribe("oldest")
        w.publish_batch(batch(0, 5000))
        # capacity 1024, window 256: the 768 newest records are guaranteed intact
        got = many.poll_batch(100_000)
        assert many.lost == 5000 - 768 and len(got) == 768
        assert got["seq_lo"][0] == 5000 - 768
        first = one.poll_one()
        assert first[0] == 5000 - 768 and one.lost == 5000 - 768
        rest = list(one)
        assert len(rest) == 767 and rest[-1][0] == 4999


def test_wait_for_data_wakes_on_publish(segment_name: str, impl: str) -> None:
    import threading
    with make(segment_name, wake_readers=True) as w, SegmentReader.attach(segment_name) as r:
        sub = r.subscribe("latest")
        assert sub.wait_for_data(0.05) is False
        t = threading.Timer(0.05, lambda: w.publish(0, 1, 1, 1, 1, 1, 1))
        t.start()
        assert sub.wait_for_data(5.0) is True
        t.join()
        assert sub.spin(0.01) is True


def test_reader_is_read_only_and_never_resizes(segment_name: str) -> None:
    with make(segment_name) as w:
        size = os.stat(shm.segment_path(segment_name)).st_size
        with SegmentReader.attach(segment_name) as r:
            with pytest.raises(TypeError):
                r._mm[0] = 0
            assert os.stat(shm.segment_path(segment_name)).st_size == size
            assert r.file_size == w.geometry.total_size


def test_reader_reports_unlink_and_replacement(segment_name: str) -> None:
    w = make(segment_name)
    r = SegmentReader.attach(segment_name)
    try:
        assert r.name_status() == "same"
        w.close()
        assert r.name_status() == "gone"
        assert r.state == L.STATE_STOPPED
        with make(segment_name) as w2:
            assert r.name_status() == "replaced"
            with SegmentReader.attach(segment_name) as r2:
                assert r2.generation == w2.generation != r.generation
    finally:
        r.close()


def test_attach_missing_and_stopped(segment_name: str) -> None:
    with pytest.raises(SegmentNotFound, match="does not exist"):
        SegmentReader.attach(segment_name)
    with make(segment_name) as w:
        w.set_state(L.STATE_STOPPED)
        with pytest.raises(SegmentStopped):
            SegmentReader.attach(segment_name)
        with SegmentReader.attach(segment_name, require_live=False) as r:
            assert r.state == L.STATE_STOPPED


def test_close_does_not_unlink_a_replacement(segment_name: str) -> None:
    w = make(segment_name)
    os.unlink(shm.segment_path(segment_name))  # an operator removed it...
    with make(segment_name) as w2:              # ...and a new producer took the name
        w.close()
        assert os.path.exists(shm.segment_path(segment_name))
        assert SegmentReader.attach(segment_name).generation == w2.generation


def test_heartbeat_and_counters(segment_name: str) -> None:
    with make(segment_name, heartbeat_interval_ns=50_000_000) as w, \
            SegmentReader.attach(segment_name) as r:
        before = r.header()["heartbeat_count"]
        w.heartbeat(now_ns=123_456)
        w.set_counter("replay_loops", 3)
        w.set_record_count(0, 10538)
        h = r.header()
        assert h["heartbeat_ns"] == 123_456 and h["heartbeat_count"] == before + 1
        assert h["heartbeat_interval_ns"] == 50_000_000 and h["replay_loops"] == 3
        assert r.symbols()[0].record_count == 10538


def test_invalid_names_are_refused() -> None:
    for bad in ("", "a/b", "..", "x" * 201, "sp ace"):
        with pytest.raises(TradingdError, match="invalid segment name"):
            SegmentWriter.create(bad, SYMBOLS)


def test_next_spins_for_the_next_record(segment_name: str, impl: str) -> None:
    import threading
    with make(segment_name) as w, SegmentReader.attach(segment_name) as r:
        sub = r.subscribe("latest")
        assert sub.next(0.01) is None
        t = threading.Timer(0.05, lambda: w.publish(2, 7, 1, 1, 1, 3.5, 9))
        t.start()
        rec = sub.next(5.0)
        t.join()
        assert rec is not None and rec[:3] == (0, 2, 7) and rec[7:] == (3.5, 9.0)
        assert sub.position == 1 and sub.next(0.0) is None


# ------------------------------------------------------- stamp-first reads (v1.1, v1.2)
# The writer marks a record's stamp (seq_lo) before its body and stores it after; the C
# reader may then take it before the cursor moves, and in steady state without reading the
# cursor at all. These tests put the ring in the states a racing writer leaves it in, by
# writing slots and header words the way the writer does, one step at a time.

def _fill_and_follow(w: SegmentWriter, r: SegmentReader) -> object:
    """Publish one full lap (stamp-first reads start once every slot was written)."""
    w.publish_batch(batch(0, w.geometry.ring_capacity))
    return r.subscribe("latest")


def _body_and_stamp(w: SegmentWriter, seq: int, stamp: int | None = None,
                    publish_ns: int | None = None) -> None:
    """What publish() has done when it is preempted just before storing the cursor."""
    slot = seq & (w.geometry.ring_capacity - 1)
    rec = batch(0, 1)
    rec["symbol_id"], rec["event_ns"], rec["close"] = 1, 77, 7.5
    rec["publish_ns"] = time.monotonic_ns() if publish_ns is None else publish_ns
    body_at = L.RECORD.offset("symbol_id")
    w._ring_u8[slot, body_at:] = rec.view(np.uint8)[body_at:]
    w._ring["seq_lo"][slot] = (seq if stamp is None else stamp) & 0xFFFFFFFF


def test_a_stamped_record_is_taken_before_the_cursor_moves(segment_name: str,
                                                           impl: str) -> None:
    with make(segment_name, ring_capacity=64) as w, SegmentReader.attach(segment_name) as r:
        sub = _fill_and_follow(w, r)
        s = w.cursor
        _body_and_stamp(w, s)
        if impl == "c":  # stamp-first: the record is there
            rec = sub.poll_one()
            assert rec is not None and (rec.seq, rec.symbol_id, rec.event_ns, rec.close) == (
                s, 1, 77, 7.5)
            assert sub.stamp_reads == 1 and sub.position == s + 1
            assert sub.available == 0  # position is past the cursor for a moment: not -1
        else:  # the reference reader waits for the cursor
            assert sub.poll_one() is None and sub.stamp_reads == 0
        w._words[L.HEADER.word("ring_cursor")] = s + 1  # the writer's last store
        if impl == "python":
            assert sub.poll_one()[0] == s
        assert sub.poll_one() is None and sub.position == s + 1  # read once, either way


def test_stamps_are_not_trusted_before_the_ring_has_wrapped(segment_name: str) -> None:
    """A never-written slot's zero stamp matches seq 0: the first lap goes by the cursor."""
    with make(segment_name, ring_capacity=64) as w, SegmentReader.attach(segment_name) as r:
        sub = r.subscribe("latest")
        assert sub.poll_one() is None and sub.next(0.0) is None  # slot 0: stamp 0 == seq 0
        _body_and_stamp(w, 1)
        sub.position = 1
        assert sub.poll_one() is None  # stamped, but seq 1 < capacity: wait for the cursor
        assert sub.stamp_reads == 0


def test_a_v1_0_segment_is_read_by_the_cursor_only(segment_name: str) -> None:
    """Writers before v1.1 stored the stamp first: their stamps do not mean 'complete'."""
    with make(segment_name, ring_capacity=64) as w:
        w._header[0]["layout_minor"] = 0
        with SegmentReader.attach(segment_name) as r:
            assert r.header()["layout_minor"] == 0
            sub = _fill_and_follow(w, r)
            _body_and_stamp(w, w.cursor)
            assert sub.poll_one() is None and sub.next(0.0) is None and sub.stamp_reads == 0


def test_a_stamp_matching_only_modulo_2_32_is_not_taken(segment_name: str, impl: str) -> None:
    """A reader lapped by 2^32 records finds its stamp again: the cursor check catches it."""
    with make(segment_name, ring_capacity=64) as w, SegmentReader.attach(segment_name) as r:
        sub = _fill_and_follow(w, r)
        p = sub.position
        far = p + (1 << 32)  # the writer went on for 2^32 records while we slept
        for seq in range(far - 63, far + 1):  # the last lap it wrote
            _body_and_stamp(w, seq)
        w._words[L.HEADER.word("ring_cursor")] = far + 1
        oldest_intact = far + 1 + w.geometry.ring_window - 64
        rec = sub.poll_one()
        assert rec is not None and rec[0] == oldest_intact  # not p: the lapping is seen
        assert sub.lost == oldest_intact - p


def test_after_2_32_records_a_trusted_chain_goes_back_to_the_cursor(
        segment_name: str, impl: str) -> None:
    """A reader that took its last record intact, then slept while the writer published
    2^32 more, finds a matching stamp again. That record was published far later (no writer
    publishes 2^32 records in STAMP_TRUST_NS), so the cursor is asked and the lapping seen."""
    with make(segment_name, ring_capacity=64) as w, SegmentReader.attach(segment_name) as r:
        sub = _fill_and_follow(w, r)
        w.publish(0, 1, 1, 1, 1, 1, 1)
        assert sub.poll_one() is not None  # taken intact: the chain starts here
        p = sub.position
        far = p + (1 << 32)
        later = time.monotonic_ns() + 2 * L.STAMP_TRUST_NS
        for seq in range(far - 63, far + 1):
            _body_and_stamp(w, seq, publish_ns=later)
        w._words[L.HEADER.word("ring_cursor")] = far + 1
        oldest_intact = far + 1 + w.geometry.ring_window - 64
        rec = sub.poll_one()
        assert rec is not None and rec[0] == oldest_intact and sub.lost == oldest_intact - p
        assert sub.trusted_reads == 0


def test_marked_stamps_spare_the_cursor_read_while_records_follow_closely(
        segment_name: str) -> None:
    """v1.2: a record whose stamp held across the copy, published within STAMP_TRUST_NS of
    its intact predecessor, is taken without reading the cursor; the first record, and one
    after a longer pause, are checked against the cursor."""
    with make(segment_name, ring_capacity=64) as w, SegmentReader.attach(segment_name) as r:
        sub = _fill_and_follow(w, r)
        s, t0 = w.cursor, time.monotonic_ns()
        for k, pub in enumerate((t0, t0 + 1000, t0 + 1000 + L.STAMP_TRUST_NS + 1)):
            _body_and_stamp(w, s + k, stamp=~(s + k))  # marked: being written
            assert sub.poll_one() is None
            _body_and_stamp(w, s + k, publish_ns=pub)
            rec = sub.poll_one()
            assert rec is not None and (rec.seq, rec.publish_ns) == (s + k, pub)
            w._words[L.HEADER.word("ring_cursor")] = s + k + 1
        assert (sub.stamp_reads, sub.trusted_reads) == (3, 1)  # only the second was trusted


def test_a_v1_1_segment_is_read_by_stamp_with_the_cursor_check(segment_name: str) -> None:
    """v1.1 writers did not mark stamps: every stamp read is followed by a cursor read."""
    with make(segment_name, ring_capacity=64) as w:
        w._header[0]["layout_minor"] = L.STAMP_LAST_MINOR
        with SegmentReader.attach(segment_name) as r:
            sub = _fill_and_follow(w, r)
            for _ in range(3):
                s = w.cursor
                _body_and_stamp(w, s)
                assert sub.poll_one().seq == s
                w._words[L.HEADER.word("ring_cursor")] = s + 1
            assert (sub.stamp_reads, sub.trusted_reads) == (3, 0)


def test_records_read_like_tuples_and_by_name(segment_name: str, impl: str) -> None:
    """poll_one's Record: a tuple in Record order and named fields, in C and in Python."""
    with make(segment_name) as w, SegmentReader.attach(segment_name) as r:
        sub = r.subscribe("oldest")
        w.publish(2, 1_700_000_000_000_000_000, 1.0, 2.0, 0.5, 1.5, 3e10)
        rec = sub.poll_one()
        fields = (0, 2, 1_700_000_000_000_000_000, rec.publish_ns, 1.0, 2.0, 0.5, 1.5, 3e10)
        assert rec == fields and tuple(rec) == fields and len(rec) == 9
        assert hash(rec) == hash(fields)
        assert rec[-1] == 3e10 and rec[1:3] == (2, 1_700_000_000_000_000_000)
        seq, sym, *_, volume = rec
        assert (seq, sym, volume) == (0, 2, 3e10)
        assert {name: getattr(rec, name) for name in Record._fields} == Record(*fields)._asdict()
        assert repr(rec).startswith("Record(seq=0, symbol_id=2, event_ns=1700000000000000000")
        assert pickle.loads(pickle.dumps(rec)) == fields
        with pytest.raises(IndexError):
            rec[9]


def _mapped_kib(path: str) -> list[int]:
    """Resident KiB of each mapping of ``path`` in this process (/proc/self/smaps)."""
    sizes, inside = [], False
    with open("/proc/self/smaps") as f:
        for line in f:
            first = line.split()[0]
            if "-" in first and not first.endswith(":"):  # a mapping's header line
                inside = line.rstrip().endswith(path)
            elif inside and first == "Rss:":
                sizes.append(int(line.split()[1]))
    return sizes


def test_pages_are_faulted_in_at_creation_and_attach(segment_name: str) -> None:
    """No page fault on the first lap of the ring: writer pre-touches, readers populate."""
    with make(segment_name, ring_capacity=1 << 14) as w:
        kib = w.geometry.total_size // 1024
        assert _mapped_kib(w.path) == [pytest.approx(kib, abs=4)]  # the writer's mapping
        with SegmentReader.attach(segment_name):
            assert _mapped_kib(w.path) == [pytest.approx(kib, abs=4)] * 2
