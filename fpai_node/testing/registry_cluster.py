"""Real `fpai-node` processes forming a registry on loopback, for tests and benchmarks.

Each node keeps its peer and Raft ports across restarts (its Raft member id names the address,
specs/0005 RAFT-1), so a node killed and started again comes back as the same member.
"""

import json
import os
import random
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from fpai_node.testing.nodeproc import NodeProcess

T = TypeVar("T")


_PORTS = random.Random()  # noqa: S311 (test ports, not secrets)
_ISSUED: set[int] = set()  # a port handed out is never handed out again by this process


PORT_SPAN = 12_000  # ports below the ephemeral range that tests take from
_PORT_FLOOR = 1024  # the privileged ports below


def free_port() -> int:
    """A free port below the kernel's ephemeral range: outgoing connections take ports from that
    range at any moment, so a port picked there can be gone by the time a node binds it. Nodes
    bind their ports only when they start, so a port is also never given to two of them: nor to
    two pytest-xdist workers, each of which picks from a slice of its own."""
    low, high = worker_port_slice(_ephemeral_start())
    for _ in range(200):
        port = _PORTS.randrange(low, high)
        if port in _ISSUED:
            continue
        _ISSUED.add(port)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def worker_port_slice(ephemeral_start: int) -> tuple[int, int]:
    """This process's share of the span below `ephemeral_start`: all of it, or under
    pytest-xdist (which names its workers gw0, gw1, ...) the worker's own part."""
    low = max(_PORT_FLOOR, ephemeral_start - PORT_SPAN)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or workers < 2:
        return low, ephemeral_start
    share = (ephemeral_start - low) // workers
    start = low + int(worker[2:]) * share
    return start, start + share


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def wait_for(check: Callable[[], T], timeout_s: float = 20.0, every_s: float = 0.1) -> T:
    """Poll `check` until it returns something truthy; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (OSError, ValueError, KeyError) as exc:  # a node restarting, a half answer
            last = exc
        else:
            if result:
                return result
        time.sleep(every_s)
    raise AssertionError(f"condition not met within {timeout_s} s (last error: {last})")


class RegistryNode:
    """One node process with fixed peer and Raft ports; start, kill and start it again."""

    def __init__(self, home: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.peer = f"127.0.0.1:{free_port()}"
        self.raft = f"127.0.0.1:{free_port()}"
        self.args = args
        self.env = env or {}
        self.process: NodeProcess | None = None

    def start(self, *extra: str, timeout_s: float = 30.0) -> "RegistryNode":
        return self.launch(*extra).wait_started(timeout_s)

    def launch(self, *extra: str) -> "RegistryNode":
        """Start the process without waiting for it (`wait_started`), to start several at once."""
        self.process = NodeProcess(
            self.home,
            "--api",
            "127.0.0.1:0",
            "--peer",
            self.peer,
            "--raft",
            self.raft,
            *(() if "--model" in self.args else ("--no-model",)),
            *self.args,
            *extra,
            env=self.env,
        ).launch()
        return self

    def wait_started(self, timeout_s: float = 30.0) -> "RegistryNode":
        assert self.process is not None, "launch() first"
        self.process.wait_started(timeout_s)
        return self

    @property
    def url(self) -> str:
        assert self.process is not None
        return self.process.url

    @property
    def node_id(self) -> str:
        return str(self.status()["node_id"])

    def running(self) -> bool:
        return (
            self.process is not None
            and self.process.process is not None
            and (self.process.process.poll() is None)
        )

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def stop(self) -> int:
        assert self.process is not None
        return self.process.stop(signal.SIGTERM)

    def status(self) -> dict[str, Any]:
        return self.request("GET", "/fpai/v1/status")  # type: ignore[no-any-return]

    def registry(self, stale: bool = False, key: str | None = None) -> dict[str, Any]:
        path = "/fpai/v1/registry" + ("?stale=1" if stale else "")
        return self.request("GET", path, key=key)  # type: ignore[no-any-return]

    def put(self, key: str, value: Any, timeout_s: float = 15.0) -> dict[str, Any]:
        path = f"/fpai/v1/registry/parameters/{key}"
        return self.request("PUT", path, {"value": value}, timeout_s)  # type: ignore[no-any-return]

    def get(
        self, key: str, stale: bool = False, timeout_s: float = 15.0, api_key: str | None = None
    ) -> Any:
        path = f"/fpai/v1/registry/parameters/{key}" + ("?stale=1" if stale else "")
        return self.request("GET", path, timeout_s=timeout_s, key=api_key)["value"]

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        timeout_s: float = 15.0,
        key: str | None = None,
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(  # noqa: S310 (our node, http on loopback)
            self.url + path, data=data, method=method, headers=headers
        )
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            return json.loads(response.read())

    def log(self) -> str:
        return self.process.log() if self.process is not None else ""


def leader_of(nodes: list[RegistryNode]) -> RegistryNode:
    """The running node that every running node names as leader (waits for agreement)."""

    def agreed() -> RegistryNode | None:
        leaders = {n.status()["registry"]["leader"] for n in nodes if n.running()}
        if len(leaders) != 1 or None in leaders:
            return None
        (leader,) = leaders
        return next((n for n in nodes if n.running() and n.node_id == leader), None)

    leader = wait_for(agreed, timeout_s=30.0)
    assert leader is not None
    return leader


def votes_with(node: RegistryNode, ids: set[str]) -> bool:
    """The node runs as a voter and its Raft configuration is exactly `ids` (joiners follow as
    learners until their log makes them voters: only then does losing one node cost no
    majority)."""
    registry = node.status()["registry"]
    return registry["role"] == "voter" and set(registry["configuration"]) == ids


def voters_and_learners(node: RegistryNode, stale: bool = True) -> tuple[set[str], set[str]]:
    members = node.registry(stale=stale)["members"]
    return (
        {m["node_id"] for m in members if m["role"] == "voter"},
        {m["node_id"] for m in members if m["role"] == "learner"},
    )


@contextmanager
def registry_cluster(
    root: Path, size: int = 3, env: dict[str, str] | None = None
) -> Iterator[list[RegistryNode]]:
    """`size` nodes: the first bootstraps the registry, the others join it through its peer
    address; yields once every node sees every member (killed on exit, whatever happened)."""
    nodes = [RegistryNode(root / f"node{i}", env=env) for i in range(size)]
    try:
        first = nodes[0].start()
        wait_for(lambda: first.status()["registry"]["phase"] == "running")
        # one after the other: joiners launched together form the registry later (6.2 s against
        # 5.6 for three nodes), as their promotions are serial steps of the leader's anyway
        for node in nodes[1:]:
            node.start("--join", first.peer)
        ids = {n.node_id for n in nodes}
        for node in nodes:
            wait_for(partial(votes_with, node, ids), timeout_s=30.0)
        yield nodes
    finally:
        for node in nodes:
            node.kill()


def expect_http_error(call: Callable[[], Any]) -> urllib.error.HTTPError:
    try:
        call()
    except urllib.error.HTTPError as exc:
        return exc
    raise AssertionError("expected an HTTP error")
