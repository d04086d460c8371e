"""Which node should serve a request: the routing policy of specs/0006-routing.md (ROUTE-1..6).
Pure: the shell passes in what it knows (its own queue, the gossiped peer table, what it measured)
and gets back an ordered list of candidates to try.

The policy in one line: least expected queue first, with the local node winning every tie, then
lower announced load, then lower measured latency, then a hash that spreads equal peers.
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

LOAD_BUCKET_PERMILLE = 250  # ROUTE-5: loads within one bucket count as equal; latency decides
UNKNOWN_LATENCY_MS = 50.0  # ROUTE-5: a peer never measured ranks like a typical WAN peer
CHARS_PER_TOKEN = 4  # ROUTE-2: prompt size estimate; overestimating refuses nothing that fits


@dataclass(frozen=True, slots=True)
class LocalOffer:
    """This node's own admission queue for the model."""

    running: int
    capacity: int
    waiting: int
    context_length: int | None


@dataclass(frozen=True, slots=True)
class PeerOffer:
    """A peer that announced the model, with what this node knows of it."""

    node_id: str
    peer_address: str
    context_length: int  # 0: the peer did not say
    load_permille: int
    queue_depth: int
    healthy: bool  # gossip says alive and no forward to it failed within the cool-down
    inflight: int = 0  # this node's requests running on the peer now (announcements lag)
    latency_ms: float | None = None  # measured on forwarded requests; None until measured


@dataclass(frozen=True, slots=True)
class Candidate:
    node_id: str  # this node's own id for the local candidate
    peer_address: str  # "" for the local candidate
    expected_queue: int

    @property
    def local(self) -> bool:
        return self.peer_address == ""


def estimate_prompt_tokens(prompt_chars: int) -> int:
    return -(-prompt_chars // CHARS_PER_TOKEN)


def rank(
    *,
    request_id: str,
    prompt_tokens: int,
    local_id: str,
    local: LocalOffer | None,
    peers: Iterable[PeerOffer],
) -> list[Candidate]:
    """Candidates for one request, best first (ROUTE-3..ROUTE-6): those whose context seems too
    small for the prompt come last, then those that failed or are suspected, before them the
    rest. `local` is None when this node does not serve the model."""
    scored: list[tuple[tuple[int, int, int, float, bytes], Candidate]] = []
    if local is not None:
        queue = local.waiting + (local.running >= local.capacity)
        tier = 0 if _fits(local.context_length or 0, prompt_tokens) else 2
        scored.append(((tier, queue, 0, 0.0, b""), Candidate(local_id, "", queue)))
    for peer in peers:
        if peer.node_id == local_id:
            continue
        queue = peer.queue_depth + peer.inflight + (peer.load_permille >= 1000)
        # too small by the estimate only goes last: the node's tokenizer has the last word
        tier = (0 if peer.healthy else 1) if _fits(peer.context_length, prompt_tokens) else 2
        key = (
            tier,
            queue,
            1 + peer.load_permille // LOAD_BUCKET_PERMILLE,
            UNKNOWN_LATENCY_MS if peer.latency_ms is None else peer.latency_ms,
            _spread(request_id, peer.node_id),
        )
        scored.append((key, Candidate(peer.node_id, peer.peer_address, queue)))
    scored.sort(key=lambda item: item[0])
    return [candidate for _, candidate in scored]


def _fits(context_length: int, prompt_tokens: int) -> bool:
    return context_length == 0 or prompt_tokens < context_length


def _spread(request_id: str, node_id: str) -> bytes:
    """Rendezvous hash: equal peers share the requests, and one request always ranks the same."""
    return hashlib.blake2b(f"{request_id}\x00{node_id}".encode(), digest_size=8).digest()
