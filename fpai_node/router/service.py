"""The router as one service of the node: the usage receipts log, forwarding to peers, serving
what peers forward, and the Router that chooses between this node and its peers
(specs/0006-routing.md)."""

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric

from fpai_node.gossip.state import MemberView
from fpai_node.identity.keys import NodeKey
from fpai_node.inference.service import InferenceService
from fpai_node.peer.client import PeerClient
from fpai_node.router.forward import Forwarder
from fpai_node.router.receipts import ReceiptLog
from fpai_node.router.router import Router
from fpai_node.router.serve import PeerInference
from fpai_node.service import PeerRoute, Service, counter


class RouterService(Service):
    name = "router"

    def __init__(
        self,
        key: NodeKey,
        inference: InferenceService,
        client: PeerClient,
        receipts: Path,
        *,
        members: Callable[[], Iterable[MemberView]],
        is_member: Callable[[str], bool],
        registry_models: Callable[[], Mapping[str, frozenset[str]]],
    ) -> None:
        """`members` is gossip's table (the peers' offers), `is_member` who may use this
        node's models (FWD-7), `registry_models` who the registry says serves what (ROUTE-7).
        Opens the receipts log (RECEIPT-3: a torn tail is cut now)."""
        self.receipts = ReceiptLog(receipts)
        self.forwarder = Forwarder(client, self.receipts)
        self.serving = PeerInference(key, inference, self.receipts, is_member)
        self.router = Router(
            key.node_id,
            inference,
            members=members,
            forwarder=self.forwarder,
            registry_models=registry_models,
        )

    async def start(self) -> None:
        """Nothing to start: the peer channel carries both directions."""

    async def stop(self, leave: bool) -> None:
        """Flush the receipts (the peer channel, stopped before, let forwarded generations in
        flight finish and sign theirs)."""
        await self.receipts.close()

    def peer_routes(self) -> Sequence[PeerRoute]:
        return (self.serving.route(),)

    def status_sections(self) -> Mapping[str, object]:
        return {"router": self.router.status()}

    def metrics(self) -> Iterable[Metric]:
        forwarder, serving = self.forwarder, self.serving
        yield counter(
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
        yield counter(
            "fpai_receipts_rejected",
            "Usage receipts from serving peers that failed a check, by reason.",
            "reason",
            forwarder.receipts_rejected,
        )
        yield counter(
            "fpai_router_demotions",
            "Peers demoted for routing because they were caught lying, by what they did "
            "(a receipt check's reason, oversized_answer, broke_protocol, no_first_event).",
            "reason",
            forwarder.demotions,
        )
        yield counter(
            "fpai_peer_requests_served",
            "Requests forwarded to this node that it served, by requesting peer.",
            "peer",
            serving.served,
        )
        yield counter(
            "fpai_peer_requests_refused",
            "Requests forwarded to this node that it refused, by reason code.",
            "reason",
            serving.refused,
        )
