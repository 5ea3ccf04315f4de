"""The README's market-data section: its format examples are valid config, its commands run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tradingd.daemon.config import parse_config
from tradingd.producer.loader import csv_format

README = Path(__file__).resolve().parents[2] / "README.md"
BIN = Path(sys.executable).parent


def section() -> str:
    text = README.read_text()
    start = text.index("## Market data: formats, checks, the load cache")
    return text[start:text.index("\n## ", start + 10)]


def test_format_examples_are_accepted_by_the_config_and_the_loader(tmp_path: Path) -> None:
    text = section()
    block = text[text.index("```yaml\n") + 8:]
    block = block[:block.index("```")]
    config = parse_config("producer:\n  formats:\n" + block, tmp_path / "c.yaml")
    names = set(yaml.safe_load("formats:\n" + block)["formats"])
    assert names == {"investing", "mt4", "cryptodatadownload"} == set(config.producer.formats)
    for fmt in config.producer.formats.values():
        csv_format(fmt)


def test_every_key_of_the_format_schema_is_documented() -> None:
    from tradingd.daemon.config import FORMAT
    text = section()
    for key in FORMAT.fields:
        assert f"| `{key}` |" in text, key


def test_the_commands_shown_run(tmp_path: Path) -> None:
    repo = README.parent
    for line in section().splitlines():
        if not line.startswith(".venv/bin/tradingd-data"):
            continue
        args = line.split("#")[0].split()[1:]
        if "my.csv" in args:
            continue  # a placeholder file name
        res = subprocess.run([str(BIN / "tradingd-data"), *args], cwd=repo,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, (line, res.stdout, res.stderr)
