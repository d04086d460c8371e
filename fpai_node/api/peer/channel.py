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
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import structlog
from aiohttp import web

from fpai_node.config import HostPort
from fpai_node.identity.tls import (
    PeerIdentityError,
    TlsIdentity,
    client_context,
    handshake_refusal_reason,
    peer_node_id,
    server_context,
)
from fpai_node.wire.envelope import MAX_FRAME_BYTES

FRAME_PATH = "/fpai/peer/v1/frame"
RATE_PER_S = 200.0  # frames a peer may send per second: gossip needs a handful
BURST = 400.0
HANDSHAKE_TIMEOUT_S = 10.0  # a peer that cannot finish a handshake in 10 s is not a peer
KEEPALIVE_S = 15.0  # an idle peer connection is closed after this; gossip reconnects cheaply
MAX_CONNECTIONS = 256  # established peer connections; far above a federation's fan-out
MAX_HANDSHAKES = 64  # connections still in their handshake (anyone can open those)
SHUTDOWN_S = 3.0  # requests in flight (forwarded generations) get this long when the node stops
MAX_BUCKETS = 4096  # per-peer rate state kept; full buckets are the first forgotten
FrameHandler = Callable[[str, bytes], Awaitable[None]]
RpcHandler = Callable[[str, bytes], Awaitable[bytes]]
"""A request/response route: (caller's node id as its certificate proved it, body) -> answer."""
StreamHandler = Callable[[str, bytes, web.Request], Awaitable[web.StreamResponse]]
"""A streaming route (PEER-8): the handler writes its own response."""
Gate = Callable[[str], web.Response | None]
"""Checked before a streaming route reads the body: a refusal for this caller, or None."""
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


class RateLimiter:
    """A token bucket per peer, with bounded memory."""

    def __init__(self, rate_per_s: float, burst: float) -> None:
        self._rate = rate_per_s
        self._burst = burst
        self._buckets: dict[str, _Bucket] = {}

    def take(self, peer: str) -> bool:
        now = time.monotonic()
        if peer not in self._buckets and len(self._buckets) >= MAX_BUCKETS:
            self._forget_full_buckets(now)
        bucket = self._buckets.setdefault(peer, _Bucket(self._burst, now))
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def _forget_full_buckets(self, now: float) -> None:
        """A bucket that has refilled is the same as no bucket: drop those, then the oldest."""
        for peer, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.updated) * self._rate >= self._burst:
                del self._buckets[peer]
        while len(self._buckets) >= MAX_BUCKETS:
            del self._buckets[min(self._buckets, key=lambda p: self._buckets[p].updated)]


@dataclass(frozen=True)
class _Stream:
    handler: StreamHandler
    max_body_bytes: int
    limiter: RateLimiter
    gate: Gate


