"""Boundaries of the wire layer that a mutation pass (issue 23) found unpinned: the extremes of
every range in specs/0002-wire.md that `seal` and `open_envelope` must accept, the type checks
`seal` makes before signing, the sequence counter, and the replay window's bounded memory."""

import pytest

from fpai_node.identity import NodeKey
from fpai_node.wire.envelope import (
    DEFAULT_LIFETIME_MS,
    MAX_FRAME_BYTES,
    Envelope,
    open_envelope,
    seal,
)
from fpai_node.wire.messages import SequenceCounter
from fpai_node.wire.replay import DEFAULT_WINDOW, ReplayGuard

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
ALICE = NodeKey.from_seed(bytes(range(32)))
UINT64_MAX = (1 << 64) - 1


def open_at(frame: bytes, now_ms: int, types: set[str] | None = None) -> Envelope:
    return open_envelope(
        frame, now_ms=now_ms, known_types=types or {"peer.ping"}, replay_guard=ReplayGuard()
    )


def test_a_one_byte_message_type_is_sealed_and_opened() -> None:
    """ENV-2, MSG-1, VERIFY-5: a type is a str of 1..64 UTF-8 bytes, so one byte is a type."""
    frame = seal(ALICE, "x", b"", seq=1, now_ms=NOW)
    assert open_at(frame, NOW, {"x"}).type == "x"
    with pytest.raises(ValueError, match="message type"):
        seal(ALICE, "", b"", seq=1, now_ms=NOW)


@pytest.mark.parametrize("payload", ["text", bytearray(b"ping"), memoryview(b"ping"), None])
def test_seal_signs_only_a_bytes_payload(payload: object) -> None:
    """ENV-2: `body` is bin. A str would go out as a MessagePack str that every verifier
    refuses; a bytearray is not the immutable bytes the signature was computed over."""
    with pytest.raises(ValueError, match="payload must be bytes"):
        seal(ALICE, "peer.ping", payload, seq=1, now_ms=NOW)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="payload must be bytes"):
        seal(ALICE, 7, b"ping", seq=1, now_ms=NOW)  # type: ignore[arg-type]


def test_timestamps_span_the_whole_uint64_range() -> None:
    """ENV-2: `ts` and `exp` are uint: 0 is a time, and an expiry may be 2^64-1."""
    at_epoch = seal(ALICE, "peer.ping", b"", seq=0, now_ms=0)
    opened = open_at(at_epoch, 0)
    assert (opened.seq, opened.timestamp_ms, opened.expires_ms) == (0, 0, DEFAULT_LIFETIME_MS)

    last_ts = UINT64_MAX - DEFAULT_LIFETIME_MS
    at_the_end = seal(ALICE, "peer.ping", b"", seq=UINT64_MAX, now_ms=last_ts)
    opened = open_at(at_the_end, last_ts)
    assert (opened.seq, opened.expires_ms) == (UINT64_MAX, UINT64_MAX)
    with pytest.raises(ValueError, match="unsigned 64-bit"):
        seal(ALICE, "peer.ping", b"", seq=1, now_ms=last_ts + 1)
    with pytest.raises(ValueError, match="unsigned 64-bit"):
        seal(ALICE, "peer.ping", b"", seq=1, now_ms=-1)


def test_a_frame_of_exactly_max_frame_bytes_is_sealed_and_opened() -> None:
    """ENV-5, VERIFY-1: a frame MUST NOT *exceed* 1,048,576 bytes; one of exactly that size is
    valid for the sender and the receiver alike, one byte more for neither."""
    probe = 1_000_000
    overhead = len(seal(ALICE, "peer.ping", bytes(probe), seq=1, now_ms=NOW)) - probe
    payload = bytes(MAX_FRAME_BYTES - overhead)
    frame = seal(ALICE, "peer.ping", payload, seq=1, now_ms=NOW)
    assert len(frame) == MAX_FRAME_BYTES
    assert open_at(frame, NOW).payload == payload
    with pytest.raises(ValueError, match="exceeds"):
        seal(ALICE, "peer.ping", payload + b"\x00", seq=1, now_ms=NOW)


def test_sequence_numbers_count_up_by_one_from_the_start_time() -> None:
    """SEQ-1: each frame a sender signs has a `seq` greater than the last; the counter starts
    at the clock so that a restart continues above the numbers it used before."""
    counter = SequenceCounter(NOW * 1000)
    assert [counter.next() for _ in range(4)] == [NOW * 1000 + i for i in range(4)]


@pytest.mark.parametrize("window", [1, 8, DEFAULT_WINDOW])
def test_a_senders_window_keeps_at_most_window_bits(window: int) -> None:
    """REPLAY-2, REPLAY-3: memory per sender is bounded by the window, however many messages
    the sender has sent. Without the mask its bitmap grows a bit per message: a million frames
    from one peer would be a 125 kB integer shifted on every accept. (Private state: the bound
    is the point, and nothing public shows it.)"""
    guard = ReplayGuard(window=window)
    for seq in range(1, 1000):
        guard.accept("a", seq, NOW, NOW + 1, NOW)
    assert guard._senders["a"].seen.bit_length() <= window
    assert guard._senders["a"].seen == (1 << window) - 1  # the last `window` seqs, all seen
