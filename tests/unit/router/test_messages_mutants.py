"""Receipt rules of fpai_node/router/messages.py that a mutation pass (issue 23) found unpinned:
the replay check is per (server, seq), a pair is forgotten exactly when its receipt expires, the
table of live pairs is bounded, counts stay below 2^63, and what makes a request id a probe's."""

import pytest

from fpai_node.identity import NodeKey
from fpai_node.router.messages import (
    PROBE_ID_PREFIX,
    InferRequest,
    Receipt,
    ReceiptRejected,
    Received,
    SeenReceipts,
    check_receipt,
    is_probe,
    read_stored_receipt,
    seal_receipt,
)
from fpai_node.wire.errors import Replayed

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SERVER = NodeKey.from_seed(bytes(range(32)))
ENTRY = NodeKey.from_seed(bytes(range(1, 33)))
OTHER_SERVER = NodeKey.from_seed(bytes(range(2, 34)))
MODEL = "gemma-3-270m"
REQUEST = InferRequest("completion", b'{"prompt":"hi"}', "req-1", (ENTRY.node_id,))


def receipt(key: NodeKey, *, seq: int = 1, prompt: int = 3, completion: int = 5) -> bytes:
    return seal_receipt(
        key,
        REQUEST,
        model=MODEL,
        prompt_tokens=prompt,
        completion_tokens=completion,
        seq=seq,
        now_ms=NOW,
    )


def check(frame: bytes, server: NodeKey, seen: SeenReceipts) -> Receipt:
    return check_receipt(
        frame,
        request=REQUEST,
        model=MODEL,
        server=server.node_id,
        now_ms=NOW + 1,
        seen=seen,
        received=Received(answer_bytes=40),
    )


def test_two_servers_may_number_their_receipts_alike() -> None:
    """RECEIPT-2: the replay check is on the pair (`from`, `seq`); each server numbers its
    receipts with its own counter, so seq 1 of one server says nothing about another's."""
    seen = SeenReceipts()
    assert check(receipt(SERVER), SERVER, seen).server == SERVER.node_id
    assert check(receipt(OTHER_SERVER), OTHER_SERVER, seen).server == OTHER_SERVER.node_id
    with pytest.raises(ReceiptRejected) as info:
        check(receipt(SERVER), SERVER, seen)
    assert info.value.reason == "replay"


def test_a_pair_is_live_until_the_instant_its_receipt_expires() -> None:
    """RECEIPT-2 refuses a pair accepted before *while live*; VERIFY-9: a receipt is expired
    from `exp` on (`exp <= now`). So the pair is remembered through exp - 1 and not at exp."""
    seen = SeenReceipts()
    seen.accept("s", 1, expires_ms=100, now_ms=50)
    with pytest.raises(Replayed):
        seen.accept("s", 1, expires_ms=200, now_ms=99)
    seen.accept("s", 1, expires_ms=200, now_ms=100)  # the first one has expired: a new life
    with pytest.raises(Replayed):
        seen.accept("s", 1, expires_ms=300, now_ms=150)


def test_the_table_of_live_pairs_never_holds_more_than_max_entries() -> None:
    """Memory is bounded by `max_entries`: a full table forgets its oldest live pair, whose
    receipt expires soon after, before it checks the next one; the newest stay remembered."""
    seen = SeenReceipts(max_entries=2)
    for seq in (1, 2, 3):  # the third pushes out the first: the table holds 2 and 3
        seen.accept("s", seq, expires_ms=1_000, now_ms=0)
    seen.accept("s", 2, expires_ms=1_000, now_ms=0)  # full again: 2, the oldest, went first
    with pytest.raises(Replayed):
        seen.accept("s", 2, expires_ms=1_000, now_ms=0)  # the newest is remembered


@pytest.mark.parametrize("field", ["prompt", "completion"])
def test_receipt_counts_are_below_2_to_the_63(field: str) -> None:
    """RECEIPT-1 counts are uint, and specs/0010 (RWD digests) carries them below 2^63: a
    receipt claiming 2^63 tokens or more is malformed, not a very large bill."""
    largest = read_stored_receipt(receipt(SERVER, **{field: (1 << 63) - 1}))
    assert getattr(largest, f"{field}_tokens") == (1 << 63) - 1
    for too_many in (1 << 63, (1 << 64) - 1):
        with pytest.raises(ReceiptRejected) as info:
            read_stored_receipt(receipt(SERVER, **{field: too_many}))
        assert info.value.reason == "malformed"


def test_a_probe_is_a_request_whose_id_starts_with_probe() -> None:
    """ROUTE-9: a probe's request id starts with `probe-`; its receipt is nobody's usage."""
    assert PROBE_ID_PREFIX == "probe-"
    assert is_probe("probe-0123abcd") and is_probe("probe-")
    assert not is_probe("req-1") and not is_probe("probe") and not is_probe("xprobe-1")
