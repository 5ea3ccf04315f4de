"""Reading a file as blocks of whole lines, padded for word loads, checked for encoding."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from tradingd.errors import DataError
from tradingd.producer.datafile import open_regular

# ---------------------------------------------------------------------------------------
# reading the file in blocks of whole lines
# ---------------------------------------------------------------------------------------

_FRONT = 32  # zero bytes before the data: loads of a field's last 24 bytes start before it
BACK = 64  # slack after the data: a timestamp's words (up to 64 bytes) may end past it
UTF8_BOM = b"\xef\xbb\xbf"
_OTHER_BOMS = {b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16", b"\x00\x00\xfe\xff": "UTF-32"}


class Block(NamedTuple):
    """Whole lines of the file (each ending in \\n) with padding around them."""

    buf: bytearray
    raw: np.ndarray  # uint8 view of buf
    start: int  # offset of the first line to parse
    stop: int  # offset just past the last \n
    first_line: int  # 1-based line number of the line at ``start``


def open_data(path: str) -> io.BufferedIOBase:
    """The data file, opened for reading; a FIFO or directory is refused (exit 66)."""
    return open_regular(path)


def read_blocks(f: io.BufferedIOBase, path: str, block_size: int) -> Iterator[Block]:
    """Yield the file as blocks of whole lines; a last line without \\n gets one.

    One buffer is reused: the partial line after a block's last newline moves to its front
    once the block has been processed. ``first_line`` is 1; the caller numbers the rest.
    """
    buf = bytearray()
    carry = 0  # bytes of a partial line at buf[_FRONT:]
    first = True
    size_now = file_size(f)
    if size_now is not None:  # a small file: one read, no larger buffer than needed
        block_size = max(1, min(block_size, size_now + 1))
    while True:
        size = _FRONT + carry + block_size + BACK
        if len(buf) < size:  # a new buffer (a line longer than a block makes it grow)
            buf = bytearray(size) if not carry else bytearray(buf[:_FRONT + carry]).ljust(size,
                                                                                        b"\0")
        begin = _FRONT + carry
        end = begin + _read_into(f, path, memoryview(buf)[begin:begin + block_size])
        at_eof = end < begin + block_size  # _read_into only stops short at the end
        if at_eof:
            if end == _FRONT:
                if first:
                    raise DataError(f"{path}: the file is empty")
                return
            if buf[end - 1] != 10:
                buf[end] = 10  # the last line had no newline
                end += 1
        start = _check_start(buf, end, path) if first else _FRONT
        cut = buf.rfind(b"\n", start, end) + 1
        if cut == 0:  # no newline yet (at_eof is False: it would have added one): read on
            carry = end - _FRONT
            continue
        yield Block(buf, np.frombuffer(buf, np.uint8), start, cut, 1)
        first = False
        if at_eof:
            return
        carry = end - cut
        buf[_FRONT:_FRONT + carry] = buf[cut:end]


def file_size(f: io.BufferedIOBase) -> int | None:
    try:
        return os.fstat(f.fileno()).st_size or None
    except (OSError, ValueError):
        return None


def _read_into(f: io.BufferedIOBase, path: str, view: memoryview) -> int:
    done = 0
    try:
        while done < len(view):
            n = f.readinto(view[done:])
            if not n:
                break
            done += n
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return done


def _check_start(buf: bytearray, end: int, path: str) -> int:
    """Offset where the text starts (after a UTF-8 BOM); DataError for other encodings."""
    head = bytes(buf[_FRONT:_FRONT + 4])
    if head.startswith(UTF8_BOM):
        return _FRONT + len(UTF8_BOM)
    for bom, name in _OTHER_BOMS.items():
        if head.startswith(bom):
            raise DataError(f"{path}: the file is {name} text; convert it to UTF-8")
    if head.startswith(b"\x1f\x8b"):
        raise DataError(f"{path}: the file is gzip-compressed; decompress it first")
    if buf.find(b"\n", _FRONT, end) < 0 and buf.find(b"\r", _FRONT, end) >= 0:
        raise DataError(f"{path}: lines end in CR only (classic Mac OS); "
                        "convert them to LF or CRLF")
    return _FRONT


def check_utf8(block: Block, path: str) -> None:
    buf = block.buf
    if buf.isascii():
        return
    try:
        str(memoryview(buf)[block.start:block.stop], "utf-8")
    except UnicodeDecodeError as exc:
        line = block.first_line + buf.count(b"\n", block.start, block.start + exc.start)
        raise DataError(f"{path}:{line}: not UTF-8 text (byte "
                        f"0x{buf[block.start + exc.start]:02x} cannot be decoded); convert the"
                        " file to UTF-8") from None
