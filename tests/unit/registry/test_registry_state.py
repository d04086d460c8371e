"""The pure registry: every command's effect, idempotency, and totality over any bytes."""

from dataclasses import replace
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fpai_node.identity import NodeKey
from fpai_node.registry.dedup import DedupWindow
from fpai_node.registry.state import (
    DEDUP_RETENTION_MS,
    MAX_COMMAND_BYTES,
    MAX_MEMBERS,
    MEMBER_PARAMETERS,
    MEMBER_RELAYS,
    MEMBER_SERVICES,
    Member,
    RegistryState,
    Result,
    apply,
    encode_command,
)
from fpai_node.testing.registry_script import ADDRESSES, T0, A, B, command, run
from fpai_node.wire import codec


def add(node: str, n: int, role: str = "voter") -> bytes:
    return command("member.add", n, node_id=node, role=role, **ADDRESSES)


def join(node: str, n: int, **addresses: str) -> bytes:
    return command("member.join", n, node_id=node, **{**ADDRESSES, **addresses})


def test_members_join_change_role_and_leave() -> None:
    state, results = run(
        add(A, 1), add(B, 2, "learner"), command("member.set_role", 3, node_id=B, role="voter")
    )
    assert results == ["ok", "ok", "ok"]
    assert state.members[A] == Member("voter", *ADDRESSES.values(), T0)
    assert state.voters() == sorted([A, B])
    state, results = run(command("member.remove", 4, node_id=A), state=state)
    assert results == ["ok"] and list(state.members) == [B]


def test_rejections_leave_the_state_unchanged_but_count() -> None:
    """REG-3: bad commands are `rejected` and leave the tables as they were; REG-5: each one
    still counts in the index."""
    state, _ = run(add(A, 1))
    for bad in (
        add(A, 2),  # already a member
        command("member.remove", 3, node_id=B),
        command("member.set_role", 4, node_id=A, role="king"),
        command("model.serve", 5, model_id="m", node_id=B),  # B is not a member
        command("param.delete", 6, key="absent"),
        command("service.remove", 7, name="absent"),
        command("member.add", 8, node_id="not-a-node", role="voter", peer="p", api="a", raft="r"),
        command("member.join", 10, node_id=B, peer="p", api="a"),  # no raft address
        command("sync", 11, extra=1),
        command("param.set", 9, key="k"),  # missing value
    ):
        after = apply(state, bad)
        assert after.result.status == "rejected", bad
        assert after.state.members == state.members and after.state.parameters == state.parameters
        assert after.state.index == state.index + 1


def test_models_services_and_parameters() -> None:
    state, results = run(
        add(A, 1),
        add(B, 2),
        command("model.serve", 3, model_id="gemma", node_id=A),
        command("model.serve", 4, model_id="gemma", node_id=B),
        command("model.unserve", 5, model_id="gemma", node_id=A),
        command("service.set", 6, name="api", endpoints=["a:1", "b:2"], health="ok"),
        command("param.set", 7, key="split.treasury", value=60),
        command("param.set", 8, key="nested", value={"b": [1, b"x"], "a": None}),
    )
    assert set(results) == {"ok"}
    assert state.models == {"gemma": frozenset({B})}
    assert state.services["api"].endpoints == ("a:1", "b:2")
    assert state.parameters["split.treasury"] == 60
    state, _ = run(command("member.remove", 9, node_id=B), state=state)
    assert state.models == {}  # a member that leaves serves nothing


def test_a_retried_command_applies_once() -> None:
    """REG-5: a duplicate changes nothing but still counts as an applied entry."""
    write = command("param.set", 1, key="k", value=1)
    state, results = run(write, write, write)
    assert results == ["ok", "duplicate", "duplicate"] and state.parameters["k"] == 1
    assert state.index == 3


def test_idempotency_keys_expire_by_command_time() -> None:
    state, _ = run(command("param.set", 1, key="k", value=1))
    later = T0 + DEDUP_RETENTION_MS + 1
    state, _ = run(command("param.set", 2, at=later, key="k", value=2), state=state)
    assert not state.applied.holds((1).to_bytes(16, "big"), T0)  # forgotten deterministically
    assert state.applied.holds((2).to_bytes(16, "big"), later)
    assert len(state.applied) == 1


