"""The router as one service of the node: the usage receipts log, forwarding to peers, serving
what peers forward, probing the models peers announce, and the Router that chooses between
this node and its peers (specs/0006-routing.md)."""

import asyncio
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import structlog
from prometheus_client.core import GaugeMetricFamily, Metric

from fpai_node.gossip.state import MemberView
from fpai_node.identity.keys import NodeKey
from fpai_node.inference.base import InferenceError, Overloaded
from fpai_node.inference.openai_requests import ApiError
from fpai_node.inference.service import InferenceService
from fpai_node.peer.client import PeerClient
from fpai_node.router.ack_exchange import PENDING_MS
from fpai_node.router.acks import Pair
from fpai_node.router.forward import Forwarder, NotMemberYet, PeerRefused, Timing
from fpai_node.router.jobs import parse_job
from fpai_node.router.messages import PROBE_ID_PREFIX, InferRequest
from fpai_node.router.proofs import DEFER_MIN_S, probe_bodies
from fpai_node.router.receipts import ReceiptLog, recent
from fpai_node.router.router import Router
from fpai_node.router.select import Candidate
from fpai_node.router.serve import PeerInference
from fpai_node.service import PeerRoute, Service, counter

PROBE_PERIOD_S = 1.0  # ROUTE-9: a newly announced model is probed within a second
log = structlog.get_logger("fpai.router")


