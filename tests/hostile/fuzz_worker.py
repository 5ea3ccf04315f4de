"""Seeded fuzzing of the readers: mutants of real segments through attach, snapshot, poll.

``python fuzz_worker.py SEED COUNT PREFIX`` (TRADINGD_PURE_PYTHON=1 for the pure-Python
reader). Builds a few real segments (different geometries and states, rings that have
wrapped), then COUNT mutants: header words set to edge values, random bytes and words,
odd truncations and extensions, odd seqlocks, wrong stamps. Each is written to
/dev/shm/PREFIX-N and attached; when it is accepted, every read path is exercised, then
the file is mutated again under the live mapping (header words, stamps, locks; never
shrunk: a mapped file that shrinks is SIGBUS by design, which is why only the producer's
own account is trusted) and read again. Prints a JSON summary; exit 1 if any read raised
anything but a TradingdError. Crashes and hangs show as the parent's failure.
"""

from __future__ import annotations

import collections
import json
import os
import random
import sys
import traceback

from tradingd.errors import TradingdError
from tradingd.segment import fastpath, shm
from tradingd.segment import layout as L
from tradingd.segment.model import SymbolInfo
from tradingd.segment.reader import SegmentReader
from tradingd.segment.writer import SegmentWriter

EDGES = [0, 1, 2, 3, 7, 8, 63, 64, 65, 384, 1023, 1024, 4096, 4097, 2**31 - 1, 2**31,
         2**32 - 1, 2**32, 2**32 + 1, 2**62, 2**62 + 1, 2**63 - 1, 2**63, 2**63 + 1,
         2**64 - 2, 2**64 - 1]
HEADER_WORDS = [p.name for p in L.HEADER.placed if p.size == 8]


def base_segments(prefix: str) -> list[bytes]:
    out = []
    for i, (syms, ring, records, state) in enumerate([
            (4, 64, 200, L.STATE_LIVE), (1, 2, 5, L.STATE_LIVE), (8, 256, 100, L.STATE_FINISHED),
            (3, 16, 0, L.STATE_LIVE), (2, 64, 64 * 3 + 5, L.STATE_STOPPED)]):
        name = f"{prefix}-base{i}"
        infos = [SymbolInfo(name=f"S{j}", asset_class="stock", currency="USD",
                            price_decimals=2, bar_interval_ns=86_400 * 10**9, record_count=1)
                 for j in range(syms)]
        with SegmentWriter.create(name, infos, symbol_capacity=syms, ring_capacity=ring) as w:
            for k in range(records):
                w.publish(k % syms, 1_600_000_000 * 10**9 + k, 1.0, 2.0, 0.5, 1.5, 3.0)
            w.set_state(state)
            with open(shm.segment_path(name), "rb") as f:
                out.append(f.read())
    return out


def put_u64(b: bytearray, off: int, value: int) -> None:
    b[off:off + 8] = (value & (2**64 - 1)).to_bytes(8, "little")


def edge(rng: random.Random, current: int) -> int:
    r = rng.random()
    if r < 0.6:
        return rng.choice(EDGES)
    if r < 0.8:
        return current + rng.choice([-65, -64, -9, -8, -1, 1, 8, 9, 64, 65])
    return rng.getrandbits(64)


