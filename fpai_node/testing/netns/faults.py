"""The six faults: each injects, checks that it took effect (FaultNotInEffect otherwise), and
heals, checking again. `Injected` tells the checks who was cut, killed or paused."""

import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from fpai_node.testing.netns import links, probes
from fpai_node.testing.netns.federation import STATUS_TIMEOUT_S, NetnsNode
from fpai_node.testing.netns.links import Link
from fpai_node.testing.netns.probes import FaultNotInEffect
from fpai_node.testing.netns.tun_relay import SlowNetwork
from fpai_node.testing.netns.waiting import until

log = structlog.get_logger(__name__)

DELAY_S = 0.2  # the fault: 200 ms on every link, each way, as netem `delay 200ms`
LOSS = 0.1  # and 10% of packets lost, each way
PAUSE_SEEN_TIMEOUT_S = 5.0  # SIGSTOP takes effect at once; the kernel shows it within ms
RELAY_LOSS_RANGE = (0.05, 0.2)  # the loss the relay must have applied: 10% with sampling noise


@dataclass
class Injected:
    """What a fault did, for the checks: `down` nodes were killed or paused, `cut` links were
    silenced, `minority` nodes could not reach a majority of voters."""

    targets: list[str]
    since: float  # when the fault was in effect (monotonic): cut installed, signal sent
    down: frozenset[str] = frozenset()
    cut: frozenset[Link] = frozenset()
    minority: frozenset[str] = frozenset()
    detail: dict[str, Any] = field(default_factory=dict)

    def expected_dead(self, observer: str, subject: str) -> bool:
        """Whether `observer` had a reason to see `subject` dead: one of them was down, or the
        link between them was cut. Any other death is false."""
        if observer in self.down or subject in self.down:
            return True
        return any({h.name for h in each} == {observer, subject} for each in self.cut)


class Fault(ABC):
    name: str
    title: str

    @abstractmethod
    def inject(self, nodes: list[NetnsNode], leader: NetnsNode) -> Injected: ...

    @abstractmethod
    def heal(self) -> None:
        """Undo the fault and check the network (or process) is back; safe to call twice."""


def _followers(nodes: list[NetnsNode], leader: NetnsNode) -> list[NetnsNode]:
    return [n for n in nodes if n is not leader]


class Partition(Fault):
    def __init__(
        self,
        name: str,
        title: str,
        minority: Callable[[list[NetnsNode], NetnsNode], list[NetnsNode]],
    ) -> None:
        self.name = name
        self.title = title
        self.choose = minority
        self.cut: set[Link] = set()

    def inject(self, nodes: list[NetnsNode], leader: NetnsNode) -> Injected:
        minority = self.choose(nodes, leader)
        majority = [n for n in nodes if n not in minority]
        small = [n.host for n in minority]
        large = [n.host for n in majority]
        self.cut = links.between(small, large)
        links.cut(self.cut)
        since = time.monotonic()
        probes.expect_cut(self.cut)
        probes.expect_connected(links.between(small, small) | links.between(large, large))
        return Injected(
            targets=[n.name for n in minority],
            since=since,
            cut=frozenset(self.cut),
            minority=frozenset(n.name for n in minority),
        )

    def heal(self) -> None:
        if self.cut:
            cut, self.cut = self.cut, set()
            links.heal(cut)
            probes.expect_connected(cut)


def isolate_leader(nodes: list[NetnsNode], leader: NetnsNode) -> list[NetnsNode]:
    return [leader]


def split_minority(nodes: list[NetnsNode], leader: NetnsNode) -> list[NetnsNode]:
    """The largest minority: on 5 nodes the leader and the last follower (a deposed leader
    with company); on 3 nodes the last follower, since the leader alone is fault 1 again."""
    size = (len(nodes) - 1) // 2
    followers = _followers(nodes, leader)
    if size == 1:
        return followers[-1:]
    return [leader, *followers[-(size - 1) :]]


