"""The treasury over HTTP (docs/api.md, docs/treasury.md). Writes need the API key, as every
non-GET under /fpai/ does.

    GET  /fpai/v1/treasury                             balances, split, revenue, proposals
    POST /fpai/v1/treasury/proposals                   {"kind", "value", "text"?, "vault"?}
    POST /fpai/v1/treasury/proposals/{id}/votes        {"support", "reason"?}
    POST /fpai/v1/treasury/proposals/{id}/execute      {}
    POST /fpai/v1/treasury/payments                    {"amount", "token"?}

A node without a chain answers each with 503 and the one line saying how to configure one; a
request the treasury refuses is a 409 saying why, and a chain that refuses or fails a 502.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from fpai_node.api.json_body import json_object
from fpai_node.errors import FpaiError
from fpai_node.inference.openai_requests import ApiError
from fpai_node.treasury.errors import NO_CHAIN, BadArgument, TreasuryError
from fpai_node.treasury.service import TreasuryService

TREASURY = web.AppKey("treasury", TreasuryService)
MAX_TEXT_BYTES = 8192  # a proposal's description: a few paragraphs, not a document


def treasury_routes(treasury: TreasuryService) -> Callable[[web.Application], None]:
    def add(app: web.Application) -> None:
        app[TREASURY] = treasury
        app.router.add_get("/fpai/v1/treasury", status)
        app.router.add_post("/fpai/v1/treasury/proposals", propose)
        app.router.add_post("/fpai/v1/treasury/proposals/{id}/votes", vote)
        app.router.add_post("/fpai/v1/treasury/proposals/{id}/execute", execute)
        app.router.add_post("/fpai/v1/treasury/payments", pay)

    return add


async def status(request: web.Request) -> web.Response:
    return await _answer(request.app[TREASURY].status())


async def propose(request: web.Request) -> web.Response:
    body = await _body(request, required={"kind", "value"}, optional={"text", "vault"})
    text = body.get("text", "")
    if len(text.encode()) > MAX_TEXT_BYTES:
        raise ApiError(f"text: at most {MAX_TEXT_BYTES} bytes", param="text")
    kind, value = body["kind"], body["value"]
    treasury = request.app[TREASURY]
    return await _answer(
        treasury.propose(kind, value, text or f"{kind} {value}", body.get("vault"))
    )


async def vote(request: web.Request) -> web.Response:
    body = await _body(request, required={"support"}, optional={"reason"})
    reason = body.get("reason")
    return await _answer(request.app[TREASURY].vote(_proposal_id(request), body["support"], reason))


async def execute(request: web.Request) -> web.Response:
    await _body(request, required=set(), optional=set())
    return await _answer(request.app[TREASURY].execute(_proposal_id(request)))


async def pay(request: web.Request) -> web.Response:
    body = await _body(request, required={"amount"}, optional={"token"})
    return await _answer(request.app[TREASURY].pay(body["amount"], body.get("token", "stablecoin")))


async def _answer(work: Awaitable[dict[str, Any]]) -> web.Response:
    try:
        return web.json_response(await work)
    except TreasuryError as exc:
        status = 503 if str(exc) == NO_CHAIN else 409
        raise ApiError(str(exc), status=status, code="treasury_refused") from None
    except BadArgument as exc:
        raise ApiError(str(exc)) from None
    except FpaiError as exc:  # ChainError: a revert, an unreachable RPC
        raise ApiError(str(exc), status=502, error_type="api_error", code="chain_error") from None


def _proposal_id(request: web.Request) -> int:
    text = request.match_info["id"]
    try:
        value = int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        raise ApiError(f"a proposal id is a number (decimal or 0x hex), got {text!r}") from None
    if not 0 <= value < 2**256:
        raise ApiError("a proposal id is a uint256")
    return value


async def _body(request: web.Request, *, required: set[str], optional: set[str]) -> dict[str, Any]:
    """A JSON object with the required string fields and no others but the optional ones."""
    body = await json_object(request, required=required, optional=optional)
    for key, value in body.items():
        if not isinstance(value, str):
            raise ApiError(f"{key}: expected a string", param=key)
    return body
