"""Generates protocol/ test vectors and constants from the implementation (protocol/FORMATS.md).

    python -m fpai_node.testing.vectors write   # regenerate protocol/vectors and constants.json
    python -m fpai_node.testing.vectors check   # exit 1 if the files on disk differ

The vectors are generated, never edited by hand: a codec change that alters bytes makes
`check` (and tests/conformance) fail until someone regenerates them on purpose.

Where a vector's expectation is the implementation's own output (a public key, an encoding, an
opened envelope, a command's result), the generator also derives it independently, from the spec
and by hand (`expected` below), and refuses to write a vector the two disagree on: a bug present
at generation would otherwise be baked into the vectors that are meant to catch it.
"""

import base64
import hashlib
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fpai_node.gossip import messages as gossip_messages
from fpai_node.gossip import state as gossip_state
from fpai_node.gossip.state import GossipConfig
from fpai_node.identity import NodeKey
from fpai_node.identity.nodeid import NODE_ID_DOMAIN, NODE_ID_LENGTH, NODE_ID_PREFIX
from fpai_node.registry import raft_wire
from fpai_node.registry.state import (
    DEDUP_RETENTION_MS,
    DEFAULT_VOTERS,
    ELECTORS_PARAMETER,
    MAX_MEMBERS,
    MAX_PENDING,
    MAX_VALUE_HEIGHT,
    MEMBER_PARAMETERS,
    MEMBER_RELAYS,
    MEMBER_SERVICES,
    PENDING_EXPIRY_MS,
    VOTER_COUNTS,
    VOTERS_PARAMETER,
    RegistryState,
    encode_command,
)
from fpai_node.registry.state import apply as apply_command
from fpai_node.router import forward as router_forward
from fpai_node.router import messages as router_messages
from fpai_node.router import select as router_select
from fpai_node.wire import codec, envelope, replay
from fpai_node.wire.messages import MESSAGE_TYPES, NONCE_LENGTH, Ping

PROTOCOL_DIR = Path(__file__).resolve().parents[2] / "protocol"
NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: the verifier's clock in every envelope case
ALICE = NodeKey.from_seed(bytes(range(32)))
BOB = NodeKey.from_seed(bytes(range(32, 64)))
NONCE = bytes(range(NONCE_LENGTH))
_JSON_SAFE_INT = 1 << 53


class GeneratorDisagrees(AssertionError):
    """The implementation's output differs from the expectation derived without it."""


def expected(what: str, got: object, derived: object) -> None:
    """Stop generating when the implementation's output is not the independent derivation."""
    if got != derived:
        raise GeneratorDisagrees(f"{what}: the implementation gives {got!r}, expected {derived!r}")


