"""The peer channel's server (specs/0003-transport.md, PEER-1..PEER-8): HTTP/1.1 over mutual
TLS 1.3, serving the routes the node's services declare.

The server learns each caller's node id from the key its certificate proved (TLS-6) and hands
(node id, body) to the route's handler; the gossip service, which owns the frame route, refuses
a frame whose envelope names anyone else. Every refusal the application can see is logged and
counted by reason; a per-peer token bucket stops a flooding peer before any signature is checked.
"""

import asyncio
import errno
import socket
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from functools import partial

import structlog
from aiohttp import web

from fpai_node.hostport import HostPort
from fpai_node.identity.tls import (
    PeerIdentityError,
    TlsIdentity,
    handshake_refusal_reason,
    peer_node_id,
    server_context,
)
from fpai_node.peer.limits import RateLimiter, Slots, address_group
from fpai_node.service import FrameRefused, Gate, PeerRoute, RpcHandler, RpcRoute, StreamRoute
from fpai_node.wire.envelope import MAX_FRAME_BYTES

FRAME_PATH = "/fpai/peer/v1/frame"  # PEER-1: where every node accepts signed frames
RATE_PER_S = 200.0  # frames a peer may send per second: gossip needs a handful
BURST = 400.0
HANDSHAKE_TIMEOUT_S = 10.0  # a peer that cannot finish a handshake in 10 s is not a peer
KEEPALIVE_S = 15.0  # an idle peer connection is closed after this; gossip reconnects cheaply
MAX_CONNECTIONS = 256  # established peer connections; far above a federation's fan-out
# PEER-5: an honest peer holds its pools' connections (gossip 4, forwarding 16, joins 1) and
# few are ever in a handshake at once; one host, however hostile, gets an eighth of the server
MAX_CONNECTIONS_PER_ADDRESS = 64
MAX_HANDSHAKES = 256  # connections still in their handshake (anyone can open those)
MAX_HANDSHAKES_PER_ADDRESS = 32  # a peer opening every pooled connection at once fits
# accept(2) out of descriptors or memory: the accept loop waits this long, then tries again
# (closed connections free them); asyncio's own server waits 1 s too
ACCEPT_RETRY_S = 1.0
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# the listening socket itself is unusable: accepting again cannot help
_LISTENER_BROKEN = frozenset({errno.EBADF, errno.EINVAL, errno.ENOTSOCK})
# any other accept(2) error belongs to one connection in the backlog (the man page: treat it as
# EAGAIN) and is retried at once; this many in a row no run of failed connections explains, so
# the loop waits as when out of resources rather than spin
ACCEPT_FAILURES_BEFORE_WAIT = 100
# connections taken from the backlog per wake-up, as asyncio's server takes up to its backlog:
# one per turn of the event loop would let a flood overflow it before the limits can act
ACCEPT_BATCH = 128
SHUTDOWN_S = 3.0  # requests in flight (forwarded generations) get this long when the node stops
log = structlog.get_logger("fpai.peer")


