"""Epoch digests (fpai_node/rewards/digests.py, specs/0010-rewards.md RWD-5, RWD-6): pairs summed
per peer, model and weights; the Merkle root of their ids; the signed record and every reader's
checks; decoders that survive any input."""

import contextlib
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fpai_node.identity import NodeKey
from fpai_node.rewards.digests import (
    EMPTY_ROOT,
    MAX_ROWS,
    DigestRefused,
    Row,
    RowKey,
    digest_parameter,
    merkle_root,
    parse_digest_parameter,
    read_digest,
    seal_digest,
    summarize,
)
from fpai_node.rewards.params import RewardParams
from fpai_node.router.acks import Pair
from fpai_node.testing.pairs import NOW, WEIGHTS, make_pair
from fpai_node.wire import codec
from fpai_node.wire.envelope import seal

SERVER, REQUESTER, OTHER = (NodeKey.from_seed(bytes([i]) * 32) for i in (7, 8, 9))


def pair(
    server: NodeKey = SERVER,
    requester: NodeKey = REQUESTER,
    *,
    seq: int = 1,
    model: str = "m",
    verdict: str = "ok",
) -> Pair:
    return make_pair(seq, server=server, requester=requester, model=model, verdict=verdict)


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_the_root_is_an_rfc6962_style_tree_over_sorted_ids() -> None:
    a, b, c = (bytes([i]) * 32 for i in (3, 1, 2))
    leaf = {x: h(b"\x00" + x) for x in (a, b, c)}
    assert merkle_root([]) == EMPTY_ROOT
    assert merkle_root([a]) == leaf[a]
    assert merkle_root([a, b]) == h(b"\x01" + leaf[b] + leaf[a])  # ascending: b before a
    # three: the odd last node is carried up unchanged
    assert merkle_root([a, b, c]) == h(b"\x01" + h(b"\x01" + leaf[b] + leaf[c]) + leaf[a])
    assert merkle_root([c, a, b]) == merkle_root([a, b, c])


def test_a_digest_sums_served_and_used_pairs_by_peer_model_and_weights() -> None:
    served = [pair(seq=1), pair(seq=2), pair(seq=3, verdict="inflated_completion")]
    used = [pair(OTHER, SERVER, seq=4)]
    foreign = pair(OTHER, REQUESTER, seq=5)  # SERVER is no party of it
    digest = summarize(SERVER.node_id, 9, [*served, served[0], *used, foreign])
    assert digest.served == {RowKey(REQUESTER.node_id, "m", WEIGHTS): Row(2, 6, 10, 1)}
    assert digest.used == {RowKey(OTHER.node_id, "m", WEIGHTS): Row(1, 3, 5, 0)}
    assert digest.pairs == 4  # the duplicate counts once, the foreign pair not at all
    assert digest.root == merkle_root(p.id for p in [*served, *used])


def test_a_digest_keeps_the_largest_rows() -> None:
    pairs = [pair(seq=i, model=f"model-{i:03d}") for i in range(1, MAX_ROWS + 3)]
    digest = summarize(SERVER.node_id, 9, pairs)
    assert len(digest.served) == MAX_ROWS  # all tie: the smallest keys stay
    assert RowKey(REQUESTER.node_id, "model-001", WEIGHTS) in digest.served
    assert RowKey(REQUESTER.node_id, f"model-{MAX_ROWS + 2:03d}", WEIGHTS) not in digest.served


def test_a_sealed_digest_reads_back_and_every_reader_check_holds() -> None:
    params = RewardParams(epoch_s=60)
    epoch = params.epoch_of(NOW)
    digest = summarize(SERVER.node_id, epoch, [pair(seq=1), pair(OTHER, SERVER, seq=2)])
    frame = seal_digest(SERVER, digest, NOW)
    deadline = params.deadline_ms(epoch)
    back = read_digest(SERVER.node_id, epoch, frame, deadline)
    assert (back.served, back.used, back.root, back.pairs) == (
        digest.served,
        digest.used,
        digest.root,
        digest.pairs,
    )
    for node, named, limit, reason in (
        (OTHER.node_id, epoch, deadline, "wrong_signer"),
        (SERVER.node_id, epoch - 1, deadline, "wrong_epoch"),
        (SERVER.node_id, epoch, NOW - 1, "late_digest"),
    ):
        with pytest.raises(DigestRefused) as refused:
            read_digest(node, named, frame, limit)
        assert refused.value.reason == reason


@pytest.mark.parametrize(
    "rows",
    [
        [[REQUESTER.node_id, "m", b"", 1, 1, 1, 0]] * 2,  # a key twice
        sorted(  # out of order
            ([REQUESTER.node_id, "m", b"", 1, 1, 1, 0], [OTHER.node_id, "m", b"", 1, 1, 1, 0]),
            key=lambda row: codec.encode(row[:3]),  # type: ignore[arg-type]
            reverse=True,
        ),
        [[SERVER.node_id, "m", b"", 1, 1, 1, 0]],  # itself
        [[REQUESTER.node_id, "m", b"x", 1, 1, 1, 0]],  # weights neither 0 nor 32 bytes
        [[REQUESTER.node_id, "m", b"", -1, 1, 1, 0]],
        [[REQUESTER.node_id, "m", b"", 1, 1, 1]],
    ],
)
def test_malformed_rows_are_refused(rows: list[list[object]]) -> None:
    payload = codec.encode(
        {"epoch": 9, "pairs": 1, "root": bytes(32), "served": rows, "used": []}  # type: ignore[dict-item]
    )
    frame = seal(SERVER, "rewards.digest", payload, seq=1, now_ms=NOW, lifetime_ms=60_000)
    with pytest.raises(DigestRefused) as refused:
        read_digest(SERVER.node_id, 9, frame, NOW + 1)
    assert refused.value.reason == "malformed"


def test_digest_parameters_name_a_member_and_an_epoch() -> None:
    key = digest_parameter(SERVER.node_id, 493_921)
    assert parse_digest_parameter(key) == (SERVER.node_id, 493_921)
    for bad in (f"member.{SERVER.node_id}.rewards.01", f"member.{SERVER.node_id}.rewards.x",
                "member.x.rewards.1", f"member.{SERVER.node_id}.rewards.{2**64}"):  # fmt: skip
        assert parse_digest_parameter(bad) is None


@given(st.binary(max_size=4096))
def test_any_bytes_are_a_digest_or_refused(data: bytes) -> None:
    """Paired with a valid digest read back: a reader that refused everything would pass the
    suppressed half alone."""
    digest = summarize(SERVER.node_id, 9, [pair(seq=1)])
    back = read_digest(SERVER.node_id, 9, seal_digest(SERVER, digest, NOW), NOW + 1)
    assert (back.served, back.used, back.root, back.pairs) == (
        digest.served,
        digest.used,
        digest.root,
        1,
    )
    with contextlib.suppress(DigestRefused):
        read_digest(SERVER.node_id, 9, data, NOW)
