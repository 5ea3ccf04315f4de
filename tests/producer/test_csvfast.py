"""The one-pass C parser (``_csvfast.c``) against the numpy fast path and the exact path.

The C parser may only accept what the exact per-row path reads identically: these
properties generate fields and whole files with the cases that could break that (long
mantissas, exponents, signs, leading zeros, empty and quoted fields, CRLF, a last line
without a newline, bad timestamps) and compare every way of loading them, bit for bit.
"""

from __future__ import annotations

import math
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loader_support import YAHOO, load_every_way

from tradingd.producer.loader import CsvFormat, load_csv
from tradingd.producer.loader.native import CSVFAST, compile_plan

pytestmark = pytest.mark.skipif(CSVFAST is None, reason="_csvfast not built")

#: The exact path's grammar of a plain number (exact._NUMBER_RE).
NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)

_digits = st.text("0123456789", max_size=25)
numbers = st.builds(
    lambda sign, lead, whole, dot, frac, exp: f"{sign}{lead}{whole}{dot}{frac}{exp}",
    st.sampled_from(["", "", "+", "-"]), st.sampled_from(["", "", "0", "000"]), _digits,
    st.sampled_from([".", ".", ""]), _digits,
    st.one_of(st.just(""), st.builds(lambda e, s, d: f"{e}{s}{d}", st.sampled_from("eE"),
                                     st.sampled_from(["", "+", "-"]),
                                     st.text("0123456789", min_size=0, max_size=4))))
dirt = st.text(" +-.,eE0123456789xna\"'\t_", max_size=12)
fields = st.one_of(numbers, numbers, dirt, st.sampled_from(
    ["", "null", "NaN", "1e400", "1e-400", "9007199254740993", "9007199254740992",
     "0.1", "-0", "1_0", ".", "+", "e5", "1e", "00000000000000000000001.5"]))


def bits(value: float) -> bytes:
    return struct.pack("<d", value)


@settings(max_examples=600, deadline=None)
@given(fields)
def test_a_number_is_read_as_float_reads_it_or_flagged(text: str) -> None:
    value = CSVFAST.parse_number(text.encode())  # type: ignore[union-attr]
    if value is None:
        return
    assert NUMBER.fullmatch(text), text  # only the exact path's grammar
    assert bits(value) == bits(float(text)), text  # correctly rounded, sign of zero kept
    assert math.isfinite(value)


@pytest.mark.parametrize("text", ["1", "0.5", "123.456789", "-2.5e3", "+.5", "1.", "7E-22",
                                  "9007199254740992", "000123.4500", "12345678.123456"])
def test_the_usual_numbers_are_parsed_not_flagged(text: str) -> None:
    assert CSVFAST.parse_number(text.encode()) == float(text)  # type: ignore[union-attr]


@pytest.mark.parametrize("text", ["9007199254740993", "1e23", "1e-23", "0.1e-22",
                                  "1.0000000000000000000", "", ".", "1 ", " 1", "1,5",
                                  "nan", "inf", "1e", "--1", "1.2.3", "1e+"])
def test_what_clinger_cannot_vouch_for_is_flagged(text: str) -> None:
    assert CSVFAST.parse_number(text.encode()) is None  # type: ignore[union-attr]


_SEPARATORS = [(None, ".", False), (",", ".", True), (".", ",", False), (" ", ",", True),
               ("'", ".", False), ("_", ".", True), (None, ",", True)]
formatted_texts = st.builds(
    lambda sign, groups, sep, frac, suffix: f"{sign}{sep.join(groups)}{frac}{suffix}",
    st.sampled_from(["", "", "+", "-"]),
    st.lists(st.text("0123456789", min_size=0, max_size=4), min_size=1, max_size=7),
    st.sampled_from([",", ".", " ", "'", "_", ""]),
    st.one_of(st.just(""), st.builds(lambda m, d: m + d, st.sampled_from([".", ","]),
                                     st.text("0123456789", max_size=20))),
    st.sampled_from(["", "", "K", "m", "B", "%", "x"]))


