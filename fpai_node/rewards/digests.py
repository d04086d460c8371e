"""A member's digest of an epoch: its pairs summed per (peer, model, weights), the Merkle root of
their ids, and the signed record it commits to the registry (specs/0010-rewards.md RWD-5,
RWD-6). Pure.
"""

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from fpai_node.identity.keys import NodeKey
from fpai_node.identity.nodeid import is_node_id
from fpai_node.rewards.params import EPOCH_S_RANGE
from fpai_node.router.acks import Pair
from fpai_node.wire import codec
from fpai_node.wire.envelope import Envelope, open_kept, seal
from fpai_node.wire.errors import MalformedFrame, WireError

DIGEST_TYPE = "rewards.digest"
DIGEST_LIFETIME_MS = 60_000  # read at its own timestamp (RWD-6), like a kept receipt
MAX_ROWS = 256  # RWD-5: 256 rows of about 110 bytes each fit one registry command twice over
MAX_DIGEST_BYTES = 60_000  # RWD-6: under the registry's 64 KiB command with its framing
MAX_MODEL_BYTES = 256  # RECEIPT-1's model ids
MAX_COUNT = 1 << 63
KEEP_DIGESTS = 8  # RWD-6: with 32 ballots and 16 reports, within REG-16's 64 parameters
# The pairs a restarted node may still need (to commit, to answer RWD-7, to show): those of the
# epochs it keeps digests of, at the longest epoch RWD-4 allows
KEPT_PAIRS_MS = (KEEP_DIGESTS + 1) * EPOCH_S_RANGE[1] * 1000
EMPTY_ROOT = bytes(32)
_KEY = re.compile(r"member\.(fpn1[a-z2-7]{32})\.rewards\.(0|[1-9][0-9]{0,19})")


def digest_parameter(node_id: str, epoch: int) -> str:
    return f"member.{node_id}.rewards.{epoch}"


def parse_digest_parameter(key: str) -> tuple[str, int] | None:
    """(node id, epoch) of a digest parameter's key, or None for any other key."""
    match = _KEY.fullmatch(key)
    return (match[1], int(match[2])) if match and int(match[2]) < 1 << 64 else None


@dataclass(frozen=True, order=True, slots=True)
class RowKey:
    peer: str
    model: str
    weights: bytes

    def to_value(self) -> list[codec.Value]:
        return [self.peer, self.model, self.weights]


@dataclass(slots=True)
class Row:
    requests: int = 0  # pairs that count
    prompt_tokens: int = 0
    completion_tokens: int = 0
    disputed: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Digest:
    node_id: str
    epoch: int
    root: bytes
    pairs: int
    served: dict[RowKey, Row] = field(default_factory=dict)
    used: dict[RowKey, Row] = field(default_factory=dict)
    at_ms: int = 0  # the record's timestamp


def leaf_hash(pair_id: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + pair_id).digest()


def merkle_root(ids: Iterable[bytes]) -> bytes:
    """RWD-5: over the ids in ascending order; 0x00/0x01 prefixes keep a leaf from passing
    for an inner node; an odd last node is carried up; no ids, 32 zero bytes."""
    level = [leaf_hash(i) for i in sorted(ids)]
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        level = [
            hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
            if i + 1 < len(level)
            else level[i]
            for i in range(0, len(level), 2)
        ]
    return level[0]


def summarize(node_id: str, epoch: int, pairs: Iterable[Pair]) -> Digest:
    """RWD-5: `node_id`'s pairs of `epoch` (the caller picks them by time) as rows and a root.
    Pairs `node_id` is no party of are ignored; each pair counts once, by id."""
    served: dict[RowKey, Row] = {}
    used: dict[RowKey, Row] = {}
    ids: set[bytes] = set()
    for pair in pairs:
        receipt, ack = pair.receipt, pair.ack
        if pair.id in ids or node_id not in (receipt.server, receipt.requester):
            continue
        ids.add(pair.id)
        if receipt.server == node_id:
            table, peer = served, receipt.requester
        else:
            table, peer = used, receipt.server
        row = table.setdefault(RowKey(peer, receipt.model, receipt.weights), Row())
        if ack.counts:
            row.requests += 1
            row.prompt_tokens += ack.prompt_tokens
            row.completion_tokens += ack.completion_tokens
        else:
            row.disputed += 1
    return Digest(node_id, epoch, merkle_root(ids), len(ids), _kept(served), _kept(used))


def _kept(rows: dict[RowKey, Row]) -> dict[RowKey, Row]:
    """RWD-5: at most MAX_ROWS, the largest by tokens, ties to the smaller key; counts
    clamped below 2^63 (no honest epoch comes near)."""
    ranked = sorted(rows.items(), key=lambda item: (-item[1].tokens, _order(item[0])))
    kept = {key: _clamped(row) for key, row in ranked[:MAX_ROWS]}
    return dict(sorted(kept.items(), key=lambda item: _order(item[0])))


