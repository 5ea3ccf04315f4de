"""The optional C fast path, loaded only if it was built for this very layout.

``tradingd.segment._fastpath`` (``tradingd/segment/_fastpath.c``) implements publish, the
latest-slot snapshot, the single-record ring read and the spin/futex waits in C; the
pure-Python code in writer.py/reader.py is the reference and the fallback.
``TRADINGD_PURE_PYTHON=1`` forces the fallback (the tests run the protocol both ways).
"""

from __future__ import annotations

import logging
import os
from types import ModuleType

from tradingd.segment import layout as L

log = logging.getLogger(__name__)


def _load() -> ModuleType | None:
    if os.environ.get("TRADINGD_PURE_PYTHON") == "1":
        return None
    try:
        from tradingd.segment import _fastpath
    except ImportError:
        return None
    if f"{L.LAYOUT_FINGERPRINT:016x}" != _fastpath.LAYOUT_FINGERPRINT_HEX:
        log.warning("C fast path built for layout %s, not %016x: rebuild it (pip install -e .);"
                    " using pure Python", _fastpath.LAYOUT_FINGERPRINT_HEX, L.LAYOUT_FINGERPRINT)
        return None
    return _fastpath


FAST = _load()
#: "c" or "python": which implementation of the hot paths this process uses.
IMPLEMENTATION = "c" if FAST is not None else "python"
