"""What a node is made of, from its Settings: the one module that reads Settings and wires the
services together. Every service below it is handed plain values and the parts it uses.

To add a service: build it here, and put it in the list `compose` returns at the place its start
and stop belong (docs/architecture.md, "Adding a service").
"""

import datetime as dt
import errno
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from fpai_node.api.admin.registry import registry_routes
from fpai_node.api.app import ApiRoutes, ClientApi, NodeInfo, build_app
from fpai_node.api.dashboard import dashboard_routes
from fpai_node.api.memory.extract import router_completer
from fpai_node.api.memory.routes import memory_routes
from fpai_node.api.openai.routes import openai_routes
from fpai_node.api.rewards import rewards_routes
from fpai_node.api.supervisor import supervisor_routes
from fpai_node.api.treasury import treasury_routes
from fpai_node.config import Settings
from fpai_node.errors import ConfigError, FpaiError
from fpai_node.genesis import Genesis, registry_electors
from fpai_node.gossip.messages import Capabilities, Hardware, Model
from fpai_node.gossip.service import GossipService, hardware_summary
from fpai_node.home import Home
from fpai_node.hostport import HostPort
from fpai_node.identity import NodeKey
from fpai_node.identity.certs import load_certificate
from fpai_node.identity.tls import TlsIdentity
from fpai_node.inference.base import Backend
from fpai_node.inference.llamacpp import LlamaCppBackend, LocalModel
from fpai_node.inference.models import bundled_model, check_model_file, parse_model_spec
from fpai_node.inference.service import InferenceService
from fpai_node.inference.upstream import UpstreamBackend
from fpai_node.memory.embeddings import Embedder
from fpai_node.memory.memories import Memories
from fpai_node.memory.service import MemoryService
from fpai_node.memory.shard import OpenStore
from fpai_node.peer.channel import PeerChannel
from fpai_node.registry.hint import remembered_peers
from fpai_node.registry.raft import RaftTiming
from fpai_node.registry.service import RegistryService
from fpai_node.rewards.digests import KEPT_PAIRS_MS
from fpai_node.rewards.service import RewardsService
from fpai_node.router.receipts import receipts_path
from fpai_node.router.service import RouterService
from fpai_node.service import ActionGate, Service
from fpai_node.supervisor.certificate_policy import CertificatePolicy
from fpai_node.supervisor.observe import Observer
from fpai_node.supervisor.service import Supervisor
from fpai_node.supervisor.treasury_policy import TreasuryPolicy
from fpai_node.treasury.service import ChainSettings, TreasuryService


@dataclass(frozen=True, slots=True)
class Listeners:
    """The node's three listening sockets, bound before anything else starts: a taken port
    fails in a second, not after loading models."""

    api: socket.socket
    peer: socket.socket
    raft: socket.socket

    @classmethod
    def bind(cls, settings: Settings) -> "Listeners":
        api = _bind(settings.api, "API")
        try:
            peer = _bind(settings.peer, "peer channel")
            try:
                return cls(api, peer, _bind(settings.raft_address, "registry (Raft)"))
            except BaseException:
                peer.close()
                raise
        except BaseException:
            api.close()
            raise

    def close(self) -> None:
        for sock in (self.api, self.peer, self.raft):
            sock.close()


