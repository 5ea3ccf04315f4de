"""tradingd.daemon.logs: journald priority prefixes, plain lines, once/rate-limited logging."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from tradingd.clock import ManualClock
from tradingd.daemon.logs import (
    OnceLogger,
    RateLimitedLog,
    is_journal_stream,
    journal_priority,
    parse_level,
    setup_logging,
)

PLAIN_RE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (\w+) tdtest-prog: (.*)")


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)
    logging.captureWarnings(False)


def journal_env(stream: IO[Any]) -> dict[str, str]:
    st = os.fstat(stream.fileno())
    return {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}


def emit_all(log: logging.Logger) -> None:
    log.debug("debug line")
    log.info("info line")
    log.warning("warning line")
    log.error("error line")
    log.critical("critical line")


def test_priority_prefixes_when_stderr_is_the_journal(tmp_path: Path) -> None:
    with open(tmp_path / "journal", "w+") as stream:
        setup_logging("tdtest-prog", "debug", stream=stream, env=journal_env(stream))
        emit_all(logging.getLogger("tradingd.test"))
        stream.seek(0)
        assert stream.read().splitlines() == [
            "<7>debug line", "<6>info line", "<4>warning line", "<3>error line",
            "<2>critical line"]


def test_every_traceback_line_carries_the_prefix(tmp_path: Path) -> None:
    with open(tmp_path / "journal", "w+") as stream:
        setup_logging("tdtest-prog", "info", stream=stream, env=journal_env(stream))
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            logging.getLogger("tradingd.test").exception("it failed")
        stream.seek(0)
        lines = stream.read().splitlines()
    assert lines[0] == "<3>it failed"
    assert lines[1] == "<3>Traceback (most recent call last):"
    assert lines[-2:] == ["<3>ValueError: boom", "<3>second line"]
    assert all(line.startswith("<3>") for line in lines)


def test_plain_lines_when_run_by_hand(tmp_path: Path) -> None:
    with open(tmp_path / "err", "w+") as stream:
        setup_logging("tdtest-prog", "info", stream=stream, env={})
        emit_all(logging.getLogger("tradingd.test"))
        stream.seek(0)
        lines = stream.read().splitlines()
    parsed = [PLAIN_RE.fullmatch(line) for line in lines]
    assert all(parsed), lines
    assert [(m.group(1), m.group(2)) for m in parsed if m] == [
        ("INFO", "info line"), ("WARNING", "warning line"), ("ERROR", "error line"),
        ("CRITICAL", "critical line")]


def test_journal_stream_of_another_file_means_plain(tmp_path: Path) -> None:
    """JOURNAL_STREAM inherited, but stderr redirected elsewhere: no prefixes."""
    with open(tmp_path / "other", "w") as other, open(tmp_path / "err", "w+") as stream:
        env = journal_env(other)
        assert not is_journal_stream(stream, env)
        assert is_journal_stream(other, env)
        setup_logging("tdtest-prog", "info", stream=stream, env=env)
        logging.getLogger("x").info("hello")
        stream.seek(0)
        assert PLAIN_RE.fullmatch(stream.read().rstrip("\n"))


@pytest.mark.parametrize("value", ["", "garbage", "1:", ":2", "x:y"])
def test_bad_journal_stream_values(tmp_path: Path, value: str) -> None:
    with open(tmp_path / "err", "w") as stream:
        assert not is_journal_stream(stream, {"JOURNAL_STREAM": value})
    assert not is_journal_stream(io.StringIO(), {"JOURNAL_STREAM": "1:2"})


def test_real_process_under_a_journal_stream(tmp_path: Path) -> None:
    """A child whose stderr really is the file named by JOURNAL_STREAM (as systemd does)."""
    err_path = tmp_path / "stderr"
    code = ("import logging; from tradingd.daemon.logs import setup_logging; "
            "setup_logging('tdtest-prog', 'info'); log = logging.getLogger('tradingd.x'); "
            "log.info('started'); log.warning('careful'); log.debug('hidden')")
    with open(err_path, "w") as err:
        env = {**os.environ, **journal_env(err)}
        subprocess.run([sys.executable, "-c", code], stderr=err, env=env, check=True,
                       timeout=30)
        env.pop("JOURNAL_STREAM")
        subprocess.run([sys.executable, "-c", code], stderr=err, env=env, check=True,
                       timeout=30)
    lines = err_path.read_text().splitlines()
    assert lines[:2] == ["<6>started", "<4>careful"]
    assert [PLAIN_RE.fullmatch(line).groups() for line in lines[2:]] == [  # type: ignore
        ("INFO", "started"), ("WARNING", "careful")]


def test_setup_logging_replaces_its_own_handler_only() -> None:
    root = logging.getLogger()
    other = logging.NullHandler()
    root.addHandler(other)
    first = setup_logging("tdtest-prog", "info", stream=io.StringIO(), env={})
    second = setup_logging("tdtest-prog", "warning", stream=io.StringIO(), env={})
    assert first not in root.handlers
    assert second in root.handlers and other in root.handlers
    assert root.level == logging.WARNING
    root.removeHandler(other)


def test_levels() -> None:
    assert parse_level("DEBUG") == logging.DEBUG
    assert parse_level("warning") == logging.WARNING
    assert parse_level(15) == 15
    with pytest.raises(ValueError, match="debug, info, warning, error"):
        parse_level("verbose")
    assert [journal_priority(n) for n in (5, 10, 20, 25, 30, 40, 50)] == [7, 7, 6, 6, 4, 3, 2]


def test_once_logger_logs_transitions_only(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("tdtest.once")
    once = OnceLogger(log)
    states = ["down", "down", "down", "up", "up", "down", "up", "up"]
    with caplog.at_level(logging.INFO, "tdtest.once"):
        logged = [once.transition("producer", s, logging.INFO, "producer %s", s)
                  for s in states]
        # another key is independent
        assert once.transition("data", "stale", logging.WARNING, "data %s", "stale")
    assert logged == [True, False, False, True, False, True, True, False]
    assert [r.getMessage() for r in caplog.records] == [
        "producer down", "producer up", "producer down", "producer up", "data stale"]
    assert once.state("producer") == "up"
    assert caplog.records[-1].levelno == logging.WARNING


def test_once_logger_once_and_reset(caplog: pytest.LogCaptureFixture) -> None:
    once = OnceLogger(logging.getLogger("tdtest.once"))
    with caplog.at_level(logging.INFO, "tdtest.once"):
        assert [once.once("waiting", logging.INFO, "waiting") for _ in range(3)] == [
            True, False, False]
        once.reset("waiting")
        assert once.once("waiting", logging.INFO, "waiting again")
        once.reset()
        assert once.state("waiting") is None
    assert [r.getMessage() for r in caplog.records] == ["waiting", "waiting again"]


def test_rate_limited_log(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    rl = RateLimitedLog(logging.getLogger("tdtest.rl"), interval=10.0, clock=clock)
    with caplog.at_level(logging.INFO, "tdtest.rl"):
        assert rl.warning("attach", "cannot attach: %s", "ENOENT")
        for _ in range(7):
            clock.advance(1)
            assert not rl.warning("attach", "cannot attach: %s", "ENOENT")
        assert rl.suppressed("attach") == 7
        assert rl.error("scrape", "scrape failed")  # another key is not limited
        clock.advance(3)  # 10 s after the first
        assert rl.warning("attach", "cannot attach: %s", "EACCES")
        assert rl.suppressed("attach") == 0
        clock.advance(1)
        assert not rl.warning("attach", "cannot attach: %s", "EACCES")
        assert rl.clear("attach") == 1
        assert rl.info("attach", "cannot attach: %s", "new incident")  # logged at once
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "cannot attach: ENOENT"),
        ("ERROR", "scrape failed"),
        ("WARNING", "cannot attach: EACCES (7 similar messages suppressed)"),
        ("INFO", "cannot attach: new incident"),
    ]


def test_rate_limited_log_keeps_the_traceback(caplog: pytest.LogCaptureFixture) -> None:
    rl = RateLimitedLog(logging.getLogger("tdtest.rl"), interval=10.0, clock=ManualClock())
    with caplog.at_level(logging.DEBUG, "tdtest.rl"):
        try:
            raise OSError("disk on fire")
        except OSError:
            assert rl.error("io", "write failed", exc_info=True)
            assert not rl.debug("io", "write failed", exc_info=True)
    assert len(caplog.records) == 1
    assert caplog.records[0].exc_info is not None
