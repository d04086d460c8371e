"""Each node's own view, polled all along a fault: gossip states of its peers, Raft term and
leader. The false-death and term checks read these samples afterwards."""

import threading
import time
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from fpai_node.testing.netns.federation import NetnsNode

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


class StatusMonitor:
    """A thread per node polling GET /fpai/v1/status until `stop()`."""

    def __init__(self, nodes: list[NetnsNode]) -> None:
        self.nodes = nodes
        self.names = {n.node_id: n.name for n in nodes}
        self.samples: list[StatusSample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for node in self.nodes:
            thread = threading.Thread(target=self._poll, args=(node,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _poll(self, node: NetnsNode) -> None:
        while not self._stop.is_set():
            status = node.status()
            if status is not None:
                registry = status["registry"]
                sample = StatusSample(
                    time.monotonic(),
                    node.name,
                    {
                        self.names.get(p["node_id"], p["node_id"]): p["state"]
                        for p in status["peers"]
                    },
                    int(registry.get("term") or 0),
                    self.names.get(registry.get("leader") or ""),
                )
                with self._lock:
                    self.samples.append(sample)
            self._stop.wait(STATUS_EVERY_S)

    def stop(self) -> list[StatusSample]:
        self._stop.set()
        for thread in self._threads:
            thread.join(MONITOR_STOP_TIMEOUT_S)
        with self._lock:
            return sorted(self.samples, key=lambda s: s.t)


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
