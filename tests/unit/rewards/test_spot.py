"""Spot checks and fraud reports (fpai_node/rewards/spot.py, specs/0010-rewards.md RWD-10..13):
which pairs are sampled and by whom they are checked, the verdict rule, the report every reader
upholds or refuses, and the penalty quorum."""

import contextlib
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fpai_node.identity import NodeKey
from fpai_node.rewards.params import PPM
from fpai_node.rewards.spot import (
    SPOT_DOMAIN,
    Verdict,
    ack_signature,
    checkers,
    is_sampled,
    judge,
    penalized,
    read_report,
    report_parameter,
    seal_report,
)
from fpai_node.router.acks import Pair
from fpai_node.router.messages import ReceiptRejected
from fpai_node.testing.pairs import NOW, REQUESTER, SERVER, WEIGHTS, make_pair

CHECKER, OTHER = NodeKey.from_seed(bytes([13]) * 32), NodeKey.from_seed(bytes([14]) * 32)
WRONG = Verdict(False, "wrong_output", "30 of 32 tokens rank below the top 2")


def pair(seq: int = 1, *, weights: bytes = WEIGHTS, verdict: str = "ok") -> Pair:
    return make_pair(seq, weights=weights, verdict=verdict)


def draw(p: Pair) -> int:
    return int.from_bytes(hashlib.sha256(SPOT_DOMAIN + ack_signature(p.ack_frame)).digest()[:8])


def test_the_sample_is_the_requesters_signature_against_the_rate() -> None:
    pairs = [pair(seq) for seq in range(1, 400)]
    for ppm in (0, 20_000, 500_000, PPM):
        chosen = [p for p in pairs if is_sampled(p, "chat", ppm)]
        assert chosen == [p for p in pairs if draw(p) < ppm * (1 << 64) // PPM]
    assert not any(is_sampled(p, "chat", 0) for p in pairs)
    assert all(is_sampled(p, "completion", PPM) for p in pairs)
    half = sum(is_sampled(p, "chat", 500_000) for p in pairs)
    assert 150 < half < 250  # about half, as a hash should give


def test_only_counted_text_answers_from_named_weights_are_sampled() -> None:
    assert not is_sampled(pair(weights=b""), "chat", PPM)
    assert not is_sampled(pair(verdict="inflated_completion"), "chat", PPM)
    assert not is_sampled(pair(), "embeddings", PPM)
    assert is_sampled(pair(), None, PPM)


def test_checkers_are_the_models_servers_but_the_parties_in_a_fixed_order() -> None:
    p = pair()
    serving = [SERVER.node_id, REQUESTER.node_id, CHECKER.node_id, OTHER.node_id]
    order = checkers(p, serving)
    assert set(order) == {CHECKER.node_id, OTHER.node_id}
    signature = ack_signature(p.ack_frame)
    assert order == sorted(order, key=lambda n: hashlib.sha256(signature + n.encode()).digest())
    assert checkers(p, reversed(serving)) == order


@pytest.mark.parametrize(
    ("claims", "ranks", "greedy", "reason"),
    [
        ((20, 10), [1] * 10, True, ""),
        ((31, 10), [1] * 10, True, ""),  # ceil(1.1 * 20) + 8 = 30: 31 is inflated (below)
        ((20, 20), [1] * 10, True, ""),  # ceil(1.1 * 10) + 8 = 19 < 20
        ((20, 10), [1] * 9 + [3], True, ""),  # a near-tie flipped: honest
        ((20, 10), [1] * 5 + [3] * 5, True, ""),  # 5 far: under the floor of 6
        ((20, 10), [1] * 4 + [3] * 6, True, "wrong_output"),
        ((20, 10), [1] * 2 + [41] * 8, False, "wrong_output"),
        ((20, 10), [1] * 3 + [41] * 7, False, ""),  # sampled: the floor is 8
        ((20, 100), [1] * 60 + [9] * 6 + [1] * 34, True, "wrong_output"),  # bunched, 6% overall
        ((20, 100), ([1] * 15 + [9]) * 6 + [1] * 4, True, ""),  # spread: no 32 hold 6
        ((20, 7), [99] * 7, True, ""),  # under 8 tokens: too little to judge
    ],
)
def test_the_verdict_rule(
    claims: tuple[int, int], ranks: list[int], greedy: bool, reason: str
) -> None:
    prompt, completion = claims
    verdict = judge(
        claimed_prompt=prompt,
        claimed_completion=completion,
        counted_prompt=20,
        counted_completion=len(ranks),
        ranks=ranks,
        greedy=greedy,
    )
    expected = reason
    if prompt > 30:
        expected = "inflated_prompt"
    elif completion > -(-11 * len(ranks) // 10) + 8:
        expected = "inflated_completion"
    assert (verdict.passed, verdict.reason) == (expected == "", expected)


def test_a_report_is_upheld_only_from_a_third_node_about_a_sampled_pair() -> None:
    p = pair()
    key = report_parameter(CHECKER.node_id, p)
    frame = seal_report(CHECKER, p, WRONG, NOW + 10)
    report = read_report(key, frame, PPM)
    assert (report.checker, report.server, report.reason) == (
        CHECKER.node_id,
        SERVER.node_id,
        "wrong_output",
    )
    refusals = [
        (report_parameter(OTHER.node_id, p), frame, PPM, "wrong_signer"),
        (key, frame, 0, "not_sampled"),
        (key.replace(p.id.hex()[:16], "0" * 16), frame, PPM, "wrong_pair"),
        (
            report_parameter(SERVER.node_id, p),
            seal_report(SERVER, p, WRONG, NOW + 10),
            PPM,
            "party",
        ),
        (key, b"\x00", PPM, "malformed"),
    ]
    for name, value, ppm, reason in refusals:
        with pytest.raises(ReceiptRejected) as refused:
            read_report(name, value, ppm)
        assert refused.value.reason == reason, name


def test_a_server_is_penalized_when_enough_checkers_reported_it() -> None:
    p = pair()
    by_checker = read_report(
        report_parameter(CHECKER.node_id, p), seal_report(CHECKER, p, WRONG, NOW), PPM
    )
    by_other = read_report(
        report_parameter(OTHER.node_id, p), seal_report(OTHER, p, WRONG, NOW), PPM
    )
    epoch = NOW // 60_000

    def epoch_of(at_ms: int) -> int:
        return at_ms // 60_000

    assert penalized([by_checker], epoch_of, 1) == {epoch: frozenset({SERVER.node_id})}
    assert penalized([by_checker, by_checker], epoch_of, 2) == {}  # one checker twice
    assert penalized([by_checker, by_other], epoch_of, 2) == {epoch: frozenset({SERVER.node_id})}


@given(st.binary(max_size=4096))
def test_any_bytes_are_a_report_or_refused(data: bytes) -> None:
    """Paired with a valid report read back: a reader that refused everything would pass the
    suppressed half alone."""
    p = pair()
    valid = read_report(
        report_parameter(CHECKER.node_id, p), seal_report(CHECKER, p, WRONG, NOW), PPM
    )
    assert (valid.checker, valid.server, valid.reason) == (
        CHECKER.node_id,
        SERVER.node_id,
        "wrong_output",
    )
    with contextlib.suppress(ReceiptRejected):
        read_report(f"member.{CHECKER.node_id}.fraud.{'0' * 16}", data, PPM)
