"""Signed envelopes (specs/0002-wire.md ENV-1..ENV-6, VERIFY-1..VERIFY-13)."""

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fpai_node.identity import NodeKey, node_id_from_public_key
from fpai_node.wire import codec
from fpai_node.wire.envelope import (
    DEFAULT_LIFETIME_MS,
    MAX_CLOCK_SKEW_MS,
    MAX_FRAME_BYTES,
    MAX_LIFETIME_MS,
    PROTOCOL_VERSION,
    SIGNATURE_DOMAIN,
    Envelope,
    Limits,
    open_envelope,
    seal,
)
from fpai_node.wire.errors import (
    BadLifetime,
    BadSignature,
    Expired,
    FrameTooLarge,
    FutureTimestamp,
    MalformedFrame,
    Replayed,
    SenderMismatch,
    StaleSequence,
    UnknownType,
    UnknownVersion,
    WireError,
)
from fpai_node.wire.messages import MESSAGE_TYPES, Ping, Pong
from fpai_node.wire.replay import ReplayGuard

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
ALICE = NodeKey.from_seed(bytes(range(32)))
BOB = NodeKey.from_seed(bytes(range(1, 33)))
NONCE = bytes(range(16))
PING = Ping(NONCE).encode()
ED25519_L = 2**252 + 27742317777372353535851937790883648493

# specs/0002-wire.md section 6 (vector protocol/vectors/envelope/valid-ping).
SPEC_EXAMPLE_FRAME = bytes.fromhex(
    "92c4a288a4626f6479c41981a56e6f6e6365c410000102030405060708090a0b0c0d0e0fa3657870cf0000019b76db"
    "9260a466726f6dd92466706e3134647933646e32667a6d33626c777a6f767868376b64797673786c6a64683776a36b"
    "6579c42003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8a373657101a27473cf0000"
    "019b76daa800a474797065a9706565722e70696e67a17601c4402119448f3f0c9a6e71b199ea50134fc249d742fd36"
    "bbd56eae9961cb572f87873302815ec00209087f3330fdae5e2d39c35c374962f92d915cb3bae69d1e1201"
)


def header(key: NodeKey = ALICE, /, **overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "body": PING,
        "exp": NOW + DEFAULT_LIFETIME_MS,
        "from": key.node_id,
        "key": key.public_key,
        "seq": 1,
        "ts": NOW,
        "type": Ping.TYPE,
        "v": PROTOCOL_VERSION,
    }
    fields.update(overrides)
    return fields


def sign_raw(signed: bytes, key: NodeKey = ALICE) -> bytes:
    """A frame around `signed` bytes with a valid ENV-3 signature by `key`."""
    return codec.encode([signed, key.sign(SIGNATURE_DOMAIN + signed)])


def sign_header(fields: dict[str, object], key: NodeKey = ALICE) -> bytes:
    return sign_raw(codec.encode(fields), key)  # type: ignore[arg-type]


def open_(frame: bytes, *, now_ms: int = NOW, guard: ReplayGuard | None = None, **kw: object):
    return open_envelope(
        frame,
        now_ms=now_ms,
        known_types=MESSAGE_TYPES,
        replay_guard=ReplayGuard() if guard is None else guard,
        **kw,  # type: ignore[arg-type]
    )


def reject(
    error: type[WireError], reason: str, frame: bytes, **kw: object
) -> pytest.ExceptionInfo[WireError]:
    with pytest.raises(WireError) as info:
        open_(frame, **kw)  # type: ignore[arg-type]
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    assert info.value.reason == reason
    return info


# --- accepted frames --------------------------------------------------------------------------


def test_seal_then_open_returns_every_field() -> None:
    frame = seal(ALICE, Ping.TYPE, PING, seq=42, now_ms=NOW, lifetime_ms=5_000)
    envelope = open_(frame)
    assert envelope == Envelope(
        version=1,
        type="peer.ping",
        sender=ALICE.node_id,
        public_key=ALICE.public_key,
        seq=42,
        timestamp_ms=NOW,
        expires_ms=NOW + 5_000,
        payload=PING,
    )
    assert envelope.sender == "fpn14dy3dn2fzm3blwzovxh7kdyvsxljdh7v"
    assert Ping.decode(envelope.payload) == Ping(NONCE)


