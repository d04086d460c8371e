"""Forwarded requests, answer events and usage receipts on the peer channel
(fpai_node/router/messages.py, FWD-1..FWD-6, RECEIPT-1..RECEIPT-4)."""

import hashlib
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fpai_node.identity import NodeKey
from fpai_node.router.messages import (
    MAX_EVENT_BYTES,
    MAX_HOPS,
    MAX_MESSAGE_BYTES,
    MAX_PATH,
    MAX_REQUEST_BODY_BYTES,
    MAX_TEXT_BYTES,
    RECEIPT_LIFETIME_MS,
    RECEIPT_TYPE,
    EventReader,
    Failed,
    Finished,
    InferRequest,
    Receipt,
    ReceiptRejected,
    Received,
    SeenReceipts,
    Text,
    Vectors,
    check_receipt,
    decode_event,
    decode_failure,
    encode_event,
    encode_failure,
    read_stored_receipt,
    seal_receipt,
)
from fpai_node.wire import codec
from fpai_node.wire.envelope import seal
from fpai_node.wire.errors import REASONS, MalformedFrame, Replayed, WireError

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SERVER = NodeKey.from_seed(bytes(range(32)))
ENTRY = NodeKey.from_seed(bytes(range(1, 33)))
OTHER = NodeKey.from_seed(bytes(range(2, 34)))
RELAY = NodeKey.from_seed(bytes(range(3, 35)))
MODEL = "gemma-3-270m"
BODY = b'{"model":"gemma-3-270m","messages":[{"role":"user","content":"hi"}]}'
REQUEST = InferRequest("chat", BODY, "req-1", (ENTRY.node_id,))


def raw_request(**overrides: object) -> bytes:
    fields: dict[str, object] = {
        "api": "chat",
        "body": BODY,
        "id": "req-1",
        "path": [ENTRY.node_id],
    }
    fields.update(overrides)
    return codec.encode({k: v for k, v in fields.items() if v is not DROP})  # type: ignore[misc]


DROP = object()


def refused(data: bytes) -> MalformedFrame:
    with pytest.raises(MalformedFrame) as info:
        InferRequest.decode(data)
    assert isinstance(info.value, WireError) and info.value.reason == "malformed"
    return info.value


# --- InferRequest -------------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["chat", "completion", "embeddings"])
def test_request_round_trips(api: str) -> None:
    request = InferRequest(api, BODY, "a.B-9_z", (RELAY.node_id, ENTRY.node_id))  # type: ignore[arg-type]
    data = request.encode()
    assert InferRequest.decode(data) == request
    assert codec.decode(data) == {
        "api": api,
        "body": BODY,
        "id": "a.B-9_z",
        "path": [RELAY.node_id, ENTRY.node_id],
    }


NODE_IDS = [NodeKey.from_seed(bytes([i]) * 32).node_id for i in range(MAX_PATH + 1)]


def test_request_limits_are_inclusive() -> None:
    path = tuple(NODE_IDS[:MAX_PATH])
    request = InferRequest("completion", bytes(MAX_REQUEST_BODY_BYTES), "x" * 64, path)
    assert InferRequest.decode(request.encode()) == request
    assert InferRequest.decode(raw_request(body=b"", id="x")).body == b""


def test_request_refuses_an_unknown_api() -> None:
    for api in ("Chat", "responses", "", b"chat", None, 1):
        refused(raw_request(api=api))


def test_request_refuses_an_oversize_or_non_binary_body() -> None:
    refused(raw_request(body=bytes(MAX_REQUEST_BODY_BYTES + 1)))
    refused(raw_request(body=BODY.decode()))
    refused(raw_request(body=None))


@pytest.mark.parametrize(
    "request_id", ["", "x" * 65, "has space", "slash/id", "é", "tab\tid", 7, None, b"req-1"]
)
def test_request_refuses_a_bad_request_id(request_id: object) -> None:
    refused(raw_request(id=request_id))


@pytest.mark.parametrize("request_id", ["req-1\n", "x" * 64 + "\n"])
def test_request_refuses_a_request_id_with_a_trailing_newline(request_id: str) -> None:
    """The id is documented as 1..64 characters of [A-Za-z0-9._-]; `$` in REQUEST_ID also
    matches before a final newline, so these currently pass (a peer-controlled newline then
    reaches the serving node's logs and its signed receipts)."""
    refused(raw_request(id=request_id))


