"""The requester's acknowledgement of a receipt, the pair they make, and how acknowledgements
travel back to the server (specs/0010-rewards.md RWD-1..RWD-3). Pure.

A receipt is the server's word; an acknowledgement is the requester's signed account of what it
received for it: the hash of the output, the counts it accepts, and its verdict on the receipt's
counts. Rewards count a request only through a pair of both, so a server is paid for what the
requester says it got, and a receipt signed for an answer that never arrived has no pair.
"""

import hashlib
import re
from dataclasses import dataclass, field

from fpai_node.identity.keys import NodeKey
from fpai_node.identity.nodeid import is_node_id
from fpai_node.router.messages import (
    RECEIPT_LIFETIME_MS,
    Receipt,
    ReceiptRejected,
    read_stored_receipt,
)
from fpai_node.wire import codec
from fpai_node.wire.envelope import MAX_CLOCK_SKEW_MS, Envelope, open_kept, seal
from fpai_node.wire.errors import MalformedFrame, WireError

ACK_TYPE = "usage.ack"
ACKS_PATH = "/fpai/peer/v1/acks"
ACK_LIFETIME_MS = 60_000  # as a receipt's: an acknowledgement is signed while its receipt is live
OK = "ok"
# RWD-1: the verdicts other than "ok": the RECEIPT-2 count checks a receipt can fail and still
# be the server's (a receipt that fails any other check is not acknowledged at all)
DISPUTES = ("inflated_prompt", "inflated_completion")
MAX_ACKS_PER_BATCH = 256  # RWD-3: one POST; 256 acknowledgements are about 90 KiB
MAX_ACK_BYTES = 1024  # RWD-3: an acknowledgement is about 330 bytes; a frame over 1 KiB is not one
MAX_RECEIPT_BYTES = 2048  # RWD-2: a receipt is about 420 bytes with its longest model id
_VERDICT = re.compile(r"[a-z_]{1,32}")


@dataclass(frozen=True, slots=True)
class Ack:
    requester: str  # the envelope's signer
    server: str
    receipt: bytes  # SHA-256 of the receipt frame
    output: bytes  # SHA-256 of the answer (RWD-1)
    prompt_tokens: int
    completion_tokens: int
    verdict: str
    at_ms: int  # the envelope's timestamp

    @property
    def counts(self) -> bool:
        return self.verdict == OK


def receipt_hash(frame: bytes) -> bytes:
    return hashlib.sha256(frame).digest()


def acknowledge(
    key: NodeKey,
    receipt_frame: bytes,
    receipt: Receipt,
    *,
    output: bytes,
    verdict: str,
    seq: int,
    now_ms: int,
) -> "Pair":
    """RWD-1: acknowledge `receipt` (its counts when the verdict is "ok", else none); the pair,
    built from what was signed rather than read back from the frame (no second signature check
    on the request's path)."""
    accepted = verdict == OK
    ack = Ack(
        requester=key.node_id,
        server=receipt.server,
        receipt=receipt_hash(receipt_frame),
        output=output,
        prompt_tokens=receipt.prompt_tokens if accepted else 0,
        completion_tokens=receipt.completion_tokens if accepted else 0,
        verdict=verdict,
        at_ms=now_ms,
    )
    payload = codec.encode(
        {
            "completion_tokens": ack.completion_tokens,
            "output": ack.output,
            "prompt_tokens": ack.prompt_tokens,
            "receipt": ack.receipt,
            "server": ack.server,
            "verdict": ack.verdict,
        }
    )
    frame = seal(key, ACK_TYPE, payload, seq=seq, now_ms=now_ms, lifetime_ms=ACK_LIFETIME_MS)
    return Pair(receipt_frame, frame, receipt, ack)


def read_ack(frame: bytes) -> Ack:
    """An acknowledgement verified at its own timestamp (as RECEIPT-4 a receipt), or
    ReceiptRejected naming why not."""
    if len(frame) > MAX_ACK_BYTES:
        raise ReceiptRejected("malformed", f"an acknowledgement is at most {MAX_ACK_BYTES} bytes")
    try:
        return _ack(open_kept(frame, known_types={ACK_TYPE}))
    except WireError as exc:
        raise ReceiptRejected(exc.reason, str(exc)) from None