def compose(
    settings: Settings,
    key: NodeKey,
    genesis: Genesis | None,
    voters: int,
    listeners: Listeners,
) -> list[Service]:
    """The node's services in start order (they stop in reverse): inference first, so every
    model is loaded before anyone is told about it; the client API last, so it answers only
    once everything behind it runs. Only the TLS identity and the backends can fail on bad
    input (a one-line FpaiError); the rest is wiring, except the receipts log, which opens
    its file."""
    home = Home(settings.home)
    identity = tls_identity(settings, key, home)
    observer: list[Observer] = []  # made once the services it reads exist
    supervisor = Supervisor(
        settings.autonomy,
        home.root / "supervisor",
        lambda: registry.state,
        observe=lambda: observer[0].observe() if observer else None,
    )
    inference = InferenceService(
        build_backends(settings, home.root / "models", supervisor),
        max_waiting=settings.queue_depth,
    )
    channel = PeerChannel(identity, listeners.peer)
    api_address = str(HostPort.bound_to(listeners.api))
    join = bootstrap_peers(settings, genesis)
    gossip = GossipService(
        key,
        channel.address,
        channel.client,
        # gossip keeps no member list across restarts: the registry's does
        (*join, *remembered_peers(home.registry_dir)),
        lambda peer: capabilities(inference, peer, api_address),
        home.root / "gossip-incarnation",
    )
    registry = RegistryService(
        key=key,
        identity=identity,
        listener=listeners.raft,
        client=channel.client,
        directory=home.registry_dir,
        join=join,
        peer_address=channel.address,
        api_address=api_address,
        voters=voters,
        parameters=genesis.parameters if genesis else {},
        electors=registry_electors(settings, genesis, key.node_id),
        timing=RaftTiming(dead_after_s=settings.registry_dead_after_s),
        local_models=lambda: [m.card.id for m in inference.models()],
        gate=supervisor,
    )
    router = RouterService(
        key,
        inference,
        channel.client,
        receipts_path(home.root),
        members=gossip.members,
        is_member=gossip.is_live_member,
        is_dead=gossip.is_declared_dead,
        registry_models=lambda: registry.state.models,
        pairs_window_ms=KEPT_PAIRS_MS,
    )
    services: list[Service] = [inference, router, channel, gossip, registry]
    embedder = Embedder.bundled()
    groups: list[ApiRoutes] = [
        openai_routes(router.router, embedder),
        registry_routes(registry),
    ]
    memory: MemoryService | None = None
    if settings.memory:
        memory = MemoryService(
            key,
            channel.client,
            home.root / "memory",
            store_opener(settings, key.node_id),
            registry,
            channel.address,
        )
        services.append(memory)  # after the registry: it places shards by the registry's members
        groups.append(memory_routes(Memories(memory, embedder, router_completer(router.router))))
    treasury = TreasuryService(
        key,
        registry,
        chain_settings(settings, home),
        grace_s=settings.treasury_grace_s,
        operator_key=home.operator_key_file,
    )
    services.append(treasury)  # after the registry: it keeps bindings and ballots there
    if settings.autonomy != "off":  # off: the draft shows only in the treasury's status
        policy = TreasuryPolicy(
            key.node_id,
            treasury,
            supervisor,
            settings.treasury_grace_s,
            lambda: [n for n, a in treasury.operators_of(registry.state).items() if a],
        )
        supervisor.watch(policy.run)
    groups.append(treasury_routes(treasury))
    rewards = RewardsService(
        key,
        registry,
        router,
        inference,
        channel.client,
        is_member=gossip.is_live_member,
        treasury=treasury,
    )
    services.append(rewards)  # after the registry and the treasury: digests, bindings, claims
    groups.append(rewards_routes(rewards))
    observer.append(
        Observer(
            node_id=key.node_id,
            autonomy=settings.autonomy,
            home=home.root,
            inference=inference,
            gossip=gossip,
            registry=registry,
            treasury=treasury,
            placement=memory.placement if memory is not None else None,
            bootstrap=join,
            certificate_expires=lambda: identity.certificate.not_valid_after_utc,
        )
    )
    installed = home.root / "certs" / "node.crt" if settings.preset == "federation" else None
    supervisor.watch(CertificatePolicy(identity, supervisor, installed).run)
    services.append(supervisor)  # last: it reads every other service
    groups.append(supervisor_routes(supervisor, observer[0]))
    groups.append(dashboard_routes())
    channel.serve(route for service in services for route in service.peer_routes())
    app = build_app(
        NodeInfo(key.node_id, settings.preset, time.monotonic()),
        services,
        groups,
        settings.api_keys,
    )
    return [*services, ClientApi(listeners.api, app)]


def chain_settings(settings: Settings, home: Home) -> ChainSettings | None:
    """The chain the treasury works on (specs/0009), or None without `chain_rpc`."""
    if settings.chain_rpc is None:
        return None
    deployment = settings.chain_deployment or str(home.root / "chain" / "deployment.json")
    return ChainSettings(settings.chain_rpc, Path(deployment).expanduser(), home.operator_key_file)


def store_opener(settings: Settings, node_id: str) -> OpenStore:
    """Shards in Qdrant's embedded engine under the home, or, with `memory_qdrant_url`, one
    collection per shard in that Qdrant server (named by node and shard: several nodes may
    share one server)."""
    url = settings.memory_qdrant_url
    if url is None:
        from fpai_node.memory.edge_store import EdgeStore

        return EdgeStore.open
    from fpai_node.memory.client_store import ClientStore

    api_key = settings.memory_qdrant_api_key

    def remote(path: Path) -> "ClientStore":
        return ClientStore.remote(url, f"fpai-{node_id}-{path.parent.name}", api_key)

    return remote


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


def build_backends(
    settings: Settings, models_dir: Path, gate: ActionGate | None = None
) -> list[Backend]:
    """`models` entries ending in .gguf run in llama.cpp, other entries are vLLM models; each
    upstream URL is one backend. With nothing configured (and not --no-model) the node serves
    the bundled model, so a fresh `fpai-node start` answers right away."""
    local: list[LocalModel] = []
    backends: list[Backend] = []
    for text in settings.models:
        spec = parse_model_spec(text)
        if spec.is_gguf:
            model = spec.local()
            check_model_file(model)
            local.append(model)
        else:
            from fpai_node.inference.vllm import VllmBackend

            log_path = settings.home / "logs" / f"vllm-{spec.id.replace('/', '_')}.log"
            backends.append(VllmBackend(spec.ref, model_id=spec.id, log_path=log_path, gate=gate))
    for url in settings.upstreams:
        backends.append(UpstreamBackend(url, api_key=settings.upstream_api_key))
    if not settings.models and not settings.upstreams and not settings.no_model:
        local.append(bundled_model(models_dir))
    if local:
        backends.insert(
            0,
            LlamaCppBackend(
                local,
                context_length=settings.context_length,
                threads=settings.threads or None,
                sequences=settings.batch_sequences,
                flash_attention=settings.flash_attention,
            ),
        )
    return backends


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
