"""An in-memory VectorStore (DESIGN.md principle 3): exact search and the reference filter
semantics (filters.matches), for unit tests of the layers above the store and as the brute
force that recall is measured against."""

from collections.abc import Sequence

from fpai_node.memory.filters import Condition, matches
from fpai_node.memory.store import Hit, StoredPoint


class MemoryStore:
    def __init__(self) -> None:
        self.points: dict[str, StoredPoint] = {}
        self.flushes = 0

    def upsert(self, points: Sequence[StoredPoint]) -> None:
        for point in points:
            self.points[point.id] = point

    def delete(self, ids: Sequence[str]) -> None:
        for record_id in ids:
            self.points.pop(record_id, None)

    def search(
        self, vector: Sequence[float], limit: int, where: Condition | None, threshold: float | None
    ) -> list[Hit]:
        scored = [
            Hit(p.id, sum(a * b for a, b in zip(vector, p.vector, strict=True)), p.payload)
            for p in self.points.values()
            if where is None or matches(where, p.payload)
        ]
        scored = [h for h in scored if threshold is None or h.score >= threshold]
        scored.sort(key=lambda h: (-h.score, h.id))
        return scored[:limit]

    def get(self, ids: Sequence[str]) -> list[Hit]:
        return [Hit(i, 0.0, self.points[i].payload) for i in ids if i in self.points]

    def scan(self, where: Condition | None, limit: int, after: str = "") -> list[Hit]:
        chosen = [
            Hit(i, 0.0, self.points[i].payload)
            for i in sorted(self.points)
            if i > after and (where is None or matches(where, self.points[i].payload))
        ]
        return chosen[:limit]

    def count(self, where: Condition | None = None) -> int:
        return len(self.scan(where, len(self.points) + 1))

    def flush(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        pass