def _clamped(row: Row) -> Row:
    top = MAX_COUNT - 1
    return Row(
        min(row.requests, top),
        min(row.prompt_tokens, top),
        min(row.completion_tokens, top),
        min(row.disputed, top),
    )


def _order(key: RowKey) -> bytes:
    """The canonical order of RWD-5: the canonical bytes of [peer, model, weights]."""
    return codec.encode(key.to_value())


def _rows_value(rows: dict[RowKey, Row]) -> list[codec.Value]:
    return [
        [*key.to_value(), r.requests, r.prompt_tokens, r.completion_tokens, r.disputed]
        for key, r in rows.items()
    ]


def seal_digest(key: NodeKey, digest: Digest, now_ms: int) -> bytes:
    """RWD-6: the record `key`'s node commits as `member.<N>.rewards.<E>`."""
    payload = codec.encode(
        {
            "epoch": digest.epoch,
            "pairs": digest.pairs,
            "root": digest.root,
            "served": _rows_value(digest.served),
            "used": _rows_value(digest.used),
        }
    )
    frame = seal(
        key, DIGEST_TYPE, payload, seq=now_ms, now_ms=now_ms, lifetime_ms=DIGEST_LIFETIME_MS
    )
    if len(frame) > MAX_DIGEST_BYTES:  # cannot happen within MAX_ROWS and MAX_MODEL_BYTES
        raise ValueError(f"a digest of {len(frame)} bytes exceeds {MAX_DIGEST_BYTES}")
    return frame


class DigestRefused(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def read_digest(node_id: str, epoch: int, value: codec.Value, deadline_ms: int) -> Digest:
    """RWD-6's checks of the record at `member.<node_id>.rewards.<epoch>`, in the spec's order;
    DigestRefused names the first that fails."""
    if type(value) is not bytes or len(value) > MAX_DIGEST_BYTES:
        raise DigestRefused("malformed", f"a digest is an envelope of at most {MAX_DIGEST_BYTES}")
    try:
        envelope = open_kept(value, known_types={DIGEST_TYPE})
        if envelope.sender != node_id:
            raise DigestRefused("wrong_signer", "not signed by the member it is filed under")
        digest = _digest(envelope)
    except WireError as exc:
        raise DigestRefused(exc.reason, str(exc)) from None
    if digest.epoch != epoch:
        raise DigestRefused("wrong_epoch", f"the record says epoch {digest.epoch}")
    if envelope.timestamp_ms > deadline_ms:
        raise DigestRefused("late_digest", "signed after the epoch's deadline")
    return digest


def _digest(envelope: Envelope) -> Digest:
    value = codec.decode(envelope.payload)
    keys = {"epoch", "pairs", "root", "served", "used"}
    if not isinstance(value, dict) or value.keys() != keys:
        raise MalformedFrame(f"expected a map with exactly the keys {sorted(keys)}")
    epoch, pairs, root = value["epoch"], value["pairs"], value["root"]
    if type(epoch) is not int or not 0 <= epoch < 1 << 64:
        raise MalformedFrame("epoch is a uint")
    if type(pairs) is not int or not 0 <= pairs < MAX_COUNT:
        raise MalformedFrame("pairs is a uint below 2^63")
    if type(root) is not bytes or len(root) != 32:
        raise MalformedFrame("root is 32 bytes")
    return Digest(
        envelope.sender,
        epoch,
        root,
        pairs,
        _rows(value["served"], envelope.sender),
        _rows(value["used"], envelope.sender),
        envelope.timestamp_ms,
    )


def _rows(value: codec.Value, own: str) -> dict[RowKey, Row]:
    if not isinstance(value, list) or len(value) > MAX_ROWS:
        raise MalformedFrame(f"rows are an array of at most {MAX_ROWS}")
    rows: dict[RowKey, Row] = {}
    previous = b""
    for item in value:
        if not isinstance(item, list) or len(item) != 7:
            raise MalformedFrame(
                "a row is [peer, model, weights, requests, prompt, completion, disputed]"
            )
        peer, model, weights, *counts = item
        if type(peer) is not str or not is_node_id(peer) or peer == own:
            raise MalformedFrame("a row's peer is another node's id")
        if type(model) is not str or len(model.encode("utf-8")) > MAX_MODEL_BYTES:
            raise MalformedFrame(f"a row's model is a string of at most {MAX_MODEL_BYTES} bytes")
        if type(weights) is not bytes or len(weights) not in (0, 32):
            raise MalformedFrame("a row's weights are 0 or 32 bytes")
        if not all(type(c) is int and 0 <= c < MAX_COUNT for c in counts):
            raise MalformedFrame("a row's counts are uints below 2^63")
        key = RowKey(peer, model, weights)
        order = _order(key)
        if order <= previous:
            raise MalformedFrame("rows are in ascending order, each key once")
        previous = order
        rows[key] = Row(*counts)  # type: ignore[arg-type]
    return rows
