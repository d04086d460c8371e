"""Spot checks: which pairs are checked, by whom, the rule a checker applies to a scored answer,
and the fraud reports it files (specs/0010-rewards.md RWD-10..RWD-13). Pure.
"""

import hashlib
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from fpai_node.identity.keys import NodeKey
from fpai_node.rewards.params import PPM
from fpai_node.router.acks import Pair, read_pair
from fpai_node.router.messages import ReceiptRejected
from fpai_node.wire import codec
from fpai_node.wire.envelope import open_kept, seal
from fpai_node.wire.errors import MalformedFrame, WireError

SPOT_DOMAIN = b"FPAI-SPOT-V1\x00"  # RWD-10: what the acknowledgement's signature is hashed with
SPOT_PATH = "/fpai/peer/v1/spot"
MAX_SPOT_OUTPUT_BYTES = 1 << 20  # RWD-11: longer answers are not checked
MAX_SPOT_BODY_BYTES = 5 << 20  # RWD-11: a 4 MiB request, a 1 MiB answer, the pair
CHECKABLE_APIS = ("chat", "completion")  # RWD-10: embeddings are not sampled in this version
REPORT_TYPE = "rewards.fraud"
REPORT_LIFETIME_MS = 60_000  # read at its own timestamp, like a digest
MAX_REPORT_BYTES = 8192  # RWD-13: a receipt, an acknowledgement and a sentence
MAX_DETAIL_BYTES = 256
KEEP_REPORTS = 16  # RWD-13: with 8 digests and 32 ballots, within REG-16's 64 parameters
REPORT_EPOCHS = 8  # RWD-13: reports of older epochs are deleted
# RWD-12's thresholds, from benchmarks/spot_check_calibration.py on the bundled model: honest
# answers re-tokenized took 1.00 to 1.25 times the tokens generated (never fewer), so a claim
# above the checker's count by more than 10% and 8 is not re-tokenization
COUNT_SLACK = 1.1
COUNT_EXTRA = 8  # special tokens no text shows (RECEIPT-2's 8)
MIN_JUDGED_TOKENS = 8  # fewer tokens say too little about where they came from
# Greedy: near-ties flip between one-pass scoring and token-by-token generation (up to 5 of 48
# tokens at rank 2-3); sampled: nucleus tokens and re-tokenized splits rank far more often.
GREEDY_RANK, GREEDY_SHARE, GREEDY_FLOOR = 2, 0.10, 6
SAMPLED_RANK, SAMPLED_SHARE, SAMPLED_FLOOR = 40, 0.15, 8
WINDOW = 32  # a cheat's wrong tokens bunch up where it starts: counted in any 32 in a row
REASONS = ("inflated_prompt", "inflated_completion", "wrong_output")
_REPORT_KEY = re.compile(r"member\.(fpn1[a-z2-7]{32})\.fraud\.([0-9a-f]{16})")


def ack_signature(ack_frame: bytes) -> bytes:
    """The acknowledgement's Ed25519 signature: the second element of its frame."""
    outer = codec.decode(ack_frame)
    if not (isinstance(outer, list) and len(outer) == 2 and type(outer[1]) is bytes):
        raise MalformedFrame("a frame is [signed, signature]")
    return outer[1]


def threshold(spot_ppm: int) -> int:
    return spot_ppm * (1 << 64) // PPM


def is_sampled(pair: Pair, api: str | None, spot_ppm: int) -> bool:
    """RWD-10: a counted text answer from named weights, chosen by the requester's signature.
    `api` is the request's, when the caller knows it (None: do not exclude by api)."""
    if not pair.ack.counts or len(pair.receipt.weights) != 32:
        return False
    if api is not None and api not in CHECKABLE_APIS:
        return False
    draw = hashlib.sha256(SPOT_DOMAIN + ack_signature(pair.ack_frame)).digest()[:8]
    return int.from_bytes(draw, "big") < threshold(spot_ppm)