@dataclass
class Case:
    """One vector: `case.json` and binary files, in protocol/vectors/<area>/<name>/."""

    meta: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)

    def rendered(self) -> dict[str, bytes]:
        text = json.dumps(self.meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        return {"case.json": text.encode("utf-8"), **self.files}


def to_json(value: codec.Value) -> Any:
    """Tagged JSON (FORMATS.md): bytes as {"$bin": hex}, integers beyond 2^53 as {"$int": text}."""
    if isinstance(value, bytes):
        return {"$bin": value.hex()}
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if -_JSON_SAFE_INT <= value <= _JSON_SAFE_INT else {"$int": str(value)}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return {"$map": [[k, to_json(v)] for k, v in value.items()]}


def from_json(value: Any) -> codec.Value:
    if isinstance(value, dict):
        if "$bin" in value:
            return bytes.fromhex(value["$bin"])
        if "$int" in value:
            return int(value["$int"])
        return {k: from_json(v) for k, v in value["$map"]}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value  # type: ignore[no-any-return]


# ---- identity ------------------------------------------------------------------------------


def identity_cases() -> Iterator[tuple[str, Case]]:
    for name, seed in (
        ("seed-zero", bytes(32)),
        ("seed-alice", bytes(range(32))),
        ("seed-bob", bytes(range(32, 64))),
        ("seed-ff", b"\xff" * 32),
    ):
        key = NodeKey.from_seed(seed)
        expected(f"identity {name}", (key.public_key, key.node_id), _spec_identity(seed))
        yield (
            name,
            Case(
                {
                    "description": "Ed25519 seed (RFC 8032 private key) -> public key -> node id",
                    "seed": seed.hex(),
                    "public_key": key.public_key.hex(),
                    "node_id": key.node_id,
                }
            ),
        )


def _spec_identity(seed: bytes) -> tuple[bytes, str]:
    """RFC 8032 public key (by the cryptography library) and ID-2's node id, by the spec."""
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    digest = hashlib.sha256(b"FPAI-NODE-ID-V1\x00" + raw).digest()[:20]
    return raw, "fpn1" + base64.b32encode(digest).decode().lower().rstrip("=")


# ---- codec ---------------------------------------------------------------------------------


def _nested(levels: int, inner: codec.Value) -> codec.Value:
    for _ in range(levels):
        inner = [inner]
    return inner


_VALID_VALUES: list[tuple[str, str, codec.Value]] = [
    ("nil", "nil", None),
    ("true", "true", True),
    ("false", "false", False),
    ("uint-0", "positive fixint", 0),
    ("uint-127", "largest positive fixint", 127),
    ("uint-128", "smallest uint8", 128),
    ("uint-255", "largest uint8", 255),
    ("uint-256", "smallest uint16", 256),
    ("uint-65536", "smallest uint32", 65536),
    ("uint-2p32", "smallest uint64", 1 << 32),
    ("uint-max", "largest uint64", (1 << 64) - 1),
    ("int-minus-1", "negative fixint", -1),
    ("int-minus-32", "smallest negative fixint", -32),
    ("int-minus-33", "largest int8 outside fixint", -33),
    ("int-minus-129", "smallest int16 magnitude", -129),
    ("int-min", "smallest int64", -(1 << 63)),
    ("str-empty", "empty string", ""),
    ("str-31", "longest fixstr", "a" * 31),
    ("str-32", "shortest str8", "b" * 32),
    ("str-utf8", "non-ASCII UTF-8", "nœud-ノード"),
    ("bin-empty", "empty bin8", b""),
    ("bin-3", "bin8", b"\x00\x01\xff"),
    ("array-nested", "arrays nest", [1, [2, [3, []]], "x"]),
    ("deepest", "the integer 1 inside 32 nested arrays: level 32", _nested(32, 1)),
    ("map-sorted", "keys sorted by UTF-8 bytes, not insertion", {"b": 1, "a": 2, "B": 3, "aa": 4}),
    ("map-utf8-order", "keys sorted by bytes: 'z' < 'é' < U+30CE", {"\u30ce": 1, "é": 2, "z": 3}),
]

# The valid values above, encoded by hand from the MessagePack spec (formats in comments).
_HAND_ENCODED: dict[str, bytes] = {
    "nil": b"\xc0",
    "true": b"\xc3",
    "false": b"\xc2",
    "uint-0": b"\x00",  # positive fixint 0xxxxxxx
    "uint-127": b"\x7f",
    "uint-128": b"\xcc\x80",  # uint 8
    "uint-255": b"\xcc\xff",
    "uint-256": b"\xcd\x01\x00",  # uint 16, big-endian
    "uint-65536": b"\xce\x00\x01\x00\x00",  # uint 32
    "uint-2p32": b"\xcf\x00\x00\x00\x01\x00\x00\x00\x00",  # uint 64
    "uint-max": b"\xcf" + b"\xff" * 8,
    "int-minus-1": b"\xff",  # negative fixint 111xxxxx
    "int-minus-32": b"\xe0",
    "int-minus-33": b"\xd0\xdf",  # int 8, two's complement
    "int-minus-129": b"\xd1\xff\x7f",  # int 16
    "int-min": b"\xd3\x80" + b"\x00" * 7,  # int 64
    "str-empty": b"\xa0",  # fixstr 101xxxxx
    "str-31": b"\xbf" + b"a" * 31,
    "str-32": b"\xd9\x20" + b"b" * 32,  # str 8
    "str-utf8": b"\xaf" + "nœud-ノード".encode(),  # 15 bytes of UTF-8
    "bin-empty": b"\xc4\x00",  # bin 8
    "bin-3": b"\xc4\x03\x00\x01\xff",
    "array-nested": b"\x93\x01\x92\x02\x92\x03\x90\xa1x",  # fixarray 1001xxxx
    "deepest": b"\x91" * 32 + b"\x01",
    # fixmap 1000xxxx, keys in bytewise order: "B" (0x42) < "a" < "aa" < "b"
    "map-sorted": b"\x84\xa1B\x03\xa1a\x02\xa2aa\x04\xa1b\x01",
    "map-utf8-order": b"\x83\xa1z\x03\xa2\xc3\xa9\x02\xa3\xe3\x83\x8e\x01",  # z, é, U+30CE
}

_INVALID_BYTES: list[tuple[str, str, bytes]] = [
    ("reserved-byte", "0xc1 is never used", b"\xc1"),
    ("truncated", "uint16 with one byte", b"\xcd\x01"),
    ("trailing-bytes", "two values where one is expected", b"\x01\x02"),
    ("nonminimal-uint8", "5 as uint8", b"\xcc\x05"),
    ("nonminimal-uint16", "200 as uint16", b"\xcd\x00\xc8"),
    ("nonminimal-int8-positive", "5 as int8", b"\xd0\x05"),
    ("nonminimal-int16", "-1 as int16", b"\xd1\xff\xff"),
    ("nonminimal-str8", "'a' as str8", b"\xd9\x01a"),
    ("nonminimal-bin16", "1 byte as bin16", b"\xc5\x00\x01\x00"),
    ("nonminimal-array16", "empty array as array16", b"\xdc\x00\x00"),
    ("map-unsorted", "keys 'b' then 'a'", b"\x82\xa1b\x01\xa1a\x02"),
    ("map-duplicate-key", "key 'a' twice", b"\x82\xa1a\x01\xa1a\x02"),
    ("map-int-key", "integer key", b"\x81\x01\x02"),
    ("map-bin-key", "bin key", b"\x81\xc4\x01a\x01"),
    ("float32", "floats are not allowed", b"\xca\x3f\x80\x00\x00"),
    ("float64", "floats are not allowed", b"\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00"),
    ("ext", "extension types are not allowed", b"\xd4\x01\x00"),
    ("timestamp-ext", "the timestamp extension is not allowed", b"\xd6\xff\x00\x00\x00\x00"),
    ("invalid-utf8", "str holding invalid UTF-8", b"\xa1\xff"),
    ("too-deep", "an empty array at level 33", b"\x91" * (codec.MAX_DEPTH + 1) + b"\x90"),
    ("too-deep-scalar", "the integer 1 at level 33", b"\x91" * (codec.MAX_DEPTH + 1) + b"\x01"),
]


def codec_cases() -> Iterator[tuple[str, Case]]:
    for name, description, value in _VALID_VALUES:
        encoded = codec.encode(value)
        expected(f"codec {name}", encoded, _HAND_ENCODED[name])
        yield (
            f"valid-{name}",
            Case(
                {"description": description, "expect": {"ok": to_json(value)}},
                {"encoded.bin": encoded},
            ),
        )
    for name, description, data in _INVALID_BYTES:
        yield (
            f"invalid-{name}",
            Case(
                {"description": description, "expect": {"error": "malformed"}},
                {"encoded.bin": data},
            ),
        )


# ---- envelopes -----------------------------------------------------------------------------


def _header(**changes: Any) -> dict[str, Any]:
    """Alice's valid peer.ping header, with `changes` applied (`_DROP` removes a key)."""
    header: dict[str, Any] = {
        "body": Ping(NONCE).encode(),
        "exp": NOW_MS + envelope.DEFAULT_LIFETIME_MS,
        "from": ALICE.node_id,
        "key": ALICE.public_key,
        "seq": 1,
        "ts": NOW_MS,
        "type": Ping.TYPE,
        "v": envelope.PROTOCOL_VERSION,
    }
    header.update(changes)
    return {k: v for k, v in header.items() if v is not _DROP}


_DROP = object()


def _signed_frame(signed: bytes, signer: NodeKey = ALICE) -> bytes:
    return codec.encode([signed, signer.sign(envelope.SIGNATURE_DOMAIN + signed)])


def _frame(changes: dict[str, Any], signer: NodeKey = ALICE) -> bytes:
    return _signed_frame(codec.encode(_header(**changes)), signer)


def _seal(seq: int, ts: int = NOW_MS, signer: NodeKey = ALICE) -> bytes:
    return envelope.seal(signer, Ping.TYPE, Ping(NONCE).encode(), seq=seq, now_ms=ts)


def _replace_once(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1, f"{old.hex()} is not unique"
    return data.replace(old, new)


def _envelope_case(
    description: str,
    frame: bytes,
    *,
    error: str | None = None,
    now_ms: int = NOW_MS,
    accepted_before: tuple[bytes, ...] = (),
    limits: envelope.Limits = envelope.DEFAULT_LIMITS,
    max_senders: int = replay.DEFAULT_MAX_SENDERS,
    sealed: tuple[int, int] = (1, NOW_MS),
) -> Case:
    """`sealed`: the seq and timestamp of a valid frame (alice's ping), what opening it gives."""
    meta: dict[str, Any] = {
        "description": description,
        "now_ms": now_ms,
        "known_types": sorted(MESSAGE_TYPES),
        "limits": {
            "max_frame_bytes": limits.max_frame_bytes,
            "max_clock_skew_ms": limits.max_clock_skew_ms,
            "max_lifetime_ms": limits.max_lifetime_ms,
        },
        "replay_window": replay.DEFAULT_WINDOW,
        "replay_max_senders": max_senders,
        "accepted_before": [f.hex() for f in accepted_before],
    }
    if error is None:
        env = envelope.open_envelope(
            frame, now_ms=now_ms, known_types=MESSAGE_TYPES, replay_guard=None, limits=limits
        )
        meta["expect"] = {
            "ok": {
                "version": env.version,
                "type": env.type,
                "from": env.sender,
                "key": env.public_key.hex(),
                "seq": env.seq,
                "ts": env.timestamp_ms,
                "exp": env.expires_ms,
                "body": env.payload.hex(),
            }
        }
        seq, ts = sealed
        by_hand = {
            "version": 1,
            "type": "peer.ping",
            "from": ALICE.node_id,
            "key": ALICE.public_key.hex(),
            "seq": seq,
            "ts": ts,
            "exp": ts + 60_000,  # envelope.seal's default lifetime
            "body": codec.encode({"nonce": NONCE}).hex(),  # MSG: peer.ping is {nonce}
        }
        expected(f"envelope {description}", meta["expect"]["ok"], by_hand)
    else:
        meta["expect"] = {"error": error}
    return Case(meta, {"frame.bin": frame})


def envelope_cases() -> Iterator[tuple[str, Case]]:
    valid = _seal(1)
    signed = codec.decode(valid)[0]  # type: ignore[index]
    assert isinstance(signed, bytes)
    sig = codec.decode(valid)[1]  # type: ignore[index]
    assert isinstance(sig, bytes)
    e = _envelope_case
    yield "valid-ping", e("a peer.ping from alice, seq 1, lifetime 60 s", valid)
    yield (
        "valid-reordered",
        e(
            "seq 3 after seq 5: inside the window",
            _seal(3),
            accepted_before=(_seal(5),),
            sealed=(3, NOW_MS),
        ),
    )
    yield (
        "valid-window-edge",
        e(
            "seq 37 after seq 100: offset 63, last slot of the window",
            _seal(37),
            accepted_before=(_seal(100),),
            sealed=(37, NOW_MS),
        ),
    )
    skew = envelope.MAX_CLOCK_SKEW_MS
    yield (
        "valid-max-skew",
        e(
            "timestamp exactly max_clock_skew_ms ahead",
            _seal(1, NOW_MS + skew),
            sealed=(1, NOW_MS + skew),
        ),
    )
    yield (
        "oversized",
        e(
            "frame longer than max_frame_bytes",
            valid,
            error="oversized",
            limits=envelope.Limits(max_frame_bytes=len(valid) - 1),
        ),
    )
    yield "malformed-not-msgpack", e("0xc1 is not MessagePack", b"\xc1", error="malformed")
    yield "malformed-empty", e("zero bytes", b"", error="malformed")
    yield (
        "malformed-trailing-byte",
        e("a valid frame followed by one byte", valid + b"\x00", error="malformed"),
    )
    yield (
        "malformed-three-elements",
        e("outer array of three", codec.encode([signed, sig, b""]), error="malformed"),
    )
    yield (
        "malformed-short-signature",
        e("63-byte signature", codec.encode([signed, sig[:63]]), error="malformed"),
    )
    yield (
        "malformed-header-not-map",
        e("signed part is an array", _signed_frame(codec.encode([1, 2])), error="malformed"),
    )
    yield (
        "malformed-missing-exp",
        e("header without exp, correctly signed", _frame({"exp": _DROP}), error="malformed"),
    )
    yield (
        "malformed-extra-field",
        e("header with an extra key, correctly signed", _frame({"extra": 1}), error="malformed"),
    )
    yield "malformed-seq-string", e("seq is a string", _frame({"seq": "1"}), error="malformed")
    yield (
        "malformed-bad-node-id",
        e("from is not a node id", _frame({"from": "fpn1" + "A" * 32}), error="malformed"),
    )
    noncanonical = _replace_once(codec.encode(_header()), b"\xa3seq\x01", b"\xa3seq\xcd\x00\x01")
    yield (
        "malformed-noncanonical-seq",
        e("seq 1 as uint16, correctly signed", _signed_frame(noncanonical), error="malformed"),
    )
    unsorted = _replace_once(codec.encode(_header()), b"\xa2ts", b"\xa2tt")
    unsorted = _replace_once(unsorted, b"\xa4type", b"\xa4typd")
    yield (
        "malformed-unsorted-keys",
        e(
            "keys out of order ('tt' after 'seq' is fine, 'typd' < 'tt' is not)",
            _signed_frame(unsorted),
            error="malformed",
        ),
    )
    yield "unknown-version", e("v = 2, correctly signed", _frame({"v": 2}), error="unknown_version")
    yield (
        "unknown-type",
        e(
            "a type this node does not know",
            _frame({"type": "peer.teleport"}),
            error="unknown_type",
        ),
    )
    yield (
        "sender-mismatch",
        e(
            "from names bob, key and signature are alice's",
            _frame({"from": BOB.node_id}),
            error="sender_mismatch",
        ),
    )
    max_life = envelope.MAX_LIFETIME_MS
    yield (
        "bad-lifetime-too-long",
        e(
            "exp - ts = max_lifetime_ms + 1",
            _frame({"exp": NOW_MS + max_life + 1}),
            error="bad_lifetime",
        ),
    )
    yield "bad-lifetime-zero", e("exp == ts", _frame({"exp": NOW_MS}), error="bad_lifetime")
    yield (
        "expired",
        e("now == exp", valid, error="expired", now_ms=NOW_MS + envelope.DEFAULT_LIFETIME_MS),
    )
    yield (
        "future-timestamp",
        e(
            "timestamp max_clock_skew_ms + 1 ahead",
            _seal(1, NOW_MS + skew + 1),
            error="future_timestamp",
        ),
    )
    flipped = codec.encode([signed, sig[:-1] + bytes([sig[-1] ^ 0x01])])
    yield (
        "bad-signature-flipped-bit",
        e("last signature byte with one bit flipped", flipped, error="bad_signature"),
    )
    yield (
        "bad-signature-other-signer",
        e(
            "bob's key and id, signed by alice",
            _frame({"key": BOB.public_key, "from": BOB.node_id}, signer=ALICE),
            error="bad_signature",
        ),
    )
    order = 2**252 + 27742317777372353535851937790883648493  # L, the Ed25519 group order
    s_plus_l = (int.from_bytes(sig[32:], "little") + order).to_bytes(32, "little")
    yield (
        "bad-signature-malleated-s",
        e(
            "S replaced by S + L: same curve point, non-canonical scalar",
            codec.encode([signed, sig[:32] + s_plus_l]),
            error="bad_signature",
        ),
    )
    body_changed = _replace_once(signed, NONCE, bytes(NONCE_LENGTH))
    yield (
        "bad-signature-body-changed",
        e("body changed after signing", codec.encode([body_changed, sig]), error="bad_signature"),
    )
    yield "replay", e("the same frame twice", valid, error="replay", accepted_before=(valid,))
    yield (
        "stale-sequence",
        e(
            "seq 36 after seq 100: offset 64, below the window",
            _seal(36),
            error="stale_sequence",
            accepted_before=(_seal(100),),
        ),
    )
    yield (
        "stale-after-eviction",
        e(
            "guard of one sender: bob evicts alice (floor = alice's ts), alice comes back with"
            " seq 6, then alice's old seq 5 is replayed (REPLAY-4)",
            _seal(5, NOW_MS - 1_000),
            error="stale_sequence",
            max_senders=1,
            accepted_before=(_seal(5, NOW_MS - 1_000), _seal(1, NOW_MS, BOB), _seal(6, NOW_MS)),
        ),
    )


# ---- registry ------------------------------------------------------------------------------


def _key(n: int) -> bytes:
    return n.to_bytes(16, "big")


def _command(op: str, n: int, at_offset_ms: int = 0, **args: codec.Value) -> bytes:
    return encode_command(op, args, key=_key(n), by=ALICE.node_id, at_ms=NOW_MS + at_offset_ms)


def _by_bob(op: str, n: int, **args: codec.Value) -> bytes:
    return encode_command(op, args, key=_key(n), by=BOB.node_id, at_ms=NOW_MS)


_ADDRESSES: dict[str, str] = {
    "api": "127.0.0.1:8100",
    "peer": "127.0.0.1:7100",
    "raft": "127.0.0.1:7200",
}


def _add(node: NodeKey, n: int, role: str = "voter") -> bytes:
    args = {"node_id": node.node_id, "role": role, **_ADDRESSES}
    return encode_command("member.add", args, key=_key(n), by=ALICE.node_id, at_ms=NOW_MS)


def _joins(
    node: NodeKey, n: int, by: NodeKey = ALICE, at_offset_ms: int = 0, **addresses: str
) -> bytes:
    """`member.join` of `node`, relayed by `by` (`node` itself: its own join)."""
    args = {"node_id": node.node_id, **_ADDRESSES, **addresses}
    return encode_command(
        "member.join", args, key=_key(n), by=by.node_id, at_ms=NOW_MS + at_offset_ms
    )


_NEWCOMERS = [NodeKey.from_seed(bytes([64 + i]) * 32) for i in range(MEMBER_RELAYS + 1)]


def registry_cases() -> Iterator[tuple[str, Case]]:
    """Command logs from an empty registry: each command's result, then the final snapshot."""
    a, b = ALICE.node_id, BOB.node_id
    logs: list[tuple[str, str, list[bytes]]] = [
        (
            "members",
            "two members join, one becomes a learner, one leaves",
            [
                _add(ALICE, 1),
                _add(BOB, 2),
                _command("member.set_role", 3, node_id=b, role="learner"),
                _command("member.remove", 4, node_id=a),
            ],
        ),
        (
            "models-and-services",
            "models served and unserved; a service; leaving drops models",
            [
                _add(ALICE, 1),
                _add(BOB, 2),
                _command("model.serve", 3, model_id="gemma-3-270m", node_id=a),
                _command("model.serve", 4, model_id="gemma-3-270m", node_id=b),
                _command("model.unserve", 5, model_id="gemma-3-270m", node_id=a),
                _command("service.set", 6, name="api", endpoints=["127.0.0.1:8100"], health="ok"),
                _command("member.remove", 7, node_id=b),
            ],
        ),
        (
            "parameters",
            "any canonical value that a snapshot can hold (29 levels of nesting, not 30); delete",
            [
                _command("param.set", 1, key="split.treasury", value=60),
                _command("param.set", 2, key="nested", value={"b": [1, b"x"], "a": None}),
                _command("param.delete", 3, key="split.treasury"),
                _command("param.set", 4, key="deep", value=_nested(29, [])),
                _command("param.set", 5, key="too-deep", value=_nested(30, 1)),
            ],
        ),
        (
            "join-roles",
            "the first joiner votes, the next learns though seats are free (the leader fills "
            "them, RAFT-11); a rejoin keeps roles",
            [
                _command("param.set", 1, key="registry.voters", value=1),
                _joins(ALICE, 2),
                _joins(BOB, 3),
                _joins(ALICE, 4),
                _command("sync", 5),
                _command("sync", 5),
            ],
        ),
        (
            "electors",
            "REG-13: registry.electors set before anyone joins; Alice, the first member, votes; "
            "Bob, not listed, learns",
            [
                _command("param.set", 1, key="registry.electors", value=[ALICE.node_id]),
                _joins(ALICE, 2),
                _joins(BOB, 3),
            ],
        ),
        (
            "authority",
            "REG-16: Bob, a learner, may write a parameter of his own and leave; not promote "
            "himself nor write the federation's parameters",
            [
                _command("param.set", 1, key="registry.voters", value=1),
                _joins(ALICE, 2),
                _joins(BOB, 3),
                _by_bob("member.set_role", 4, node_id=BOB.node_id, role="voter"),
                _by_bob("param.set", 5, key="registry.voters", value=3),
                _by_bob("member.remove", 6, node_id=ALICE.node_id),
                _by_bob("param.set", 7, key="motd", value="hi"),
                _by_bob("param.set", 8, key=f"member.{BOB.node_id}.motd", value="hi"),
                _by_bob("param.set", 9, key=f"member.{ALICE.node_id}.motd", value="hi"),
                _by_bob("member.remove", 10, node_id=BOB.node_id),
            ],
        ),
        (
            "quotas",
            "REG-16: Bob, a learner, holds at most 64 parameters and 16 services under his own "
            "name, one of them written by Alice, a voter; a change to one he holds is no new "
            "one, a delete frees one, and a key without the full prefix is not his",
            [
                _command("param.set", 1, key="registry.voters", value=1),
                _joins(ALICE, 2),
                _joins(BOB, 3),
                _command("param.set", 4, key=f"member.{BOB.node_id}.by-alice", value=0),
                *(
                    _by_bob("param.set", 5 + i, key=f"member.{BOB.node_id}.k{i}", value=i)
                    for i in range(MEMBER_PARAMETERS)
                ),
                _by_bob("param.set", 100, key=f"member.{BOB.node_id}.k0", value="changed"),
                _by_bob("param.delete", 101, key=f"member.{BOB.node_id}.by-alice"),
                _by_bob(
                    "param.set", 102, key=f"member.{BOB.node_id}.k{MEMBER_PARAMETERS - 1}", value=0
                ),
                _by_bob("param.set", 103, key=f"member.{BOB.node_id}", value=0),
                *(
                    _by_bob(
                        "service.set",
                        110 + i,
                        name=f"{BOB.node_id}/s{i}",
                        endpoints=[],
                        health="ok",
                    )
                    for i in range(MEMBER_SERVICES + 1)
                ),
                _by_bob("service.set", 140, name=f"{BOB.node_id}/s0", endpoints=[], health="down"),
                _by_bob("service.set", 141, name=BOB.node_id, endpoints=[], health="ok"),
            ],
        ),
        (
            "relays",
            "REG-13: Bob, a learner, relays joins until 8 newcomers he relayed have not joined "
            "themselves; the ninth is refused; one newcomer joins itself and frees a relay",
            [
                _command("param.set", 1, key="registry.voters", value=1),
                _joins(ALICE, 2),
                _joins(BOB, 3),
                *(_joins(n, 4 + i, by=BOB) for i, n in enumerate(_NEWCOMERS)),
                _joins(_NEWCOMERS[0], 4 + len(_NEWCOMERS), by=_NEWCOMERS[0]),
                _joins(_NEWCOMERS[-1], 5 + len(_NEWCOMERS), by=BOB),
            ],
        ),
        (
            "relays-expire",
            "REG-13: Bob's relays use up his quota (a re-relay by Alice, a voter, keeps "
            "relayed_by); ten minutes and one ms of command time later the next join forgets "
            "the ones that never joined themselves, and Bob relays again",
            [
                _command("param.set", 1, key="registry.voters", value=1),
                _joins(ALICE, 2),
                _joins(BOB, 3),
                _joins(
                    BOB, 30, by=BOB
                ),  # Bob confirms: only relayed newcomers that never do expire
                *(_joins(n, 4 + i, by=BOB) for i, n in enumerate(_NEWCOMERS[:-1])),
                _joins(_NEWCOMERS[0], 20),
                _joins(_NEWCOMERS[-1], 21, by=BOB),
                # Alice again, at a later time: Bob's relays are forgotten
                _joins(ALICE, 22, at_offset_ms=PENDING_EXPIRY_MS + 1),
                _joins(_NEWCOMERS[-1], 23, by=BOB, at_offset_ms=PENDING_EXPIRY_MS + 1),
            ],
        ),
        (
            "pending-full",
            "REG-13: Alice, a voter, has no relay quota, but the relayed newcomers not yet "
            "confirmed are 64 at most in all: the 65th is refused",
            [
                _joins(ALICE, 1),
                *(
                    _joins(NodeKey.from_seed(bytes([200, i]) + bytes(30)), 2 + i)
                    for i in range(MAX_PENDING + 1)
                ),
            ],
        ),
        (
            "bad-addresses",
            "a member's addresses are HOST:PORT (RAFT-1)",
            [
                _joins(ALICE, 1, raft="nowhere"),
                _joins(ALICE, 2, peer="[::1]"),
            ],
        ),
        (
            "no-api",
            "REG-7: a node with no client API joins with an empty api address",
            [_joins(ALICE, 1, api="")],
        ),
        (
            "retry-applies-once",
            "the same command three times: ok, duplicate, duplicate",
            [_command("param.set", 1, key="k", value=1)] * 3,
        ),
        (
            "dedup-window",
            "an idempotency key is forgotten an hour (of command time) later",
            [
                _command("param.set", 1, key="k", value=1),
                _command("param.set", 2, at_offset_ms=DEDUP_RETENTION_MS + 1, key="k", value=2),
                _command("param.set", 1, at_offset_ms=DEDUP_RETENTION_MS + 2, key="k", value=3),
            ],
        ),
        (
            "dedup-boundary",
            "REG-4: a pair exactly an hour older is kept; a sync forgets nothing; one ms more "
            "and the next remembered command forgets it, so the retry applies again",
            [
                _command("param.set", 1, key="k", value=1),
                _command("param.set", 2, at_offset_ms=DEDUP_RETENTION_MS, key="k", value=2),
                _command("param.set", 1, key="k", value=1),
                _command("sync", 3, at_offset_ms=DEDUP_RETENTION_MS + 1),
                _command("param.set", 1, key="k", value=1),
                _command("param.set", 4, at_offset_ms=DEDUP_RETENTION_MS + 1, key="k", value=4),
                _command("param.set", 1, key="k", value=1),
            ],
        ),
        (
            "rejections",
            "every kind of rejection; the state is unchanged, the index counts",
            [
                _add(ALICE, 1),
                _add(ALICE, 2),
                _command("member.remove", 3, node_id=b),
                _command("member.set_role", 4, node_id=a, role="king"),
                _command("model.serve", 5, model_id="m", node_id=b),
                _command("param.delete", 6, key="absent"),
                _command("param.set", 7, key="k"),
                _command("no.such_op", 8),
                b"\xc1",
                codec.encode([1, 2]),
            ],
        ),
    ]
    for name, description, log in logs:
        state = RegistryState()
        results = []
        for raw in log:
            applied = apply_command(state, raw)
            state = applied.state
            results.append({"status": applied.result.status, "reason": applied.result.reason})
        got = [r["status"] + (f":{r['reason']}" if r["reason"] else "") for r in results]
        expected(f"registry {name}", got, _REGISTRY_RESULTS[name])
        snapshot = codec.encode(state.to_value())
        yield (
            name,
            Case(
                {
                    "description": description,
                    "commands": [c.hex() for c in log],
                    "expect": {"ok": {"results": results}},
                },
                {"snapshot.bin": snapshot},
            ),
        )


OK, DUP = "ok", "duplicate"
# Each registry log's results, derived by hand from specs/0005-registry.md and the logs'
# descriptions, not by applying the commands: "rejected:<reason>" names the reason the spec
# gives for what the command gets wrong.
_REGISTRY_RESULTS: dict[str, list[str]] = {
    "members": [OK] * 4,
    "models-and-services": [OK] * 7,
    # REG-10: 29 levels of nesting fit a snapshot (REG-11), 30 do not
    "parameters": [OK] * 4 + ["rejected:bad_value"],
    "join-roles": [OK] * 6,  # REG-14: a sync is never remembered, so its retry is ok again
    "electors": [OK] * 3,
    # Bob, a learner: may not promote himself, write registry.voters, remove Alice, write the
    # federation's motd or Alice's parameter (REG-16); may write his own and leave
    "authority": [OK, OK, OK, *["rejected:not_allowed"] * 4, OK, "rejected:not_allowed", OK],
    # Alice's key under Bob's name and 63 of his fill his 64 (REG-16): his 64th key is refused;
    # a change to k0 is allowed, deleting Alice's frees one for the 64th, `member.<bob>` is not
    # under his prefix; 16 services, the 17th refused, a change allowed, `<bob>` without a slash
    # refused
    "quotas": [OK] * 4
    + [OK] * (MEMBER_PARAMETERS - 1)
    + ["rejected:not_allowed", OK, OK, OK, "rejected:not_allowed"]
    + [OK] * MEMBER_SERVICES
    + ["rejected:not_allowed", OK, "rejected:not_allowed"],
    # Bob relays 8 newcomers (MEMBER_RELAYS), the 9th is refused (REG-13); newcomer 0 joining
    # itself frees one relay for the last newcomer
    "relays": [OK] * 3 + [OK] * MEMBER_RELAYS + ["rejected:not_allowed", OK, OK],
    # Bob confirms himself, relays 8; Alice re-relays newcomer 0 (still Bob's), so Bob's 9th
    # is refused; 10 minutes + 1 ms later the unconfirmed relays expire and Bob relays again
    "relays-expire": [OK] * 4 + [OK] * MEMBER_RELAYS + [OK, "rejected:not_allowed", OK, OK],
    "pending-full": [OK] * (1 + MAX_PENDING) + ["rejected:pending_full"],
    "bad-addresses": ["rejected:bad_raft", "rejected:bad_peer"],
    "no-api": [OK],
    "retry-applies-once": [OK, DUP, DUP],
    # the key is forgotten after an hour of command time: the third applies again
    "dedup-window": [OK, OK, OK],
    # kept at exactly an hour (a duplicate); a sync forgets nothing (still a duplicate); a
    # remembered command one ms later forgets it, so the retry after that applies
    "dedup-boundary": [OK, OK, DUP, OK, DUP, OK, OK],
    "rejections": [
        OK,
        "rejected:already_member",
        "rejected:not_member",
        "rejected:bad_role",
        "rejected:not_member",
        "rejected:no_such_parameter",
        "rejected:bad_args",
        "rejected:unknown_op",
        "rejected:malformed",
        "rejected:malformed",
    ],
}


# ---- raft ----------------------------------------------------------------------------------

_MEMBER = f"{ALICE.node_id}@127.0.0.1:7200"
_COMMAND = b"REG-1 command bytes go here"
# zlib(pickle({"type": "x"})): what raw pysyncobj sends, fixed here so that vectors never import
# pickle
_PYSYNCOBJ_FRAME = "789c6b60aa2d64886061606028a92c482d648c6004322b0a998af500525105e6"


def _raft_value_case(description: str, value: codec.Value, error: str | None = None) -> Case:
    frame = codec.encode(value)
    expect: dict[str, Any] = {"error": error} if error else {"ok": {"message": to_json(value)}}
    return Case({"description": description, "expect": expect}, {"frame.bin": frame})


def raft_cases() -> Iterator[tuple[str, Case]]:
    """RAFT-3..RAFT-6: one frame per message type, then frames a node must refuse."""
    entries: list[codec.Value] = [
        [7, 2, "noop", None],
        [8, 2, "command", _COMMAND],
        [9, 2, "add", _MEMBER],
        [10, 2, "remove", _MEMBER],
    ]
    valid: list[tuple[str, str, dict[str, codec.Value]]] = [
        (
            "hello",
            "the dialler's first frame; the acceptor answers with its own",
            {"id": _MEMBER, "learner": False, "type": "hello", "version": 1},
        ),
        (
            "request-vote",
            "a candidate asks for a vote",
            {"last_log_index": 9, "last_log_term": 2, "term": 3, "type": "request_vote"},
        ),
        ("response-vote", "a vote granted", {"term": 3, "type": "response_vote"}),
        (
            "append-entries",
            "entries of every kind after index 6",
            {
                "commit_index": 6,
                "entries": entries,
                "prev_index": 6,
                "prev_term": 2,
                "term": 2,
                "type": "append_entries",
            },
        ),
        (
            "heartbeat",
            "append_entries without entries",
            {
                "commit_index": 10,
                "entries": [],
                "prev_index": 10,
                "prev_term": 2,
                "term": 2,
                "type": "append_entries",
            },
        ),
        (
            "install-snapshot",
            "the first chunk of a snapshot file",
            {
                "chunk": b"snapshot bytes",
                "commit_index": 40,
                "first": True,
                "last": False,
                "term": 3,
                "type": "install_snapshot",
            },
        ),
        (
            "next-index",
            "a follower acknowledges entries up to 10",
            {"next_index": 11, "reset": False, "success": True, "type": "next_index"},
        ),
        (
            "apply-command",
            "a command forwarded to the leader",
            {"entry": ["command", _COMMAND], "request_id": 5, "type": "apply_command"},
        ),
        (
            "apply-result",
            "the leader placed the command at index 12",
            {"error": None, "index": 12, "request_id": 5, "term": 3, "type": "apply_result"},
        ),
        (
            "apply-refused",
            "the leader refused (pysyncobj FAIL_REASON 6, request denied)",
            {"error": 6, "index": None, "request_id": 5, "term": None, "type": "apply_result"},
        ),
        ("timeout-now", "the leader hands over leadership", {"term": 3, "type": "timeout_now"}),
        (
            "pre-vote",
            "a voter asks whether it could win an election at term 4 (RAFT-19)",
            {"last_log_index": 12, "last_log_term": 3, "term": 4, "type": "pre_vote"},
        ),
        (
            "pre-vote-granted",
            "it could, as far as this voter knows (RAFT-19)",
            {"term": 4, "type": "pre_vote_granted"},
        ),
        (
            "term-notice",
            "an append_entries came from a leader behind this voter's term 9 (RAFT-19)",
            {"term": 9, "type": "term_notice"},
        ),
        (
            "max-term",
            "the highest term a node accepts (RAFT-15)",
            {"term": (1 << 53) - 1, "type": "response_vote"},
        ),
    ]
    for name, description, value in valid:
        yield f"valid-{name}", _raft_value_case(description, value)
    heartbeat = valid[4][2]
    invalid: list[tuple[str, str, codec.Value]] = [
        ("unknown-type", "a type this protocol does not define", {"term": 1, "type": "gossip"}),
        ("extra-key", "a key the type does not have", {**heartbeat, "extra": 1}),
        ("missing-key", "a key the type needs", {"type": "response_vote"}),
        ("negative-term", "terms are unsigned", {"term": -1, "type": "response_vote"}),
        (
            "term-above-max",
            "a term above 2^53 - 1 (RAFT-15)",
            {"last_log_index": 9, "last_log_term": 2, "term": 1 << 53, "type": "request_vote"},
        ),
        (
            "entry-term-above-max",
            "an entry's term above 2^53 - 1 (RAFT-15)",
            {**heartbeat, "entries": [[11, 1 << 53, "noop", None]], "term": 1 << 53},
        ),
        (
            "bad-entry-kind",
            "entries are noop, command, add or remove",
            {**heartbeat, "entries": [[11, 2, "pickle", b"\x80\x02."]]},
        ),
        (
            "command-not-bytes",
            "a command entry carries bin",
            {**heartbeat, "entries": [[11, 2, "command", "text"]]},
        ),
        (
            "entries-gap",
            "entries continue right after prev_index (RAFT-6)",
            {**heartbeat, "entries": [[12, 2, "noop", None]]},
        ),
        (
            "member-not-raft-id",
            "add and remove name a member as <node id>@HOST:PORT",
            {**heartbeat, "entries": [[11, 2, "add", "somebody"]]},
        ),
        (
            "hello-bad-version",
            "hello from another protocol version",
            {"id": _MEMBER, "learner": False, "type": "hello", "version": 2},
        ),
    ]
    for name, description, bad in invalid:
        yield f"invalid-{name}", _raft_value_case(description, bad, error="malformed")
    yield (
        "invalid-pickle",
        Case(
            {
                "description": "pysyncobj's own framing (zlib + pickle): not MessagePack",
                "expect": {"error": "malformed"},
            },
            {"frame.bin": bytes.fromhex(_PYSYNCOBJ_FRAME)},
        ),
    )


def gossip_cases() -> Iterator[tuple[str, Case]]:
    """Generated in gossip_vectors.py, which builds on this module's keys."""
    from fpai_node.testing.gossip_vectors import gossip_cases as cases

    yield from cases()


def routing_cases() -> Iterator[tuple[str, Case]]:
    """Generated in routing_vectors.py, which builds on this module's keys and helpers."""
    from fpai_node.testing.routing_vectors import routing_cases as cases

    yield from cases()


def memory_cases() -> Iterator[tuple[str, Case]]:
    """Generated in memory_vectors.py, which builds on this module's keys and helpers."""
    from fpai_node.testing.memory_vectors import memory_cases as cases

    yield from cases()


def chain_cases() -> Iterator[tuple[str, Case]]:
    """Generated in chain_vectors.py, independently of fpai_node/chain."""
    from fpai_node.testing.chain_vectors import chain_cases as cases

    yield from cases()


def treasury_cases() -> Iterator[tuple[str, Case]]:
    """Generated in treasury_vectors.py, independently of fpai_node/treasury."""
    from fpai_node.testing.treasury_vectors import treasury_cases as cases

    yield from cases()


def rewards_cases() -> Iterator[tuple[str, Case]]:
    """Generated in rewards_vectors.py, independently of fpai_node/rewards and router/acks."""
    from fpai_node.testing.rewards_vectors import rewards_cases as cases

    yield from cases()


AREAS: dict[str, Callable[[], Iterator[tuple[str, Case]]]] = {
    "identity": identity_cases,
    "codec": codec_cases,
    "envelope": envelope_cases,
    "gossip": gossip_cases,
    "registry": registry_cases,
    "raft": raft_cases,
    "routing": routing_cases,
    "memory": memory_cases,
    "chain": chain_cases,
    "treasury": treasury_cases,
    "rewards": rewards_cases,
}


def constants() -> dict[str, Any]:
    """Every number and string another implementation needs, in one machine-readable file."""
    return {
        "protocol_version": envelope.PROTOCOL_VERSION,
        "node_id": {
            "prefix": NODE_ID_PREFIX,
            "domain_hex": NODE_ID_DOMAIN.hex(),
            "digest_bytes": 20,
            "length": NODE_ID_LENGTH,
        },
        "envelope": {
            "signature_domain_hex": envelope.SIGNATURE_DOMAIN.hex(),
            "signature_length": envelope.SIGNATURE_LENGTH,
            "max_frame_bytes": envelope.MAX_FRAME_BYTES,
            "max_type_length": envelope.MAX_TYPE_LENGTH,
            "max_clock_skew_ms": envelope.MAX_CLOCK_SKEW_MS,
            "max_lifetime_ms": envelope.MAX_LIFETIME_MS,
            "default_lifetime_ms": envelope.DEFAULT_LIFETIME_MS,
        },
        "codec": {"max_depth": codec.MAX_DEPTH},
        "replay": {"window": replay.DEFAULT_WINDOW},
        "message_types": sorted(MESSAGE_TYPES),
        "gossip": {
            "max_incarnation": gossip_messages.MAX_INCARNATION,
            "max_incarnation_step": gossip_state.MAX_INCARNATION_STEP,
            "max_members": gossip_state.MAX_MEMBERS,
            "forget_after_ms": GossipConfig("").forget_after_ms,
        },
        "registry": {
            "idempotency_key_bytes": 16,
            "dedup_retention_ms": DEDUP_RETENTION_MS,
            "max_command_bytes": 64 * 1024,
            "default_voters": DEFAULT_VOTERS,
            "voter_counts": list(VOTER_COUNTS),
            "voters_parameter": VOTERS_PARAMETER,
            "electors_parameter": ELECTORS_PARAMETER,
            "max_members": MAX_MEMBERS,
            "member_parameters": MEMBER_PARAMETERS,
            "member_relays": MEMBER_RELAYS,
            "max_pending": MAX_PENDING,
            "pending_expiry_ms": PENDING_EXPIRY_MS,
            "member_services": MEMBER_SERVICES,
            "max_value_height": MAX_VALUE_HEIGHT,
        },
        "raft": {
            "max_term": raft_wire.MAX_TERM,
            "max_term_step": raft_wire.MAX_TERM_STEP,
            "term_raise_interval_ms": int(raft_wire.TERM_RAISE_INTERVAL_S * 1000),
            "max_frame_bytes": raft_wire.MAX_FRAME_BYTES,
            "learner_messages": sorted(raft_wire.LEARNER_WIRE_TYPES),
        },
        "routing": {
            "infer_path": router_messages.INFER_PATH,
            "max_hops": router_messages.MAX_HOPS,
            "max_path": router_messages.MAX_PATH,
            "max_request_body_bytes": router_messages.MAX_REQUEST_BODY_BYTES,
            "max_event_bytes": router_messages.MAX_EVENT_BYTES,
            "server_ms_header": router_messages.SERVER_MS_HEADER,
            "receipt_type": router_messages.RECEIPT_TYPE,
            "receipt_lifetime_ms": router_messages.RECEIPT_LIFETIME_MS,
            "chars_per_token": router_select.CHARS_PER_TOKEN,
            "load_bucket_permille": router_select.LOAD_BUCKET_PERMILLE,
            "unknown_latency_ms": router_select.UNKNOWN_LATENCY_MS,
            "failure_cooldown_ms": int(router_forward.FAILURE_COOLDOWN_S * 1000),
        },
        "memory": _memory_constants(),
        "chain": _chain_constants(),
        "rewards": _rewards_constants(),
    }


def _rewards_constants() -> dict[str, Any]:
    """specs/0010-rewards.md, from the modules that apply it."""
    from fpai_node.rewards import digests, params, spot
    from fpai_node.router import ack_exchange, acks

    return {
        "ack_type": acks.ACK_TYPE,
        "acks_path": acks.ACKS_PATH,
        "ack_lifetime_ms": acks.ACK_LIFETIME_MS,
        "max_acks_per_batch": acks.MAX_ACKS_PER_BATCH,
        "max_ack_bytes": acks.MAX_ACK_BYTES,
        "max_receipt_bytes": acks.MAX_RECEIPT_BYTES,
        "disputes": list(acks.DISPUTES),
        "pending_ms": ack_exchange.PENDING_MS,
        "delivery_window_ms": ack_exchange.DELIVERY_WINDOW_MS,
        "digest_type": digests.DIGEST_TYPE,
        "max_rows": digests.MAX_ROWS,
        "max_digest_bytes": digests.MAX_DIGEST_BYTES,
        "keep_digests": digests.KEEP_DIGESTS,
        "defaults": {
            "epoch_s": params.DEFAULT_EPOCH_S,
            "settle_s": params.DEFAULT_SETTLE_S,
            "spot_ppm": params.DEFAULT_SPOT_PPM,
            "fraud_quorum": params.DEFAULT_FRAUD_QUORUM,
        },
        "epoch_s_range": list(params.EPOCH_S_RANGE),
        "rate_tokens": params.RATE_TOKENS,
        "spot_domain_hex": spot.SPOT_DOMAIN.hex(),
        "spot_path": spot.SPOT_PATH,
        "max_spot_output_bytes": spot.MAX_SPOT_OUTPUT_BYTES,
        "max_spot_body_bytes": spot.MAX_SPOT_BODY_BYTES,
        "report_type": spot.REPORT_TYPE,
        "max_report_bytes": spot.MAX_REPORT_BYTES,
        "keep_reports": spot.KEEP_REPORTS,
        "judge": {
            "count_slack": spot.COUNT_SLACK,
            "count_extra": spot.COUNT_EXTRA,
            "min_judged_tokens": spot.MIN_JUDGED_TOKENS,
            "window": spot.WINDOW,
            "greedy": [spot.GREEDY_RANK, spot.GREEDY_SHARE, spot.GREEDY_FLOOR],
            "sampled": [spot.SAMPLED_RANK, spot.SAMPLED_SHARE, spot.SAMPLED_FLOOR],
        },
    }


def _memory_constants() -> dict[str, Any]:
    from fpai_node.memory import filters as memory_filters
    from fpai_node.memory import merge, operations, placement
    from fpai_node.memory import messages as memory_messages

    return {
        "op_type": operations.OP_TYPE,
        "op_lifetime_ms": operations.OP_LIFETIME_MS,
        "dimensions": operations.DIMENSIONS,
        "max_memory_bytes": operations.MAX_MEMORY_BYTES,
        "max_metadata_bytes": operations.MAX_METADATA_BYTES,
        "max_scope_bytes": operations.MAX_SCOPE_BYTES,
        "kinds": list(operations.KINDS),
        "shards": operations.SHARDS,
        "shard_domain_hex": operations.SHARD_DOMAIN.hex(),
        "place_domain_hex": placement.PLACE_DOMAIN.hex(),
        "opkey_domain_hex": merge.OPKEY_DOMAIN.hex(),
        "replicas_parameter": placement.REPLICAS_PARAMETER,
        "default_replicas": placement.DEFAULT_REPLICAS,
        "max_replicas": placement.MAX_REPLICAS,
        "service_suffix": placement.SERVICE_SUFFIX,
        "buckets": merge.BUCKETS,
        "max_body_bytes": memory_messages.MAX_BODY_BYTES,
        "max_ops": memory_messages.MAX_OPS,
        "max_limit": memory_messages.MAX_LIMIT,
        "max_keys": memory_messages.MAX_KEYS,
        "max_filter_nodes": memory_filters.MAX_FILTER_NODES,
        "max_filter_depth": memory_filters.MAX_FILTER_DEPTH,
        "paths": {
            "write": memory_messages.WRITE_PATH,
            "search": memory_messages.SEARCH_PATH,
            "scan": memory_messages.SCAN_PATH,
            "get": memory_messages.GET_PATH,
            "history": memory_messages.HISTORY_PATH,
            "digest": memory_messages.DIGEST_PATH,
            "fetch": memory_messages.FETCH_PATH,
        },
    }


def _chain_constants() -> dict[str, Any]:
    from dataclasses import asdict

    from fpai_node.chain import deployment, governance, parameters

    return {
        "deployment_format": deployment.FORMAT,
        "deployment_max_bytes": deployment.MAX_FILE_BYTES,
        "contracts": list(deployment.CONTRACTS),
        "optional_contracts": list(deployment.OPTIONAL_CONTRACTS),
        "default_parameters": asdict(parameters.GovernanceParameters()),
        "bps": 10_000,
        "governor_domain": {
            "name": governance.GOVERNOR_NAME,
            "version": governance.GOVERNOR_VERSION,
        },
        "support": {s.name.lower(): int(s) for s in governance.Support},
        "proposal_states": {s.name.lower(): int(s) for s in governance.State},
        "evm_version": "prague",
        "solc": "0.8.37",
        "openzeppelin": "5.7.0",
    }


def render_all() -> dict[Path, bytes]:
    """Every generated file, by path relative to protocol/."""
    out: dict[Path, bytes] = {
        Path("constants.json"): (json.dumps(constants(), indent=2, sort_keys=True) + "\n").encode()
    }
    for area, cases in AREAS.items():
        for name, case in cases():
            for filename, data in case.rendered().items():
                out[Path("vectors") / area / name / filename] = data
    return out


def differences(root: Path = PROTOCOL_DIR) -> list[str]:
    expected = render_all()
    problems = []
    for rel, data in expected.items():
        path = root / rel
        if not path.exists():
            problems.append(f"missing {rel}")
        elif path.read_bytes() != data:
            problems.append(f"differs {rel}")
    for area in AREAS:
        for path in sorted((root / "vectors" / area).rglob("*")):
            if path.is_file() and path.relative_to(root) not in expected:
                problems.append(f"unexpected {path.relative_to(root)}")
    return problems


def write(root: Path = PROTOCOL_DIR) -> int:
    files = render_all()
    for area in AREAS:
        shutil.rmtree(root / "vectors" / area, ignore_errors=True)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return len(files)


def main(argv: list[str]) -> int:
    if argv == ["write"]:
        print(f"wrote {write()} files under {PROTOCOL_DIR}")
        return 0
    if argv == ["check"]:
        problems = differences()
        for line in problems:
            print(line)
        print("vectors up to date" if not problems else "run: make vectors")
        return 1 if problems else 0
    print("usage: python -m fpai_node.testing.vectors write|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
