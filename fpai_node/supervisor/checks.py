"""What the supervisor checks of the node and the federation, each a line an operator reads
(status, dashboard, metrics). Pure: built from the facts and the node's own readings."""

from dataclasses import dataclass

from fpai_node.supervisor.sovereignty import MIN_REPLICAS, Facts

DISK_MIN_FREE_BYTES = 1 << 30  # 1 GiB: the Raft journal, receipts and shards keep growing
CERT_MIN_DAYS = 14  # two weeks to have a federation CA sign a new certificate


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str

    def public(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Readings:
    """What the node reads of itself, beside the facts."""

    disk_free_bytes: int
    certificate_days_left: float
    chain_error: str
    backends_down: tuple[str, ...]  # models whose backend does not answer


def run_checks(facts: Facts, readings: Readings) -> list[Check]:
    shards = facts.shard_live_replicas
    lonely = sum(1 for live in shards if live < MIN_REPLICAS)
    gib = readings.disk_free_bytes / (1 << 30)
    return [
        Check(
            "registry",
            facts.leader is not None,
            f"leader {facts.leader}, {len(facts.voters)} voters"
            if facts.leader
            else "no leader: registry writes wait",
        ),
        Check(
            "gossip",
            not facts.dead_members,
            f"{len(facts.live_members) - 1} peers alive"
            + (f", dead: {', '.join(sorted(facts.dead_members))}" if facts.dead_members else ""),
        ),
        Check(
            "memory",
            not lonely,
            f"{len(shards) - lonely} of {len(shards)} shards with {MIN_REPLICAS}+ live replicas"
            if shards
            else "memory off",
        ),
        Check(
            "chain",
            facts.chain in ("none", "ready"),
            {"none": "no chain configured", "ready": "the treasury's chain answers"}.get(
                facts.chain, f"chain {facts.chain}: {readings.chain_error or 'connecting'}"
            ),
        ),
        Check(
            "disk",
            readings.disk_free_bytes >= DISK_MIN_FREE_BYTES,
            f"{gib:.1f} GiB free in the node's home",
        ),
        Check(
            "certificate",
            readings.certificate_days_left >= CERT_MIN_DAYS,
            f"the node certificate expires in {readings.certificate_days_left:.0f} days",
        ),
        Check(
            "backends",
            not readings.backends_down,
            "every local model answers"
            if not readings.backends_down
            else f"not answering: {', '.join(readings.backends_down)}",
        ),
    ]
