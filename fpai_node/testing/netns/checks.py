"""The checks on one fault's history: counts, acknowledged writes lost, linearizability per
key (fpai_node/testing/linearizability.py), minority acknowledgements, false deaths."""

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

from fpai_node.testing.linearizability import Operation, check
from fpai_node.testing.netns.history import Op
from fpai_node.testing.netns.observers import StatusSample


def counts(ops: list[Op]) -> dict[str, int]:
    by_outcome = Counter(op.outcome for op in ops)
    return {
        "attempted": len(ops),
        "ok": by_outcome["ok"],
        "failed": by_outcome["failed"],
        "indeterminate": by_outcome["indeterminate"],
        "writes_acknowledged": sum(1 for op in ops if op.kind == "write" and op.outcome == "ok"),
    }


def as_register_history(ops: list[Op]) -> list[Operation]:
    """The checker's view. An acknowledged write ends at its answer; any other write that
    reached a node may have been applied (the API says so: "the write may still be applied"),
    so its outcome is unknown (end = inf); a write that never connected is left out, as is
    every read without a value."""
    history = []
    for op in ops:
        if op.kind == "write" and op.sent:
            end = op.end if op.outcome == "ok" else math.inf
            history.append(Operation("write", op.value, op.start, end, op.client))
        elif op.kind == "read" and op.outcome == "ok":
            history.append(Operation("read", op.value, op.start, op.end, op.client))
    return history


def linearizability(ops: list[Op], keys: list[str]) -> dict[str, str]:
    """Per key that fails the check, the checker's explanation (empty: all linearizable)."""
    failures = {}
    for key in keys:
        verdict = check(as_register_history([op for op in ops if op.key == key]))
        if not verdict.linearizable:
            failures[key] = verdict.detail
    return failures


def lost_writes(ops: list[Op], final: dict[str, str | None]) -> list[dict[str, Any]]:
    """Acknowledged writes that are neither the final value of their key nor superseded: a
    write is superseded when the write of the final value could have come after it (it did
    not end before this one began)."""
    lost = []
    writes = [op for op in ops if op.kind == "write" and op.sent]
    for op in writes:
        if op.outcome != "ok" or final.get(op.key) == op.value:
            continue
        survivor = next(
            (w for w in writes if w.key == op.key and w.value == final.get(op.key)), None
        )
        superseded = survivor is not None and not (
            survivor.outcome == "ok" and survivor.end < op.start
        )
        if not superseded:
            lost.append(
                {"key": op.key, "value": op.value, "node": op.node, "final": final.get(op.key)}
            )
    return lost


def minority_acknowledgements(
    ops: list[Op], minority: frozenset[str], cut_at: float, healed_at: float, kind: str = "write"
) -> list[Op]:
    """Writes a minority node acknowledged for a request that arrived after the cut and was
    answered before the heal: a minority cannot commit, so each one is a lie. (With
    kind="read": linearizable reads it answered, which need a majority's word too.)"""
    return [
        op
        for op in ops
        if op.kind == kind
        and op.outcome == "ok"
        and op.node in minority
        and op.start >= cut_at
        and op.end <= healed_at
    ]


def deaths(
    samples: list[StatusSample], since: float, expected: Callable[[str, str], bool]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(expected, false) gossip deaths after `since`: an observer's view of a peer turning
    dead, from the status samples; `expected(observer, subject)` says which had a reason."""
    last: dict[tuple[str, str], str] = {}
    seen: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
    for sample in samples:
        for subject, state in sample.states.items():
            pair = (sample.observer, subject)
            before = last.get(pair)
            last[pair] = state
            if sample.t < since or state != "dead" or before in (None, "dead"):
                continue
            event = {"observer": sample.observer, "subject": subject, "t": sample.t}
            seen[0 if expected(*pair) else 1].append(event)
    return seen


def leader_changes(samples: list[StatusSample], origin: float) -> list[dict[str, Any]]:
    """Each node's (term, leader) whenever it changed in its own status: who campaigned when."""
    last: dict[str, tuple[int, str | None]] = {}
    changes = []
    for sample in samples:
        now = (sample.term, sample.leader)
        if last.get(sample.observer) != now:
            last[sample.observer] = now
            changes.append(
                {
                    "t": round(sample.t - origin, 2),
                    "node": sample.observer,
                    "term": sample.term,
                    "leader": sample.leader,
                }
            )
    return changes