def _ack(envelope: Envelope) -> Ack:
    value = codec.decode(envelope.payload)
    keys = {"completion_tokens", "output", "prompt_tokens", "receipt", "server", "verdict"}
    if not isinstance(value, dict) or value.keys() != keys:
        raise MalformedFrame(f"expected a map with exactly the keys {sorted(keys)}")
    receipt, output, server = value["receipt"], value["output"], value["server"]
    if type(receipt) is not bytes or len(receipt) != 32:
        raise MalformedFrame("receipt is a 32-byte SHA-256")
    if type(output) is not bytes or len(output) != 32:
        raise MalformedFrame("output is a 32-byte SHA-256")
    if type(server) is not str or not is_node_id(server) or server == envelope.sender:
        raise MalformedFrame("server is another node's id")
    verdict = value["verdict"]
    if type(verdict) is not str or not _VERDICT.fullmatch(verdict):
        raise MalformedFrame("verdict is 1..32 characters of [a-z_]")
    prompt, completion = value["prompt_tokens"], value["completion_tokens"]
    for count in (prompt, completion):
        if type(count) is not int or not 0 <= count < 1 << 63:
            raise MalformedFrame("counts are unsigned integers")
    if verdict != OK and (prompt or completion):
        raise MalformedFrame("a disputed receipt is acknowledged with no counts")
    return Ack(
        requester=envelope.sender,
        server=server,
        receipt=receipt,
        output=output,
        prompt_tokens=prompt,  # type: ignore[arg-type]
        completion_tokens=completion,  # type: ignore[arg-type]
        verdict=verdict,
        at_ms=envelope.timestamp_ms,
    )


@dataclass(frozen=True, slots=True)
class Pair:
    """RWD-2: a receipt and its acknowledgement, both verified and naming each other."""

    receipt_frame: bytes
    ack_frame: bytes
    receipt: Receipt
    ack: Ack
    id: bytes = field(init=False, compare=False)  # RWD-2, hashed once: digests and indexes use it

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", pair_id(self.receipt_frame, self.ack_frame))

    @property
    def epoch_ms(self) -> int:
        """When the work was done: the receipt's timestamp (RWD-4 numbers epochs by it)."""
        return self.receipt.at_ms


def pair_id(receipt_frame: bytes, ack_frame: bytes) -> bytes:
    """RWD-2: SHA-256 of the canonical array [receipt, ack]."""
    return hashlib.sha256(codec.encode([receipt_frame, ack_frame])).digest()


def read_pair(receipt_frame: bytes, ack_frame: bytes) -> Pair:
    """RWD-2's checks, in order; ReceiptRejected names the first that fails."""
    if len(receipt_frame) > MAX_RECEIPT_BYTES:
        raise ReceiptRejected("malformed", f"a receipt is at most {MAX_RECEIPT_BYTES} bytes")
    receipt = read_stored_receipt(receipt_frame)
    ack = read_ack(ack_frame)
    if ack.receipt != receipt_hash(receipt_frame):
        raise ReceiptRejected("wrong_receipt", "the acknowledgement names another receipt")
    if ack.requester != receipt.requester:
        raise ReceiptRejected("wrong_requester", "the acknowledgement is not the requester's")
    if ack.server != receipt.server:
        raise ReceiptRejected("wrong_server", "the acknowledgement names another server")
    if not receipt.at_ms - MAX_CLOCK_SKEW_MS <= ack.at_ms <= _ack_deadline(receipt):
        raise ReceiptRejected("late_ack", "not signed while the receipt was live")
    if ack.verdict == OK and (
        ack.prompt_tokens != receipt.prompt_tokens
        or ack.completion_tokens != receipt.completion_tokens
    ):
        raise ReceiptRejected("wrong_counts", "an accepted receipt is acknowledged with its counts")
    return Pair(receipt_frame, ack_frame, receipt, ack)


def _ack_deadline(receipt: Receipt) -> int:
    return receipt.at_ms + RECEIPT_LIFETIME_MS + MAX_CLOCK_SKEW_MS


def encode_acks(frames: list[bytes]) -> bytes:
    """RWD-3: the body of one POST: a canonical array of 1..256 acknowledgement frames."""
    return codec.encode(list(frames))


def decode_acks(body: bytes) -> list[bytes]:
    value = codec.decode(body)
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_ACKS_PER_BATCH:
        raise MalformedFrame(f"expected an array of 1..{MAX_ACKS_PER_BATCH} acknowledgements")
    if not all(type(v) is bytes and len(v) <= MAX_ACK_BYTES for v in value):
        raise MalformedFrame(f"each acknowledgement is a byte string of at most {MAX_ACK_BYTES}")
    return value  # type: ignore[return-value]


def encode_ack_result(accepted: int, refused: dict[str, int]) -> bytes:
    return codec.encode({"accepted": accepted, "refused": dict(refused)})
