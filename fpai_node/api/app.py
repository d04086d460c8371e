"""The client API application: health, node status, the OpenAI routes, and the middleware every
route shares (request ids, API keys, errors in OpenAI's shape)."""

import asyncio
import hmac
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from fpai_node import __version__
from fpai_node.api.admin import registry as registry_routes
from fpai_node.api.admin.registry import REGISTRY, registry_json
from fpai_node.api.openai.protocol import ApiError
from fpai_node.api.openai.routes import (
    INFERENCE,
    REQUEST_ID,
    ROUTER,
    STARTED_AT,
    add_routes,
    error_response,
)
from fpai_node.gossip.service import GossipService, peer_channel_json, peers_json
from fpai_node.inference.base import InferenceError
from fpai_node.inference.service import InferenceService
from fpai_node.metrics import METRICS, Metrics, metrics_view, observe_request
from fpai_node.registry.service import RegistryService
from fpai_node.router.service import Router
from fpai_node.wire import PROTOCOL_VERSION

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY_BYTES = 4 << 20  # 4 MiB: a long chat history fits; a runaway upload does not
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
log = structlog.get_logger("fpai.api")


@dataclass(frozen=True, slots=True)
class NodeInfo:
    node_id: str
    preset: str
    started_monotonic: float


NODE_INFO = web.AppKey("node_info", NodeInfo)
GOSSIP = web.AppKey("gossip", GossipService)


def error_body(message: str, err_type: str, code: str) -> dict[str, dict[str, str | None]]:
    """The OpenAI error shape, used by every route so clients parse one format."""
    return {"error": {"message": message, "type": err_type, "param": None, "code": code}}


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id (the caller's X-Request-Id if sane), bound into its logs, and
    turn every error into an OpenAI-shaped JSON answer; count and time it for /metrics."""
    incoming = request.headers.get("X-Request-Id", "")
    request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    with structlog.contextvars.bound_contextvars(request_id=request_id):
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
    """Require `Authorization: Bearer <key>` on /v1, on /metrics, and on every request that
    changes something under /fpai (registry writes), when keys are configured."""
    encoded = [k.encode() for k in keys]

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        guarded = (
            request.path.startswith("/v1/")
            or request.path == "/metrics"
            or (request.path.startswith("/fpai/") and request.method not in ("GET", "HEAD"))
        )
        if encoded and guarded:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            candidate = given.strip().encode()
            # compare_digest against every key: the time taken does not say which key matched
            matched = [hmac.compare_digest(candidate, k) for k in encoded]
            if scheme.lower() != "bearer" or not any(matched):
                return web.json_response(
                    error_body(
                        "missing or invalid API key: send Authorization: Bearer <key>",
                        "invalid_request_error",
                        "invalid_api_key",
                    ),
                    status=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await handler(request)

    return guard


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def status(request: web.Request) -> web.Response:
    info = request.app[NODE_INFO]
    models = [
        {
            "id": served.card.id,
            "backend": served.card.backend,
            "context_length": served.card.context_length,
            "running": served.admission.running,
            "waiting": served.admission.waiting,
        }
        for served in request.app[INFERENCE].models()
    ]
    return web.json_response(
        {
            "node_id": info.node_id,
            "version": __version__,
            "protocol_version": PROTOCOL_VERSION,
            "preset": info.preset,
            "uptime_s": round(time.monotonic() - info.started_monotonic, 3),
            "peers": peers_json(request.app.get(GOSSIP)),
            "peer_channel": peer_channel_json(request.app.get(GOSSIP)),
            "registry": registry_json(request.app.get(REGISTRY)),
            "router": request.app[ROUTER].status(),
            "models": models,
        }
    )


def build_app(
    info: NodeInfo,
    inference: InferenceService,
    api_keys: Sequence[str] = (),
    gossip: GossipService | None = None,
    registry: RegistryService | None = None,
    router: Router | None = None,
    metrics: Metrics | None = None,
) -> web.Application:
    app = web.Application(
        middlewares=[request_context, api_key_guard(api_keys)], client_max_size=MAX_BODY_BYTES
    )
    app[NODE_INFO] = info
    app[INFERENCE] = inference
    if gossip is not None:
        app[GOSSIP] = gossip
    if registry is not None:
        app[REGISTRY] = registry
        registry_routes.add_routes(app)
    app[ROUTER] = router or Router(info.node_id, inference)
    app[STARTED_AT] = int(time.time())
    app[METRICS] = metrics or Metrics(
        info.node_id, inference=inference, gossip=gossip, registry=registry
    )
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/fpai/v1/status", status)
    app.router.add_get("/metrics", metrics_view)
    add_routes(app)
    return app
