"""protocol/vectors/rewards/ (specs/0010-rewards.md): acknowledgements and pairs, digests and
their Merkle roots, parameters, the reward function, spot samples and verdicts, fraud reports.

Frames are sealed here with the envelope alone and every expectation is computed from the
primitives the spec names (SHA-256, the canonical encoding, integer arithmetic written out),
not by fpai_node/rewards or fpai_node/router/acks: the conformance test reads them back
through the implementation.
"""

import hashlib
import math
from collections.abc import Iterator
from typing import Any

from fpai_node.chain.merkle import RewardTree
from fpai_node.identity import NodeKey
from fpai_node.router.messages import InferRequest, seal_receipt
from fpai_node.testing.vectors import ALICE, BOB, NOW_MS, Case, to_json
from fpai_node.wire import codec
from fpai_node.wire.envelope import seal

CAROL = NodeKey.from_seed(bytes(range(64, 96)))  # a checker
DAVE = NodeKey.from_seed(bytes(range(96, 128)))
WEIGHTS = hashlib.sha256(b"the federation's weights file").digest()
OUTPUT = hashlib.sha256(b"Hello").digest()
EPOCH_S = 60  # the vectors' rewards.epoch_s
EPOCH = NOW_MS // (EPOCH_S * 1000)
SPOT_DOMAIN = b"FPAI-SPOT-V1\x00"


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _receipt(server: NodeKey = ALICE, requester: NodeKey = BOB, seq: int = 1) -> bytes:
    request = InferRequest("chat", b'{"model":"m"}', f"req-{seq}", (requester.node_id,))
    return seal_receipt(
        server,
        request,
        model="m",
        prompt_tokens=9,
        completion_tokens=4,
        seq=seq,
        now_ms=NOW_MS + seq,
        weights=WEIGHTS,
    )


def _ack(
    receipt: bytes,
    signer: NodeKey = BOB,
    *,
    server: NodeKey = ALICE,
    verdict: str = "ok",
    counts: tuple[int, int] = (9, 4),
    at_ms: int = NOW_MS + 100,
    seq: int = 1,
) -> bytes:
    """RWD-1 written out: the payload map, sealed as `usage.ack` with a 60 s lifetime."""
    payload = codec.encode(
        {
            "completion_tokens": counts[1],
            "output": OUTPUT,
            "prompt_tokens": counts[0],
            "receipt": _h(receipt),
            "server": server.node_id,
            "verdict": verdict,
        }
    )
    return seal(signer, "usage.ack", payload, seq=seq, now_ms=at_ms, lifetime_ms=60_000)


def _pair_case(description: str, receipt: bytes, ack: bytes, refused: str | None) -> Case:
    if refused is not None:
        expect: dict[str, Any] = {"refused": refused}
    else:
        expect = {"ok": {"pair_id": _h(codec.encode([receipt, ack])).hex()}}
    return Case(
        {"description": description, "expect": expect},
        {"receipt.bin": receipt, "ack.bin": ack},
    )


def pair_cases() -> Iterator[tuple[str, Case]]:
    r = _receipt()
    yield (
        "pair-valid",
        _pair_case("bob acknowledges alice's receipt: 9 and 4 tokens", r, _ack(r), None),
    )
    yield (
        "pair-disputed",
        _pair_case(
            "a receipt bob disputed: its verdict, no counts",
            r,
            _ack(r, verdict="inflated_completion", counts=(0, 0)),
            None,
        ),
    )
    other = _receipt(seq=2)
    yield (
        "pair-wrong-receipt",
        _pair_case("the ack names another receipt", r, _ack(other), "wrong_receipt"),
    )
    yield (
        "pair-wrong-requester",
        _pair_case("signed by carol", r, _ack(r, CAROL), "wrong_requester"),
    )
    yield (
        "pair-wrong-server",
        _pair_case("names dave as the server", r, _ack(r, server=DAVE), "wrong_server"),
    )
    yield (
        "pair-late-ack",
        _pair_case(
            "signed 90,001 ms after the receipt", r, _ack(r, at_ms=NOW_MS + 1 + 90_001), "late_ack"
        ),
    )
    yield (
        "pair-early-ack",
        _pair_case(
            "signed 30,001 ms before the receipt", r, _ack(r, at_ms=NOW_MS + 1 - 30_001), "late_ack"
        ),
    )
    yield (
        "pair-wrong-counts",
        _pair_case("ok, with other counts", r, _ack(r, counts=(9, 5)), "wrong_counts"),
    )
    yield (
        "pair-disputed-with-counts",
        _pair_case(
            "a dispute that still claims counts",
            r,
            _ack(r, verdict="inflated_prompt", counts=(9, 4)),
            "malformed",
        ),
    )


