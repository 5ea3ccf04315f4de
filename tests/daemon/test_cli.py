"""tradingd.daemon.cli: how commands end (real processes) and the shared options."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tradingd import constants as C
from tradingd.daemon import cli
from tradingd.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def run_body(body: str, *, stderr_file: Path | None = None,
             journal: bool = False) -> subprocess.CompletedProcess[str]:
    """Run ``body`` (the inside of a command's main function) through run_main."""
    code = textwrap.dedent("""\
        import sys
        from tradingd import errors
        from tradingd.daemon.cli import run_main

        def main():
        {body}

        run_main(main, "tdtest-cmd")
        """).format(body=textwrap.indent(textwrap.dedent(body), "    "))
    env = dict(os.environ)
    env.pop("JOURNAL_STREAM", None)
    if stderr_file is None:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, timeout=30)
    with open(stderr_file, "w") as err:
        if journal:
            st = os.fstat(err.fileno())
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              stderr=err, text=True, env=env, timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout,
                                       stderr_file.read_text())


@pytest.mark.parametrize(("body", "code", "stderr"), [
    ("return None", 0, ""),
    ("return 3", 3, ""),
    ("raise errors.ConfigError('cfg.yaml:3: segment.name: expected a name')", 78,
     "tdtest-cmd: cfg.yaml:3: segment.name: expected a name\n"),
    ("raise errors.SegmentOwned('/dev/shm/x', 'owned by live producer PID 42')", 73,
     "tdtest-cmd: segment /dev/shm/x: owned by live producer PID 42\n"),
    ("raise errors.DataError('a.csv: no such file')", 66, "tdtest-cmd: a.csv: no such file\n"),
    ("raise errors.TradingdError('plain failure')", 1, "tdtest-cmd: plain failure\n"),
    ("sys.exit(9)", 9, ""),
])
def test_exit_codes_and_messages(body: str, code: int, stderr: str) -> None:
    proc = run_body(body)
    assert proc.returncode == code
    assert proc.stderr == stderr  # exactly the message: no traceback, no noise


def test_keyboard_interrupt_exits_130() -> None:
    proc = run_body("raise KeyboardInterrupt")
    assert proc.returncode == 130
    assert "Traceback" not in proc.stderr


def test_a_bug_shows_its_traceback_and_exits_1() -> None:
    proc = run_body("return {}['missing']")
    assert proc.returncode == 1
    assert "Traceback (most recent call last):" in proc.stderr
    assert "KeyError: 'missing'" in proc.stderr


def test_a_bug_is_logged_through_logging_when_set_up(tmp_path: Path) -> None:
    """Under journald every traceback line must carry the priority prefix."""
    proc = run_body("""\
        from tradingd.daemon.logs import setup_logging
        setup_logging("tdtest-cmd", "info")
        raise RuntimeError("bug")
        """, stderr_file=tmp_path / "stderr", journal=True)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[0] == "<2>internal error (a bug, please report it)"
    assert "<2>RuntimeError: bug" in lines
    assert all(line.startswith("<2>") for line in lines)


def test_expected_error_under_journald_is_filed_as_err(tmp_path: Path) -> None:
    proc = run_body("raise errors.ConfigError('bad\\nsecond line')",
                    stderr_file=tmp_path / "stderr", journal=True)
    assert proc.returncode == 78
    assert proc.stderr == "<3>tdtest-cmd: bad\n<3>second line\n"


def test_broken_pipe_exits_quietly() -> None:
    code = ("from tradingd.daemon.cli import run_main\n"
            "def main():\n"
            "    for i in range(100000):\n"
            "        print('line', i)\n"
            "run_main(main, 'tdtest-cmd')\n")
    proc = subprocess.run(f"{sys.executable} -c \"{code}\" | head -n 1", shell=True,
                          capture_output=True, text=True, timeout=30,
                          executable="/bin/bash")
    assert proc.stdout == "line 0\n"
    assert proc.stderr == ""


# -- the common options --------------------------------------------------------------------


def test_default_config_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    etc = tmp_path / "etc-tradingd.yaml"
    monkeypatch.setattr(C, "DEFAULT_CONFIG_PATH", str(etc))
    assert cli.default_config_path({}) == "config/tradingd.yaml"  # /etc file absent
    etc.write_text("")
    assert cli.default_config_path({}) == str(etc)
    assert cli.default_config_path({"TRADINGD_CONFIG": "/x/y.yaml"}) == "/x/y.yaml"
    assert cli.default_config_path({"TRADINGD_CONFIG": ""}) == str(etc)  # empty = unset


