"""The leader's membership policy (RAFT-10..RAFT-12, RAFT-16): one step at a time, adds before
removes, the voter target kept, dead voters replaced by live learners and never without one,
dead members' services marked down."""

import os
from collections.abc import Callable

from fpai_node.identity import NodeKey
from fpai_node.registry.membership import (
    MOVE_SERVICES,
    REPLACE_VOTER,
    Action,
    ClusterView,
    MarkDown,
    RaftChange,
    SetRole,
    StepDown,
    is_repair,
    next_action,
    repair_description,
)
from fpai_node.registry.raft_wire import raft_id
from fpai_node.registry.state import RegistryState, apply, encode_command

NODES = sorted(NodeKey.from_seed(bytes([i]) * 32).node_id for i in range(6))
A, B, C, D, E, F = NODES
DEAD_AFTER = 60.0


def member(node: str) -> str:
    return raft_id(node, f"127.0.0.1:{7200 + NODES.index(node)}")


def state(voters: list[str], learners: list[str] | None = None, target: int = 3) -> RegistryState:
    s = RegistryState()
    commands = [("param.set", {"key": "registry.voters", "value": target})]
    for role, nodes in (("voter", voters), ("learner", learners or [])):
        for node in nodes:
            address = member(node).split("@")[1]
            commands.append(
                (
                    "member.add",
                    {"node_id": node, "role": role, "peer": "p:1", "api": "a:1", "raft": address},
                )
            )
    for n, (op, args) in enumerate(commands):
        key = n.to_bytes(16, "big")
        s = apply(s, encode_command(op, args, key=key, by=voters[0], at_ms=1)).state
    return s


def view(
    voters: list[str],
    connected: list[str],
    down_since: dict[str, float] | None = None,
    now: float = 1000.0,
    me: str = A,
    caught_up: list[str] | None = None,
) -> ClusterView:
    """By default every connected node that is not a voter is a learner holding every commit."""
    learners = [n for n in connected if n not in voters] if caught_up is None else caught_up
    return ClusterView(
        member(me),
        frozenset(member(n) for n in voters),
        frozenset(member(n) for n in connected),
        {member(n): t for n, t in (down_since or {}).items()},
        now,
        frozenset(member(n) for n in learners),
    )


def test_nothing_to_do_when_raft_and_registry_agree() -> None:
    assert next_action(state([A, B, C]), view([A, B, C], [B, C]), DEAD_AFTER) is None


def test_a_new_voter_is_added_once_it_follows_as_a_learner_with_every_commit() -> None:
    registry = state([A, B, C])
    assert next_action(registry, view([A, B], [B, C]), DEAD_AFTER) == RaftChange("add", member(C))
    assert next_action(registry, view([A, B], [B]), DEAD_AFTER) is None  # not connected
    behind = view([A, B], [B, C], caught_up=[])
    assert next_action(registry, behind, DEAD_AFTER) is None  # connected, not caught up


def test_nothing_is_removed_while_a_voter_waits_to_be_added() -> None:
    """D replaces C in the registry; until D can be added, C stays in Raft's configuration."""
    registry = state([A, B, D])
    waiting = view([A, B, C], [B, C, D], caught_up=[])
    assert next_action(registry, waiting, DEAD_AFTER) is None


def test_adds_come_before_removes() -> None:
    """A replacement joins Raft before the voter it replaces leaves: never fewer voters."""
    action = next_action(state([A, B, D]), view([A, B, C], [B, C, D]), DEAD_AFTER)
    assert action == RaftChange("add", member(D))
    action = next_action(state([A, B, D]), view([A, B, C, D], [B, C, D]), DEAD_AFTER)
    assert action == RaftChange("rem", member(C))


def test_a_leader_no_longer_a_voter_hands_over_to_a_synced_voter_that_stays() -> None:
    registry = state([B, C, D])
    synced = ClusterView(
        member(A),
        frozenset(member(n) for n in (A, B, C, D)),
        frozenset(member(n) for n in (B, C, D)),
        {},
        1000.0,
        frozenset(),
        frozenset(member(n) for n in (C, D)),
    )
    assert next_action(registry, synced, DEAD_AFTER) == StepDown(member(C))
    assert next_action(registry, view([A, B, C, D], [B, C, D]), DEAD_AFTER) is None  # none synced


def test_a_leaving_leader_never_hands_over_to_another_voter_leaving() -> None:
    """A and B leave together: A must hand over to C, the voter that stays, not to B."""
    registry = state([C, D])
    both_synced = ClusterView(
        member(A),
        frozenset(member(n) for n in (A, B, C)),
        frozenset(member(n) for n in (B, C)),
        {},
        1000.0,
        frozenset(),
        frozenset(member(n) for n in (B, C)),
    )
    assert next_action(registry, both_synced, DEAD_AFTER) == StepDown(member(C))