class PeerServer:
    def __init__(self, identity: TlsIdentity, on_frame: FrameHandler) -> None:
        self._identity = identity
        self._on_frame = on_frame
        self._rpcs: dict[str, RpcHandler] = {}
        self._streams: dict[str, _Stream] = {}
        self._limiter = RateLimiter(RATE_PER_S, BURST)
        self._runner: web.AppRunner | None = None
        self._tcp: asyncio.Server | None = None
        self.handshakes = 0
        self.refusals: Counter[str] = Counter()
        self.address = ""

    def add_rpc(self, path: str, handler: RpcHandler) -> None:
        """Serve `handler` at `path` (call before start), behind the same identity check, rate
        limit and size limit as frames (PEER-7)."""
        self._rpcs[path] = handler

    def add_stream(
        self,
        path: str,
        handler: StreamHandler,
        *,
        max_body_bytes: int,
        rate_per_s: float,
        gate: Gate = lambda peer: None,
    ) -> None:
        """Serve a streaming route at `path` (PEER-8), behind the identity check, with its own
        body limit, per-peer rate, and `gate` deciding before the body is read (call before
        start)."""
        limiter = RateLimiter(rate_per_s, rate_per_s)
        self._streams[path] = _Stream(handler, max_body_bytes, limiter, gate)

    async def start(self, sock: socket.socket) -> None:
        app = web.Application()
        app.router.add_post(FRAME_PATH, self._serve(self._frame))
        for path, handler in self._rpcs.items():
            app.router.add_post(path, self._serve(handler))
        for path, stream in self._streams.items():
            app.router.add_post(path, self._serve_stream(stream))
        self._runner = web.AppRunner(
            app,
            access_log=None,
            keepalive_timeout=KEEPALIVE_S,
            shutdown_timeout=SHUTDOWN_S,
            handler_cancellation=True,  # a caller that leaves stops the generation it asked for
        )
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
        reason = handshake_refusal_reason(exc)
        self.refusals[reason] += 1
        log.warning("peer connection refused", reason=reason, remote=remote, detail=str(exc))

    def _refuse(self, reason: str, status: int, **context: object) -> web.Response:
        self.refusals[reason] += 1
        log.warning("peer frame refused", reason=reason, **context)
        return web.Response(status=status, text=reason)

    async def _frame(self, peer: str, frame: bytes) -> None:
        await self._on_frame(peer, frame)

    async def _admit(
        self,
        request: web.Request,
        limiter: RateLimiter,
        max_body_bytes: int,
        gate: Gate = lambda peer: None,
    ) -> tuple[str, bytes] | web.Response:
        """The caller's node id and the request body, or the refusal to answer (PEER-3). The
        body is read only up to the route's limit, and only once the caller passed the gate."""
        transport = request.transport
        if transport is None:  # the peer already left; nobody to answer
            return web.Response(status=400, text="gone")
        try:
            peer = peer_node_id(transport.get_extra_info("ssl_object"))
        except PeerIdentityError as exc:
            return self._refuse(exc.reason, 403, remote=request.remote)
        if not limiter.take(peer):
            return self._refuse("rate_limited", 429, peer=peer)
        refusal = gate(peer)
        if refusal is not None:
            return refusal
        if (request.content_length or 0) > max_body_bytes:
            return self._refuse("oversized", 413, peer=peer)
        body = bytearray()
        async for chunk in request.content.iter_chunked(1 << 16):
            body += chunk
            if len(body) > max_body_bytes:
                return self._refuse("oversized", 413, peer=peer)
        return peer, bytes(body)

    def _serve_stream(
        self, stream: _Stream
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def serve(request: web.Request) -> web.StreamResponse:
            admitted = await self._admit(
                request, stream.limiter, stream.max_body_bytes, stream.gate
            )
            if isinstance(admitted, web.Response):
                return admitted
            return await stream.handler(*admitted, request)

        return serve

    def _serve(
        self, handler: Callable[[str, bytes], Awaitable[bytes | None]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def serve(request: web.Request) -> web.Response:
            admitted = await self._admit(request, self._limiter, MAX_FRAME_BYTES)
            if isinstance(admitted, web.Response):
                return admitted
            peer, body = admitted
            try:
                answer = await handler(peer, body)
            except FrameRefused as exc:
                return self._refuse(exc.reason, 400, peer=peer, path=request.path)
            if answer is None:
                return web.Response(status=204)
            return web.Response(body=answer, content_type="application/msgpack")

        return serve

    def admits_connection(self, web_server: web.Server) -> str | None:
        """Why a new connection must be refused now, or None to accept it."""
        if self.handshakes >= MAX_HANDSHAKES:
            return "too_many_handshakes"
        if len(web_server.connections) >= MAX_CONNECTIONS:
            return "too_many_connections"
        return None

    def refuse_connection(self, reason: str, remote: object) -> None:
        self.refusals[reason] += 1
        log.warning("peer connection refused", reason=reason, remote=remote)


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
        self._lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        refusal = self._server.admits_connection(self._web_server)
        if refusal is not None:
            self._server.refuse_connection(refusal, transport.get_extra_info("peername"))
            transport.abort()
            return
        transport.pause_reading()  # the ClientHello must reach the TLS layer, not us
        self._server.handshakes += 1
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
        finally:
            self._server.handshakes -= 1
        if tls is None or self._lost:  # the peer left during or just after the handshake
            (tls or transport).close()
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

    def eof_received(self) -> None:
        self._early_eof = True

    def connection_lost(self, exc: Exception | None) -> None:
        """Before the hand-over only: the handler never learns of a transport that is gone."""
        self._lost = True


class PeerClient:
    """Sends frames to peers' channels, presenting this node's certificate."""

    def __init__(
        self, identity: TlsIdentity, timeout_s: float = 5.0, connections_per_peer: int = 4
    ) -> None:
        self._context: ssl.SSLContext = client_context(identity)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._per_peer = connections_per_peer
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(ssl=self._context, limit_per_host=self._per_peer, limit=0)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, address: str, frame: bytes) -> int:
        """POST one frame; returns the HTTP status, or 0 when the peer could not be reached."""
        return (await self.call(address, FRAME_PATH, frame))[0]

    async def call(
        self, address: str, path: str, body: bytes, timeout_s: float | None = None
    ) -> tuple[int, bytes]:
        """POST `body` to a peer's route: (HTTP status, answer); status 0 when the peer could
        not be reached."""
        assert self._session is not None, "PeerClient.start() first"
        timeout = self._timeout if timeout_s is None else aiohttp.ClientTimeout(total=timeout_s)
        try:
            async with self._session.post(
                f"https://{address}{path}", data=body, timeout=timeout
            ) as resp:
                return resp.status, await resp.read()
        except (TimeoutError, aiohttp.ClientError, OSError):
            return 0, b""

    @asynccontextmanager
    async def stream(
        self, address: str, path: str, body: bytes, timeout: aiohttp.ClientTimeout
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """POST `body` and yield the response unread, for a streaming route (PEER-8). Errors
        reaching the peer raise (aiohttp.ClientError, TimeoutError, OSError)."""
        assert self._session is not None, "PeerClient.start() first"
        async with self._session.post(
            f"https://{address}{path}", data=body, timeout=timeout
        ) as response:
            yield response