def test_the_decoder_reads_paths_beyond_the_hop_limit() -> None:
    """FWD-1: the decoder takes up to 64 ids; FWD-3's hop limit is the serving node's check."""
    path = tuple(NODE_IDS[: MAX_HOPS + 1])
    assert InferRequest.decode(raw_request(path=list(path))).path == path


def test_request_refuses_bad_paths() -> None:
    assert len(set(NODE_IDS)) == MAX_PATH + 1
    for path in (
        [],
        NODE_IDS,
        [ENTRY.node_id, ENTRY.node_id],
        [ENTRY.node_id, RELAY.node_id, ENTRY.node_id],
        ["not-a-node-id"],
        [ENTRY.node_id.upper()],
        [ENTRY.node_id[:-1]],
        [ENTRY.node_id.encode()],
        [ENTRY.node_id, None],
        [[ENTRY.node_id]],
        ENTRY.node_id,
        {"0": ENTRY.node_id},
        None,
    ):
        refused(raw_request(path=path))


def test_request_refuses_extra_or_missing_keys() -> None:
    refused(raw_request(extra=1))
    refused(raw_request(hops=0))
    for key in ("api", "body", "id", "path"):
        refused(raw_request(**{key: DROP}))
    refused(codec.encode([BODY]))
    refused(codec.encode(None))


def test_request_refuses_non_canonical_bytes() -> None:
    data = REQUEST.encode()
    refused(data + b"\x00")
    refused(data[:-1])
    refused(b"")


def test_digest_covers_every_field() -> None:
    digests = {
        REQUEST.digest(),
        InferRequest("completion", BODY, "req-1", (ENTRY.node_id,)).digest(),
        InferRequest("chat", BODY + b" ", "req-1", (ENTRY.node_id,)).digest(),
        InferRequest("chat", BODY, "req-2", (ENTRY.node_id,)).digest(),
        InferRequest("chat", BODY, "req-1", (OTHER.node_id,)).digest(),
    }
    assert len(digests) == 5
    assert all(len(d) == 32 for d in digests)
    assert REQUEST.digest() == InferRequest.decode(REQUEST.encode()).digest()


def test_digest_is_the_sha256_of_the_bytes_as_received() -> None:
    """RECEIPT-1: decode accepts only canonical bytes, so re-encoding gives back the same."""
    received = raw_request(path=[RELAY.node_id, ENTRY.node_id], id="Z.9")
    assert InferRequest.decode(received).digest() == hashlib.sha256(received).digest()


# --- events -------------------------------------------------------------------------------------

