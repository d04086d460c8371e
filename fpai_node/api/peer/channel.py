"""Peer channel server and client (specs/0003-transport.md, PEER-1..PEER-6): one signed frame
per POST, over mutual TLS 1.3.

The server learns the caller's node id from the key its certificate proved (TLS-6) and hands
(node id, frame) to the gossip layer, which refuses a frame whose envelope names anyone else.
Every refusal the application can see is logged and counted by reason; a per-peer token
bucket stops a flooding peer before any signature is checked.
"""

import socket
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import structlog
from aiohttp import web

from fpai_node.config import HostPort
from fpai_node.identity.tls import (
    PeerIdentityError,
    TlsIdentity,
    client_context,
    peer_node_id,
    server_context,
)
from fpai_node.wire.envelope import MAX_FRAME_BYTES

FRAME_PATH = "/fpai/peer/v1/frame"
RATE_PER_S = 200.0  # frames a peer may send per second: gossip needs a handful
BURST = 400.0
FrameHandler = Callable[[str, bytes], Awaitable[None]]
log = structlog.get_logger("fpai.peer")


class FrameRefused(Exception):
    """Raised by a frame handler to refuse a frame with a reason code (answered 400)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Bucket:
    tokens: float
    updated: float


class PeerServer:
    def __init__(self, identity: TlsIdentity, on_frame: FrameHandler) -> None:
        self._identity = identity
        self._on_frame = on_frame
        self._buckets: dict[str, _Bucket] = {}
        self._runner: web.AppRunner | None = None
        self.refusals: Counter[str] = Counter()
        self.address = ""

    async def start(self, sock: socket.socket) -> None:
        app = web.Application(client_max_size=MAX_FRAME_BYTES)
        app.router.add_post(FRAME_PATH, self._frame)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, sock, ssl_context=server_context(self._identity)).start()
        host, port = sock.getsockname()[:2]
        self.address = str(HostPort(host, port))

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _refuse(self, reason: str, status: int, **context: object) -> web.Response:
        self.refusals[reason] += 1
        log.warning("peer frame refused", reason=reason, **context)
        return web.Response(status=status, text=reason)

    async def _frame(self, request: web.Request) -> web.Response:
        try:
            peer = peer_node_id(request.transport.get_extra_info("ssl_object"))  # type: ignore[union-attr]
        except PeerIdentityError as exc:
            return self._refuse(exc.reason, 403, remote=request.remote)
        if not self._take_token(peer):
            return self._refuse("rate_limited", 429, peer=peer)
        try:
            frame = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._refuse("oversized", 413, peer=peer)
        try:
            await self._on_frame(peer, frame)
        except FrameRefused as exc:
            return self._refuse(exc.reason, 400, peer=peer)
        return web.Response(status=204)

    def _take_token(self, peer: str) -> bool:
        now = time.monotonic()
        bucket = self._buckets.setdefault(peer, _Bucket(BURST, now))
        bucket.tokens = min(BURST, bucket.tokens + (now - bucket.updated) * RATE_PER_S)
        bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True


class PeerClient:
    """Sends frames to peers' channels, presenting this node's certificate."""

    def __init__(self, identity: TlsIdentity, timeout_s: float = 5.0) -> None:
        self._context: ssl.SSLContext = client_context(identity)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(ssl=self._context, limit_per_host=4)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, address: str, frame: bytes) -> int:
        """POST one frame; returns the HTTP status, or 0 when the peer could not be reached."""
        assert self._session is not None, "PeerClient.start() first"
        try:
            async with self._session.post(f"https://{address}{FRAME_PATH}", data=frame) as resp:
                await resp.read()
                return resp.status
        except (TimeoutError, aiohttp.ClientError, OSError):
            return 0
