"""tradingd.daemon.config: the schema's defaults, the shipped file, and every kind of error."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tradingd import constants as C
from tradingd.daemon.config import (
    SCHEMA,
    Config,
    ConfigInvalid,
    FormatConfig,
    default_config,
    load_config,
    parse_config,
    resolve_group,
)
from tradingd.daemon.schema import Map
from tradingd.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config" / "tradingd.yaml"


def write(tmp_path: Path, text: str, name: str = "tradingd.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    """The formatted problems ``text`` gives, as the operator sees them."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigInvalid) as info:
        load_config(path)
    return [p.format(str(path)) for p in info.value.problems]


# -- defaults and the shipped file ---------------------------------------------------------


def test_empty_file_gives_the_schema_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ""))
    seg = SCHEMA.fields["segment"]
    assert isinstance(seg, Map)
    assert cfg.segment.name == seg.fields["name"].default == C.DEFAULT_SEGMENT_NAME
    assert cfg.segment.mode == 0o640
    assert cfg.segment.group is None
    assert (cfg.segment.symbol_capacity, cfg.segment.ring_capacity) == (64, 65536)
    assert cfg.segment.heartbeat_interval == 0.1
    assert cfg.logging.level == "info"
    assert [s.name for s in cfg.producer.symbols] == ["AAPL", "TSLA", "BTC-USD", "EURUSD"]
    assert cfg.producer.symbols[3].price_decimals == 5
    assert cfg.producer.symbols[1].currency == "USD"  # filled in from the symbol default
    assert cfg.producer.replay.mode == "paced" and cfg.producer.replay.at_end == "loop"
    assert cfg.producer.metrics.port == C.DEFAULT_PRODUCER_METRICS_PORT
    assert cfg.consumer.metrics.port == C.DEFAULT_CONSUMER_METRICS_PORT
    assert cfg.producer.metrics.address == cfg.consumer.metrics.address == \
        C.DEFAULT_METRICS_ADDRESS
    assert cfg.consumer.wait.strategy == "poll" and cfg.consumer.wait.poll_interval == 0.001
    assert cfg.consumer.analysis.window == 512
    assert isinstance(cfg.consumer.heartbeat_timeout_factor, float)


def test_shipped_config_loads_and_spells_out_the_defaults() -> None:
    shipped = load_config(SHIPPED)
    assert shipped == default_config(SHIPPED)
    assert shipped.source_path == SHIPPED
    assert shipped.producer.data_dir == ROOT / "market_data"
    assert shipped.producer.symbols[2].path == ROOT / "market_data" / "crypto" / "BTC-USD.csv"


def test_values_are_frozen(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ""))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.segment.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.producer.formats["x"] = None  # type: ignore[index]


def test_values_are_converted(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, """\
        segment: {mode: "0600", group: adm, heartbeat_interval: 1}
        logging: {level: DEBUG}
        producer:
          replay: {speed: 3600}
          metrics: {address: "::1", port: 0}
        consumer: {metrics: {port: 0}}
        """))
    assert cfg.segment.mode == 0o600
    assert cfg.segment.group == "adm"
    assert cfg.segment.heartbeat_interval == 1.0 and isinstance(
        cfg.segment.heartbeat_interval, float)
    assert cfg.logging.level == "debug"
    assert cfg.producer.replay.speed == 3600.0
    assert cfg.producer.metrics.address == "::1"
    assert cfg.producer.metrics.port == cfg.consumer.metrics.port == 0  # 0 may repeat


@pytest.mark.parametrize(("written", "mode"), [
    ('"0640"', 0o640), ('"640"', 0o640), ('"0o600"', 0o600), ("0644", 0o644), ("384", 0o600),
])
def test_segment_mode_spellings(tmp_path: Path, written: str, mode: int) -> None:
    cfg = load_config(write(tmp_path, f"segment: {{mode: {written}}}\n"))
    assert cfg.segment.mode == mode


def test_custom_format(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, """\
        producer:
          symbols:
            - {name: X, file: x.csv, asset_class: stock, format: semicolons}
          formats:
            semicolons:
              delimiter: ";"
              header: false
              columns: {timestamp: 0, open: 1, high: 2, low: 3, close: 4, volume: null}
              timestamp_format: "%d/%m/%Y %H:%M"
              timezone: America/New_York
        """))
    fmt = cfg.producer.formats["semicolons"]
    assert isinstance(fmt, FormatConfig)
    assert (fmt.delimiter, fmt.header, fmt.timezone) == (";", False, "America/New_York")
    assert (fmt.columns.timestamp, fmt.columns.close, fmt.columns.volume) == (0, 4, None)
    assert cfg.format_of(cfg.producer.symbols[0]) is fmt
    defaults = load_config(write(tmp_path, """\
        producer:
          formats: {plain: {timestamp_format: unix_ms}}
        """))
    plain = defaults.producer.formats["plain"]
    assert plain.columns.timestamp == "Date" and plain.columns.volume == "Volume"
    assert plain.timezone == "UTC" and plain.timestamp_format == "unix_ms"
    assert defaults.format_of(defaults.producer.symbols[0]) == "yahoo"


