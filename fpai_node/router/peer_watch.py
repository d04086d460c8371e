"""Watching the serving peer of a forwarded request (specs/0006-routing.md FWD-8, FWD-9).

A peer cut off mid-answer sends no error: its TCP connection just goes quiet, and TCP notices
only after minutes. So a forwarded request waits on its peer under one `asyncio.timeout`, moved
forward by each event, and asks gossip every LIVENESS_CHECK_S whether it declared the peer dead;
that verdict ends the wait at once. While the request's consumer holds an event (a slow
client), the wait is paused: that time is not the peer's.
"""

import asyncio
from collections.abc import Callable

LIVENESS_CHECK_S = 0.5  # a dead peer's requests end within this of gossip's verdict


class PeerWatch:
    """Deadlines of one forwarded request while it waits on its peer.

    `timeout` is the entered `asyncio.timeout` the wait runs under, set to the first event's
    deadline; `is_dead` answers whether gossip declared the peer dead. Made and closed
    inside the timeout's block."""

    def __init__(self, timeout: asyncio.Timeout, peer: str, is_dead: Callable[[str], bool]) -> None:
        self._timeout = timeout
        self._peer = peer
        self._is_dead = is_dead
        self._loop = asyncio.get_running_loop()
        self._armed = True
        self.declared_dead = False
        self._check_handle: asyncio.TimerHandle | None = self._loop.call_later(
            LIVENESS_CHECK_S, self._check
        )

    def waiting(self, for_s: float) -> None:
        """The request waits on the peer again, for at most `for_s`; at once if it died."""
        self._armed = True
        self._timeout.reschedule(self._loop.time() + (0.0 if self.declared_dead else for_s))

    def paused(self) -> None:
        """The consumer holds an event: no deadline runs until `waiting`."""
        self._armed = False
        self._timeout.reschedule(None)

    def close(self) -> None:
        if self._check_handle is not None:
            self._check_handle.cancel()
            self._check_handle = None

    def _check(self) -> None:
        self._check_handle = None
        if self._timeout.expired():  # the wait is already ending: nothing more to watch
            return
        if not self._is_dead(self._peer):
            self._check_handle = self._loop.call_later(LIVENESS_CHECK_S, self._check)
            return
        self.declared_dead = True
        if self._armed:
            self._timeout.reschedule(self._loop.time())
