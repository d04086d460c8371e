"""A request body that is a JSON object with named fields: the admin routes' one shape."""

from collections.abc import Set
from typing import Any

from aiohttp import web

from fpai_node.inference.openai_requests import ApiError


async def json_object(
    request: web.Request, *, required: Set[str], optional: Set[str] = frozenset()
) -> dict[str, Any]:
    """The body as a JSON object with every `required` field and no others but `optional`
    ones (no body reads as {}); ApiError (a 400) saying which fields it expects otherwise."""
    if not request.can_read_body:
        body: Any = {}
    else:
        try:
            body = await request.json()
        except ValueError:
            raise ApiError("expected a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError("expected a JSON object")
    missing, unknown = required - body.keys(), body.keys() - required - optional
    if missing or unknown:
        wanted = ", ".join(sorted(required) + [f"{k}?" for k in sorted(optional)])
        raise ApiError(f"expected the fields {wanted or 'none'}")
    return body
