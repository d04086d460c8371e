"""The hybrid logical clock that versions a node's writes (specs/0007-memory.md, MEM-3). Pure.

A version is (milliseconds, counter, node id). The clock follows the wall clock, never goes
back (a clock set back, or a write seen from a node whose clock runs ahead, moves the counter
instead), so that a node's later write always wins over its earlier one and over every write it
had seen when it wrote.
"""

from fpai_node.memory.operations import Version

_MAX_COUNTER = (1 << 32) - 1


class HybridClock:
    def __init__(self, node_id: str) -> None:
        self._node = node_id
        self._at = 0
        self._n = 0

    def tick(self, wall_ms: int) -> Version:
        """The version of a new write at wall time `wall_ms`, above every one seen."""
        if wall_ms > self._at:
            self._at, self._n = wall_ms, 0
        elif self._n < _MAX_COUNTER:
            self._n += 1
        else:
            self._at, self._n = self._at + 1, 0
        return Version(self._at, self._n, self._node)

    def observe(self, version: Version) -> None:
        """A version accepted from anyone (MEM-6 bounds how far ahead it may be)."""
        if (version.at_ms, version.n) > (self._at, self._n):
            self._at, self._n = version.at_ms, version.n