def test_common_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("segment: {name: from-file}\nlogging: {level: warning}\n")
    parser = cli.common_parser("tdtest-cmd", "test")
    args = parser.parse_args(["--config", str(config)])
    cfg = cli.config_from_args(args)
    assert cfg.segment.name == "from-file"
    assert cli.log_level(args, cfg) == "warning"
    args = parser.parse_args(["--config", str(config), "--segment", "tdtest-1",
                              "--log-level", "DEBUG"])
    cfg = cli.config_from_args(args)
    assert cfg.segment.name == "tdtest-1"
    assert cli.log_level(args, cfg) == "debug"
    monkeypatch.setenv("TRADINGD_CONFIG", str(config))
    cfg = cli.config_from_args(parser.parse_args([]))
    assert cfg.source_path == config


def test_missing_config_is_a_config_error(tmp_path: Path) -> None:
    args = cli.common_parser("tdtest-cmd", "test").parse_args(
        ["--config", str(tmp_path / "none.yaml")])
    with pytest.raises(ConfigError, match=r"none\.yaml does not exist"):
        cli.config_from_args(args)


@pytest.mark.parametrize("argv", [["--segment", "a/b"], ["--segment", ".."],
                                  ["--log-level", "loud"], ["--bogus"]])
def test_bad_command_line_exits_64(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.common_parser("tdtest-cmd", "test")
    with pytest.raises(SystemExit) as info:
        parser.parse_args(argv)
    assert info.value.code == C.EXIT_USAGE == 64
    err = capsys.readouterr().err
    assert err.startswith("usage: tdtest-cmd")
    assert "tdtest-cmd: error:" in err


def test_help_documents_the_search_order(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.common_parser("tdtest-cmd", "test").parse_args(["--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "$TRADINGD_CONFIG, else /etc/tradingd/tradingd.yaml if it exists, else " \
           "./config/tradingd.yaml" in out


# -- the daemons' metrics options ----------------------------------------------------------


def test_metrics_port_and_no_metrics_override_the_daemons_section(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("producer: {metrics: {port: 9999}}\nconsumer: {metrics: {port: 9998}}\n")
    parser = cli.daemon_parser("tdtest-cmd", "test", "consumer")
    cfg = cli.config_from_args(parser.parse_args(["--config", str(config)]))
    assert (cfg.consumer.metrics.port, cfg.consumer.metrics.enabled) == (9998, True)
    cfg = cli.config_from_args(parser.parse_args(["--config", str(config),
                                                  "--metrics-port", "0"]))
    assert (cfg.consumer.metrics.port, cfg.consumer.metrics.enabled) == (0, True)
    assert cfg.producer.metrics.port == 9999  # only the daemon's own section
    cfg = cli.config_from_args(parser.parse_args(["--config", str(config), "--no-metrics"]))
    assert cfg.consumer.metrics.enabled is False and cfg.consumer.metrics.port == 9998
    off = tmp_path / "off.yaml"
    off.write_text("producer: {metrics: {enabled: false}}\n")
    cfg = cli.config_from_args(cli.daemon_parser("p", "t", "producer").parse_args(
        ["--config", str(off), "--metrics-port", "1234"]))
    assert (cfg.producer.metrics.port, cfg.producer.metrics.enabled) == (1234, True)


def test_metrics_options_reach_a_dotted_section(tmp_path: Path) -> None:
    """exec's section, and the bridge's per mode (``bridge.mirror``), only that one."""
    config = tmp_path / "c.yaml"
    config.write_text("bridge: {publish: {metrics: {port: 9997}}, "
                      "mirror: {metrics: {port: 9996}}}\n")
    parser = cli.daemon_parser("tdtest-cmd", "test", "bridge.<mode>")
    args = parser.parse_args(["--config", str(config), "--metrics-port", "0"])
    args.metrics_section = "bridge.mirror"
    cfg = cli.config_from_args(args)
    assert cfg.bridge is not None
    assert (cfg.bridge.mirror.metrics.port, cfg.bridge.publish.metrics.port) == (0, 9997)
    args = parser.parse_args(["--config", str(config), "--no-metrics"])
    args.metrics_section = "bridge.publish"
    cfg = cli.config_from_args(args)
    assert cfg.bridge is not None
    assert cfg.bridge.publish.metrics.enabled is False and cfg.bridge.mirror.metrics.enabled
    cfg = cli.config_from_args(cli.daemon_parser("x", "t", "exec").parse_args(
        ["--config", str(config), "--metrics-port", "4321"]))
    assert cfg.exec is not None and cfg.exec.metrics.port == 4321


@pytest.mark.parametrize("argv", [["--metrics-port", "x"], ["--metrics-port", "65536"],
                                  ["--metrics-port", "-1"],
                                  ["--metrics-port", "1", "--no-metrics"]])
def test_bad_metrics_options_exit_64(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.daemon_parser("tdtest-cmd", "test", "producer").parse_args(argv)
    assert info.value.code == C.EXIT_USAGE
    assert "tdtest-cmd: error:" in capsys.readouterr().err


def test_tools_have_no_metrics_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.common_parser("tdtest-cmd", "test").parse_args(["--no-metrics"])
