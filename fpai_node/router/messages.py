"""What a forwarded request and its answer look like on the peer channel (specs/0006-routing.md,
FWD-1..FWD-6), and the signed usage receipt (RECEIPT-1..RECEIPT-4). Pure.

The request carries the client's OpenAI JSON body unchanged: the serving node validates it with
the same rules as its own API, so a forwarded request behaves exactly like a direct one. The
answer is a stream of length-prefixed MessagePack events, whatever the client asked: the entry
node shapes them into a streaming or a whole OpenAI response itself.
"""

import hashlib
import re
import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal, TypeAlias

from fpai_node.identity.keys import NodeKey
from fpai_node.identity.nodeid import is_node_id
from fpai_node.wire import codec
from fpai_node.wire.envelope import Envelope, open_envelope, open_kept, seal
from fpai_node.wire.errors import MalformedFrame, Replayed, WireError

INFER_PATH = "/fpai/peer/v1/infer"
RECEIPT_TYPE = "usage.receipt"
RECEIPT_LIFETIME_MS = 60_000  # checked at once by the requester; stored receipts verify by ts
MAX_HOPS = 4  # FWD-3: path length; v1 nodes serve where the request lands (one hop)
MAX_PATH = 64  # FWD-1: what a decoder reads; FWD-3 refuses anything over MAX_HOPS
MAX_REQUEST_BODY_BYTES = 4 << 20  # FWD-1: the client API's own body limit
MAX_EVENT_BYTES = 1 << 20  # FWD-4: one event; a text chunk is a few bytes, embeddings more
VECTORS_EVENT_BYTES = 256 << 10  # a sender's target size for one `vectors` event
MAX_TEXT_BYTES = 256  # model ids, error codes
MAX_MESSAGE_BYTES = 4096  # error messages
APIS = ("chat", "completion", "embeddings")
FINISH_REASONS = ("stop", "length")
SERVER_MS_HEADER = "FPAI-Server-Ms"  # FWD-5: ms from the request's arrival to its first event
PROBE_ID_PREFIX = "probe-"  # ROUTE-9: a probe's request id; its receipt is nobody's usage


def is_probe(request_id: str) -> bool:
    return request_id.startswith(PROBE_ID_PREFIX)


# RECEIPT-2: a chat template's tokens (turn markers, a BOS, a default system prompt) that no
# byte of the request body covers; the JSON body's own keys already cover a few per message
PROMPT_TEMPLATE_TOKENS = 256
# RECEIPT-2: generated tokens no text event shows (an end-of-turn, a special token)
UNSEEN_COMPLETION_TOKENS = 8
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_LENGTH = struct.Struct(">I")

Api = Literal["chat", "completion", "embeddings"]


@dataclass(frozen=True, slots=True)
class InferRequest:
    api: Api
    body: bytes  # the client's OpenAI request, JSON, UTF-8
    request_id: str
    path: tuple[str, ...]  # node ids the request passed through, entry node first

    def encode(self) -> bytes:
        return codec.encode(
            {"api": self.api, "body": self.body, "id": self.request_id, "path": list(self.path)}
        )

    @classmethod
    def decode(cls, data: bytes) -> "InferRequest":
        fields = _map(codec.decode(data), {"api", "body", "id", "path"})
        api, body, request_id, path = fields["api"], fields["body"], fields["id"], fields["path"]
        if api not in APIS:
            raise MalformedFrame(f"api must be one of {APIS}")
        if type(body) is not bytes or len(body) > MAX_REQUEST_BODY_BYTES:
            raise MalformedFrame(f"body must be at most {MAX_REQUEST_BODY_BYTES} bytes")
        if type(request_id) is not str or not REQUEST_ID.fullmatch(request_id):
            raise MalformedFrame("id must be 1..64 characters of [A-Za-z0-9._-]")
        if not isinstance(path, list) or not 1 <= len(path) <= MAX_PATH:
            raise MalformedFrame(f"path must list 1..{MAX_PATH} node ids")
        if not all(type(n) is str and is_node_id(n) for n in path) or len(set(path)) != len(path):
            raise MalformedFrame("path must list distinct node ids")
        return cls(api, body, request_id, tuple(path))  # type: ignore[arg-type]

    def digest(self) -> bytes:
        """RECEIPT-1: what a receipt names, so it cannot be claimed for another request."""
        return hashlib.sha256(self.encode()).digest()


