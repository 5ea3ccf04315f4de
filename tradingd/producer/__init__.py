"""The producer: market data files in, a live segment out.

The data path in order: :mod:`.loader` turns CSV files into numpy bars (fast on clean
rows, exact about dirty ones, every rejected row named by file:line); :mod:`.replay`
merges every symbol's bars into one time-ordered stream and paces it; :mod:`.daemon` is
``tradingd-producer`` (owning the segment through :class:`tradingd.segment.SegmentWriter`,
heartbeat, sd_notify), and :mod:`.metrics` its Prometheus collector. Around the
loader: :mod:`.quality` sums a loaded file up (range, interval, gaps) and decides whether
it is fit to replay, :mod:`.cache` keeps loads (and the merged timeline) for the next
start, :mod:`.sniff` guesses a file's format (``format: auto``), and :mod:`.datacli` is
``tradingd-data`` (check, sniff, cache).
"""

from tradingd.producer.loader import BAR_DTYPE, CsvFormat, LoadResult, csv_format, load_csv
from tradingd.producer.replay import Replayer, ReplaySettings, build_timeline

__all__ = [
           "BAR_DTYPE",
           "CsvFormat",
           "LoadResult",
           "ReplaySettings",
           "Replayer",
           "build_timeline",
           "csv_format",
           "load_csv",
]
