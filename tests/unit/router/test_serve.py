"""The serving side's split of embeddings into `vectors` events (FWD-4)."""

import numpy as np

from fpai_node.inference.base import Embeddings
from fpai_node.router.messages import VECTORS_EVENT_BYTES
from fpai_node.router.serve import _batches


def test_large_embeddings_are_split_into_events_of_bounded_size_in_order() -> None:
    vectors = [[float(i)] * 1024 for i in range(300)]  # 4 KiB each, 1.2 MiB in all
    events = _batches(Embeddings(vectors, 5))
    assert len(events) > 1
    assert all(sum(len(v) for v in e.vectors) <= VECTORS_EVENT_BYTES for e in events)
    arrays = [np.frombuffer(v, dtype="<f4") for e in events for v in e.vectors]
    assert [a[0] for a in arrays] == [float(i) for i in range(300)]


def test_one_array_larger_than_the_target_still_travels_alone() -> None:
    big = [[0.5] * (VECTORS_EVENT_BYTES // 4 + 1)]
    [event] = _batches(Embeddings(big + big, 1))[:1]
    assert len(event.vectors) == 1
    assert len(_batches(Embeddings(big + big, 1))) == 2