# -- paths, override -----------------------------------------------------------------------


def test_relative_data_dir_is_relative_to_the_config_file(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, """\
        producer:
          data_dir: ../data
          symbols: [{name: A, file: sub/a.csv, asset_class: stock, format: yahoo}]
        """, name="etc/tradingd.yaml")
    monkeypatch.chdir(tmp_path / "etc")  # load by a relative name from another directory
    cfg = load_config("tradingd.yaml")
    assert cfg.source_path == path
    assert cfg.producer.data_dir == tmp_path / "data"
    assert cfg.producer.symbols[0].file == "sub/a.csv"
    assert cfg.producer.symbols[0].path == tmp_path / "data" / "sub" / "a.csv"


def test_absolute_data_dir_and_file_are_kept(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, f"""\
        producer:
          data_dir: {tmp_path}/abs
          symbols: [{{name: A, file: /srv/a.csv, asset_class: stock, format: yahoo}}]
        """, name="conf/t.yaml"))
    assert cfg.producer.data_dir == tmp_path / "abs"
    assert cfg.producer.symbols[0].path == Path("/srv/a.csv")


def test_segment_override(tmp_path: Path) -> None:
    path = write(tmp_path, "segment: {name: from-file}\n")
    assert load_config(path).segment.name == "from-file"
    assert load_config(path, segment_override="tdtest-x.1").segment.name == "tdtest-x.1"
    with pytest.raises(ConfigInvalid, match=r"--segment: expected a name .*'a/b'"):
        load_config(path, segment_override="a/b")


