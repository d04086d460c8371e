"""Which nodes hold a shard (specs/0007-memory.md, MEM-8). Pure.

Rendezvous hashing: each holder gets a score per shard, and a shard's replicas are the R holders
with the highest scores. Every node computes the same answer from the same registry state, and a
holder joining or leaving moves only the shards whose top R it enters or leaves.
"""

import hashlib
from collections.abc import Iterable, Mapping

from fpai_node.memory.operations import SHARDS

PLACE_DOMAIN = b"FPAI-MEMORY-PLACE-V1\x00"
REPLICAS_PARAMETER = "memory.replicas"
# MEM-8: three copies survive the loss of one holder with a majority left to acknowledge writes.
DEFAULT_REPLICAS = 3
MAX_REPLICAS = 7  # MEM-8: a write waits for a majority; more copies only slow it
SERVICE_SUFFIX = "/memory"  # MEM-8: a member offers memory by its registry service "<id>/memory"
HEALTHY = "ok"  # MEM-8: the health a holder sets; the leader marks a dead member's `down`


def replication_factor(parameters: Mapping[str, object]) -> int:
    """MEM-8: the registry parameter `memory.replicas` if it is an integer in 1..MAX_REPLICAS,
    else DEFAULT_REPLICAS."""
    value = parameters.get(REPLICAS_PARAMETER)
    if type(value) is int and 1 <= value <= MAX_REPLICAS:
        return value
    return DEFAULT_REPLICAS


def holders(members: Iterable[str], services: Mapping[str, str]) -> list[str]:
    """MEM-8: the members whose memory service is up (`services`: name -> health), sorted."""
    offering = {
        name[: -len(SERVICE_SUFFIX)]
        for name, health in services.items()
        if name.endswith(SERVICE_SUFFIX) and health == HEALTHY
    }
    return sorted(offering.intersection(members))


def score(shard: int, node_id: str) -> bytes:
    """MEM-8: SHA-256 of the domain, the shard as two bytes big-endian and the node id."""
    return hashlib.sha256(PLACE_DOMAIN + shard.to_bytes(2, "big") + node_id.encode()).digest()


def replicas(shard: int, holders: Iterable[str], factor: int) -> tuple[str, ...]:
    """MEM-8: the min(factor, holders) holders with the highest scores, highest first."""
    assert 0 <= shard < SHARDS
    ranked = sorted(set(holders), key=lambda node: score(shard, node), reverse=True)
    return tuple(ranked[:factor])


def majority(replica_count: int) -> int:
    """MEM-9: acknowledgements a write needs."""
    return replica_count // 2 + 1


class Placement:
    """Every shard's replicas under one registry state, with the holders' peer addresses."""

    def __init__(self, addresses: Mapping[str, str], factor: int) -> None:
        self.addresses = dict(addresses)  # holder -> peer address
        self.factor = min(factor, len(addresses))
        nodes = sorted(addresses)
        self._replicas = [replicas(shard, nodes, self.factor) for shard in range(SHARDS)]

    def of(self, shard: int) -> tuple[str, ...]:
        return self._replicas[shard]

    def shards_of(self, node: str) -> list[int]:
        return [s for s in range(SHARDS) if node in self._replicas[s]]
