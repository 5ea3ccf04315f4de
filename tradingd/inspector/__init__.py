"""``tradingd-inspect``: the operator's view of a segment.

Answers "is it alive, what is in it, is it consistent" without hexdump-and-hope:

* :mod:`.layoutinfo` (``layout``): the field table and the sizes C and Python agree on;
* :mod:`.status` (``status``): one AeronStat-style line, the header, counters, regions;
* :mod:`.records` (``latest``, ``tail``): the data, decoded with each symbol's decimals;
* :mod:`.dump` (``dump``): ``hexdump -C``-identical lines annotated with the fields;
* :mod:`.watch` (``watch``): a refreshing live view with rates;
* :mod:`.check` (``check``): a monitoring-plugin health check (exit 0/1/2/3);
* :mod:`.cleanup` (``cleanup``): remove a stale segment with the producer's own rule;
* :mod:`.source`: probing a file without trusting it (``pread``, never a mapping past
  the end) and the two ways of reading it (the reader, or raw bytes when damaged);
* :mod:`.format`: decoding by the layout and rendering values, tables and JSON;
* :mod:`.cli`: options, configuration and exit codes.
"""

from tradingd.inspector.check import CheckOptions, CheckResult, Status, evaluate
from tradingd.inspector.layoutinfo import layout_report
from tradingd.inspector.source import Opened, Source, open_source
from tradingd.inspector.status import status_report

__all__ = ["CheckOptions", "CheckResult", "Opened", "Source", "Status", "evaluate",
           "layout_report", "open_source", "status_report"]
