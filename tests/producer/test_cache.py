"""tradingd.producer.cache: hits, every invalidation, corruption detected and rebuilt, atomicity."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from loader_support import write

from tradingd.producer import cache as cache_module
from tradingd.producer.cache import LoadCache, cache_directory
from tradingd.producer.loader import BUILTIN_FORMATS, CsvFormat, load_csv

YAHOO = BUILTIN_FORMATS["yahoo"]
ROWS = ["Date,Open,High,Low,Close,Adj Close,Volume",
        *(f"2020-01-{d:02d},10,11,9,10.5,10.5,{100 + d}" for d in range(1, 29)),
        "2020-01-29,null,null,null,null,null,null"]


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    return write(tmp_path, ROWS)


@pytest.fixture
def store(tmp_path: Path) -> LoadCache:
    return LoadCache(tmp_path / "cache")


def cached(store: LoadCache, csv: Path, fmt: CsvFormat = YAHOO) -> str:
    """Load through the cache as the producer does; returns the lookup status."""
    found = store.load(csv, fmt)
    if found.result is None:
        store.store(csv, fmt, load_csv(csv, fmt))
    return found.status


def test_a_hit_gives_back_exactly_what_was_loaded(csv: Path, store: LoadCache) -> None:
    direct = load_csv(csv, YAHOO)
    assert cached(store, csv) == "absent"
    found = store.load(csv, YAHOO)
    assert found.status == "hit" and found.result is not None
    got = found.result
    assert isinstance(got.bars, np.memmap) and got.from_cache
    assert np.array_equal(got.bars, direct.bars) and got.bars.dtype == direct.bars.dtype
    assert (got.rows_read, got.reject_counts, got.bad_rows, got.newest_first) == (
        direct.rows_read, direct.reject_counts, direct.bad_rows, direct.newest_first)
    assert not [p for p in store.directory.iterdir() if p.name.startswith(".")]


def test_changed_file_is_parsed_again(csv: Path, store: LoadCache) -> None:
    cached(store, csv)
    csv.write_text("\n".join([*ROWS, "2020-01-30,10,11,9,10.5,10.5,1"]) + "\n")
    assert store.load(csv, YAHOO).status == "stale: the file's size changed"


def test_same_size_and_mtime_but_other_content_is_parsed_again(csv: Path,
                                                                store: LoadCache) -> None:
    cached(store, csv)
    st = csv.stat()
    csv.write_text(csv.read_text().replace(",101\n", ",999\n"))
    os.utime(csv, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert csv.stat().st_size == st.st_size and csv.stat().st_mtime_ns == st.st_mtime_ns
    assert store.load(csv, YAHOO).status == "stale: the file's first 64 KiB changed"


def test_touched_file_is_parsed_again(csv: Path, store: LoadCache) -> None:
    cached(store, csv)
    os.utime(csv, ns=(1, 1))
    assert store.load(csv, YAHOO).status == "stale: the file was modified"


def test_another_format_is_another_entry_and_replaces_the_old(csv: Path,
                                                             store: LoadCache) -> None:
    cached(store, csv)
    other = CsvFormat(timezone="+01:00")
    assert cached(store, csv, other) == "absent"
    assert store.load(csv, other).status == "hit"
    assert store.load(csv, YAHOO).status == "absent"  # pruned: one entry per file
    assert len(store.entries()) == 1


def test_another_loader_version_is_parsed_again(csv: Path, store: LoadCache,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cached(store, csv)
    monkeypatch.setattr(cache_module, "LOADER_VERSION", cache_module.LOADER_VERSION + 1)
    assert store.load(csv, YAHOO).status == "stale: another loader version"


def npy_of(store: LoadCache) -> Path:
    (path,) = store.directory.glob("*.npy")
    return path


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage_header", "no_npy",
                                    "bad_json", "grown"])
def test_a_damaged_entry_is_detected_removed_and_rebuilt(csv: Path, store: LoadCache,
                                                         damage: str) -> None:
    cached(store, csv)
    npy = npy_of(store)
    data = bytearray(npy.read_bytes())
    if damage == "truncate":
        npy.write_bytes(bytes(data[:-48]))
    elif damage == "flip":
        data[-7] ^= 0x10
        npy.write_bytes(bytes(data))
    elif damage == "garbage_header":
        npy.write_bytes(b"\0" * 16 + bytes(data[16:]))
    elif damage == "no_npy":
        npy.unlink()
    elif damage == "bad_json":
        npy.with_suffix(".json").write_text("{not json")
    else:
        npy.write_bytes(bytes(data) + b"\0" * 48)
    state = store.entries()[0].state
    assert state.startswith("corrupt"), state
    found = store.load(csv, YAHOO)
    assert found.corrupt and found.result is None, found.status
    assert not list(store.directory.glob("*.json"))  # removed, never trusted
    assert cached(store, csv) == "absent"
    assert store.load(csv, YAHOO).status == "hit"


def test_a_failed_write_leaves_no_entry_and_no_temporary(csv: Path, store: LoadCache,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", broken)
    with pytest.raises(OSError):
        store.store(csv, YAHOO, load_csv(csv, YAHOO))
    assert list(store.directory.iterdir()) == []


def test_list_and_clear(csv: Path, store: LoadCache, tmp_path: Path) -> None:
    second = write(tmp_path, ROWS[:5], name="b.csv")
    cached(store, csv)
    cached(store, second)
    entries = store.entries()
    assert sorted(e.bars for e in entries) == [4, 28]
    assert {e.state for e in entries} == {"valid"}
    second.unlink()
    assert {e.state for e in store.entries()} == {"valid", "stale: the CSV is gone"}
    removed, freed = store.clear()
    assert removed == 4 and freed > 0 and store.entries() == []
    meta = json.dumps(entries[0].as_dict())
    assert "bars" in meta


def test_cache_directory_order(tmp_path: Path) -> None:
    assert cache_directory(tmp_path, {"CACHE_DIRECTORY": "/var/cache/x"}) == tmp_path
    assert cache_directory(None, {"CACHE_DIRECTORY": "/var/cache/a:/var/cache/b"}) == Path(
        "/var/cache/a")
    assert cache_directory(None, {}) is None


def test_the_merged_timeline_entry(csv: Path, store: LoadCache, tmp_path: Path) -> None:
    from tradingd.producer.replay import build_timeline
    from tradingd.segment import layout as L
    other = write(tmp_path, ROWS[:10], name="b.csv")
    parts = [store.store(p, YAHOO, load_csv(p, YAHOO)) for p in (csv, other)]
    tag = {"align": "start"}
    assert store.load_timeline(parts, tag, L.RECORD_DTYPE) == "absent"
    timeline = build_timeline([p.result.bars for p in parts if p.result], align="start")
    store.store_timeline(parts, tag, timeline.records, {"per_symbol": [1, 2]})
    got = store.load_timeline(parts, tag, L.RECORD_DTYPE)
    assert isinstance(got, tuple) and np.array_equal(got[0], timeline.records)
    assert got[1] == {"per_symbol": [1, 2]}
    assert store.load_timeline(parts, {"align": "none"}, L.RECORD_DTYPE) == "absent"
    assert any(e.state == "valid" and "merged timeline of 2 files" in e.path
               for e in store.entries())
    (npy,) = store.directory.glob("timeline-*.npy")
    npy.write_bytes(npy.read_bytes()[:-64])
    status = store.load_timeline(parts, tag, L.RECORD_DTYPE)
    assert isinstance(status, str) and status.startswith("corrupt") and "truncated" in status
    assert not list(store.directory.glob("timeline-*"))
    csv.write_text("\n".join(ROWS[:20]) + "\n")  # a part changes: another timeline
    parts[0] = store.store(csv, YAHOO, load_csv(csv, YAHOO))
    assert store.load_timeline(parts, tag, L.RECORD_DTYPE) == "absent"
