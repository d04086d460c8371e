"""Mem0's HTTP API, as the official `mem0ai` client (2.x) calls it, and session handoff.

    GET    /v1/ping/                      the client's key check at construction
    POST   /v3/memories/add/              add (messages, scope ids top level or in `filters`)
    POST   /v3/memories/                  get_all (`filters`; `page`, `page_size` in the query)
    POST   /v3/memories/search/           search (`query`, `filters`, `top_k`, `threshold`)
    GET    /v1/memories/{id}/             get
    PUT    /v1/memories/{id}/             update (`text`, `metadata`)
    DELETE /v1/memories/{id}/             delete
    GET    /v1/memories/{id}/history/     history
    DELETE /v1/memories/                  delete_all (scope ids or `filters` in the query)
    POST   /fpai/v1/handoff               save a session handoff
    GET    /fpai/v1/handoff?agent_id=A    the agent's latest handoffs

Errors answer `{"detail": message}` with a 4xx, which the client turns into its own exceptions
(ValidationError for 400, MemoryNotFoundError for 404); a shard without a majority is a 503
naming it. Adds are synchronous: a 200 means a majority of the shard's replicas hold the write.
"""

import ast
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web

from fpai_node.memory import filters
from fpai_node.memory.extraction import Message
from fpai_node.memory.filters import All, Condition, Field
from fpai_node.memory.memories import MAX_LISTED, Added, Memories, MemoryError_, Scope
from fpai_node.memory.merge import Change
from fpai_node.memory.messages import MAX_LIMIT
from fpai_node.memory.operations import Content, canonical_metadata
from fpai_node.memory.service import Found, ShardUnavailable

MEMORIES = web.AppKey("memories", Memories)
DEFAULT_TOP_K = 10  # Mem0's default
DEFAULT_PAGE_SIZE = 100  # Mem0's default page
MAX_PAGES = 100  # get_all pages reach 10,000 records; a larger export is a job for a scan API
MAX_QUERY_FILTER_BYTES = 4096  # delete_all's filters travel in the query string
HANDOFF_SECTIONS = ("done", "decided", "open", "next")
log = structlog.get_logger("fpai.api.memory")


def memory_routes(memories: Memories) -> Callable[[web.Application], None]:
    def add(app: web.Application) -> None:
        app[MEMORIES] = memories
        app.router.add_get("/v1/ping/", ping)
        app.router.add_post("/v3/memories/add/", _errors(add_memories))
        app.router.add_post("/v3/memories/", _errors(list_memories))
        app.router.add_post("/v3/memories/search/", _errors(search_memories))
        app.router.add_get("/v1/memories/{id}/", _errors(get_memory))
        app.router.add_put("/v1/memories/{id}/", _errors(update_memory))
        app.router.add_delete("/v1/memories/{id}/", _errors(delete_memory))
        app.router.add_get("/v1/memories/{id}/history/", _errors(memory_history))
        app.router.add_delete("/v1/memories/", _errors(delete_memories))
        app.router.add_post("/fpai/v1/handoff", _errors(save_handoff))
        app.router.add_get("/fpai/v1/handoff", _errors(load_handoff))

    return add


Handler = Callable[[web.Request], Any]


