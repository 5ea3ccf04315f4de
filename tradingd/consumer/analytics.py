"""Per-symbol analytics over a window of recent records, fed with whole ring batches.

The consumer hands :meth:`Analytics.update` each ``RECORD_DTYPE`` batch that
``RingSubscription.poll_batch`` returns (or, for a few records, the tuples ``poll_one``
returns). Batches are staged with one byte copy and applied in chunks of up to
``STAGE_RECORDS`` records (at the latest ``STAGE_MAX_AGE`` later, or when figures are
asked for), so the fixed cost of the vectorised update is paid per chunk, not per
producer batch. The update groups a chunk by ``symbol_id`` with one stable radix sort,
computes each record's slot in its symbol's ring buffer arithmetically, and scatters the
adjacent high/low/close/volume words into the buffers with one fancy assignment. No
Python code runs per record, so the analysis keeps up with the producer's full publish
rate (``bench/bench_consumer.py`` measures records/s through it).

Figures (VWAP, log-return mean and standard deviation, high/low) are computed from the
buffers only when asked (:meth:`Analytics.stats`: a metrics scrape, a report line), not on
every batch: a scrape costs O(symbols x window), a batch O(batch).

Definitions (the tests check them against straightforward loops):

* window: the last ``window`` records of the symbol (fewer until that many arrived);
* last price: close of the newest record; change: versus the previous record's close and
  versus the first close seen since :meth:`reset`;
* VWAP: sum(close x volume) / sum(volume) over the window (NaN if the window's volume is 0,
  as for data without volume);
* log returns: ln(close[i] / close[i-1]) between consecutive records of the window
  (``window - 1`` returns); their mean and sample standard deviation (ddof=1; NaN with
  fewer than two returns); the standard deviation is exported as the symbol's volatility
  (per record, not annualised);
* high / low: max of the records' high and min of their low over the window;
* volume: of the last record, over the window, and in total since :meth:`reset`;
* tick rate: records per second over the last ``rate_interval`` seconds, measured with the
  injected clock (the consumer's receive time, not the data's event time).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tradingd.clock import SYSTEM_CLOCK, Clock
from tradingd.segment import layout as L
from tradingd.segment.model import Record

#: Default interval over which the tick rate is measured (seconds).
DEFAULT_RATE_INTERVAL = 2.0
#: The tick-rate history keeps one sample per this fraction of the rate interval.
_RATE_SAMPLES_PER_INTERVAL = 10
#: Records staged before a vectorised update is forced (64 bytes each: 1 MiB).
STAGE_RECORDS = 16384
#: Longest time (s) records stay staged while more keep arriving.
STAGE_MAX_AGE = 0.02
#: Batches of at least this many records skip the stage (the copy would cost more than
#: the fixed cost it saves).
_DIRECT_BATCH = 2048
#: Chunks touching at most this many symbols are grouped with one mask per symbol;
#: more, with one sort.
_FEW_SYMBOLS = 8
#: Batches up to this size are applied record by record (cheaper than the numpy path).
_SMALL_BATCH = 8
#: Positions of the fields the record-by-record path reads in a record tuple (``tolist()``
#: of a RECORD_DTYPE array, or ``poll_one``: both in this order).
_FIELD_INDEX = tuple(L.RECORD.names.index(f) for f in (
    "symbol_id", "event_ns", "publish_ns", "high", "low", "close", "volume"))
if Record._fields[1:] != L.RECORD.names[1:]:  # poll_one tuples must line up
    raise AssertionError("tradingd.segment.model.Record and layout.RECORD disagree on field order")
#: The per-symbol ring buffers keep these record fields, adjacent f64 words in the record.
_HLCV = {"high": 0, "low": 1, "close": 2, "volume": 3}
_HLCV0 = L.RECORD.offset("high") // 8
if [L.RECORD.offset(f) for f in _HLCV] != [8 * (_HLCV0 + i) for i in range(len(_HLCV))] or \
        any(L.RECORD[f].field.type != "f64" for f in _HLCV):
    raise AssertionError("layout.RECORD: high, low, close, volume must be adjacent f64 fields")


@dataclass(frozen=True)
class SymbolStats:
    """One symbol's figures at one instant (NaN where a figure is not defined yet)."""

    symbol_id: int
    name: str
    records: int  # records received since reset
    last_price: float
    previous_price: float  # close of the record before the last (NaN if only one)
    first_price: float  # first close since reset
    change: float  # last - previous
    change_pct: float  # 100 * (last / previous - 1)
    change_since_first: float  # last - first
    change_since_first_pct: float
    vwap: float
    return_mean: float  # mean log return per record over the window
    return_std: float  # sample std of log returns over the window (volatility)
    high: float
    low: float
    last_volume: float
    window_volume: float
    total_volume: float
    window_records: int
    tick_rate: float  # records per second over the rate interval
    last_event_ns: int  # event time of the newest record (ns since epoch)
    last_publish_ns: int  # CLOCK_MONOTONIC ns the newest record was published

    @property
    def last_event_seconds(self) -> float:
        """Event time of the newest record as Unix seconds."""
        return self.last_event_ns / 1e9


