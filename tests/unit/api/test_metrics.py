"""Each service's metric families over fakes of its fields, collected as one node's, and
/metrics through the API app with a fake backend (the real parts are scraped in
tests/integration/test_metrics_endpoint.py)."""

import asyncio
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from fpai_node import __version__
from fpai_node.api.metrics import CONTENT_TYPE, Metrics
from fpai_node.gossip.messages import Status
from fpai_node.gossip.service import GossipService
from fpai_node.gossip.state import GossipStats
from fpai_node.inference.base import (
    Finish,
    GenerationEvent,
    ModelCard,
    TextChunk,
    Usage,
)
from fpai_node.inference.service import InferenceService
from fpai_node.peer.channel import PeerChannel
from fpai_node.registry.raft import RaftStatus, TransportCounters
from fpai_node.registry.service import RegistryService
from fpai_node.router.service import RouterService
from fpai_node.service import Service
from fpai_node.testing.api_app import inference_api
from fpai_node.testing.scripted_backend import ScriptedBackend

NODE = "fpn1" + "a" * 32
PEER_B, PEER_C = "fpn1" + "b" * 32, "fpn1" + "c" * 32
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of a scrape, by (name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scraped: Samples, name: str, **labels: str) -> float | None:
    return scraped.get((name, frozenset(labels.items())))


def fake_parts() -> dict[str, Any]:
    inference = SimpleNamespace(
        models=lambda: [
            SimpleNamespace(
                card=ModelCard("m", "llamacpp", capacity=2),
                admission=SimpleNamespace(running=1, waiting=3),
            )
        ]
    )
    members = [
        SimpleNamespace(node_id=PEER_B, status=Status.ALIVE),
        SimpleNamespace(node_id=PEER_C, status=Status.SUSPECT),
        SimpleNamespace(node_id="fpn1" + "d" * 32, status=Status.ALIVE),
    ]
    gossip = SimpleNamespace(
        members=lambda: members,
        sent=Counter({"gossip.ping": 5, "gossip.ack": 4}),
        send_failures=Counter({"unreachable": 2}),
        received=Counter({"gossip.ack": 5}),
        rejected=Counter({"expired": 1}),
        node=SimpleNamespace(
            stats=GossipStats(suspicions=2, deaths=1, announcements_accepted=3, reconnects=6),
            local_health=2,
        ),
    )
    registry = SimpleNamespace(
        status=RaftStatus(
            member=f"{NODE}@127.0.0.1:7200",
            learner=False,
            leader=f"{PEER_B}@127.0.0.1:7201",
            is_leader=False,
            term=4,
            commit_index=17,
            applied_index=16,
        ),
        state=SimpleNamespace(members={NODE: None, PEER_B: None}),
        phase="running",
        counters=TransportCounters(refusals=Counter({"not_a_member": 2})),
    )
    forwarder = SimpleNamespace(
        forwarded=Counter({PEER_B: 3}),
        inflight=Counter({PEER_C: 1}),
        latency_ms={PEER_B: 12.5},
        receipts_rejected=Counter({"bad_signature": 1}),
        demotions=Counter({"inflated_completion": 2}),
        proofs=SimpleNamespace(status=lambda: {PEER_B: ["m", "n"]}),
        acks=SimpleNamespace(dropped=Counter({"expired": 4})),
    )
    serving = SimpleNamespace(
        served=Counter({PEER_C: 2}),
        refused=Counter({"not_a_member": 1}),
        acks=SimpleNamespace(refused=Counter({"unknown_receipt": 5})),
    )
    return {
        "inference": inference,
        "gossip": gossip,
        "registry": registry,
        "router": SimpleNamespace(forwarder=forwarder, serving=serving),
        "peer channel": SimpleNamespace(refusals=Counter({"rate_limited": 7, "expired": 1})),
    }


SERVICE_CLASSES: dict[str, type[Service]] = {
    "inference": InferenceService,
    "gossip": GossipService,
    "registry": RegistryService,
    "router": RouterService,
    "peer channel": PeerChannel,
}


class Reading(Service):
    """A service whose metrics are a real service class's own metric code, run over a fake that
    has the fields that code reads."""

    def __init__(self, name: str, fake: object) -> None:
        self.name = name
        self._fake = fake

    async def start(self) -> None:
        pass

    async def stop(self, leave: bool) -> None:
        pass

    def metrics(self) -> Iterable[Metric]:
        return SERVICE_CLASSES[self.name].metrics(self._fake)  # type: ignore[arg-type]


def services(parts: dict[str, Any]) -> list[Service]:
    return [Reading(name, fake) for name, fake in parts.items()]


