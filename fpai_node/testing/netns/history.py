"""What the clients did, operation by operation, as the checks need it."""

import threading
from dataclasses import asdict, dataclass
from typing import Any, Literal

from fpai_node.testing.netns.api_client import Outcome

Kind = Literal["read", "write"]


@dataclass(frozen=True)
class Op:
    """One registry operation: invoked at `start`, answered (or given up) at `end`, both on
    the campaign's monotonic clock. A read's `value` is what it returned (None: no such key)."""

    kind: Kind
    key: str
    value: str | None
    node: str  # the node whose API served it
    client: int
    start: float
    end: float
    outcome: Outcome
    sent: bool  # False: the connection failed, nothing reached the node
    status: int | None
    error: str  # the answer's error code, or what broke the connection

    def as_json(self, origin: float) -> dict[str, Any]:
        record = asdict(self)
        record["start"] = round(self.start - origin, 4)
        record["end"] = round(self.end - origin, 4)
        return record


class History:
    """Operations appended by many client threads."""

    def __init__(self) -> None:
        self._ops: list[Op] = []
        self._lock = threading.Lock()

    def add(self, op: Op) -> None:
        with self._lock:
            self._ops.append(op)

    def ops(self) -> list[Op]:
        with self._lock:
            return list(self._ops)