class Analytics:
    """Ring buffers per symbol and the figures computed from them.

    ``symbol_capacity`` bounds the symbol ids accepted (the segment's symbol table size);
    records with a larger id are counted in :attr:`ignored` and otherwise skipped.
    Not thread-safe: the caller serialises :meth:`update` and :meth:`stats`.
    """

    def __init__(self, symbol_capacity: int, window: int, *, clock: Clock = SYSTEM_CLOCK,
                 rate_interval: float = DEFAULT_RATE_INTERVAL,
                 stage_records: int = STAGE_RECORDS,
                 stage_max_age: float = STAGE_MAX_AGE) -> None:
        if symbol_capacity < 1:
            raise ValueError(f"symbol capacity must be at least 1, not {symbol_capacity}")
        if window < 2:
            raise ValueError(f"the analysis window must be at least 2 records, not {window}")
        if rate_interval <= 0:
            raise ValueError(f"the rate interval must be positive, not {rate_interval}")
        self.symbol_capacity = symbol_capacity
        self.window = window
        self._clock = clock
        self._stage_records = max(1, stage_records)
        # numpy's stable sort is a radix sort for 16-bit integers: ~5x faster here
        self._sort_dtype = np.uint16 if symbol_capacity <= 1 << 16 else np.intp
        self._stage_age_ns = int(stage_max_age * 1e9)
        self._rate_interval_ns = int(rate_interval * 1e9)
        self._sample_every_ns = max(1, self._rate_interval_ns // _RATE_SAMPLES_PER_INTERVAL)
        self.names: list[str] = []
        self.reset()

    def reset(self, names: Sequence[str] | None = None) -> None:
        """Forget every record (a new producer generation starts a new stream)."""
        s, w = self.symbol_capacity, self.window
        self.names = list(names) if names is not None else []
        # per symbol, a ring of the last `window` records' high, low, close, volume
        self._buf = np.zeros((s, w, len(_HLCV)))
        self._count = np.zeros(s, np.int64)
        self._last = np.full(s, np.nan)
        self._prev = np.full(s, np.nan)
        self._first = np.full(s, np.nan)
        self._last_volume = np.zeros(s)
        self._total_volume = np.zeros(s)
        self._last_event = np.zeros(s, np.int64)
        self._last_publish = np.zeros(s, np.uint64)
        self._applied = 0
        self.ignored = 0
        self._stage = np.zeros(self._stage_records, L.RECORD_DTYPE)
        self._stage_u8 = self._stage.view(np.uint8).reshape(-1, L.RECORD.size)
        self._staged = 0
        self._staged_since = self._staged_last = 0
        now = self._clock.monotonic_ns()
        self._rate_samples: deque[tuple[int, npt.NDArray[np.int64]]] = deque(
            [(now, self._count.copy())])

    def set_names(self, names: Sequence[str]) -> None:
        """Label the symbols (the segment's symbol table, which may grow)."""
        self.names = list(names)

    # ------------------------------------------------------------------ feeding
    @property
    def records(self) -> int:
        """Records received since :meth:`reset` (applied or still staged)."""
        return self._applied + self._staged

    def update(self, recs: np.ndarray | Sequence[tuple[Any, ...]]) -> None:
        """Add records, in sequence order, to the state.

        ``recs`` is a ``RECORD_DTYPE`` array (``poll_batch``) or a list of record tuples
        in :class:`~tradingd.segment.model.Record` order (``poll_one``; the fields sit at the same
        positions as in ``RECORD_DTYPE``, with the full ``seq`` for ``seq_lo``).

        Arrays are staged (one byte copy) and applied in chunks of up to
        ``STAGE_RECORDS`` records, at the latest ``STAGE_MAX_AGE`` after the first staged
        one or when figures are asked for: the fixed cost of the vectorised update
        (~30 numpy calls) is then paid once per chunk, not once per producer batch.
        A few records (tuples, or tiny arrays) are applied at once, record by record.
        """
        n = len(recs)
        if n == 0:
            return
        now = self._clock.monotonic_ns()
        if not isinstance(recs, np.ndarray) or n <= _SMALL_BATCH:
            self._flush()
            rows = recs.tolist() if isinstance(recs, np.ndarray) else recs
            self._applied += self._update_tuples(rows)
            self._sample_rate(now)
            return
        if self._staged + n > len(self._stage) or n >= _DIRECT_BATCH:
            self._flush()
        if n >= _DIRECT_BATCH or n > len(self._stage):  # big enough to pay its own way
            self._apply(recs, now)
            return
        if self._staged == 0:
            self._staged_since = now
        src = np.ascontiguousarray(recs).view(np.uint8).reshape(n, L.RECORD.size)
        self._stage_u8[self._staged:self._staged + n] = src
        self._staged += n
        self._staged_last = now
        if now - self._staged_since >= self._stage_age_ns:
            self._flush()

    def flush(self) -> None:
        """Apply staged records now (figures do this themselves)."""
        self._flush()

    def _flush(self) -> None:
        k = self._staged
        if k:
            self._staged = 0
            self._apply(self._stage[:k], self._staged_last)

    def _apply(self, recs: np.ndarray, t_ns: int) -> None:
        """The vectorised update of a chunk received by ``t_ns``."""
        n = len(recs)
        syms = recs["symbol_id"].astype(np.intp)
        if int(syms.max()) >= self.symbol_capacity:
            good = syms < self.symbol_capacity
            self.ignored += int(n - good.sum())
            recs, syms = recs[good], syms[good]
            n = len(recs)
        if n:
            self._update_vector(recs, syms)
        self._applied += n
        self._sample_rate(t_ns)

    def _update_tuples(self, recs: Sequence[tuple[Any, ...]]) -> int:
        """The same update record by record: cheaper than ~30 numpy calls for a few records.

        A consumer woken for every record (the spin and block strategies at modest rates)
        reads one record at a time; the vectorised path's fixed cost (~40 us) would
        dominate. Returns the number of records applied.
        """
        w, cap = self.window, self.symbol_capacity
        i_sym, i_ev, i_pub, i_hi, _, i_cl, i_vol = _FIELD_INDEX
        count = self._count
        applied = 0
        for r in recs:
            sym = r[i_sym]
            if sym >= cap:
                self.ignored += 1
                continue
            c = int(count[sym])
            slot = c % w
            close, volume = r[i_cl], r[i_vol]
            self._buf[sym, slot] = r[i_hi:i_vol + 1]
            if c == 0:
                self._first[sym] = close
            self._prev[sym] = self._last[sym]
            self._last[sym] = close
            self._last_volume[sym] = volume
            self._last_event[sym] = r[i_ev]
            self._last_publish[sym] = r[i_pub]
            self._total_volume[sym] += volume
            count[sym] = c + 1
            applied += 1
        return applied

    def _update_vector(self, recs: np.ndarray, syms: np.ndarray) -> None:
        """Update every symbol's state from a chunk at once (no Python code per record).

        The record's high, low, close and volume are adjacent f64 fields, gathered and
        scattered into the ring buffers as 32-byte rows. Only each symbol's last
        ``window`` records of the chunk reach its buffer, so no slot is written twice in
        one fancy assignment (whose order numpy does not promise).
        """
        n, s_cap = len(recs), self.symbol_capacity
        words = np.ascontiguousarray(recs).view(np.float64).reshape(n, L.RECORD.size // 8)
        hlcv = words[:, _HLCV0:_HLCV0 + len(_HLCV)]
        per_sym = np.bincount(syms, minlength=s_cap)
        touched = np.flatnonzero(per_sym)
        k = per_sym[touched]
        if len(touched) <= _FEW_SYMBOLS:
            first_idx, prev_idx, last_idx = self._scatter_few(syms, hlcv, touched)
        else:
            first_idx, prev_idx, last_idx = self._scatter_sorted(syms, hlcv, per_sym,
                                                                 touched, k)
        close, volume = hlcv[:, _HLCV["close"]], hlcv[:, _HLCV["volume"]]
        # previous close: the chunk's second-to-last record of the symbol, else the old last
        prev = self._last[touched].copy()
        two = k >= 2
        if two.any():
            prev[two] = close[prev_idx[two]]
        self._prev[touched] = prev
        fresh = self._count[touched] == 0
        if fresh.any():
            self._first[touched[fresh]] = close[first_idx[fresh]]
        self._last[touched] = close[last_idx]
        self._last_volume[touched] = volume[last_idx]
        self._last_event[touched] = recs["event_ns"][last_idx]
        self._last_publish[touched] = recs["publish_ns"][last_idx]
        self._total_volume += np.bincount(syms, weights=volume, minlength=s_cap)
        self._count += per_sym

    def _scatter_few(self, syms: np.ndarray, hlcv: np.ndarray,
                     touched: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A few symbols in the chunk: one mask per symbol, cheaper than sorting it.

        Returns, per touched symbol, the chunk index of its first, second-to-last (-1 if
        none) and last record.
        """
        w = self.window
        first, prev, last = (np.empty(len(touched), np.intp) for _ in range(3))
        for j, sym in enumerate(touched.tolist()):
            idx = np.flatnonzero(syms == sym)
            tail = idx[-w:]
            start = int(self._count[sym]) + len(idx) - len(tail)
            self._buf[sym, np.arange(start, start + len(tail)) % w] = hlcv[tail]
            first[j], last[j] = idx[0], idx[-1]
            prev[j] = idx[-2] if len(idx) > 1 else -1
        return first, prev, last

    def _scatter_sorted(self, syms: np.ndarray, hlcv: np.ndarray, per_sym: np.ndarray,
                        touched: np.ndarray,
                        k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Many symbols in the chunk: group them with one stable (radix) sort.

        Returns the same indices as :meth:`_scatter_few`.
        """
        n, w = len(syms), self.window
        order = np.argsort(syms.astype(self._sort_dtype), kind="stable")
        s_sorted = syms[order]
        group_start = np.cumsum(per_sym) - per_sym
        rank = np.arange(n) - group_start[s_sorted]
        keep = rank >= per_sym[s_sorted] - w
        if keep.all():
            rows, dest_sym, dest_rank = order, s_sorted, rank
        else:
            rows, dest_sym, dest_rank = order[keep], s_sorted[keep], rank[keep]
        flat = dest_sym * w + (self._count[dest_sym] + dest_rank) % w
        self._buf.reshape(-1, len(_HLCV))[flat] = hlcv[rows]
        g0 = group_start[touched]
        prev = np.where(k >= 2, order[np.maximum(g0 + k - 2, 0)], -1)
        return order[g0], prev, order[g0 + k - 1]

    # ------------------------------------------------------------------ tick rate
    def _sample_rate(self, now: int) -> None:
        samples = self._rate_samples
        if now - samples[-1][0] >= self._sample_every_ns:
            samples.append((now, self._count.copy()))
            # keep one sample at or before now - interval (the base), drop older ones
            limit = now - self._rate_interval_ns
            while len(samples) > 2 and samples[1][0] <= limit:
                samples.popleft()

    def tick_rates(self) -> np.ndarray:
        """Records per second per symbol over (about) the last ``rate_interval`` seconds.

        The base is the newest sample taken at least ``rate_interval`` ago (the oldest one
        while the consumer is younger than that); with no records since, the rate is 0.
        """
        self._flush()
        now = self._clock.monotonic_ns()
        self._sample_rate(now)
        limit = now - self._rate_interval_ns
        base_t, base_counts = self._rate_samples[0]
        for t, counts in self._rate_samples:
            if t > limit:
                break
            base_t, base_counts = t, counts
        elapsed = now - base_t
        if elapsed <= 0:
            return np.zeros(self.symbol_capacity)
        return (self._count - base_counts) * (1e9 / elapsed)

    # ------------------------------------------------------------------ figures
    def symbol_ids(self) -> list[int]:
        """Ids of the symbols that have received records."""
        self._flush()
        return np.flatnonzero(self._count).tolist()

    def window_of(self, symbol_id: int, field: str = "close") -> np.ndarray:
        """The symbol's window of ``close|high|low|volume`` values, oldest first (a copy)."""
        self._flush()
        buf = self._buf[symbol_id, :, _HLCV[field]]
        count = int(self._count[symbol_id])
        w = self.window
        if count <= w:
            return buf[:count].copy()
        start = count % w
        return np.concatenate((buf[start:], buf[:start]))

    def stats(self) -> list[SymbolStats]:
        """Figures for every symbol that has received records, by symbol id."""
        rates = self.tick_rates()
        return [self._symbol_stats(i, float(rates[i])) for i in self.symbol_ids()]

    def _symbol_stats(self, i: int, rate: float) -> SymbolStats:
        close = self.window_of(i, "close")
        volume = self.window_of(i, "volume")
        vol_sum = float(volume.sum())
        vwap = float(np.dot(close, volume) / vol_sum) if vol_sum > 0 else math.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            returns = np.diff(np.log(close))
        returns = returns[np.isfinite(returns)]
        mean = float(returns.mean()) if len(returns) else math.nan
        std = float(returns.std(ddof=1)) if len(returns) >= 2 else math.nan
        last, prev, first = float(self._last[i]), float(self._prev[i]), float(self._first[i])
        return SymbolStats(
            symbol_id=i,
            name=self.names[i] if i < len(self.names) else f"#{i}",
            records=int(self._count[i]),
            last_price=last,
            previous_price=prev,
            first_price=first,
            change=last - prev,
            change_pct=_pct(last, prev),
            change_since_first=last - first,
            change_since_first_pct=_pct(last, first),
            vwap=vwap,
            return_mean=mean,
            return_std=std,
            high=float(self.window_of(i, "high").max()),
            low=float(self.window_of(i, "low").min()),
            last_volume=float(self._last_volume[i]),
            window_volume=vol_sum,
            total_volume=float(self._total_volume[i]),
            window_records=len(close),
            tick_rate=rate,
            last_event_ns=int(self._last_event[i]),
            last_publish_ns=int(self._last_publish[i]),
        )


def _pct(now: float, then: float) -> float:
    """Percent change from ``then`` to ``now`` (NaN if undefined)."""
    if not math.isfinite(then) or then == 0:
        return math.nan
    return 100.0 * (now / then - 1.0)


def empty_batch(n: int = 0) -> np.ndarray:
    """A zeroed ``RECORD_DTYPE`` array (for tests and benchmarks that build batches)."""
    return np.zeros(n, L.RECORD_DTYPE)


__all__ = ["DEFAULT_RATE_INTERVAL", "Analytics", "SymbolStats", "empty_batch"]
