"""Acknowledgements and pairs (fpai_node/router/acks.py, specs/0010-rewards.md RWD-1..RWD-3):
what a requester signs, the checks that make a pair, and decoders that survive any input."""

import contextlib
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fpai_node.identity import NodeKey
from fpai_node.router.acks import (
    MAX_ACKS_PER_BATCH,
    OK,
    acknowledge,
    decode_acks,
    encode_acks,
    pair_id,
    read_ack,
    read_pair,
    receipt_hash,
)
from fpai_node.router.messages import (
    RECEIPT_TYPE,
    InferRequest,
    ReceiptRejected,
    read_stored_receipt,
    seal_receipt,
)
from fpai_node.wire import codec
from fpai_node.wire.envelope import seal
from fpai_node.wire.errors import MalformedFrame

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SERVER = NodeKey.from_seed(bytes(range(32)))
REQUESTER = NodeKey.from_seed(bytes(range(1, 33)))
OTHER = NodeKey.from_seed(bytes(range(2, 34)))
BODY = b'{"model":"m","prompt":"hi"}'
OUTPUT = hashlib.sha256(b"Hello").digest()
WEIGHTS = hashlib.sha256(b"the weights").digest()


def receipt_frame(server: NodeKey = SERVER, requester: NodeKey = REQUESTER) -> bytes:
    request = InferRequest("completion", BODY, "req-1", (requester.node_id,))
    return seal_receipt(
        server,
        request,
        model="m",
        prompt_tokens=3,
        completion_tokens=5,
        seq=1,
        now_ms=NOW,
        weights=WEIGHTS,
    )


def ack_frame(
    frame: bytes,
    signer: NodeKey = REQUESTER,
    *,
    verdict: str = OK,
    at_ms: int = NOW + 100,
    receipt: bytes | None = None,
) -> bytes:
    parsed = read_stored_receipt(receipt or frame)
    pair = acknowledge(signer, frame, parsed, output=OUTPUT, verdict=verdict, seq=7, now_ms=at_ms)
    return pair.ack_frame


def test_an_acknowledgement_carries_the_receipts_hash_counts_and_output() -> None:
    frame = receipt_frame()
    ack = read_ack(ack_frame(frame))
    assert ack.requester == REQUESTER.node_id
    assert ack.server == SERVER.node_id
    assert ack.receipt == hashlib.sha256(frame).digest() == receipt_hash(frame)
    assert (ack.prompt_tokens, ack.completion_tokens, ack.verdict) == (3, 5, OK)
    assert ack.output == OUTPUT
    assert ack.at_ms == NOW + 100
    assert ack.counts


def test_a_disputed_receipt_is_acknowledged_without_counts() -> None:
    ack = read_ack(ack_frame(receipt_frame(), verdict="inflated_completion"))
    assert (ack.prompt_tokens, ack.completion_tokens) == (0, 0)
    assert not ack.counts


def test_a_pair_is_the_receipt_and_its_acknowledgement() -> None:
    frame = receipt_frame()
    ack = ack_frame(frame)
    pair = read_pair(frame, ack)
    assert pair.receipt.weights == WEIGHTS
    assert pair.id == hashlib.sha256(codec.encode([frame, ack])).digest() == pair_id(frame, ack)
    assert pair.epoch_ms == NOW


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        # signed by a node that is not the receipt's requester
        (lambda f: ack_frame(f, OTHER), "wrong_requester"),
        # signed long after the receipt expired: a requester acknowledges what it just checked
        (lambda f: ack_frame(f, at_ms=NOW + 91_000), "late_ack"),
        (lambda f: ack_frame(f, at_ms=NOW - 31_000), "late_ack"),
    ],
)
def test_a_pair_that_does_not_hold_together_is_refused(make: object, reason: str) -> None:
    frame = receipt_frame()
    with pytest.raises(ReceiptRejected) as info:
        read_pair(frame, make(frame))  # type: ignore[operator]
    assert info.value.reason == reason


def test_an_acknowledgement_of_another_receipt_is_wrong_receipt() -> None:
    mine, other = receipt_frame(), receipt_frame(OTHER, REQUESTER)
    with pytest.raises(ReceiptRejected) as info:
        read_pair(mine, ack_frame(other))
    assert info.value.reason == "wrong_receipt"


