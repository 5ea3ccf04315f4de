"""Stub of the C extension tradingd.exec._execfast (tradingd/exec/_execfast.c).

Checked against the built module by tests/exec/test_execfast.py (mypy.stubtest).
"""

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from _typeshed import ReadableBuffer, WriteableBuffer

_T = TypeVar("_T", bound=tuple[Any, ...])

CHANNEL_FINGERPRINT_HEX: str
ORDER_BODY_SIZE: int

def take_orders(buffer: ReadableBuffer, ring_offset: int, capacity: int, position: int,
                max: int, /) -> list[bytes]: ...
def encode_orders(client: bytes, generation: int, first_seq: int, arrival_ns: int,
                  raws: list[bytes], refs: list[float], /) -> bytes: ...
def take_and_frame(buffer: ReadableBuffer, ring_offset: int, capacity: int, position: int,
                   max: int, client: bytes, generation: int, clock: Callable[[], int],
                   ref_of: Callable[[bytes], float], fields_type: type[_T], /
                   ) -> tuple[list[bytes], bytes, list[float], int, list[_T]] | None: ...
def take_accept(buffer: ReadableBuffer, ring_offset: int, capacity: int, position: int,
                max: int, client: bytes, generation: int, clock: Callable[[], int],
                ref_of: Callable[[bytes], float], fields_type: type[_T],
                journal: WriteableBuffer | None, journal_end: int,
                reports: WriteableBuffer | None, report_capacity: int,
                report_generation: int, ctx: tuple[Any, ...] | None, /
                ) -> tuple[list[bytes], bytes, list[float], int, list[_T], int, int] | None: ...
def wait_ready(rings: list[tuple[ReadableBuffer, int, int]], ring_offset: int,
               deadline_ns: int, /) -> bool: ...
def publish_reports(buffer: WriteableBuffer, ring_offset: int, capacity: int,
                    cursor_offset: int, reports: Sequence[tuple[Any, ...]], /) -> int: ...
