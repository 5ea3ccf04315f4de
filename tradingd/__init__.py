"""tradingd: market data between processes through one POSIX shared-memory segment.

The producer owns the segment and is its only writer; consumers attach read-only.
See ``tradingd.layout`` for the segment format, ``tradingd.writer`` and
``tradingd.reader`` for the two sides of it.
"""

__version__ = "1.0.0"

__all__ = ["__version__"]
