"""Prometheus metrics of one node, served as text at `GET /metrics` on the client API
(docs/api.md lists every metric).

Each node has its own CollectorRegistry, never the process-wide default: tests run several nodes
in one process. What the node already keeps (its queues, the gossip table, Raft's status, the
forwarding and peer-channel counters) is read at scrape time by NodeCollector, so it cannot
drift from what /fpai/v1/status shows; only what nothing else counts (HTTP requests, tokens,
time to first token) is kept here in prometheus_client counters and histograms.
"""

import contextlib
import time
from collections.abc import Iterable, Iterator, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from fpai_node import __version__
from fpai_node.gossip.messages import Status
from fpai_node.gossip.service import GossipService
from fpai_node.inference.service import InferenceService
from fpai_node.registry.raft_wire import parse_raft_id
from fpai_node.registry.service import RegistryService
from fpai_node.router.forward import Forwarder
from fpai_node.router.serve import PeerInference
from fpai_node.wire import PROTOCOL_VERSION
from fpai_node.wire.errors import WireError

# The classic text format (0.0.4): what generate_latest writes, and what every Prometheus reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# A health check answers in milliseconds, a long generation streams for minutes.
HTTP_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# A warm CPU model answers in tens of ms; a queued request or a cold peer takes seconds.
FIRST_TOKEN_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
UNMATCHED_ROUTE = "unmatched"  # 404s: the raw path would let any client create a series


class Metrics:
    """One node's metrics: the counters the API updates, and a collector over its live parts
    (any of which may be absent, e.g. in an app built for a unit test)."""

    def __init__(
        self,
        node_id: str,
        *,
        inference: InferenceService | None = None,
        gossip: GossipService | None = None,
        registry: RegistryService | None = None,
        forwarder: Forwarder | None = None,
        peer_inference: PeerInference | None = None,
        process: bool = True,
    ) -> None:
        self.prometheus = CollectorRegistry()
        self.http_requests = Counter(
            "fpai_http_requests",
            "Client API requests answered, by route, method and status (499: the client left).",
            ["route", "method", "status"],
            registry=self.prometheus,
        )
        self.http_duration = Histogram(
            "fpai_http_request_duration_seconds",
            "Client API request duration, to the end of a streamed answer, by route.",
            ["route"],
            buckets=HTTP_BUCKETS_S,
            registry=self.prometheus,
        )
        self.prompt_tokens = Counter(
            "fpai_prompt_tokens",
            "Prompt tokens of the answers this node's API gave, served here or by a peer.",
            ["model"],
            registry=self.prometheus,
        )
        self.completion_tokens = Counter(
            "fpai_completion_tokens",
            "Completion tokens of the answers this node's API gave, served here or by a peer.",
            ["model"],
            registry=self.prometheus,
        )
        self.first_token = Histogram(
            "fpai_time_to_first_token_seconds",
            "From a parsed chat or completion request to its first generated event, routing "
            "and queueing included, by model.",
            ["model"],
            buckets=FIRST_TOKEN_BUCKETS_S,
            registry=self.prometheus,
        )
        self.prometheus.register(
            NodeCollector(
                node_id,
                inference=inference,
                gossip=gossip,
                registry=registry,
                forwarder=forwarder,
                peer_inference=peer_inference,
            )
        )
        if process:  # process_* (CPU, memory, open files) of the node's process
            ProcessCollector(registry=self.prometheus)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_duration.labels(route).observe(seconds)

    def count_tokens(self, model: str, prompt: int, completion: int) -> None:
        self.prompt_tokens.labels(model).inc(prompt)
        self.completion_tokens.labels(model).inc(completion)

    def observe_first_token(self, model: str, seconds: float) -> None:
        self.first_token.labels(model).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.prometheus)


METRICS = web.AppKey("metrics", Metrics)