def test_malformed_commands_are_rejected_not_raised() -> None:
    """REG-1, REG-3: bytes that are not a command with REG-1's keys and types are rejected
    with a reason, never raised."""
    for raw in (
        b"",
        b"\xc1",
        codec.encode([1, 2]),
        codec.encode({"op": "param.set"}),
        b"\x00" * (MAX_COMMAND_BYTES + 1),
        encode_command("nope", {}, key=bytes(16), by=A, at_ms=T0),
        encode_command("param.set", {"key": "k", "value": 1}, key=bytes(15), by=A, at_ms=T0),
    ):
        result = apply(RegistryState(), raw).result
        assert result.status == "rejected" and result.reason


C = NodeKey.from_seed(bytes([2]) * 32).node_id
D = NodeKey.from_seed(bytes([3]) * 32).node_id


def test_only_the_first_joiner_votes_and_the_rest_learn() -> None:
    """REG-13: seats are the leader's to fill from connected learners (RAFT-11); a join, even
    with every seat free, never takes one, so a node id nobody runs can never hold a seat."""
    state, results = run(join(A, 1), join(B, 2), join(C, 3), join(D, 4))
    assert results == ["ok"] * 4
    assert state.voters() == [A] and state.learners() == sorted([B, C, D])
    assert state.target_voters == 3


def test_the_voter_target_is_a_registry_parameter() -> None:
    state, _ = run(command("param.set", 1, key="registry.voters", value=5))
    assert state.target_voters == 5
    for bad in (2, 9, "3", None):  # not an odd count we support: the default applies
        state, _ = run(command("param.set", 1, key="registry.voters", value=bad))
        assert state.target_voters == 3


def test_joining_again_keeps_the_role_and_takes_new_addresses() -> None:
    state, _ = run(join(A, 1), join(B, 2), command("member.set_role", 3, node_id=B, role="voter"))
    state, results = run(join(B, 4, raft="10.0.0.2:7200", api="10.0.0.2:8100"), state=state)
    assert results == ["ok"]
    member = state.members[B]
    assert (member.role, member.raft, member.api) == ("voter", "10.0.0.2:7200", "10.0.0.2:8100")
    assert member.joined_at_ms == T0  # the first join's time, not the latest


def test_sync_is_a_barrier_that_changes_and_remembers_nothing() -> None:
    state, _ = run(join(A, 1))
    barrier = command("sync", 2)
    after, results = run(barrier, barrier, state=state)
    assert results == ["ok", "ok"]  # never `duplicate`: nothing was remembered
    assert after.index == state.index + 2
    assert after.applied == state.applied and after.members == state.members


def test_a_snapshot_restores_the_same_state() -> None:
    state, _ = run(
        join(A, 1),
        join(B, 2),
        command("model.serve", 3, model_id="m", node_id=B),
        command("service.set", 4, name="api", endpoints=["a:1"], health="ok"),
        command("param.set", 5, key="nested", value={"b": [1, b"x"], "a": None}),
    )
    restored = RegistryState.from_value(codec.decode(codec.encode(state.to_value())))
    assert restored == state
    next_command = command("param.set", 6, key="k", value=1)
    assert apply(restored, next_command) == apply(state, next_command)


@pytest.mark.parametrize(
    "damage",
    [
        lambda v: {**v, "index": -1},
        lambda v: {**v, "members": {"not-a-node": {}}},
        lambda v: {**v, "models": {"m": []}},
        lambda v: {**v, "applied": [[b"short", 1]]},
        lambda v: {k: x for k, x in v.items() if k != "services"},
        lambda v: [v],
    ],
)
def test_a_damaged_snapshot_is_refused_whole(damage: Any) -> None:
    state, _ = run(join(A, 1), command("model.serve", 2, model_id="m", node_id=A))
    with pytest.raises(ValueError, match="not a registry snapshot"):
        RegistryState.from_value(damage(state.to_value()))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_apply_is_total_over_any_bytes(raw: bytes) -> None:
    """REG-3: `apply` accepts any byte string; REG-5: every one counts in the index."""
    applied = apply(RegistryState(), raw)
    assert applied.result.status in ("ok", "rejected")
    assert applied.state.index == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["add", "serve", "param", "retry", "remove"]), max_size=30))
def test_replicas_applying_the_same_log_have_byte_identical_snapshots(ops: list[str]) -> None:
    """REG-3, REG-11: `apply` is a pure function of its inputs: the same log gives the same
    bytes."""
    log: list[bytes] = []
    for n, op in enumerate(ops, start=10):
        log.append(
            {
                "add": add(B, n),
                "serve": command("model.serve", n, model_id="m", node_id=B),
                "param": command("param.set", n, key=f"k{n % 3}", value=n),
                "retry": log[-1] if log else add(A, n),
                "remove": command("member.remove", n, node_id=B),
            }[op]
        )
    first, _ = run(*log)
    second, _ = run(*log)
    assert codec.encode(first.to_value()) == codec.encode(second.to_value())
    assert first.encode() == codec.encode(first.to_value())  # the snapshot writer's fast path


