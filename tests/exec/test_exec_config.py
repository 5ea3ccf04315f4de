"""The ``exec:`` config section: defaults, errors with file:line and key path, port clash."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradingd import constants as C
from tradingd.daemon.config import ConfigError, default_config, parse_config


def test_defaults_come_from_the_constants() -> None:
    x = default_config().exec
    assert x is not None
    assert x.metrics.port == C.DEFAULT_EXEC_METRICS_PORT == 9106
    assert x.poll_budget == C.DEFAULT_EXEC_POLL_BUDGET
    assert x.journal is None and x.wait.strategy == "poll" and x.mode == 0o640


def test_bundled_config_spells_out_the_exec_defaults() -> None:
    repo = Path(__file__).resolve().parents[2] / "config" / "tradingd.yaml"
    path = repo
    bundled = parse_config(path.read_text(), path).exec
    assert bundled == default_config(str(path)).exec


def test_journal_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    cfg = parse_config("exec: {journal: state/exec.journal}\n", tmp_path / "t.yaml")
    assert cfg.exec is not None and cfg.exec.journal == tmp_path / "state" / "exec.journal"


@pytest.mark.parametrize(("text", "expected"), [
    ("exec:\n  poll_budgt: 5\n", "t.yaml:2: exec.poll_budgt: unknown key (did you mean "
                                 "'poll_budget'?)"),
    ("exec:\n  participation: 1.5\n", "t.yaml:2: exec.participation"),
    ("exec:\n  report_ring_capacity: 1000\n", "exec.report_ring_capacity"),
    ("exec:\n  risk: {max_open_orders: -1}\n", "exec.risk.max_open_orders"),
    ("exec:\n  metrics: {port: 9101}\n", "exec.metrics.port: 127.0.0.1:9101 is also "
                                         "producer.metrics"),
])
def test_bad_exec_keys_are_named(text: str, expected: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(text, tmp_path / "t.yaml")
    assert expected in str(exc.value)
