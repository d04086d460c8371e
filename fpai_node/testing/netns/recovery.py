"""After a heal: how long until each node takes writes, every node sees every other alive,
and every gateway answers chat again. All measured at once, from the instant of the heal."""

import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from fpai_node.testing.netns.chat import chat
from fpai_node.testing.netns.federation import NetnsNode, alive_peers
from fpai_node.testing.netns.workload import PARAMETERS

WRITE_ATTEMPT_TIMEOUT_S = 3.0  # a write that is not done in 3 s is retried: finer heal times
RETRY_GAP_S = 0.25  # between attempts that failed at once (a node still starting refuses)
CHAT_ATTEMPT_TIMEOUT_S = 20.0  # a routed chat of 4 tokens takes well under a second when it works


@dataclass
class Recovery:
    """Seconds from the heal; None: not within the cap ("never")."""

    writable: dict[str, float | None] = field(default_factory=dict)
    all_alive: float | None = None
    chat: dict[str, float | None] = field(default_factory=dict)
    chat_latency: dict[str, float] = field(default_factory=dict)  # of the first answer
    chat_errors: dict[str, list[str]] = field(default_factory=dict)  # runs of failed answers


def _repeat(attempt: Callable[[], bool], healed: float, cap_s: float) -> float | None:
    """Seconds from `healed` to the end of the first attempt that succeeds, within `cap_s`."""
    while time.monotonic() - healed < cap_s:
        if attempt():
            return time.monotonic() - healed
        time.sleep(RETRY_GAP_S)
    return None


def time_to_writable(node: NetnsNode, healed: float, cap_s: float, tag: str) -> float | None:
    counter = itertools.count()

    def write() -> bool:
        value = f"{tag}/{node.name}/{next(counter)}"
        key = f"probe-{tag}-{node.name}"
        body = {"value": value}
        return node.request("PUT", PARAMETERS + key, body, WRITE_ATTEMPT_TIMEOUT_S).ok

    return _repeat(write, healed, cap_s)


def everyone_alive(nodes: list[NetnsNode]) -> bool:
    ids = {n.node_id for n in nodes}
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        statuses = list(pool.map(lambda n: n.status(), nodes))
    return all(
        status is not None and alive_peers(status) >= ids - {node.node_id}
        for node, status in zip(nodes, statuses, strict=True)
    )


def time_to_chat(node: NetnsNode, healed: float, cap_s: float, result: Recovery) -> None:
    """Until the gateway answers a chat with 200: when it did (the answer's end, so a slow
    answer counts as slow), how long that answer took, and the errors before it."""
    runs: list[list[Any]] = []  # [first, last, answer, count] per run of the same failure

    def answered() -> bool:
        attempt, _ = chat(node, CHAT_ATTEMPT_TIMEOUT_S)
        if attempt.outcome != "ok":
            at, answer = (
                attempt.start - healed,
                f"{attempt.status or attempt.outcome} {attempt.error}",
            )
            if runs and runs[-1][2] == answer:
                runs[-1][1], runs[-1][3] = at, runs[-1][3] + 1
            else:
                runs.append([at, at, answer, 1])
            return False
        result.chat_latency[node.name] = round(attempt.end - attempt.start, 3)
        return True

    result.chat[node.name] = _repeat(answered, healed, cap_s)
    result.chat_errors[node.name] = [
        f"{first:+.1f}..{last:+.1f} s: {answer} x{count}" for first, last, answer, count in runs
    ]


def measure(nodes: list[NetnsNode], healed: float, cap_s: float, tag: str) -> Recovery:
    """Every measurement on its own thread, all bounded by `cap_s` from `healed`."""
    result = Recovery()
    jobs: list[threading.Thread] = []

    def job(target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        jobs.append(thread)

    for node in nodes:

        def writable(n: NetnsNode = node) -> None:
            result.writable[n.name] = time_to_writable(n, healed, cap_s, tag)

        def chats(n: NetnsNode = node) -> None:
            time_to_chat(n, healed, cap_s, result)

        job(writable)
        job(chats)

    def alive() -> None:
        result.all_alive = _repeat(lambda: everyone_alive(nodes), healed, cap_s)

    job(alive)
    for thread in jobs:
        thread.join(cap_s + CHAT_ATTEMPT_TIMEOUT_S + 10)
    return result
