"""tradingd: market data between processes through one POSIX shared-memory segment.

The tree follows the data path, one wing per stage:

* :mod:`tradingd.producer`: CSV files -> loader -> replay -> the producer daemon;
* :mod:`tradingd.segment`: the segment format and its single-writer protocol, the one
  thing every side shares;
* :mod:`tradingd.consumer`: follow the segment -> analytics -> the consumer daemon;
* :mod:`tradingd.inspector`: ``tradingd-inspect``, the operator's view of a segment;
* :mod:`tradingd.daemon`: plumbing (sd_notify, logging, signals, config, command line).

``errors``, ``clock`` and ``constants`` sit at the top because every wing uses them.
"""

__version__ = "1.0.0"

__all__ = ["__version__"]
