"""Bounded waits on a condition: every wait in the campaign has a deadline."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL_S = 0.2  # status and health answer in milliseconds; 5 polls a second resolve heal times


def until(check: Callable[[], T | None], timeout_s: float, every_s: float = POLL_S) -> T | None:
    """Call `check` until it returns something truthy (returned) or `timeout_s` passes (None)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        time.sleep(min(every_s, remaining))


def require(check: Callable[[], T | None], timeout_s: float, what: str) -> T:
    """`until`, or TimeoutError naming `what` was awaited."""
    result = until(check, timeout_s)
    if not result:
        raise TimeoutError(f"{what}: not within {timeout_s:g} s")
    return result
