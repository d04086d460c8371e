"""Composition root: runs the services `compose` builds from Settings, starts them in order and
stops them in reverse."""

import asyncio
import gc
import signal
from pathlib import Path

import structlog

from fpai_node import __version__
from fpai_node.compose import Listeners, compose
from fpai_node.config import Settings, check_safe_binds
from fpai_node.genesis import load_genesis, registry_voters
from fpai_node.home import Home
from fpai_node.hostport import HostPort
from fpai_node.identity import NodeKey
from fpai_node.service import Service

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
        self.services: list[Service] = []
        self.api_url = ""

    async def start(self) -> None:
        """Bind, compose, start each service in order; once the API answers, every configured
        model is ready. A start that fails stops what it started, in reverse."""
        listeners = Listeners.bind(self.settings)
        try:
            services = compose(
                self.settings, self.key, self.genesis, self.registry_voters, listeners
            )
            for index, service in enumerate(services):
                self.services = services[: index + 1]  # a half-started service is stopped too
                await service.start()
        except BaseException:
            try:
                await self._stop_services(leave=True)  # they still hold their listeners
            finally:
                listeners.close()
            raise
        api, peer = HostPort.bound_to(listeners.api), HostPort.bound_to(listeners.peer)
        self.api_url = f"http://{api}"
        self.home.write_api_address(self.api_url, self.key.node_id, str(peer))
        log.info(
            "node started",
            api=self.api_url,
            peer=str(peer),
            raft=str(HostPort.bound_to(listeners.raft)),
            version=__version__,
            preset=self.settings.preset,
            services=[s.name for s in self.services],
        )

    async def stop(self, leave: bool = True) -> None:
        """Stop; with `leave`, also leave the registry (REG-15), as a node going away does."""
        if not self.api_url:
            return
        self.api_url = ""
        self.home.clear_api_address()
        await self._stop_services(leave)
        log.info("node stopped")

    async def _stop_services(self, leave: bool) -> None:
        """Every started service in reverse order: the API (requests in flight get a few
        seconds), the registry (leave), gossip (goodbye), the peer channel (forwarded
        generations get a few seconds), the router (receipts flushed), inference. A service
        that fails to stop is logged and the rest still stop; the first failure is raised."""
        services, self.services = self.services, []
        failure: BaseException | None = None
        for service in reversed(services):
            try:
                await service.stop(leave)
            except Exception as exc:
                log.exception("service did not stop cleanly", service=service.name)
                failure = failure or exc
        if failure is not None:
            raise failure


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
        freeze_startup_objects()
        try:
            await stop.wait()
            log.info("stopping", leave_registry=leave)
        finally:
            await node.stop(leave)
    finally:
        lock.release()


# The collector looks at the youngest objects once this many more containers were allocated
# than freed. Python's 700 is crossed by the temporaries of a few dozen requests in flight,
# though nearly all of them die by reference count soon after: under 64 clients' registry
# writes the leader ran 63 young collections a second (8 us of CPU a write), and the objects
# they promoted brought a full collection every 2 s, of up to 82 ms. At 10,000: 0.6 us a
# write, and no full collection in 20 s (measured with gc.callbacks). Cycles are still found
# within 10,000 allocations.
YOUNG_COLLECTION_THRESHOLD = 10_000


def freeze_startup_objects() -> None:
    """Put everything allocated while starting (libraries, the embedding model, the replayed
    registry) out of the garbage collector's reach for good, and collect young objects less
    often (YOUNG_COLLECTION_THRESHOLD). A full collection walks every object it tracks, and a
    started node holds hundreds of thousands that live as long as it does: each full
    collection stalled every request for tens of milliseconds (registry writes at 64 clients:
    p99 84 ms, 44 ms with no full collections). What the node allocates later is collected as
    before."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])
