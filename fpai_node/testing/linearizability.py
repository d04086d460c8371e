"""A linearizability checker for a single register (Wing & Gong's search, with memoisation).

A history is a list of operations, each with the time its client invoked it and the time it got
an answer. A history is linearizable when every operation can be given one instant between its
invocation and its answer such that, taken in the order of those instants, the reads return
what a plain register would. A write whose outcome the client never learnt (a timeout, a node
killed under it) may take effect at any instant after its invocation, or never.

When every write writes a distinct value (the tests make them so), each read names the write it
saw and the check is polynomial: Gibbons and Korach's zones ("Testing shared memories", SIAM J.
Comput. 1997). Otherwise a depth-first search over orders (Wing and Gong), exponential in the
worst case. Unit tests check both find violations and agree with each other.

Used by the registry's tests against real processes under kill -9 and restart.
"""

import itertools
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
    """Whether `history` is linearizable for a register starting at `initial`. Unknown-outcome
    writes may take effect or not; reads without an answer must not be in the history."""
    for op in history:
        if op.kind == "read" and not op.completed:
            raise ValueError("a read without an answer tells nothing: leave it out")
        if op.end < op.start:
            raise ValueError(f"operation ends before it starts: {op}")
    written = [op.value for op in history if op.kind == "write"]
    if len(set(written)) == len(written) and initial not in written:
        return check_by_zones(history, initial)
    return check_by_search(history, initial, limit)


def check_by_zones(history: list[Operation], initial: object = None) -> Verdict:
    """Gibbons-Korach for distinct written values. A value's cluster is its write and the reads
    that returned it; its zone runs from the earliest answer in the cluster to the latest
    invocation. A zone that runs forward (answer before invocation) is a span in which the value
    must be the register's: two forward zones may not overlap, and no backward zone may lie
    inside a forward one. A read also may not end before its write began."""
    writes = {op.value: op for op in history if op.kind == "write"}
    reads: dict[object, list[Operation]] = {}
    for op in history:
        if op.kind != "read":
            continue
        if op.value != initial and op.value not in writes:
            return Verdict(
                False, len(history), f"read {op.value!r} at {op.start:.3f} was never written"
            )
        write = writes.get(op.value)
        if write is not None and op.end < write.start:
            return Verdict(False, len(history), f"read {op.value!r} ended before its write began")
        reads.setdefault(op.value, []).append(op)
    forward: list[tuple[float, float, object]] = []
    backward: list[tuple[float, float, object]] = []
    clusters = [(v, [w, *reads.get(v, [])]) for v, w in writes.items()]
    if initial in reads:
        origin = Operation("write", initial, -math.inf, -math.inf)
        clusters.append((initial, [origin, *reads[initial]]))
    for value, cluster in clusters:
        if len(cluster) == 1 and not cluster[0].completed:
            continue  # an unknown write nobody saw: it may never have happened
        low = min(op.end for op in cluster)
        high = max(op.start for op in cluster)
        (forward if low < high else backward).append((min(low, high), max(low, high), value))
    forward.sort(key=lambda z: z[0])
    for before, after in itertools.pairwise(forward):
        if after[0] < before[1]:
            return Verdict(
                False, len(history), f"values {before[2]!r} and {after[2]!r} must both hold"
            )
    for low, high, value in backward:
        for f_low, f_high, f_value in forward:
            if f_low < low and high < f_high:
                return Verdict(
                    False,
                    len(history),
                    f"{value!r} was written and read while {f_value!r} had to hold",
                )
    return Verdict(True, len(history))


def check_by_search(
    history: list[Operation], initial: object = None, limit: int = 2_000_000
) -> Verdict:
    """Depth-first search over (set of operations linearized, register value): at each step any
    operation invoked before the earliest answer among the pending completed ones may come next.
    """
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
