"""The pairs a node is party to, grouped by epoch (specs/0010-rewards.md RWD-4, RWD-5). Pure.

A node looks its pairs up by epoch every second (which digests are due) and on every audit;
grouping them as they arrive keeps that from costing a pass over every pair it holds. The
grouping follows `rewards.epoch_s`: a change of it (rare: it renumbers epochs) regroups once.
"""

from collections.abc import Iterable

from fpai_node.router.acks import Pair


class PairBook:
    def __init__(self, epoch_ms: int) -> None:
        self._epoch_ms = epoch_ms
        self._by_epoch: dict[int, dict[bytes, Pair]] = {}

    def __len__(self) -> int:
        return sum(len(group) for group in self._by_epoch.values())

    def add(self, pair: Pair) -> None:
        self._by_epoch.setdefault(pair.epoch_ms // self._epoch_ms, {})[pair.id] = pair

    def regroup(self, epoch_ms: int) -> None:
        """Epochs of `epoch_ms` from now on (RWD-4's `rewards.epoch_s` changed)."""
        if epoch_ms == self._epoch_ms:
            return
        pairs = [p for group in self._by_epoch.values() for p in group.values()]
        self._epoch_ms, self._by_epoch = epoch_ms, {}
        for pair in pairs:
            self.add(pair)

    def epochs(self) -> list[int]:
        return sorted(self._by_epoch)

    def of(self, epoch: int) -> Iterable[Pair]:
        return self._by_epoch.get(epoch, {}).values()

    def forget_before(self, epoch: int) -> None:
        for old in [e for e in self._by_epoch if e < epoch]:
            del self._by_epoch[old]
