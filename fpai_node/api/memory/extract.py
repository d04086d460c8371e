"""Fact extraction for `infer=true`, through the router: the federation's chat model, wherever
it runs. The memory layer sits below the router, so the API layer hands it this function."""

import json
import uuid

from fpai_node.errors import FpaiError
from fpai_node.inference.base import Finish, InferenceError
from fpai_node.inference.openai_requests import ApiError
from fpai_node.memory.embeddings import MODEL_ID as EMBEDDING_MODEL_ID
from fpai_node.memory.extraction import (
    EXTRACTION_MAX_TOKENS,
    ExtractionFailed,
    Message,
    extraction_messages,
)
from fpai_node.memory.memories import Complete
from fpai_node.router.jobs import parse_job
from fpai_node.router.router import Router


def router_completer(router: Router) -> Complete:
    """The extraction prompt, to the first chat model of the federation (this node's own when
    it serves one: /v1/models lists local models first for equal names, then by id)."""

    async def complete(conversation: list[Message]) -> str:
        models = [m for m in router.models() if m["id"] != EMBEDDING_MODEL_ID]
        if not models:
            raise FpaiError("no chat model in the federation")
        chosen = next((m for m in models if m["local"]), models[0])
        context = chosen.get("context_length") or 0
        # half a small model's context for the answer leaves the other half for the prompt
        budget = min(EXTRACTION_MAX_TOKENS, context // 2) if context else EXTRACTION_MAX_TOKENS
        body = json.dumps(
            {
                "model": chosen["id"],
                "messages": extraction_messages(conversation),
                "max_tokens": budget,
                "temperature": 0,
            }
        ).encode()
        try:
            job = parse_job("chat", body)
            opened = await router.open(job, f"memory-{uuid.uuid4().hex[:16]}")
            parts: list[str] = []
            event = opened.first
            try:
                while not isinstance(event, Finish):
                    parts.append(getattr(event, "text", ""))
                    event = await anext(opened.events)
            finally:
                await opened.events.aclose()
        except (InferenceError, ApiError) as exc:  # the model refused or failed: say why
            raise ExtractionFailed(f"the chat model {chosen['id']} answered: {exc}") from None
        return "".join(parts)

    return complete
