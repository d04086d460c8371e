"""The supervisor's readings of the node's services: the facts the sovereignty audit scores and
the checks it shows, read from what the services keep anyway (no network call)."""

import dataclasses
import datetime as dt
import importlib.metadata
import shutil
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fpai_node import __version__
from fpai_node.gossip.messages import Status
from fpai_node.gossip.service import GossipService
from fpai_node.inference.service import InferenceService
from fpai_node.memory.operations import SHARDS
from fpai_node.memory.placement import Placement
from fpai_node.registry.raft_wire import parse_raft_id
from fpai_node.registry.service import RegistryService
from fpai_node.supervisor.checks import Check, Readings, run_checks
from fpai_node.supervisor.sovereignty import Facts, Report, Server, audit, host_of
from fpai_node.treasury.service import TreasuryService
from fpai_node.wire import PROTOCOL_VERSION

CACHE_S = 1.0  # the status, the dashboard's polls and a scrape share one reading a second
LIVE = (Status.ALIVE, Status.SUSPECT)


@dataclass(frozen=True, slots=True)
class Observation:
    facts: Facts
    checks: tuple[Check, ...]
    report: Report


class Observer:
    def __init__(
        self,
        *,
        node_id: str,
        autonomy: str,
        home: Path,
        inference: InferenceService,
        gossip: GossipService,
        registry: RegistryService,
        treasury: TreasuryService,
        placement: Callable[[], Placement] | None,
        bootstrap: Sequence[str],
        certificate_expires: Callable[[], dt.datetime],
    ) -> None:
        """`placement`: the memory service's, None with memory off."""
        self._node_id = node_id
        self._autonomy = autonomy
        self._home = home
        self._inference = inference
        self._gossip = gossip
        self._registry = registry
        self._treasury = treasury
        self._placement = placement
        self._bootstrap = tuple(bootstrap)
        self._certificate_expires = certificate_expires
        self._cached: tuple[float, Observation] | None = None
        self._license = _license()  # the installed package's: read once, not at every poll

    def observe(self) -> Observation:
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < CACHE_S:
            return self._cached[1]
        facts = self._facts()
        checks = tuple(run_checks(facts, self._readings()))
        failing = tuple(c.name for c in checks if not c.ok)
        facts = _with_failing(facts, failing)
        observation = Observation(facts, checks, audit(facts))
        self._cached = (now, observation)
        return observation

    def _facts(self) -> Facts:
        members = self._gossip.members()
        live = [self._node_id, *(m.node_id for m in members if m.status in LIVE)]
        dead = [m.node_id for m in members if m.status == Status.DEAD]
        models: dict[str, list[Server]] = {}
        for served in self._inference.models():
            host = None
            if served.card.backend == "upstream":  # where it forwards: a hosted API or not
                host = urllib.parse.urlsplit(getattr(served.backend, "base_url", "")).hostname
            models.setdefault(served.card.id, []).append(
                Server(self._node_id, served.card.backend, host or None)
            )
        for member in members:
            if member.status in LIVE and member.announcement is not None:
                for model in member.announcement.capabilities.models:
                    models.setdefault(model.model_id, []).append(
                        Server(member.node_id, model.backend)
                    )
        state = self._registry.state
        alive = set(live)
        voters = [v for v in state.voters() if v in alive]  # a dead voter does not count
        hosts = {v: host_of(state.members[v].peer) for v in voters}
        shards: list[int] = []
        replicas = 0
        if self._placement is not None:
            placement = self._placement()
            replicas = placement.factor
            shards = [sum(r in alive for r in placement.of(s)) for s in range(SHARDS)]
        treasury_operators = (
            sorted({a for a in self._treasury.operators_of(state).values() if a})
            if self._treasury.phase != "none"
            else []
        )
        return Facts(
            node_id=self._node_id,
            autonomy=self._autonomy,
            live_members=live,
            dead_members=dead,
            models=models,
            voters=voters,
            voter_hosts=hosts,
            leader=_leader(self._registry),
            replicas=replicas,
            shard_live_replicas=shards,
            bootstrap=self._bootstrap,
            chain=self._treasury.phase,
            treasury_operators=treasury_operators,
            license=self._license,
            version=__version__,
            protocol_version=PROTOCOL_VERSION,
        )

    def _readings(self) -> Readings:
        down = tuple(
            sorted(
                served.card.id
                for served in self._inference.models()
                if not getattr(getattr(served.backend, "server", None), "healthy", True)
            )
        )
        left = self._certificate_expires() - dt.datetime.now(dt.UTC)
        return Readings(
            disk_free_bytes=shutil.disk_usage(self._home).free,
            certificate_days_left=left.total_seconds() / 86_400,
            chain_error=self._treasury.error,
            backends_down=down,
        )


def _with_failing(facts: Facts, failing: tuple[str, ...]) -> Facts:
    return dataclasses.replace(facts, checks_failing=failing)


def _leader(registry: RegistryService) -> str | None:
    leader = registry.status.leader
    return parse_raft_id(leader)[0] if leader else None


def _license() -> str:
    """The installed package's license expression (pyproject.toml `license`)."""
    try:
        metadata = importlib.metadata.metadata("fpai-node")
    except importlib.metadata.PackageNotFoundError:
        return ""
    return str(metadata["License-Expression"] or metadata["License"] or "")
