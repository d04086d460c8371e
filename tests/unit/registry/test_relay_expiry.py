"""REG-13: relayed newcomers that never join themselves expire, and no more than 64 are pending
at once. An adversarial review of issue 13's fix: any key holder could ask an honest learner
to relay it and never confirm, using up the learner's quota for good, and fill the table
through a voter, who has no quota."""

from fpai_node.identity import NodeKey
from fpai_node.registry.state import (
    MAX_PENDING,
    MEMBER_RELAYS,
    PENDING_EXPIRY_MS,
    RegistryState,
    Result,
    apply,
    encode_command,
)
from fpai_node.wire import codec

T0 = 1_767_225_600_000
A, B = (NodeKey.from_seed(bytes([i]) * 32).node_id for i in (1, 2))  # a voter, a learner
OUTSIDERS = [NodeKey.from_seed(bytes([50, i]) + bytes(30)).node_id for i in range(MAX_PENDING + 1)]
ADDRESSES = {"peer": "127.0.0.1:7100", "api": "127.0.0.1:8100", "raft": "127.0.0.1:7200"}
_keys = iter(range(1, 1 << 20))


def join(node: str, by: str, at: int = T0) -> bytes:
    args: dict[str, codec.Value] = {"node_id": node, **ADDRESSES}
    return encode_command("member.join", args, key=next(_keys).to_bytes(16, "big"), by=by, at_ms=at)


def run(state: RegistryState, *commands: bytes) -> tuple[RegistryState, list[Result]]:
    results = []
    for command in commands:
        applied = apply(state, command)
        state = applied.state
        results.append(applied.result)
    return state, results


def federation() -> RegistryState:
    state, _ = run(RegistryState(), join(A, A), join(B, A), join(B, B))  # B confirmed
    assert state.voters() == [A] and state.members[B].relayed_by == ""
    return state


def test_relays_that_never_confirm_free_the_quota_after_ten_minutes() -> None:
    state, results = run(federation(), *(join(o, B) for o in OUTSIDERS[: MEMBER_RELAYS + 1]))
    assert results[-1] == Result("rejected", "not_allowed")  # quota used up by outsiders
    late = T0 + PENDING_EXPIRY_MS + 1
    state, results = run(state, join(OUTSIDERS[MEMBER_RELAYS], B, at=late))
    assert results == [Result("ok")]
    assert not set(OUTSIDERS[:MEMBER_RELAYS]) & set(state.members)  # forgotten by the join
    assert state.members[OUTSIDERS[MEMBER_RELAYS]].relayed_by == B


def test_expiry_counts_either_way_so_a_relay_dated_ahead_cannot_outlive_it() -> None:
    ahead = T0 + 10 * PENDING_EXPIRY_MS
    state, _ = run(federation(), join(OUTSIDERS[0], B, at=ahead))
    state, results = run(state, join(OUTSIDERS[1], A, at=T0))
    assert results == [Result("ok")] and OUTSIDERS[0] not in state.members


def test_exactly_ten_minutes_is_not_yet_expired() -> None:
    state, _ = run(federation(), join(OUTSIDERS[0], B))
    state, _ = run(state, join(OUTSIDERS[1], A, at=T0 + PENDING_EXPIRY_MS))
    assert OUTSIDERS[0] in state.members


def test_a_confirmed_member_never_expires_and_a_re_relay_keeps_its_relay() -> None:
    state, _ = run(federation(), join(OUTSIDERS[0], B), join(OUTSIDERS[0], A))
    assert state.members[OUTSIDERS[0]].relayed_by == B  # a voter's re-relay moves nothing
    state, _ = run(state, join(OUTSIDERS[0], OUTSIDERS[0]))
    state, _ = run(state, join(OUTSIDERS[1], A, at=T0 + 2 * PENDING_EXPIRY_MS))
    assert OUTSIDERS[0] in state.members and B in state.members


def test_at_most_64_relayed_newcomers_are_pending_whoever_relays_them() -> None:
    state, results = run(federation(), *(join(o, A) for o in OUTSIDERS))
    assert results[:MAX_PENDING] == [Result("ok")] * MAX_PENDING
    assert results[MAX_PENDING] == Result("rejected", "pending_full")
    own, _ = run(state, join(OUTSIDERS[MAX_PENDING], OUTSIDERS[MAX_PENDING]))
    assert OUTSIDERS[MAX_PENDING] in own.members  # a node's own join is never pending


def test_an_expired_member_serves_no_model() -> None:
    state, _ = run(federation(), join(OUTSIDERS[0], B))
    serve = encode_command(
        "model.serve",
        {"model_id": "m", "node_id": OUTSIDERS[0]},
        key=next(_keys).to_bytes(16, "big"),
        by=OUTSIDERS[0],
        at_ms=T0,
    )
    state, _ = run(state, serve)
    assert state.models == {"m": frozenset({OUTSIDERS[0]})}
    state, _ = run(state, join(OUTSIDERS[1], A, at=T0 + PENDING_EXPIRY_MS + 1))
    assert state.models == {}
