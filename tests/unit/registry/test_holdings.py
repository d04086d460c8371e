"""REG-16's counts, kept as apply changes the tables: always what a count of the tables gives."""

from hypothesis import given, settings
from hypothesis import strategies as st

from fpai_node.registry.holdings import Holdings, parameter_owner, service_owner
from fpai_node.registry.state import (
    MEMBER_PARAMETERS,
    RegistryState,
    Result,
    apply,
)
from fpai_node.testing.registry_script import ADDRESSES, A, B, command, run


def counted(state: RegistryState) -> Holdings:
    """The counts of a state built afresh from the same tables."""
    return RegistryState(state.members, state.services, state.models, state.parameters).held()


def test_owners_are_read_from_the_prefix_as_the_quota_names_it() -> None:
    assert parameter_owner(f"member.{A}.k") == A
    assert parameter_owner(f"member.{A}.k.deeper") == A
    assert [parameter_owner(k) for k in (f"member.{A}", "member..k", f"members.{A}.k")] == [
        None,
        None,
        None,
    ]
    assert service_owner(f"{A}/s") == A
    assert [service_owner(n) for n in ("/s", "s", "")] == [None, None, None]


KEYS = [f"member.{A}.k", f"member.{A}.j", f"member.{B}.k", "shared", f"member.{B}"]
SERVICES = [f"{A}/s", f"{B}/s", f"{B}/t", "plain"]
OPS = st.one_of(
    st.tuples(st.just("param.set"), st.sampled_from([A, B]), st.sampled_from(KEYS)),
    st.tuples(st.just("param.delete"), st.sampled_from([A, B]), st.sampled_from(KEYS)),
    st.tuples(st.just("service.set"), st.sampled_from([A, B]), st.sampled_from(SERVICES)),
    st.tuples(st.just("service.remove"), st.sampled_from([A, B]), st.sampled_from(SERVICES)),
    st.tuples(st.just("member.set_role"), st.just(A), st.sampled_from(["voter", "learner"])),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(OPS, max_size=30))
def test_the_counts_apply_keeps_are_the_counts_of_the_tables(
    ops: list[tuple[str, str, str]],
) -> None:
    state, _ = run(
        command("member.add", 1, node_id=A, role="voter", **ADDRESSES),
        command("member.add", 2, node_id=B, role="learner", **ADDRESSES),
    )
    for n, (op, by, name) in enumerate(ops, start=3):
        if op.startswith("param"):
            args = {"key": name, "value": n} if op == "param.set" else {"key": name}
        elif op.startswith("service"):
            args = (
                {"name": name, "endpoints": [], "health": "ok"}
                if op == "service.set"
                else {"name": name}
            )
        else:
            args = {"node_id": B, "role": name}  # A gives B a role, or takes it back
        state = apply(state, command(op, n, by=by, **args)).state
        assert state.held() == counted(state)


def test_a_quota_holds_among_many_parameters_and_after_a_snapshot() -> None:
    """The count is per member: others' parameters neither fill nor free a member's quota."""
    state, _ = run(
        command("member.add", 1, node_id=A, role="voter", **ADDRESSES),
        command("member.add", 2, node_id=B, role="learner", **ADDRESSES),
    )
    at = 3
    for i in range(2_000):  # a voter's, under no member's name and under B's
        key = f"bulk.{i}" if i % 2 else f"member.{A}.bulk.{i}"
        state = apply(state, command("param.set", at + i, by=A, key=key, value=i)).state
    at += 2_000
    for i in range(MEMBER_PARAMETERS):
        key = f"member.{B}.k{i}"
        state = apply(state, command("param.set", at + i, by=B, key=key, value=i)).state
    at += MEMBER_PARAMETERS
    restored = RegistryState.from_value(state.to_value())
    for replica in (state, restored):
        one_more = apply(replica, command("param.set", at, by=B, key=f"member.{B}.x", value=0))
        assert one_more.result == Result("rejected", "not_allowed")
        freed = apply(replica, command("param.delete", at + 1, by=B, key=f"member.{B}.k0")).state
        again = apply(freed, command("param.set", at + 2, by=B, key=f"member.{B}.x", value=0))
        assert again.result == Result("ok")
    assert restored.held() == state.held()
