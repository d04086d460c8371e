"""The streaming route when a backend fails after the first token (a fake backend: this is a
test of the API layer; the real backends are tested through real models and servers)."""

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from fpai_node.inference.base import (
    TextChunk,
    UpstreamError,
)
from fpai_node.inference.service import InferenceService
from fpai_node.testing.api_app import inference_api
from fpai_node.testing.scripted_backend import ScriptedBackend


@pytest.fixture(params=[UpstreamError("upstream hung up"), RuntimeError("a bug")])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[TestClient[object, object]]:
    service = InferenceService(
        [ScriptedBackend([TextChunk("Hello")], request.param)], max_waiting=1
    )
    await service.start()
    async with TestClient(TestServer(inference_api("fpn1" + "a" * 32, service))) as c:
        yield c
    await service.close()


async def test_a_failure_after_the_first_token_ends_the_stream_with_an_error_event(
    client: TestClient[object, object],
) -> None:
    body = {"model": "m", "prompt": "x", "stream": True}
    response = await client.post("/v1/completions", json=body)
    assert response.status == 200
    text = (await response.read()).decode()  # a corrupted chunked body would raise here
    events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert '"Hello"' in events[0]
    assert '"error"' in events[-1] and "HTTP/1.1" not in text