def test_seal_reproduces_the_worked_example_of_the_spec() -> None:
    frame = seal(ALICE, Ping.TYPE, PING, seq=1, now_ms=NOW, lifetime_ms=60_000)
    assert frame == SPEC_EXAMPLE_FRAME
    assert len(frame) == 231
    guard = ReplayGuard()
    assert open_(frame, guard=guard).seq == 1
    reject(Replayed, "replay", frame, guard=guard)
    reject(Expired, "expired", frame, now_ms=NOW + 60_000)


def test_frame_layout_is_signed_header_then_signature_over_domain_and_header() -> None:
    frame = seal(BOB, "peer.pong", b"\xc0", seq=7, now_ms=NOW)
    outer = codec.decode(frame)
    assert isinstance(outer, list) and len(outer) == 2
    signed, signature = outer
    assert isinstance(signed, bytes) and isinstance(signature, bytes)
    assert codec.decode(signed) == header(BOB, body=b"\xc0", seq=7, type="peer.pong")
    assert signature == BOB.sign(SIGNATURE_DOMAIN + signed)
    assert SIGNATURE_DOMAIN == b"FPAI-ENVELOPE-V1\x00"


def test_open_without_a_replay_guard_accepts_the_same_frame_again() -> None:
    frame = seal(ALICE, Ping.TYPE, PING, seq=1, now_ms=NOW)
    for _ in range(2):
        assert (
            open_envelope(frame, now_ms=NOW, known_types=MESSAGE_TYPES, replay_guard=None).seq == 1
        )


def test_uint64_extremes_are_accepted() -> None:
    top = 2**64 - 1
    frame = sign_header(header(seq=top, ts=top - 1, exp=top))
    envelope = open_(frame, now_ms=top - 1)
    assert (envelope.seq, envelope.timestamp_ms, envelope.expires_ms) == (top, top - 1, top)
    zero = sign_header(header(seq=0, ts=0, exp=1, body=b""))
    envelope = open_envelope(zero, now_ms=0, known_types=MESSAGE_TYPES, replay_guard=None)
    assert (envelope.seq, envelope.timestamp_ms, envelope.payload) == (0, 0, b"")


def test_type_of_64_bytes_is_accepted_with_a_matching_table() -> None:
    """MSG-1: a message type is any str of 1..64 UTF-8 bytes the receiver's table knows."""
    msg_type = "é" * 32  # 64 UTF-8 bytes
    frame = seal(ALICE, msg_type, b"", seq=1, now_ms=NOW)
    envelope = open_envelope(frame, now_ms=NOW, known_types={msg_type}, replay_guard=None)
    assert envelope.type == msg_type


# --- VERIFY-1 oversized -----------------------------------------------------------------------


def test_limits_max_frame_bytes_is_honoured() -> None:
    frame = seal(ALICE, Ping.TYPE, PING, seq=1, now_ms=NOW)
    assert open_(frame, limits=Limits(max_frame_bytes=len(frame))).seq == 1
    reject(FrameTooLarge, "oversized", frame, limits=Limits(max_frame_bytes=len(frame) - 1))
    reject(FrameTooLarge, "oversized", frame, limits=Limits(max_frame_bytes=0))


def test_default_limit_is_one_mebibyte_and_checked_before_decoding() -> None:
    assert MAX_FRAME_BYTES == 1 << 20
    garbage = b"\xc1" * (MAX_FRAME_BYTES + 1)
    reject(FrameTooLarge, "oversized", garbage)
    reject(MalformedFrame, "malformed", garbage[:-1])


def test_seal_refuses_to_build_an_oversized_frame() -> None:
    with pytest.raises(ValueError):
        seal(ALICE, Ping.TYPE, bytes(MAX_FRAME_BYTES), seq=1, now_ms=NOW)


def test_a_large_frame_within_the_limit_is_accepted() -> None:
    body = codec.encode({"data": bytes(MAX_FRAME_BYTES - 400)})
    frame = seal(ALICE, Ping.TYPE, body, seq=1, now_ms=NOW)
    assert len(frame) <= MAX_FRAME_BYTES
    assert open_(frame).payload == body