def test_an_acknowledgement_naming_another_server_is_wrong_server() -> None:
    frame = receipt_frame()
    payload = codec.encode(
        {
            "completion_tokens": 5,
            "output": OUTPUT,
            "prompt_tokens": 3,
            "receipt": receipt_hash(frame),
            "server": OTHER.node_id,
            "verdict": OK,
        }
    )
    forged = seal(REQUESTER, "usage.ack", payload, seq=1, now_ms=NOW + 1, lifetime_ms=60_000)
    with pytest.raises(ReceiptRejected) as info:
        read_pair(frame, forged)
    assert info.value.reason == "wrong_server"


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"completion_tokens": 6}, "wrong_counts"),  # an accepted receipt's counts, exactly
        ({"verdict": "inflated_prompt", "prompt_tokens": 3}, "malformed"),
        ({"verdict": "Not A Verdict"}, "malformed"),
        ({"output": b"short"}, "malformed"),
        ({"receipt": b"\x00" * 31}, "malformed"),
        ({"server": REQUESTER.node_id}, "malformed"),  # acknowledging itself
        ({"server": "not-a-node"}, "malformed"),
        ({"prompt_tokens": -1}, "malformed"),
        ({"extra": 1}, "malformed"),
    ],
)
def test_a_bad_acknowledgement_payload_is_refused(override: dict[str, object], reason: str) -> None:
    frame = receipt_frame()
    fields: dict[str, object] = {
        "completion_tokens": 5,
        "output": OUTPUT,
        "prompt_tokens": 3,
        "receipt": receipt_hash(frame),
        "server": SERVER.node_id,
        "verdict": OK,
    }
    fields.update(override)
    payload = codec.encode(fields)  # type: ignore[arg-type]
    forged = seal(REQUESTER, "usage.ack", payload, seq=1, now_ms=NOW + 1, lifetime_ms=60_000)
    with pytest.raises(ReceiptRejected) as info:
        read_pair(frame, forged)
    assert info.value.reason == reason


def test_a_receipt_is_not_an_acknowledgement() -> None:
    frame = receipt_frame()
    with pytest.raises(ReceiptRejected) as info:
        read_ack(frame)
    assert info.value.reason == "unknown_type"
    fake = seal(REQUESTER, RECEIPT_TYPE, b"\x80", seq=1, now_ms=NOW, lifetime_ms=60_000)
    with pytest.raises(ReceiptRejected):
        read_pair(frame, fake)


def test_a_batch_holds_1_to_256_small_frames() -> None:
    frames = [ack_frame(receipt_frame())] * 3
    assert decode_acks(encode_acks(frames)) == frames
    for bad in ([], [b"x" * 1025], [b"ok"] * (MAX_ACKS_PER_BATCH + 1), ["text"]):
        with pytest.raises(MalformedFrame):
            decode_acks(codec.encode(bad))  # type: ignore[arg-type]
    with pytest.raises(MalformedFrame):
        decode_acks(codec.encode({"acks": []}))


@given(st.binary(max_size=2048))
def test_any_bytes_are_an_acknowledgement_or_refused(data: bytes) -> None:
    """Paired with a valid acknowledgement and batch read back: readers that refused
    everything would pass the suppressed half alone."""
    valid = ack_frame(receipt_frame())
    assert (read_ack(valid).server, read_ack(valid).requester) == (
        SERVER.node_id,
        REQUESTER.node_id,
    )
    assert decode_acks(encode_acks([valid, valid])) == [valid, valid]
    with contextlib.suppress(ReceiptRejected):
        read_ack(data)
    with contextlib.suppress(MalformedFrame):
        decode_acks(data)


@pytest.mark.parametrize("verdict", [OK, "inflated_completion"])
def test_the_pair_a_requester_builds_is_the_pair_every_reader_reads(verdict: str) -> None:
    """`acknowledge` builds the pair from what it signed, without reading the frame back: it
    must be exactly what read_pair makes of the same frames."""
    frame = receipt_frame()
    built = acknowledge(
        REQUESTER, frame, read_stored_receipt(frame), output=OUTPUT, verdict=verdict,
        seq=3, now_ms=NOW + 5,
    )  # fmt: skip
    read = read_pair(built.receipt_frame, built.ack_frame)
    assert (built.receipt, built.ack, built.id) == (read.receipt, read.ack, read.id)
