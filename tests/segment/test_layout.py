"""The declared layout: alignment rules, derived artefacts agree, fingerprint sensitivity."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from tradingd.segment import layout as L


def test_every_struct_is_whole_cache_lines_and_fields_naturally_aligned() -> None:
    for s in L.STRUCTS:
        assert s.size % L.CACHE_LINE == 0, s.name
        for p in s.placed:
            assert p.offset % min(p.field.align, 8) == 0, (s.name, p.name)
        ends = [p.end for p in s.placed]
        starts = [p.offset for p in s.placed]
        assert all(a <= b for a, b in zip(ends, starts[1:], strict=False)), s.name


def test_ring_cursor_sits_alone_on_its_cache_line() -> None:
    cur = L.HEADER["ring_cursor"]
    assert cur.offset % L.CACHE_LINE == 0
    line = range(cur.offset, cur.offset + L.CACHE_LINE)
    others = [p.name for p in L.HEADER.placed if p.name != "ring_cursor" and p.offset in line]
    assert others == []


def test_polled_words_are_aligned_8_byte_fields() -> None:
    for name in ("state", "heartbeat_ns", "ring_cursor", "wake_seq"):
        assert L.HEADER.word(name) * 8 == L.HEADER.offset(name)
    assert L.LATEST.word("lock") == 0


def test_numpy_dtypes_follow_the_table() -> None:
    for s in L.STRUCTS:
        assert s.dtype.itemsize == s.size
        for p in s.placed:
            assert s.dtype.fields[p.name][1] == p.offset


def test_record_is_one_cache_line_and_volume_is_wide() -> None:
    assert L.RECORD.size == 64
    assert L.RECORD["volume"].size == 8 and L.LATEST["volume"].size == 8
    big = 46_342_323_118  # a real BTC-USD daily volume, > 2^32
    assert float(big) == big


def test_geometry_regions_are_aligned_and_disjoint() -> None:
    geo = L.Geometry(symtab_capacity=7, ring_capacity=1024, ring_window=256)
    regions = geo.regions()
    for _, off, _, _, _ in regions:
        assert off % L.CACHE_LINE == 0
    for (_, a_off, a_size, _, _), (_, b_off, _, _, _) in itertools.pairwise(regions):
        assert a_off + a_size <= b_off
    assert geo.total_size == regions[-1][1] + regions[-1][2]


@pytest.mark.parametrize(("cap", "window"), [(1000, 10), (1, 1), (1024, 0), (1024, 513)])
def test_geometry_rejects_bad_capacities(cap: int, window: int) -> None:
    with pytest.raises(ValueError):
        L.Geometry(symtab_capacity=4, ring_capacity=cap, ring_window=window)


def test_fingerprint_changes_with_any_field(monkeypatch: pytest.MonkeyPatch) -> None:
    original = L._fingerprint()
    assert original == L.LAYOUT_FINGERPRINT
    renamed = dataclasses.replace(
        L.RECORD, fields=(L.Field("seq_low", "u32", "x"), *L.RECORD.fields[1:]))
    monkeypatch.setattr(L, "STRUCTS", (L.HEADER, L.SYMBOL, L.LATEST, renamed))
    assert L._fingerprint() != original
    retyped = dataclasses.replace(
        L.LATEST, fields=(*L.LATEST.fields[:2], L.Field("volume", "u64", "x"),
                          *L.LATEST.fields[3:]))
    monkeypatch.setattr(L, "STRUCTS", (L.HEADER, L.SYMBOL, retyped, L.RECORD))
    assert L._fingerprint() != original


def test_layout_table_lists_every_field_once() -> None:
    rows = L.layout_table()
    assert len(rows) == sum(len(s.fields) for s in L.STRUCTS)
    assert {"struct", "field", "offset", "size", "type", "meaning"} <= set(rows[0])
