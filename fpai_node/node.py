"""Composition root: builds the node's parts from Settings, runs them, stops them in order."""

import asyncio
import datetime as dt
import errno
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
from aiohttp import web

from fpai_node import __version__
from fpai_node.api.app import NodeInfo, build_app
from fpai_node.config import HostPort, Settings, check_safe_binds
from fpai_node.errors import ConfigError, FpaiError
from fpai_node.genesis import Genesis, load_genesis, registry_voters
from fpai_node.gossip.messages import Capabilities, Hardware, Model
from fpai_node.gossip.service import GossipService, hardware_summary
from fpai_node.home import Home
from fpai_node.identity import NodeKey
from fpai_node.identity.certs import load_certificate
from fpai_node.identity.tls import TlsIdentity
from fpai_node.inference.backends import build_backends
from fpai_node.inference.service import InferenceService
from fpai_node.metrics import Metrics
from fpai_node.registry.raft import RaftTiming
from fpai_node.registry.service import RegistryService, remembered_peers
from fpai_node.router.forward import Forwarder
from fpai_node.router.receipts import ReceiptLog, receipts_path
from fpai_node.router.serve import PeerInference
from fpai_node.router.service import Router


def tls_identity(settings: Settings, key: NodeKey, home: Home) -> TlsIdentity:
    """The federation preset needs a certificate from the federation CA (specs/0003 CERT-7);
    the others certify the node key under the open CA at every start (CERT-8)."""
    now = dt.datetime.now(dt.UTC)
    if settings.preset != "federation":
        return TlsIdentity.open(key, now)
    node_cert, ca_cert = home.root / "certs" / "node.crt", home.root / "certs" / "ca.crt"
    for path in (node_cert, ca_cert):
        if not path.exists():
            raise ConfigError(
                f"the federation preset needs {node_cert} and {ca_cert}: on the CA's machine run "
                f"`fpai-node federation issue --ca-dir CA_DIR --public-key {key.public_key.hex()} "
                f"--out node.crt`, then copy node.crt and the CA's ca.crt there"
            )
    return TlsIdentity.federation(key, load_certificate(node_cert), load_certificate(ca_cert), now)


def bootstrap_peers(settings: Settings, genesis: Genesis | None) -> tuple[str, ...]:
    """--join addresses, then the genesis file's bootstrap peers, without repeats."""
    peers = list(settings.join)
    if genesis is not None:
        peers += genesis.bootstrap
    return tuple(dict.fromkeys(peers))