# --- VERIFY-2, -3, -5 malformed ---------------------------------------------------------------

VALID_SIGNED = codec.encode(header())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xc1", id="not-msgpack"),
        pytest.param(codec.encode({"signed": b"", "sig": b""}), id="map-not-array"),
        pytest.param(codec.encode([VALID_SIGNED]), id="array-of-one"),
        pytest.param(codec.encode([VALID_SIGNED, bytes(64), b""]), id="array-of-three"),
        pytest.param(codec.encode([VALID_SIGNED, bytes(63)]), id="signature-63-bytes"),
        pytest.param(codec.encode([VALID_SIGNED, bytes(65)]), id="signature-65-bytes"),
        pytest.param(codec.encode([VALID_SIGNED, "x" * 64]), id="signature-str"),
        pytest.param(codec.encode([header(), bytes(64)]), id="signed-is-a-map-not-bin"),
        pytest.param(sign_raw(VALID_SIGNED) + b"\x00", id="trailing-byte"),
        pytest.param(sign_raw(VALID_SIGNED)[:-1], id="truncated"),
        pytest.param(b"\x92\xc5\x00" + sign_raw(VALID_SIGNED)[2:], id="outer-non-canonical-bin16"),
    ],
)
def test_frame_shape_errors_are_malformed(frame: bytes) -> None:
    reject(MalformedFrame, "malformed", frame)


@pytest.mark.parametrize(
    "signed",
    [
        pytest.param(codec.encode([1]), id="signed-is-an-array"),
        pytest.param(codec.encode(1), id="signed-is-an-int"),
        pytest.param(codec.encode({}), id="empty-map"),
        pytest.param(b"\xc1", id="signed-not-msgpack"),
        pytest.param(VALID_SIGNED + b"\xc0", id="signed-trailing-bytes"),
        pytest.param(VALID_SIGNED[:-1], id="signed-truncated"),
        pytest.param(VALID_SIGNED[:-1] + b"\xcc\x01", id="signed-non-canonical-v"),  # v as uint8 1
        pytest.param(
            codec.encode({k: v for k, v in header().items() if k != "v"}),  # type: ignore[misc]
            id="no-v",
        ),
        pytest.param(codec.encode(header(v=True)), id="v-bool"),
        pytest.param(codec.encode(header(v="1")), id="v-str"),
        pytest.param(codec.encode(header(v=None)), id="v-nil"),
        pytest.param(codec.encode(header(extra=1)), id="extra-key"),
        pytest.param(
            codec.encode({k: v for k, v in header().items() if k != "body"}),  # type: ignore[misc]
            id="missing-body",
        ),
        pytest.param(codec.encode(header(type="")), id="type-empty"),
        pytest.param(codec.encode(header(type="x" * 65)), id="type-65-bytes"),
        pytest.param(codec.encode(header(type="é" * 33)), id="type-66-utf8-bytes"),
        pytest.param(codec.encode(header(type=b"peer.ping")), id="type-bin"),
        pytest.param(codec.encode(header(**{"from": "fpn1"})), id="from-short"),
        pytest.param(codec.encode(header(**{"from": ALICE.node_id.upper()})), id="from-upper"),
        pytest.param(codec.encode(header(**{"from": ALICE.node_id.encode()})), id="from-bin"),
        pytest.param(codec.encode(header(key=ALICE.public_key[:31])), id="key-31-bytes"),
        pytest.param(codec.encode(header(key=ALICE.public_key + b"\x00")), id="key-33-bytes"),
        pytest.param(codec.encode(header(key=ALICE.public_key.hex())), id="key-str"),
        pytest.param(codec.encode(header(seq=-1)), id="seq-negative"),
        pytest.param(codec.encode(header(seq=True)), id="seq-bool"),
        pytest.param(codec.encode(header(ts=-1)), id="ts-negative"),
        pytest.param(codec.encode(header(exp=None)), id="exp-nil"),
        pytest.param(codec.encode(header(exp="1")), id="exp-str"),
        pytest.param(codec.encode(header(body="payload")), id="body-str"),
        pytest.param(codec.encode(header(body=None)), id="body-nil"),
    ],
)
def test_header_errors_are_malformed_even_when_correctly_signed(signed: bytes) -> None:
    reject(MalformedFrame, "malformed", sign_raw(signed))