def checkers(pair: Pair, serving: Iterable[str]) -> list[str]:
    """RWD-11: who checks `pair`, in order: the model's servers other than its two parties,
    by SHA-256 of the acknowledgement's signature and the node id."""
    signature = ack_signature(pair.ack_frame)
    parties = {pair.receipt.server, pair.receipt.requester}
    return sorted(
        (n for n in set(serving) if n not in parties),
        key=lambda n: hashlib.sha256(signature + n.encode("utf-8")).digest(),
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    reason: str  # "" when it passed
    detail: str


def judge(
    *,
    claimed_prompt: int,
    claimed_completion: int,
    counted_prompt: int,
    counted_completion: int,
    ranks: Sequence[int],
    greedy: bool,
) -> Verdict:
    """RWD-12: the receipt's counts against the checker's own, then where the answer's tokens
    rank under the model."""
    if claimed_prompt > _allowed(counted_prompt):
        return Verdict(
            False, "inflated_prompt", f"{claimed_prompt} claimed, {counted_prompt} counted"
        )
    if claimed_completion > _allowed(counted_completion):
        return Verdict(
            False,
            "inflated_completion",
            f"{claimed_completion} claimed, {counted_completion} counted",
        )
    if len(ranks) >= MIN_JUDGED_TOKENS:
        rank, share, floor = (
            (GREEDY_RANK, GREEDY_SHARE, GREEDY_FLOOR)
            if greedy
            else (SAMPLED_RANK, SAMPLED_SHARE, SAMPLED_FLOOR)
        )
        far = [1 if r > rank else 0 for r in ranks]
        bunched = max(sum(far[i : i + WINDOW]) for i in range(max(1, len(far) - WINDOW + 1)))
        total = sum(far)
        if (total > share * len(ranks) and total >= floor) or bunched >= floor:
            detail = f"{total} of {len(ranks)} tokens rank below the top {rank}"
            return Verdict(False, "wrong_output", detail)
    return Verdict(True, "", "")


def _allowed(counted: int) -> int:
    return math.ceil(COUNT_SLACK * counted) + COUNT_EXTRA


# ---- fraud reports (RWD-13) ------------------------------------------------------------------


def report_parameter(node_id: str, pair: Pair) -> str:
    return f"member.{node_id}.fraud.{pair.id.hex()[:16]}"


def parse_report_parameter(key: str) -> tuple[str, str] | None:
    """(checker's node id, the pair id's first 16 hex digits), or None for any other key."""
    match = _REPORT_KEY.fullmatch(key)
    return (match[1], match[2]) if match else None


def seal_report(key: NodeKey, pair: Pair, verdict: Verdict, now_ms: int) -> bytes:
    detail = verdict.detail.encode("utf-8")[:MAX_DETAIL_BYTES].decode("utf-8", "ignore")
    payload = codec.encode(
        {
            "ack": pair.ack_frame,
            "detail": detail,
            "reason": verdict.reason,
            "receipt": pair.receipt_frame,
        }
    )
    return seal(
        key, REPORT_TYPE, payload, seq=now_ms, now_ms=now_ms, lifetime_ms=REPORT_LIFETIME_MS
    )


@dataclass(frozen=True, slots=True)
class Report:
    checker: str
    pair: Pair
    reason: str
    detail: str

    @property
    def server(self) -> str:
        return self.pair.receipt.server


def read_report(key: str, value: codec.Value, spot_ppm: int) -> Report:
    """RWD-13's checks of the record at registry parameter `key`; ReceiptRejected names the
    first that fails. An upheld report is one this returns."""
    named = parse_report_parameter(key)
    if named is None:
        raise ReceiptRejected("malformed", "not a fraud report's parameter")
    if type(value) is not bytes or len(value) > MAX_REPORT_BYTES:
        raise ReceiptRejected("malformed", f"a report is an envelope of at most {MAX_REPORT_BYTES}")
    try:
        envelope = open_kept(value, known_types={REPORT_TYPE})
        fields = codec.decode(envelope.payload)
        if not isinstance(fields, dict) or fields.keys() != {"ack", "detail", "reason", "receipt"}:
            raise MalformedFrame("a report is {ack, detail, reason, receipt}")
    except WireError as exc:
        raise ReceiptRejected(exc.reason, str(exc)) from None
    reason, detail, receipt, ack = (
        fields["reason"],
        fields["detail"],
        fields["receipt"],
        fields["ack"],
    )
    if reason not in REASONS:
        raise ReceiptRejected("malformed", f"reason is one of {REASONS}")
    if type(detail) is not str or len(detail.encode("utf-8")) > MAX_DETAIL_BYTES:
        raise ReceiptRejected("malformed", f"detail is at most {MAX_DETAIL_BYTES} bytes")
    if type(receipt) is not bytes or type(ack) is not bytes:
        raise ReceiptRejected("malformed", "receipt and ack are frames")
    if envelope.sender != named[0]:
        raise ReceiptRejected("wrong_signer", "a report is signed by the member it is filed under")
    pair = read_pair(receipt, ack)
    if pair.id.hex()[:16] != named[1]:
        raise ReceiptRejected("wrong_pair", "the parameter names another pair")
    if envelope.sender in (pair.receipt.server, pair.receipt.requester):
        raise ReceiptRejected("party", "a party to the pair cannot check it")
    if not is_sampled(pair, None, spot_ppm):
        raise ReceiptRejected("not_sampled", "the pair was not chosen for a check")
    return Report(envelope.sender, pair, reason, detail)


def penalized(
    reports: Iterable[Report], epoch_of: Callable[[int], int], quorum: int
) -> dict[int, frozenset[str]]:
    """RWD-13: per epoch, the servers reported by at least `quorum` distinct checkers."""
    by: defaultdict[tuple[int, str], set[str]] = defaultdict(set)
    for report in reports:
        by[(epoch_of(report.pair.receipt.at_ms), report.server)].add(report.checker)
    result: defaultdict[int, set[str]] = defaultdict(set)
    for (epoch, server), reporters in by.items():
        if len(reporters) >= quorum:
            result[epoch].add(server)
    return {epoch: frozenset(servers) for epoch, servers in result.items()}
