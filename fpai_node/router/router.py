"""The router's shell: gathers what the node knows (its own queues, the gossiped peer table, the
registry's model list, what forwarding measured), asks the pure policy for candidates, and tries
them in order until one produces a first event (specs/0006-routing.md ROUTE-1..ROUTE-7)."""

import time
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from fpai_node.gossip.messages import Capabilities, Model, Status
from fpai_node.gossip.state import MemberView
from fpai_node.inference.base import (
    ContextLengthExceeded,
    InferenceError,
    ModelNotFound,
    Overloaded,
)
from fpai_node.inference.service import InferenceService
from fpai_node.router.forward import Forwarder, PeerRefused, Timing
from fpai_node.router.jobs import Job, LocalEvent, run_locally
from fpai_node.router.messages import InferRequest
from fpai_node.router.select import (
    Candidate,
    LocalOffer,
    PeerOffer,
    estimate_prompt_tokens,
    rank,
)
from fpai_node.wire import PROTOCOL_VERSION

log = structlog.get_logger("fpai.router")
_SERVING = (Status.ALIVE, Status.SUSPECT)


class NoRoute(InferenceError):
    """ROUTE-7: the model is known in the federation but no node could take the request."""

    status, error_type, code = 503, "server_error", "model_unavailable"


@dataclass(frozen=True, slots=True)
class Opened:
    """A request that found its node: the first event, the rest, and who serves it."""

    first: LocalEvent
    events: AsyncGenerator[LocalEvent, None]
    served_by: str
    overhead_ms: float  # time the routing added before the first event