# --- VERIFY-4 unknown_version -----------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 2, 255, 2**64 - 1])
def test_other_protocol_versions_are_unknown_version(version: int) -> None:
    frame = sign_header(header(v=version))
    reject(UnknownVersion, "unknown_version", frame)


def test_unknown_version_is_reported_before_any_other_header_check() -> None:
    # ENV-4: a future version may change every other key; only `v` tells it from garbage.
    reject(UnknownVersion, "unknown_version", sign_header({"v": 2}))
    reject(UnknownVersion, "unknown_version", sign_header({"v": 2, "z": [1]}))
    unsigned = codec.encode([codec.encode({"v": 2}), bytes(64)])
    reject(UnknownVersion, "unknown_version", unsigned)


# --- VERIFY-6 sender_mismatch -----------------------------------------------------------------


def test_from_naming_another_node_is_sender_mismatch() -> None:
    """ID-4: the receiver recomputes the node id from the key the frame carries."""
    frame = sign_header(header(**{"from": BOB.node_id}))
    reject(SenderMismatch, "sender_mismatch", frame)


def test_key_of_another_node_is_sender_mismatch() -> None:
    """ID-4: a key that does not derive to `from` is refused, however well it signs."""
    # Bob's key under Alice's id, signed by Bob: the signature is valid, the id is not his.
    frame = sign_header(header(key=BOB.public_key), key=BOB)
    reject(SenderMismatch, "sender_mismatch", frame)


def test_sender_mismatch_comes_before_unknown_type() -> None:
    frame = sign_header(header(type="no.such", **{"from": BOB.node_id}))
    reject(SenderMismatch, "sender_mismatch", frame)


# --- MSG-2, MSG-3 payloads of peer.ping and peer.pong -------------------------------------------


def test_peer_ping_and_pong_carry_exactly_a_16_byte_nonce() -> None:
    """MSG-3: `peer.ping` and `peer.pong` are `{"nonce": bin(16)}`."""
    assert (Ping.TYPE, Pong.TYPE) == ("peer.ping", "peer.pong")
    assert {"peer.ping", "peer.pong"} == MESSAGE_TYPES
    assert Ping(NONCE).encode() == codec.encode({"nonce": NONCE})
    assert Pong(NONCE).encode() == codec.encode({"nonce": NONCE})
    assert Pong.decode(Pong(NONCE).encode()) == Pong(NONCE)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(codec.encode({}), id="missing-key"),
        pytest.param(codec.encode({"nonce": NONCE, "x": 1}), id="unknown-key"),
        pytest.param(codec.encode({"nonce": NONCE.hex()}), id="nonce-str"),
        pytest.param(codec.encode({"nonce": NONCE[:15]}), id="nonce-15-bytes"),
        pytest.param(codec.encode([NONCE]), id="not-a-map"),
        pytest.param(b"\x81\xa5nonce\xc5\x00\x10" + NONCE, id="non-canonical-bin16"),
    ],
)
def test_a_payload_with_missing_unknown_or_wrongly_typed_keys_is_malformed(payload: bytes) -> None:
    """MSG-2: the payload's keys are the type's, with the stated types, else `malformed`; the
    envelope around it was accepted first."""
    frame = seal(ALICE, Ping.TYPE, payload, seq=1, now_ms=NOW)
    envelope = open_(frame)
    for decode in (Ping.decode, Pong.decode):
        with pytest.raises(MalformedFrame) as info:
            decode(envelope.payload)
        assert info.value.reason == "malformed"


# --- VERIFY-7 unknown_type --------------------------------------------------------------------


def test_type_not_in_the_table_is_unknown_type() -> None:
    frame = seal(ALICE, "peer.nope", PING, seq=1, now_ms=NOW)
    reject(UnknownType, "unknown_type", frame)
    with pytest.raises(UnknownType):
        open_envelope(frame, now_ms=NOW, known_types=frozenset(), replay_guard=None)
    assert (
        open_envelope(frame, now_ms=NOW, known_types={"peer.nope"}, replay_guard=None).type
        == "peer.nope"
    )


