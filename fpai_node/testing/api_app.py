"""The client API of a node whose one service is an InferenceService, for tests of the API
layer (request ids, errors, streaming, metrics) without gossip, a registry or peers."""

import time
from collections.abc import Sequence

from aiohttp import web

from fpai_node.api.app import NodeInfo, build_app
from fpai_node.api.openai.routes import openai_routes
from fpai_node.inference.service import InferenceService
from fpai_node.router.router import Router


def inference_api(
    node_id: str,
    inference: InferenceService,
    api_keys: Sequence[str] = (),
    *,
    started_monotonic: float | None = None,
) -> web.Application:
    started = time.monotonic() if started_monotonic is None else started_monotonic
    return build_app(
        NodeInfo(node_id, "local", started),
        [inference],
        [openai_routes(Router(node_id, inference))],
        api_keys,
    )
