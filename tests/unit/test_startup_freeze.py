"""A started node puts its start-up objects out of the collector's reach; later ones are
still collected."""

import gc
import weakref

from fpai_node.node import YOUNG_COLLECTION_THRESHOLD, freeze_startup_objects


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_startup_objects_are_frozen_and_later_garbage_is_still_collected() -> None:
    thresholds = gc.get_threshold()
    try:
        freeze_startup_objects()
        frozen = gc.get_freeze_count()
        assert frozen > 1000  # the interpreter, pytest and fpai_node, at least
        assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, *thresholds[1:])
        cycle = Cycle()
        del cycle
        assert gc.collect() >= 1  # the cycle made after the freeze is found
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_a_cycle_is_collected_once_enough_objects_were_allocated_after_it() -> None:
    """The higher threshold delays collection; it does not stop it."""
    thresholds = gc.get_threshold()
    try:
        freeze_startup_objects()
        collected = weakref.WeakSet[Cycle]()
        cycle = Cycle()
        collected.add(cycle)
        del cycle
        assert len(collected) == 1  # a cycle outlives its last reference...
        keep = [[] for _ in range(2 * YOUNG_COLLECTION_THRESHOLD)]  # containers, kept alive
        assert len(collected) == 0  # ...until the allocations after it reach the threshold
        del keep
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
