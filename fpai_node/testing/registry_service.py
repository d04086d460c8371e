"""A RegistryService built but never started, for unit tests of its handlers and its read
path: where a test needs a Raft engine or proposals, it stands them in itself."""

import datetime as dt
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fpai_node.identity import NodeKey
from fpai_node.identity.tls import TlsIdentity
from fpai_node.peer.client import PeerClient
from fpai_node.registry.raft import RaftTiming
from fpai_node.registry.service import RegistryService

PEER_ADDRESS = "10.0.0.1:7100"  # what the service says of itself; nothing listens there
API_ADDRESS = "10.0.0.1:8100"


@contextmanager
def unstarted_registry_service(key: NodeKey, directory: Path) -> Iterator[RegistryService]:
    """The service of `key`'s node, its Raft listener bound (it names the member id) and
    closed afterwards."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        identity = TlsIdentity.open(key, dt.datetime.now(dt.UTC))
        yield RegistryService(
            key=key,
            identity=identity,
            listener=listener,
            client=PeerClient(identity),
            directory=directory,
            join=(),
            peer_address=PEER_ADDRESS,
            api_address=API_ADDRESS,
            voters=3,
            timing=RaftTiming(),
        )
