"""A linearizability checker for a single register (Wing & Gong's search, with memoisation).

A history is a list of operations, each with the time its client invoked it and the time it got
an answer. A history is linearizable when every operation can be given one instant between its
invocation and its answer such that, taken in the order of those instants, the reads return
what a plain register would. A write whose outcome the client never learnt (a timeout, a node
killed under it) may take effect at any instant after its invocation, or never.

Used by the registry's tests against real processes under kill -9 and restart; small enough to
read in one sitting, with its own unit tests that show it does find violations.
"""

import math
from dataclasses import dataclass
from typing import Literal

Kind = Literal["read", "write"]


@dataclass(frozen=True, slots=True)
class Operation:
    kind: Kind
    value: object  # written, or read (None: the register was empty)
    start: float
    end: float = math.inf  # math.inf: the outcome is unknown (writes only)
    client: int = 0

    @property
    def completed(self) -> bool:
        return self.end != math.inf


@dataclass(frozen=True, slots=True)
class Verdict:
    linearizable: bool
    explored: int  # search states visited, to spot a history too large to check
    detail: str = ""


def check(history: list[Operation], initial: object = None, limit: int = 2_000_000) -> Verdict:
    """Whether `history` is linearizable for a register starting at `initial`.

    Depth-first search over (set of operations linearized, register value): at each step any
    operation invoked before the earliest answer among the pending completed ones may come next.
    Unknown-outcome writes may be left out; reads without an answer must not be in the history.
    """
    for op in history:
        if op.kind == "read" and not op.completed:
            raise ValueError("a read without an answer tells nothing: leave it out")
        if op.end < op.start:
            raise ValueError(f"operation ends before it starts: {op}")
    ops = sorted(history, key=lambda o: o.start)
    required = 0
    for i, op in enumerate(ops):
        if op.completed:
            required |= 1 << i
    seen: set[tuple[int, object]] = set()
    stack: list[tuple[int, object]] = [(0, initial)]
    explored = 0
    while stack:
        done, value = stack.pop()
        if done & required == required:
            return Verdict(True, explored)
        if (done, value) in seen:
            continue
        seen.add((done, value))
        explored += 1
        if explored > limit:
            return Verdict(False, explored, f"gave up after {limit} states")
        horizon = min(
            (op.end for i, op in enumerate(ops) if not done >> i & 1 and op.completed),
            default=math.inf,
        )
        for i, op in enumerate(ops):
            if done >> i & 1:
                continue
            if op.start > horizon:
                break  # sorted by start: no later operation can come before the horizon either
            if op.kind == "write":
                stack.append((done | 1 << i, op.value))
            elif op.value == value:
                stack.append((done | 1 << i, value))
    return Verdict(False, explored, _explain(ops))


def _explain(ops: list[Operation]) -> str:
    """A hint for a failed check: the first completed read whose value no write could explain."""
    written = {op.value for op in ops if op.kind == "write"}
    for op in ops:
        if op.kind == "read" and op.value is not None and op.value not in written:
            return f"read {op.value!r} at {op.start:.3f} was never written"
    return "no order of these operations explains every read"
