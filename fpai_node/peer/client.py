"""The peer channel's client: requests to other nodes, presenting this node's certificate.

The node has one client; each service takes a pool of it, with its own connections per peer and
timeout, so that a long forwarded generation never holds the connection a gossip ping needs.
"""

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from fpai_node.identity.tls import TlsIdentity, client_context
from fpai_node.peer.server import FRAME_PATH


class PeerPool:
    """Connections to peers for one kind of traffic (PEER-6: reused between requests)."""

    def __init__(self, context: ssl.SSLContext, connections_per_peer: int, timeout_s: float):
        self._context = context
        self._per_peer = connections_per_peer
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def open(self) -> None:
        """Called by the client's start, in the event loop the pool will be used from."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                ssl=self._context, limit_per_host=self._per_peer, limit=0
            )
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, address: str, frame: bytes) -> int:
        """POST one frame; returns the HTTP status, or 0 when the peer could not be reached."""
        return (await self.call(address, FRAME_PATH, frame))[0]

    async def call(self, address: str, path: str, body: bytes) -> tuple[int, bytes]:
        """POST `body` to a peer's route: (HTTP status, answer); status 0 when the peer could
        not be reached within the pool's timeout."""
        assert self._session is not None, "the node's PeerClient is not started"
        try:
            async with self._session.post(f"https://{address}{path}", data=body) as resp:
                return resp.status, await resp.read()
        except (TimeoutError, aiohttp.ClientError, OSError):
            return 0, b""

    @asynccontextmanager
    async def stream(
        self, address: str, path: str, body: bytes, timeout: aiohttp.ClientTimeout
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """POST `body` and yield the response unread, for a streaming route (PEER-8). Errors
        reaching the peer raise (aiohttp.ClientError, TimeoutError, OSError)."""
        assert self._session is not None, "the node's PeerClient is not started"
        async with self._session.post(
            f"https://{address}{path}", data=body, timeout=timeout
        ) as response:
            yield response


class PeerClient:
    """This node's client on the peer channel: one TLS identity, one pool per kind of traffic."""

    def __init__(self, identity: TlsIdentity) -> None:
        self._context: ssl.SSLContext = client_context(identity)
        self._pools: list[PeerPool] = []
        self._started = False

    def pool(self, *, connections_per_peer: int, timeout_s: float) -> PeerPool:
        """A pool of its own for one service's traffic, taken before the client starts (when the
        node composes its services); usable once it has."""
        assert not self._started, "take peer pools before the client starts"
        pool = PeerPool(self._context, connections_per_peer, timeout_s)
        self._pools.append(pool)
        return pool

    async def start(self) -> None:
        self._started = True
        for pool in self._pools:
            pool.open()

    async def close(self) -> None:
        for pool in self._pools:
            await pool.close()
