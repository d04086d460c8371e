"""`GET /metrics` of real node processes in a 3-node federation on loopback (issue 7): A serves
the bundled model as `x`, B (which has an API key) and C are gateways that serve nothing. The
values scraped must be what the clients saw: requests, tokens, forwards, peers, the registry."""

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fpai_node.testing.nodeproc import NodeProcess, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
KEY = "metrics-test-key"
CHAT = {
    "model": "x",
    "messages": [{"role": "user", "content": "Name a colour."}],
    "max_tokens": 6,
    "temperature": 0.0,
    "seed": 1,
}
ROUTE = "/v1/chat/completions"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(node: NodeProcess, key: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    request = urllib.request.Request(node.url + "/metrics", headers=headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape_when(
    node: NodeProcess, settled: Callable[[Samples], bool], key: str | None = None
) -> Samples:
    """A scrape once `settled` holds (a counter may move a moment after the client's answer
    ended), or the last one after a few seconds, for the asserts to show what differs."""
    deadline = time.monotonic() + 5.0
    scraped = scrape(node, key)
    while not settled(scraped) and time.monotonic() < deadline:
        time.sleep(0.05)
        scraped = scrape(node, key)
    return scraped


def value(scraped: Samples, name: str, **labels: str) -> float | None:
    return scraped.get((name, frozenset(labels.items())))


def labelled(scraped: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for sample, labels in scraped if sample == name]


@pytest.fixture(scope="module")
def federation(
    gguf_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, NodeProcess]]:
    tmp = tmp_path_factory.mktemp("metrics")
    nodes: dict[str, NodeProcess] = {}
    try:
        nodes["a"] = NodeProcess(
            tmp / "a", "--api", "127.0.0.1:0", "--model", f"{gguf_model}=x"
        ).start()
        for name, extra in (("b", ("--api-key", KEY)), ("c", ())):
            nodes[name] = NodeProcess(
                tmp / name, "--api", "127.0.0.1:0", "--join", nodes["a"].peer, "--no-model", *extra
            ).start()
        for name, node in nodes.items():  # every node sees both others alive
            key = KEY if name == "b" else None
            wait_for(lambda n=node, k=key: value(scrape(n, k), "fpai_peers", state="alive") == 2)
        a_id = nodes["a"].node_id
        wait_for(  # and B knows A serves x
            lambda: any(
                m["id"] == "x" and a_id in m["fpai"]["nodes"]
                for m in client(nodes["b"], KEY).models.list().model_dump()["data"]
            )
        )
        for name in ("b", "c"):  # both probed A's model (ROUTE-9): no probe runs after this
            node = nodes[name]
            wait_for(
                lambda n=node: n.get_json("/fpai/v1/status")["router"]["proven"] == {a_id: ["x"]}
            )
        wait_for(lambda: value(scrape(nodes["a"]), "fpai_model_requests_running", model="x") == 0)
        yield nodes
    finally:
        for node in nodes.values():
            node.kill()


def client(node: NodeProcess, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=node.url + "/v1", api_key=key, max_retries=0, timeout=60)


def chat_twice(node: NodeProcess, key: str = "unused") -> tuple[int, int]:
    """One plain and one streamed chat: (prompt tokens, completion tokens) the client got."""
    plain = client(node, key).chat.completions.create(**CHAT)  # type: ignore[call-overload]
    chunks = list(
        client(node, key).chat.completions.create(  # type: ignore[call-overload]
            **CHAT, stream=True, stream_options={"include_usage": True}
        )
    )
    streamed = chunks[-1].usage
    assert plain.usage.completion_tokens > 0 and streamed.completion_tokens > 0
    return (
        plain.usage.prompt_tokens + streamed.prompt_tokens,
        plain.usage.completion_tokens + streamed.completion_tokens,
    )


def test_scraped_values_match_what_the_clients_saw(federation: dict[str, NodeProcess]) -> None:
    a, b, c = federation["a"], federation["b"], federation["c"]
    a_id, b_id = a.node_id, b.node_id
    a_tokens = chat_twice(a)  # served by A itself
    started = time.monotonic()
    b_tokens = chat_twice(b, KEY)  # forwarded by B to A
    b_elapsed_s = time.monotonic() - started

    ok = {"route": ROUTE, "method": "POST", "status": "200"}
    on_a = scrape_when(
        a,
        lambda s: (
            value(s, "fpai_http_requests_total", **ok) == 2
            and value(s, "fpai_peer_requests_served_total", peer=b_id) == 2
        ),
    )
    on_b = scrape_when(b, lambda s: value(s, "fpai_http_requests_total", **ok) == 2, KEY)
    for scraped, (prompt, completion) in ((on_a, a_tokens), (on_b, b_tokens)):
        assert value(scraped, "fpai_http_requests_total", **ok) == 2
        assert value(scraped, "fpai_http_request_duration_seconds_count", route=ROUTE) == 2
        assert value(scraped, "fpai_prompt_tokens_total", model="x") == prompt
        assert value(scraped, "fpai_completion_tokens_total", model="x") == completion
        assert value(scraped, "fpai_time_to_first_token_seconds_count", model="x") == 2
        assert (value(scraped, "fpai_gossip_messages_sent_total", type="gossip.ping") or 0) > 0
        assert (value(scraped, "fpai_gossip_messages_received_total", type="gossip.ack") or 0) > 0
    # B forwarded both of its requests to A, and A served them for B
    assert value(on_b, "fpai_forwarded_requests_total", peer=a_id) == 2
    assert value(on_b, "fpai_forwards_in_flight", peer=a_id) == 0
    # an average of what each hop added: more than nothing, less than the requests took
    assert 0 < (value(on_b, "fpai_forward_overhead_seconds", peer=a_id) or 0) < b_elapsed_s
    assert labelled(on_b, "fpai_receipts_rejected_total") == []
    assert value(on_a, "fpai_peer_requests_served_total", peer=b_id) == 2
    assert labelled(on_a, "fpai_forwarded_requests_total") == []
    assert value(on_a, "fpai_model_requests_running", model="x") == 0
    assert value(on_a, "fpai_model_requests_waiting", model="x") == 0
    assert labelled(on_b, "fpai_model_requests_running") == []  # B serves nothing itself

    # one leader, the same for all, in a term >= 1, with the three members running
    def registries() -> list[Samples] | None:
        scraped = [scrape(a), scrape(b, KEY), scrape(c)]
        leaders = [labelled(s, "fpai_registry_leader_info") for s in scraped]
        agreed = all(len(ls) == 1 and ls == leaders[0] for ls in leaders)
        settled = all(
            value(s, "fpai_registry_members") == 3
            and value(s, "fpai_registry_phase", phase="running") == 1
            for s in scraped
        )
        return scraped if agreed and settled else None

    scraped = wait_for(registries)
    leader = labelled(scraped[0], "fpai_registry_leader_info")[0]["leader_id"]
    assert sum(value(s, "fpai_registry_is_leader") for s in scraped) == 1  # type: ignore[misc]
    ids = [a_id, b_id, c.node_id]
    assert value(scraped[ids.index(leader)], "fpai_registry_is_leader") == 1
    for s in scraped:
        assert (value(s, "fpai_registry_term") or 0) >= 1
        assert (value(s, "fpai_registry_applied_index") or 0) >= 1
        assert (value(s, "fpai_registry_commit_index") or 0) >= 1
        assert value(s, "fpai_peers", state="alive") == 2
        assert value(s, "fpai_peers", state="dead") == 0


def test_metrics_need_the_key_of_a_node_that_has_keys(federation: dict[str, NodeProcess]) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        scrape(federation["b"])
    assert refused.value.code == 401
    scrape(federation["b"], KEY)
    scrape(federation["c"])  # no keys: open (loopback)
