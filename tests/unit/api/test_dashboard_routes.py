"""The dashboard's files (fpai_node/api/dashboard): served from the package with a policy that
allows nothing from elsewhere; any other name is a 404."""

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from fpai_node.api.dashboard import FILES, dashboard_routes


@pytest.fixture
async def c() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application()
    dashboard_routes()(app)
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_the_page_and_its_files_come_with_their_types_and_a_strict_policy(
    c: TestClient[web.Request, web.Application],
) -> None:
    page = await c.get("/")
    assert page.status == 200 and page.headers["Content-Type"] == FILES["index.html"]
    html = await page.text()
    assert '<script src="/dashboard/dashboard.js" defer></script>' in html
    assert "<script>" not in html and "style=" not in html  # nothing inline: the CSP forbids it
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "unsafe" not in policy and "http" not in policy  # no other origin, no eval
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    for name in ("dashboard.js", "dashboard.css"):
        answer = await c.get(f"/dashboard/{name}")
        assert answer.status == 200 and answer.headers["Content-Type"] == FILES[name]
    script = await (await c.get("/dashboard/dashboard.js")).text()
    assert "innerHTML" not in script and "localStorage" not in script
    assert "sessionStorage.setItem" in script


async def test_anything_else_is_not_found(c: TestClient[web.Request, web.Application]) -> None:
    for path in (
        "/dashboard/__init__.py",
        "/dashboard/..%2f__init__.py",
        "/dashboard/%2e%2e/app.py",
        "/dashboard/",
        "/dashboard/index.htm",
    ):
        assert (await c.get(path)).status == 404, path