_arg_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=8)
    | st.binary(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.text(max_size=6), _arg_values, max_size=4),
    st.integers(-(2**63), 2**64 - 1),
)
def test_a_command_is_encoded_as_the_canonical_map_of_its_fields(
    args: dict[str, Any], at: int
) -> None:
    """REG-1: `encode_command` walks only `args`; its bytes are `codec.encode` of the map."""
    fields = {"args": args, "at": at, "by": A, "id": bytes(16), "op": "param.set"}
    expected = codec.encode(fields)
    assert encode_command("param.set", args, key=bytes(16), by=A, at_ms=at) == expected


@pytest.mark.parametrize("at", [2**64, -(2**63) - 1, 1.0, True])
def test_a_command_without_a_canonical_encoding_is_refused(at: Any) -> None:
    with pytest.raises(codec.EncodeError):
        encode_command("param.set", {"key": "k", "value": 1}, key=bytes(16), by=A, at_ms=at)


@pytest.mark.parametrize(("height", "inner"), [(29, 1), (29, []), (30, 1), (30, {})])
def test_a_parameter_value_is_as_tall_as_a_snapshot_can_hold(height: int, inner: Any) -> None:
    """REG-10: a command holds its value two levels down, a snapshot three (REG-11), and
    CANON-6 allows 32: a value nested 30 deep would commit and make every snapshot fail. It is
    rejected; one nested 29 deep is kept, and the snapshot holds it."""
    value: Any = inner
    for _ in range(height):
        value = [value]
    state, results = run(command("param.set", 2, key="deep", value=value))
    if height > 29:
        assert results == ["rejected:bad_value"] and "deep" not in state.parameters
        with pytest.raises(codec.EncodeError):  # what the snapshot would have refused
            codec.encode({"state": {"parameters": {"deep": value}}})
    else:
        assert results == ["ok"] and state.parameters["deep"] == value
    snapshot = codec.encode_map({"state": state.encode(depth=1)})
    assert snapshot == codec.encode({"state": state.to_value()})
    assert codec.decode(snapshot) is not None


def test_the_fast_encoding_refuses_what_the_canonical_one_refuses() -> None:
    """Encoded in parts, each part at its depth: a value too deep for a snapshot is refused as
    `codec.encode` of the whole refuses it (here put in place without `apply`)."""
    value: Any = 1
    for _ in range(30):
        value = [value]
    state = replace(RegistryState(), parameters=MappingProxyType({"deep": value}))
    assert state.encode() == codec.encode(state.to_value())
    with pytest.raises(codec.EncodeError, match="nesting deeper"):
        codec.encode({"state": state.to_value()})
    with pytest.raises(codec.EncodeError, match="nesting deeper"):
        state.encode(depth=1)


def test_the_fast_encoding_of_a_state_is_its_canonical_encoding() -> None:
    """`encode` packs the idempotency window without `codec.encode`'s walk: the bytes are the
    same, ids held at several `at` included (sorted by id, then at: REG-11)."""
    state, _ = run(join(A, 1), command("param.set", 2, key="nested", value={"b": [1], "a": None}))
    window = DedupWindow.of(
        [(bytes([i % 7]) * 16, T0 + (i * 37) % 50) for i in range(200)]
        + list(state.applied.pairs())
    )
    state = replace(state, applied=window)
    assert state.encode() == codec.encode(state.to_value())
    applied = codec.decode(state.encode())["applied"]  # type: ignore[index, call-overload]
    assert applied == sorted([key, at] for key, at in window.pairs())


def test_addresses_must_be_host_port() -> None:
    """A Raft address nobody can dial would break every node that reads it (RAFT-1)."""
    state, _ = run(join(A, 1))
    for name in ("raft", "peer", "api"):
        after = apply(state, join(B, 2, **{name: "no-port-here"}))
        assert after.result == Result("rejected", f"bad_{name}")
        assert B not in after.state.members
    for name in ("raft", "peer"):
        assert apply(state, join(B, 3, **{name: ""})).result == Result("rejected", f"bad_{name}")
    no_api = apply(state, join(B, 4, api=""))  # issue 14: a node with no client API (GOSSIP-4)
    assert no_api.result == Result("ok") and no_api.state.members[B].api == ""


