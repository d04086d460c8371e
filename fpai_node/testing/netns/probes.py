"""Check from inside the namespaces that a fault took effect, and that it is gone after heal:
a campaign that measured an intact network would report a partition it never made."""

import socket
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from fpai_node.testing.netns.hosts import Host
from fpai_node.testing.netns.links import Link, label
from fpai_node.testing.netns.namespaces import run_in

PROBE_PORT = 7100  # the peer channel: every live node listens there (a dead one answers RST)
CUT_TIMEOUT_S = 1.5  # on an intact bridge a connect takes about a millisecond
HEALED_TIMEOUT_S = 5.0  # ARP resolves again within one retransmission after the entries go
DELAYED_AT_LEAST_S = 0.3  # 200 ms each way makes a connect take at least 400 ms
DELAY_SAMPLES = 7  # connects per delay check: a median past one SYN lost to the 10% loss


class FaultNotInEffect(AssertionError):
    """The network does not behave as the fault says it should: the run's figures would lie."""


def connect_time(source: Host, target: Host, timeout_s: float) -> float | None:
    """Seconds for a TCP connect from `source` to `target`'s peer port; None if it timed out.
    A refusal (RST) counts as an answer: the packets went through."""

    def attempt() -> float | None:
        started = time.monotonic()
        try:
            with socket.create_connection((target.address, PROBE_PORT), timeout=timeout_s):
                pass
        except ConnectionRefusedError:
            pass
        except (TimeoutError, OSError):
            return None
        return time.monotonic() - started

    return run_in(source.namespace, attempt, timeout_s=timeout_s + 10)


def _both_ways(links: set[Link], timeout_s: float) -> dict[str, float | None]:
    pairs = [(a, b) for each in links for a in each for b in each if a != b]
    with ThreadPoolExecutor(max_workers=max(1, len(pairs))) as pool:
        times = list(pool.map(lambda p: connect_time(p[0], p[1], timeout_s), pairs))
    return {f"{a.name}->{b.name}": t for (a, b), t in zip(pairs, times, strict=True)}


def expect_cut(links: set[Link]) -> None:
    answered = {k: t for k, t in _both_ways(links, CUT_TIMEOUT_S).items() if t is not None}
    if answered:
        raise FaultNotInEffect(f"cut links still answer: {answered}")


def expect_connected(links: set[Link]) -> None:
    silent = [k for k, t in _both_ways(links, HEALED_TIMEOUT_S).items() if t is None]
    if silent:
        raise FaultNotInEffect(f"links do not answer: {silent}")


def expect_delayed(a: Host, b: Host) -> float:
    """The median connect time from `a` to `b`; FaultNotInEffect if the delay is not there."""
    samples = [connect_time(a, b, HEALED_TIMEOUT_S) for _ in range(DELAY_SAMPLES)]
    answered = [s for s in samples if s is not None]
    if not answered:
        raise FaultNotInEffect(f"{label(frozenset((a, b)))}: no connect went through")
    median = statistics.median(answered)
    if median < DELAYED_AT_LEAST_S:
        raise FaultNotInEffect(
            f"{a.name}->{b.name}: connects take {median * 1000:.0f} ms, not delayed"
        )
    return median