# ---- answer events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Finished:
    reason: Literal["stop", "length"]
    receipt: bytes


@dataclass(frozen=True, slots=True)
class Vectors:
    """The next embeddings, in input order; an answer holds as many events as it needs."""

    vectors: tuple[bytes, ...]  # each a little-endian float32 array


@dataclass(frozen=True, slots=True)
class Failed:
    """An error: the whole answer before the first event, or the end of a broken stream."""

    code: str
    message: str
    retry_after_s: int = 0


Event: TypeAlias = Text | Finished | Vectors | Failed


def encode_event(event: Event) -> bytes:
    """One event as it goes on the wire: u32 big-endian length, then canonical MessagePack."""
    match event:
        case Text(text):
            value: codec.Value = {"t": "text", "text": text}
        case Finished(reason, receipt):
            value = {"reason": reason, "receipt": receipt, "t": "finish"}
        case Vectors(vectors):
            value = {"t": "vectors", "vectors": list(vectors)}
        case Failed(code, message, retry_after_s):
            value = {
                "code": code,
                "message": _truncated(message, MAX_MESSAGE_BYTES),
                "retry": retry_after_s,
                "t": "error",
            }
    data = codec.encode(value)
    return _LENGTH.pack(len(data)) + data


def _truncated(text: str, max_bytes: int) -> str:
    """Cut at a character boundary: an upstream's error message can be any length."""
    data = text.encode("utf-8")
    return text if len(data) <= max_bytes else data[:max_bytes].decode("utf-8", "ignore")


def encode_failure(failure: Failed) -> bytes:
    """FWD-6: the body of a non-200 answer is one error event without its length prefix."""
    return encode_event(failure)[_LENGTH.size :]


def decode_event(data: bytes) -> Event:
    value = codec.decode(data)
    if not isinstance(value, dict):
        raise MalformedFrame("an event is a map")
    kind = value.get("t")
    if kind == "text":
        fields = _map(value, {"t", "text"})
        return Text(_text(fields["text"], MAX_EVENT_BYTES))
    if kind == "finish":
        fields = _map(value, {"t", "reason", "receipt"})
        reason = fields["reason"]
        if reason not in FINISH_REASONS:
            raise MalformedFrame(f"reason must be one of {FINISH_REASONS}")
        return Finished(reason, _bytes(fields["receipt"]))  # type: ignore[arg-type]
    if kind == "vectors":
        fields = _map(value, {"t", "vectors"})
        vectors = fields["vectors"]
        if not isinstance(vectors, list) or not all(
            type(v) is bytes and len(v) % 4 == 0 for v in vectors
        ):
            raise MalformedFrame("vectors must be float32 byte strings")
        return Vectors(tuple(vectors))  # type: ignore[arg-type]
    if kind == "error":
        fields = _map(value, {"t", "code", "message", "retry"})
        retry = fields["retry"]
        if type(retry) is not int or not 0 <= retry <= 86_400:
            raise MalformedFrame("retry must be 0..86400 seconds")
        return Failed(
            _printable(_text(fields["code"], MAX_TEXT_BYTES)),
            _printable(_text(fields["message"], MAX_MESSAGE_BYTES)),
            retry,
        )
    raise MalformedFrame(f"unknown event {kind!r}")


def decode_failure(data: bytes) -> Failed:
    event = decode_event(data)
    if not isinstance(event, Failed):
        raise MalformedFrame("a non-200 answer is an error event")
    return event


