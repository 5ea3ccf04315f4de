"""Types of the one-pass CSV parser (``_csvfast.c``): what mypy checks its callers against.

Kept beside the C source; checked against the built extension by ``mypy.stubtest``
(tests/segment/test_typing.py).
"""

from typing import Any, final

import numpy as np
from typing_extensions import Buffer

_Layout = tuple[int, int, bytes, bytes, bytes, list[int], tuple[int, ...]]

@final
class Parser:
    """A plan compiled for the one-pass parser (see native.py)."""

    def __init__(self, delimiter: int, kinds: Buffer, slots: Buffer, noffsets: int,
                 stride: int, event_at: int, zero_at: int, stamps: list[_Layout],
                 times: list[_Layout], month_starts: Buffer, first_year: int, min_day: int,
                 max_day: int, thousands: int = ..., decimal: int = ...,
                 checks: tuple[int, int, int, int, int] | None = ...) -> None: ...
    def parse(self, buf: Buffer, start: int, stop: int, cap: int,
              records: Buffer | np.ndarray[Any, Any], lines: np.ndarray[Any, Any],
              starts: np.ndarray[Any, Any], offsets: np.ndarray[Any, Any],
              flagged: np.ndarray[Any, Any], /) -> tuple[int, int, int, int, int]: ...

def parse_number(text: Buffer, /) -> float | None: ...
def parse_formatted(text: Buffer, thousands: int, decimal: int, suffixes: bool, /
                    ) -> float | None: ...