def test_segment_override_replaces_an_invalid_name_only_in_effect(tmp_path: Path) -> None:
    # The file's own name is still checked: a bad file stays a bad file.
    path = write(tmp_path, "segment: {name: 'bad name'}\n")
    with pytest.raises(ConfigInvalid, match=r"segment\.name"):
        load_config(path, segment_override="good")


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "where", "fragment"), [
    ("producer: {replay: {speed: fast}}", ":1: producer.replay.speed",
     "expected a number > 0 (data seconds per second), got 'fast'"),
    ("producer: {replay: {speed: 0}}", "producer.replay.speed", "expected a number > 0"),
    ("producer: {replay: {speed: .nan}}", "producer.replay.speed", "got nan"),
    ("segment: {ring_capacity: 1000}", "segment.ring_capacity",
     "expected a power of two from 64 to 67108864, got 1000"),
    ("segment: {ring_capacity: 65536.0}", "segment.ring_capacity", "got 65536.0"),
    ("segment: {symbol_capacity: true}", "segment.symbol_capacity", "got true"),
    ("segment: {heartbeat_interval: 20}", "segment.heartbeat_interval",
     "expected a number from 0.01 to 10 (seconds), got 20"),
    ("segment: {name: ../etc}", "segment.name", "no slash"),
    ("segment: {name: ..}", "segment.name", "'.' and '..' are directories"),
    ("segment: {name: ''}", "segment.name", "got ''"),
    ("segment: {mode: 640}", "segment.mode", 'for octal write it quoted: "0640"'),
    ("segment: {mode: '0755'}", "segment.mode", "only read/write bits"),
    ("segment: {mode: '0460'}", "segment.mode", "owner needs rw"),
    ("segment: {mode: rw}", "segment.mode", "got 'rw'"),
    ("segment: {group: 'a b'}", "segment.group", "expected a group name or null"),
    ("logging: {level: loud}", "logging.level",
     "expected one of debug, info, warning, error, got 'loud'"),
    ("producer: {strict: maybe}", "producer.strict", "expected true or false, got 'maybe'"),
    ("producer: {symbols: []}", "producer.symbols", "expected a list of at least 1 entries"),
    ("producer: {symbols: {a: 1}}", "producer.symbols", "got a mapping"),
    ("producer: {symbols: [{name: A, file: a, asset_class: bond, format: yahoo}]}",
     "producer.symbols[0].asset_class", "expected one of stock, crypto, forex, got 'bond'"),
    ("producer: {symbols: [{name: ThisNameIsLongerThan23Chars, file: a, asset_class: stock,"
     " format: yahoo}]}", "producer.symbols[0].name", "1 to 23 printable ASCII"),
    ("producer: {symbols: [{name: no, file: a, asset_class: stock, format: yahoo}]}",
     "producer.symbols[0].name", "got false (YAML read it as a non-string: quote it)"),
    ("producer: {symbols: [{file: a, asset_class: stock, format: yahoo}]}",
     "producer.symbols[0].name", "missing required key"),
    ("producer: {symbols: [{name: A, file: a, asset_class: stock, format: yahoo, "
     "price_decimals: 13}]}", "producer.symbols[0].price_decimals", "from 0 to 12"),
    ("producer: {symbols: [{name: A, file: a, asset_class: stock, format: yaho}]}",
     "producer.symbols[0].format", "got 'yaho' (did you mean 'yahoo'?)"),
    ("producer: {symbols: [{name: A, file: a, asset_class: stock, format: yahoo},"
     " {name: A, file: b, asset_class: stock, format: yahoo}]}",
     "producer.symbols[1].name", "duplicate symbol 'A' (also producer.symbols[0])"),
    ("segment: {symbol_capacity: 2}", "producer.symbols",
     "4 symbols do not fit segment.symbol_capacity = 2"),
    ("producer: {formats: {yahoo: {}}}", "producer.formats.yahoo", "built-in format"),
    ("producer: {formats: {f: {timezone: Mars/Olympus}}}", "producer.formats.f.timezone",
     "IANA time zone"),
    ("producer: {formats: {f: {timestamp_format: '%Q'}}}",
     "producer.formats.f.timestamp_format", "bad directive"),
    ("producer: {formats: {f: {timestamp_format: unix_weeks}}}",
     "producer.formats.f.timestamp_format", "unix_s, unix_ms, unix_us, unix_ns"),
    ("producer: {formats: {f: {delimiter: ';;'}}}", "producer.formats.f.delimiter",
     "a single character"),
    ("producer: {formats: {f: {header: false, columns: {timestamp: 0}}}}",
     "producer.formats.f.columns", "open: 'Open'"),
    ("producer: {formats: {f: {columns: {open: [1]}}}}", "producer.formats.f.columns.open",
     "expected a column name or an integer from 0 to 9999, got a list"),
    ("producer: {replay: {fast_batch_size: 0}}", "producer.replay.fast_batch_size",
     "from 1 to 16777216"),
    ("producer: {metrics: {address: localhost}}", "producer.metrics.address",
     "expected an IP address"),
    ("producer: {metrics: {port: 65536}}", "producer.metrics.port", "from 0 to 65535"),
    ("consumer: {metrics: {port: 9101}}", "consumer.metrics.port",
     "127.0.0.1:9101 is also producer.metrics"),
    ("consumer: {wait: {strategy: sleep}}", "consumer.wait.strategy",
     "expected one of spin, poll, block, got 'sleep'"),
    ("consumer: {wait: {poll_interval: 2}}", "consumer.wait.poll_interval", "got 2"),
    ("consumer: {heartbeat_timeout_factor: 1}", "consumer.heartbeat_timeout_factor",
     "from 2 to 1000"),
    ("consumer: {analysis: {window: 1}}", "consumer.analysis.window", "from 2 to 1000000"),
    ("consumer: {report_interval: -1}", "consumer.report_interval", "> 0"),
    ("segment: 3", "segment", "expected a mapping with keys name, mode"),
])
def test_each_kind_of_error_names_the_key_path(tmp_path: Path, text: str, where: str,
                                               fragment: str) -> None:
    problems = problems_of(tmp_path, text + "\n")
    assert len(problems) == 1, problems
    assert where in problems[0]
    assert fragment in problems[0]
    assert problems[0].startswith(str(tmp_path / "tradingd.yaml") + ":")


def test_unknown_keys_are_errors_with_a_suggestion(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, """\
        segmnet: {name: x}
        producer:
          replay: {sped: 2}
          symbols: [{name: A, file: a, asset_class: stock, format: yahoo, colour: red}]
        """)
    text = "\n".join(problems)
    assert len(problems) == 3, text
    assert ":1: segmnet: unknown key (did you mean 'segment'?)" in text
    assert ":3: producer.replay.sped: unknown key (did you mean 'speed'?)" in text
    assert ":4: producer.symbols[0].colour: unknown key (expected one of name, file," in text


