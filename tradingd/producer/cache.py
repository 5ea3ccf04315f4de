"""The load cache: a file's parsed bars kept on disk, mapped at the next start instead of parsed.

Every restart (a crash's too) would otherwise parse every CSV again: at ~2-4 M rows/s,
100 M rows keep the producer down for most of a minute. After a successful load the
producer stores each file's bars here; the next start maps them (``numpy.load(...,
mmap_mode="r")``: no parse, no copy until the timeline is built).

Per entry, two files named by a hash of the CSV's absolute path and its format:

* ``<name>.npy``: the bars (``BAR_DTYPE``), a plain numpy file;
* ``<name>.json``: the key and what the load reported. The key covers everything that
  changes the result: the CSV's size, mtime (ns) and a BLAKE2 hash of its first and last
  64 KiB, the format (every field), the loader's version and this cache's version. Any
  difference: the CSV is parsed again and the entry replaced.

Never trusted blindly: the ``.npy`` must have exactly the header, dtype, shape and byte
length the sidecar records, and the 64-bit wrapping sum of its words must match (it reads
every byte once, ~0.25 s per GB; catches truncation, a torn write after a power loss and
any corrupted word). A bad entry is deleted and rebuilt from the CSV. Writes are atomic:
each file is written under a temporary name in the same directory and renamed into place,
the ``.npy`` first, its sidecar (the commit record) last. Cache problems never stop the
producer: they are reported and the CSV is parsed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tradingd.producer.loader import BAR_DTYPE, BadRow, CsvFormat, LoadResult
from tradingd.producer.loader.spec import LOADER_VERSION

CACHE_VERSION = 1
#: Bytes hashed at each end of a CSV file for its identity.
EDGE_BYTES = 65536
_SUFFIX_BARS = ".npy"
_SUFFIX_META = ".json"


def cache_directory(configured: Path | None, env: Mapping[str, str]) -> Path | None:
    """``producer.cache_dir`` if set, else systemd's ``$CACHE_DIRECTORY`` (the first of a
    colon-separated list), else None: no cache."""
    if configured is not None:
        return configured
    value = env.get("CACHE_DIRECTORY", "")
    first = value.split(":")[0]
    return Path(first) if first else None


def file_identity(path: Path) -> dict[str, Any]:
    """What identifies a CSV file's content without reading all of it."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        head = f.read(EDGE_BYTES)
        tail = b""
        if st.st_size > EDGE_BYTES:
            f.seek(max(EDGE_BYTES, st.st_size - EDGE_BYTES))
            tail = f.read(EDGE_BYTES)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "head_blake2b": hashlib.blake2b(head, digest_size=16).hexdigest(),
            "tail_blake2b": hashlib.blake2b(tail, digest_size=16).hexdigest()}


def checksum(bars: np.ndarray) -> int:
    """The 64-bit wrapping sum of the bars' words (every byte read once)."""
    words = np.ascontiguousarray(bars).view(np.uint64)
    return int(np.add.reduce(words, dtype=np.uint64)) if len(words) else 0


@dataclass(frozen=True)
class Lookup:
    """A cache lookup: the result (None on a miss) and why it missed."""

    result: LoadResult | None
    status: str  # hit | absent | stale: ... | corrupt: ...
    extra: Mapping[str, Any] | None = None  # what the producer stored beside the bars
    name: str = ""  # the entry's name
    checksum: int = 0  # of its bars, as recorded
    verified: bool = False  # the bars' length and checksum were checked

    @property
    def corrupt(self) -> bool:
        return self.status.startswith("corrupt")


@dataclass(frozen=True)
class Entry:
    """One entry as ``tradingd-data cache list`` shows it."""

    name: str
    path: str  # the CSV
    bars: int
    bytes: int
    state: str  # valid | stale: ... | corrupt: ...

    def line(self) -> str:
        return (f"{self.name}  {self.bars:>10} bars  {self.bytes / 1e6:8.1f} MB  "
                f"{self.state:<7}  {self.path}")

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "bars": self.bars,
                "bytes": self.bytes, "state": self.state}


