"""Each node's own view, polled all along a fault: gossip states of its peers, Raft term and
leader. The false-death and term checks read these samples afterwards."""

import time
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from fpai_node.testing.netns.federation import NetnsNode
from fpai_node.testing.netns.sampling import PerNodeSampler

STATUS_EVERY_S = 0.5  # gossip marks a peer dead after seconds; twice a second catches each flip
DEAD_TRANSITIONS = "fpai_gossip_transitions_total"  # counter, label state="dead"
MONITOR_STOP_TIMEOUT_S = 10.0  # a poll is bounded by the status timeout (2 s)


@dataclass(frozen=True)
class StatusSample:
    t: float
    observer: str
    states: dict[str, str]  # peer name -> gossip state (alive, suspect, dead)
    term: int
    leader: str | None  # the leader's name, as this node sees it


def status_monitor(nodes: list[NetnsNode]) -> PerNodeSampler[StatusSample]:
    """Every node's own view every STATUS_EVERY_S, until `stop()`."""
    names = {n.node_id: n.name for n in nodes}

    def sample(node: NetnsNode) -> StatusSample | None:
        status = node.status()
        if status is None:
            return None
        registry = status["registry"]
        return StatusSample(
            time.monotonic(),
            node.name,
            {names.get(p["node_id"], p["node_id"]): p["state"] for p in status["peers"]},
            int(registry.get("term") or 0),
            names.get(registry.get("leader") or ""),
        )

    return PerNodeSampler(nodes, sample, STATUS_EVERY_S, MONITOR_STOP_TIMEOUT_S)


def dead_transitions(node: NetnsNode) -> float | None:
    """The node's own count of peers it marked dead since it started (/metrics), or None."""
    answer = node.request("GET", "/metrics", timeout_s=5.0)
    if not answer.ok or not isinstance(answer.body, str):
        return None
    for family in text_string_to_metric_families(answer.body):
        for sample in family.samples:
            if sample.name == DEAD_TRANSITIONS and sample.labels.get("state") == "dead":
                return float(sample.value)
    return None


def terms(nodes: list[NetnsNode]) -> dict[str, int]:
    """Each answering node's Raft term."""
    found = {}
    for node in nodes:
        status = node.status()
        if status is not None:
            found[node.name] = int(status["registry"].get("term") or 0)
    return found


def leader(nodes: list[NetnsNode]) -> NetnsNode | None:
    """The node that every answering node names as leader, if they agree (and all answer)."""
    names = {n.node_id: n for n in nodes}
    seen = set()
    for node in nodes:
        status = node.status()
        if status is None:
            return None
        seen.add(status["registry"].get("leader"))
    if len(seen) != 1:
        return None
    return names.get(next(iter(seen)) or "")
