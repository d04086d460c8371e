"""Coverage-guided fuzzing of the wire decoder (specs/0002-wire.md VERIFY-13).

    python tests/fuzz/fuzz_envelope.py -max_total_time=20 -rss_limit_mb=2048 \
        tests/fuzz/corpus-envelope

Each input goes through `codec.decode` and `open_envelope` (with a fixed clock and a fresh replay
guard, then once more through the same guard) and, when accepted, through the payload decoder of
its type. The target fails only if something other than a WireError escapes: any other exception,
a crash, a hang or runaway memory is a bug in the decoder. When the corpus directory holds no seed
yet, a few valid sealed frames (seed_*.bin, from fixed keys) are written into it first, so the
fuzzer starts from frames that pass every check.
"""

import contextlib

import atheris
import fuzzing

with atheris.instrument_imports(include=["fpai_node", "msgpack"]):
    from fpai_node.identity import NodeKey
    from fpai_node.wire import codec
    from fpai_node.wire.envelope import open_envelope, seal
    from fpai_node.wire.errors import WireError
    from fpai_node.wire.messages import MESSAGE_TYPES, Ping, Pong
    from fpai_node.wire.replay import ReplayGuard

NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, also the seeds' timestamp
PAYLOAD_DECODERS = {Ping.TYPE: Ping.decode, Pong.TYPE: Pong.decode}


def seed_frames() -> dict[str, bytes]:
    alice = NodeKey.from_seed(bytes(range(32)))
    bob = NodeKey.from_seed(bytes(range(1, 33)))
    nonce = bytes(range(16))
    return {
        "ping": seal(alice, Ping.TYPE, Ping(nonce).encode(), seq=1, now_ms=NOW_MS),
        "pong": seal(
            bob, Pong.TYPE, Pong(nonce).encode(), seq=2**40, now_ms=NOW_MS, lifetime_ms=600_000
        ),
        "ping_future": seal(
            bob, Ping.TYPE, Ping(bytes(16)).encode(), seq=7, now_ms=NOW_MS + 30_000
        ),
        "unknown_type": seal(alice, "gossip.announce", b"\x80", seq=3, now_ms=NOW_MS),
        "big_body": seal(
            alice,
            Ping.TYPE,
            codec.encode({"nonce": nonce, "pad": bytes(300)}),
            seq=4,
            now_ms=NOW_MS,
        ),
    }


def test_one_input(data: bytes) -> None:
    with contextlib.suppress(WireError):
        codec.decode(data)
    guard = ReplayGuard()
    try:
        envelope = open_envelope(data, now_ms=NOW_MS, known_types=MESSAGE_TYPES, replay_guard=guard)
    except WireError:
        return
    with contextlib.suppress(WireError):
        PAYLOAD_DECODERS[envelope.type](envelope.payload)
    try:
        open_envelope(data, now_ms=NOW_MS, known_types=MESSAGE_TYPES, replay_guard=guard)
    except WireError:
        return
    raise AssertionError("the replay guard accepted the same frame twice")


if __name__ == "__main__":
    fuzzing.run(test_one_input, seed_frames)
