"""Per-sender replay protection with bounded memory (specs/0002-wire.md, REPLAY-1..REPLAY-5). Pure.

Each sender gets a sliding window over its sequence numbers (as in IPsec): a number above the
highest seen is accepted and slides the window; one inside the window is accepted once; one below
it is stale. Memory is bounded by `max_senders`. A sender whose every accepted message has expired
is forgotten safely (a replay of those messages fails the expiry check). When the table is full of
live senders the least recently used one is evicted and the guard raises a timestamp floor to the
newest timestamp it forgot. A window created after that refuses frames stamped at or below the
floor in force when it was created: every frame an evicted sender had sent lies there, so
eviction never opens a window for replays, even when the evicted sender comes back.
"""

from collections import OrderedDict
from dataclasses import dataclass

from fpai_node.wire.errors import Replayed, StaleSequence

DEFAULT_WINDOW = 64  # REPLAY-2: tolerates reordering of up to 64 messages from one sender
DEFAULT_MAX_SENDERS = 16_384  # ~1.5 MiB worst case; far above any federation's live peer count


@dataclass(slots=True)
class _SenderWindow:
    highest: int
    seen: int  # bit i set: sequence number `highest - i` was accepted
    max_timestamp_ms: int
    max_expires_ms: int
    floor_ms: int  # the guard's floor when this window was created (REPLAY-4)


class ReplayGuard:
    def __init__(
        self, window: int = DEFAULT_WINDOW, max_senders: int = DEFAULT_MAX_SENDERS
    ) -> None:
        if window < 1 or max_senders < 1:
            raise ValueError("window and max_senders must be positive")
        self._window = window
        self._mask = (1 << window) - 1
        self._max_senders = max_senders
        self._senders: OrderedDict[str, _SenderWindow] = OrderedDict()
        self._floor_ms = -1  # no sender forgotten yet: any timestamp passes

    def __len__(self) -> int:
        return len(self._senders)

    @property
    def floor_ms(self) -> int | None:
        """The newest timestamp of a forgotten live sender; None while none was forgotten."""
        return None if self._floor_ms < 0 else self._floor_ms

    def accept(
        self, sender: str, seq: int, timestamp_ms: int, expires_ms: int, now_ms: int
    ) -> None:
        """Record (sender, seq) or raise Replayed / StaleSequence. Call only after the signature
        verified, so that forged messages cannot move a sender's window."""
        state = self._senders.get(sender)
        floor = self._floor_ms if state is None else state.floor_ms
        if timestamp_ms <= floor:
            raise StaleSequence(f"timestamp {timestamp_ms} <= floor {floor} of a forgotten sender")
        if state is None:
            self._senders[sender] = _SenderWindow(seq, 1, timestamp_ms, expires_ms, self._floor_ms)
            self._make_room(now_ms)
            return
        if seq > state.highest:
            shift = seq - state.highest
            state.seen = 1 if shift >= self._window else ((state.seen << shift) | 1) & self._mask
            state.highest = seq
        else:
            offset = state.highest - seq
            if offset >= self._window:
                raise StaleSequence(f"sequence {seq} is below the window (highest {state.highest})")
            bit = 1 << offset
            if state.seen & bit:
                raise Replayed(f"sequence {seq} was already accepted")
            state.seen |= bit
        state.max_timestamp_ms = max(state.max_timestamp_ms, timestamp_ms)
        state.max_expires_ms = max(state.max_expires_ms, expires_ms)
        self._senders.move_to_end(sender)

    def _make_room(self, now_ms: int) -> None:
        if len(self._senders) <= self._max_senders:
            return
        for sender in [s for s, w in self._senders.items() if w.max_expires_ms <= now_ms]:
            del self._senders[sender]
        while len(self._senders) > self._max_senders:
            _, evicted = self._senders.popitem(last=False)
            self._floor_ms = max(self._floor_ms, evicted.max_timestamp_ms)