def test_a_missing_voter_that_never_connects_does_not_block_removals() -> None:
    registry = state([A, B, D])  # D was made a voter but never came
    stuck = view([A, B, C], [B], caught_up=[])
    assert next_action(registry, stuck, DEAD_AFTER) == RaftChange("rem", member(C))


def test_missing_voters_are_filled_from_connected_learners() -> None:
    action = next_action(state([A, B], [D, C]), view([A, B], [B, D]), DEAD_AFTER)
    assert action == SetRole(D, "voter")  # C is a learner too, but not connected
    assert next_action(state([A, B], [C]), view([A, B], [B]), DEAD_AFTER) is None


def test_a_dead_voter_is_replaced_only_after_the_dead_time_and_only_by_a_live_learner() -> None:
    registry = state([A, B, C], [D])
    early = view([A, B, C], [B, D], down_since={C: 1000.0 - DEAD_AFTER + 1})
    assert next_action(registry, early, DEAD_AFTER) is None
    late = view([A, B, C], [B, D], down_since={C: 1000.0 - DEAD_AFTER})
    assert next_action(registry, late, DEAD_AFTER) == SetRole(D, "voter", replacing=C)
    no_learner = view([A, B, C], [B], down_since={C: 0.0})
    assert next_action(state([A, B, C], [D]), no_learner, DEAD_AFTER) is None


def test_the_dead_voter_is_demoted_once_its_replacement_votes() -> None:
    registry = state([A, B, C, D])  # D was promoted: four voters, target three
    action = next_action(registry, view([A, B, C, D], [B, D], down_since={C: 0.0}), DEAD_AFTER)
    assert action == SetRole(C, "learner", replacing=C)


def test_the_voter_set_never_shrinks_below_the_target_by_demotion() -> None:
    """Two dead voters, one learner: promote it, demote one dead voter, never the second."""
    registry = state([A, B, C], [D])
    dead = {B: 0.0, C: 0.0}
    promote = SetRole(D, "voter", replacing=B)
    assert next_action(registry, view([A, B, C], [D], dead), DEAD_AFTER) == promote
    registry = state([A, B, C, D])
    demote = SetRole(B, "learner", replacing=B)
    assert next_action(registry, view([A, B, C, D], [D], dead), DEAD_AFTER) == demote
    registry = state([A, C, D], [B])
    assert next_action(registry, view([A, C, D], [D], {C: 0.0}), DEAD_AFTER) is None


def test_the_leader_itself_is_never_declared_dead() -> None:
    registry = state([A, B, C], [D])
    action = next_action(registry, view([A, B, C], [B, C, D], down_since={A: 0.0}), DEAD_AFTER)
    assert action is None


def test_a_target_of_five_promotes_up_to_five() -> None:
    registry = state([A, B, C], [D, E, F], target=5)
    assert next_action(registry, view([A, B, C], [B, C, D, E, F]), DEAD_AFTER) == SetRole(
        D, "voter"
    )


def test_a_replaced_voter_that_comes_back_is_the_one_demoted() -> None:
    """C was replaced by D (already counted by Raft) but returned before its demotion: four
    live voters, target three; C was down most recently."""
    registry = state([A, B, C, D])
    back = ClusterView(
        member(A),
        frozenset(member(n) for n in (A, B, C, D)),
        frozenset(member(n) for n in (B, C, D)),
        {},
        1000.0,
        frozenset(),
        frozenset(),
        {member(C): 990.0, member(B): 100.0},
    )
    assert next_action(registry, back, DEAD_AFTER) == SetRole(C, "learner")


def test_lowering_the_target_demotes_voters_but_never_the_leader() -> None:
    registry = state([A, B, C, D, E], target=3)
    every = view([A, B, C, D, E], [B, C, D, E])
    action = next_action(registry, every, DEAD_AFTER)
    assert isinstance(action, SetRole) and action.role == "learner" and action.node_id != A


def test_a_voter_raft_does_not_count_yet_is_demoted_first() -> None:
    registry = state([A, B, C, D])
    pending = view([A, B, C], [B, C, D], caught_up=[])  # D promoted, not added yet
    assert next_action(registry, pending, DEAD_AFTER) == SetRole(D, "learner")


def test_only_an_elector_is_promoted() -> None:
    """REG-13, RAFT-11: with registry.electors set, the leader fills a free seat only from the
    learners it lists, and a dead voter's seat the same way."""
    s = state([A, B], [C, D])
    electors = encode_command(
        "param.set", {"key": "registry.electors", "value": [A, B, D]}, key=b"e" * 16, by=A, at_ms=1
    )
    s = apply(s, electors).state
    assert next_action(s, view([A, B], [B, C, D]), DEAD_AFTER) == SetRole(D, "voter")
    assert next_action(s, view([A, B], [B, C]), DEAD_AFTER) is None  # C may not vote


