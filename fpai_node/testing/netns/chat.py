"""Chat requests (OpenAI shape) through every gateway, all along a fault and after it."""

import threading
import time
from dataclasses import dataclass

from fpai_node.testing.netns.api_client import Answer, Outcome
from fpai_node.testing.netns.federation import MODEL_ID, NetnsNode

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


class ChatProber:
    """One thread per gateway sending a chat every CHAT_EVERY_S until `stop()`."""

    def __init__(self, nodes: list[NetnsNode]) -> None:
        self.nodes = nodes
        self.attempts: list[ChatAttempt] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for node in self.nodes:
            thread = threading.Thread(target=self._probe, args=(node,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _probe(self, node: NetnsNode) -> None:
        while not self._stop.is_set():
            attempt, _ = chat(node)
            with self._lock:
                self.attempts.append(attempt)
            self._stop.wait(CHAT_EVERY_S)

    def stop(self) -> list[ChatAttempt]:
        self._stop.set()
        for thread in self._threads:
            thread.join(CHAT_STOP_TIMEOUT_S)
        with self._lock:
            return list(self.attempts)
