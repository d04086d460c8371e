"""The rewards routes (fpai_node/api/rewards.py) over a fake RewardsService: an epoch is a
whole number in range, bodies have exactly their fields, a refusal is a 409 naming why, a chain
failure a 502, and a claim with no epoch claims every final one."""

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from fpai_node.api.app import NodeInfo, build_app
from fpai_node.api.rewards import rewards_routes
from fpai_node.errors import FpaiError
from fpai_node.rewards.service import RewardsError

NODE = "fpn1" + "a" * 32
KEY = "k" * 32


class Rewards:
    def __init__(self) -> None:
        self.asked: list[tuple[str, Any]] = []

    async def status(self, epoch: int | None) -> dict[str, Any]:
        self.asked.append(("status", epoch))
        return {"epochs": []}

    async def propose(self, epoch: int) -> dict[str, Any]:
        if epoch == 7:
            raise RewardsError("epoch 7 is not final yet")
        if epoch == 8:
            raise FpaiError("the chain refused: Underfunded")
        self.asked.append(("propose", epoch))
        return {"proposal": "0x01"}

    def claimable_epochs(self) -> list[int]:
        return [5, 4]

    async def claim(self, epochs: list[int]) -> list[dict[str, Any]]:
        self.asked.append(("claim", epochs))
        return [{"epoch": e} for e in epochs]


@pytest.fixture
def rewards() -> Rewards:
    return Rewards()


@pytest.fixture
async def client(rewards: Rewards) -> AsyncIterator[TestClient[object, object]]:
    app = build_app(NodeInfo(NODE, "local", time.monotonic()), [], [rewards_routes(rewards)], [KEY])  # type: ignore[arg-type]
    async with TestClient(TestServer(app), headers={"Authorization": f"Bearer {KEY}"}) as c:
        yield c


async def test_epochs_are_whole_numbers_in_range(
    client: TestClient[object, object], rewards: Rewards
) -> None:
    assert (await client.get("/fpai/v1/rewards?epoch=12")).status == 200
    for bad in ("-1", "1.5", "x", str(2**64)):
        answer = await client.get(f"/fpai/v1/rewards?epoch={bad}")
        assert answer.status == 400
        assert "epoch: expected a whole number" in (await answer.json())["error"]["message"]
    assert rewards.asked == [("status", 12)]


async def test_proposals_answer_409_when_refused_and_502_when_the_chain_fails(
    client: TestClient[object, object], rewards: Rewards
) -> None:
    assert (await client.post("/fpai/v1/rewards/proposals", json={"epoch": 9})).status == 200
    refused = await client.post("/fpai/v1/rewards/proposals", json={"epoch": 7})
    assert refused.status == 409
    assert (await refused.json())["error"]["message"] == "epoch 7 is not final yet"
    assert (await client.post("/fpai/v1/rewards/proposals", json={"epoch": 8})).status == 502
    for body in ({}, {"epoch": 9, "root": "0x"}, [9]):
        assert (await client.post("/fpai/v1/rewards/proposals", json=body)).status == 400
    assert rewards.asked == [("propose", 9)]


async def test_a_claim_without_an_epoch_claims_every_final_one(
    client: TestClient[object, object], rewards: Rewards
) -> None:
    every = await client.post("/fpai/v1/rewards/claims", json={})
    assert (await every.json()) == {"claims": [{"epoch": 5}, {"epoch": 4}]}
    one = await client.post("/fpai/v1/rewards/claims", json={"epoch": "3"})
    assert (await one.json()) == {"claims": [{"epoch": 3}]}
    assert rewards.asked == [("claim", [5, 4]), ("claim", [3])]