def test_voters_administer_and_members_manage_themselves() -> None:
    """REG-16: B, a learner, may set its own parameters and leave, not promote itself, demote
    A, or set the federation's parameters."""
    state, _ = run(command("param.set", 1, key="registry.voters", value=1), join(A, 2), join(B, 3))
    assert state.learners() == [B]
    results = run(
        command("member.set_role", 4, by=B, node_id=B, role="voter"),
        command("member.set_role", 5, by=B, node_id=A, role="learner"),
        command("member.remove", 6, by=B, node_id=A),
        command("param.set", 7, by=B, key="registry.voters", value=3),
        command("member.add", 8, by=B, node_id=C, role="voter", **ADDRESSES),
        command("model.serve", 9, by=B, model_id="m", node_id=A),
        command("param.set", 10, by=B, key="motd", value="hi"),
        command("model.serve", 11, by=B, model_id="m", node_id=B),
        command("member.join", 12, by=B, node_id=A, **{**ADDRESSES, "raft": "10.0.0.9:1"}),
        command("member.join", 13, by=B, node_id=D, **ADDRESSES),
        command("param.set", 14, by=B, key=f"member.{B}.motd", value="hi"),
        command("param.set", 15, by=B, key=f"member.{A}.motd", value="hi"),
        command("service.set", 16, by=B, name=f"{B}/api", endpoints=["h:1"], health="ok"),
        command("service.set", 17, by=B, name="api", endpoints=["h:1"], health="ok"),
        command("member.remove", 18, by=B, node_id=B),
        state=state,
    )[1]
    refused = "rejected:not_allowed"
    assert results == [refused] * 7 + ["ok", refused, "ok", "ok", refused, "ok", refused, "ok"]


def test_a_member_keeps_a_bounded_number_of_entries_of_its_own() -> None:
    """Issue 13: any member could add parameters and services without bound, in every
    replica's memory."""
    state, _ = run(command("param.set", 1, key="registry.voters", value=1), join(A, 2), join(B, 3))
    at = 4
    for i in range(MEMBER_PARAMETERS):
        state = apply(
            state, command("param.set", at + i, by=B, key=f"member.{B}.k{i}", value=i)
        ).state
    at += MEMBER_PARAMETERS
    one_more = apply(state, command("param.set", at, by=B, key=f"member.{B}.more", value=0))
    assert one_more.result == Result("rejected", "not_allowed")
    replaced = apply(state, command("param.set", at + 1, by=B, key=f"member.{B}.k0", value=9))
    assert replaced.result == Result("ok")  # a change to one it holds is no new one
    freed = apply(state, command("param.delete", at + 2, by=B, key=f"member.{B}.k1")).state
    again = apply(freed, command("param.set", at + 3, by=B, key=f"member.{B}.more", value=0))
    assert again.result == Result("ok")
    for i in range(MEMBER_SERVICES + 1):
        name = f"{B}/s{i}"
        after = apply(
            state, command("service.set", at + 4 + i, by=B, name=name, endpoints=[], health="ok")
        )
        assert after.result == (
            Result("ok") if i < MEMBER_SERVICES else Result("rejected", "not_allowed")
        )
        state = after.state
    voter = apply(state, command("param.set", at + 30, by=A, key=f"member.{B}.more", value=1))
    assert voter.result == Result("ok")  # voters administer: no quota for them


def test_strangers_may_only_join_themselves() -> None:
    state, _ = run(join(A, 1))
    after, results = run(
        command("param.set", 2, by=C, key="k", value=1),
        command("member.join", 3, by=C, node_id=D, **ADDRESSES),
        command("member.join", 4, by=C, node_id=C, **ADDRESSES),
        state=state,
    )
    assert results == ["rejected:not_allowed", "rejected:not_allowed", "ok"]
    assert C in after.members and D not in after.members


def test_electors_say_who_may_hold_a_seat() -> None:
    """REG-13: with registry.electors set, only the node ids it lists are eligible for the
    seats the leader fills (RAFT-11); anything but a list makes nobody eligible."""
    electors = command("param.set", 1, key="registry.electors", value=[B])
    state, results = run(electors, join(A, 2), join(B, 3), join(C, 4))
    assert results == ["ok"] * 4
    assert state.voters() == [A] and state.learners() == sorted([B, C])
    assert not state.eligible(C) and state.eligible(B)
    garbage = apply(state, command("param.set", 5, key="registry.electors", value=7)).state
    assert not garbage.eligible(B)  # a mistake never opens the seats
    unset = apply(state, command("param.delete", 6, key="registry.electors")).state
    assert unset.eligible(C)


