"""The optional C fast path, loaded only if it was built for this very layout.

``tradingd.segment._fastpath`` (``tradingd/segment/_fastpath.c``) implements publish, the
latest-slot snapshot, the single-record ring read and the spin/futex waits in C; the
pure-Python code in writer.py/reader.py is the reference and the fallback.
``TRADINGD_PURE_PYTHON=1`` forces the fallback (the tests run the protocol both ways).
"""

from __future__ import annotations

import importlib
import logging
import os
from types import ModuleType

from tradingd.segment import layout as L

log = logging.getLogger(__name__)


#: set to 1, every optional C extension of tradingd stays unloaded: the pure-Python
#: references serve (tests run both ways; an operator's way out of a C bug).
PURE_PYTHON_ENV = "TRADINGD_PURE_PYTHON"


def optional_extension(module: str) -> ModuleType | None:
    """The C extension ``module`` (dotted name), or None where the pure-Python reference
    must serve: ``TRADINGD_PURE_PYTHON=1``, or the extension was not built (no compiler at
    install time). Callers check that it was built for their layout before using it."""
    if os.environ.get(PURE_PYTHON_ENV) == "1":
        return None
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _load() -> ModuleType | None:
    _fastpath = optional_extension("tradingd.segment._fastpath")
    if _fastpath is None:
        return None
    if f"{L.LAYOUT_FINGERPRINT:016x}" != _fastpath.LAYOUT_FINGERPRINT_HEX:
        log.warning("C fast path built for layout %s, not %016x: rebuild it (pip install -e .);"
                    " using pure Python", _fastpath.LAYOUT_FINGERPRINT_HEX, L.LAYOUT_FINGERPRINT)
        return None
    return _fastpath


FAST = _load()
#: "c" or "python": which implementation of the hot paths this process uses.
IMPLEMENTATION = "c" if FAST is not None else "python"
