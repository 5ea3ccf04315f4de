# The part of posix_ipc (1.1+, a C extension without type information) that tradingd uses:
# tradingd/segment/shm.py. Signatures from posix_ipc's documentation, checked against the
# installed module by mypy.stubtest (tests/segment/test_typing.py).

from typing_extensions import disjoint_base

O_CREAT: int
O_EXCL: int
O_CREX: int
O_TRUNC: int

class Error(Exception): ...
class ExistentialError(Error): ...
class PermissionsError(Error): ...

@disjoint_base
class SharedMemory:
    name: str
    mode: int
    fd: int
    size: int
    def __init__(self, name: str | None, flags: int = ..., mode: int = ..., size: int = ...,
                 read_only: bool = ...) -> None: ...
    def close_fd(self) -> None: ...
    def fileno(self) -> int: ...
    def unlink(self) -> None: ...

def unlink_shared_memory(name: str) -> None: ...
