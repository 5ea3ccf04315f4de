"""Refusing data "files" that are not regular files, before anything reads them.

A FIFO named like a CSV blocks ``open()`` until a writer appears, and the producer's
start-up with it (SIGTERM then interrupts a blocked C call, not our loop); a device or a
directory is no market data either. :func:`check_regular` opens the path with
``O_NONBLOCK`` (returns at once, FIFO or not), ``fstat``\\s it and refuses anything but a
regular file with a :class:`DataError` (exit 66), naming what it is.

The loader (``tradingd.producer.loader``) opens the path itself afterwards; it may call
:func:`check_regular` from its own ``_open`` too (issue 14 splits the loader: not done
here, so it stays untouched).
"""

from __future__ import annotations

import io
import os
import stat

from tradingd.errors import DataError
from tradingd.segment.shm import file_kind


def check_regular(path: str | os.PathLike[str]) -> None:
    """Raise DataError (exit 66) unless ``path`` is a regular file we can open; never blocks."""
    open_regular(path).close()


def open_regular(path: str | os.PathLike[str]) -> io.BufferedReader:
    """``open(path, "rb")`` for a regular file only: a FIFO or device never blocks the
    caller (opened ``O_NONBLOCK``, checked with ``fstat`` on the same descriptor, so no
    other file can be swapped in between); DataError (exit 66) otherwise."""
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise DataError(f"{name}: cannot open: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise DataError(f"{name}: is {file_kind(mode)}, not a regular file: refusing to "
                            f"read market data from it")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