def probe_deferral(exc: InferenceError) -> tuple[str, float] | None:
    """ROUTE-9: a probe refused for a passing reason, no evidence against the claim: why, and
    how soon to ask again (busy: its Retry-After; no member yet: its gossip has not heard of
    this node). None: the probe failed."""
    if isinstance(exc, Overloaded):
        return "busy", float(exc.retry_after_s)
    if isinstance(exc, NotMemberYet):
        return "not_a_member", DEFER_MIN_S
    return None


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
        is_dead: Callable[[str], bool],
        registry_models: Callable[[], Mapping[str, frozenset[str]]],
        pairs_window_ms: int = 0,
    ) -> None:
        """`members` is gossip's table (the peers' offers), `is_member` who may use this
        node's models (FWD-7), `is_dead` whom gossip declared dead (FWD-9), `registry_models`
        who the registry says serves what (ROUTE-7). Opens the receipts log (RECEIPT-3: a
        torn tail is cut now)."""
        self._node_id = key.node_id
        self._members = members
        self._pairs_window_ms = pairs_window_ms
        self._kept_pairs: list[Pair] = []
        self._probing: asyncio.Task[None] | None = None
        self._probes: set[asyncio.Task[None]] = set()
        self.receipts = ReceiptLog(receipts)
        self.forwarder = Forwarder(key, client, self.receipts, is_dead)
        self.serving = PeerInference(key, inference, self.receipts, is_member)
        self.router = Router(
            key.node_id,
            inference,
            members=members,
            forwarder=self.forwarder,
            registry_models=registry_models,
        )

    async def start(self) -> None:
        """Start probing announced models (ROUTE-9) and delivering acknowledgements (RWD-3),
        and wait again for those of the receipts signed before a restart; the peer channel
        carries the rest."""
        now_ms = time.time_ns() // 1_000_000
        found = await asyncio.to_thread(
            recent,
            self.receipts.path,
            self._node_id,
            now_ms - PENDING_MS,
            now_ms - self._pairs_window_ms,
        )
        self._kept_pairs = found.pairs
        self.serving.acks.restore(found)
        outbox = self.forwarder.acks
        outbox.address_of = self.address_of
        for pair in found.used:
            outbox.send(pair)
        outbox.start()
        self._probing = asyncio.create_task(self._probe_announced(), name="model probes")

    async def stop(self, leave: bool) -> None:
        """Stop probing, then flush the receipts (the peer channel, stopped before, let
        forwarded generations in flight finish and sign theirs)."""
        tasks = [t for t in (self._probing, *self._probes) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._probing = None
        await self.forwarder.acks.stop()
        await self.receipts.close()

    def take_kept_pairs(self) -> list[Pair]:
        """The pairs of the last `pairs_window_ms` the receipts file held at start, handed
        once to rewards (the file is read once, here)."""
        pairs, self._kept_pairs = self._kept_pairs, []
        return pairs

    def address_of(self, node_id: str) -> str | None:
        """A member's peer address, as gossip knows it."""
        for member in self._members():
            if member.node_id == node_id:
                return member.address
        return None

    async def _probe_announced(self) -> None:
        proofs = self.forwarder.proofs
        while True:
            await asyncio.sleep(PROBE_PERIOD_S)
            addresses: dict[str, str] = {}
            announced: set[tuple[str, str]] = set()
            for member, _, offered in self.router.announced():
                addresses[member.node_id] = member.address
                announced.add((member.node_id, offered.model_id))
            for pair in proofs.due(announced, time.monotonic()):
                task = asyncio.create_task(self._probe(pair, addresses[pair[0]]))
                self._probes.add(task)
                task.add_done_callback(self._probes.discard)

    async def _probe(self, pair: tuple[str, str], address: str) -> None:
        """ROUTE-9: one forwarded request per probe body until one is answered. Whatever
        happens, the probe's slot is handed back (a crash must not hold it for good)."""
        answered, deferred_s = False, None
        try:
            answered = await self._answered(pair, address)
        except InferenceError as exc:
            deferral = probe_deferral(exc)
            if deferral is None:
                log.info("model probe failed", peer=pair[0], model=pair[1], reason=str(exc))
            else:
                why, deferred_s = deferral
                log.info(
                    "model probe deferred", peer=pair[0], model=pair[1], why=why, reason=str(exc)
                )
        finally:
            self.forwarder.proofs.probed(pair, answered, time.monotonic(), deferred_s)

    async def _answered(self, pair: tuple[str, str], address: str) -> bool:
        node_id, model = pair
        for api, body in probe_bodies(model):
            request_id = f"{PROBE_ID_PREFIX}{os.urandom(8).hex()}"
            request = InferRequest(api, body, request_id, (self._node_id,))
            try:
                job = parse_job(api, body)
            except ApiError as exc:  # a model id no request can name
                log.info("model not probed", peer=node_id, model=model, reason=str(exc))
                return False
            events = self.forwarder.attempt(Candidate(node_id, address, 0), job, request, Timing())
            try:
                async for _ in events:
                    pass
                return True
            except PeerRefused:  # the model refuses this kind of request: try the next kind
                continue
            finally:
                await events.aclose()
        return False

    def peer_routes(self) -> Sequence[PeerRoute]:
        return (self.serving.route(), self.serving.acks.route())

    def status_sections(self) -> Mapping[str, object]:
        outbox, inbox = self.forwarder.acks, self.serving.acks
        acks = {
            "queued": outbox.queued,
            "delivered": outbox.delivered,
            "retries": outbox.retries,
            "dropped": dict(outbox.dropped),
            "accepted": inbox.accepted,
            "refused": dict(inbox.refused),
        }
        return {"router": {**self.router.status(), "acknowledgements": acks}}

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
        proven = GaugeMetricFamily(
            "fpai_router_proven_models",
            "Models each peer announces and has answered for (ROUTE-9): only these are routed.",
            labels=["peer"],
        )
        for peer, models in forwarder.proofs.status().items():
            proven.add_metric([peer], len(models))
        yield proven
        yield counter(
            "fpai_router_demotions",
            "Peers demoted for routing because they were caught lying, by what they did "
            "(a receipt check's reason, oversized_answer, broke_protocol, no_first_event).",
            "reason",
            forwarder.demotions,
        )
        yield counter(
            "fpai_acknowledgements_refused",
            "Acknowledgements peers sent for this node's receipts that it refused, by reason "
            "(RWD-3).",
            "reason",
            serving.acks.refused,
        )
        yield counter(
            "fpai_acknowledgements_dropped",
            "This node's acknowledgements that never reached their server, by why (RWD-3).",
            "reason",
            forwarder.acks.dropped,
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
