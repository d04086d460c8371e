"""A started node puts its start-up objects out of the collector's reach; later ones are
still collected."""

import gc

from fpai_node.node import freeze_startup_objects


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_startup_objects_are_frozen_and_later_garbage_is_still_collected() -> None:
    try:
        freeze_startup_objects()
        frozen = gc.get_freeze_count()
        assert frozen > 1000  # the interpreter, pytest and fpai_node, at least
        cycle = Cycle()
        del cycle
        assert gc.collect() >= 1  # the cycle made after the freeze is found
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