def route_label(request: web.Request) -> str:
    """The route's pattern (`/fpai/v1/registry/parameters/{key}`), never the raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


def observe_request(request: web.Request, status: int, started: float) -> None:
    """Count one answered request, if the app has metrics."""
    metrics = request.app.get(METRICS)
    if metrics is not None:
        metrics.observe_request(
            route_label(request), request.method, status, time.perf_counter() - started
        )


async def metrics_view(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


class NodeCollector(Collector):
    """Gauges and counters read from the node's parts at scrape time."""

    def __init__(
        self,
        node_id: str,
        *,
        inference: InferenceService | None,
        gossip: GossipService | None,
        registry: RegistryService | None,
        forwarder: Forwarder | None,
        peer_inference: PeerInference | None,
    ) -> None:
        self._node_id = node_id
        self._inference = inference
        self._gossip = gossip
        self._registry = registry
        self._forwarder = forwarder
        self._peer_inference = peer_inference

    def collect(self) -> Iterable[Metric]:
        yield InfoMetricFamily(
            "fpai_node",
            "This node: its id, software version and protocol version.",
            value={
                "node_id": self._node_id,
                "version": __version__,
                "protocol_version": str(PROTOCOL_VERSION),
            },
        )
        if self._inference is not None:
            yield from self._models(self._inference)
        if self._gossip is not None:
            yield from self._peers(self._gossip)
        if self._registry is not None:
            yield from self._raft(self._registry)
        if self._forwarder is not None:
            yield from self._forwarding(self._forwarder)
        if self._peer_inference is not None:
            served = self._peer_inference
            yield _counter(
                "fpai_peer_requests_served",
                "Requests forwarded to this node that it served, by requesting peer.",
                "peer",
                served.served,
            )
            yield _counter(
                "fpai_peer_requests_refused",
                "Requests forwarded to this node that it refused, by reason code.",
                "reason",
                served.refused,
            )

    @staticmethod
    def _models(inference: InferenceService) -> Iterator[Metric]:
        running = GaugeMetricFamily(
            "fpai_model_requests_running",
            "Generations running now, per local model.",
            labels=["model"],
        )
        waiting = GaugeMetricFamily(
            "fpai_model_requests_waiting",
            "Requests waiting in the admission queue now, per local model.",
            labels=["model"],
        )
        slots = GaugeMetricFamily(
            "fpai_model_slots",
            "Generations a local model runs at once (more wait in its queue).",
            labels=["model"],
        )
        for served in inference.models():
            running.add_metric([served.card.id], served.admission.running)
            waiting.add_metric([served.card.id], served.admission.waiting)
            slots.add_metric([served.card.id], served.card.capacity)
        yield from (running, waiting, slots)

    @staticmethod
    def _peers(gossip: GossipService) -> Iterator[Metric]:
        by_state = dict.fromkeys((str(s) for s in Status), 0)
        for member in gossip.members():
            by_state[str(member.status)] += 1
        peers = GaugeMetricFamily(
            "fpai_peers", "Other nodes in this node's gossip table, by state.", labels=["state"]
        )
        for state, count in by_state.items():
            peers.add_metric([state], count)
        yield peers
        yield _counter(
            "fpai_gossip_messages_sent",
            "Gossip messages sealed and sent, by message type.",
            "type",
            gossip.sent,
        )
        yield _counter(
            "fpai_gossip_send_failures",
            "Gossip messages a peer did not take: unreachable, or refused (any non-204 answer).",
            "reason",
            gossip.send_failures,
        )
        yield _counter(
            "fpai_gossip_messages_received",
            "Gossip messages accepted and handed to the membership state machine, by type.",
            "type",
            gossip.received,
        )
        yield _counter(
            "fpai_gossip_messages_rejected",
            "Gossip frames rejected after the peer channel let them through, by reason.",
            "reason",
            gossip.rejected,
        )
        stats = gossip.node.stats
        yield _counter(
            "fpai_gossip_transitions",
            "Peers this node marked suspect or dead, by the state they moved to.",
            "state",
            {"suspect": stats.suspicions, "dead": stats.deaths},
        )
        yield CounterMetricFamily(
            "fpai_gossip_refutations",
            "Times this node refuted a suspicion about itself.",
            value=stats.refutations,
        )
        yield _counter(
            "fpai_gossip_announcements",
            "Capability announcements handled: accepted, stale (an older one), or rejected.",
            "result",
            {
                "accepted": stats.announcements_accepted,
                "stale": stats.announcements_stale,
                "rejected": stats.announcements_rejected,
            },
        )
        yield _counter(
            "fpai_peer_channel_refusals",
            "Everything the peer channel refused (handshakes, connections, rate limits, sizes, "
            "frames of any route), by reason.",
            "reason",
            gossip.server.refusals,
        )

    @staticmethod
    def _raft(registry: RegistryService) -> Iterator[Metric]:
        status = registry.status
        yield _gauge("fpai_registry_term", "This node's current Raft term.", status.term)
        yield _gauge(
            "fpai_registry_is_leader",
            "1 when this node is the registry's Raft leader, else 0.",
            int(status.is_leader),
        )
        leader = InfoMetricFamily(
            "fpai_registry_leader",
            "The registry leader this node knows of (no sample while it knows none).",
            labels=["leader_id"],
        )
        if status.leader:
            with contextlib.suppress(WireError):  # ours, so well-formed; a scrape never fails
                leader.add_metric([parse_raft_id(status.leader)[0]], {})
        yield leader
        yield _gauge(
            "fpai_registry_commit_index",
            "Highest Raft log index known committed.",
            status.commit_index,
        )
        yield _gauge(
            "fpai_registry_applied_index",
            "Highest Raft log index applied to this node's registry replica.",
            status.applied_index,
        )
        yield _gauge(
            "fpai_registry_is_learner",
            "1 when this node replicates the registry as a learner (non-voter), else 0.",
            int(status.learner),
        )
        yield _gauge(
            "fpai_registry_members",
            "Members of the federation in this node's registry replica.",
            len(registry.state.members),
        )
        phase = GaugeMetricFamily(
            "fpai_registry_phase",
            "1 for this node's registry phase (starting, bootstrapping, joining, running, "
            "failed, stopped).",
            labels=["phase"],
        )
        phase.add_metric([registry.phase], 1)
        yield phase
        yield _counter(
            "fpai_registry_refusals",
            "Raft connections and frames the registry transport refused, by reason.",
            "reason",
            registry.counters.refusals,
        )

    @staticmethod
    def _forwarding(forwarder: Forwarder) -> Iterator[Metric]:
        yield _counter(
            "fpai_forwarded_requests",
            "Requests this node forwarded that a peer served to the end, by serving peer.",
            "peer",
            forwarder.forwarded,
        )
        peers = set(forwarder.inflight) | set(forwarder.forwarded) | set(forwarder.latency_ms)
        inflight = GaugeMetricFamily(
            "fpai_forwards_in_flight",
            "Requests forwarded to a peer and not finished yet, by peer.",
            labels=["peer"],
        )
        for peer in sorted(peers):
            inflight.add_metric([peer], forwarder.inflight.get(peer, 0))
        yield inflight
        overhead = GaugeMetricFamily(
            "fpai_forward_overhead_seconds",
            "Moving average of what forwarding to a peer adds before the first token (network, "
            "TLS, its queue excluded), by peer.",
            labels=["peer"],
        )
        for peer, ms in sorted(forwarder.latency_ms.items()):
            overhead.add_metric([peer], ms / 1000)
        yield overhead
        yield _counter(
            "fpai_receipts_rejected",
            "Usage receipts from serving peers that failed a check, by reason.",
            "reason",
            forwarder.receipts_rejected,
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(
    name: str, documentation: str, label: str, counts: Mapping[str, int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for key, count in sorted(counts.items()):
        family.add_metric([key], count)
    return family
