"""Receipt-and-acknowledgement pairs (specs/0010-rewards.md RWD-2) for the tests of the layers
that sum, sample and report them: real signatures from fixed test keys."""

import hashlib

from fpai_node.identity import NodeKey
from fpai_node.router.acks import Pair, acknowledge
from fpai_node.router.messages import InferRequest, read_stored_receipt, seal_receipt

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SERVER = NodeKey.from_seed(b"\x07" * 32)  # test only, like every key here
REQUESTER = NodeKey.from_seed(b"\x08" * 32)
WEIGHTS = hashlib.sha256(b"the weights").digest()


def make_pair(
    seq: int = 1,
    *,
    server: NodeKey = SERVER,
    requester: NodeKey = REQUESTER,
    at_ms: int | None = None,
    model: str = "m",
    weights: bytes = WEIGHTS,
    verdict: str = "ok",
) -> Pair:
    """`server`'s receipt for a chat request `r<seq>` of `requester` (3 prompt and 5
    completion tokens) at `at_ms` (NOW + seq), acknowledged a millisecond later."""
    signed_at = NOW + seq if at_ms is None else at_ms
    request = InferRequest("chat", b"{}", f"r{seq}", (requester.node_id,))
    frame = seal_receipt(
        server, request, model=model, prompt_tokens=3, completion_tokens=5, seq=seq,
        now_ms=signed_at, weights=weights,
    )  # fmt: skip
    return acknowledge(
        requester, frame, read_stored_receipt(frame), output=bytes(32), verdict=verdict,
        seq=seq, now_ms=signed_at + 1,
    )  # fmt: skip