def test_known_types_table_is_the_receivers() -> None:
    """MSG-1, VERIFY-7: the table of known types is the receiver's own (one per channel)."""
    frame = seal(ALICE, Ping.TYPE, PING, seq=1, now_ms=NOW)
    with pytest.raises(UnknownType):
        open_envelope(frame, now_ms=NOW, known_types={"peer.pong"}, replay_guard=None)


# --- VERIFY-8 bad_lifetime --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "exp"),
    [
        (NOW, NOW),
        (NOW, NOW - 1),
        (NOW, 0),
        (NOW - 1, NOW + MAX_LIFETIME_MS),  # lifetime MAX + 1
        (NOW, NOW + 10 * MAX_LIFETIME_MS),
    ],
)
def test_lifetime_outside_one_to_max_is_bad_lifetime(ts: int, exp: int) -> None:
    reject(BadLifetime, "bad_lifetime", sign_header(header(ts=ts, exp=exp)))


def test_lifetime_bounds_are_inclusive() -> None:
    assert MAX_LIFETIME_MS == 600_000
    assert open_(sign_header(header(exp=NOW + MAX_LIFETIME_MS))).expires_ms == NOW + 600_000
    assert open_(sign_header(header(exp=NOW + 1))).expires_ms == NOW + 1


def test_limits_max_lifetime_is_honoured() -> None:
    frame = sign_header(header(exp=NOW + 2_000))
    assert open_(frame, limits=Limits(max_lifetime_ms=2_000)).seq == 1
    reject(BadLifetime, "bad_lifetime", frame, limits=Limits(max_lifetime_ms=1_999))


def test_bad_lifetime_comes_before_expired() -> None:
    reject(BadLifetime, "bad_lifetime", sign_header(header(ts=0, exp=0)))


# --- VERIFY-9 expired -------------------------------------------------------------------------


def test_exp_equal_to_now_is_expired() -> None:
    frame = seal(ALICE, Ping.TYPE, PING, seq=1, now_ms=NOW, lifetime_ms=1_000)
    assert open_(frame, now_ms=NOW + 999).seq == 1
    reject(Expired, "expired", frame, now_ms=NOW + 1_000)
    reject(Expired, "expired", frame, now_ms=NOW + 10**9)


# --- VERIFY-10 future_timestamp ---------------------------------------------------------------


def test_timestamp_beyond_the_clock_skew_is_future_timestamp() -> None:
    assert MAX_CLOCK_SKEW_MS == 30_000
    ahead = seal(ALICE, Ping.TYPE, PING, seq=1, now_ms=NOW + MAX_CLOCK_SKEW_MS + 1)
    reject(FutureTimestamp, "future_timestamp", ahead)
    just = seal(ALICE, Ping.TYPE, PING, seq=2, now_ms=NOW + MAX_CLOCK_SKEW_MS)
    assert open_(just).timestamp_ms == NOW + 30_000


def test_limits_max_clock_skew_is_honoured() -> None:
    frame = seal(ALICE, Ping.TYPE, PING, seq=1, now_ms=NOW + 10)
    assert open_(frame, limits=Limits(max_clock_skew_ms=10)).seq == 1
    reject(FutureTimestamp, "future_timestamp", frame, limits=Limits(max_clock_skew_ms=9))
    reject(FutureTimestamp, "future_timestamp", frame, limits=Limits(max_clock_skew_ms=0))


# --- VERIFY-11 bad_signature ------------------------------------------------------------------


def flip(frame: bytes, index: int, mask: int = 0x01) -> bytes:
    return frame[:index] + bytes([frame[index] ^ mask]) + frame[index + 1 :]


def test_altered_signature_is_bad_signature() -> None:
    frame = seal(ALICE, Ping.TYPE, PING, seq=1, now_ms=NOW)
    for index in (len(frame) - 64, len(frame) - 33, len(frame) - 32, len(frame) - 1):
        reject(BadSignature, "bad_signature", flip(frame, index))