@settings(max_examples=1500, deadline=None)
@given(st.one_of(formatted_texts, dirt), st.sampled_from(_SEPARATORS))
def test_a_formatted_number_is_read_as_the_exact_path_reads_it_or_flagged(
        text: str, style: tuple[str | None, str, bool]) -> None:
    from tradingd.producer.loader.formatted import formatted_value, number_pattern
    thousands, decimal, suffixes = style
    value = CSVFAST.parse_formatted(  # type: ignore[union-attr]
        text.encode(), ord(thousands) if thousands else 0, ord(decimal), suffixes)
    if value is None:
        return
    expected = formatted_value(text, number_pattern(thousands, decimal), thousands,
                               suffixes)
    assert expected is not None, (text, style)
    assert bits(value) == bits(expected), (text, style)


@pytest.mark.parametrize(("text", "style", "value"), [
    ("46,629.3", (",", ".", False), 46629.3), ("1.234,5", (".", ",", False), 1234.5),
    ("131.48K", (",", ".", True), 131480.0), ("2.1m", (None, ".", True), 2.1e6),
    ("1,234,567", (",", ".", False), 1234567.0), ("-0,5", (".", ",", False), -0.5),
    ("12 345,25", (" ", ",", False), 12345.25)])
def test_the_usual_formatted_numbers_are_parsed_not_flagged(
        text: str, style: tuple[str | None, str, bool], value: float) -> None:
    thousands, decimal, suffixes = style
    assert CSVFAST.parse_formatted(  # type: ignore[union-attr]
        text.encode(), ord(thousands) if thousands else 0, ord(decimal), suffixes) == value


@pytest.mark.parametrize(("text", "style"), [
    ("1,2345", (",", ".", False)), ("12,34", (",", ".", False)), ("1234,567", (",", ".", False)),
    ("1.5K", (None, ".", False)), ("0.52%", (None, ".", True)), (",5,", (".", ",", False)),
    ("K", (None, ".", True)), ("1,000.5.5", (",", ".", False)), (" 1", (None, ".", False))])
def test_what_the_formatted_grammar_refuses_is_flagged(
        text: str, style: tuple[str | None, str, bool]) -> None:
    thousands, decimal, suffixes = style
    assert CSVFAST.parse_formatted(  # type: ignore[union-attr]
        text.encode(), ord(thousands) if thousands else 0, ord(decimal), suffixes) is None


_STAMPS = st.one_of(
    st.builds(lambda y, mo, d, h, mi, s: f"{y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}",
              st.integers(1600, 2300), st.integers(0, 13), st.integers(0, 32),
              st.integers(0, 25), st.integers(0, 61), st.integers(0, 61)),
    st.builds(lambda y, mo, d: f"{y:04d}-{mo:02d}-{d:02d}", st.integers(1999, 2001),
              st.integers(1, 12), st.integers(1, 31)),
    st.sampled_from(["2020-02-29T12:00", "2021-02-29", "2020-01-01 00:00:00.5",
                     "2020-01-01 00:00:00.123456789", "2020-01-01x00:00", "", "null",
                     '"2020-01-01"', "2020-01-01 00:00:00+01:00", "2020-1-01"]))


def _cell(text: str, quote: bool) -> str:
    return f'"{text}"' if quote and '"' not in text else text