def test_the_collector_reads_every_part_at_scrape_time() -> None:
    parts = fake_parts()
    metrics = Metrics(NODE, services(parts))
    scraped = samples(metrics.render().decode())

    info = [dict(labels) for name, labels in scraped if name == "fpai_node_info"]
    assert info == [{"node_id": NODE, "version": __version__, "protocol_version": "1"}]
    assert value(scraped, "fpai_model_requests_running", model="m") == 1
    assert value(scraped, "fpai_model_requests_waiting", model="m") == 3
    assert value(scraped, "fpai_model_slots", model="m") == 2
    assert value(scraped, "fpai_peers", state="alive") == 2
    assert value(scraped, "fpai_peers", state="suspect") == 1
    assert value(scraped, "fpai_peers", state="dead") == 0
    assert value(scraped, "fpai_peers", state="left") == 0
    assert value(scraped, "fpai_gossip_messages_sent_total", type="gossip.ping") == 5
    assert value(scraped, "fpai_gossip_messages_received_total", type="gossip.ack") == 5
    assert value(scraped, "fpai_gossip_messages_rejected_total", reason="expired") == 1
    assert value(scraped, "fpai_gossip_send_failures_total", reason="unreachable") == 2
    assert value(scraped, "fpai_gossip_transitions_total", state="suspect") == 2
    assert value(scraped, "fpai_gossip_transitions_total", state="dead") == 1
    assert value(scraped, "fpai_gossip_announcements_total", result="accepted") == 3
    assert value(scraped, "fpai_gossip_refutations_total") == 0
    assert value(scraped, "fpai_gossip_reconnects_total") == 6
    assert value(scraped, "fpai_gossip_local_health") == 2
    assert value(scraped, "fpai_peer_channel_refusals_total", reason="rate_limited") == 7
    assert value(scraped, "fpai_registry_term") == 4
    assert value(scraped, "fpai_registry_is_leader") == 0
    assert value(scraped, "fpai_registry_leader_info", leader_id=PEER_B) == 1
    assert value(scraped, "fpai_registry_commit_index") == 17
    assert value(scraped, "fpai_registry_applied_index") == 16
    assert value(scraped, "fpai_registry_is_learner") == 0
    assert value(scraped, "fpai_registry_members") == 2
    assert value(scraped, "fpai_registry_phase", phase="running") == 1
    assert value(scraped, "fpai_registry_refusals_total", reason="not_a_member") == 2
    assert value(scraped, "fpai_forwarded_requests_total", peer=PEER_B) == 3
    assert value(scraped, "fpai_forwards_in_flight", peer=PEER_B) == 0
    assert value(scraped, "fpai_forwards_in_flight", peer=PEER_C) == 1
    assert value(scraped, "fpai_forward_overhead_seconds", peer=PEER_B) == 0.0125
    assert value(scraped, "fpai_receipts_rejected_total", reason="bad_signature") == 1
    assert value(scraped, "fpai_acknowledgements_refused_total", reason="unknown_receipt") == 5
    assert value(scraped, "fpai_acknowledgements_dropped_total", reason="expired") == 4
    assert value(scraped, "fpai_router_demotions_total", reason="inflated_completion") == 2
    assert value(scraped, "fpai_router_proven_models", peer=PEER_B) == 2
    assert value(scraped, "fpai_peer_requests_served_total", peer=PEER_C) == 2
    assert value(scraped, "fpai_peer_requests_refused_total", reason="not_a_member") == 1

    # live: the next scrape sees what changed since, with no call into the metrics
    parts["router"].forwarder.forwarded[PEER_B] += 1
    parts["gossip"].node.stats.deaths += 1
    rescraped = samples(metrics.render().decode())
    assert value(rescraped, "fpai_forwarded_requests_total", peer=PEER_B) == 4
    assert value(rescraped, "fpai_gossip_transitions_total", state="dead") == 2


def test_no_leader_no_leader_sample_and_absent_parts_are_left_out() -> None:
    parts = fake_parts()
    parts["registry"].status = RaftStatus(member=f"{NODE}@127.0.0.1:7200", learner=True)
    only_registry = services({"registry": parts["registry"]})
    scraped = samples(Metrics(NODE, only_registry).render().decode())
    assert not [k for k in scraped if k[0] == "fpai_registry_leader_info"]
    assert value(scraped, "fpai_registry_is_learner") == 1
    assert not [k for k in scraped if k[0].startswith(("fpai_peers", "fpai_forward"))]


def test_each_node_has_its_own_registry() -> None:
    """Several nodes in one process (the tests do this) must neither collide nor share counts."""
    first, second = Metrics(NODE), Metrics(PEER_B)
    first.count_tokens("m", 5, 7)
    first.observe_request("/healthz", "GET", 200, 0.001)
    scraped = samples(second.render().decode())
    assert value(scraped, "fpai_prompt_tokens_total", model="m") is None
    assert value(samples(first.render().decode()), "fpai_prompt_tokens_total", model="m") == 5