class Router:
    def __init__(
        self,
        node_id: str,
        inference: InferenceService,
        *,
        members: Callable[[], Iterable[MemberView]] = list,
        forwarder: Forwarder | None = None,
        registry_models: Callable[[], Mapping[str, frozenset[str]]] = dict,
    ) -> None:
        self.node_id = node_id
        self._inference = inference
        self._members = members
        self._forwarder = forwarder
        self._registry_models = registry_models

    async def open(self, job: Job, request_id: str) -> Opened:
        """Try the candidates best first (ROUTE-6). Any failure before the first event moves
        on to the next candidate, except this node's own refusal of the request (a 400 other
        than a context too short: a peer's may be longer)."""
        started = time.perf_counter()
        candidates = self.candidates(job, request_id)
        if not candidates:
            raise self._nowhere(job.model)
        failures: list[tuple[Candidate, InferenceError]] = []
        for candidate in candidates:
            attempt_started = time.perf_counter()
            timing = Timing()
            events = self._attempt(candidate, job, request_id, timing)
            try:
                first = await anext(events)
            except InferenceError as exc:
                await events.aclose()
                if _final(exc):
                    raise
                failures.append((candidate, exc))
                log.info("candidate skipped", node=candidate.node_id, reason=str(exc))
                continue
            except BaseException:
                await events.aclose()
                raise
            if candidate.local:  # the choice and any failed attempts, not the generation
                overhead = (attempt_started - started) * 1000
            else:  # and the hop: everything but the serving node's own part
                overhead = (time.perf_counter() - started) * 1000 - (timing.server_ms or 0.0)
            if not candidate.local:
                log.info("request forwarded", model=job.model, to=candidate.node_id)
            return Opened(first, events, candidate.node_id, max(0.0, overhead))
        raise _exhausted(job.model, failures)

    def candidates(self, job: Job, request_id: str) -> list[Candidate]:
        local = None
        if self._inference.serves(job.model):
            served = self._inference.get(job.model)
            local = LocalOffer(
                running=served.admission.running,
                capacity=served.card.capacity,
                waiting=served.admission.waiting,
                context_length=served.card.context_length,
            )
        return rank(
            request_id=request_id,
            prompt_tokens=estimate_prompt_tokens(job.prompt_chars),
            local_id=self.node_id,
            local=local,
            peers=self._offers(job.model) if self._forwarder is not None else (),
        )

    def _attempt(
        self, candidate: Candidate, job: Job, request_id: str, timing: Timing
    ) -> AsyncGenerator[LocalEvent, None]:
        if candidate.local:
            return run_locally(self._inference.get(job.model), job)
        assert self._forwarder is not None
        request = InferRequest(job.api, job.body, request_id, (self.node_id,))
        return self._forwarder.attempt(candidate, job, request, timing)

    def announced(self) -> Iterator[tuple[MemberView, Capabilities, Model]]:
        """Every model a routable peer announces (ROUTE-1), proven or not, peers in id order."""
        for member in sorted(self._members(), key=lambda m: m.node_id):
            if _routable(member):
                assert member.announcement is not None
                caps = member.announcement.capabilities
                for offered in caps.models:
                    yield member, caps, offered

    def _offers(self, model: str) -> list[PeerOffer]:
        assert self._forwarder is not None
        return [
            PeerOffer(
                node_id=member.node_id,
                peer_address=member.address,
                context_length=offered.context_length,
                load_permille=caps.load_permille,
                queue_depth=caps.queue_depth,
                healthy=member.status is Status.ALIVE and self._forwarder.healthy(member.node_id),
                inflight=self._forwarder.inflight[member.node_id],
                latency_ms=self._forwarder.latency_ms.get(member.node_id),
            )
            for member, caps, offered in self.announced()
            if offered.model_id == model and self._proven(member.node_id, model)
        ]

    def _proven(self, node_id: str, model: str) -> bool:
        """ROUTE-9: the peer has answered for the model (forwarding off: nothing to prove)."""
        return self._forwarder is None or self._forwarder.proofs.proven(node_id, model)

    def _nowhere(self, model: str) -> InferenceError:
        """ROUTE-7: 503 naming the nodes known to have served the model and their state;
        404 when nobody in the federation ever offered it."""
        known: dict[str, str] = {}
        for member in self._members():
            announcement = member.announcement
            if announcement is None or announcement.protocol_version != PROTOCOL_VERSION:
                continue
            if any(m.model_id == model for m in announcement.capabilities.models):
                state = "left" if announcement.left else str(member.status)
                if state != "left" and not self._proven(member.node_id, model):
                    state = "announced it, never answered for it"
                known[member.node_id] = state
        for node_id in self._registry_models().get(model, frozenset()):
            if node_id != self.node_id:
                known.setdefault(node_id, "listed in the registry, not reachable by gossip")
        if known:
            states = ", ".join(f"{n} ({s})" for n, s in sorted(known.items()))
            return NoRoute(f"model {model!r} has no live node to serve it: {states}")
        models = ", ".join(sorted(m["id"] for m in self.models())) or "none"
        return ModelNotFound(f"model {model!r} is not served in this federation (models: {models})")

    def models(self) -> list[dict[str, Any]]:
        """Every model a live node of the federation serves, local ones marked (/v1/models)."""
        table: dict[str, dict[str, Any]] = {}
        for served in self._inference.models():
            table[served.card.id] = {
                "id": served.card.id,
                "backend": served.card.backend,
                "context_length": served.card.context_length,
                "local": True,
                "nodes": [self.node_id],
            }
        for member, _, offered in self.announced():
            if not self._proven(member.node_id, offered.model_id):
                continue
            entry = table.setdefault(
                offered.model_id,
                {
                    "id": offered.model_id,
                    "backend": offered.backend,
                    "context_length": offered.context_length or None,
                    "local": False,
                    "nodes": [],
                },
            )
            entry["nodes"].append(member.node_id)
        return sorted(table.values(), key=lambda e: e["id"])

    def status(self) -> dict[str, Any]:
        forwarder = self._forwarder
        if forwarder is None:
            return {"forwarding": False}
        now = time.monotonic()
        return {
            "forwarding": True,
            "forwarded": dict(forwarder.forwarded),
            "inflight": dict(forwarder.inflight),
            "latency_ms": {p: round(ms, 3) for p, ms in forwarder.latency_ms.items()},
            "receipts_rejected": dict(forwarder.receipts_rejected),
            "demoted": {
                peer: {"reason": d.reason, "for_s": round(d.until - now, 1)}
                for peer, d in sorted(forwarder.demoted.items())
                if d.until > now
            },
            "demotions": dict(forwarder.demotions),
            "proven": forwarder.proofs.status(),
        }


def _routable(member: MemberView) -> bool:
    """ROUTE-1: live, announced, not leaving, and speaking this node's protocol version."""
    announcement = member.announcement
    return (
        member.status in _SERVING
        and announcement is not None
        and not announcement.left
        and announcement.protocol_version == PROTOCOL_VERSION
    )


def _final(exc: InferenceError) -> bool:
    """This node's own backend refused the request itself: nobody else is asked."""
    return (
        exc.status == 400
        and not isinstance(exc, PeerRefused)
        and not isinstance(exc, ContextLengthExceeded)
    )


def _exhausted(model: str, failures: list[tuple[Candidate, InferenceError]]) -> InferenceError:
    """Every candidate failed (ROUTE-7): a 400 when some node blamed the request and the rest
    were only busy (a retry cannot help), 429 when all were busy (clients retry those), else
    503."""
    reasons = "; ".join(f"{c.node_id}: {e}" for c, e in failures)
    blamed = [e for _, e in failures if e.status == 400]
    if blamed and all(e.status == 400 or isinstance(e, Overloaded) for _, e in failures):
        return blamed[0]
    if all(isinstance(e, Overloaded) for _, e in failures):
        retry = min(e.retry_after_s for _, e in failures if isinstance(e, Overloaded))
        return Overloaded(f"model {model!r}: every node is busy ({reasons})", retry)
    return NoRoute(f"model {model!r}: no node could serve the request ({reasons})")
