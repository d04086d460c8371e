"""Rewards over HTTP (docs/rewards.md, specs/0010-rewards.md). Writes need the API key, as every
non-GET under /fpai/ does.

    GET  /fpai/v1/rewards[?epoch=N]      this node's epochs, earnings, claims and fraud reports
    POST /fpai/v1/rewards/proposals      {"epoch": N}: propose publishing a final epoch
    POST /fpai/v1/rewards/claims         {"epoch"?: N}: claim one epoch, or every final one

A request the rewards refuse (an epoch not final, nothing to publish, no chain) is a 409 saying
why; a chain that refuses or fails is a 502.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from fpai_node.api.json_body import json_object
from fpai_node.errors import FpaiError
from fpai_node.inference.openai_requests import ApiError
from fpai_node.rewards.service import RewardsError, RewardsService
from fpai_node.treasury.errors import TreasuryError

REWARDS = web.AppKey("rewards", RewardsService)
MAX_EPOCH = 2**64 - 1  # RewardsDistributor numbers epochs with a uint64


def rewards_routes(rewards: RewardsService) -> Callable[[web.Application], None]:
    def add(app: web.Application) -> None:
        app[REWARDS] = rewards
        app.router.add_get("/fpai/v1/rewards", status)
        app.router.add_post("/fpai/v1/rewards/proposals", propose)
        app.router.add_post("/fpai/v1/rewards/claims", claim)

    return add


async def status(request: web.Request) -> web.Response:
    text = request.query.get("epoch")
    epoch = None if text is None else _epoch(text)
    return await _answer(request.app[REWARDS].status(epoch))


async def propose(request: web.Request) -> web.Response:
    body = await json_object(request, required={"epoch"})
    return await _answer(request.app[REWARDS].propose(_epoch(body["epoch"])))


async def claim(request: web.Request) -> web.Response:
    body = await json_object(request, required=set(), optional={"epoch"})
    rewards = request.app[REWARDS]
    epochs = [_epoch(body["epoch"])] if "epoch" in body else rewards.claimable_epochs()

    async def claimed() -> dict[str, Any]:
        return {"claims": await rewards.claim(epochs)}

    return await _answer(claimed())


async def _answer(work: Awaitable[dict[str, Any]]) -> web.Response:
    try:
        return web.json_response(await work)
    except (RewardsError, TreasuryError) as exc:
        raise ApiError(str(exc), status=409, code="rewards_refused") from None
    except FpaiError as exc:  # ChainError: a revert, an unreachable RPC
        raise ApiError(str(exc), status=502, error_type="api_error", code="chain_error") from None


def _epoch(value: object) -> int:
    text = str(value)
    if not text.isdigit() or int(text) > MAX_EPOCH:
        raise ApiError(
            f"epoch: expected a whole number 0..{MAX_EPOCH}, got {text!r}", param="epoch"
        )
    return int(text)
