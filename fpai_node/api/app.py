"""The client API: health, node status and metrics built from the node's services, the route
groups the node composes (OpenAI, registry), and the middleware every route shares (request
ids, API keys, errors in OpenAI's shape)."""

import asyncio
import hmac
import re
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from fpai_node import __version__
from fpai_node.api.metrics import METRICS, Metrics, metrics_view, observe_request
from fpai_node.api.openai.routes import REQUEST_ID, error_response
from fpai_node.entropy import random_hex
from fpai_node.inference.base import InferenceError
from fpai_node.inference.openai_requests import ApiError
from fpai_node.service import Service
from fpai_node.wire import PROTOCOL_VERSION

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ApiRoutes = Callable[[web.Application], None]
"""Adds one group of client routes, and what its handlers read, to the app
(`openai_routes(router)`, `registry_routes(registry)`)."""
MAX_BODY_BYTES = 4 << 20  # 4 MiB: a long chat history fits; a runaway upload does not
SHUTDOWN_TIMEOUT_S = 3.0  # in-flight requests get this long; the whole stop stays under 5 s
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
log = structlog.get_logger("fpai.api")


@dataclass(frozen=True, slots=True)
class NodeInfo:
    node_id: str
    preset: str
    started_monotonic: float


NODE_INFO = web.AppKey("node_info", NodeInfo)
SERVICES = web.AppKey("services", tuple[Service, ...])


def error_body(message: str, err_type: str, code: str) -> dict[str, dict[str, str | None]]:
    """The OpenAI error shape, used by every route so clients parse one format."""
    return {"error": {"message": message, "type": err_type, "param": None, "code": code}}


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id (the caller's X-Request-Id if sane), bound into its logs, and
    turn every error into an OpenAI-shaped JSON answer; count and time it for /metrics."""
    incoming = request.headers.get("X-Request-Id", "")
    request_id = incoming if _REQUEST_ID.fullmatch(incoming) else random_hex()
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    # bind and reset: structlog's bound_contextvars copies the whole context on every request
    tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
    try:
        return await _answer(request, handler, request_id, started)
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


async def _answer(
    request: web.Request, handler: Handler, request_id: str, started: float
) -> web.StreamResponse:
    """The handler's response, or its error as an OpenAI-shaped JSON answer; counted and timed."""
    try:
        response = await handler(request)
    except asyncio.CancelledError:  # the client left (handler cancellation)
        observe_request(request, 499, started)
        raise
    except web.HTTPException as exc:
        code = exc.reason.lower().replace(" ", "_")
        response = web.json_response(
            error_body(exc.reason, "invalid_request_error", code), status=exc.status
        )
    except (ApiError, InferenceError) as exc:
        response = error_response(exc)
        log.info("request refused", status=response.status, reason=str(exc))
    except Exception:
        log.exception("request failed", path=request.path)
        response = web.json_response(
            error_body(f"internal error (request {request_id})", "server_error", "internal"),
            status=500,
        )
    if not response.prepared:
        response.headers["X-Request-Id"] = request_id
    observe_request(request, response.status, started)
    log.debug(
        "request",
        method=request.method,
        path=request.path,
        status=response.status,
        ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return response


def api_key_guard(keys: Sequence[str]) -> Middleware:
    """Require `Authorization: Bearer <key>` (or `Token <key>`, as Mem0's client sends it) on
    /v1 and /v3, on /metrics, on every request that changes something under /fpai (registry
    writes), on handoffs (memory), and on registry reads through the leader (each commits a
    `sync`: REG-14), when keys are configured. `?stale=1` reads stay open."""
    encoded = [k.encode() for k in keys]

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        guarded = (
            request.path.startswith(("/v1/", "/v3/", "/fpai/v1/handoff"))
            or request.path == "/metrics"
            or (request.path.startswith("/fpai/") and request.method not in ("GET", "HEAD"))
            or (
                request.path.startswith("/fpai/v1/registry")
                and request.query.get("stale") not in ("1", "true")
            )
        )
        if encoded and guarded:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            candidate = given.strip().encode()
            # compare_digest against every key: the time taken does not say which key matched
            matched = [hmac.compare_digest(candidate, k) for k in encoded]
            if scheme.lower() not in ("bearer", "token") or not any(matched):
                message = "missing or invalid API key: send Authorization: Bearer <key>"
                return web.json_response(
                    # OpenAI clients read `error`, Mem0's client `detail`
                    {
                        **error_body(message, "invalid_request_error", "invalid_api_key"),
                        "detail": message,
                    },
                    status=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await handler(request)

    return guard


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def status(request: web.Request) -> web.Response:
    """The node, then each service's sections (peers, peer_channel, registry, router, models)."""
    info = request.app[NODE_INFO]
    document: dict[str, object] = {
        "node_id": info.node_id,
        "version": __version__,
        "protocol_version": PROTOCOL_VERSION,
        "preset": info.preset,
        "uptime_s": round(time.monotonic() - info.started_monotonic, 3),
    }
    for service in request.app[SERVICES]:
        document.update(service.status_sections())
    return web.json_response(document)


def build_app(
    info: NodeInfo,
    services: Sequence[Service],
    routes: Sequence[ApiRoutes],
    api_keys: Sequence[str] = (),
) -> web.Application:
    """The client API over `services` (status sections, metrics) with `routes` added."""
    app = web.Application(
        middlewares=[request_context, api_key_guard(api_keys)], client_max_size=MAX_BODY_BYTES
    )
    app[NODE_INFO] = info
    app[SERVICES] = tuple(services)
    app[METRICS] = Metrics(info.node_id, services)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/fpai/v1/status", status)
    app.router.add_get("/metrics", metrics_view)
    for add in routes:
        add(app)
    return app


class ClientApi(Service):
    """The client API as the node's last service: it answers once everything else runs, and
    stops first, giving requests in flight a few seconds."""

    name = "API"

    def __init__(self, listener: socket.socket, app: web.Application) -> None:
        self._listener = listener
        self._app = app
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self._app,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            access_log=None,
            handler_cancellation=True,  # a client that leaves cancels its generation
        )
        await self._runner.setup()
        await web.SockSite(self._runner, self._listener).start()

    async def stop(self, leave: bool) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