def _merkle(ids: list[bytes]) -> bytes:
    """RWD-5 step by step: sorted ids, 0x00 leaves, 0x01 parents, the odd node carried up."""
    level = [_h(b"\x00" + i) for i in sorted(ids)]
    if not level:
        return bytes(32)
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level), 2):
            nxt.append(_h(b"\x01" + level[i] + level[i + 1]) if i + 1 < len(level) else level[i])
        level = nxt
    return level[0]


def merkle_cases() -> Iterator[tuple[str, Case]]:
    for n in (0, 1, 2, 3, 5):
        ids = [_h(bytes([i])) for i in range(n)]
        yield (
            f"merkle-{n}",
            Case(
                {
                    "description": f"the root of {n} pair ids",
                    "ids": [i.hex() for i in ids],
                    "expect": {"root": _merkle(ids).hex()},
                }
            ),
        )


def digest_cases() -> Iterator[tuple[str, Case]]:
    served1, served2 = _receipt(seq=1), _receipt(seq=2)
    disputed = _receipt(seq=3)
    used = _receipt(CAROL, ALICE, seq=4)
    foreign = _receipt(CAROL, BOB, seq=5)
    pairs = [
        (served1, _ack(served1, seq=1)),
        (served2, _ack(served2, seq=2, at_ms=NOW_MS + 200)),
        (disputed, _ack(disputed, seq=3, verdict="inflated_completion", counts=(0, 0))),
        (used, _ack(used, ALICE, server=CAROL, seq=4)),
        (foreign, _ack(foreign, seq=5, server=CAROL)),  # alice is no party of it
        (served1, _ack(served1, seq=1)),  # the same pair again
    ]
    ids = {_h(codec.encode([r, a])) for r, a in pairs[:4]}
    served_row: list[codec.Value] = [
        BOB.node_id,
        "m",
        WEIGHTS,
        2,
        18,
        8,
        1,
    ]  # two counted, one disputed
    used_row: list[codec.Value] = [CAROL.node_id, "m", WEIGHTS, 1, 9, 4, 0]
    yield (
        "digest-summary",
        Case(
            {
                "description": "alice's pairs of an epoch: served to bob, used from carol",
                "node_id": ALICE.node_id,
                "epoch": EPOCH,
                "expect": {
                    "served": to_json([served_row]),
                    "used": to_json([used_row]),
                    "pairs": len(ids),
                    "root": _merkle(list(ids)).hex(),
                },
            },
            {"pairs.bin": codec.encode([[r, a] for r, a in pairs])},
        ),
    )
    deadline = (EPOCH + 1) * EPOCH_S * 1000 + 300_000

    def record(
        signer: NodeKey, rows: list[codec.Value], epoch: int = EPOCH, at: int = NOW_MS
    ) -> bytes:
        payload = codec.encode(
            {"epoch": epoch, "pairs": 3, "root": _merkle(list(ids)), "served": rows, "used": []}
        )
        return seal(signer, "rewards.digest", payload, seq=at, now_ms=at, lifetime_ms=60_000)

    def digest_case(
        description: str, value: bytes, refused: str | None, deadline: int = deadline
    ) -> Case:
        expect: dict[str, Any] = (
            {"refused": refused} if refused else {"ok": {"served": to_json([served_row])}}
        )
        meta = {
            "description": description,
            "node_id": ALICE.node_id,
            "epoch": EPOCH,
            "deadline_ms": deadline,
            "expect": expect,
        }
        return Case(meta, {"value.bin": value})

    yield (
        "digest-record",
        digest_case("alice's digest record, read back", record(ALICE, [served_row]), None),
    )
    yield (
        "digest-late",
        digest_case(
            "signed after the deadline", record(ALICE, [served_row]), "late_digest", NOW_MS - 1
        ),
    )
    yield (
        "digest-wrong-signer",
        digest_case("filed under alice, signed by bob", record(BOB, [served_row]), "wrong_signer"),
    )
    yield (
        "digest-wrong-epoch",
        digest_case("for another epoch", record(ALICE, [served_row], EPOCH + 1), "wrong_epoch"),
    )
    dave_row: list[codec.Value] = [DAVE.node_id, "m", WEIGHTS, 1, 1, 1, 0]
    rows: list[codec.Value] = sorted(
        [served_row, dave_row],
        key=lambda x: codec.encode(x[:3]),  # type: ignore[index]
        reverse=True,
    )
    yield (
        "digest-rows-out-of-order",
        digest_case("rows in descending key order", record(ALICE, rows), "malformed"),
    )
    yield (
        "digest-row-names-itself",
        digest_case(
            "a row whose peer is alice",
            record(ALICE, [[ALICE.node_id, "m", b"", 1, 1, 1, 0]]),
            "malformed",
        ),
    )


