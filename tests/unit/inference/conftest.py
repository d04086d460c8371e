"""The real llama.cpp backend on the bundled model, one per test module (its event loop)."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from fpai_node.inference.llamacpp import LlamaCppBackend, LocalModel

MODEL = "gemma-3-270m"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def backend(gguf_model: Path) -> AsyncIterator[LlamaCppBackend]:
    llama = LlamaCppBackend([LocalModel(MODEL, gguf_model)], context_length=512, threads=2)
    await llama.start()
    yield llama
    await llama.close()
