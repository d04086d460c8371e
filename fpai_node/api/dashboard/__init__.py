"""The dashboard at `GET /` (docs/operator-guide.md, "Dashboard"): three static files from the
package, no build step, nothing fetched from elsewhere. The page reads the node's own JSON
endpoints every two seconds; approving an action sends the API key the operator typed, kept in
the browser's session storage only."""

import importlib.resources

from aiohttp import web

from fpai_node.api.app import ApiRoutes

FILES = {  # name -> content type; nothing else under /dashboard/ is served
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
HEADERS = {
    # Only this origin: the page runs no inline script and loads nothing from elsewhere, so a
    # node id or model name a peer chose cannot turn into script even if shown carelessly.
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # an upgraded node serves its new page at once
}


def _read() -> dict[str, bytes]:
    package = importlib.resources.files(__name__)
    return {name: (package / name).read_bytes() for name in FILES}


def dashboard_routes() -> ApiRoutes:
    files = _read()  # once, at start: a few kilobytes

    async def page(request: web.Request) -> web.Response:
        return _file(files, "index.html")

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in FILES:
            raise web.HTTPNotFound()
        return _file(files, name)

    def add(app: web.Application) -> None:
        app.router.add_get("/", page)
        app.router.add_get("/dashboard/{name}", asset)

    return add


def _file(files: dict[str, bytes], name: str) -> web.Response:
    return web.Response(body=files[name], headers={"Content-Type": FILES[name], **HEADERS})