EVENTS = [
    Text("hé, 世界"),
    Text(""),
    Vectors((struct.pack("<2f", 0.5, -1.0), b"")),
    Vectors(()),
    Finished("stop", b"receipt-2"),
    Finished("length", b""),
    Failed("overloaded", "busy, try later", 30),
    Failed("internal", ""),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_event_round_trips_with_a_big_endian_length_prefix(event: object) -> None:
    data = encode_event(event)  # type: ignore[arg-type]
    (length,) = struct.unpack(">I", data[:4])
    assert length == len(data) - 4
    assert decode_event(data[4:]) == event


def test_event_wire_shape() -> None:
    assert codec.decode(encode_event(Text("a"))[4:]) == {"t": "text", "text": "a"}
    assert codec.decode(encode_event(Finished("stop", b"r"))[4:]) == {
        "t": "finish",
        "reason": "stop",
        "receipt": b"r",
    }
    assert codec.decode(encode_event(Vectors((b"abcd",)))[4:]) == {
        "t": "vectors",
        "vectors": [b"abcd"],
    }
    assert codec.decode(encode_event(Failed("c", "m", 5))[4:]) == {
        "t": "error",
        "code": "c",
        "message": "m",
        "retry": 5,
    }


def test_failure_round_trips_without_a_prefix_and_refuses_other_events() -> None:
    failure = Failed("model_not_found", "no such model", 0)
    body = encode_failure(failure)
    assert body == encode_event(failure)[4:]
    assert decode_failure(body) == failure
    with pytest.raises(MalformedFrame):
        decode_failure(encode_event(Text("x"))[4:])
    with pytest.raises(MalformedFrame):
        decode_failure(encode_event(failure))  # with its prefix it is not an event


def event_bytes(value: object) -> bytes:
    return codec.encode(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [
        {"t": "chunk", "text": "a"},
        {"text": "a"},
        {"t": "text", "text": "a", "x": 1},
        {"t": "text", "text": b"a"},
        {"t": "finish", "reason": "eos", "receipt": b""},
        {"t": "finish", "reason": "stop"},
        {"t": "finish", "reason": "stop", "receipt": "r"},
        {"t": "vectors", "vectors": [b"abc"], "receipt": b""},
        {"t": "vectors", "vectors": ["abcd"], "receipt": b""},
        {"t": "vectors", "vectors": b"abcd", "receipt": b""},
        {"t": "error", "code": "c", "message": "m", "retry": -1},
        {"t": "error", "code": "c", "message": "m", "retry": 86_401},
        {"t": "error", "code": "c", "message": "m", "retry": True},
        {"t": "error", "code": "c" * (MAX_TEXT_BYTES + 1), "message": "m", "retry": 0},
        {"t": "error", "code": "c", "message": "m" * (MAX_MESSAGE_BYTES + 1), "retry": 0},
        {"t": "error", "code": "c", "message": "m"},
        ["t", "text"],
        "text",
    ],
)
def test_decode_event_refuses(value: object) -> None:
    with pytest.raises(MalformedFrame):
        decode_event(event_bytes(value))


def test_an_error_event_with_a_long_message_is_still_decodable() -> None:
    """serve.py turns any backend error into Failed(code, str(exc)) and sends it with
    encode_event / encode_failure. Upstream error messages are not bounded (upstream.py keeps a
    JSON body's "message"/"detail" whole), yet decode_event refuses a message over 4096 bytes:
    the requester then sees a protocol break ("answered 400 without a reason", or a mid-stream
    PeerUnavailable that demotes a healthy peer) instead of the peer's error."""
    failure = Failed("invalid_request_error", "x" * (MAX_MESSAGE_BYTES + 1), 0)
    decoded = decode_failure(encode_failure(failure))
    assert (decoded.code, decoded.retry_after_s) == (failure.code, 0)
    assert decoded.message == "x" * MAX_MESSAGE_BYTES  # the longest prefix that fits, not less


@pytest.mark.parametrize(
    ("message", "kept"),
    [
        ("é" * MAX_MESSAGE_BYTES, "é" * (MAX_MESSAGE_BYTES // 2)),  # 2-byte characters end even
        ("a" + "é" * MAX_MESSAGE_BYTES, "a" + "é" * (MAX_MESSAGE_BYTES // 2 - 1)),  # cut mid-é
        ("x" * MAX_MESSAGE_BYTES, "x" * MAX_MESSAGE_BYTES),  # exactly the limit: whole
    ],
)
def test_a_long_message_is_cut_at_the_last_whole_character_that_fits(
    message: str, kept: str
) -> None:
    """Truncation keeps as much of the peer's words as the limit allows: a cut that dropped
    everything, or split a character, would still decode."""
    decoded = decode_failure(encode_failure(Failed("upstream_error", message, 0)))
    assert decoded.message == kept
    assert len(kept.encode()) <= MAX_MESSAGE_BYTES


def test_decode_event_accepts_the_limits() -> None:
    code, message = "c" * MAX_TEXT_BYTES, "é" * (MAX_MESSAGE_BYTES // 2)
    value = {"t": "error", "code": code, "message": message, "retry": 86_400}
    assert decode_event(event_bytes(value)) == Failed(code, message, 86_400)


STREAM_EVENTS: list[Text | Finished | Vectors | Failed] = [
    Text("Hello"),
    Text(", wörld"),
    Vectors((b"\x00\x00\x80?",)),
    Failed("x", "y", 1),
    Finished("stop", b"the receipt"),
]
STREAM = b"".join(encode_event(e) for e in STREAM_EVENTS)


def test_reader_reassembles_events_split_at_every_byte_boundary() -> None:
    boundaries = set()
    offset = 0
    for event in STREAM_EVENTS:
        offset += len(encode_event(event))
        boundaries.add(offset)
    for cut in range(len(STREAM) + 1):
        reader = EventReader()
        first = reader.feed(STREAM[:cut])
        assert reader.pending == (cut not in boundaries and cut != 0), cut
        assert first == STREAM_EVENTS[: sum(1 for b in boundaries if b <= cut)]
        assert first + reader.feed(STREAM[cut:]) == STREAM_EVENTS, cut
        assert not reader.pending


def test_reader_fed_one_byte_at_a_time() -> None:
    reader = EventReader()
    events = []
    for i in range(len(STREAM)):
        events += reader.feed(STREAM[i : i + 1])
    assert events == STREAM_EVENTS
    assert not reader.pending


def test_reader_refuses_a_length_over_the_limit_before_the_body_arrives() -> None:
    reader = EventReader()
    assert reader.feed(encode_event(Text("ok"))) == [Text("ok")]
    with pytest.raises(MalformedFrame):
        reader.feed(struct.pack(">I", MAX_EVENT_BYTES + 1))
    reader = EventReader()
    assert reader.feed(struct.pack(">I", MAX_EVENT_BYTES)) == []  # at the limit: it waits
    assert reader.pending
    reader = EventReader()
    with pytest.raises(MalformedFrame):
        reader.feed(b"\xff\xff\xff\xff")


def test_reader_refuses_a_malformed_event_body() -> None:
    reader = EventReader()
    with pytest.raises(MalformedFrame):
        reader.feed(struct.pack(">I", 1) + b"\xc1")


# --- decoders never raise anything but MalformedFrame -------------------------------------------

FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=12)
    | st.binary(max_size=12)
    | st.sampled_from(["chat", "text", "finish", "vectors", "error", "stop", ENTRY.node_id])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = ["api", "body", "id", "path", "t", "text", "reason", "receipt", "vectors", "code"]
shaped = st.dictionaries(st.sampled_from([*KEYS, "message", "retry", "x"]), values, max_size=6)


def only_malformed(decode: object, data: bytes) -> None:
    try:
        decode(data)  # type: ignore[operator]
    except WireError as exc:
        assert type(exc) is MalformedFrame, repr(exc)


@settings(FAST, max_examples=1000)
@given(st.binary(max_size=200))
def test_decoders_on_arbitrary_bytes_raise_only_malformed(data: bytes) -> None:
    for decode in (decode_event, decode_failure, InferRequest.decode, EventReader().feed):
        only_malformed(decode, data)


@settings(FAST, max_examples=1000)
@given(shaped)
def test_decoders_on_arbitrary_maps_raise_only_malformed(value: dict[str, object]) -> None:
    data = codec.encode(value)  # type: ignore[arg-type]
    for decode in (decode_event, decode_failure, InferRequest.decode):
        only_malformed(decode, data)


@settings(FAST, max_examples=300)
@given(
    st.one_of(
        st.builds(Text, st.text(max_size=50)),
        st.builds(Finished, st.sampled_from(["stop", "length"]), st.binary(max_size=40)),
        st.builds(
            Vectors,
            st.lists(st.binary(max_size=8).filter(lambda b: len(b) % 4 == 0), max_size=3).map(
                tuple
            ),
        ),
        st.builds(
            Failed,
            st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=20),
            st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=60),
            st.integers(0, 86_400),
        ),
    ),
    st.integers(0, 10_000),
)
def test_any_valid_event_round_trips_through_the_reader(event: object, cut: int) -> None:
    data = encode_event(event) * 2  # type: ignore[arg-type]
    cut %= len(data) + 1
    reader = EventReader()
    assert reader.feed(data[:cut]) + reader.feed(data[cut:]) == [event, event]


# --- receipts -----------------------------------------------------------------------------------


def receipt_frame(
    key: NodeKey = SERVER,
    request: InferRequest = REQUEST,
    *,
    model: str = MODEL,
    seq: int = 1,
    now_ms: int = NOW,
) -> bytes:
    return seal_receipt(
        key,
        request,
        model=model,
        prompt_tokens=12,
        completion_tokens=34,
        seq=seq,
        now_ms=now_ms,
    )


def check(
    frame: bytes,
    *,
    request: InferRequest = REQUEST,
    model: str = MODEL,
    server: str = SERVER.node_id,
    now_ms: int = NOW + 1_000,
    guard: SeenReceipts | None = None,
    received: Received = Received(answer_bytes=40),  # noqa: B008 (frozen)
) -> Receipt:
    return check_receipt(
        frame,
        request=request,
        model=model,
        server=server,
        now_ms=now_ms,
        seen=SeenReceipts() if guard is None else guard,
        received=received,
    )


def rejected(frame: bytes, **kw: object) -> str:
    with pytest.raises(ReceiptRejected) as info:
        check(frame, **kw)  # type: ignore[arg-type]
    assert str(info.value).startswith(info.value.reason + ": ")
    return info.value.reason


EXPECTED = Receipt(
    server=SERVER.node_id,
    requester=ENTRY.node_id,
    request_id="req-1",
    request=REQUEST.digest(),
    model=MODEL,
    prompt_tokens=12,
    completion_tokens=34,
    at_ms=NOW,
)


def test_a_sealed_receipt_checks_for_its_request() -> None:
    assert check(receipt_frame()) == EXPECTED


def test_the_requester_is_the_last_node_of_the_path() -> None:
    request = InferRequest("chat", BODY, "req-1", (RELAY.node_id, ENTRY.node_id))
    receipt = check(receipt_frame(request=request), request=request)
    assert receipt.requester == ENTRY.node_id
    assert receipt.request == request.digest()


def test_a_receipt_signed_by_another_node_is_wrong_server() -> None:
    assert rejected(receipt_frame(OTHER)) == "wrong_server"
    assert rejected(receipt_frame(), server=OTHER.node_id) == "wrong_server"


def test_a_receipt_for_another_requester_is_wrong_requester() -> None:
    other = InferRequest("chat", BODY, "req-1", (OTHER.node_id,))
    assert rejected(receipt_frame(request=other)) == "wrong_requester"


def test_a_receipt_for_another_body_is_wrong_request() -> None:
    other = InferRequest("chat", BODY.replace(b"hi", b"ho"), "req-1", (ENTRY.node_id,))
    assert rejected(receipt_frame(request=other)) == "wrong_request"
    other_api = InferRequest("completion", BODY, "req-1", (ENTRY.node_id,))
    assert rejected(receipt_frame(request=other_api)) == "wrong_request"


def test_a_receipt_for_another_request_id_fails_the_digest_check_first() -> None:
    """The digest covers the whole encoded request, id included, and is checked before the id."""
    other = InferRequest("chat", BODY, "req-2", (ENTRY.node_id,))
    assert rejected(receipt_frame(request=other)) == "wrong_request"


def test_a_receipt_whose_id_disagrees_with_its_digest_is_wrong_request_id() -> None:
    payload = codec.encode(
        {
            "completion_tokens": 1,
            "model": MODEL,
            "prompt_tokens": 1,
            "request": REQUEST.digest(),
            "request_id": "req-2",
            "requester": ENTRY.node_id,
            "weights": b"",
        }
    )
    frame = seal(SERVER, RECEIPT_TYPE, payload, seq=1, now_ms=NOW, lifetime_ms=RECEIPT_LIFETIME_MS)
    assert rejected(frame) == "wrong_request_id"


def test_a_receipt_for_another_model_is_wrong_model() -> None:
    assert rejected(receipt_frame(model="llama-3")) == "wrong_model"
    assert rejected(receipt_frame(), model="llama-3") == "wrong_model"


def test_the_first_failing_check_is_named() -> None:
    other = InferRequest("completion", BODY, "req-9", (OTHER.node_id,))
    frame = receipt_frame(OTHER, other, model="llama-3")
    assert rejected(frame) == "wrong_server"
    assert rejected(frame, server=OTHER.node_id) == "wrong_requester"
    assert (
        rejected(
            frame,
            server=OTHER.node_id,
            request=REQUEST.__class__("chat", BODY, "req-1", (OTHER.node_id,)),
        )
        == "wrong_request"
    )
    assert rejected(frame, server=OTHER.node_id, request=other) == "wrong_model"
    assert check(frame, server=OTHER.node_id, request=other, model="llama-3").model == "llama-3"


def test_an_expired_receipt_is_refused() -> None:
    frame = receipt_frame()
    assert check(frame, now_ms=NOW + RECEIPT_LIFETIME_MS - 1) == EXPECTED
    assert rejected(frame, now_ms=NOW + RECEIPT_LIFETIME_MS) == "expired"
    assert rejected(frame, now_ms=NOW + 86_400_000) == "expired"
    assert rejected(frame, now_ms=NOW - 3_600_000) == "future_timestamp"


def test_a_receipt_with_a_flipped_byte_in_the_signed_model_name_has_a_bad_signature() -> None:
    frame = receipt_frame()
    at = frame.index(MODEL.encode())
    tampered = frame[:at] + b"h" + frame[at + 1 :]  # "hemma-3-270m": still valid MessagePack
    assert rejected(tampered) == "bad_signature"
    assert rejected(tampered, model="hemma-3-270m") == "bad_signature"


def test_a_receipt_with_a_flipped_signature_byte_has_a_bad_signature() -> None:
    frame = receipt_frame()
    assert rejected(frame[:-1] + bytes([frame[-1] ^ 1])) == "bad_signature"


def test_a_receipt_with_a_broken_structure_is_malformed() -> None:
    frame = receipt_frame()
    assert rejected(bytes([frame[0] ^ 0x01]) + frame[1:]) == "malformed"
    assert rejected(frame[:-1]) == "malformed"
    assert rejected(b"") == "malformed"


def test_every_single_byte_flip_is_refused() -> None:
    frame = receipt_frame()
    reasons = set()
    for i in range(len(frame)):
        tampered = frame[:i] + bytes([frame[i] ^ 0x20]) + frame[i + 1 :]
        with pytest.raises(ReceiptRejected) as info:
            check(tampered)
        assert info.value.reason in REASONS, (i, info.value)
        reasons.add(info.value.reason)
    assert {"malformed", "bad_signature"} <= reasons


def test_a_receipt_checked_twice_with_one_guard_is_a_replay() -> None:
    guard = SeenReceipts()
    frame = receipt_frame(seq=5)
    assert check(frame, guard=guard) == EXPECTED
    assert rejected(frame, guard=guard) == "replay"
    assert check(receipt_frame(seq=6), guard=guard) == EXPECTED  # the next one still passes
    assert check(frame) == EXPECTED  # a fresh guard has not seen it


def test_an_old_sequence_number_is_no_replay() -> None:
    """A server numbers receipts for all requesters with one counter: a receipt that arrives
    after a thousand newer ones is still honest (no sliding window)."""
    guard = SeenReceipts()
    for seq in range(1000, 2000):
        check(receipt_frame(seq=seq), guard=guard)
    assert check(receipt_frame(seq=7), guard=guard) == EXPECTED


def test_seen_receipts_forget_expired_ones_and_stay_bounded() -> None:
    guard = SeenReceipts(max_entries=3)
    guard.accept("s", 1, expires_ms=100, now_ms=0)
    guard.accept("s", 1, expires_ms=300, now_ms=150)  # the first expired: a new life
    for seq in (2, 3, 4):
        guard.accept("s", seq, expires_ms=300, now_ms=160)
    guard.accept("s", 1, expires_ms=300, now_ms=170)  # evicted as the oldest of a full table
    with pytest.raises(Replayed):
        guard.accept("s", 4, expires_ms=300, now_ms=170)


def test_a_receipt_of_another_message_type_is_refused() -> None:
    frame = seal(SERVER, "peer.ping", b"", seq=1, now_ms=NOW)
    assert rejected(frame) == "unknown_type"


# --- stored receipts ----------------------------------------------------------------------------


def test_a_stored_receipt_verifies_at_its_own_timestamp_long_after_expiry() -> None:
    frame = receipt_frame(now_ms=NOW)
    assert rejected(frame, now_ms=NOW + 10 * 365 * 86_400_000) == "expired"
    assert read_stored_receipt(frame) == EXPECTED
    old = receipt_frame(now_ms=1_000)
    assert read_stored_receipt(old).at_ms == 1_000


def test_a_stored_receipt_is_read_again_and_again() -> None:
    frame = receipt_frame()
    assert read_stored_receipt(frame) == read_stored_receipt(frame) == EXPECTED


def test_a_tampered_stored_receipt_is_refused() -> None:
    frame = receipt_frame()
    at = frame.index(MODEL.encode())
    with pytest.raises(ReceiptRejected) as info:
        read_stored_receipt(frame[:at] + b"h" + frame[at + 1 :])
    assert info.value.reason == "bad_signature"
    with pytest.raises(ReceiptRejected) as info:
        read_stored_receipt(frame[:-1] + bytes([frame[-1] ^ 1]))
    assert info.value.reason == "bad_signature"


@pytest.mark.parametrize(
    "frame",
    [b"", b"\xc0", codec.encode([b"", b""]), codec.encode([codec.encode({"ts": "x"}), b"s"])],
)
def test_garbage_is_not_a_stored_receipt(frame: bytes) -> None:
    with pytest.raises(ReceiptRejected) as info:
        read_stored_receipt(frame)
    assert info.value.reason == "malformed"


def test_a_stored_envelope_of_another_type_is_not_a_receipt() -> None:
    with pytest.raises(ReceiptRejected) as info:
        read_stored_receipt(seal(SERVER, "peer.ping", b"", seq=1, now_ms=NOW))
    assert info.value.reason == "unknown_type"


@pytest.mark.parametrize(
    "override",
    [
        {"request": b"short"},
        {"requester": "not-a-node"},
        {"prompt_tokens": -1},
        {"completion_tokens": "3"},
        {"model": "m" * (MAX_TEXT_BYTES + 1)},
        {"weights": b"\x01" * 31},
        {"weights": ""},
        {"extra": 1},
    ],
)
def test_a_signed_receipt_with_a_bad_payload_is_malformed(override: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "completion_tokens": 1,
        "model": MODEL,
        "prompt_tokens": 1,
        "request": REQUEST.digest(),
        "request_id": "req-1",
        "requester": ENTRY.node_id,
        "weights": b"",
    }
    fields.update(override)
    payload = codec.encode(fields)  # type: ignore[arg-type]
    frame = seal(SERVER, RECEIPT_TYPE, payload, seq=1, now_ms=NOW, lifetime_ms=RECEIPT_LIFETIME_MS)
    assert rejected(frame) == "malformed"
    with pytest.raises(ReceiptRejected) as info:
        read_stored_receipt(frame)
    assert info.value.reason == "malformed"


def test_control_characters_in_a_peer_error_are_replaced() -> None:
    data = encode_failure(Failed("bad\x1b[31m", "line one\nline two\x85", 0))
    assert decode_failure(data) == Failed("bad [31m", "line one line two ", 0)


@pytest.mark.parametrize(
    ("prompt", "completion", "received", "reason"),
    [
        (len(REQUEST.body) + 257, 1, Received(40), "inflated_prompt"),
        (1, 10**12, Received(40), "inflated_completion"),
        (1, 41 + 8, Received(40), "inflated_completion"),
        (1, 35, Received(40, max_tokens=34), "inflated_completion"),
        (1, 40 + 5 + 8 + 1, Received(40, stop_bytes=5), "inflated_completion"),
    ],
)
def test_a_receipt_cannot_claim_more_than_was_sent_and_received(
    prompt: int, completion: int, received: Received, reason: str
) -> None:
    """Issue 13 finding 3: a member signed receipts for 10^12 tokens and the requester kept them."""
    frame = seal_receipt(
        SERVER,
        REQUEST,
        model=MODEL,
        prompt_tokens=prompt,
        completion_tokens=completion,
        seq=1,
        now_ms=NOW,
    )
    assert rejected(frame, received=received) == reason
    honest = seal_receipt(
        SERVER, REQUEST, model=MODEL, prompt_tokens=1, completion_tokens=1, seq=2, now_ms=NOW
    )
    assert check(honest, received=received).completion_tokens == 1