rows = st.lists(st.tuples(_STAMPS, st.lists(fields, min_size=5, max_size=5),
                          st.lists(st.booleans(), min_size=6, max_size=6),
                          st.sampled_from([0, 0, 0, 1, -1])),
                min_size=1, max_size=25)


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows, st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_generated_files_load_alike_every_way(tmp_path: Path, table: list[tuple[
        str, list[str], list[bool], int]], newline: str, final_newline: bool) -> None:
    """C parser, numpy fast path, exact path and tiny blocks: the same bars, rows read,
    reject counts and bad rows (load_every_way), whatever the fields hold."""
    lines = ["Date,Open,High,Low,Close,Adj Close,Volume"]
    for stamp, values, quoted, extra in table:
        cells = [_cell(stamp, quoted[0]),
                 *(_cell(v, q) for v, q in zip(values[:4], quoted[1:5], strict=True)),
                 "1.0", _cell(values[4], quoted[5])]
        if extra > 0:
            cells.append("7")
        elif extra < 0:
            cells.pop()
        lines.append(",".join(cells))
    path = tmp_path / "gen.csv"
    path.write_bytes((newline.join(lines) + (newline if final_newline else "")).encode())
    load_every_way(path, YAHOO, small_block=37)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.floats(0.01, 1e6), st.integers(0, 10**12)), min_size=1,
                max_size=40), st.sampled_from(["%Y%m%d %H%M%S", "%d/%m/%Y %H:%M", "%y%m%d"]))
def test_clean_files_are_read_exactly_by_the_c_parser(
        tmp_path: Path, values: list[tuple[float, int]], pattern: str) -> None:
    """Clean rows in a few layouts: every bar equals float() of its text, and the C parser
    leaves none of them to the exact path."""
    from datetime import datetime, timedelta
    lines = ["Date,Open,High,Low,Close,Volume"]
    start = datetime(1999, 12, 31)
    for i, (price, volume) in enumerate(values):
        text = repr(price)
        lines.append(f"{(start + timedelta(days=i)).strftime(pattern)},{text},{text},"
                     f"{text},{text},{volume}")
    path = tmp_path / "clean.csv"
    path.write_text("\n".join(lines) + "\n")
    fmt = CsvFormat(timestamp_format=pattern)
    result = load_every_way(path, fmt)
    expected = [float(line.split(",")[1]) for line in lines[1:]]
    if result.rows_rejected == 0:
        assert [bits(v) for v in result.bars["close"].tolist()] == [bits(v) for v in expected]


def test_plans_the_c_parser_takes_and_leaves(tmp_path: Path) -> None:
    from tradingd.producer.loader.blocks import open_data, read_blocks
    from tradingd.producer.loader.plan import make_plan
    path = tmp_path / "p.csv"
    path.write_text("Date,Open,High,Low,Close,Volume\n2020-01-01,1,1,1,1,1\n")

    def plan_of(fmt: CsvFormat):  # type: ignore[no-untyped-def]
        with open_data(str(path)) as f:
            return make_plan(str(path), fmt, f, read_blocks(f, str(path), 1 << 16))[0]

    assert compile_plan(plan_of(YAHOO)) is not None
    # one column read twice (open and close): left to the numpy path
    twice = CsvFormat(columns={"timestamp": "Date", "open": "Open", "high": "High",
                               "low": "Low", "close": "Open", "volume": "Volume"})
    assert compile_plan(plan_of(twice)) is None
    # formatted numbers are parsed in C too; epoch numbers and month names are handed
    # back to numpy as field offsets
    formatted = compile_plan(plan_of(CsvFormat(thousands=",")))
    assert formatted is not None and formatted.noffsets == 0
    epoch = compile_plan(plan_of(CsvFormat(timestamp_format="unix_s")))
    assert epoch is not None and epoch.noffsets == 1
    named = compile_plan(plan_of(CsvFormat(timestamp_format="%d-%b-%Y")))
    assert named is not None and named.noffsets == 1


