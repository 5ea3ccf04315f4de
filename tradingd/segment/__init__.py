"""The segment: one POSIX shared-memory file, one writer, any number of read-only readers.

This wing owns everything both sides of ``/dev/shm/<name>`` must agree on, and nothing
about where the data comes from or what is done with it:

* :mod:`.layout`: the format, declared once (every field's name, type, offset, meaning);
  the fingerprint, the C header (:mod:`.cheader`) and the docs table (:mod:`.layout_doc`)
  are generated from it;
* :mod:`.writer` / :mod:`.reader`: the lock-free single-writer protocol (seqlocked latest
  slots, a sequence-stamped ring), with :mod:`.fastpath` loading the C hot paths
  (``_fastpath.c``) when they were built for this very layout;
* :mod:`.shm`: ``shm_open``/``mmap``/futex primitives; :mod:`.liveness`: is the writer
  alive; :mod:`.ownership`: creating a segment and reclaiming a stale one;
* :mod:`.model`: the values readers hand out (``SymbolInfo``, ``LatestValue``, ``Record``).

Imports point one way: the producer, consumer and inspector wings import this one; it
imports only the top-level ``errors``, ``clock`` and ``constants``.
"""

from tradingd.segment.model import LatestValue, Record, SymbolInfo
from tradingd.segment.reader import RingSubscription, SegmentReader
from tradingd.segment.writer import SegmentWriter

__all__ = ["LatestValue", "Record", "RingSubscription", "SegmentReader", "SegmentWriter",
           "SymbolInfo"]
