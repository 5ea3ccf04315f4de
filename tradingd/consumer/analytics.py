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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tradingd.clock import SYSTEM_CLOCK, Clock
from tradingd.segment import layout as L
from tradingd.segment.fastpath import FAST
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
#: A record's high..volume as one opaque 32-byte item (numpy moves it with one copy, not
#: four strided ones), and a buffer slot the same way.
_HLCV_ITEM = np.dtype({"names": ["hlcv"], "formats": ["V32"], "offsets": [8 * _HLCV0],
                       "itemsize": L.RECORD.size})
_HLCV_ITEM32 = np.dtype("V32")
#: Symbols whose figures are computed together (bounds the 2-D temporaries of stats()).
_STATS_BLOCK = 256
#: The tail tried first holds this many windows per symbol in the chunk.
_TAIL_FACTOR = 2


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
                 stage_max_age: float = STAGE_MAX_AGE, use_c: bool | None = None) -> None:
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
        # the C one-pass update (tradingd/segment/_fastpath.c) when built; the numpy path
        # below is the reference and the fallback (use_c=False forces it)
        c_update = getattr(FAST, "analytics_update", None)
        self._c_update = c_update if use_c is not False else None
        if use_c and c_update is None:
            raise ValueError("the C analytics path is not built (tradingd.segment._fastpath)")
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
        # Rows padded to an odd number of cache lines: with a power-of-two window the
        # symbols' rows would start at addresses that share cache sets, and a batch that
        # cycles through thousands of symbols would evict its own lines (~25 % slower).
        self._stride = w + (2 - w) % 4
        self._raw = np.zeros((s, self._stride, len(_HLCV)))
        self._buf = self._raw[:, :w]  # the windows (a view)
        self._buf_items = self._raw.view(_HLCV_ITEM32).reshape(s * self._stride)  # a slot each
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

    def c_state(self) -> tuple[Any, ...] | None:
        """The state the C batch path updates in place (``Cursor.read_analyse``), staged
        records applied first; None without the C path. Report what it did with
        :meth:`applied_in_place`."""
        if self._c_update is None:
            return None
        self._flush()
        return (self.symbol_capacity, self.window, self._raw, self._count, self._last,
                self._prev, self._first, self._last_volume, self._total_volume,
                self._last_event, self._last_publish)

    def applied_in_place(self, n: int, ignored: int, t_ns: int) -> None:
        """Account for ``n`` records (``ignored`` of them skipped) received by ``t_ns`` that
        the C batch path applied to :meth:`c_state`."""
        if n:
            self.ignored += ignored
            self._applied += n - ignored
            self._sample_rate(t_ns)

    @property
    def implementation(self) -> str:
        """``c`` (one pass in C) or ``numpy`` (grouped array operations)."""
        return "c" if self._c_update is not None else "numpy"

    def _apply(self, recs: np.ndarray, t_ns: int) -> None:
        """The vectorised update of a chunk received by ``t_ns``."""
        n = len(recs)
        if self._c_update is not None:
            ignored = self._c_update(
                np.ascontiguousarray(recs), self.symbol_capacity, self.window, self._raw,
                self._count, self._last, self._prev, self._first, self._last_volume,
                self._total_volume, self._last_event, self._last_publish)
            self.ignored += ignored
            self._applied += n - ignored
            self._sample_rate(t_ns)
            return
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

        Every record counts (records, total volume: one ``bincount`` each); only each
        symbol's last ``window`` records reach its buffer. When the chunk's tail already
        holds those for every symbol in the chunk (few symbols, a chunk much longer than
        the window: the producer's large batches), only the tail is grouped and scattered,
        so the per-record cost is the two bincounts. The record's high, low, close and
        volume are adjacent f64 fields, moved as one 32-byte item per record. No slot is
        written twice in one fancy assignment (whose order numpy does not promise).
        """
        n, s_cap, w = len(recs), self.symbol_capacity, self.window
        recs = np.ascontiguousarray(recs)
        per_sym = np.bincount(syms, minlength=s_cap)
        touched = np.flatnonzero(per_sym)
        k = per_sym[touched]
        volume_all = recs["volume"]
        self._total_volume += np.bincount(syms, weights=volume_all, minlength=s_cap)
        fresh = self._count[touched] == 0
        lo = 0
        tail = len(touched) * w * _TAIL_FACTOR
        if tail < n:  # does the tail hold each touched symbol's last min(k, window)?
            tail_k = np.bincount(syms[n - tail:], minlength=s_cap)[touched]
            if np.all(tail_k >= np.minimum(k, w)):
                lo = n - tail
        sub, sub_syms = (recs, syms) if lo == 0 else (recs[lo:], syms[lo:])
        sub_per = per_sym if lo == 0 else np.bincount(sub_syms, minlength=s_cap)
        base = self._count + (per_sym - sub_per)  # records of each symbol before `sub`
        hlcv = sub.view(_HLCV_ITEM)["hlcv"]
        if len(touched) <= _FEW_SYMBOLS:
            prev_idx, last_idx = self._scatter_few(sub_syms, hlcv, touched, base)
        else:
            prev_idx, last_idx = self._scatter_sorted(sub_syms, hlcv, sub_per, touched,
                                                      sub_per[touched], base)
        close = sub["close"]
        # previous close: the chunk's second-to-last record of the symbol, else the old last
        prev = self._last[touched].copy()
        two = prev_idx >= 0
        if two.any():
            prev[two] = close[prev_idx[two]]
        self._prev[touched] = prev
        if fresh.any():  # first sightings (rare): the first record of each new symbol
            new = touched[fresh]
            seen, first_at = np.unique(syms, return_index=True)
            firsts = np.full(s_cap, -1, np.intp)
            firsts[seen] = first_at
            self._first[new] = recs["close"][firsts[new]]
        self._last[touched] = close[last_idx]
        self._last_volume[touched] = sub["volume"][last_idx]
        self._last_event[touched] = sub["event_ns"][last_idx]
        self._last_publish[touched] = sub["publish_ns"][last_idx]
        self._count += per_sym

    def _scatter_few(self, syms: np.ndarray, hlcv: np.ndarray, touched: np.ndarray,
                     base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A few symbols in the chunk: one mask per symbol, cheaper than sorting it.

        ``base[s]``: records of symbol s before this chunk. Returns, per touched symbol,
        the chunk index of its second-to-last (-1 if none) and last record.
        """
        w = self.window
        bufv = self._buf_items
        prev, last = (np.empty(len(touched), np.intp) for _ in range(2))
        for j, sym in enumerate(touched.tolist()):
            idx = np.flatnonzero(syms == sym)
            tail = idx[-w:]
            start = int(base[sym]) + len(idx) - len(tail)
            bufv[sym * self._stride + np.arange(start, start + len(tail)) % w] = hlcv[tail]
            last[j] = idx[-1]
            prev[j] = idx[-2] if len(idx) > 1 else -1
        return prev, last

    def _scatter_sorted(self, syms: np.ndarray, hlcv: np.ndarray, per_sym: np.ndarray,
                        touched: np.ndarray, k: np.ndarray,
                        base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
        flat = dest_sym * self._stride + (base[dest_sym] + dest_rank) % w
        self._buf_items[flat] = hlcv[rows]
        g0 = group_start[touched]
        prev = np.where(k >= 2, order[np.maximum(g0 + k - 2, 0)], -1)
        return prev, order[g0 + k - 1]

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
        """Figures for every symbol that has received records, by symbol id.

        Computed for all symbols at once, in blocks of :data:`_STATS_BLOCK` symbols
        (2-D array operations over their windows, no Python loop per record): a scrape
        of 4,096 symbols with 512-record windows costs tens of ms, not a second.
        """
        return [st for block in self.stats_blocks() for st in block]

    def stats_blocks(self) -> Iterator[list[SymbolStats]]:
        """:meth:`stats` a block of :data:`_STATS_BLOCK` symbol ids at a time.

        A caller that shares the analytics with the data path can hold its lock per block
        (a few ms each), not for a whole scrape of 4,096 symbols.
        """
        rates = self.tick_rates()
        for lo in range(0, self.symbol_capacity, _STATS_BLOCK):
            hi = min(lo + _STATS_BLOCK, self.symbol_capacity)
            if self._count[lo:hi].any():
                self._flush()
                yield self._block_stats(lo, hi, rates)

    def _block_stats(self, lo: int, hi: int, rates: np.ndarray) -> list[SymbolStats]:
        """Figures of the symbols in ``[lo, hi)`` that have records, from their buffers.

        No reordering of the ring buffers: VWAP, volume, high and low do not depend on the
        order, and the log returns are the differences between ring-adjacent slots except
        across the ring's start (the oldest slot's predecessor is the newest record).
        """
        w = self.window
        count_all = self._count[lo:hi]
        sel = np.flatnonzero(count_all)
        ids = sel + lo
        count = count_all[sel]
        length = np.minimum(count, w)
        # (hlcv, symbols, window), ring order: one contiguous plane per field
        win = np.ascontiguousarray(np.moveaxis(self._buf[lo:hi][sel], 2, 0))
        j = np.arange(w)
        valid = j < length[:, None]  # a full ring: every slot; else slots 0..count-1
        close, volume = win[_HLCV["close"]], win[_HLCV["volume"]]
        volume = np.where(valid, volume, 0.0)
        vol_sum = volume.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            vwap = np.where(vol_sum > 0, (close * volume).sum(axis=1) / vol_sum, math.nan)
            logc = np.log(close)
            rets = logc - np.roll(logc, 1, axis=1)  # slot k minus slot k-1 (ring)
        start = np.where(count > w, count % w, 0)  # the oldest record's slot
        ok = valid & (j != start[:, None]) & np.isfinite(rets)
        ok[:, 0] &= count > w  # slot 0 follows slot w-1 only in a full ring
        n_ret = ok.sum(axis=1)
        rets = np.where(ok, rets, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(n_ret > 0, rets.sum(axis=1) / n_ret, math.nan)
            dev = np.where(ok, rets - mean[:, None], 0.0)
            std = np.where(n_ret >= 2, np.sqrt((dev * dev).sum(axis=1) / (n_ret - 1)),
                           math.nan)
        high = np.where(valid, win[_HLCV["high"]], -np.inf).max(axis=1)
        low = np.where(valid, win[_HLCV["low"]], np.inf).min(axis=1)
        cols = zip(ids.tolist(), count.tolist(), self._last[ids].tolist(),
                   self._prev[ids].tolist(), self._first[ids].tolist(), vwap.tolist(),
                   mean.tolist(), std.tolist(), high.tolist(), low.tolist(),
                   self._last_volume[ids].tolist(), vol_sum.tolist(),
                   self._total_volume[ids].tolist(), length.tolist(), rates[ids].tolist(),
                   self._last_event[ids].tolist(), self._last_publish[ids].tolist(),
                   strict=True)
        names = self.names
        return [SymbolStats(
            symbol_id=i, name=names[i] if i < len(names) else f"#{i}", records=c,
            last_price=last, previous_price=prev, first_price=first, change=last - prev,
            change_pct=_pct(last, prev), change_since_first=last - first,
            change_since_first_pct=_pct(last, first), vwap=vw, return_mean=mu,
            return_std=sd, high=hi, low=lo, last_volume=lv, window_volume=wv,
            total_volume=tv, window_records=ln, tick_rate=rate, last_event_ns=ev,
            last_publish_ns=pub)
            for (i, c, last, prev, first, vw, mu, sd, hi, lo, lv, wv, tv, ln, rate, ev, pub)
            in cols]


def _pct(now: float, then: float) -> float:
    """Percent change from ``then`` to ``now`` (NaN if undefined)."""
    if not math.isfinite(then) or then == 0:
        return math.nan
    return 100.0 * (now / then - 1.0)


def empty_batch(n: int = 0) -> np.ndarray:
    """A zeroed ``RECORD_DTYPE`` array (for tests and benchmarks that build batches)."""
    return np.zeros(n, L.RECORD_DTYPE)


__all__ = ["DEFAULT_RATE_INTERVAL", "Analytics", "SymbolStats", "empty_batch"]
