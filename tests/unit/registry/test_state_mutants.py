"""Rules of the pure registry (fpai_node/registry/state.py, specs/0005-registry.md) that a
mutation pass (issue 23) found unpinned: the limits of REG-2 and of text values, the reasons
REG-6 names, what a member may do to its own entries (REG-16), tables that hold several models
and holders (REG-7, REG-9), what a rejoin updates (REG-13), and what a snapshot reader refuses
or accepts (REG-11)."""

from typing import Any

import pytest

from fpai_node.registry.state import (
    MAX_COMMAND_BYTES,
    Member,
    RegistryState,
    Result,
    apply,
    encode_command,
)
from fpai_node.testing.registry_script import ADDRESSES, T0, A, B, C, command, run
from fpai_node.wire import codec


def join(node: str, n: int, by: str | None = None, **addresses: str) -> bytes:
    args: dict[str, codec.Value] = {"node_id": node, **ADDRESSES, **addresses}
    return encode_command("member.join", args, key=n.to_bytes(16, "big"), by=by or node, at_ms=T0)


def one_voter_and_learner_b() -> RegistryState:
    """A is the only voter; B a member that is not one (REG-16 applies to it)."""
    state, results = run(
        command("param.set", 1, key="registry.voters", value=1), join(A, 2), join(B, 3)
    )
    assert results == ["ok"] * 3 and state.voters() == [A] and state.learners() == [B]
    return state


# --- REG-1, REG-2: the command itself ----------------------------------------------------------


def test_a_command_of_exactly_65536_bytes_is_applied() -> None:
    """REG-2: a command is *at most* 65,536 bytes."""
    overhead = len(command("param.set", 1, key="k", value=bytes(60_000))) - 60_000
    largest = command("param.set", 1, key="k", value=bytes(MAX_COMMAND_BYTES - overhead))
    assert len(largest) == MAX_COMMAND_BYTES
    assert apply(RegistryState(), largest).result == Result("ok")
    one_more = command("param.set", 1, key="k", value=bytes(MAX_COMMAND_BYTES - overhead + 1))
    assert apply(RegistryState(), one_more).result == Result("rejected", "oversized")


def test_a_command_stamped_at_time_zero_is_valid() -> None:
    """REG-1: `at` is a uint, so 0 is a valid command time."""
    applied = apply(RegistryState(), command("param.set", 1, at=0, key="k", value=1))
    assert applied.result == Result("ok") and dict(applied.state.parameters) == {"k": 1}


# --- REG-6: the reason of each rejection --------------------------------------------------------


def test_sync_with_arguments_is_rejected_as_bad_args() -> None:
    """REG-14: `sync {}` takes no argument; any makes it `bad_args`."""
    assert apply(RegistryState(), command("sync", 1, extra=1)).result == Result(
        "rejected", "bad_args"
    )


def test_set_role_of_a_node_that_is_no_member_is_not_member() -> None:
    """REG-7: `member.set_role` of an absent node is rejected `not_member`."""
    state, _ = run(join(A, 1))
    assert apply(state, command("member.set_role", 2, node_id=B, role="voter")).result == Result(
        "rejected", "not_member"
    )


# --- text values and service endpoints ----------------------------------------------------------


def test_text_values_are_1_to_255_utf8_bytes() -> None:
    """specs/0005 section 3: text values are UTF-8 strings of 1..255 bytes (bytes, not
    characters: 127 two-byte characters and one more byte is the longest)."""
    longest = "é" * 127 + "a"
    assert len(longest.encode()) == 255
    state, results = run(
        command("param.set", 1, key="x" * 255, value=1),
        command("param.set", 2, key=longest, value=2),
        command("param.set", 3, key="x" * 256, value=3),
        command("param.set", 4, key=longest + "a", value=4),
    )
    assert results == ["ok", "ok", "rejected:bad_key", "rejected:bad_key"]
    assert dict(state.parameters) == {"x" * 255: 1, longest: 2}


