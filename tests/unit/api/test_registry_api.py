"""Registry reads over the client API when the node has API keys (specs/0005 REG-17): a
linearizable read writes a `sync` to the log, so only a client with a key may cause one; stale
reads of the local replica stay open. The registry service is stood in for by its read path."""

import time
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from fpai_node.api.admin.registry import from_json, registry_routes, to_json
from fpai_node.api.app import NodeInfo, build_app
from fpai_node.inference.openai_requests import ApiError
from fpai_node.registry.raft import RaftStatus
from fpai_node.registry.state import RegistryState

NODE = "fpn1" + "a" * 32
API_KEY = "k" * 24


class Replica:
    """The registry service's read side: `read` is what commits a `sync` (REG-14)."""

    def __init__(self) -> None:
        self.state = RegistryState()
        self.status = RaftStatus(f"{NODE}@127.0.0.1:7200", False)
        self.linearizable_reads = 0

    async def read(self) -> RegistryState:
        self.linearizable_reads += 1
        return self.state


@pytest.fixture
def replica() -> Replica:
    return Replica()


@pytest.fixture
async def client(replica: Replica) -> AsyncIterator[TestClient[object, object]]:
    app = build_app(
        NodeInfo(NODE, "local", time.monotonic()),
        [],
        [registry_routes(replica)],  # type: ignore[arg-type]
        [API_KEY],
    )
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_only_a_client_with_the_api_key_causes_a_linearizable_read(
    client: TestClient[object, object], replica: Replica
) -> None:
    """REG-17: without the key a linearizable read is refused before it reaches the log; a
    stale read is answered to anyone from the local replica; with the key, one `sync`."""
    for path in ("/fpai/v1/registry", "/fpai/v1/registry/parameters/x"):
        refused = await client.get(path)
        assert refused.status == 401
        assert (await refused.json())["error"]["code"] == "invalid_api_key"
        wrong = await client.get(path, headers={"Authorization": "Bearer " + "x" * 24})
        assert wrong.status == 401
    assert replica.linearizable_reads == 0

    stale = await client.get("/fpai/v1/registry?stale=1")
    assert stale.status == 200 and (await stale.json())["index"] == 0
    assert replica.linearizable_reads == 0

    keyed = await client.get("/fpai/v1/registry", headers={"Authorization": f"Bearer {API_KEY}"})
    assert keyed.status == 200
    assert replica.linearizable_reads == 1


def test_byte_strings_written_as_reads_show_them_round_trip() -> None:
    """A parameter holding bytes (a treasury binding, specs/0009) is read as {"$bin": hex}
    and can be written back the same way; anything else under "$bin" is refused."""
    value = {"signature": b"\x00\xff", "items": [b"", 1, "text", {"$other": "kept"}]}
    assert from_json(to_json(value)) == value
    for bad in ({"$bin": "zz"}, {"$bin": 5}, {"$bin": "0"}):
        with pytest.raises(ApiError, match="hex digits"):
            from_json(bad)
