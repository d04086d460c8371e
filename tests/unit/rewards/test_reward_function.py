"""The reward function (fpai_node/rewards/reward.py, specs/0010-rewards.md RWD-8): the agreed
minimum of both digests, the rate of the named weights, nothing for serving yourself, the cap
per requester, nothing for a penalized server, and the same answer whatever the order."""

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from fpai_node.identity import NodeKey
from fpai_node.rewards.digests import Digest, Row, RowKey
from fpai_node.rewards.params import Rate, RewardParams
from fpai_node.rewards.reward import (
    CAPPED,
    NO_OPERATOR,
    NO_RATE,
    PAID,
    PENALIZED,
    SAME_OPERATOR,
    UNACKNOWLEDGED,
    compute,
)

S1, S2, R, SYBIL = (NodeKey.from_seed(bytes([i]) * 32).node_id for i in range(1, 5))
WEIGHTS = hashlib.sha256(b"gemma").digest()
OP1, OP2, OP_R = "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20
RATE = Rate(WEIGHTS, prompt=1_000_000, completion=2_000_000)  # 1 and 2 units a token
PARAMS = RewardParams(rates={"m": RATE}, requester_cap=10**9)
OPERATORS = {S1: OP1, S2: OP2, R: OP_R}


def digest(
    node: str, served: dict[str, Row] | None = None, used: dict[str, Row] | None = None
) -> Digest:
    return Digest(
        node,
        7,
        bytes(32),
        0,
        {RowKey(peer, "m", WEIGHTS): row for peer, row in (served or {}).items()},
        {RowKey(peer, "m", WEIGHTS): row for peer, row in (used or {}).items()},
    )


def test_a_server_is_paid_the_agreed_counts_at_the_models_rate() -> None:
    digests = {
        S1: digest(S1, served={R: Row(3, 30, 40, 0)}),
        R: digest(R, used={S1: Row(3, 30, 40, 0)}),
    }
    result = compute(7, digests, OPERATORS, PARAMS)
    assert result.amounts == {OP1: 30 * 1 + 40 * 2}
    [line] = result.lines
    assert (line.reason, line.value) == (PAID, 110)
    assert result.total == 110 and result.earned_by(S1) == 110


def test_claiming_more_than_the_requester_acknowledged_earns_only_the_acknowledged() -> None:
    digests = {
        S1: digest(S1, served={R: Row(3, 30, 10**12, 0)}),  # the 10^12-token liar
        R: digest(R, used={S1: Row(3, 30, 40, 0)}),
    }
    [line] = compute(7, digests, OPERATORS, PARAMS).lines
    assert (line.claimed_completion, line.completion, line.value) == (10**12, 40, 110)


def test_work_the_requester_never_acknowledged_earns_nothing() -> None:
    digests = {S1: digest(S1, served={R: Row(3, 30, 40, 0)}), R: digest(R)}
    [line] = compute(7, digests, OPERATORS, PARAMS).lines
    assert (line.reason, line.value) == (UNACKNOWLEDGED, 0)
    without_digest = compute(7, {S1: digests[S1]}, OPERATORS, PARAMS)
    assert without_digest.lines[0].reason == UNACKNOWLEDGED
    assert without_digest.amounts == {}


def test_serving_your_own_operators_nodes_earns_nothing() -> None:
    digests = {
        S1: digest(S1, served={R: Row(3, 30, 40, 0)}),
        R: digest(R, used={S1: Row(3, 30, 40, 0)}),
    }
    result = compute(7, digests, {S1: OP1, R: OP1}, PARAMS)
    assert result.lines[0].reason == SAME_OPERATOR
    assert result.amounts == {}


def test_a_model_without_a_rate_or_with_other_weights_earns_nothing() -> None:
    digests = {
        S1: digest(S1, served={R: Row(3, 30, 40, 0)}),
        R: digest(R, used={S1: Row(3, 30, 40, 0)}),
    }
    other = RewardParams(rates={"m": Rate(bytes(32), 1, 1)}, requester_cap=10**9)
    assert compute(7, digests, OPERATORS, other).lines[0].reason == NO_RATE
    none = RewardParams(requester_cap=10**9)
    assert compute(7, digests, OPERATORS, none).lines[0].reason == NO_RATE


def test_a_server_without_an_operator_or_penalized_earns_nothing() -> None:
    digests = {
        S1: digest(S1, served={R: Row(3, 30, 40, 0)}),
        R: digest(R, used={S1: Row(3, 30, 40, 0)}),
    }
    assert compute(7, digests, {R: OP_R}, PARAMS).lines[0].reason == NO_OPERATOR
    penalized = compute(7, digests, OPERATORS, PARAMS, frozenset({S1}))
    assert (penalized.lines[0].reason, penalized.amounts) == (PENALIZED, {})


def test_one_requesters_work_is_capped_for_all_its_servers_together() -> None:
    digests = {
        S1: digest(S1, served={SYBIL: Row(1, 0, 600, 0)}),
        S2: digest(S2, served={SYBIL: Row(1, 0, 200, 0)}),
        SYBIL: digest(SYBIL, used={S1: Row(1, 0, 600, 0), S2: Row(1, 0, 200, 0)}),
    }
    params = RewardParams(rates={"m": RATE}, requester_cap=400)  # asked 1,200 + 400 = 1,600
    result = compute(7, digests, {**OPERATORS, SYBIL: "0x" + "44" * 20}, params)
    assert {line.server: (line.value, line.reason) for line in result.lines} == {
        S1: (1200 * 400 // 1600, CAPPED),
        S2: (400 * 400 // 1600, CAPPED),
    }
    assert result.total <= 400


def test_rewards_are_off_until_the_cap_is_set() -> None:
    digests = {
        S1: digest(S1, served={R: Row(3, 30, 40, 0)}),
        R: digest(R, used={S1: Row(3, 30, 40, 0)}),
    }
    result = compute(7, digests, OPERATORS, RewardParams(rates={"m": RATE}))
    assert result.amounts == {} and result.lines[0].reason == CAPPED


def test_an_operators_amount_is_the_sum_of_its_nodes() -> None:
    digests = {
        S1: digest(S1, served={R: Row(1, 10, 0, 0)}),
        S2: digest(S2, served={R: Row(1, 20, 0, 0)}),
        R: digest(R, used={S1: Row(1, 10, 0, 0), S2: Row(1, 20, 0, 0)}),
    }
    result = compute(7, digests, {S1: OP1, S2: OP1, R: OP_R}, PARAMS)
    assert result.amounts == {OP1: 30}


counts = st.tuples(*(st.integers(0, 10**6) for _ in range(4)))


@given(st.dictionaries(st.sampled_from([S1, S2, SYBIL]), counts, min_size=1), counts)
def test_the_result_depends_on_the_digests_not_their_order(
    served: dict[str, tuple[int, int, int, int]], acknowledged: tuple[int, int, int, int]
) -> None:
    digests = {s: digest(s, served={R: Row(*c)}) for s, c in served.items()}
    digests[R] = digest(R, used={s: Row(*acknowledged) for s in served})
    operators = {**OPERATORS, SYBIL: "0x" + "44" * 20}
    params = RewardParams(rates={"m": RATE}, requester_cap=10**6)
    forward = compute(7, digests, operators, params)
    backward = compute(7, dict(reversed(list(digests.items()))), operators, params)
    assert forward == backward
    assert forward.total <= params.requester_cap
    for line in forward.lines:
        assert line.completion <= acknowledged[2] and line.prompt <= acknowledged[1]