def mutate(rng: random.Random, data: bytes) -> tuple[bytes, list[str]]:
    b = bytearray(data)
    ops = []
    for _ in range(rng.randint(1, 3)):
        r = rng.random()
        if r < 0.45:  # a header word to an edge value
            field = rng.choice(HEADER_WORDS)
            off = L.HEADER.offset(field)
            put_u64(b, off, edge(rng, int.from_bytes(b[off:off + 8], "little")))
            ops.append(f"header.{field}")
        elif r < 0.6 and len(b) >= 8:  # any aligned word
            off = rng.randrange(len(b) // 8) * 8
            put_u64(b, off, edge(rng, int.from_bytes(b[off:off + 8], "little")))
            ops.append(f"word@{off}")
        elif r < 0.7 and b:  # a random byte
            off = rng.randrange(len(b))
            b[off] = rng.randrange(256)
            ops.append(f"byte@{off}")
        elif r < 0.8:  # truncated, often to an odd size
            n = rng.randrange(len(b) + 1)
            del b[n:]
            ops.append(f"truncate:{n}")
        elif r < 0.87:  # extended
            n = rng.randint(1, 200)
            b += bytes(rng.getrandbits(8) for _ in range(n))
            ops.append(f"extend:{n}")
        elif len(b) > 512:  # a latest-slot lock made odd, or a ring stamp changed
            off = (384 + rng.randrange((len(b) - 384) // 64) * 64)
            if rng.random() < 0.5:
                put_u64(b, off, rng.getrandbits(32) | 1)
                ops.append(f"odd@{off}")
            else:
                b[off:off + 4] = rng.getrandbits(32).to_bytes(4, "little")
                ops.append(f"stamp@{off}")
    return bytes(b), ops


def exercise(r: SegmentReader, rng: random.Random, stats: collections.Counter[str]) -> None:
    """Every read path once; typed errors are fine and counted."""
    def attempt(what: str, fn, *args):  # type: ignore[no-untyped-def]
        try:
            out = fn(*args)
        except TradingdError as exc:
            stats[f"typed:{what}:{type(exc).__name__}"] += 1
            return None
        stats[f"ok:{what}"] += 1
        return out

    attempt("header", r.header)
    attempt("symbols", r.symbols)
    for i in range(min(r.geometry.symtab_capacity, 8)):
        attempt("latest", r.latest_within, i, 0.002)
    sub = r.subscribe(rng.choice(["oldest", "latest"]))
    if rng.random() < 0.3:
        sub.position = rng.choice([0, r.cursor, max(0, r.cursor - 1), 2**63])
    for _ in range(4):
        rec = attempt("poll_one", sub.poll_one)
        if rec is not None:
            stats["records"] += 1
    got = attempt("poll_batch", sub.poll_batch, 64)
    if got is not None:
        stats["records"] += len(got)
    attempt("next", sub.next, 0.001)
    attempt("spin", sub.spin, 0.0)
    attempt("available", lambda: sub.available)


def main() -> int:
    seed, count, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    rng = random.Random(seed)
    bases = base_segments(prefix)
    stats: collections.Counter[str] = collections.Counter()
    failures: list[dict[str, object]] = []
    for n in range(count):
        data, ops = mutate(rng, rng.choice(bases))
        name = f"{prefix}-{n}"
        path = shm.segment_path(name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            try:
                r = SegmentReader.attach(name, require_live=rng.random() < 0.5)
            except TradingdError as exc:
                stats[f"refused:{type(exc).__name__}"] += 1
                continue
            stats["accepted"] += 1
            with r:
                exercise(r, rng, stats)
                size = os.fstat(fd).st_size
                for _ in range(rng.randint(1, 4)):  # under the live mapping: never shrunk
                    if rng.random() < 0.5:
                        field = rng.choice(HEADER_WORDS)
                        off = L.HEADER.offset(field)
                    else:
                        off = rng.randrange(size // 8) * 8
                    old = int.from_bytes(os.pread(fd, 8, off), "little")
                    os.pwrite(fd, (edge(rng, old) & (2**64 - 1)).to_bytes(8, "little"), off)
                stats["mutated_live"] += 1
                exercise(r, rng, stats)
        except Exception as exc:  # untyped: the finding this fuzzer exists for
            failures.append({"mutant": n, "ops": ops, "error": repr(exc),
                             "trace": traceback.format_exc(limit=4)})
        finally:
            os.close(fd)
            os.unlink(path)
    print(json.dumps({"impl": fastpath.IMPLEMENTATION, "seed": seed, "mutants": count,
                      "failures": failures[:20], "failure_count": len(failures),
                      "stats": dict(sorted(stats.items()))}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