class EventReader:
    """Splits a byte stream into events; fed whatever chunks the connection delivers."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[Event]:
        self._buffer += chunk
        events: list[Event] = []
        while len(self._buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._buffer)
            if length > MAX_EVENT_BYTES:
                raise MalformedFrame(f"event of {length} bytes exceeds {MAX_EVENT_BYTES}")
            end = _LENGTH.size + length
            if len(self._buffer) < end:
                break
            events.append(decode_event(bytes(self._buffer[_LENGTH.size : end])))
            del self._buffer[:end]
        return events

    @property
    def pending(self) -> bool:
        """Bytes of an unfinished event: a stream that ends here was cut."""
        return bool(self._buffer)


# ---- receipts --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Receipt:
    server: str  # the envelope's signer
    requester: str
    request_id: str
    request: bytes  # InferRequest.digest()
    model: str
    prompt_tokens: int
    completion_tokens: int
    at_ms: int  # the envelope's timestamp
    weights: bytes = b""  # SHA-256 of the weights file the server ran, or b"" (RECEIPT-1)


class ReceiptRejected(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class SeenReceipts:
    """RECEIPT-2's replay check: each (server, seq) accepted once while it is live.

    Not the envelope's sliding window: a server numbers receipts for every requester with one
    counter, and a requester checks each when its answer ends, so an honest receipt can arrive
    long after 64 newer ones. Memory is bounded by the receipt lifetime times the request rate;
    past `max_entries` live entries the oldest are forgotten (their receipts expire soon after).
    """

    def __init__(self, max_entries: int = 1 << 20) -> None:
        self._live: OrderedDict[tuple[str, int], int] = OrderedDict()
        self._max = max_entries

    def accept(self, server: str, seq: int, expires_ms: int, now_ms: int) -> None:
        while self._live and (
            next(iter(self._live.values())) <= now_ms or len(self._live) >= self._max
        ):
            self._live.popitem(last=False)
        if (server, seq) in self._live:
            raise Replayed(f"receipt {seq} of {server} was already accepted")
        self._live[(server, seq)] = expires_ms


def seal_receipt(
    key: NodeKey,
    request: InferRequest,
    *,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    seq: int,
    now_ms: int,
    weights: bytes = b"",
) -> bytes:
    """RECEIPT-1: the serving node's signed account of one forwarded request."""
    payload = codec.encode(
        {
            "completion_tokens": completion_tokens,
            "model": model,
            "prompt_tokens": prompt_tokens,
            "request": request.digest(),
            "request_id": request.request_id,
            "requester": request.path[-1],
            "weights": weights,
        }
    )
    return seal(key, RECEIPT_TYPE, payload, seq=seq, now_ms=now_ms, lifetime_ms=RECEIPT_LIFETIME_MS)


@dataclass(frozen=True, slots=True)
class Received:
    """What the requester got and asked for, against which a receipt's counts are checked
    (RECEIPT-2): the UTF-8 bytes of every `text` event, the request's `max_tokens` (or
    `max_completion_tokens`) if it set one, and the UTF-8 bytes of its stop sequences."""

    answer_bytes: int
    max_tokens: int | None = None
    stop_bytes: int = 0


def check_receipt(
    frame: bytes,
    *,
    request: InferRequest,
    model: str,
    server: str,
    now_ms: int,
    seen: SeenReceipts,
    received: Received,
) -> Receipt:
    """RECEIPT-2: the requester's checks; ReceiptRejected names the first that fails."""
    try:
        envelope = open_envelope(
            frame, now_ms=now_ms, known_types={RECEIPT_TYPE}, replay_guard=None
        )
        receipt = _receipt(envelope)
    except WireError as exc:
        raise ReceiptRejected(exc.reason, str(exc)) from None
    expected = {
        "wrong_server": (receipt.server, server),
        "wrong_requester": (receipt.requester, request.path[-1]),
        "wrong_request": (receipt.request, request.digest()),
        "wrong_request_id": (receipt.request_id, request.request_id),
        "wrong_model": (receipt.model, model),
    }
    for reason, (got, want) in expected.items():
        if got != want:
            raise ReceiptRejected(reason, f"receipt says {got!r}, expected {want!r}")
    _check_counts(receipt, request, received)
    try:
        seen.accept(envelope.sender, envelope.seq, envelope.expires_ms, now_ms)
    except WireError as exc:
        raise ReceiptRejected(exc.reason, str(exc)) from None
    return receipt


