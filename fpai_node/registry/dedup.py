"""The idempotency window of REG-4 as a persistent structure: cheap to extend, cheap to prune.

Every replica remembers the (id, at) of each command it applied for an hour of command time. A
flat table copied on each command costs time in proportion to everything remembered (875 µs a
command at 20,000 ids). Here pairs are grouped by the second of their `at`: remembering one
copies only that second's group and the small table of seconds, forgetting drops whole seconds
and filters the one second the horizon falls in, and a lookup goes straight to one group,
because a retry is the same command bytes and so carries the same `at`. Pure and immutable like
the rest of the state: every replica that applies the same log holds the same window.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from types import MappingProxyType

Pairs = frozenset[tuple[bytes, int]]
_EMPTY: Pairs = frozenset()
_SECOND_MS = 1000


@dataclass(frozen=True, slots=True)
class DedupWindow:
    seconds: MappingProxyType[int, Pairs] = field(
        default_factory=lambda: MappingProxyType({})
    )  # second of `at` -> the (id, at) pairs of that second
    oldest: int | None = None  # the smallest second held, to find what to forget without a scan

    @classmethod
    def of(cls, pairs: Iterable[tuple[bytes, int]]) -> "DedupWindow":
        seconds: dict[int, set[tuple[bytes, int]]] = {}
        for key, at in pairs:
            seconds.setdefault(at // _SECOND_MS, set()).add((key, at))
        return cls(
            MappingProxyType({s: frozenset(g) for s, g in seconds.items()}),
            min(seconds, default=None),
        )

    def holds(self, key: bytes, at: int) -> bool:
        return (key, at) in self.seconds.get(at // _SECOND_MS, _EMPTY)

    def remember(self, key: bytes, at: int, horizon: int) -> "DedupWindow":
        """Forget every id whose `at` is before `horizon`, then remember (key, at)."""
        seconds = self.seconds.copy()  # the dict under the proxy, copied in C
        oldest = self.oldest
        if oldest is not None and oldest <= horizon // _SECOND_MS:
            oldest = _forget_before(seconds, oldest, horizon)
        second = at // _SECOND_MS
        seconds[second] = seconds.get(second, _EMPTY) | {(key, at)}
        oldest = second if oldest is None else min(oldest, second)
        return DedupWindow(MappingProxyType(seconds), oldest)

    def pairs(self) -> Iterator[tuple[bytes, int]]:
        for group in self.seconds.values():
            yield from group

    def __len__(self) -> int:
        return sum(len(group) for group in self.seconds.values())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DedupWindow):
            return NotImplemented
        return set(self.pairs()) == set(other.pairs())

    __hash__ = None  # type: ignore[assignment]  # equal windows may be grouped differently


def _forget_before(seconds: dict[int, Pairs], oldest: int, horizon: int) -> int | None:
    """Drop ids older than `horizon` from `seconds` in place; return the new oldest second.
    Whole seconds go without a look inside; only the second the horizon falls in is filtered."""
    cut = horizon // _SECOND_MS
    if cut - oldest <= len(seconds):
        doomed: Iterable[int] = range(oldest, cut)
    else:  # a long gap in command time: fewer seconds held than seconds passed
        doomed = [second for second in seconds if second < cut]
    for second in doomed:
        seconds.pop(second, None)
    group = seconds.get(cut)
    if group is not None:
        kept = frozenset(pair for pair in group if pair[1] >= horizon)
        if len(kept) != len(group):
            if kept:
                seconds[cut] = kept
            else:
                del seconds[cut]
    return cut if cut in seconds else min(seconds, default=None)
