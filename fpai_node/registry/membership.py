"""The leader's membership policy (specs/0005-registry.md, REG-13, RAFT-10..RAFT-12). Pure.

The registry's members table says who should vote; Raft's configuration says who does. The
leader closes the gap one step at a time (Raft changes one voter per committed configuration):
it adds missing voters before it removes extra ones, so a replacement never leaves the voter set
smaller than it was, and it adds a voter only once that member is connected to it as a learner
holding every committed entry: a voter that cannot answer yet would count against the majority.
It also keeps the number of voters at the federation's target, promoting a live learner when a
voter is missing or has been unreachable for longer than `dead_after_s`, demoting the dead
voter only once its replacement votes, and demoting a voter when there are more than the target
(one Raft does not count yet if any, else the one most recently seen down). Last, it marks the
services of a member unreachable for `dead_after_s` down (RAFT-16), so that what is placed on
members by their services (memory shards) moves to the living.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from fpai_node.registry.raft_wire import raft_id
from fpai_node.registry.state import RegistryState


@dataclass(frozen=True, slots=True)
class RaftChange:
    """Add or remove one voter in Raft's configuration."""

    change: str  # "add" or "rem"
    member: str  # Raft member id


@dataclass(frozen=True, slots=True)
class SetRole:
    """Propose `member.set_role` to the registry."""

    node_id: str
    role: str
    replacing: str | None = None  # the dead voter this step replaces (a repair: `allowed`)


@dataclass(frozen=True, slots=True)
class StepDown:
    """The leader itself is no longer a voter: hand leadership to `to`, a voter that stays and
    holds the whole log; the next leader removes this one (RAFT-12)."""

    to: str


@dataclass(frozen=True, slots=True)
class MarkDown:
    """Propose `service.set` of a dead member's service, unchanged but for health `down`
    (RAFT-16), so that whatever the service places on its members moves elsewhere."""

    name: str
    endpoints: tuple[str, ...]
    member: str  # the dead member's node id


Action = RaftChange | SetRole | StepDown | MarkDown
DOWN = "down"  # RAFT-16: the health of a dead member's services


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What the leader sees of Raft right now."""

    self_member: str
    voters: frozenset[str]  # Raft member ids in the configuration, self included
    connected: frozenset[str]  # member ids (voters and learners) with a live connection
    down_since: Mapping[str, float]  # voter member id -> when it was last seen disconnected
    now: float
    caught_up: frozenset[str] = frozenset()  # learners connected and holding every commit
    synced: frozenset[str] = frozenset()  # voters connected and holding the leader's whole log
    last_down: Mapping[str, float] = field(default_factory=dict)  # member -> last seen down


def _always(action: Action) -> bool:
    return True


def is_repair(action: Action) -> bool:
    """A step that repairs after a member's death (replacing a dead voter, marking a dead
    member's services down) rather than one that makes Raft match the registry: the leader's
    operator may hold these for approval (RAFT-17)."""
    return isinstance(action, MarkDown) or (
        isinstance(action, SetRole) and action.replacing is not None
    )


def next_action(
    state: RegistryState,
    view: ClusterView,
    dead_after_s: float,
    allowed: Callable[[Action], bool] = _always,
) -> Action | None:
    """The one step the leader takes now, or None when Raft and the registry agree. A repair
    that `allowed` holds back is passed over: the steps after it still happen (RAFT-17)."""
    wanted = {raft_id(n, state.members[n].raft): n for n in state.voters()}
    missing = set(wanted) - view.voters
    for member in sorted(missing & view.caught_up):
        return RaftChange("add", member)
    if view.self_member not in wanted:
        heirs = sorted((view.synced & set(wanted)) - {view.self_member})
        return StepDown(heirs[0]) if heirs else None
    if not missing & view.connected:  # a voter on its way in is added before any goes out
        for member in sorted(view.voters - set(wanted) - {view.self_member}):
            return RaftChange("rem", member)

    target = state.target_voters
    live_learners = [  # RAFT-11: only learners the registry's electors allow (REG-13)
        n
        for n in state.learners()
        if raft_id(n, state.members[n].raft) in view.connected and state.eligible(n)
    ]
    dead_voters = [
        node
        for member, node in sorted(wanted.items())
        if member != view.self_member
        and member not in view.connected
        and view.now - view.down_since.get(member, view.now) >= dead_after_s
    ]
    voters = len(wanted)
    if live_learners and voters < target:
        return SetRole(live_learners[0], "voter")
    if live_learners and voters <= target:
        for dead in dead_voters:
            promote = SetRole(live_learners[0], "voter", replacing=dead)
            if allowed(promote):
                return promote
    if voters > target:
        for dead in dead_voters:
            demote = SetRole(dead, "learner", replacing=dead)
            if allowed(demote):
                return demote
    if voters > target and not dead_voters:  # a replaced voter came back, or a lower target
        others = [(m, n) for m, n in wanted.items() if m != view.self_member]
        _, node = max(
            others,
            key=lambda mn: (mn[0] not in view.voters, view.last_down.get(mn[0], -1.0), mn[1]),
        )
        return SetRole(node, "learner")
    return _dead_service(state, view, dead_after_s, allowed)


def _dead_service(
    state: RegistryState,
    view: ClusterView,
    dead_after_s: float,
    allowed: Callable[[Action], bool],
) -> Action | None:
    """RAFT-16: the first service, in name order, of a member (voter or learner, never this
    leader) unreachable for the dead time that is not marked down yet, of the first such
    member `allowed` lets through."""
    for node, held in sorted(state.members.items()):
        member = raft_id(node, held.raft)
        if member == view.self_member or member in view.connected:
            continue
        if view.now - view.down_since.get(member, view.now) < dead_after_s:
            continue
        for name, service in sorted(state.services.items()):
            if name.startswith(f"{node}/") and service.health != DOWN:
                mark = MarkDown(name, service.endpoints, node)
                if allowed(mark):
                    return mark
                break  # the member's other services wait for the same approval
    return None


REPLACE_VOTER = "replace_voter"  # the kinds of repair the leader asks its gate about (RAFT-17)
MOVE_SERVICES = "move_services"


def repair_description(action: Action, dead_after_s: float) -> tuple[str, str, str, str]:
    """A repair's (key, kind, subject, summary) for the gate: the key names the repair, not
    the step, so both steps of a voter's replacement, and every service of one dead member,
    are one approval."""
    dead_for = f"{dead_after_s:g} s"
    if isinstance(action, MarkDown):
        return (
            f"{MOVE_SERVICES}:{action.member}",
            MOVE_SERVICES,
            action.member,
            f"mark the services of {action.member}, unreachable for over {dead_for}, down, so "
            "that its memory shards are re-replicated on live holders",
        )
    assert isinstance(action, SetRole) and action.replacing is not None
    return (
        f"{REPLACE_VOTER}:{action.replacing}",
        REPLACE_VOTER,
        action.replacing,
        f"replace registry voter {action.replacing}, unreachable for over {dead_for}, by a "
        "live learner",
    )