class PeerServer:
    """Serves `routes` (each path once) on a listening socket the caller bound."""

    def __init__(self, identity: TlsIdentity, routes: Iterable[PeerRoute]) -> None:
        self._identity = identity
        self._routes: dict[str, PeerRoute] = {}
        for route in routes:
            if route.path in self._routes:
                raise ValueError(f"two services declare the peer route {route.path}")
            self._routes[route.path] = route
        self._limiter = RateLimiter(RATE_PER_S, BURST)
        self._runner: web.AppRunner | None = None
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._handshaking: set[asyncio.Task[None]] = set()
        self._unstarted: set[socket.socket] = set()  # handshakes whose task has not yet run
        self.handshakes = Slots(MAX_HANDSHAKES, MAX_HANDSHAKES_PER_ADDRESS)
        self.refusals: Counter[str] = Counter()
        self.address = ""

    async def start(self, sock: socket.socket) -> None:
        app = web.Application()
        for path, route in self._routes.items():
            if isinstance(route, RpcRoute):
                app.router.add_post(path, self._serve(route.handler))
            else:
                app.router.add_post(path, self._serve_stream(route))
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
        sock.setblocking(False)
        self._listener = sock
        self.address = str(HostPort.bound_to(sock))
        self._accepting = asyncio.create_task(
            self._accept(sock, server_context(self._identity), web_server)
        )
        self._accepting.add_done_callback(_accepting_ended)

    async def stop(self) -> None:
        tasks = [*self._handshaking]
        if self._accepting is not None:
            tasks.append(self._accepting)
            self._accepting = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _accept(
        self, listener: socket.socket, context: ssl.SSLContext, web_server: web.Server
    ) -> None:
        """Takes each connection and runs its TLS handshake itself, so that a refused handshake
        is counted (PEER-5): with `create_server(ssl=...)` it vanishes inside the event loop,
        reaching no callback."""
        loop = asyncio.get_running_loop()
        failures = 0  # accept errors in a row
        while True:
            try:
                first = await loop.sock_accept(listener)
            except OSError as exc:
                if exc.errno in _LISTENER_BROKEN:
                    raise
                failures += 1
                if exc.errno in _OUT_OF_RESOURCES or failures >= ACCEPT_FAILURES_BEFORE_WAIT:
                    log.warning("peer connections wait: accept fails", error=str(exc))
                    await asyncio.sleep(ACCEPT_RETRY_S)
                    failures = 0
                continue
            failures = 0
            for connection, remote in [first, *_waiting(listener)]:
                self._take(connection, remote, context, web_server)

    def _take(
        self,
        connection: socket.socket,
        remote: tuple[str, int],
        context: ssl.SSLContext,
        web_server: web.Server,
    ) -> None:
        """Refuse the connection, or start its handshake."""
        refusal = self.admits_connection(web_server, connection, remote)
        if refusal is not None:
            self.refuse_connection(refusal, remote)
            connection.close()
            return
        self._unstarted.add(connection)
        loop = asyncio.get_running_loop()
        upgrade = partial(loop.connect_accepted_socket, web_server, connection, ssl=context)
        task = asyncio.create_task(self._handshake(connection, remote, upgrade))
        self._handshaking.add(task)
        task.add_done_callback(partial(self._handshake_ended, connection))

    async def _handshake(
        self,
        connection: socket.socket,
        remote: tuple[str, int],
        upgrade: Callable[[], Awaitable[object]],
    ) -> None:
        """The TLS handshake (`upgrade`), then the connection is aiohttp's. The event loop owns
        the socket from the call on (in this same step: no task in between), and closes it if
        the handshake fails."""
        self._unstarted.discard(connection)
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                await upgrade()
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            self.refuse_handshake(exc, remote)

    def _handshake_ended(self, connection: socket.socket, task: asyncio.Task[None]) -> None:
        """Also for a task cancelled (the node stopping) before it ran: then the socket is
        still ours to close."""
        self._handshaking.discard(task)
        self.handshakes.release(connection)
        if connection in self._unstarted:
            self._unstarted.discard(connection)
            connection.close()

    def refuse_handshake(self, exc: BaseException, remote: object) -> None:
        """PEER-5: a handshake the TLS layer refused, counted and logged like any refusal."""
        reason = handshake_refusal_reason(exc)
        self.refusals[reason] += 1
        log.warning("peer connection refused", reason=reason, remote=remote, detail=str(exc))

    def _refuse(self, reason: str, status: int, **context: object) -> web.Response:
        self.refusals[reason] += 1
        log.warning("peer frame refused", reason=reason, **context)
        return web.Response(status=status, text=reason)

    async def _admit(
        self,
        request: web.Request,
        limiter: RateLimiter,
        max_body_bytes: int,
        gate: Gate | None = None,
    ) -> tuple[str, bytes] | web.Response:
        """The caller's node id and the request body, or the refusal to answer (PEER-3). The
        body is read only up to the route's limit, and only once the caller passed the gate."""
        transport = request.transport
        if transport is None or transport.is_closing():  # the peer left; nobody to answer
            return web.Response(status=400, text="gone")
        try:
            peer = peer_node_id(transport.get_extra_info("ssl_object"))
        except PeerIdentityError as exc:
            return self._refuse(exc.reason, 403, remote=request.remote)
        if not limiter.take(peer):
            return self._refuse("rate_limited", 429, peer=peer)
        refusal = gate(peer) if gate is not None else None
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
        self, route: StreamRoute
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        limiter = RateLimiter(route.rate_per_s, route.rate_per_s)

        async def serve(request: web.Request) -> web.StreamResponse:
            admitted = await self._admit(request, limiter, route.max_body_bytes, route.gate)
            if isinstance(admitted, web.Response):
                return admitted
            return await route.handler(*admitted, request)

        return serve

    def _serve(self, handler: RpcHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
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

    def admits_connection(
        self, web_server: web.Server, holder: object, remote: tuple[str, int]
    ) -> str | None:
        """Why a new connection must be refused now (PEER-5), or None: then `holder` holds a
        handshake slot until it releases it."""
        if len(web_server.connections) >= MAX_CONNECTIONS:
            return "too_many_connections"
        group = address_group(remote[0])
        established = sum(
            1
            for handler in web_server.connections
            # a TLS transport closed twice lets go of its SSL protocol, and with it its address,
            # before aiohttp drops the connection: one that is closing is leaving, not counted
            if handler.transport is not None
            and not handler.transport.is_closing()
            and address_group((handler.transport.get_extra_info("peername") or ("",))[0]) == group
        )
        if established >= MAX_CONNECTIONS_PER_ADDRESS:
            return "too_many_connections_from_address"
        refusal = self.handshakes.refusal(remote[0])
        if refusal is None:
            self.handshakes.take(holder, remote[0])
        return refusal

    def refuse_connection(self, reason: str, remote: object) -> None:
        self.refusals[reason] += 1
        log.warning("peer connection refused", reason=reason, remote=remote)


def _accepting_ended(task: asyncio.Task[None]) -> None:
    """The accept loop ends only when the node stops it; anything else is logged loudly."""
    if not task.cancelled() and task.exception() is not None:
        log.critical("the peer channel stopped accepting", error=repr(task.exception()))


def _waiting(listener: socket.socket) -> list[tuple[socket.socket, tuple[str, int]]]:
    """Connections already in the backlog, up to ACCEPT_BATCH, without waiting for more (an
    error stops the batch: the next `sock_accept` meets it again, and deals with it)."""
    taken: list[tuple[socket.socket, tuple[str, int]]] = []
    while len(taken) < ACCEPT_BATCH:
        try:
            connection, remote = listener.accept()
        except OSError:  # BlockingIOError included: the backlog is empty
            break
        connection.setblocking(False)
        taken.append((connection, remote))
    return taken
