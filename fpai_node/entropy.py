"""Random identifiers from the kernel's CSPRNG, drawn in blocks.

`os.urandom` is a system call that releases the GIL: on a busy node every call is a chance for
another thread (Raft's) to take the interpreter, and the caller waits to get it back. Request
ids and registry idempotency keys are taken once per request, so they are cut from a block of
kernel randomness fetched a few hundred at a time. Each byte is used once, so they stay as
unpredictable as `os.urandom` itself.
"""

import os
import threading

BLOCK_BYTES = 4096  # 256 idempotency keys a system call


class RandomBytes:
    """Bytes from `os.urandom`, fetched a block at a time; safe from any thread."""

    def __init__(self, block_bytes: int = BLOCK_BYTES) -> None:
        self._block_bytes = block_bytes
        self._block = b""
        self._offset = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> bytes:
        if n > self._block_bytes:
            return os.urandom(n)
        with self._lock:
            if self._offset + n > len(self._block):
                self._block, self._offset = os.urandom(self._block_bytes), 0
            start, self._offset = self._offset, self._offset + n
            return self._block[start : self._offset]


_shared = RandomBytes()


def random_bytes(n: int) -> bytes:
    """`n` bytes as unpredictable as `os.urandom(n)`, usually without a system call."""
    return _shared.take(n)


def random_hex(n: int = 16) -> str:
    """A random identifier of `n` bytes as hex (a request id: 16 bytes, like a uuid4's)."""
    return _shared.take(n).hex()
