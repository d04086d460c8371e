"""What a node is made of: services, and what each one declares to the node.

A service is one part of a node (inference, the peer channel, gossip, the registry, the router,
the client API). The node starts its services in order and stops them in reverse, serves the
peer routes they declare on its one peer channel, and builds `/fpai/v1/status` and `/metrics`
from their sections and metric families (docs/architecture.md, "Adding a service"). Adding a
service means writing it and adding it to the list in `compose.py`.

The declarations live here, below the peer layer that serves them, so that the peer channel can
be a service like the others.
"""

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

RpcHandler = Callable[[str, bytes], Awaitable[bytes | None]]
"""(the caller's node id as its certificate proved it, the request body) -> the answer body,
or None for an empty `204` (the frame route of PEER-1)."""
StreamHandler = Callable[[str, bytes, web.Request], Awaitable[web.StreamResponse]]
"""A streaming route's handler (PEER-8): it writes its own response."""
Gate = Callable[[str], web.Response | None]
"""Checked before a streaming route reads the body: a refusal for this caller, or None."""


def _anyone(peer: str) -> web.Response | None:
    return None


@dataclass(frozen=True, slots=True)
class RpcRoute:
    """A request/response route on the peer channel (PEER-7; the frame route of PEER-1 is one):
    one body in, one answer out, under the frame route's per-peer rate and size limits."""

    path: str
    handler: RpcHandler


@dataclass(frozen=True, slots=True)
class StreamRoute:
    """A streaming route on the peer channel (PEER-8), with the body limit and per-peer rate
    its spec states, and a gate deciding before the body is read."""

    path: str
    handler: StreamHandler
    max_body_bytes: int
    rate_per_s: float
    gate: Gate = _anyone


PeerRoute = RpcRoute | StreamRoute


class FrameRefused(Exception):
    """Raised by a request/response route's handler to refuse the request with a reason code
    (answered 400, PEER-3)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Service(Protocol):
    """One part of a node. Subclass it and override what the part has; the defaults declare
    nothing.

    `stop` must be safe after a `start` that failed half way (the node stops a service whose
    start raised) and must not raise for what another service did."""

    name: str
    """How the node's logs name this part ("gossip", "registry")."""

    async def start(self) -> None:
        """Start; the services listed before this one have started."""
        ...

    async def stop(self, leave: bool) -> None:
        """Stop; the services listed after this one have stopped. With `leave` the node is
        going away for good (SIGINT, SIGTERM); without, it will be back (SIGUSR1, upgrades)."""
        ...

    def peer_routes(self) -> Sequence[PeerRoute]:
        """Routes this service serves on the node's peer channel (asked once, before the
        channel starts)."""
        return ()

    def status_sections(self) -> Mapping[str, object]:
        """Top-level sections this service adds to `GET /fpai/v1/status`, read per request."""
        return {}

    def metrics(self) -> Iterable[Metric]:
        """Prometheus metric families, read at each scrape of `GET /metrics` from what the
        service keeps anyway, so they cannot drift from its status."""
        return ()


def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def counter(
    name: str, documentation: str, label: str, counts: Mapping[str, int]
) -> CounterMetricFamily:
    """A counter with one label, from a count per label value (a collections.Counter)."""
    family = CounterMetricFamily(name, documentation, labels=[label])
    for key, count in sorted(counts.items()):
        family.add_metric([key], count)
    return family


class ActionGate(Protocol):
    """Where a part of the node asks before it repairs something on its own (the supervisor,
    docs/operator-guide.md "Autonomy"): replace a dead voter, move a dead member's services,
    restart a crashed backend. Asked from any thread, repeatedly while the repair is due; the
    same `key` names the same repair each time.

    `allow` says whether to act now: the operator's autonomy mode decides whether a repair
    waits for approval, and a repair that failed waits out its backoff."""

    def allow(self, key: str, kind: str, subject: str, summary: str, reports: bool = False) -> bool:
        """`reports`: the asker will call `succeeded` or `failed` for each step it takes, and may
        stay silent meanwhile (a server that takes minutes to come up)."""
        ...

    def failed(self, key: str, reason: str) -> None:
        """The step `allow` let through failed; the next one waits for the backoff."""
        ...

    def succeeded(self, key: str, outcome: str) -> None:
        """The repair is complete (for repairs that know when they are; others are judged
        done by the supervisor from what it observes)."""
        ...


class Unsupervised:
    """A node part run alone (a test, a tool): every repair goes ahead, as before autonomy."""

    def allow(self, key: str, kind: str, subject: str, summary: str, reports: bool = False) -> bool:
        return True

    def failed(self, key: str, reason: str) -> None:
        return None

    def succeeded(self, key: str, outcome: str) -> None:
        return None
