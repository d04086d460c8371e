"""The client API application: health, node status, and the middleware every route shares."""

import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from aiohttp import web

from fpai_node import __version__
from fpai_node.wire import PROTOCOL_VERSION

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
log = structlog.get_logger("fpai.api")


@dataclass(frozen=True, slots=True)
class NodeInfo:
    node_id: str
    preset: str
    started_monotonic: float


NODE_INFO = web.AppKey("node_info", NodeInfo)


def error_body(message: str, err_type: str, code: str) -> dict[str, dict[str, str]]:
    """The OpenAI error shape, used by every route so clients parse one format."""
    return {"error": {"message": message, "type": err_type, "code": code}}


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id (the caller's X-Request-Id if sane), bound into its logs."""
    incoming = request.headers.get("X-Request-Id", "")
    request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    started = time.perf_counter()
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            code = exc.reason.lower().replace(" ", "_")
            response = web.json_response(
                error_body(exc.reason, "invalid_request_error", code), status=exc.status
            )
        response.headers["X-Request-Id"] = request_id
        log.debug(
            "request",
            method=request.method,
            path=request.path,
            status=response.status,
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return response


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def status(request: web.Request) -> web.Response:
    info = request.app[NODE_INFO]
    return web.json_response(
        {
            "node_id": info.node_id,
            "version": __version__,
            "protocol_version": PROTOCOL_VERSION,
            "preset": info.preset,
            "uptime_s": round(time.monotonic() - info.started_monotonic, 3),
            "peers": [],
            "registry": {"leader": None, "term": 0, "members": []},
            "models": [],
        }
    )


def build_app(info: NodeInfo) -> web.Application:
    app = web.Application(middlewares=[request_context])
    app[NODE_INFO] = info
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/fpai/v1/status", status)
    return app