class LoadCache:
    """The cache in one directory (created on first store, mode 0750)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    # -- lookup ------------------------------------------------------------------------

    def name(self, path: Path, fmt: CsvFormat) -> str:
        key = json.dumps({"path": os.path.abspath(path), "format": fmt.key()},
                         sort_keys=True)
        return hashlib.sha256(key.encode()).hexdigest()[:32]

    def key(self, path: Path, fmt: CsvFormat) -> dict[str, Any]:
        return {"cache_version": CACHE_VERSION, "loader_version": LOADER_VERSION,
                "path": os.path.abspath(path), "format": fmt.key(), **file_identity(path)}

    def load(self, path: Path, fmt: CsvFormat, *, verify: bool = True) -> Lookup:
        """The cached load of ``path`` with ``fmt``, if valid; a corrupt entry is removed.

        ``verify=False`` maps the bars after the length and header checks only, leaving the
        checksum (a read of every byte) to :meth:`verify`: for a start whose merged
        timeline is cached too, the per-file bars are never read.
        """
        name = self.name(path, fmt)
        meta_path = self.directory / (name + _SUFFIX_META)
        try:
            meta = json.loads(meta_path.read_text())
        except FileNotFoundError:
            return Lookup(None, "absent")
        except (OSError, ValueError) as exc:
            self._remove(name)
            return Lookup(None, f"corrupt: unreadable sidecar ({exc})")
        try:
            key = self.key(path, fmt)
        except OSError:
            return Lookup(None, "absent")  # the CSV itself: the loader reports it
        stale = _difference(meta.get("key"), key)
        if stale:
            return Lookup(None, f"stale: {stale}")
        try:
            bars = self._map(name, meta, verify=verify)
        except _Corrupt as exc:
            self._remove(name)
            return Lookup(None, f"corrupt: {exc}")
        bad = [BadRow(str(p), int(line), str(reason), str(text))
               for p, line, reason, text in meta["bad_rows"]]
        result = LoadResult(meta["result_path"], bars, int(meta["rows_read"]), bad,
                            {str(k): int(v) for k, v in meta["reject_counts"].items()},
                            newest_first=bool(meta["newest_first"]), from_cache=True)
        return Lookup(result, "hit", meta.get("extra"), name, int(meta["checksum"]), verify)

    def verify(self, found: Lookup) -> Lookup:
        """``found`` with its bars' checksum checked; a corrupt entry is removed."""
        if found.result is None or found.verified:
            return found
        if checksum(found.result.bars) != found.checksum:
            self._remove(found.name)
            return Lookup(None, f"corrupt: {found.name}{_SUFFIX_BARS}: checksum mismatch "
                                "(corrupted)")
        return Lookup(found.result, found.status, found.extra, found.name, found.checksum,
                      True)

    def _map(self, name: str, meta: Mapping[str, Any], verify: bool = True) -> np.ndarray:
        bars_path = self.directory / (name + _SUFFIX_BARS)
        try:
            size = bars_path.stat().st_size
            if size != meta["npy_bytes"]:
                raise _Corrupt(f"{bars_path.name} is {size} bytes, expected "
                               f"{meta['npy_bytes']} (truncated?)")
            bars = np.load(bars_path, mmap_mode="r", allow_pickle=False) if meta[
                "bars"] else np.zeros(0, BAR_DTYPE)
        except _Corrupt:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise _Corrupt(f"{bars_path.name}: {exc}") from None
        if bars.dtype != BAR_DTYPE or bars.shape != (meta["bars"],):
            raise _Corrupt(f"{bars_path.name}: dtype/shape {bars.dtype}/{bars.shape}, "
                           f"expected {meta['bars']} bars")
        if verify and checksum(bars) != meta["checksum"]:
            raise _Corrupt(f"{bars_path.name}: checksum mismatch (corrupted)")
        return bars

    # -- store -------------------------------------------------------------------------

    def store(self, path: Path, fmt: CsvFormat, result: LoadResult,
              extra: Mapping[str, Any] | None = None) -> Lookup:
        """Store one load (atomically) and ``extra`` (JSON values the caller wants back
        with it); returns the entry as a verified hit. OSError if it cannot."""
        key = self.key(path, fmt)
        name = self.name(path, fmt)
        self.directory.mkdir(mode=0o750, parents=True, exist_ok=True)
        bars = np.ascontiguousarray(result.bars, BAR_DTYPE)
        bars_path = self.directory / (name + _SUFFIX_BARS)
        self._atomic(bars_path, lambda f: np.save(f, bars, allow_pickle=False))
        total = checksum(bars)
        kept = dict(extra or {})
        meta: dict[str, Any] = {
            "key": key, "bars": len(bars), "npy_bytes": bars_path.stat().st_size,
            "checksum": total, "result_path": result.path,
            "rows_read": result.rows_read, "reject_counts": result.reject_counts,
            "bad_rows": [[r.path, r.line, r.reason, r.text] for r in result.bad_rows],
            "newest_first": result.newest_first, "extra": kept,
        }
        text = json.dumps(meta, indent=1).encode()
        self._atomic(self.directory / (name + _SUFFIX_META), lambda f: f.write(text))
        self._prune(key["path"], keep=name)
        return Lookup(result, "hit", kept, name, total, True)

    # -- the merged timeline ---------------------------------------------------------------

    def timeline_name(self, parts: list[Lookup], tag: Mapping[str, Any]) -> str:
        key = json.dumps({"parts": [(p.name, p.checksum) for p in parts], "tag": tag},
                         sort_keys=True)
        return "timeline-" + hashlib.sha256(key.encode()).hexdigest()[:32]

    def load_timeline(self, parts: list[Lookup], tag: Mapping[str, Any],
                      dtype: np.dtype[Any]) -> tuple[np.ndarray, dict[str, Any]] | str:
        """The merged records of ``parts`` (every file a hit) built under ``tag`` (e.g. the
        align mode and the record layout), mapped copy-on-write, and what was stored
        with them; or why not (a string: absent, corrupt: ...)."""
        name = self.timeline_name(parts, tag)
        try:
            meta = json.loads((self.directory / (name + _SUFFIX_META)).read_text())
        except FileNotFoundError:
            return "absent"
        except (OSError, ValueError) as exc:
            self._remove(name)
            return f"corrupt: unreadable sidecar ({exc})"
        path = self.directory / (name + _SUFFIX_BARS)
        try:
            if path.stat().st_size != meta["npy_bytes"]:
                raise _Corrupt(f"{path.name} is {path.stat().st_size} bytes, expected "
                               f"{meta['npy_bytes']} (truncated?)")
            records = np.load(path, mmap_mode="c", allow_pickle=False)
            if records.dtype != dtype or records.shape != (meta["records"],):
                raise _Corrupt(f"{path.name}: dtype/shape {records.dtype}/{records.shape}")
            if checksum(records) != meta["checksum"]:
                raise _Corrupt(f"{path.name}: checksum mismatch (corrupted)")
        except (OSError, ValueError, KeyError, TypeError, _Corrupt) as exc:
            self._remove(name)
            return f"corrupt: {exc}"
        return records, dict(meta.get("extra", {}))

    def store_timeline(self, parts: list[Lookup], tag: Mapping[str, Any],
                       records: np.ndarray, extra: Mapping[str, Any]) -> None:
        """Store merged records (atomically); older timelines are removed. OSError if not."""
        name = self.timeline_name(parts, tag)
        self.directory.mkdir(mode=0o750, parents=True, exist_ok=True)
        path = self.directory / (name + _SUFFIX_BARS)
        self._atomic(path, lambda f: np.save(f, records, allow_pickle=False))
        meta = {"records": len(records), "npy_bytes": path.stat().st_size,
                "checksum": checksum(records), "tag": dict(tag), "extra": dict(extra),
                "parts": [p.name for p in parts]}
        text = json.dumps(meta).encode()
        self._atomic(self.directory / (name + _SUFFIX_META), lambda f: f.write(text))
        for old in self.directory.glob("timeline-*" + _SUFFIX_META):
            if old.name != name + _SUFFIX_META:
                self._remove(old.name[:-len(_SUFFIX_META)])

    def _atomic(self, target: Path, write: Any) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
            os.rename(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _prune(self, csv_path: str, keep: str) -> None:
        """Remove the entries of the same CSV under other formats (they can only be stale
        once its format changed, or would just hold a second copy)."""
        for meta_path in self.directory.glob("*" + _SUFFIX_META):
            name = meta_path.name[:-len(_SUFFIX_META)]
            if name == keep:
                continue
            try:
                other = json.loads(meta_path.read_text())["key"]["path"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if other == csv_path:
                self._remove(name)

    def _remove(self, name: str) -> None:
        for suffix in (_SUFFIX_META, _SUFFIX_BARS):  # the commit record first
            with contextlib.suppress(FileNotFoundError):
                (self.directory / (name + suffix)).unlink()

    # -- listing, clearing --------------------------------------------------------------

    def entries(self) -> list[Entry]:
        out: list[Entry] = []
        if not self.directory.is_dir():
            return out
        for meta_path in sorted(self.directory.glob("*" + _SUFFIX_META)):
            name = meta_path.name[:-len(_SUFFIX_META)]
            bars_path = self.directory / (name + _SUFFIX_BARS)
            size = sum(p.stat().st_size for p in (meta_path, bars_path) if p.exists())
            if name.startswith("timeline-"):
                out.append(self._timeline_entry(name, meta_path, size))
                continue
            try:
                meta = json.loads(meta_path.read_text())
                csv_path, count = str(meta["key"]["path"]), int(meta["bars"])
            except (OSError, ValueError, KeyError, TypeError):
                out.append(Entry(name, "?", 0, size, "corrupt: unreadable sidecar"))
                continue
            out.append(Entry(name, csv_path, count, size, self._state(name, meta)))
        return out

    def _timeline_entry(self, name: str, meta_path: Path, size: int) -> Entry:
        try:
            meta = json.loads(meta_path.read_text())
            count, parts = int(meta["records"]), list(meta["parts"])
        except (OSError, ValueError, KeyError, TypeError):
            return Entry(name, "(merged timeline)", 0, size, "corrupt: unreadable sidecar")
        missing = [p for p in parts if not (self.directory / (p + _SUFFIX_META)).exists()]
        state = f"stale: {len(missing)} of its files' entries are gone" if missing else "valid"
        return Entry(name, f"(merged timeline of {len(parts)} files)", count, size, state)

    def _state(self, name: str, meta: Mapping[str, Any]) -> str:
        key = meta["key"]
        try:
            now = {**key, **file_identity(Path(key["path"])),
                   "cache_version": CACHE_VERSION, "loader_version": LOADER_VERSION}
        except OSError:
            return "stale: the CSV is gone"
        stale = _difference(key, now)
        if stale:
            return f"stale: {stale}"
        try:
            self._map(name, meta)
        except _Corrupt as exc:
            return f"corrupt: {exc}"
        return "valid"

    def clear(self) -> tuple[int, int]:
        """Remove every entry (and leftover temporary files); (files, bytes) removed."""
        removed = freed = 0
        if not self.directory.is_dir():
            return 0, 0
        for p in self.directory.iterdir():
            if p.is_file() and (p.suffix in (_SUFFIX_META, _SUFFIX_BARS)
                                or p.name.startswith(".")):
                freed += p.stat().st_size
                p.unlink()
                removed += 1
        return removed, freed


class _Corrupt(Exception):
    pass


def _difference(stored: Any, current: Mapping[str, Any]) -> str:
    """What differs between a stored key and the current one ("" if nothing)."""
    if not isinstance(stored, dict):
        return "no key"
    labels = {"size": "the file's size changed", "mtime_ns": "the file was modified",
              "head_blake2b": "the file's first 64 KiB changed",
              "tail_blake2b": "the file's last 64 KiB changed",
              "format": "the format changed", "loader_version": "another loader version",
              "cache_version": "another cache version", "path": "another file"}
    for field_name, label in labels.items():
        if stored.get(field_name) != current.get(field_name):
            return label
    return ""
