"""Facts the README states that the code declares: they must not drift apart."""

from __future__ import annotations

import re
from pathlib import Path

from tradingd import constants as C

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_exit_code_table_matches_the_constants() -> None:
    text = README.read_text()
    table = text[text.index("## Exit codes"):]
    table = table[:table.index("\n\n", table.index("| code |"))]
    rows = {int(code): restart.strip() for code, restart in
            re.findall(r"^\| (\d+) \|[^|]*\| ([^|]*) \|$", table, re.M)}
    declared = {v for k, v in vars(C).items()
                if k.startswith("EXIT_")
                and k not in ("EXIT_SEGMENT_PROBLEM", "EXIT_DATA_CHECK_REJECTS")}
    assert set(rows) == declared, "README exit-code table differs from tradingd/constants.py"
    permanent = {code for code, restart in rows.items() if restart == "no"}
    assert permanent == set(C.PERMANENT_EXIT_CODES)