def params_cases() -> Iterator[tuple[str, Case]]:
    rate: dict[str, codec.Value] = {
        "completion": 2_000_000,
        "prompt": 1_000_000,
        "weights": WEIGHTS,
    }
    yield (
        "params-set",
        Case(
            {
                "description": "every parameter set, in range",
                "parameters": to_json(
                    {
                        "rewards.epoch_s": 600,
                        "rewards.settle_s": 60,
                        "rewards.rate.m": rate,
                        "rewards.requester_cap": 5_000_000,
                        "rewards.spot_ppm": 1000,
                        "rewards.fraud_quorum": 2,
                    }
                ),
                "expect": {
                    "epoch_s": 600,
                    "settle_s": 60,
                    "requester_cap": 5_000_000,
                    "spot_ppm": 1000,
                    "fraud_quorum": 2,
                    "rates": {"m": [WEIGHTS.hex(), 1_000_000, 2_000_000]},
                },
            }
        ),
    )
    yield (
        "params-absent-or-wrong",
        Case(
            {
                "description": "out of range or mistyped: absent; settle_s falls to epoch_s",
                "parameters": to_json(
                    {
                        "rewards.epoch_s": 120,
                        "rewards.settle_s": 121,
                        "rewards.rate.m": {"weights": b"x", "prompt": 1, "completion": 1},
                        "rewards.requester_cap": "5",
                        "rewards.spot_ppm": 1_000_001,
                        "rewards.fraud_quorum": 8,
                    }
                ),
                "expect": {
                    "epoch_s": 120,
                    "settle_s": 120,
                    "requester_cap": 0,
                    "spot_ppm": 20_000,
                    "fraud_quorum": 1,
                    "rates": {},
                },
            }
        ),
    )


OPERATORS = {
    ALICE.node_id: "0x" + "11" * 20,
    CAROL.node_id: "0x" + "33" * 20,
    BOB.node_id: "0x" + "22" * 20,
}
RATE = (1_000_000, 2_000_000)  # prompt, completion per million tokens: 1 and 2 units a token


def _reward_case(
    description: str,
    served: dict[str, list[codec.Value]],
    used: dict[str, list[codec.Value]],
    expected: list[tuple[str, str, int, str]],
    *,
    cap: int = 10**9,
    operators: dict[str, str] = OPERATORS,
    penalized: tuple[str, ...] = (),
    weights: bytes = WEIGHTS,
) -> Case:
    amounts: dict[str, int] = {}
    for server, _, value, _ in expected:
        if value:
            amounts[operators[server]] = amounts.get(operators[server], 0) + value
    nodes = sorted(set(served) | set(used))
    return Case(
        {
            "description": description,
            "epoch": EPOCH,
            "params": {
                "requester_cap": cap,
                "rate": {
                    "model": "m",
                    "weights": weights.hex(),
                    "prompt": RATE[0],
                    "completion": RATE[1],
                },
            },
            "operators": operators,
            "penalized": list(penalized),
            "digests": {
                n: {"served": to_json(served.get(n, [])), "used": to_json(used.get(n, []))}
                for n in nodes
            },
            "expect": {
                "lines": [
                    {"server": s, "requester": r, "value": v, "reason": why}
                    for s, r, v, why in expected
                ],
                "amounts": amounts,
                "root": ("0x" + RewardTree(amounts).root.hex()) if amounts else None,
            },
        }
    )


