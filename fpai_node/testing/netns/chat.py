"""Chat requests (OpenAI shape) through every gateway, all along a fault and after it."""

import time
from dataclasses import dataclass

from fpai_node.testing.netns.api_client import Answer, Outcome
from fpai_node.testing.netns.federation import MODEL_ID, NetnsNode
from fpai_node.testing.netns.sampling import PerNodeSampler

CHAT_PATH = "/v1/chat/completions"
MAX_TOKENS = 4  # plumbing, not quality: a few tokens take ~0.1 s on the 270M model
CHAT_TIMEOUT_S = 30.0  # a routed request waits behind the others on one llama.cpp; then it hangs
CHAT_EVERY_S = 3.0  # background chats per gateway: a trace of routing without crowding the CPU
CHAT_STOP_TIMEOUT_S = CHAT_TIMEOUT_S + 5  # a prober stops after its request in flight


@dataclass(frozen=True)
class ChatAttempt:
    node: str
    start: float
    end: float
    outcome: Outcome
    status: int | None
    error: str  # error code (e.g. model_unavailable) or what broke the connection


def chat(node: NetnsNode, timeout_s: float = CHAT_TIMEOUT_S) -> tuple[ChatAttempt, Answer]:
    body = {
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": MAX_TOKENS,
    }
    start = time.monotonic()
    answer = node.request("POST", CHAT_PATH, body, timeout_s=timeout_s)
    attempt = ChatAttempt(
        node.name,
        start,
        time.monotonic(),
        answer.outcome,
        answer.status,
        answer.error_code or answer.detail,
    )
    return attempt, answer


def chat_prober(nodes: list[NetnsNode]) -> PerNodeSampler[ChatAttempt]:
    """A chat through every gateway every CHAT_EVERY_S, until `stop()`."""
    return PerNodeSampler(nodes, lambda node: chat(node)[0], CHAT_EVERY_S, CHAT_STOP_TIMEOUT_S)