@pytest.mark.parametrize(
    ("endpoints", "result"),
    [
        ([], "ok"),
        (["h"], "ok"),
        (["h" * 255, "a:1"], "ok"),
        ([""], "rejected:bad_endpoints"),
        (["h" * 256], "rejected:bad_endpoints"),
        (["a:1", 5], "rejected:bad_endpoints"),
        ([b"a:1"], "rejected:bad_endpoints"),
        ("a:1", "rejected:bad_endpoints"),  # a string is not a list of them
        ({"a": "b"}, "rejected:bad_endpoints"),
    ],
)
def test_service_endpoints_are_a_list_of_text_values(endpoints: Any, result: str) -> None:
    """REG-8: `endpoints` is an array of text values (1..255 UTF-8 bytes each); anything else is
    `bad_endpoints` (and `apply` never raises, REG-3)."""
    state, results = run(command("service.set", 1, name="api", endpoints=endpoints, health="ok"))
    assert results == [result]
    if result == "ok":
        assert state.services["api"].endpoints == tuple(endpoints)
    else:
        assert state.services == {}


# --- REG-16: what a member that is not a voter may do to its own entries ------------------------


def test_a_member_unserves_its_own_models_and_removes_its_own_services() -> None:
    """REG-16: a member may `model.unserve` itself and `service.remove` its own `<id>/...`
    services, not another's."""
    state = one_voter_and_learner_b()
    state, results = run(
        command("model.serve", 4, by=B, model_id="m", node_id=B),
        command("service.set", 5, by=B, name=f"{B}/api", endpoints=["h:1"], health="ok"),
        command("service.set", 6, by=A, name=f"{A}/api", endpoints=["h:2"], health="ok"),
        command("model.serve", 7, by=A, model_id="m", node_id=A),
        state=state,
    )
    assert results == ["ok"] * 4
    state, results = run(
        command("model.unserve", 8, by=B, model_id="m", node_id=A),
        command("service.remove", 9, by=B, name=f"{A}/api"),
        command("model.unserve", 10, by=B, model_id="m", node_id=B),
        command("service.remove", 11, by=B, name=f"{B}/api"),
        state=state,
    )
    assert results == ["rejected:not_allowed"] * 2 + ["ok"] * 2
    assert state.models == {"m": frozenset({A})} and list(state.services) == [f"{A}/api"]


# --- REG-7, REG-9: tables with several models and holders ---------------------------------------


def test_every_node_that_serves_a_model_is_listed() -> None:
    """REG-9: `model.serve` adds the node to the model's entry; it replaces no one."""
    state, results = run(
        join(A, 1),
        join(B, 2),
        command("model.serve", 3, model_id="m", node_id=A),
        command("model.serve", 4, model_id="m", node_id=B),
        command("model.serve", 5, model_id="other", node_id=B),
    )
    assert results == ["ok"] * 5
    assert state.models == {"m": frozenset({A, B}), "other": frozenset({B})}
    snapshot = state.to_value()
    assert isinstance(snapshot, dict)
    assert snapshot["models"] == {"m": sorted([A, B]), "other": [B]}


def test_unserving_one_model_leaves_the_other_models_alone() -> None:
    """REG-9: `model.unserve` removes the node from that model only."""
    state, _ = run(
        join(A, 1),
        join(B, 2),
        command("model.serve", 3, model_id="m", node_id=A),
        command("model.serve", 4, model_id="other", node_id=A),
        command("model.serve", 5, model_id="third", node_id=B),
    )
    state, results = run(command("model.unserve", 6, model_id="m", node_id=A), state=state)
    assert results == ["ok"]
    assert state.models == {"other": frozenset({A}), "third": frozenset({B})}


def test_a_member_that_leaves_is_removed_from_models_others_still_serve() -> None:
    """REG-7: `member.remove` removes the node from every model entry; entries others hold
    stay, with the others; entries only it held go."""
    state, _ = run(
        join(A, 1),
        join(B, 2),
        join(C, 3),
        command("model.serve", 4, model_id="shared", node_id=A),
        command("model.serve", 5, model_id="shared", node_id=B),
        command("model.serve", 6, model_id="own", node_id=A),
        command("model.serve", 7, model_id="elsewhere", node_id=C),
    )
    state, results = run(command("member.remove", 8, node_id=A), state=state)
    assert results == ["ok"]
    assert state.models == {"shared": frozenset({B}), "elsewhere": frozenset({C})}


