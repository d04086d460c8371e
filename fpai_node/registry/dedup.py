"""The idempotency window of REG-4 as a persistent structure: cheap to extend, cheap to prune.

Every replica remembers the (id, at) of each command it applied for an hour of command time:
at 3,000 writes a second, about ten million pairs. The window is a hash array mapped trie
(`immutables.Map`, the structure of PEP 603) from each `at` to the ids applied at that
millisecond, so remembering one pair or forgetting one millisecond costs O(log n) and shares
everything else with the previous window: the state stays immutable (the snapshot thread and
readers hold old windows) without copying anything in proportion to the window. A retry is the
same command bytes, hence the same `at`, so a lookup goes straight to one millisecond.

Forgetting is exact (REG-4): every pair whose `at` is before the horizon goes, so every replica
holds the same pairs after the same command.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter

from immutables import Map

_AT = _ID = itemgetter(0)  # of an (at, ids) item and of an (id, at) pair
Ids = frozenset[bytes]  # the ids applied at one millisecond: a handful even at 10,000 writes/s
_NONE: Ids = frozenset()


@dataclass(frozen=True, slots=True)
class DedupWindow:
    by_at: Map[int, Ids] = field(default_factory=Map)  # `at` -> the ids remembered with it
    oldest: int | None = None  # the smallest `at` held, to find what to forget without a scan

    @classmethod
    def of(cls, pairs: Iterable[tuple[bytes, int]]) -> "DedupWindow":
        by_at: dict[int, set[bytes]] = {}
        for key, at in pairs:
            by_at.setdefault(at, set()).add(key)
        return cls(Map({at: frozenset(ids) for at, ids in by_at.items()}), min(by_at, default=None))

    def holds(self, key: bytes, at: int) -> bool:
        return key in self.by_at.get(at, _NONE)

    def remember(self, key: bytes, at: int, horizon: int) -> "DedupWindow":
        """Forget every id whose `at` is before `horizon`, then remember (key, at)."""
        by_at, oldest = self.by_at, self.oldest
        if oldest is not None and oldest < horizon:
            by_at, oldest = _forget_before(by_at, oldest, horizon)
        by_at = by_at.set(at, by_at.get(at, _NONE) | {key})
        return DedupWindow(by_at, at if oldest is None else min(oldest, at))

    def pairs(self) -> Iterator[tuple[bytes, int]]:
        for at, ids in self.by_at.items():
            for key in ids:
                yield key, at

    def sorted_pairs(self) -> list[tuple[bytes, int]]:
        """Every (id, at) by id, then at (REG-11): the pairs in `at` order, then a stable sort
        by id alone, which is 3 times faster than sorting the pairs as tuples (measured: 99
        against 289 ms for 200,000; a snapshot of a busy registry holds millions)."""
        pairs = [(key, at) for at, ids in sorted(self.by_at.items(), key=_AT) for key in ids]
        pairs.sort(key=_ID)
        return pairs

    def __len__(self) -> int:
        return sum(len(ids) for ids in self.by_at.values())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DedupWindow):
            return NotImplemented
        return self.by_at == other.by_at

    __hash__ = None  # type: ignore[assignment]  # a window is a value, compared whole


def _forget_before(
    by_at: Map[int, Ids], oldest: int, horizon: int
) -> tuple[Map[int, Ids], int | None]:
    """`by_at` without the milliseconds before `horizon`, and the smallest `at` left.

    Under steady writes the horizon moves a few milliseconds per command, so walking the
    milliseconds from `oldest` is short; after a pause in command time the window holds fewer
    milliseconds than passed, and a pass over what it holds is shorter. Either way the cost is
    the smaller of the two."""
    if horizon - oldest <= len(by_at):
        with by_at.mutate() as doomed:  # one batch of deletions, one new trie
            for at in range(oldest, horizon):
                doomed.pop(at, None)
            by_at = doomed.finish()
        return by_at, _first_from(by_at, horizon)
    kept = by_at.mutate()
    for at in [at for at in by_at if at < horizon]:
        del kept[at]
    by_at = kept.finish()
    return by_at, min(by_at, default=None)


def _first_from(by_at: Map[int, Ids], start: int) -> int | None:
    """The smallest `at` held that is at least `start`: a walk from `start` while that is
    shorter than a pass over the window (every `at` held is at least `start` here)."""
    if not by_at:
        return None
    for at in range(start, start + len(by_at)):
        if at in by_at:
            return at
    return min(by_at)
