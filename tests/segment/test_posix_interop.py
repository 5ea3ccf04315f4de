"""tradingd's segment names are plain ``shm_open`` names, shared with other programs.

Other languages and libraries open a segment as ``shm_open("/NAME")`` (the C reader in
``tools/c/``, Python's ``posix_ipc``); tradingd opens ``/dev/shm/NAME`` directly with
``O_NOFOLLOW`` and owner checks (``tradingd/segment/shm.py``). These tests hold the two
views together through ``posix_ipc`` (a test dependency only: no module of tradingd
imports it): a segment tradingd makes is the object ``shm_open`` finds, and a name another
program holds is one tradingd refuses to take over.
"""

from __future__ import annotations

import mmap
import os

import posix_ipc
import pytest

from tradingd.errors import SegmentExists
from tradingd.segment import layout as L
from tradingd.segment import shm
from tradingd.segment.model import SymbolInfo
from tradingd.segment.writer import SegmentWriter


def test_a_tradingd_segment_is_what_shm_open_finds(segment_name: str) -> None:
    writer = SegmentWriter.create(segment_name, [SymbolInfo("AAPL", "stock")],
                                  ring_capacity=1024)
    try:
        ours = os.stat(shm.segment_path(segment_name))
        theirs = posix_ipc.SharedMemory("/" + segment_name, read_only=True)
        try:
            st = os.fstat(theirs.fd)
            assert (st.st_dev, st.st_ino) == (ours.st_dev, ours.st_ino)
            assert theirs.size == ours.st_size
            with mmap.mmap(theirs.fd, theirs.size, prot=mmap.PROT_READ) as view:
                assert int.from_bytes(view[:8], "little") == L.MAGIC
        finally:
            theirs.close_fd()
    finally:
        writer.close()
    with pytest.raises(posix_ipc.ExistentialError):
        posix_ipc.SharedMemory("/" + segment_name)  # close() unlinked it for everyone


def test_a_name_another_program_holds_is_refused(segment_name: str) -> None:
    squatter = posix_ipc.SharedMemory("/" + segment_name, posix_ipc.O_CREX, mode=0o600,
                                      size=4096)
    try:
        with pytest.raises(SegmentExists):
            SegmentWriter.create(segment_name, [SymbolInfo("AAPL", "stock")],
                                 ring_capacity=1024)
        assert os.fstat(squatter.fd).st_size == 4096  # left as it was
    finally:
        squatter.close_fd()
        squatter.unlink()