def prompt_limit(request: InferRequest) -> int:
    """RECEIPT-2: the most prompt tokens a receipt may claim for `request`."""
    return len(request.body) + PROMPT_TEMPLATE_TOKENS


def completion_limit(received: Received) -> int:
    """RECEIPT-2: the most completion tokens a receipt may claim for what was received."""
    limit = received.answer_bytes + received.stop_bytes + UNSEEN_COMPLETION_TOKENS
    return limit if received.max_tokens is None else min(limit, received.max_tokens)


def _check_counts(receipt: Receipt, request: InferRequest, received: Received) -> None:
    """RECEIPT-2: a server cannot claim more tokens than the bytes it was sent and sent back
    allow. Each token covers at least one byte of its text, except a template's and a few
    special tokens; text a stop sequence withheld is at most the stop sequences' bytes."""
    if receipt.prompt_tokens > prompt_limit(request):
        raise ReceiptRejected(
            "inflated_prompt",
            f"{receipt.prompt_tokens} prompt tokens for a {len(request.body)}-byte request",
        )
    limit = completion_limit(received)
    if receipt.completion_tokens > limit:
        raise ReceiptRejected(
            "inflated_completion",
            f"{receipt.completion_tokens} completion tokens for {received.answer_bytes} bytes "
            f"of text (at most {limit})",
        )


def read_stored_receipt(frame: bytes) -> Receipt:
    """RECEIPT-4: a kept receipt verifies at its own timestamp, however old it is."""
    try:
        return _receipt(open_kept(frame, known_types={RECEIPT_TYPE}))
    except WireError as exc:
        raise ReceiptRejected(exc.reason, str(exc)) from None


def _receipt(envelope: Envelope) -> Receipt:
    fields = _map(
        codec.decode(envelope.payload),
        {
            "completion_tokens",
            "model",
            "prompt_tokens",
            "request",
            "request_id",
            "requester",
            "weights",
        },
    )
    digest = _bytes(fields["request"])
    requester = fields["requester"]
    if len(digest) != 32 or type(requester) is not str or not is_node_id(requester):
        raise MalformedFrame("request is a 32-byte digest, requester a node id")
    weights = _bytes(fields["weights"])
    if len(weights) not in (0, 32):
        raise MalformedFrame("weights is a 32-byte SHA-256 or empty")
    request_id = _text(fields["request_id"], MAX_TEXT_BYTES)
    return Receipt(
        server=envelope.sender,
        requester=requester,
        request_id=request_id,
        request=digest,
        model=_text(fields["model"], MAX_TEXT_BYTES),
        prompt_tokens=_uint(fields["prompt_tokens"]),
        completion_tokens=_uint(fields["completion_tokens"]),
        at_ms=envelope.timestamp_ms,
        weights=weights,
    )


def _map(value: codec.Value, keys: set[str]) -> dict[str, codec.Value]:
    if not isinstance(value, dict) or value.keys() != keys:
        raise MalformedFrame(f"expected a map with exactly the keys {sorted(keys)}")
    return value


def _text(value: codec.Value, max_bytes: int) -> str:
    if type(value) is not str or len(value.encode("utf-8")) > max_bytes:
        raise MalformedFrame(f"expected a string of at most {max_bytes} bytes")
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc


def _printable(text: str) -> str:
    """A peer's words reach logs and clients: no control characters (no forged log lines)."""
    return _CONTROL.sub(" ", text)


def _bytes(value: codec.Value) -> bytes:
    if type(value) is not bytes or len(value) > MAX_EVENT_BYTES:
        raise MalformedFrame("expected a byte string")
    return value


def _uint(value: codec.Value) -> int:
    if type(value) is not int or not 0 <= value < 1 << 63:
        raise MalformedFrame("expected an unsigned integer")
    return value
