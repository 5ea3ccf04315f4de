"""Time zones as users write them: IANA names and fixed UTC offsets, never a silent sign flip.

Used by the config schema (``producer.formats.*.timezone``) and the loader, so both accept
and refuse exactly the same texts. Accepted:

* an IANA name known to this machine (``UTC``, ``America/New_York``, ``Asia/Kolkata``);
* a fixed offset east of UTC: ``+05:30``, ``-05:00``, ``+0530``, ``-5``, ``UTC-5``,
  ``UTC+05:30``, ``GMT+1`` (data in "EST without daylight saving" is ``-05:00``).

Refused: ``Etc/GMT+N`` / ``Etc/GMT-N``. POSIX inverts their sign (``Etc/GMT-5`` is
UTC\\ **+**\\ 5), which reads the opposite way to every other notation: a user who meant
UTC-5 would load data 10 hours off without any sign of it. The refusal spells out what the
name means and what to write instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_OFFSET_RE = re.compile(r"(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?", re.ASCII | re.I)
_ETC_GMT_RE = re.compile(r"(?:Etc/)?GMT([+-])(\d{1,2})", re.ASCII)

EXPECTED = ("an IANA time zone name (UTC, America/New_York) or a fixed UTC offset "
            "(+05:30, -05:00, UTC-5)")


@dataclass(frozen=True)
class Zone:
    """A parsed zone: a fixed offset (seconds east of UTC) or an IANA zone."""

    name: str
    offset_s: int | None  # fixed offset; None: ``info`` decides
    info: ZoneInfo | None

    @property
    def is_utc(self) -> bool:
        return self.offset_s == 0


def _fmt_offset(seconds: int) -> str:
    sign = "-" if seconds < 0 else "+"
    h, m = divmod(abs(seconds) // 60, 60)
    return f"{sign}{h:02d}:{m:02d}"


def parse_zone(name: str) -> Zone:
    """The zone ``name`` stands for; ValueError saying why not (and what to write)."""
    text = name.strip()
    if text.upper() in ("UTC", "Z", "GMT", "ETC/UTC", "ETC/GMT", "UTC+0", "UTC-0"):
        return Zone(name, 0, None)
    etc = _ETC_GMT_RE.fullmatch(text)
    if etc and text.startswith("Etc/"):
        sign, hours = etc.groups()
        meant = -int(hours) * 3600 if sign == "+" else int(hours) * 3600
        raise ValueError(
            f"{text!r} is POSIX notation with the sign inverted: it means UTC"
            f"{_fmt_offset(meant)}, not UTC{sign}{int(hours)}. Write the offset instead: "
            f"{_fmt_offset(meant)!r} for UTC{_fmt_offset(meant)}, or "
            f"{_fmt_offset(-meant)!r} for UTC{_fmt_offset(-meant)}")
    fixed = _OFFSET_RE.fullmatch(text)
    if fixed:
        sign, hours, minutes = fixed.groups()
        h, m = int(hours), int(minutes or 0)
        if h > 14 or m > 59 or (h == 14 and m):
            raise ValueError(f"{text!r}: a UTC offset is between -14:00 and +14:00")
        seconds = (h * 3600 + m * 60) * (-1 if sign == "-" else 1)
        return Zone(name, seconds, None)
    try:
        info = ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{text!r}: expected {EXPECTED}") from None
    return Zone(name, None, info)


def zone_problem(name: str) -> str | None:
    """Why ``name`` is not a usable zone, or None (for the config schema's checks)."""
    try:
        parse_zone(name)
    except ValueError as exc:
        return str(exc)
    return None