def capabilities(inference: InferenceService, peer: str, api: str) -> Capabilities:
    """What this node announces: its endpoints, models, hardware and current load."""
    served = inference.models()
    capacity = sum(m.card.capacity for m in served) or 1
    running = sum(m.admission.running for m in served)
    cpu, gpu, memory_mb = hardware_summary()
    return Capabilities(
        peer_address=peer,
        api_address=api,
        models=tuple(Model(m.card.id, m.card.context_length or 0, m.card.backend) for m in served),
        hardware=Hardware(cpu=cpu, gpu=gpu, memory_mb=memory_mb),
        load_permille=min(1000, running * 1000 // capacity),
        queue_depth=sum(m.admission.waiting for m in served),
    )


SHUTDOWN_TIMEOUT_S = 3.0  # in-flight requests get this long; the whole stop stays under 5 s
log = structlog.get_logger("fpai.node")


class Node:
    def __init__(self, settings: Settings, key: NodeKey) -> None:
        check_safe_binds(settings)
        self.settings = settings
        genesis = settings.genesis
        self.genesis = None if genesis is None else load_genesis(Path(genesis).expanduser())
        self.registry_voters = registry_voters(settings, self.genesis)  # checked before binding
        self.key = key
        self.home = Home(settings.home)
        self.inference = InferenceService([], max_waiting=settings.queue_depth)
        self.gossip: GossipService | None = None
        self.registry: RegistryService | None = None
        self.receipts: ReceiptLog | None = None
        self.forwarder: Forwarder | None = None
        self._runner: web.AppRunner | None = None
        self.api_url = ""

    async def start(self) -> None:
        """Bind first (a taken port fails in a second, not after loading models), then start the
        backends, then serve: once the API answers, every configured model is ready."""
        api_socket = _bind(self.settings.api, "API")
        sockets = [api_socket]
        runner: web.AppRunner | None = None
        try:
            peer_socket = _bind(self.settings.peer, "peer channel")
            sockets.append(peer_socket)
            raft_socket = _bind(self.settings.raft_address, "registry (Raft)")
            sockets.append(raft_socket)
            identity = tls_identity(self.settings, self.key, self.home)
            backends = build_backends(self.settings, self.home.root / "models")
            self.inference = InferenceService(backends, max_waiting=self.settings.queue_depth)
            await self.inference.start()
            host, port = api_socket.getsockname()[:2]
            api_address = str(HostPort(host, port))
            self.gossip = GossipService(
                self.key,
                identity,
                peer_socket,
                # gossip keeps no member list across restarts: the registry's does
                (
                    *bootstrap_peers(self.settings, self.genesis),
                    *remembered_peers(self.home.root / "raft"),
                ),
                lambda peer: capabilities(self.inference, peer, api_address),
            )
            self.registry = RegistryService(
                key=self.key,
                identity=identity,
                listener=raft_socket,
                directory=self.home.root / "raft",
                join=bootstrap_peers(self.settings, self.genesis),
                peer_address=self.gossip.address,
                api_address=api_address,
                voters=self.registry_voters,
                parameters=self.genesis.parameters if self.genesis else {},
                timing=RaftTiming(dead_after_s=self.settings.registry_dead_after_s),
                local_models=lambda: [m.card.id for m in self.inference.models()],
            )
            self.registry.attach(self.gossip.server)
            self.receipts = ReceiptLog(receipts_path(self.home.root))
            peer_inference = PeerInference(
                self.key, self.inference, self.receipts, self.gossip.is_live_member
            )
            peer_inference.attach(self.gossip.server)
            self.forwarder = Forwarder(identity, self.receipts)
            await self.forwarder.start()
            await self.gossip.start()
            await self.registry.start()
            registry = self.registry
            router = Router(
                self.key.node_id,
                self.inference,
                members=self.gossip.members,
                forwarder=self.forwarder,
                registry_models=lambda: registry.state.models,
            )
            app = build_app(
                NodeInfo(self.key.node_id, self.settings.preset, time.monotonic()),
                self.inference,
                self.settings.api_keys,
                self.gossip,
                self.registry,
                router,
                Metrics(
                    self.key.node_id,
                    inference=self.inference,
                    gossip=self.gossip,
                    registry=self.registry,
                    forwarder=self.forwarder,
                    peer_inference=peer_inference,
                ),
            )
            runner = web.AppRunner(
                app,
                shutdown_timeout=SHUTDOWN_TIMEOUT_S,
                access_log=None,
                handler_cancellation=True,  # a client that leaves cancels its generation
            )
            await runner.setup()
            await web.SockSite(runner, api_socket).start()
        except BaseException:
            for sock in sockets:
                sock.close()
            await self._shut_down(runner)
            raise
        self._runner = runner
        self.api_url = f"http://{api_address}"
        self.home.write_api_address(self.api_url, self.key.node_id, self.gossip.address)
        log.info(
            "node started",
            api=self.api_url,
            peer=self.gossip.address,
            raft=self.registry.address,
            version=__version__,
            preset=self.settings.preset,
            models=[m.card.id for m in self.inference.models()],
        )

    async def stop(self, leave: bool = True) -> None:
        """Stop; with `leave`, also leave the registry (REG-15), as a node going away does."""
        if self._runner is None:
            return
        self.home.clear_api_address()
        runner, self._runner = self._runner, None
        await self._shut_down(runner, leave)
        log.info("node stopped")

    async def _shut_down(self, runner: web.AppRunner | None, leave: bool = True) -> None:
        """Stop what was started, clients first: the API (requests in flight get a few
        seconds), the registry (leave), the peer channel (forwarded generations get a few
        seconds), then forwarding, the receipts log (flushed) and the backends. A step that
        fails is logged and the rest still run; the first failure is raised at the end."""
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        if runner is not None:
            steps.append(("API", runner.cleanup))
        if self.registry is not None:
            registry = self.registry
            steps.append(("registry", lambda: registry.stop(leave)))
        if self.gossip is not None:
            steps.append(("peer channel", self.gossip.stop))
        if self.forwarder is not None:
            steps.append(("forwarding", self.forwarder.close))
        if self.receipts is not None:
            steps.append(("usage receipts", self.receipts.close))
        steps.append(("inference", self.inference.close))
        failure: BaseException | None = None
        for part, step in steps:
            try:
                await step()
            except Exception as exc:
                log.exception("part did not stop cleanly", part=part)
                failure = failure or exc
        if failure is not None:
            raise failure


def _bind(address: HostPort, what: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address.host, address.port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise FpaiError(f"cannot listen on {address} for the {what}: {_describe(exc)}") from None
    sock.setblocking(False)
    return sock


def _describe(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "address already in use (is another node running? see `fpai-node status`)"
    return exc.strerror or str(exc)


async def serve(settings: Settings, key: NodeKey) -> None:
    """Run the node until a signal, then stop it: SIGINT or SIGTERM also leave the registry
    (the node goes away); SIGUSR1 keeps its membership (a restart, or a whole federation
    pausing: `fpai-node testnet down`)."""
    structlog.contextvars.bind_contextvars(node_id=key.node_id)
    stop = asyncio.Event()
    leave = True
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def pause() -> None:
        nonlocal leave
        leave = False
        stop.set()

    loop.add_signal_handler(signal.SIGUSR1, pause)
    lock = Home(settings.home).lock()
    try:
        node = Node(settings, key)
        await node.start()
        try:
            await stop.wait()
            log.info("stopping", leave_registry=leave)
        finally:
            await node.stop(leave)
    finally:
        lock.release()
