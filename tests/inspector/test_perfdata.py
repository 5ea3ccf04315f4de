"""``check``'s perfdata follows the monitoring-plugins development guidelines exactly.

https://www.monitoring-plugins.org/doc/guidelines.html#AEN200:
``'label'=value[UOM];[warn];[crit];[min];[max]``, space separated; value, min and max in
the class ``[-0-9.]`` and in one unit, which only the value carries; warn and crit in the
range format; UOM one of s % B KB MB TB c (or none); trailing unfilled semicolons dropped;
the label quoted when it holds a space, and never holding ``=`` or ``'``.
"""

from __future__ import annotations

import re

import pytest
from inspector_support import Producer, inspect_cli

from tradingd.inspector.check import perfdata

_NUM = r"-?[0-9.]+"
_RANGE = rf"@?(?:{_NUM}|~)?:?(?:{_NUM})?"
ITEM = re.compile(rf"(?:'[^'=]+'|[^'= ]+)={_NUM}(?:s|%|B|KB|MB|TB|c)?"
                  rf"(?:;{_RANGE}(?:;{_RANGE}(?:;(?:{_NUM})?(?:;(?:{_NUM})?)?)?)?)?")


def assert_guideline(perf: str) -> list[str]:
    """Split a perfdata string into items, each checked against the guideline's grammar."""
    items = re.findall(r"(?:'[^']*'|[^ '])+", perf)  # spaces separate, except in quotes
    assert " ".join(items) == perf, perf
    for item in items:
        assert ITEM.fullmatch(item), f"not guideline perfdata: {item!r}"
        assert not item.endswith(";"), f"trailing empty fields kept: {item!r}"
    return items


@pytest.mark.parametrize(("args", "expected"), [
    (("heartbeat_age", 0.0123, "s", None, 0.5), "heartbeat_age=0.0123s;;0.5"),
    (("data_age", 1.25, "s"), "data_age=1.25s"),  # no thresholds: no semicolons at all
    (("data_age", 1.25, "s", 0.1), "data_age=1.25s;0.1"),
    (("data_age", 1.25, "s", None, 0.3), "data_age=1.25s;;0.3"),
    (("data_age", 2.0, "s", 0.1, 0.3), "data_age=2s;0.1;0.3"),
    (("records", 123456, "c"), "records=123456c"),
    (("lag", 7, "", None, None, 0, 64), "lag=7;;;0;64"),
    (("data age", 0.000001, "s", 0.00001), "'data age'=0.000001s;0.00001"),  # no 1e-05
    (("x", 0.0000001, "s"), "x=0s"),  # below a microsecond: 0, not -0 or an exponent
])
def test_perfdata_items(args: tuple, expected: str) -> None:
    assert perfdata(*args) == expected
    assert_guideline(expected)


@pytest.mark.parametrize(("label", "uom"), [("a=b", "s"), ("it's", "s"), ("", "s"),
                                            ("age", "ms")])
def test_perfdata_refuses_what_the_guideline_forbids(label: str, uom: str) -> None:
    with pytest.raises(ValueError):
        perfdata(label, 1.0, uom)


def test_check_output_is_guideline_perfdata(live: Producer) -> None:
    r = inspect_cli("check", "--segment", live.segment, "--data-stale", "30",
                    "--data-stale-critical", "60.5")
    assert r.code == 0, r.out
    line = r.out.rstrip("\n")
    assert "\n" not in line and line.count(" | ") == 1
    items = assert_guideline(line.split(" | ")[1])
    by_label = {i.split("=")[0]: i.split("=")[1].split(";") for i in items}
    assert set(by_label) == {"heartbeat_age", "records", "data_age"}
    hb = by_label["heartbeat_age"]
    assert hb[0].endswith("s") and hb[1] == "" and float(hb[2]) >= 0.5  # crit: the timeout
    assert by_label["data_age"][1:] == ["30", "60.5"]  # thresholds in seconds, no unit
    assert by_label["records"][0].endswith("c") and len(by_label["records"]) == 1