def test_altered_header_value_is_bad_signature() -> None:
    frame = seal(ALICE, Ping.TYPE, PING, seq=1, now_ms=NOW)
    signed = codec.decode(frame)[0]  # type: ignore[index]
    forged = codec.encode(header(seq=2))
    assert len(forged) == len(signed)  # type: ignore[arg-type]
    signature = frame[-64:]
    reject(BadSignature, "bad_signature", codec.encode([forged, signature]))


def test_signature_by_another_key_is_bad_signature() -> None:
    signed = codec.encode(header())  # type: ignore[arg-type]
    reject(BadSignature, "bad_signature", sign_raw(signed, key=BOB))


def test_signature_without_the_domain_is_bad_signature() -> None:
    signed = codec.encode(header())  # type: ignore[arg-type]
    reject(BadSignature, "bad_signature", codec.encode([signed, ALICE.sign(signed)]))


def test_zero_signature_is_bad_signature() -> None:
    reject(BadSignature, "bad_signature", codec.encode([VALID_SIGNED, bytes(64)]))


def test_malleated_signature_s_plus_l_is_bad_signature() -> None:
    frame = seal(ALICE, Ping.TYPE, PING, seq=1, now_ms=NOW)
    signed, signature = codec.decode(frame)  # type: ignore[misc]
    s = int.from_bytes(signature[32:], "little")
    malleated = signature[:32] + (s + ED25519_L).to_bytes(32, "little")
    reject(BadSignature, "bad_signature", codec.encode([signed, malleated]))


def test_a_forged_frame_never_reaches_the_replay_guard() -> None:
    guard = ReplayGuard()
    forged = sign_raw(codec.encode(header(seq=1_000)), key=BOB)  # type: ignore[arg-type]
    reject(BadSignature, "bad_signature", forged, guard=guard)
    assert len(guard) == 0
    assert open_(seal(ALICE, Ping.TYPE, PING, seq=1, now_ms=NOW), guard=guard).seq == 1


# --- VERIFY-12 replay / stale_sequence --------------------------------------------------------


def test_the_same_frame_twice_is_a_replay() -> None:
    guard = ReplayGuard()
    frame = seal(ALICE, Ping.TYPE, PING, seq=5, now_ms=NOW)
    assert open_(frame, guard=guard).seq == 5
    reject(Replayed, "replay", frame, guard=guard)
    reject(Replayed, "replay", frame, guard=guard, now_ms=NOW + 1)
    # a re-sealed frame with the same seq (new ts) is still a replay of (from, seq)
    reject(Replayed, "replay", seal(ALICE, Ping.TYPE, PING, seq=5, now_ms=NOW + 5), guard=guard)


def test_seq_below_the_window_is_stale_sequence() -> None:
    guard = ReplayGuard()
    assert open_(seal(ALICE, Ping.TYPE, PING, seq=100, now_ms=NOW), guard=guard).seq == 100
    assert open_(seal(ALICE, Ping.TYPE, PING, seq=37, now_ms=NOW), guard=guard).seq == 37
    stale = seal(ALICE, Ping.TYPE, PING, seq=36, now_ms=NOW)
    reject(StaleSequence, "stale_sequence", stale, guard=guard)


def test_replay_state_is_per_sender() -> None:
    guard = ReplayGuard()
    assert open_(seal(ALICE, Ping.TYPE, PING, seq=5, now_ms=NOW), guard=guard).seq == 5
    assert open_(seal(BOB, Ping.TYPE, PING, seq=5, now_ms=NOW), guard=guard).seq == 5
    assert len(guard) == 2


# --- seal arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"msg_type": ""},
        {"msg_type": "x" * 65},
        {"lifetime_ms": 0},
        {"lifetime_ms": MAX_LIFETIME_MS + 1},
        {"seq": -1},
        {"seq": 2**64},
        {"now_ms": -1},
        {"now_ms": 2**64 - 1},
    ],
    ids=str,
)
def test_seal_refuses_arguments_no_verifier_accepts(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "msg_type": Ping.TYPE,
        "seq": 1,
        "now_ms": NOW,
        "lifetime_ms": DEFAULT_LIFETIME_MS,
    }
    args.update(kwargs)
    msg_type = args.pop("msg_type")
    with pytest.raises(ValueError):
        seal(ALICE, msg_type, PING, **args)  # type: ignore[arg-type]


