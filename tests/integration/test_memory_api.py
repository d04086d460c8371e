"""The memory API through Mem0's own client (`mem0ai`, unchanged) against a real node: every call
the client makes, Mem0's record shape and filter language, and its exceptions for bad input."""

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fpai_node.testing.nodeproc import NodeProcess, run_cli

os.environ["MEM0_TELEMETRY"] = "False"  # before mem0 is imported: no calls home from tests
from mem0 import MemoryClient
from mem0.exceptions import MemoryNotFoundError, ValidationError

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
KEY = "memory-test-key-0123456789"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    home = tmp_path_factory.mktemp("memory") / "node"
    with NodeProcess(home, "--api", "127.0.0.1:0", "--no-model", "--api-key", KEY) as process:
        yield process


@pytest.fixture
def client(node: NodeProcess) -> MemoryClient:
    return MemoryClient(host=node.url, api_key=KEY)


def memories(results: dict[str, Any]) -> list[str]:
    return [r["memory"] for r in results["results"]]


def test_every_client_call_against_a_node(client: MemoryClient) -> None:
    user = f"alice-{time.monotonic_ns()}"
    added = client.add(
        "I drink green tea every morning", user_id=user, metadata={"topic": "drinks"}, infer=False
    )
    [record] = added["results"]
    assert record["event"] == "ADD" and record["user_id"] == user and record["agent_id"] is None
    assert record["metadata"] == {"topic": "drinks"} and len(record["hash"]) == 32
    client.add(
        [
            {"role": "user", "content": "My dog is called Rex"},
            {"role": "assistant", "content": "What a good name"},
        ],
        filters={"user_id": user},
        agent_id="helper",
        metadata={"topic": "pets", "weight": 12.5},
        infer=False,
    )
    again = client.add("I drink green tea every morning", user_id=user, infer=False)
    assert again["results"][0]["event"] == "NONE"  # dedup by hash within the scope
    assert again["results"][0]["id"] == record["id"]

    found = client.search("what does she drink?", filters={"user_id": user}, top_k=2)
    assert memories(found)[0] == "I drink green tea every morning"
    scores = [r["score"] for r in found["results"]]
    assert len(scores) == 2 and scores[0] > scores[1]
    assert memories(client.search("dog", filters={"user_id": user}, threshold=0.99)) == []
    pets = client.search(
        "animals",
        filters={"AND": [{"user_id": user}, {"metadata": {"weight": {"gte": 10}}}]},
    )
    assert sorted(memories(pets)) == ["My dog is called Rex", "What a good name"]
    either_filter = {"OR": [{"agent_id": "helper"}, {"metadata": {"topic": "drinks"}}]}
    either = client.search("x", filters={**either_filter, "user_id": user})
    assert len(either["results"]) == 3
    not_pets_filter = {"user_id": user, "NOT": [{"metadata": {"topic": "pets"}}]}
    not_pets = client.search("x", filters=not_pets_filter)
    assert memories(not_pets) == ["I drink green tea every morning"]
    since = client.search("x", filters={"user_id": user, "created_at": {"gte": "2000-01-01"}})
    assert len(since["results"]) == 3

    assert client.get(record["id"])["memory"] == "I drink green tea every morning"
    page = client.get_all(filters={"AND": [{"user_id": user}]}, page=1, page_size=2)
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"] is not None
    assert len(client.get_all(filters={"user_id": user})["results"]) == 3

    updated = client.update(record["id"], text="I drink black tea", metadata={"topic": "tea"})
    assert updated["memory"] == "I drink black tea" and updated["metadata"] == {"topic": "tea"}
    assert memories(client.search("black tea", filters={"user_id": user}, top_k=1)) == [
        "I drink black tea"
    ]
    client.delete(record["id"])
    with pytest.raises(MemoryNotFoundError):
        client.get(record["id"])
    history = client.history(record["id"])
    assert [(h["event"], h["old_memory"], h["new_memory"]) for h in history] == [
        ("ADD", None, "I drink green tea every morning"),
        ("UPDATE", "I drink green tea every morning", "I drink black tea"),
        ("DELETE", "I drink black tea", None),
    ]
    client.delete_all(filters={"user_id": user})
    assert client.get_all(filters={"user_id": user})["results"] == []


def test_bad_input_is_a_client_exception_never_a_server_error(client: MemoryClient) -> None:
    with pytest.raises(ValidationError, match="unknown filter field"):
        client.search("x", filters={"favourite": "tea"})
    with pytest.raises(ValidationError, match="operator"):
        client.search("x", filters={"user_id": {"like": "a%"}})
    with pytest.raises(ValidationError, match="user_id, agent_id or run_id"):
        client.add("nobody's memory", infer=False)
    with pytest.raises(ValidationError, match="bytes"):
        client.add("x" * 40_000, user_id="big", infer=False)
    with pytest.raises(ValidationError, match="metadata"):
        client.add("x", user_id="big", metadata={"blob": "y" * 20_000}, infer=False)
    with pytest.raises(ValidationError, match="user_id must be a string"):
        client.add("typed", user_id=5, infer=False)
    with pytest.raises(ValidationError, match="threshold"):
        client.search("x", filters={"user_id": "u"}, threshold="high")
    with pytest.raises(ValidationError, match="top_k"):
        client.search("x", filters={"user_id": "u"}, top_k=1000)
    with pytest.raises(MemoryNotFoundError):
        client.get("00000000-0000-8000-8000-000000000000")
    with pytest.raises(MemoryNotFoundError):
        client.update("not-an-id", text="x")


def test_infer_without_a_chat_model_stores_the_text_and_says_so(client: MemoryClient) -> None:
    """Mem0 drops memories when extraction fails; here the text is kept and the answer says why."""
    added = client.add("I am allergic to peanuts", user_id=f"u-{time.monotonic_ns()}")
    assert added["inferred"] is False and "no chat model" in added["note"]
    assert memories(added) == ["I am allergic to peanuts"]


def test_the_api_key_guards_memory(node: NodeProcess) -> None:
    with pytest.raises(ValueError, match="API key"):
        MemoryClient(host=node.url, api_key="wrong-key-0123456789")


def test_the_cli_remembers_searches_and_forgets(node: NodeProcess, tmp_path: Path) -> None:
    common = ["--api", node.url, "--api-key", KEY]
    added = run_cli("memory", "add", "Carol plays the cello", "--user", "carol", *common)
    assert added.returncode == 0 and added.stdout.startswith("ADD "), added.stderr
    memory_id = added.stdout.split()[1]
    found = run_cli("memory", "search", "music", "--user", "carol", "--json", *common)
    assert '"Carol plays the cello"' in found.stdout
    listed = run_cli("memory", "list", "--user", "carol", *common)
    assert memory_id in listed.stdout
    assert "ADD" in run_cli("memory", "history", memory_id, *common).stdout
    assert run_cli("memory", "forget", memory_id, *common).returncode == 0
    gone = run_cli("memory", "get", memory_id, *common)
    assert gone.returncode == 1 and "not found" in gone.stderr
    no_scope = run_cli("memory", "add", "x", *common)
    assert no_scope.returncode == 1 and "--user, --agent or --run" in no_scope.stderr