# --- REG-13: joins ------------------------------------------------------------------------------


def test_a_rejoin_takes_all_three_new_addresses() -> None:
    """REG-13: `member.join` of a member replaces its three addresses (peer included) and keeps
    its role and joined_at."""
    state, _ = run(join(A, 1), join(B, 2))
    moved = {"peer": "10.0.0.2:7100", "api": "10.0.0.2:8100", "raft": "10.0.0.2:7200"}
    state, results = run(
        command("member.join", 3, at=T0 + 5, by=B, node_id=B, **moved), state=state
    )
    assert results == ["ok"]
    assert state.members[B] == Member("learner", moved["peer"], moved["api"], moved["raft"], T0)


@pytest.mark.parametrize("value", [None, 7, "x", {"a": [B]}])
def test_electors_set_to_anything_but_a_list_make_nobody_eligible(value: codec.Value) -> None:
    """REG-13: a node is eligible while `registry.electors` is absent or an array listing it;
    any other value, nil included, makes no node eligible (a mistake never opens the seats)."""
    state, _ = run(join(A, 1), join(B, 2))
    assert state.eligible(B)
    state, results = run(command("param.set", 3, key="registry.electors", value=value), state=state)
    assert results == ["ok"] and "registry.electors" in state.parameters
    assert not state.eligible(A) and not state.eligible(B)


# --- REG-11: snapshots --------------------------------------------------------------------------


def test_the_empty_registry_round_trips_through_a_snapshot() -> None:
    """REG-11: `index` is a uint: the state before any command (index 0) is a snapshot too."""
    empty = RegistryState()
    assert RegistryState.from_value(codec.decode(codec.encode(empty.to_value()))) == empty


def test_a_member_without_relayed_by_is_read_as_not_relayed() -> None:
    """REG-11: a reader SHOULD accept a member without `relayed_by` (written before REG-13
    relays) as one whose `relayed_by` is the empty string."""
    state, _ = run(join(A, 1), join(B, 2))
    old = state.to_value()
    assert isinstance(old, dict) and isinstance(old["members"], dict)
    for member in old["members"].values():
        assert isinstance(member, dict)
        del member["relayed_by"]
    restored = RegistryState.from_value(old)
    assert restored == state
    assert {m.relayed_by for m in restored.members.values()} == {""}


def _member(value: dict[str, Any]) -> dict[str, Any]:
    return value["members"][A]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "damage",
    [
        lambda v: v.update(members=[]),  # a table that is no map at all
        lambda v: v["members"].update({"not-a-node": v["members"].pop(A)}),
        lambda v: _member(v).update(extra=1),
        lambda v: _member(v).pop("role"),
        lambda v: _member(v).update(joined_at="yesterday"),
        lambda v: _member(v).update(role="king"),
        lambda v: _member(v).update(relayed_by="not-a-node"),
        lambda v: v["services"]["api"].update(extra=1),
        lambda v: v["services"]["api"].update(health=1),
        lambda v: v["services"]["api"].update(endpoints="h:1"),
        lambda v: v["applied"].append([bytes(16), 1, 2]),
        lambda v: v["applied"].append(b"ab"),
    ],
)
def test_a_snapshot_with_one_damaged_entry_is_refused_whole(damage: Any) -> None:
    """REG-11: a snapshot that is not exactly the REG-11 map, down to each member, service and
    applied pair, is refused as a whole (ValueError), never half restored."""
    state, _ = run(
        join(A, 1), command("service.set", 2, name="api", endpoints=["h:1"], health="ok")
    )
    value = codec.decode(codec.encode(state.to_value()))
    damage(value)
    with pytest.raises(ValueError, match="not a registry snapshot"):
        RegistryState.from_value(value)
