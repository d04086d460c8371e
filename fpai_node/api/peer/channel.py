"""Peer channel server and client (specs/0003-transport.md, PEER-1..PEER-6): one signed frame
per POST, over mutual TLS 1.3.

The server learns the caller's node id from the key its certificate proved (TLS-6) and hands
(node id, frame) to the gossip layer, which refuses a frame whose envelope names anyone else.
Every refusal the application can see is logged and counted by reason; a per-peer token
bucket stops a flooding peer before any signature is checked.
"""

import asyncio
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
HANDSHAKE_TIMEOUT_S = 10.0  # a peer that cannot finish a handshake in 10 s is not a peer
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
        self._tcp: asyncio.Server | None = None
        self.refusals: Counter[str] = Counter()
        self.address = ""

    async def start(self, sock: socket.socket) -> None:
        app = web.Application(client_max_size=MAX_FRAME_BYTES)
        app.router.add_post(FRAME_PATH, self._frame)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        web_server = self._runner.server
        assert web_server is not None
        context = server_context(self._identity)
        self._tcp = await asyncio.get_running_loop().create_server(
            lambda: _TlsAccept(self, context, web_server), sock=sock
        )
        host, port = sock.getsockname()[:2]
        self.address = str(HostPort(host, port))

    async def stop(self) -> None:
        if self._tcp is not None:
            self._tcp.close()
            self._tcp = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def refuse_handshake(self, exc: BaseException, remote: object) -> None:
        """PEER-5: a handshake the TLS layer refused, counted and logged like any refusal."""
        reason = _handshake_reason(exc)
        self.refusals[reason] += 1
        log.warning("peer connection refused", reason=reason, remote=remote, detail=str(exc))

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


class _TlsAccept(asyncio.Protocol):
    """Accepts a TCP connection and runs the TLS handshake itself, then hands the TLS transport
    to aiohttp. With `create_server(ssl=...)` a refused handshake vanishes inside asyncio
    (it reaches no callback), and refusals must be counted (issue 4, PEER-5)."""

    def __init__(self, server: PeerServer, context: ssl.SSLContext, web_server: web.Server) -> None:
        self._server = server
        self._context = context
        self._web_server = web_server
        self._task: asyncio.Task[None] | None = None
        # Bytes that follow the handshake in the same read (TLS 1.3 clients send their request
        # right behind Finished) reach this protocol before the hand-over: kept, then replayed.
        self._early = bytearray()
        self._early_eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # the ClientHello must reach the TLS layer, not us
        self._task = asyncio.create_task(self._handshake(transport))

    async def _handshake(self, transport: asyncio.Transport) -> None:
        remote = transport.get_extra_info("peername")
        loop = asyncio.get_running_loop()
        try:
            tls = await asyncio.wait_for(
                loop.start_tls(transport, self, self._context, server_side=True),
                HANDSHAKE_TIMEOUT_S,
            )
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            self._server.refuse_handshake(exc, remote)
            transport.close()
            return
        if tls is None:  # the peer left during the handshake
            transport.close()
            return
        handler = self._web_server()
        tls.set_protocol(handler)
        handler.connection_made(tls)
        if self._early:
            handler.data_received(bytes(self._early))
        if self._early_eof:
            handler.eof_received()

    def data_received(self, data: bytes) -> None:
        self._early += data

    def eof_received(self) -> bool:
        self._early_eof = True
        return True


def _handshake_reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "handshake_timeout"
    if not isinstance(exc, ssl.SSLError):
        return "handshake_aborted"
    detail = f"{exc.reason} {getattr(exc, 'verify_message', '')}".lower()
    if "did_not_return_a_certificate" in detail or "certificate required" in detail:
        return "no_certificate"
    if "expired" in detail:
        return "expired"
    if "verify_failed" in detail or "unknown_ca" in detail or "certificate" in detail:
        return "untrusted_certificate"
    if "version" in detail or "protocol" in detail:
        return "tls_version"
    return "handshake_failed"


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
