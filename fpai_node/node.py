"""Composition root: builds the node's parts from Settings, runs them, stops them in order."""

import asyncio
import errno
import signal
import time

import structlog
from aiohttp import web

from fpai_node import __version__
from fpai_node.api.app import NodeInfo, build_app
from fpai_node.config import HostPort, Settings, check_safe_binds
from fpai_node.errors import FpaiError
from fpai_node.home import Home
from fpai_node.identity import NodeKey

SHUTDOWN_TIMEOUT_S = 3.0  # in-flight requests get this long; the whole stop stays under 5 s
log = structlog.get_logger("fpai.node")


class Node:
    def __init__(self, settings: Settings, key: NodeKey) -> None:
        check_safe_binds(settings)
        self.settings = settings
        self.key = key
        self.home = Home(settings.home)
        self._runner: web.AppRunner | None = None
        self.api_url = ""

    async def start(self) -> None:
        app = build_app(NodeInfo(self.key.node_id, self.settings.preset, time.monotonic()))
        runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT_S, access_log=None)
        await runner.setup()
        api = self.settings.api
        try:
            await web.TCPSite(runner, api.host, api.port).start()
        except OSError as exc:
            await runner.cleanup()
            raise FpaiError(f"cannot listen on {api} for the API: {_describe(exc)}") from None
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.api_url = f"http://{HostPort(host, port)}"
        self.home.write_api_address(self.api_url, self.key.node_id)
        log.info("node started", api=self.api_url, version=__version__, preset=self.settings.preset)

    async def stop(self) -> None:
        if self._runner is None:
            return
        self.home.clear_api_address()
        await self._runner.cleanup()
        self._runner = None
        log.info("node stopped")


def _describe(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "address already in use (is another node running? see `fpai-node status`)"
    return exc.strerror or str(exc)


async def serve(settings: Settings, key: NodeKey) -> None:
    """Run the node until SIGINT or SIGTERM, then stop it."""
    structlog.contextvars.bind_contextvars(node_id=key.node_id)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    node = Node(settings, key)
    lock = node.home.lock()
    try:
        await node.start()
        try:
            await stop.wait()
            log.info("stopping")
        finally:
            await node.stop()
    finally:
        lock.release()
