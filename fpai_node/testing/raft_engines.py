"""Raft engines in one process, over real TLS sockets on loopback: for tests of the transport,
snapshots and restarts without the rest of a node."""

import datetime as dt
import os
import socket
import ssl
import struct
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from fpai_node.identity import NodeKey
from fpai_node.identity.tls import TlsIdentity, client_context
from fpai_node.registry import raft_wire
from fpai_node.registry.raft import RaftEngine, RaftTiming, TransportCounters
from fpai_node.registry.state import Result, encode_command
from fpai_node.testing.registry_cluster import wait_for
from fpai_node.testing.trust import OPEN, Trust
from fpai_node.wire import codec


def listener(port: int = 0) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(16)
    sock.setblocking(False)
    return sock


def command(signer: NodeKey, op: str, **args: Any) -> bytes:
    return encode_command(op, args, key=os.urandom(16), by=signer.node_id, at_ms=1)


def commit(engine: RaftEngine, data: bytes, timeout_s: float = 10.0) -> Result:
    """Propose through `engine` and wait until it has applied the command."""
    done = threading.Event()
    outcome: list[tuple[Result | None, int]] = []

    def settle(result: Result | None, error: int) -> None:
        outcome.append((result, error))
        done.set()

    engine.propose(data, settle)
    if not done.wait(timeout_s):
        raise AssertionError(f"no commit within {timeout_s} s")
    result, error = outcome[0]
    if error != 0 or result is None:
        raise AssertionError(f"commit failed with pysyncobj code {error}")
    return result


class RawRaftPeer:
    """A raw Raft connection speaking the wire format by hand."""

    def __init__(
        self, engine: RaftEngine, key: NodeKey, identity: TlsIdentity | None = None
    ) -> None:
        """As `key`, with `identity` on TLS (default: an open certificate for `key`)."""
        host, port = engine.member.split("@")[1].rsplit(":", 1)
        raw = socket.create_connection((host, int(port)), timeout=5)
        identity = identity or TlsIdentity.open(key, dt.datetime.now(dt.UTC))
        self.tls: ssl.SSLSocket = client_context(identity).wrap_socket(raw)
        self.buffer = b""

    def send(self, value: dict[str, Any] | bytes) -> None:
        frame = value if isinstance(value, bytes) else codec.encode(value)
        self.tls.sendall(struct.pack(">I", len(frame)) + frame)

    def receive(self) -> dict[str, Any] | None:
        """The next frame, or None when the other side closed."""
        while (
            len(self.buffer) < 4 or len(self.buffer) < 4 + struct.unpack(">I", self.buffer[:4])[0]
        ):
            try:
                chunk = self.tls.recv(65536)
            except (ssl.SSLError, ConnectionResetError):
                return None
            if not chunk:
                return None
            self.buffer += chunk
        length = struct.unpack(">I", self.buffer[:4])[0]
        frame, self.buffer = self.buffer[4 : 4 + length], self.buffer[4 + length :]
        return codec.decode(frame)  # type: ignore[return-value]

    def close(self) -> None:
        self.tls.close()


def as_voter(cluster: "EngineCluster", engine: RaftEngine, key: NodeKey) -> RawRaftPeer:
    """A raw connection to `engine` as the voter `key` (absent from the cluster's engines),
    hello said and answered: a test speaks for that voter by hand."""
    peer = RawRaftPeer(engine, key, cluster.trust.member(key))
    peer.send(raft_wire.hello(cluster.members[key.node_id], False))
    answer = peer.receive()
    assert answer is not None and answer["id"] == engine.member
    return peer


class EngineCluster:
    """Voters (and learners added later) whose registry lists them, so that the leader's
    membership policy agrees with Raft and stays idle."""

    def __init__(
        self, root: Path, keys: list[NodeKey], timing: RaftTiming, trust: Trust = OPEN
    ) -> None:
        self.root = root
        self.timing = timing
        self.trust = trust
        self.keys = keys
        self.sockets = {k.node_id: listener() for k in keys}
        self.members = {
            k.node_id: raft_wire.raft_id(k.node_id, f"127.0.0.1:{s.getsockname()[1]}")
            for k, s in zip(keys, self.sockets.values(), strict=True)
        }
        self.voters = [self.members[k.node_id] for k in keys]
        self.engines: dict[str, RaftEngine] = {}

    def start(self, key: NodeKey, learner: bool = False) -> RaftEngine:
        engine = RaftEngine(
            member=self.members[key.node_id],
            learner=learner,
            voters=self.voters,
            directory=self.root / key.node_id,
            identity=self.trust.member(key),
            listener=self.sockets[key.node_id],
            timing=self.timing,
            admits_learner=partial(self._is_member, key.node_id),
            counters=TransportCounters(),
        )
        self.engines[key.node_id] = engine
        return engine

    def _is_member(self, me: str, node_id: str) -> bool:
        return node_id in self.engines[me].state.members

    def leader(self) -> RaftEngine:
        leader = wait_for(
            lambda: next((e for e in self.engines.values() if e.status.is_leader), None)
        )
        assert leader is not None
        return leader

    def register(self, key: NodeKey, role: str, raft: str | None = None) -> None:
        """Add `key` to the registry's members with its Raft address (or `raft`)."""
        address = raft or self.members[key.node_id].split("@")[1]
        add = command(
            self.keys[0],
            "member.add",
            node_id=key.node_id,
            role=role,
            peer="p:1",
            api="a:1",
            raft=address,
        )
        commit(self.leader(), add)

    def add_learner(self, key: NodeKey) -> RaftEngine:
        self.sockets[key.node_id] = listener()
        port = self.sockets[key.node_id].getsockname()[1]
        self.members[key.node_id] = raft_wire.raft_id(key.node_id, f"127.0.0.1:{port}")
        self.register(key, "learner")
        return self.start(key, learner=True)

    def restart(self, key: NodeKey) -> RaftEngine:
        self.engines.pop(key.node_id).stop()
        return self.start(key)

    def stop(self) -> None:
        for engine in self.engines.values():
            engine.stop()
        self.engines.clear()
        for sock in self.sockets.values():
            sock.close()


@contextmanager
def engine_cluster(
    root: Path,
    keys: list[NodeKey],
    timing: RaftTiming | None = None,
    absent: Collection[NodeKey] = (),
    trust: Trust = OPEN,
) -> Iterator[EngineCluster]:
    """Every key a voter; engines run for all but `absent` ones, whose member ids a test speaks
    for by hand (RawRaftPeer), as a voter that lies would."""
    cluster = EngineCluster(root, keys, timing or RaftTiming(), trust)
    try:
        for key in keys:
            if key not in absent:
                cluster.start(key)
        for key in keys:
            cluster.register(key, "voter")
        yield cluster
    finally:
        cluster.stop()