INVENTED = [NodeKey.from_seed(bytes([100 + i]) * 32).node_id for i in range(MEMBER_RELAYS + 1)]


def test_a_member_relays_a_bounded_number_of_joins_until_they_join_themselves() -> None:
    """Issue 13: a member relayed `member.join` for node ids it invented, without bound. A
    relayed newcomer counts against its relay until it joins itself (over its own Raft
    connection, RAFT-8), which an invented id never does; a voter's relays are not counted."""
    state, _ = run(join(A, 1), join(B, 2))
    relays = [join_by(B, node, 10 + i) for i, node in enumerate(INVENTED)]
    state, results = run(*relays, state=state)
    assert results == ["ok"] * MEMBER_RELAYS + ["rejected:not_allowed"]
    assert INVENTED[-1] not in state.members
    assert all(state.members[n].relayed_by == B for n in INVENTED[:-1])
    assert {state.members[n].role for n in INVENTED[:-1]} == {"learner"}
    confirmed = apply(state, join_by(INVENTED[0], INVENTED[0], 30)).state
    assert confirmed.members[INVENTED[0]].relayed_by == ""
    assert apply(confirmed, join_by(B, INVENTED[-1], 31)).result == Result("ok")
    by_voter = apply(state, join_by(A, INVENTED[-1], 32))
    assert by_voter.result == Result("ok")
    assert by_voter.state.members[INVENTED[-1]].relayed_by == A


def test_the_member_table_is_bounded() -> None:
    members = {
        f"fpn1{i:032d}".translate(str.maketrans("0123456789", "abcdefghij")): Member(
            "learner", "h:1", "h:2", "h:3", T0
        )
        for i in range(MAX_MEMBERS - 1)
    }
    full, _ = run(join(A, 1), state=RegistryState(members=MappingProxyType(members)))
    assert len(full.members) == MAX_MEMBERS
    after = apply(full, join_by(A, B, 2))
    assert after.result == Result("rejected", "members_full")
    assert apply(full, join_by(A, A, 3, raft="h:4")).result == Result("ok")  # a rejoin fits


def join_by(by: str, node: str, n: int, **addresses: str) -> bytes:
    return command("member.join", n, by=by, node_id=node, **{**ADDRESSES, **addresses})


@pytest.mark.parametrize(
    ("op", "args", "reason"),
    [  # two faults each: the one specs/0005 section 3's table lists first wins
        (
            "member.add",
            {"node_id": A, "role": "king", "peer": "x", "api": "x", "raft": "x"},
            "bad_role",
        ),
        (
            "member.add",
            {"node_id": A, "role": "voter", "peer": "x", "api": "x", "raft": "x"},
            "already_member",
        ),
        (
            "member.add",
            {"node_id": B, "role": "voter", "peer": "h:1", "api": "x", "raft": "x"},
            "bad_api",
        ),
        ("member.join", {"node_id": "x", "peer": "x", "api": "x", "raft": "x"}, "bad_node_id"),
        ("member.set_role", {"node_id": B, "role": "king"}, "bad_role"),
        ("service.set", {"name": "", "endpoints": 1, "health": ""}, "bad_name"),
        ("service.set", {"name": "s", "endpoints": 1, "health": ""}, "bad_health"),
        ("model.serve", {"model_id": "", "node_id": "x"}, "bad_model_id"),
        ("model.serve", {"model_id": "m", "node_id": "x"}, "bad_node_id"),
        ("param.delete", {"key": ""}, "bad_key"),
        ("param.set", {"key": "k"}, "bad_args"),
    ],
)
def test_checks_follow_the_order_of_the_spec_table(
    op: str, args: dict[str, codec.Value], reason: str
) -> None:
    state, _ = run(join(A, 1))
    assert apply(state, command(op, 2, **args)).result == Result("rejected", reason)