class Kill(Fault):
    def __init__(
        self, name: str, title: str, target: Callable[[list[NetnsNode], NetnsNode], NetnsNode]
    ) -> None:
        self.name = name
        self.title = title
        self.choose = target
        self.victim: NetnsNode | None = None

    def inject(self, nodes: list[NetnsNode], leader: NetnsNode) -> Injected:
        victim = self.victim = self.choose(nodes, leader)
        victim.kill()
        since = time.monotonic()
        answer = victim.request("GET", "/healthz", timeout_s=STATUS_TIMEOUT_S)
        if victim.running() or answer.sent:
            raise FaultNotInEffect(f"{victim.name} still runs after kill -9 ({answer})")
        return Injected(targets=[victim.name], since=since, down=frozenset({victim.name}))

    def heal(self) -> None:
        victim, self.victim = self.victim, None
        if victim is not None and not victim.running():
            victim.start()
            log.info("node restarted", node=victim.name)


class Pause(Fault):
    name = "leader-paused"
    title = "leader paused (SIGSTOP, then SIGCONT)"

    def __init__(self) -> None:
        self.victim: NetnsNode | None = None

    def inject(self, nodes: list[NetnsNode], leader: NetnsNode) -> Injected:
        victim = self.victim = leader
        victim.signal(signal.SIGSTOP)
        since = time.monotonic()
        if not until(victim.paused, PAUSE_SEEN_TIMEOUT_S):
            raise FaultNotInEffect(f"{victim.name} is not stopped after SIGSTOP")
        answer = victim.request("GET", "/healthz", timeout_s=STATUS_TIMEOUT_S)
        if answer.outcome != "indeterminate":
            raise FaultNotInEffect(f"{victim.name} answers while stopped ({answer})")
        return Injected(targets=[victim.name], since=since, down=frozenset({victim.name}))

    def heal(self) -> None:
        victim, self.victim = self.victim, None
        if victim is None:
            return
        victim.signal(signal.SIGCONT)
        if until(lambda: not victim.paused(), PAUSE_SEEN_TIMEOUT_S) is None:
            raise FaultNotInEffect(f"{victim.name} is still stopped after SIGCONT")
        log.info("node resumed", node=victim.name)


class SlowLinks(Fault):
    name = "slow-links"
    title = "200 ms delay, 10% loss on every link (no cut)"

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.network: SlowNetwork | None = None
        self.detail: dict[str, Any] = {}

    def inject(self, nodes: list[NetnsNode], leader: NetnsNode) -> Injected:
        hosts = tuple(n.host for n in nodes)
        self.network = SlowNetwork(hosts, DELAY_S, LOSS, self.seed)
        self.network.start()
        since = time.monotonic()
        self.detail = {
            f"{a.name}->{b.name} connect s": round(probes.expect_delayed(a, b), 3)
            for a, b in ((hosts[0], hosts[1]), (hosts[-1], hosts[0]))
        }
        return Injected(targets=[n.name for n in nodes], since=since, detail=self.detail)

    def heal(self) -> None:
        network, self.network = self.network, None
        if network is None:
            return
        network.stop()
        stats = network.stats
        self.detail["relay"] = stats
        carried = stats.get("forwarded", 0) + stats.get("dropped", 0)
        lost = stats.get("dropped", 0) / carried if carried else 0.0
        hosts = network.hosts
        probes.expect_connected(links.between(hosts, hosts))
        if not RELAY_LOSS_RANGE[0] <= lost <= RELAY_LOSS_RANGE[1]:
            raise FaultNotInEffect(f"the relay lost {lost:.1%} of packets, not {LOSS:.0%}: {stats}")


def last_follower(nodes: list[NetnsNode], leader: NetnsNode) -> NetnsNode:
    return _followers(nodes, leader)[-1]


def the_leader(nodes: list[NetnsNode], leader: NetnsNode) -> NetnsNode:
    return leader


def all_faults(seed: int) -> list[Fault]:
    """The six faults of issue 21, in the campaign's order."""
    return [
        Partition("leader-isolated", "leader isolated from every other node", isolate_leader),
        Partition("split", "majority/minority split", split_minority),
        Kill("kill-follower", "kill -9 of a follower, then restart", last_follower),
        Kill("kill-leader", "kill -9 of the leader, then restart", the_leader),
        SlowLinks(seed),
        Pause(),
    ]


FAULT_NAMES = (
    "leader-isolated",
    "split",
    "kill-follower",
    "kill-leader",
    "slow-links",
    "leader-paused",
)


def chosen(names: list[str], seed: int) -> list[Fault]:
    """The faults named (in the campaign's order); ValueError for an unknown name."""
    unknown = set(names) - set(FAULT_NAMES)
    if unknown:
        raise ValueError(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULT_NAMES)}")
    return [f for f in all_faults(seed) if f.name in names]
