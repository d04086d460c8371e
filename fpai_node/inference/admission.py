"""Bounded admission to a model: `capacity` generations run, up to `max_waiting` more wait in
FIFO order, and anything past that is refused at once with an honest Retry-After.

A finishing request hands its slot straight to the first waiter, so `running` and `waiting` are
exact at every moment: no newcomer can slip into the gap between a release and the waiter
waking up.
"""

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fpai_node.inference.base import Overloaded


class Admission:
    def __init__(self, name: str, capacity: int, max_waiting: int) -> None:
        if capacity < 1 or max_waiting < 0:
            raise ValueError("capacity must be >= 1 and max_waiting >= 0")
        self._name = name
        self._capacity = capacity
        self._max_waiting = max_waiting
        self._queue: deque[asyncio.Future[None]] = deque()
        self._running = 0
        self._mean_s = 5.0  # EWMA of how long a generation holds its slot; a guess until measured

    @property
    def waiting(self) -> int:
        return len(self._queue)

    @property
    def running(self) -> int:
        return self._running

    def retry_after_s(self) -> int:
        """Seconds until a place is likely free: the queue ahead, drained at the measured rate."""
        return max(1, math.ceil((self.waiting + 1) * self._mean_s / self._capacity))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._running < self._capacity and not self._queue:
            self._running += 1
        elif len(self._queue) >= self._max_waiting:
            raise Overloaded(
                f"model {self._name} is busy: {self._running} running, {self.waiting} waiting",
                self.retry_after_s(),
            )
        else:
            await self._wait_for_handover()
        started = time.monotonic()
        try:
            yield
        finally:
            self._mean_s = 0.8 * self._mean_s + 0.2 * (time.monotonic() - started)
            self._release()

    async def _wait_for_handover(self) -> None:
        turn = asyncio.get_running_loop().create_future()
        self._queue.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # the slot reached us just as we left: pass it on
            elif turn in self._queue:  # a release may already have popped and skipped it
                self._queue.remove(turn)
            raise

    def _release(self) -> None:
        while self._queue:
            turn = self._queue.popleft()
            if not turn.done():
                turn.set_result(None)  # `running` is unchanged: the slot changes hands
                return
        self._running -= 1