def test_a_command_is_the_canonical_map_of_exactly_five_keys() -> None:
    """REG-1: `{args, at, by, id, op}`, canonical MessagePack; another key, a missing one, a
    16-byte `id` of another size or a non-canonical encoding is not a command."""
    raw = encode_command("param.set", {"key": "k", "value": 1}, key=bytes(16), by=A, at_ms=T0)
    value = codec.decode(raw)
    assert value == {
        "args": {"key": "k", "value": 1},
        "at": T0,
        "by": A,
        "id": bytes(16),
        "op": "param.set",
    }
    assert codec.encode(value) == raw
    assert apply(RegistryState(), raw).result == Result("ok")
    assert isinstance(value, dict)
    for bad in (
        {**value, "extra": 1},
        {k: v for k, v in value.items() if k != "at"},
        {**value, "id": bytes(17)},
        {**value, "by": "not-a-node-id"},
        {**value, "at": -1},
        {**value, "args": [1]},
    ):
        assert apply(RegistryState(), codec.encode(bad)).result == Result("rejected", "malformed")
    non_canonical = raw.replace(b"\xa2at\xcf", b"\xa2at\xd3", 1)  # `at` as int64
    assert non_canonical != raw
    assert apply(RegistryState(), non_canonical).result == Result("rejected", "malformed")


@pytest.mark.parametrize(
    ("raw", "result"),
    [
        (b"\x00" * (MAX_COMMAND_BYTES + 1), Result("rejected", "oversized")),
        (b"\xc1", Result("rejected", "malformed")),
        (
            encode_command("nope", {}, key=bytes(16), by=A, at_ms=T0),
            Result("rejected", "unknown_op"),
        ),
        (
            encode_command("param.set", {"key": "k"}, key=bytes(16), by=A, at_ms=T0),
            Result("rejected", "bad_args"),
        ),
        (
            encode_command("param.set", {"key": "", "value": 1}, key=bytes(16), by=A, at_ms=T0),
            Result("rejected", "bad_key"),
        ),
        (
            encode_command("param.delete", {"key": "absent"}, key=bytes(16), by=A, at_ms=T0),
            Result("rejected", "no_such_parameter"),
        ),
        (
            encode_command("param.set", {"key": "k", "value": 1}, key=bytes(16), by=A, at_ms=T0),
            Result("ok"),
        ),
    ],
)
def test_a_result_is_ok_duplicate_or_rejected_with_its_reason(raw: bytes, result: Result) -> None:
    """REG-6: the reasons of a rejection, from the command's shape to the operation's own."""
    applied = apply(RegistryState(), raw)
    assert applied.result == result
    if result.status == "ok":
        assert apply(applied.state, raw).result == Result("duplicate")


def test_services_are_set_replaced_and_removed() -> None:
    """REG-8: `service.set` creates or replaces; `service.remove` of an absent one is
    `no_such_service`."""
    state, results = run(
        command("service.set", 1, name="api", endpoints=["a:1"], health="ok"),
        command("service.set", 2, name="api", endpoints=["b:2", "c:3"], health="degraded"),
    )
    assert results == ["ok", "ok"]
    assert (state.services["api"].endpoints, state.services["api"].health) == (
        ("b:2", "c:3"),
        "degraded",
    )
    state, results = run(
        command("service.remove", 3, name="api"),
        command("service.remove", 4, name="api"),
        state=state,
    )
    assert results == ["ok", "rejected:no_such_service"] and state.services == {}


def test_models_list_members_once_and_unserve_is_quiet() -> None:
    """REG-9: `model.serve` needs a member and adds it once; `model.unserve` of a node not
    listed is no error, and an emptied entry is removed."""
    state, results = run(
        join(A, 1),
        command("model.serve", 2, model_id="m", node_id=B),
        command("model.serve", 3, model_id="m", node_id=A),
        command("model.serve", 4, model_id="m", node_id=A),
        command("model.unserve", 5, model_id="m", node_id=B),
    )
    assert results == ["ok", "rejected:not_member", "ok", "ok", "ok"]
    assert state.models == {"m": frozenset({A})}
    state, results = run(
        command("model.unserve", 6, model_id="m", node_id=A),
        command("model.unserve", 7, model_id="other", node_id=A),
        state=state,
    )
    assert results == ["ok", "ok"] and state.models == {}


def test_parameters_are_set_replaced_and_deleted() -> None:
    """REG-10: `param.set` creates or replaces; `param.delete` of an absent key is
    `no_such_parameter`."""
    state, results = run(
        command("param.set", 1, key="k", value=1),
        command("param.set", 2, key="k", value=[b"x", None]),
    )
    assert results == ["ok", "ok"] and dict(state.parameters) == {"k": [b"x", None]}
    state, results = run(
        command("param.delete", 3, key="k"), command("param.delete", 4, key="k"), state=state
    )
    assert results == ["ok", "rejected:no_such_parameter"] and dict(state.parameters) == {}
