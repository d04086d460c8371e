"""Records in the registry that every reader checks before it uses them (a member's operator
binding, its ballots, its epoch digests, its fraud reports: TREASURY-2, TREASURY-4, RWD-6,
RWD-13): each checked once per key and content, not on every look. Pure.

The registry does not check what a voter writes, so a reader must; a node that reads the same
records every second would otherwise verify the same signatures every second.
"""

from collections import Counter
from collections.abc import Callable, Collection
from typing import Any, TypeVar

import structlog

from fpai_node.wire import codec

T = TypeVar("T")
log = structlog.get_logger("fpai.registry")


class CheckedRecords:
    def __init__(self, refusals: tuple[type[Exception], ...], refused: Counter[str]) -> None:
        """`refusals`: what a check raises for a record it refuses (with a `reason`);
        `refused` counts them by "<kind>_<reason>", once per content."""
        self._refusals = refusals
        self._refused = refused
        self._results: dict[str, tuple[codec.Value, Any]] = {}

    def __len__(self) -> int:
        return len(self._results)

    def check(self, key: str, value: codec.Value, kind: str, compute: Callable[[], T]) -> T | None:
        """`compute()` for the registry's `key` holding `value`, or the result of the last
        check of the same content; None when the check refused the record."""
        cached = self._results.get(key)
        if cached is not None and cached[0] == value:
            result: T | None = cached[1]
            return result
        try:
            result = compute()
        except self._refusals as exc:
            result = None
            reason = getattr(exc, "reason", "malformed")
            self._refused[f"{kind}_{reason}"] += 1
            log.warning(f"{kind} refused", parameter=key, reason=reason)
        self._results[key] = (value, result)
        return result

    def forget_absent(self, keys: Collection[str]) -> None:
        """Drop the checks of records no longer in the registry: a member rewriting its own
        records cannot grow a reader's memory."""
        self._results = {k: v for k, v in self._results.items() if k in keys}
