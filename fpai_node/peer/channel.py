"""The node's peer channel as a service: one server for the routes every service declares, one
client whose pools the services share (specs/0003-transport.md)."""

import socket
from collections import Counter
from collections.abc import Iterable, Mapping

from prometheus_client.core import Metric

from fpai_node.hostport import HostPort
from fpai_node.identity.tls import TlsIdentity
from fpai_node.peer.client import PeerClient
from fpai_node.peer.server import PeerServer
from fpai_node.service import PeerRoute, Service, counter


class PeerChannel(Service):
    name = "peer channel"

    def __init__(self, identity: TlsIdentity, listener: socket.socket) -> None:
        self.address = str(HostPort.bound_to(listener))
        self.client = PeerClient(identity)
        self._identity = identity
        self._listener = listener
        self._routes: list[PeerRoute] = []
        self._server: PeerServer | None = None

    def serve(self, routes: Iterable[PeerRoute]) -> None:
        """Serve these routes too; the node hands over every service's before it starts."""
        self._routes.extend(routes)

    async def start(self) -> None:
        await self.client.start()
        self._server = PeerServer(self._identity, self._routes)
        await self._server.start(self._listener)

    async def stop(self, leave: bool) -> None:
        """Forwarded generations in flight get the server's shutdown time, then the client's
        connections close (gossip, stopped before, has said goodbye through them)."""
        try:
            if self._server is not None:
                await self._server.stop()
        finally:
            self._listener.close()
            await self.client.close()

    @property
    def refusals(self) -> Counter[str]:
        return self._server.refusals if self._server is not None else Counter()

    def status_sections(self) -> Mapping[str, object]:
        return {"peer_channel": {"address": self.address, "refusals": dict(self.refusals)}}

    def metrics(self) -> Iterable[Metric]:
        yield counter(
            "fpai_peer_channel_refusals",
            "Everything the peer channel refused (handshakes, connections, rate limits, sizes, "
            "frames of any route), by reason.",
            "reason",
            self.refusals,
        )