# --- properties -------------------------------------------------------------------------------

KEYS = [NodeKey.from_seed(bytes([i]) * 32) for i in range(4)]
FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def sealed_frames(draw: st.DrawFn) -> bytes:
    key = draw(st.sampled_from(KEYS))
    msg_type = draw(st.sampled_from(sorted(MESSAGE_TYPES)))
    payload = draw(st.binary(max_size=48))
    seq = draw(st.integers(0, 2**64 - 1))
    lifetime = draw(st.integers(1, MAX_LIFETIME_MS))
    return seal(key, msg_type, payload, seq=seq, now_ms=NOW, lifetime_ms=lifetime)


@settings(FAST, max_examples=1000)
@given(sealed_frames(), st.data())
def test_any_single_byte_mutation_is_rejected_with_a_wire_error(
    frame: bytes, data: st.DataObject
) -> None:
    assert open_(frame).timestamp_ms == NOW  # the unmutated frame is valid
    index = data.draw(st.integers(0, len(frame) - 1), label="index")
    new = data.draw(st.integers(0, 255).filter(lambda b: b != frame[index]), label="byte")
    mutated = frame[:index] + bytes([new]) + frame[index + 1 :]
    with pytest.raises(WireError) as info:
        open_(mutated)
    event(info.value.reason)


def test_every_single_bit_flip_of_one_frame_is_rejected() -> None:
    frame = seal(ALICE, Ping.TYPE, PING, seq=1, now_ms=NOW)
    for index in range(len(frame)):
        for bit in range(8):
            with pytest.raises(WireError):
                open_(flip(frame, index, 1 << bit))


def _only_wire_errors(call: Callable[[], object]) -> None:
    try:
        call()
    except WireError as exc:
        assert exc.reason != "wire_error"
    # anything else propagates and fails the test


@settings(FAST, max_examples=1000)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_wire_errors(data: bytes) -> None:
    _only_wire_errors(lambda: open_(data))
    _only_wire_errors(lambda: codec.decode(data))


field_values = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=70)
    | st.binary(max_size=40)
    | st.lists(st.integers(0, 3), max_size=3)
    | st.dictionaries(st.text(max_size=3), st.integers(0, 3), max_size=2)
)


@st.composite
def signed_headers(draw: st.DrawFn) -> bytes:
    """Correctly signed headers in which any field may be missing, extra or of any type."""
    key = draw(st.sampled_from(KEYS))
    valid = header(
        key,
        seq=draw(st.integers(0, 2**64 - 1)),
        ts=NOW + draw(st.integers(-MAX_LIFETIME_MS, 2 * MAX_CLOCK_SKEW_MS)),
    )
    valid["exp"] = valid["ts"] + draw(st.integers(-2, MAX_LIFETIME_MS + 2))  # type: ignore[operator]
    fields: dict[str, object] = {}
    for name, value in valid.items():
        choice = draw(st.integers(0, 24))
        if choice == 0:
            continue  # missing
        fields[name] = draw(field_values) if choice == 1 else value
    if draw(st.integers(0, 9)) == 0:
        fields[draw(st.text(max_size=5))] = draw(field_values)
    signer = key if draw(st.integers(0, 4)) else draw(st.sampled_from(KEYS))
    return sign_header(fields, key=signer)


@settings(FAST, max_examples=500)
@given(signed_headers())
def test_signed_headers_of_any_shape_raise_only_wire_errors(frame: bytes) -> None:
    try:
        envelope = open_(frame)
    except WireError as exc:
        assert exc.reason != "wire_error"
        event(exc.reason)
        return
    event("accepted")
    assert envelope.version == PROTOCOL_VERSION
    assert envelope.sender == node_id_from_public_key(envelope.public_key)
    assert envelope.type in MESSAGE_TYPES
    assert 0 < envelope.expires_ms - envelope.timestamp_ms <= MAX_LIFETIME_MS
    assert envelope.expires_ms > NOW
    assert envelope.timestamp_ms <= NOW + MAX_CLOCK_SKEW_MS
