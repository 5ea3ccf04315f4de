"""SWAR number parsing: ASCII digits read eight at a time as uint64 words, whole columns at once.

Exact by construction (see :func:`parse_floats`); anything it cannot vouch for is left
to the exact path.
"""

from __future__ import annotations

import numpy as np


class Scratch:
    """Work arrays kept from block to block.

    Fresh multi-megabyte temporaries per block make the C library hand memory back to the
    OS and fault it in again (expensive in VMs); the largest ones are reused instead.
    """

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, n: int, dtype: type = np.uint64) -> np.ndarray:
        """An array of ``n`` items for ``name``; its contents are left over, overwrite them."""
        key = f"{name}/{np.dtype(dtype).char}"
        array = self._arrays.get(key)
        if array is None or len(array) < n:
            array = self._arrays[key] = np.empty(n + n // 8, dtype)
        return array[:n]


class Words:
    """A block's bytes read as little-endian uint64 words at any offset.

    Gathering an unaligned 8-byte element from numpy costs ~7 ns, and a 16-, 24- or 32-byte
    ("V16".."V32") element costs the same: so all the words a field needs are fetched in
    one gather.
    """

    def __init__(self, raw: np.ndarray) -> None:
        self.raw = raw
        self._views: dict[int, np.ndarray] = {}

    def at(self, offsets: np.ndarray, count: int) -> np.ndarray:
        """(len(offsets), count) uint64: the 8*count bytes from each offset."""
        view = self._views.get(count)
        if view is None:
            size = 8 * count
            view = np.ndarray((len(self.raw) - size + 1,), f"V{size}", self.raw, 0, (1,))
            self._views[count] = view
        words: np.ndarray = view[offsets].view("<u8").reshape(-1, count)
        return words


# SWAR constants: a byte value repeated in all eight bytes of a uint64.
U64 = np.uint64


def _bytewise(byte: int) -> np.uint64:
    return U64(int.from_bytes(bytes([byte]) * 8, "little"))


_ZEROS = _bytewise(ord("0"))
_DOT = _bytewise(ord(".") ^ ord("0"))  # a '.' once the '0' is xor-ed away
_LOW7 = _bytewise(0x7F)
HIGH = _bytewise(0x80)
_OVER9 = _bytewise(0x76)  # added to a byte, sets its bit 7 when the byte is above 9
_BYTE_INDEX = U64(0x0706050403020100)
_PAIRS = U64(0x00FF_00FF_00FF_00FF)
_QUADS = U64(0x0000_FFFF_0000_FFFF)
_ALL = U64(2**64 - 1)
_POW10 = 10.0 ** np.arange(23)  # exact doubles
#: _KEEP_LAST[n]: keeps the last n bytes (the highest, little-endian) of a word
_KEEP_LAST = np.array([0] + [(2**64 - 1) << (8 * (8 - n)) & (2**64 - 1) for n in range(1, 9)],
                      np.uint64)


def _keep_last(count: np.ndarray) -> np.ndarray:
    """Masks keeping the last ``count`` bytes (clipped to 0..8) of each word."""
    masks: np.ndarray = _KEEP_LAST[np.minimum(np.maximum(count, 0), 8)]
    return masks


def _zero_bytes(v: np.ndarray) -> np.ndarray:
    """1 in the lowest bit of exactly the bytes of ``v`` that are 0."""
    x = v & _LOW7
    x += _LOW7
    x |= v
    x |= _LOW7
    np.invert(x, out=x)
    x >>= U64(7)
    return x


def _non_digits(v: np.ndarray, scratch: Scratch | None = None,
                name: str = "errors") -> np.ndarray:
    """Non-zero where a byte of ``v`` is above 9 (was not an ASCII digit before ^ '0')."""
    x: np.ndarray = np.add(v, _OVER9, out=None if scratch is None else scratch.get(name, len(v)))
    x |= v
    x &= HIGH
    return x


def eight_digits(v: np.ndarray) -> np.ndarray:
    """The number written by 8 digit bytes (values 0..9, most significant in byte 0),
    computed in place with three multiply-shift steps."""
    v *= U64(10 * 256 + 1)
    v >>= U64(8)
    v &= _PAIRS
    v *= U64(100 * 65536 + 1)
    v >>= U64(16)
    v &= _QUADS
    v *= U64(10000 * 2**32 + 1)
    v >>= U64(32)
    return v


def parse_floats(data: Words, starts: np.ndarray, ends: np.ndarray,
                  scratch: Scratch) -> tuple[np.ndarray, np.ndarray]:
    """Parse plain decimals (``\\d*\\.?\\d*``, up to 16 bytes) exactly as float() would.

    The field's last 16 bytes become two words of digit values; the dot is dropped by
    moving the digits left of it one byte to the right, which leaves the mantissa's digits
    in order. Exactness: with a dot, 16 bytes hold at most 15 digits, an integer below
    2**53 that converts exactly and is divided once by an exact 10**scale (one correct
    rounding, as float() does); without one, a 16-digit integer converts with a single
    correct rounding. Usually every row has the first row's number of decimals, checked
    with one byte per row; rows that differ take the general path. Returns (values, ok);
    ok False: the field is left to the slow path.
    """
    if not len(starts):
        return np.zeros(0), np.zeros(0, bool)
    digits = _Digits(data, starts, ends, scratch)
    scale = _first_scale(data.raw, starts[0], ends[0])
    if scale is not None and (scale > 7 or digits.shortest <= scale or not bool(
            (data.raw[ends - (scale + 1)] == ord(".")).all())):
        scale = -1  # not one fixed scale
    values, ok = digits.floats(scale)
    if not bool(ok.all()):
        redo = np.flatnonzero(~ok)
        values[redo], ok[redo] = _Digits(data, starts[redo], ends[redo], scratch).floats(-1)
    return values, ok


def _first_scale(raw: np.ndarray, start: int, end: int) -> int | None:
    """Digits after the dot of one field (None: no dot)."""
    dot = raw[start:end].tobytes().rfind(b".")
    return None if dot < 0 else int(end - start - 1 - dot)


class _Digits:
    """A column of fields as two words of digit values (bytes ^ '0'), ready to convert."""

    def __init__(self, data: Words, starts: np.ndarray, ends: np.ndarray,
                 scratch: Scratch) -> None:
        n = len(starts)
        self.scratch = scratch
        self.lengths = np.subtract(ends, starts, out=scratch.get("lengths", n, np.int64))
        self.longest = int(self.lengths.max())
        self.shortest = int(self.lengths.min())
        two = self.longest > 8
        words = data.at(ends - (16 if two else 8), 2 if two else 1)
        self.lo = np.bitwise_xor(words[:, -1], _ZEROS, out=scratch.get("lo", n))
        # bytes before the field are masked off: a mask keeping the last L bytes of the
        # 16 is all-ones shifted left by 8 * (16 - L) bits (numpy makes a shift >= 64
        # give 0); the low word keeps everything unless L < 8
        shift = np.subtract(16, self.lengths, out=scratch.get("shift", n, np.int64))
        shift <<= 3
        bits = shift.view(np.uint64)
        if self.shortest < 8:
            low = np.subtract(shift, 64, out=scratch.get("lo_shift", n, np.int64))
            np.maximum(low, 0, out=low)
            self.lo &= np.left_shift(_ALL, low.view(np.uint64), out=scratch.get("lo_keep", n))
        self.hi: np.ndarray | None = None
        if two:
            self.hi = np.bitwise_xor(words[:, 0], _ZEROS, out=scratch.get("hi", n))
            self.hi &= np.left_shift(_ALL, bits, out=scratch.get("hi_keep", n))

    def floats(self, scale: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Values and ok: ``scale`` decimals in every row, None: integers, -1: any."""
        if scale == -1:
            scales, dotted = self._drop_any_dot()
        elif scale is not None:
            self._drop_dot_at(scale)
        mantissa, ok = self._mantissa()
        if scale == -1:
            ok &= self.lengths > dotted
        elif scale == 0:  # "5." is 5.0, but "." alone is no number (bad_number)
            ok &= self.lengths > 1
        elif self.shortest == 0:
            ok &= self.lengths > 0
        values = mantissa.astype(np.float64)
        if scale == -1:
            values /= _POW10[scales]
        elif scale:
            values /= _POW10[scale]
        return values, ok

    def _drop_dot_at(self, scale: int) -> None:
        """Remove the dot known to be ``scale`` bytes from the end of every field."""
        lo, hi = self.lo, self.hi
        left = self.scratch.get("left", len(lo))
        np.bitwise_and(lo, U64((1 << (8 * (7 - scale))) - 1), out=left)
        left <<= U64(8)
        lo &= _KEEP_LAST[scale]
        lo |= left
        if hi is not None:
            lo |= hi >> U64(56)
            hi <<= U64(8)

    def _drop_any_dot(self) -> tuple[np.ndarray, np.ndarray]:
        """Remove the first dot wherever it is; returns (digits after it, dotted)."""
        lo, hi, n = self.lo, self.hi, len(self.lo)
        dot = _zero_bytes(np.bitwise_xor(lo, _DOT, out=self.scratch.get("dot", n)))
        dot &= U64(0) - dot  # the first dot only: any other fails the digit check
        dotted = dot != 0
        left = dot - dotted  # bytes left of the dot (0 if none)
        keep = ~(left | (dot * U64(0xFF)))  # right of the dot
        left &= lo
        left <<= U64(8)
        lo &= keep
        lo |= left
        if hi is not None:
            lo |= (hi >> U64(56)) * dotted  # its last byte moves into the low word
            hi <<= U64(8) * dotted
        dot *= _BYTE_INDEX
        dot >>= U64(56)
        return dot.view(np.int64), dotted

    def _mantissa(self) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.lo, self.hi
        errors = _non_digits(lo, self.scratch)
        if hi is not None:
            errors |= _non_digits(hi, self.scratch, "errors_hi")
        mantissa = eight_digits(lo)
        if hi is not None:
            if self.longest <= 10:  # at most 2 digits in the high word: its last bytes
                hi >>= U64(48)
                top = hi >> U64(8)
                hi &= U64(0xFF)
                hi *= U64(10)
                hi += top
            else:
                hi = eight_digits(hi)
            hi *= U64(10**8)
            mantissa += hi
        ok = errors == 0
        if self.longest > 16:  # the leading digits were not loaded
            ok &= self.lengths <= 16
        return mantissa, ok


def parse_integers(data: Words, starts: np.ndarray, ends: np.ndarray,
                    max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Parse unsigned integers of up to ``max_len`` (<= 19) digits; (uint64 values, ok)."""
    lengths = ends - starts
    if not len(lengths):
        return np.zeros(0, np.uint64), np.zeros(0, bool)
    count = max(1, (min(int(lengths.max()), max_len) + 7) // 8)
    words = data.at(ends - 8 * count, count)
    total = np.zeros(len(lengths), np.uint64)
    errors = np.zeros(len(lengths), np.uint64)
    for j in range(count):
        v = words[:, -1 - j] ^ _ZEROS
        v &= _keep_last(lengths - 8 * j)
        errors |= _non_digits(v)
        total += eight_digits(v) * U64(10 ** (8 * j))
    ok = (errors == 0) & (lengths > 0) & (lengths <= max_len)
    return total, ok