def _errors(handler: Handler) -> Handler:
    """Every refusal as Mem0's `{"detail": ...}` with its status, never a 500 for bad input."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except MemoryError_ as exc:
            return _refuse(exc.status, str(exc))
        except filters.BadFilter as exc:
            return _refuse(400, f"bad filters: {exc}")
        except ShardUnavailable as exc:
            log.warning("memory shard unavailable", shard=exc.shard, reason=str(exc))
            return _refuse(503, str(exc))

    return guarded


def _refuse(status: int, message: str) -> web.Response:
    return web.json_response({"detail": message, "error": message}, status=status)


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read() or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MemoryError_(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise MemoryError_(400, "the request body must be a JSON object")
    return body


async def ping(request: web.Request) -> web.Response:
    """What MemoryClient reads at construction (org and project name this node)."""
    node_id = request.app[MEMORIES].service.node_id
    return web.json_response(
        {"status": "ok", "org_id": "fpai", "project_id": node_id, "user_email": None}
    )


# --- add ----------------------------------------------------------------------------------


async def add_memories(request: web.Request) -> web.Response:
    body = await _json(request)
    scope = _scope({**_object(body.get("filters"), "filters"), **body})
    conversation = _messages(body.get("messages"))
    metadata = _metadata(body.get("metadata"))
    infer = body.get("infer", True)
    if not isinstance(infer, bool):
        raise MemoryError_(400, "infer must be true or false")
    outcome = await request.app[MEMORIES].add(conversation, scope, metadata, infer=infer)
    results = [_added(a) for a in outcome.added]
    answer: dict[str, Any] = {"results": results, "inferred": outcome.inferred}
    if outcome.note:
        answer["note"] = outcome.note
    return web.json_response(answer)


def _added(added: Added) -> dict[str, Any]:
    record = _record(added.found)
    return {**record, "event": added.event, "data": {"memory": record["memory"]}}


def _messages(value: object) -> list[Message]:
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise MemoryError_(400, "messages must be a non-empty list of {role, content}")
    conversation = []
    for item in value:
        if not isinstance(item, dict):
            raise MemoryError_(400, "each message is an object with role and content")
        role, content = item.get("role", "user"), item.get("content")
        if not isinstance(role, str) or not isinstance(content, str):
            raise MemoryError_(400, "a message's role and content are strings")
        conversation.append(Message(role, content))
    return conversation


def _scope(values: dict[str, Any]) -> Scope:
    ids = {}
    for name in ("user_id", "agent_id", "run_id"):
        value = values.get(name)
        if value is not None and not isinstance(value, str):
            raise MemoryError_(400, f"{name} must be a string")
        ids[name] = value or ""
    scope = Scope(**ids)
    scope.check()
    return scope


def _object(value: object, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MemoryError_(400, f"{name} must be an object")
    return value


def _metadata(value: object) -> str:
    try:
        return canonical_metadata(value if value is not None else {})
    except ValueError as exc:
        raise MemoryError_(400, str(exc)) from None


# --- reads --------------------------------------------------------------------------------


async def search_memories(request: web.Request) -> web.Response:
    body = await _json(request)
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise MemoryError_(400, "query must be a non-empty string")
    top_k = _bounded_int(body.get("top_k", DEFAULT_TOP_K), "top_k", 1, MAX_LIMIT)
    threshold = body.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float)
    ):
        raise MemoryError_(400, "threshold must be a number")
    where = _where(body.get("filters"))
    found = await request.app[MEMORIES].search(query, where, top_k, threshold)
    return web.json_response({"results": [_record(f, scored=True) for f in found]})


async def list_memories(request: web.Request) -> web.Response:
    body = await _json(request)
    where = _where(body.get("filters"))
    paged = "page" in request.query or "page_size" in request.query
    page = _bounded_int(request.query.get("page", "1"), "page", 1, MAX_PAGES)
    size = _bounded_int(
        request.query.get("page_size", str(DEFAULT_PAGE_SIZE)), "page_size", 1, MAX_LIMIT
    )
    found = await request.app[MEMORIES].listing(where, MAX_LISTED)  # newest first needs all
    results = [_record(f) for f in found[(page - 1) * size : page * size]]
    more = len(found) > page * size
    base = request.url.with_query({})
    return web.json_response(
        {
            "count": len(found),
            "next": str(base.with_query(page=page + 1, page_size=size)) if more else None,
            "previous": str(base.with_query(page=page - 1, page_size=size))
            if paged and page > 1
            else None,
            "results": results,
        }
    )


async def get_memory(request: web.Request) -> web.Response:
    found = await request.app[MEMORIES].get(request.match_info["id"])
    return web.json_response(_record(found))


async def memory_history(request: web.Request) -> web.Response:
    record_id = request.match_info["id"]
    changes = await request.app[MEMORIES].history(record_id)
    return web.json_response([_change(record_id, c) for c in changes])


# --- changes ------------------------------------------------------------------------------


async def update_memory(request: web.Request) -> web.Response:
    body = await _json(request)
    text, metadata = body.get("text"), body.get("metadata")
    if text is not None and not isinstance(text, str):
        raise MemoryError_(400, "text must be a string")
    if text is None and metadata is None:
        raise MemoryError_(400, "give text, metadata or both")
    found = await request.app[MEMORIES].update(
        request.match_info["id"], text, None if metadata is None else _metadata(metadata)
    )
    return web.json_response({**_record(found), "message": "Memory updated successfully!"})


async def delete_memory(request: web.Request) -> web.Response:
    await request.app[MEMORIES].delete(request.match_info["id"])
    return web.json_response({"message": "Memory deleted successfully!"})


async def delete_memories(request: web.Request) -> web.Response:
    """delete_all: scope ids, or `filters` (the client sends a dict as its Python text), in
    the query string. Deleting everything needs an explicit filter: a bare call is refused."""
    query = dict(request.query)
    raw = query.pop("filters", None)
    where_parts: list[Condition] = []
    if raw is not None:
        where_parts.append(filters.from_mem0(_literal(raw)))
    for name in ("user_id", "agent_id", "run_id"):
        if name in query:
            where_parts.append(Field(name, "eq", query[name]))
    if not where_parts:
        raise MemoryError_(400, "delete_all needs user_id, agent_id, run_id or filters")
    where = where_parts[0] if len(where_parts) == 1 else All(tuple(where_parts))
    deleted = await request.app[MEMORIES].delete_all(where)
    return web.json_response({"message": "Memories deleted successfully!", "deleted": deleted})


def _literal(text: str) -> object:
    """A filter object from a query string: JSON, or the Python literal the client's httpx
    writes for a dict (read with literal_eval, which evaluates no code, on bounded text)."""
    if len(text) > MAX_QUERY_FILTER_BYTES:
        raise MemoryError_(
            400, f"filters in the query string are at most {MAX_QUERY_FILTER_BYTES} bytes"
        )
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, RecursionError, MemoryError):
        raise MemoryError_(400, "filters must be a JSON object") from None


# --- handoff ------------------------------------------------------------------------------


async def save_handoff(request: web.Request) -> web.Response:
    """A session's handoff: what it did, decided, left open and should do next. Stored as a
    memory record of kind `handoff` for the agent (and run), its text the readable sections
    (so it is searchable) and its sections in metadata."""
    body = await _json(request)
    agent = body.get("agent_id")
    if not isinstance(agent, str) or not agent:
        raise MemoryError_(400, "agent_id is required")
    sections: dict[str, list[str]] = {}
    for name in HANDOFF_SECTIONS:
        value = body.get(name, [])
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise MemoryError_(400, f"{name} is a string or a list of strings")
        sections[name] = [i for i in items if i.strip()]
    if not any(sections.values()):
        raise MemoryError_(400, f"a handoff needs at least one of {', '.join(HANDOFF_SECTIONS)}")
    scope = _scope({"agent_id": agent, "run_id": body.get("run_id")})
    text = _handoff_text(agent, sections)
    metadata = _metadata({**_object(body.get("metadata"), "metadata"), "handoff": sections})
    memories = request.app[MEMORIES]
    outcome = await memories.add(
        [Message("user", text)], scope, metadata, infer=False, kind="handoff"
    )
    return web.json_response(_handoff(outcome.added[0].found))


async def load_handoff(request: web.Request) -> web.Response:
    agent = request.query.get("agent_id", "")
    if not agent:
        raise MemoryError_(400, "agent_id is required")
    limit = _bounded_int(request.query.get("limit", "1"), "limit", 1, MAX_LIMIT)
    where = All((Field("agent_id", "eq", agent), Field("kind", "eq", "handoff")))
    found = await request.app[MEMORIES].listing(where, MAX_LIMIT)
    if not found:
        raise MemoryError_(404, f"no handoff saved for agent {agent}")
    return web.json_response({"results": [_handoff(f) for f in found[:limit]]})


def _handoff_text(agent: str, sections: dict[str, list[str]]) -> str:
    lines = [f"Handoff for agent {agent}"]
    for name in HANDOFF_SECTIONS:
        if sections[name]:
            lines.append(f"{name.capitalize()}:")
            lines += [f"- {item}" for item in sections[name]]
    return "\n".join(lines)


def _handoff(found: Found) -> dict[str, Any]:
    record = _record(found)
    metadata = dict(record["metadata"] or {})
    sections = metadata.pop("handoff", {})
    return {
        "id": record["id"],
        "agent_id": record["agent_id"],
        "run_id": record["run_id"],
        **{name: sections.get(name, []) for name in HANDOFF_SECTIONS},
        "metadata": metadata,
        "text": record["memory"],
        "created_at": record["created_at"],
    }


# --- shapes -------------------------------------------------------------------------------


def _where(value: object) -> Condition | None:
    if value is None or value == {}:
        return None
    return filters.from_mem0(value)


def _bounded_int(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise MemoryError_(400, f"{name} must be an integer") from None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise MemoryError_(400, f"{name} must be an integer from {low} to {high}")
    return value


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds")


def _record(found: Found, scored: bool = False) -> dict[str, Any]:
    """Mem0's record shape; unset scope ids are null."""
    content = found.content
    record: dict[str, Any] = {
        "id": found.operation.id,
        "memory": content.memory,
        "hash": content.hash,
        "metadata": json.loads(content.metadata) or None,
        "categories": [],
        "created_at": _iso(content.created_at_ms),
        "updated_at": _iso(found.operation.version.at_ms),
        "user_id": content.user_id or None,
        "agent_id": content.agent_id or None,
        "run_id": content.run_id or None,
        "kind": content.kind,
    }
    if scored:
        record["score"] = round(found.score, 6)
    return record


def _change(record_id: str, change: Change) -> dict[str, Any]:
    """Mem0's history item."""
    now = change.new or change.old
    assert now is not None
    op = change.operation
    return {
        "id": f"{record_id}:{op.version.at_ms}:{op.version.n}:{op.version.node}",
        "memory_id": record_id,
        "event": change.event,
        "old_memory": change.old.memory if change.old else None,
        "new_memory": change.new.memory if change.new else None,
        "input": None,
        "metadata": json.loads((change.new or change.old or _EMPTY).metadata) or None,
        "user_id": now.user_id or None,
        "agent_id": now.agent_id or None,
        "run_id": now.run_id or None,
        "created_at": _iso(op.version.at_ms),
        "updated_at": _iso(op.version.at_ms),
        "is_deleted": change.event == "DELETE",
        "node_id": op.version.node,
    }


_EMPTY = Content("", "{}", "", "", "", "memory", 0, b"")