def reward_cases() -> Iterator[tuple[str, Case]]:
    a, b, c = ALICE.node_id, BOB.node_id, CAROL.node_id

    def row(peer: str, p: int, cpl: int, req: int = 1, disputed: int = 0) -> codec.Value:
        return [peer, "m", WEIGHTS, req, p, cpl, disputed]

    paid = 30 * 1 + 40 * 2
    yield (
        "reward-paid",
        _reward_case(
            "agreed counts at the rate",
            {a: [row(b, 30, 40)]},
            {b: [row(a, 30, 40)]},
            [(a, b, paid, "paid")],
        ),
    )
    agreed = 30 * 1 + 10 * 2  # min(40, 10) completion tokens
    yield (
        "reward-minimum",
        _reward_case(
            "alice claims 40, bob acknowledged 10",
            {a: [row(b, 30, 40)]},
            {b: [row(a, 30, 10)]},
            [(a, b, agreed, "paid")],
        ),
    )
    yield (
        "reward-unacknowledged",
        _reward_case(
            "bob has no row for alice",
            {a: [row(b, 30, 40)]},
            {b: []},
            [(a, b, 0, "unacknowledged")],
        ),
    )
    same = {**OPERATORS, b: OPERATORS[a]}
    yield (
        "reward-same-operator",
        _reward_case(
            "bob is bound to alice's operator",
            {a: [row(b, 30, 40)]},
            {b: [row(a, 30, 40)]},
            [(a, b, 0, "same_operator")],
            operators=same,
        ),
    )
    yield (
        "reward-no-rate",
        _reward_case(
            "the rate pays for other weights",
            {a: [row(b, 30, 40)]},
            {b: [row(a, 30, 40)]},
            [(a, b, 0, "no_rate")],
            weights=bytes(32),
        ),
    )
    yield (
        "reward-penalized",
        _reward_case(
            "alice is penalized",
            {a: [row(b, 30, 40)]},
            {b: [row(a, 30, 40)]},
            [(a, b, 0, "penalized")],
            penalized=(a,),
        ),
    )
    no_op = {b: OPERATORS[b]}
    yield (
        "reward-no-operator",
        _reward_case(
            "alice has no binding",
            {a: [row(b, 30, 40)]},
            {b: [row(a, 30, 40)]},
            [(a, b, 0, "no_operator")],
            operators=no_op,
        ),
    )
    # two servers, one requester asking 600 + 200 = 800 units against a cap of 400
    a_value, c_value = 600 * 2, 200 * 2  # completion tokens at 2 units
    total = a_value + c_value
    cap = 400
    yield (
        "reward-capped",
        _reward_case(
            "bob's work for alice and carol, over the cap: shared pro rata, floored",
            {a: [row(b, 0, 600)], c: [row(b, 0, 200)]},
            {b: [row(a, 0, 600), row(c, 0, 200)]},
            [(a, b, a_value * cap // total, "capped"), (c, b, c_value * cap // total, "capped")],
            cap=cap,
        ),
    )


def spot_cases() -> Iterator[tuple[str, Case]]:
    r = _receipt()
    for n, ppm in enumerate((0, 20_000, 500_000, 1_000_000)):
        ack = _ack(r, seq=n + 1, at_ms=NOW_MS + 100 + n)
        signature = codec.decode(ack)[1]  # type: ignore[index]
        draw = int.from_bytes(_h(SPOT_DOMAIN + signature)[:8], "big")  # type: ignore[operator]
        threshold = ppm * 2**64 // 1_000_000
        yield (
            f"spot-sample-{ppm}",
            Case(
                {
                    "description": f"this acknowledgement's draw against {ppm} ppm",
                    "api": "chat",
                    "spot_ppm": ppm,
                    "expect": {
                        "draw": str(draw),
                        "threshold": str(threshold),
                        "sampled": draw < threshold,
                    },
                    "checkers": {
                        "serving": [ALICE.node_id, BOB.node_id, CAROL.node_id, DAVE.node_id],
                        "order": sorted(
                            [CAROL.node_id, DAVE.node_id], key=lambda x: _h(signature + x.encode())
                        ),
                    },
                },
                {"receipt.bin": r, "ack.bin": ack},
            ),
        )

    def allowed(counted: int) -> int:
        return math.ceil(1.1 * counted) + 8

    judged = [
        ("judge-pass", "greedy, honest", (20, 10), (20, 10), [1] * 10, True, ""),
        (
            "judge-inflated-prompt",
            "a claim over ceil(1.1 n) + 8",
            (allowed(20) + 1, 10),
            (20, 10),
            [1] * 10,
            True,
            "inflated_prompt",
        ),
        (
            "judge-inflated-completion",
            "a claim over ceil(1.1 m) + 8",
            (20, allowed(10) + 1),
            (20, 10),
            [1] * 10,
            True,
            "inflated_completion",
        ),
        (
            "judge-greedy-floor",
            "greedy: 5 far tokens of 10, under the floor of 6",
            (20, 10),
            (20, 10),
            [1] * 5 + [3] * 5,
            True,
            "",
        ),
        (
            "judge-greedy-wrong",
            "greedy: 6 of 10 rank below the top 2",
            (20, 10),
            (20, 10),
            [1] * 4 + [3] * 6,
            True,
            "wrong_output",
        ),
        (
            "judge-sampled-wrong",
            "sampled: 8 of 10 below the top 40",
            (20, 10),
            (20, 10),
            [1] * 2 + [41] * 8,
            False,
            "wrong_output",
        ),
        (
            "judge-window",
            "greedy: 6 far within 32 tokens of 100 (6%)",
            (20, 100),
            (20, 100),
            [1] * 60 + [9] * 6 + [1] * 34,
            True,
            "wrong_output",
        ),
        (
            "judge-spread",
            "greedy: 6 far spread so no 32 in a row hold 6",
            (20, 96),
            (20, 96),
            ([1] * 15 + [9]) * 6,
            True,
            "",
        ),
        ("judge-short", "7 tokens: too few to judge by rank", (20, 7), (20, 7), [99] * 7, True, ""),
    ]
    for name, description, claimed, counted, ranks, greedy, reason in judged:
        yield (
            name,
            Case(
                {
                    "description": description,
                    "claimed": list(claimed),
                    "counted": list(counted),
                    "ranks": ranks,
                    "greedy": greedy,
                    "expect": {"passed": reason == "", "reason": reason},
                }
            ),
        )


def report_cases() -> Iterator[tuple[str, Case]]:
    r = _receipt()
    sampled = None
    for seq in range(1, 200):  # an acknowledgement whose draw is under 500,000 ppm
        ack = _ack(r, seq=seq, at_ms=NOW_MS + 100 + seq)
        signature = codec.decode(ack)[1]  # type: ignore[index]
        if int.from_bytes(_h(SPOT_DOMAIN + signature)[:8], "big") < 2**63:  # type: ignore[operator]
            sampled = ack
            break
    assert sampled is not None
    pair_id = _h(codec.encode([r, sampled]))

    def report(signer: NodeKey) -> bytes:
        payload = codec.encode(
            {
                "ack": sampled,
                "detail": "7 of 8 tokens rank below the top 2",
                "reason": "wrong_output",
                "receipt": r,
            }
        )
        return seal(
            signer, "rewards.fraud", payload, seq=NOW_MS, now_ms=NOW_MS + 1000, lifetime_ms=60_000
        )

    def key(node: NodeKey, named: bytes = pair_id) -> str:
        return f"member.{node.node_id}.fraud.{named.hex()[:16]}"

    for name, description, parameter, value, ppm, refused in (
        (
            "report-upheld",
            "carol reports alice's answer to bob",
            key(CAROL),
            report(CAROL),
            500_000,
            None,
        ),
        (
            "report-wrong-signer",
            "filed under dave, signed by carol",
            key(DAVE),
            report(CAROL),
            500_000,
            "wrong_signer",
        ),
        ("report-party", "bob, the requester, reports it", key(BOB), report(BOB), 500_000, "party"),
        (
            "report-not-sampled",
            "at 0 ppm no pair is sampled",
            key(CAROL),
            report(CAROL),
            0,
            "not_sampled",
        ),
        (
            "report-wrong-pair",
            "the parameter names another pair",
            key(CAROL, bytes(32)),
            report(CAROL),
            500_000,
            "wrong_pair",
        ),
    ):
        expect: dict[str, Any] = (
            {"refused": refused}
            if refused
            else {
                "ok": {"checker": CAROL.node_id, "server": ALICE.node_id, "reason": "wrong_output"}
            }
        )
        yield (
            name,
            Case(
                {
                    "description": description,
                    "parameter": parameter,
                    "spot_ppm": ppm,
                    "expect": expect,
                },
                {"value.bin": value},
            ),
        )


def rewards_cases() -> Iterator[tuple[str, Case]]:
    yield from pair_cases()
    yield from merkle_cases()
    yield from digest_cases()
    yield from params_cases()
    yield from reward_cases()
    yield from spot_cases()
    yield from report_cases()