def test_a_block_longer_than_the_output_capacity_continues(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The C parser stops where the reserved records end; the driver grows the output and
    goes on from the offset reached (a size hint far too small)."""
    lines = ["Date,Open,High,Low,Close,Volume"] + [
        f"2020-01-01 00:{i // 60:02d}:{i % 60:02d},1,2,1,1,{i}" for i in range(3000)]
    path = tmp_path / "many.csv"
    path.write_text("\n".join(lines) + "\n")
    import tradingd.producer.loader.load as load_module
    monkeypatch.setattr(load_module, "size_hint", lambda f, first: 1)
    result = load_csv(path, YAHOO)
    assert len(result.bars) == 3000
    assert np.array_equal(result.bars["volume"], np.arange(3000.0))
    assert result.bars.tobytes() == load_csv(path, YAHOO, c_parser=False).bars.tobytes()


def test_the_stub_matches_the_built_extension() -> None:
    """mypy checks native.py against ``_csvfast.pyi``; stubtest compares that stub with
    the built module (as tests/segment/test_typing.py does for the segment's fast path)."""
    import os
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, MYPYPATH=str(root / "stubs"))
    env.pop("TRADINGD_PURE_PYTHON", None)
    res = subprocess.run([sys.executable, "-m", "mypy.stubtest",
                          "tradingd.producer.loader._csvfast"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.tuples(st.lists(st.one_of(formatted_texts, dirt), min_size=5, max_size=5),
                          st.booleans(), st.integers(0, 10**6)), min_size=1, max_size=20),
       st.sampled_from([(",", ",", ".", True), (";", ".", ",", False), (",", None, ",", True),
                        ("\t", " ", ".", True)]))
def test_formatted_files_load_alike_every_way(
        tmp_path: Path, table: list[tuple[list[str], bool, int]],
        style: tuple[str, str | None, str, bool]) -> None:
    """Formatted numbers, quoted or not, under several delimiters and separators (the
    thousands separator may be the delimiter: then only quoted fields can hold it)."""
    delimiter, thousands, decimal, suffixes = style
    lines = [delimiter.join(["Date", "Open", "High", "Low", "Close", "Volume"])]
    for i, (values, quote, _) in enumerate(table):
        cells = [f"2020-01-01 00:{i // 60:02d}:{i % 60:02d}",
                 *(_cell(v, quote) for v in values)]
        lines.append(delimiter.join(cells))
    path = tmp_path / "formatted.csv"
    path.write_text("\n".join(lines) + "\n")
    fmt = CsvFormat(delimiter=delimiter, thousands=thousands, decimal=decimal,
                    volume_suffixes=suffixes)
    load_every_way(path, fmt, small_block=41)


def test_output_in_a_mapping_of_its_own_holds_the_same_bars(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large outputs live in an anonymous mapping (no transparent huge pages): the bars
    are the same as in a numpy-allocated output, also when the output grows."""
    from tradingd.producer.loader import checks
    lines = ["Date,Open,High,Low,Close,Volume"] + [
        f"2020-01-{1 + i // 1440:02d} {i // 60 % 24:02d}:{i % 60:02d},1.5,2,1,1.25,{i}"
        for i in range(5000)]
    path = tmp_path / "mapped.csv"
    path.write_text("\n".join(lines) + "\n")
    plain = load_csv(path, YAHOO)
    monkeypatch.setattr(checks, "_MAPPED_BYTES", 0)
    mapped = load_csv(path, YAHOO)
    assert not mapped.bars.flags.owndata and mapped.bars.flags.writeable
    import tradingd.producer.loader.load as load_module
    monkeypatch.setattr(load_module, "size_hint", lambda f, first: 7)
    grown = load_csv(path, YAHOO, block_size=1000)
    assert plain.bars.tobytes() == mapped.bars.tobytes() == grown.bars.tobytes()
    assert len(plain.bars) == 5000


def test_a_parser_refuses_bad_arguments_and_work_before_init() -> None:
    assert CSVFAST is not None
    bare = CSVFAST.Parser.__new__(CSVFAST.Parser)
    with pytest.raises(RuntimeError, match="not initialised"):
        bare.parse(b"x\n" + bytes(8), 0, 2, 1, bytearray(48), np.zeros(1, np.int64),
                   np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(3, np.int64))
    months = np.arange(3, dtype=np.int64).tobytes()
    with pytest.raises(ValueError, match="inconsistent"):  # slots for 2 columns, kinds 1
        CSVFAST.Parser(44, b"\x01", b"\0" * 8, 0, 48, 0, -1, [], [], months, 1677, 0, 1)
    with pytest.raises(ValueError, match="kind or slot"):  # a float stored past a record
        CSVFAST.Parser(44, b"\x01", np.array([44], np.int32).tobytes(), 0, 48, 0, -1, [],
                       [], months, 1677, 0, 1)
    good = CSVFAST.Parser(44, b"\x01", np.array([8], np.int32).tobytes(), 0, 48, 0, -1, [],
                          [], months, 1677, 0, 1)
    with pytest.raises(ValueError, match="slack"):  # no 8 bytes after the last line
        good.parse(b"1\n", 0, 2, 1, bytearray(48), np.zeros(1, np.int64),
                   np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="records"):  # too small for cap records
        good.parse(b"1\n" + bytes(8), 0, 2, 2, bytearray(48), np.zeros(2, np.int64),
                   np.zeros(2, np.int64), np.zeros(1, np.int64), np.zeros(6, np.int64))
    records = np.zeros(1, [("event_ns", "<i8"), ("v", "<f8"), ("pad", "V32")])
    assert good.parse(b"2.5\n" + bytes(8), 0, 4, 1, records, np.zeros(1, np.int64),
                      np.zeros(1, np.int64), np.zeros(1, np.int64),
                      np.zeros(3, np.int64)) == (1, 0, 1, 4, -1)
    assert records["v"][0] == 2.5


def test_pure_python_switch_leaves_the_numpy_path(tmp_path: Path) -> None:
    """``TRADINGD_PURE_PYTHON=1`` (as for the segment's fast path) turns the C parser off:
    the numpy fast path loads the same bars."""
    import os
    import subprocess
    import sys
    path = tmp_path / "p.csv"
    path.write_text("Date,Open,High,Low,Close,Volume\n2020-01-01,1.5,2,1,1.25,10\n")
    code = ("import sys; from tradingd.producer.loader import native, load_csv, "
            "BUILTIN_FORMATS; r = load_csv(sys.argv[1], BUILTIN_FORMATS['yahoo']); "
            "print(native.CSVFAST is None, r.bars.tobytes().hex())")
    outputs = [subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                              text=True, timeout=120, check=True,
                              env={**os.environ, "TRADINGD_PURE_PYTHON": flag}).stdout.split()
               for flag in ("1", "0")]
    assert outputs[0][0] == "True" and outputs[1][0] == "False"
    assert outputs[0][1] == outputs[1][1]


@pytest.mark.parametrize(("row", "failing"), [
    ("1,2,1,1.5,0", 0), ("1,2,1,1.5,-0", 0), ("0,2,1,1.5,5", 1), ("1,2,1,1.5,-1", 1),
    ("1,1,2,1.5,5", 1), ("3,2,1,1.5,5", 1), ("1,2,1,2.5,5", 1), ("2,2,2,2,0", 0)])
def test_the_c_pass_counts_the_bars_check_values_refuses(row: str, failing: int) -> None:
    """The count only lets an all-good block skip check_values: it must be 0 exactly when
    check_values finds nothing."""
    from tradingd.producer.loader.checks import check_values
    from tradingd.producer.loader.spec import BAR_DTYPE
    assert CSVFAST is not None
    at = {name: int(BAR_DTYPE.fields[name][1]) for name in BAR_DTYPE.names or ()}  # type: ignore[index]
    names = ("open", "high", "low", "close", "volume")
    parser = CSVFAST.Parser(44, b"\x01" * 5, np.array([at[k] for k in names], np.int32)
                            .tobytes(), 0, BAR_DTYPE.itemsize, at["event_ns"], -1, [], [],
                            np.arange(3, dtype=np.int64).tobytes(), 1677, 0, 1,
                            checks=tuple(at[k] for k in names))
    text = (row + "\n").encode() + bytes(8)
    records = np.zeros(1, BAR_DTYPE)
    one = np.zeros(1, np.int64)
    got = parser.parse(text, 0, len(text) - 8, 1, records, one, one.copy(), one.copy(),
                       np.zeros(3, np.int64))
    assert got[:2] == (1, 0) and got[4] == failing
    rows = {k: records[k] for k in names}
    assert int(np.count_nonzero(check_values(rows))) == failing
