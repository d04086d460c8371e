import time
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from fpai_node import __version__
from fpai_node.inference.service import InferenceService
from fpai_node.testing.api_app import inference_api


@pytest.fixture
async def client() -> AsyncIterator[TestClient[object, object]]:
    app = inference_api(
        "fpn1" + "a" * 32,
        InferenceService([], max_waiting=0),
        started_monotonic=time.monotonic() - 2.5,
    )
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_healthz(client: TestClient[object, object]) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_status_fields(client: TestClient[object, object]) -> None:
    body = await (await client.get("/fpai/v1/status")).json()
    assert body["node_id"] == "fpn1" + "a" * 32
    assert body["version"] == __version__
    assert body["preset"] == "local"
    assert 2.5 <= body["uptime_s"] < 60
    assert body["models"] == []  # its one service's section; a node's others add theirs
    assert "peers" not in body


async def test_request_id_is_kept_when_sane_and_replaced_otherwise(
    client: TestClient[object, object],
) -> None:
    ok = await client.get("/healthz", headers={"X-Request-Id": "req-1.a_b"})
    assert ok.headers["X-Request-Id"] == "req-1.a_b"
    bad = await client.get("/healthz", headers={"X-Request-Id": "has spaces\tand tabs"})
    assert bad.headers["X-Request-Id"] != "has spaces\tand tabs"
    assert len(bad.headers["X-Request-Id"]) == 32


async def test_http_errors_use_the_openai_error_shape(client: TestClient[object, object]) -> None:
    missing = await client.get("/v1/nothing")
    assert missing.status == 404
    assert await missing.json() == {
        "error": {
            "message": "Not Found",
            "type": "invalid_request_error",
            "param": None,
            "code": "not_found",
        }
    }
    wrong_method = await client.post("/healthz")
    assert wrong_method.status == 405
    assert (await wrong_method.json())["error"]["code"] == "method_not_allowed"