ANSWER = (
    TextChunk("Hel"),
    TextChunk("lo"),
    Finish("stop", Usage(prompt_tokens=11, completion_tokens=2)),
)


async def app_client(api_keys: Sequence[str] = ()) -> TestClient[object, object]:
    service = InferenceService([ScriptedBackend(ANSWER)], max_waiting=1)
    await service.start()
    return TestClient(TestServer(inference_api(NODE, service, api_keys)))


@pytest.fixture
async def client() -> AsyncIterator[TestClient[object, object]]:
    async with await app_client() as c:
        yield c


async def scrape(client: TestClient[object, object], **headers: str) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200
    assert response.headers["Content-Type"] == CONTENT_TYPE
    return samples(await response.text())


async def test_requests_tokens_and_first_tokens_are_counted(
    client: TestClient[object, object],
) -> None:
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert (await client.post("/v1/chat/completions", json=chat)).status == 200
    streamed = await client.post("/v1/chat/completions", json={**chat, "stream": True})
    assert b"[DONE]" in await streamed.read()
    assert (await client.post("/v1/completions", json={"model": "m", "prompt": "x"})).status == 200
    assert (await client.post("/v1/embeddings", json={"model": "m", "input": "x"})).status == 200
    assert (await client.post("/v1/chat/completions", json={**chat, "model": "nope"})).status == 404
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/no/such/path")).status == 404

    scraped = await scrape(client)
    route = "/v1/chat/completions"
    assert value(scraped, "fpai_http_requests_total", route=route, method="POST", status="200") == 2
    assert value(scraped, "fpai_http_requests_total", route=route, method="POST", status="404") == 1
    assert value(scraped, "fpai_http_request_duration_seconds_count", route=route) == 3
    assert (
        value(scraped, "fpai_http_requests_total", route="unmatched", method="GET", status="404")
        == 1
    )
    assert value(scraped, "fpai_prompt_tokens_total", model="m") == 3 * 11 + 3
    assert value(scraped, "fpai_completion_tokens_total", model="m") == 3 * 2
    assert value(scraped, "fpai_time_to_first_token_seconds_count", model="m") == 3
    assert value(scraped, "fpai_model_requests_running", model="m") == 0
    assert value(scraped, "fpai_model_slots", model="m") == 1

    again = await scrape(client)  # the first scrape was counted once it was answered
    assert (
        value(again, "fpai_http_requests_total", route="/metrics", method="GET", status="200") == 1
    )


async def test_metrics_need_a_key_when_the_node_has_keys() -> None:
    async with await app_client(["k1"]) as keyed:
        refused = await keyed.get("/metrics")
        assert refused.status == 401
        assert (await refused.json())["error"]["code"] == "invalid_api_key"
        assert (await keyed.get("/metrics", headers={"Authorization": "Bearer k2"})).status == 401
        await scrape(keyed, Authorization="Bearer k1")
        assert (await keyed.get("/healthz")).status == 200  # still open


async def test_metrics_are_open_without_keys(client: TestClient[object, object]) -> None:
    await scrape(client)


class StallingBackend(ScriptedBackend):
    """One token, then nothing until the generation is closed."""

    async def _play(self) -> AsyncGenerator[GenerationEvent, None]:
        yield TextChunk("Hel")
        await asyncio.Event().wait()
        yield Finish("stop", Usage(prompt_tokens=1, completion_tokens=1))


async def test_a_client_that_leaves_is_counted_as_499_without_tokens() -> None:
    service = InferenceService([StallingBackend()], max_waiting=1)
    await service.start()
    async with TestClient(TestServer(inference_api(NODE, service), handler_cancellation=True)) as c:
        body = {"model": "m", "prompt": "x", "stream": True}
        response = await c.post("/v1/completions", json=body)
        assert b"Hel" in await response.content.readuntil(b"\n\n")
        response.close()
        left = {"route": "/v1/completions", "method": "POST", "status": "499"}
        for _ in range(100):
            scraped = await scrape(c)
            if value(scraped, "fpai_http_requests_total", **left) == 1:
                break
            await asyncio.sleep(0.02)
        assert value(scraped, "fpai_http_requests_total", **left) == 1
        assert value(scraped, "fpai_completion_tokens_total", model="m") is None
        assert value(scraped, "fpai_time_to_first_token_seconds_count", model="m") == 1
        assert value(scraped, "fpai_model_requests_running", model="m") == 0
    await service.close()