def test_several_errors_are_reported_together_in_file_order(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        segment:
          ring_capacity: 100
          mode: "0777"
        logging: {level: verbose}
        consumer:
          wait: {strategy: sleep}
          metrics: {port: -1}
        """)
    with pytest.raises(ConfigInvalid) as info:
        load_config(path)
    err = info.value
    assert isinstance(err, ConfigError) and err.exit_code == C.EXIT_CONFIG == 78
    assert [p.line for p in err.problems] == [2, 3, 4, 6, 7]
    message = str(err)
    assert message.startswith(f"invalid configuration {path} (5 problems):")
    for key in ("segment.ring_capacity", "segment.mode", "logging.level",
                "consumer.wait.strategy", "consumer.metrics.port"):
        assert key in message


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, """\
        segment:
          name: a
          name: b
        """)
    assert problems == [f"{tmp_path / 'tradingd.yaml'}:3: segment.name: "
                        "duplicate key (first on line 2)"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml does not exist") as info:
        load_config(tmp_path / "nope.yaml")
    assert info.value.exit_code == 78


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_config(tmp_path)


def test_not_yaml_gives_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "segment:\n  name: [unclosed\n")
    with pytest.raises(ConfigError, match=rf"{path}:3:1: not valid YAML") as info:
        load_config(path)
    assert not isinstance(info.value, ConfigInvalid)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_not_a_mapping(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="expected a mapping of sections"):
        load_config(write(tmp_path, text))


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"segment: {name: caf\xe9}\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_resolve_group(tmp_path: Path) -> None:
    assert resolve_group(load_config(write(tmp_path, "segment: {group: root}\n"))) == 0
    assert resolve_group(load_config(write(tmp_path, ""))) is None
    cfg = load_config(write(tmp_path, "segment: {group: tdtest-nogroup}\n"))
    with pytest.raises(ConfigError, match=r"segment\.group: no group named 'tdtest-nogroup'"):
        resolve_group(cfg)


def test_parse_config_without_a_file() -> None:
    cfg = parse_config("segment: {name: inline}\n", Path("/opt/td/conf.yaml"))
    assert isinstance(cfg, Config)
    assert cfg.producer.data_dir == Path("/opt/market_data")  # ../market_data from /opt/td


def test_bad_config_exits_78_without_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "producer: {replay: {speed: fast}}\n")
    proc = subprocess.run([sys.executable, "-m", "tradingd.daemon.configcheck", str(path)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 78
    assert "Traceback" not in proc.stderr
    assert proc.stderr == (f"tradingd-config: invalid configuration: {path}:1: "
                           "producer.replay.speed: expected a number > 0 (data seconds per "
                           "second), got 'fast'\n")


def test_checker_prints_the_values_used(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "tradingd.daemon.configcheck",
                           "--config", str(SHIPPED),
                           "--segment", "tdtest-print"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "name: tdtest-print" in proc.stdout
    assert "mode: '0640'" in proc.stdout


def _checked(path: Path, *extra: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "tradingd.daemon.configcheck", str(path),
                           *extra], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("text", [
    None,  # the shipped file
    """\
    segment: {name: tdtest-rt, group: tradingd, mode: "0600"}
    producer:
      data_dir: /srv/data
      formats:
        semicolons:
          delimiter: ";"
          header: false
          columns: {timestamp: 0, open: 1, high: 2, low: 3, close: 4, volume: null}
          timestamp_format: "%d/%m/%Y %H:%M"
          timezone: America/New_York
      symbols:
        - {name: X, file: x.csv, asset_class: stock, format: semicolons}
    """,
])
def test_printed_values_are_a_config_that_round_trips(tmp_path: Path, text: str | None) -> None:
    """What tradingd-config prints is a valid file that means the same (printed again: the
    same, but for the first line naming the file)."""
    source = SHIPPED if text is None else write(tmp_path, text, "in.yaml")
    first = _checked(source)
    printed = tmp_path / "printed.yaml"
    printed.write_text(first)
    second = _checked(printed)
    assert second.splitlines()[0] == f"# {printed}: valid"
    assert second.splitlines()[1:] == first.splitlines()[1:]
    assert load_config(printed) == dataclasses.replace(load_config(source),
                                                       source_path=printed)
    assert "path:" not in first and "source_path" not in first  # derived values stay out


def _leaf_paths(value: object, path: tuple = ()) -> list[tuple]:
    if isinstance(value, dict):
        return [path, *(p for k, v in value.items() for p in _leaf_paths(v, (*path, k)))]
    if isinstance(value, list):
        return [path, *(p for i, v in enumerate(value) for p in _leaf_paths(v, (*path, i)))]
    return [path]


@pytest.mark.parametrize("junk", [None, [], "x", -1, True])
def test_any_wrong_value_anywhere_is_a_config_error_never_a_crash(junk: object) -> None:
    import copy

    import yaml

    shipped = yaml.safe_load(SHIPPED.read_text())
    shipped["producer"]["formats"] = {"f": {"columns": {"timestamp": 0}}}
    for path in _leaf_paths(shipped)[1:]:
        data = copy.deepcopy(shipped)
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = junk
        try:
            parse_config(yaml.dump(data, Dumper=yaml.CSafeDumper), SHIPPED)
        except ConfigInvalid as exc:
            assert exc.problems, path
