"""Market data CSV files -> numpy bars: fast on clean rows, exact about dirty ones.

Why it is built this way: the producer loads millions of rows and must still report every
bad row with its file, line and reason. Parsing row by row in Python manages ~0.3 M rows/s,
so the loader works on blocks of whole lines (about 1 MiB each) with numpy:

1. **Tokenise.** One vectorised scan finds every delimiter and newline of the block
   (delimiters inside quotes excepted: the quote parity comes from a bit-parallel prefix
   XOR). A line with the expected number of fields whose quotes only enclose whole
   fields is a candidate for the fast path.
2. **Fast path.** A numeric field is read as little-endian 64-bit words ending at its last
   byte; eight ASCII digits become a number with three multiply-shift steps (SWAR, "SIMD
   within a register", one numpy operation for the whole column). The result is exact:
   the decimal's digits form an integer below 2**53 that is divided once by an exact power
   of ten, which rounds correctly, as ``float()`` does (longer fields go to the slow
   path). Timestamps of a fixed layout (ISO 8601, or a strptime pattern of fixed-width
   fields) are read the same way, checked against the expected text in one step per word,
   and turned into days through a table of month starts.
   **The C parser** (``_csvfast.c``, driven by :mod:`.native`) does steps 1 and 2 in one
   pass where it is built: each regular line's fields are found and its fixed-width
   timestamp, plain or formatted numbers parsed (Clinger's fast path: a mantissa up to
   2**53 and a power of ten up to 22, one correctly rounded multiply or divide) and the
   bar written straight into the output array, which the checks then read in place.
   Lines it cannot vouch for are flagged for the slow path, exactly like the numpy fast
   path's rejects; the numpy path stays the reference and the fallback (no compiler,
   ``TRADINGD_PURE_PYTHON=1``, ``load_csv(..., c_parser=False)``).
3. **Slow path.** Whatever the fast path cannot vouch for (wrong field count, empty or null
   fields, exponents, spaces, quotes, blank lines, other timestamp shapes) is parsed alone
   by plain Python, which decides whether the row is good and, if not, why. The slow path
   is the reference: the fast one only accepts rows it would parse identically.
4. **Checks.** Prices > 0, volume >= 0, low <= high, open and close within [low, high];
   then event times must run one way: a duplicate time (the first row wins) or a row that
   goes against the file's order is skipped. Files may run oldest first or newest first
   (as Alpha Vantage and Investing.com exports do; the first rows decide, by majority);
   a newest-first file's bars are reversed, so every result runs oldest first.

Each skipped row is counted per reason (``REJECT_REASONS``, used as metric label values)
and the first ``MAX_BAD_ROW_DETAILS`` are kept with their line number (1-based, as an
editor shows it). Pure domain code: no logging, metrics or configuration parsing here.

The package, by concern: :mod:`.spec` (the bar dtype, reject reasons, ``CsvFormat``,
results), :mod:`.blocks` (reading blocks of whole lines), :mod:`.plan` (the format
resolved against the header; ``skip_rows``), :mod:`.tokens` (lines and fields),
:mod:`.swar` (plain numbers, eight digits a step), :mod:`.formatted` (``46,629.3``,
``1.234,5``, ``131.48K``), :mod:`.timestamps` (fixed-width layouts, epoch units, zones),
:mod:`.fast` (the fast path over a block), :mod:`.native` (the C parser over a block),
:mod:`.exact` (one row at a time, the reference), :mod:`.checks` (values, order, the
reject log, the output) and :mod:`.load` (the driver).
"""

from tradingd.producer.loader.load import load_csv
from tradingd.producer.loader.spec import (
    BAR_DTYPE,
    BLOCK_SIZE,
    BUILTIN_FORMATS,
    FIELDS,
    MAX_BAD_ROW_DETAILS,
    NULL_TOKENS,
    REJECT_REASONS,
    TIMESTAMP_UNITS,
    BadRow,
    CsvFormat,
    LoadResult,
    csv_format,
)

__all__ = [
    "BAR_DTYPE",
    "BLOCK_SIZE",
    "BUILTIN_FORMATS",
    "FIELDS",
    "MAX_BAD_ROW_DETAILS",
    "NULL_TOKENS",
    "REJECT_REASONS",
    "TIMESTAMP_UNITS",
    "BadRow",
    "CsvFormat",
    "LoadResult",
    "csv_format",
    "load_csv",
]
