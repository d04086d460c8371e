"""The registry over HTTP: read it (linearizable by default, `?stale=1` for the local replica)
and set parameters (docs/api.md). Writes go through Raft from whichever node is asked."""

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from fpai_node.inference.openai_requests import ApiError
from fpai_node.registry.raft_wire import parse_raft_id
from fpai_node.registry.report import members_json
from fpai_node.registry.service import CommandTooLarge, RegistryService, RegistryUnavailable
from fpai_node.registry.state import MAX_TEXT, RegistryState, Result
from fpai_node.wire import codec

REGISTRY = web.AppKey("registry", RegistryService)
_MAX_JSON_DEPTH = 16


def registry_routes(registry: RegistryService) -> Callable[[web.Application], None]:
    """Read the registry and set its parameters through `registry`."""

    def add(app: web.Application) -> None:
        app[REGISTRY] = registry
        app.router.add_get("/fpai/v1/registry", registry_view)
        app.router.add_get("/fpai/v1/registry/parameters/{key}", get_parameter)
        app.router.add_put("/fpai/v1/registry/parameters/{key}", set_parameter)
        app.router.add_delete("/fpai/v1/registry/parameters/{key}", delete_parameter)

    return add


async def registry_view(request: web.Request) -> web.Response:
    service = request.app[REGISTRY]
    state = await _read(request)
    status = service.status
    return web.json_response(
        {
            "leader": parse_raft_id(status.leader)[0] if status.leader else None,
            "term": status.term,
            "index": state.index,
            "members": members_json(state),
            "services": {
                name: {"endpoints": list(s.endpoints), "health": s.health}
                for name, s in sorted(state.services.items())
            },
            "models": {m: sorted(nodes) for m, nodes in sorted(state.models.items())},
            "parameters": {k: to_json(v) for k, v in sorted(state.parameters.items())},
        }
    )


async def get_parameter(request: web.Request) -> web.Response:
    key = _key(request)
    state = await _read(request)
    if key not in state.parameters:
        raise ApiError(f"no registry parameter {key!r}", status=404, code="not_found")
    return web.json_response({"key": key, "value": to_json(state.parameters[key])})


async def set_parameter(request: web.Request) -> web.Response:
    key = _key(request)
    try:  # JSON is UTF-8 (RFC 8259); the charset parse of request.json() costs on every write
        body = json.loads(await request.read())
    except ValueError:
        raise ApiError('expected a JSON body {"value": ...}') from None
    if not isinstance(body, dict) or set(body) != {"value"}:
        raise ApiError('expected a JSON body {"value": ...}')
    value = from_json(body["value"])
    result = await _write(request, "param.set", {"key": key, "value": value})
    return web.json_response({"key": key, "value": body["value"], "status": result.status})


async def delete_parameter(request: web.Request) -> web.Response:
    key = _key(request)
    result = await _write(request, "param.delete", {"key": key})
    if result.reason == "no_such_parameter":
        raise ApiError(f"no registry parameter {key!r}", status=404, code="not_found")
    return web.json_response({"key": key, "status": result.status})


def _key(request: web.Request) -> str:
    key = request.match_info["key"]
    if not 0 < len(key.encode()) <= MAX_TEXT:
        raise ApiError(f"a parameter key has 1 to {MAX_TEXT} bytes", param="key")
    return key


async def _read(request: web.Request) -> RegistryState:
    service = request.app[REGISTRY]
    if request.query.get("stale") in ("1", "true"):
        return service.state
    try:
        return await service.read()
    except RegistryUnavailable as exc:
        raise _unavailable(exc) from None


async def _write(request: web.Request, op: str, args: dict[str, codec.Value]) -> Result:
    try:
        result = await request.app[REGISTRY].propose(op, args)
    except RegistryUnavailable as exc:
        raise _unavailable(exc) from None
    except CommandTooLarge as exc:
        raise ApiError(str(exc), status=413, code="command_too_large", param="value") from None
    if result.status == "rejected" and result.reason != "no_such_parameter":
        raise ApiError(f"the registry rejected {op}: {result.reason}", code=result.reason)
    return result


def _unavailable(exc: RegistryUnavailable) -> ApiError:
    return ApiError(str(exc), status=503, error_type="server_error", code="registry_unavailable")


def to_json(value: codec.Value) -> Any:
    """Registry values as JSON; byte strings (which JSON lacks) as {"$bin": hex}."""
    if isinstance(value, bytes):
        return {"$bin": value.hex()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def from_json(value: Any, depth: int = 0) -> codec.Value:
    """A JSON value as a registry value: no floats (the canonical encoding has none); byte
    strings as to_json shows them, {"$bin": hex}."""
    if depth > _MAX_JSON_DEPTH:
        raise ApiError(f"values nest at most {_MAX_JSON_DEPTH} deep", param="value")
    if isinstance(value, float):
        raise ApiError(
            "registry values cannot be floating-point numbers: use an integer or a string",
            param="value",
        )
    if isinstance(value, list):
        return [from_json(v, depth + 1) for v in value]
    if isinstance(value, dict) and value.keys() == {"$bin"}:  # as to_json writes byte strings
        try:
            return bytes.fromhex(value["$bin"])
        except (TypeError, ValueError):
            raise ApiError('{"$bin": ...} holds hex digits', param="value") from None
    if isinstance(value, dict):
        return {k: from_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, int) and not -(1 << 63) <= value < (1 << 64):
        raise ApiError("integers must fit in 64 bits", param="value")
    return value  # type: ignore[no-any-return]