def with_services(registry: RegistryState, *services: tuple[str, str]) -> RegistryState:
    """`registry` with services (name, health) set by their own members (REG-16)."""
    for name, health in services:
        args = {"name": name, "endpoints": ["p:1"], "health": health}
        command = encode_command("service.set", args, key=os.urandom(16), by=A, at_ms=1)
        registry = apply(registry, command).state
    return registry


def test_a_dead_members_services_are_marked_down_after_the_dead_time() -> None:
    """RAFT-16: learner or voter, one service per step, never the leader's own, never twice."""
    registry = with_services(
        state([A, B, C], [D]), (f"{D}/memory", "ok"), (f"{D}/x", "ok"), (f"{A}/memory", "ok")
    )
    alive = [B, C]
    early = view([A, B, C], alive, down_since={D: 1000.0 - DEAD_AFTER + 1})
    assert next_action(registry, early, DEAD_AFTER) is None
    late = view([A, B, C], alive, down_since={D: 1000.0 - DEAD_AFTER})
    assert next_action(registry, late, DEAD_AFTER) == MarkDown(f"{D}/memory", ("p:1",), D)
    marked = with_services(registry, (f"{D}/memory", "down"))
    assert next_action(marked, late, DEAD_AFTER) == MarkDown(f"{D}/x", ("p:1",), D)
    assert next_action(with_services(marked, (f"{D}/x", "down")), late, DEAD_AFTER) is None
    back = view([A, B, C], [B, C, D], down_since={})
    assert next_action(registry, back, DEAD_AFTER) is None  # a connected member keeps its own
    own = view([A, B, C], alive, down_since={A: 0.0, D: 1000.0 - DEAD_AFTER + 1})
    assert next_action(registry, own, DEAD_AFTER) is None


def test_voter_steps_come_before_marking_services_down() -> None:
    registry = with_services(state([A, B, C], [D]), (f"{C}/memory", "ok"))
    dead_voter = view([A, B, C], [B, D], down_since={C: 0.0})
    assert next_action(registry, dead_voter, DEAD_AFTER) == SetRole(D, "voter", replacing=C)


def test_repairs_wait_for_the_gate_and_the_steps_after_them_still_happen() -> None:
    """RAFT-17: a held voter replacement does not hold back marking another member's
    services down; a held service of one member holds its other services, not another
    member's; both steps of a replacement are one repair (one key)."""
    registry = with_services(
        state([A, B, C], [D, E]), (f"{C}/memory", "ok"), (f"{E}/memory", "ok"), (f"{E}/x", "ok")
    )
    dead = view([A, B, C], [B, D], down_since={C: 0.0, E: 0.0})
    asked: list[tuple[str, str]] = []

    def holding(kinds: set[str]) -> Callable[[Action], bool]:
        def allowed(action: Action) -> bool:
            key, kind, subject, _ = repair_description(action, DEAD_AFTER)
            asked.append((kind, subject))
            assert key == f"{kind}:{subject}"
            return kind not in kinds

        return allowed

    held_voter = next_action(registry, dead, DEAD_AFTER, holding({REPLACE_VOTER}))
    assert held_voter == MarkDown(f"{C}/memory", ("p:1",), C)
    assert asked == [(REPLACE_VOTER, C), (MOVE_SERVICES, C)]
    asked.clear()
    assert next_action(registry, dead, DEAD_AFTER, holding({REPLACE_VOTER, MOVE_SERVICES})) is None
    assert asked == [(REPLACE_VOTER, C), (MOVE_SERVICES, C), (MOVE_SERVICES, E)]
    promoted = state([A, B, C, D])
    demote = next_action(promoted, view([A, B, C, D], [B, D], {C: 0.0}), DEAD_AFTER, holding(set()))
    assert demote == SetRole(C, "learner", replacing=C)
    assert repair_description(demote, DEAD_AFTER)[0] == f"{REPLACE_VOTER}:{C}"
    assert not is_repair(SetRole(D, "voter")) and is_repair(demote)


def test_matching_raft_to_the_registry_never_asks_the_gate() -> None:
    """Filling a free seat and removing a member Raft still counts are not repairs."""

    def refuse(action: Action) -> bool:
        raise AssertionError(f"asked about {action}")

    assert next_action(state([A, B], [D]), view([A, B], [B, D]), DEAD_AFTER, refuse) == SetRole(
        D, "voter"
    )
    stuck = view([A, B, C], [B], caught_up=[])
    assert next_action(state([A, B, D]), stuck, DEAD_AFTER, refuse) == RaftChange("rem", member(C))
