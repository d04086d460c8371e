"""The sovereignty score and the single points of failure, from facts the node observed
(docs/operator-guide.md, "Sovereignty"). Pure: the facts come in, a report comes out.

The score's five parts and their weights are the mission's: self-hosted models 25, federated
infrastructure 20, autonomous operation 25, crypto-native treasury 15, open source and
forkable 10 (95 in all: the weights are kept as given, not scaled to 100). Every point comes
with the evidence that earned it, and every point missed with what would earn it.
"""

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

SELF_HOSTED_BACKENDS = frozenset({"llamacpp", "vllm"})  # weights on the member's own hardware
OPEN_LICENSES = frozenset({"Apache-2.0", "MIT", "BSD-3-Clause", "GPL-3.0", "AGPL-3.0"})
MIN_VOTERS = 3  # one lost voter leaves a majority: the registry keeps committing
MIN_REPLICAS = 2  # a shard with one live replica is lost with that one node


@dataclass(frozen=True, slots=True)
class Server:
    node_id: str
    backend: str  # llamacpp, vllm, upstream
    upstream_host: str | None = None  # this node's own upstreams: the host it forwards to


@dataclass(frozen=True, slots=True)
class Facts:
    node_id: str
    autonomy: str
    live_members: Sequence[str]  # node ids alive or suspect, this node included
    dead_members: Sequence[str]
    models: Mapping[str, Sequence[Server]]  # model id -> its live servers
    voters: Sequence[str]  # the registry's voters that are live
    voter_hosts: Mapping[str, str]  # voter -> the host of its peer address
    leader: str | None
    replicas: int  # memory.replicas in force
    shard_live_replicas: Sequence[int]  # per shard, how many of its replicas are live
    bootstrap: Sequence[str]  # join addresses this node was given (HOST:PORT)
    chain: str  # "none", "connecting", "ready"
    treasury_operators: Sequence[str]  # distinct operator addresses members bound
    license: str
    version: str
    protocol_version: int
    checks_failing: Sequence[str] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    title: str
    points: int
    max: int
    evidence: tuple[str, ...]

    def public(self) -> dict[str, object]:
        return {
            "name": self.name,
            "title": self.title,
            "points": self.points,
            "max": self.max,
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True, slots=True)
class Weakness:
    kind: str
    detail: str

    def public(self) -> dict[str, str]:
        return {"kind": self.kind, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Report:
    components: tuple[Component, ...]
    single_points_of_failure: tuple[Weakness, ...]

    @property
    def score(self) -> int:
        return sum(c.points for c in self.components)

    @property
    def max(self) -> int:
        return sum(c.max for c in self.components)

    def public(self) -> dict[str, object]:
        return {
            "score": self.score,
            "max": self.max,
            "components": [c.public() for c in self.components],
            "single_points_of_failure": [w.public() for w in self.single_points_of_failure],
        }


def audit(facts: Facts) -> Report:
    return Report(
        (
            _self_hosted(facts),
            _federated(facts),
            _autonomous(facts),
            _crypto_native(facts),
            _open_source(facts),
        ),
        tuple(single_points_of_failure(facts)),
    )


def is_hosted_api(host: str) -> bool:
    """An upstream outside the operator's own machines and networks: any name but localhost,
    any address but loopback, private and link-local ones."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host.lower() not in ("localhost",) and not host.lower().endswith(
            (".local", ".lan", ".internal", ".home.arpa")
        )
    return not (address.is_loopback or address.is_private or address.is_link_local)


def _served_on_members(servers: Sequence[Server]) -> bool:
    return any(
        s.backend in SELF_HOSTED_BACKENDS
        or (s.upstream_host is not None and not is_hosted_api(s.upstream_host))
        for s in servers
    )


def _self_hosted(facts: Facts) -> Component:
    weight = 25
    if not facts.models:
        return Component(
            "self_hosted", "Self-hosted models", 0, weight, ("the federation serves no model",)
        )
    own = [m for m, servers in facts.models.items() if _served_on_members(servers)]
    hosted = sorted(
        f"{model} is forwarded to the hosted API at {s.upstream_host}"
        for model, servers in facts.models.items()
        for s in servers
        if s.upstream_host is not None and is_hosted_api(s.upstream_host)
    )
    unverified = sorted(
        f"{model} on {s.node_id} goes through an upstream server this node cannot see"
        for model, servers in facts.models.items()
        for s in servers
        if s.backend == "upstream" and s.upstream_host is None
    )
    evidence: list[str] = []
    if len(own) == len(facts.models):
        evidence.append(
            f"every model this federation serves ({len(own)}) runs on member hardware "
            "(llama.cpp or vLLM, or an upstream on the operator's own network)"
        )
        if not hosted:
            evidence.append("no upstream to a hosted API")
    else:
        evidence.append(f"{len(own)} of {len(facts.models)} models run on member hardware")
    evidence += hosted + unverified
    points = weight * len(own) // len(facts.models)
    return Component("self_hosted", "Self-hosted models", points, weight, tuple(evidence))


def _federated(facts: Facts) -> Component:
    """8 for the voters, 6 for their machines, 3 for models served twice, 3 for shards with a
    second live replica."""
    voters = len(facts.voters)
    machines = len({facts.voter_hosts.get(v, v) for v in facts.voters})
    points = 8 * min(voters, MIN_VOTERS) // MIN_VOTERS + 6 * min(machines, MIN_VOTERS) // MIN_VOTERS
    evidence = [
        f"{voters} live registry voter{'s' if voters != 1 else ''} on {machines} "
        f"machine{'s' if machines != 1 else ''}; {len(facts.live_members)} live members"
        + (f", {len(facts.dead_members)} dead" if facts.dead_members else "")
    ]
    if facts.models:
        twice = [m for m, servers in facts.models.items() if len(servers) >= 2]
        points += 3 * len(twice) // len(facts.models)
        evidence.append(f"{len(twice)} of {len(facts.models)} models served by two nodes or more")
    shards = facts.shard_live_replicas
    if shards:
        safe = sum(1 for live in shards if live >= MIN_REPLICAS)
        points += 3 * safe // len(shards)
        evidence.append(
            f"{safe} of {len(shards)} memory shards with {MIN_REPLICAS} live replicas or more "
            f"(replication {facts.replicas})"
        )
    return Component("federated", "Federated infrastructure", points, 20, tuple(evidence))


def _autonomous(facts: Facts) -> Component:
    """15 for the mode (8 supervised: repairs wait for a person), 5 for a registry with a
    leader, 5 when every check the supervisor runs holds."""
    mode_points = {"autonomous": 15, "supervised": 8, "off": 0}.get(facts.autonomy, 0)
    mode_text = {
        "autonomous": "autonomy autonomous: the supervisor repairs and records it",
        "supervised": "autonomy supervised: repairs wait for an operator's approval",
        "off": "autonomy off: nothing is repaired while the operator is away",
    }.get(facts.autonomy, f"autonomy {facts.autonomy}")
    evidence = [mode_text]
    points = mode_points
    if facts.leader is not None:
        points += 5
        evidence.append(f"the registry has a leader ({facts.leader})")
    else:
        evidence.append("the registry has no leader: nothing can be written")
    if not facts.checks_failing:
        points += 5
        evidence.append("every supervisor check holds")
    else:
        evidence.append("failing checks: " + ", ".join(facts.checks_failing))
    return Component("autonomous", "Autonomous operation", points, 25, tuple(evidence))


def _crypto_native(facts: Facts) -> Component:
    """8 for a chain the treasury works on, 7 when no single operator key can move it."""
    if facts.chain == "none":
        return Component(
            "crypto_native",
            "Crypto-native treasury",
            0,
            15,
            ("no chain configured: the treasury lives nowhere",),
        )
    points = 8 if facts.chain == "ready" else 0
    evidence = [
        "the treasury's contracts answer on the chain"
        if facts.chain == "ready"
        else f"the chain is not reachable ({facts.chain})"
    ]
    operators = len(set(facts.treasury_operators))
    if operators >= 2:
        points += 7
        evidence.append(f"{operators} operators vote on the treasury: no single key moves it")
    else:
        evidence.append(f"{operators} operator bound: one key decides the treasury")
    return Component("crypto_native", "Crypto-native treasury", points, 15, tuple(evidence))


def _open_source(facts: Facts) -> Component:
    licensed = facts.license in OPEN_LICENSES
    evidence = (
        f"fpai-node {facts.version} is {facts.license or 'unlicensed'}"
        + (", an open-source license: anyone may fork it" if licensed else ""),
        f"it speaks FPAI protocol version {facts.protocol_version}, specified in specs/ and "
        "protocol/ for other implementations",
    )
    points = 10 if licensed else 0
    return Component("open_source", "Open source and forkable", points, 10, evidence)


def single_points_of_failure(facts: Facts) -> list[Weakness]:
    found: list[Weakness] = []
    for model, servers in sorted(facts.models.items()):
        if len(servers) == 1:
            found.append(
                Weakness("single_server", f"model {model} is served by {servers[0].node_id} only")
            )
    if len(facts.voters) < MIN_VOTERS:
        found.append(
            Weakness(
                "few_voters", f"{len(facts.voters)} live registry voter(s): losing one stops it"
            )
        )
    machines = {facts.voter_hosts.get(v, v) for v in facts.voters}
    if len(facts.voters) >= 2 and len(machines) == 1:
        found.append(
            Weakness(
                "voters_one_machine",
                f"all {len(facts.voters)} voters run on one machine ({next(iter(machines))})",
            )
        )
    lonely = sum(1 for live in facts.shard_live_replicas if live < MIN_REPLICAS)
    if lonely:
        found.append(
            Weakness(
                "single_replica",
                f"{lonely} memory shard(s) with fewer than {MIN_REPLICAS} live replicas",
            )
        )
    names = {host_of(a) for a in facts.bootstrap}
    dns = {n for n in names if not _is_address(n)}
    if len(facts.bootstrap) == 1 or (names and names == dns and len(dns) == 1):
        found.append(
            Weakness(
                "bootstrap",
                f"bootstrap depends on one {'DNS name' if dns else 'address'}: "
                f"{', '.join(sorted(names))}",
            )
        )
    if facts.chain != "none" and len(set(facts.treasury_operators)) <= 1:
        found.append(Weakness("treasury_one_key", "one operator key can move the treasury"))
    if facts.autonomy == "off":
        found.append(
            Weakness(
                "operator_absence",
                "autonomy is off: while this operator is away, no dead voter is replaced and "
                "no dead node's shards are re-replicated by this node",
            )
        )
    return found


def host_of(address: str) -> str:
    """The host of HOST:PORT (brackets of an IPv6 address removed), or the text itself."""
    host, _, _ = address.rpartition(":")
    return host.strip("[]") or address


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
