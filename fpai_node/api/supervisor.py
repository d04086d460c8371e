"""The supervisor over HTTP (docs/api.md, docs/operator-guide.md "Autonomy"). Decisions need the
API key, as every non-GET under /fpai/ does.

    GET  /fpai/v1/actions                 the autonomy mode and every recorded repair, newest first
    POST /fpai/v1/actions/{id}/approve    a pending repair goes ahead (a failed one is retried)
    POST /fpai/v1/actions/{id}/reject     a pending repair never goes ahead
    GET  /fpai/v1/sovereignty             the score, its evidence and the single points of failure

An unknown action is a 404; one that is not pending a 409.
"""

from collections.abc import Callable

from aiohttp import web

from fpai_node.inference.openai_requests import ApiError
from fpai_node.supervisor.actions import ActionError
from fpai_node.supervisor.observe import Observer
from fpai_node.supervisor.service import Supervisor

SUPERVISOR = web.AppKey("supervisor", Supervisor)
OBSERVER = web.AppKey("observer", Observer)


def supervisor_routes(
    supervisor: Supervisor, observer: Observer
) -> Callable[[web.Application], None]:
    def add(app: web.Application) -> None:
        app[SUPERVISOR] = supervisor
        app[OBSERVER] = observer
        app.router.add_get("/fpai/v1/actions", actions)
        app.router.add_post("/fpai/v1/actions/{id}/approve", approve)
        app.router.add_post("/fpai/v1/actions/{id}/reject", reject)
        app.router.add_get("/fpai/v1/sovereignty", sovereignty)

    return add


async def actions(request: web.Request) -> web.Response:
    supervisor = request.app[SUPERVISOR]
    return web.json_response(
        {"autonomy": supervisor.mode, "actions": [a.public() for a in supervisor.actions()]}
    )


async def approve(request: web.Request) -> web.Response:
    return _decide(request, approve=True)


async def reject(request: web.Request) -> web.Response:
    return _decide(request, approve=False)


def _decide(request: web.Request, approve: bool) -> web.Response:
    try:
        action = request.app[SUPERVISOR].decide(request.match_info["id"], approve)
    except ActionError as exc:
        status = 404 if exc.code == "unknown_action" else 409
        raise ApiError(str(exc), status=status, code=exc.code) from None
    return web.json_response(action.public())


async def sovereignty(request: web.Request) -> web.Response:
    observation = request.app[OBSERVER].observe()
    return web.json_response(
        {
            **observation.report.public(),
            "autonomy": observation.facts.autonomy,
            "checks": [c.public() for c in observation.checks],
        }
    )
