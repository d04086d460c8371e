"""What the registry shows operators: its `/fpai/v1/status` section and its metric families,
both read from the Raft engine's published status and the replica's state at request time."""

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric

from fpai_node.registry.raft import RaftStatus
from fpai_node.registry.raft_wire import parse_raft_id
from fpai_node.registry.state import RegistryState
from fpai_node.service import counter, gauge
from fpai_node.wire.errors import WireError


def registry_section(
    *,
    phase: str,
    address: str,
    status: RaftStatus,
    state: RegistryState,
    refusals: Mapping[str, int],
) -> dict[str, Any]:
    """Leader, term, members and roles, for /fpai/v1/status."""
    return {
        "phase": phase,
        "leader": parse_raft_id(status.leader)[0] if status.leader else None,
        "term": status.term,
        "commit_index": status.commit_index,
        "applied_index": status.applied_index,
        "role": "learner" if status.learner else "voter",
        "configuration": sorted(parse_raft_id(m)[0] for m in status.voters),
        "raft": address,
        "voters_target": state.target_voters,
        "members": members_json(state),
        "refusals": dict(refusals),
    }


def members_json(state: RegistryState) -> list[dict[str, Any]]:
    return [
        {
            "node_id": node,
            "role": m.role,
            "peer": m.peer,
            "api": m.api,
            "raft": m.raft,
            "joined_at_ms": m.joined_at_ms,
            "relayed_by": m.relayed_by or None,  # REG-13: until the member joined itself
        }
        for node, m in sorted(state.members.items())
    ]


def raft_metrics(
    *, phase: str, status: RaftStatus, state: RegistryState, refusals: Mapping[str, int]
) -> Iterator[Metric]:
    yield gauge("fpai_registry_term", "This node's current Raft term.", status.term)
    yield gauge(
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
    yield gauge(
        "fpai_registry_commit_index", "Highest Raft log index known committed.", status.commit_index
    )
    yield gauge(
        "fpai_registry_applied_index",
        "Highest Raft log index applied to this node's registry replica.",
        status.applied_index,
    )
    yield gauge(
        "fpai_registry_is_learner",
        "1 when this node replicates the registry as a learner (non-voter), else 0.",
        int(status.learner),
    )
    yield gauge(
        "fpai_registry_members",
        "Members of the federation in this node's registry replica.",
        len(state.members),
    )
    phases = GaugeMetricFamily(
        "fpai_registry_phase",
        "1 for this node's registry phase (starting, bootstrapping, joining, running, "
        "failed, stopped).",
        labels=["phase"],
    )
    phases.add_metric([phase], 1)
    yield phases
    yield counter(
        "fpai_registry_refusals",
        "Raft connections and frames the registry transport refused, by reason.",
        "reason",
        refusals,
    )
