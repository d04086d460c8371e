"""A federation on one machine: N `fpai-node start` processes on loopback, sharing a federation
CA, their homes and logs in one directory (issue 7, `fpai-node testnet`).

    DIR/testnet.json     the plan: every node's name, home and ports, and the pid it runs as
    DIR/ca/              the federation CA (ca.key, ca.crt) that certified every node
    DIR/nodeK/           node K's home (preset federation, certs/ from the CA)
    DIR/nodeK.log        node K's JSON log

Node 1 bootstraps the registry and serves the bundled model; the others join node 1 and, past
`serving`, serve nothing themselves (gateways): a request for the model at any node works.
Processes run in their own session, so they outlive the command that started them; `down`
stops them with SIGUSR1 (a pause: they stay registry members) and the homes stay, so `up`
resumes the federation with its state, starting every node at once.
"""

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fpai_node.errors import ConfigError, FpaiError
from fpai_node.home import Home
from fpai_node.identity import NodeKey
from fpai_node.identity.certs import (
    CA_CERT_FILE,
    create_ca,
    issue_node_certificate,
    load_ca,
    save_ca,
    save_certificate,
)
from fpai_node.registry.hint import read_hint
from fpai_node.testnet_chain import CHAIN_PORT_OFFSET, TestnetChain, configure

MANIFEST = "testnet.json"
DEFAULT_BASE_PORT = 18100  # API base; peers at +100, Raft at +200: clear of a node on 8100/7100
MAX_NODES = 99  # the three port ranges must not overlap
READY_TIMEOUT_S = 180.0  # loading the model and forming the registry take seconds, not minutes
STOP_TIMEOUT_S = 20.0  # in-flight requests get 3 s each stage; then SIGKILL
CERT_DAYS = 365
EXEC_TIMEOUT_S = 10.0  # from fork to the node's own command line: milliseconds, unless swapping


def default_directory() -> Path:
    return Path("~/.fpai-testnet").expanduser()


@dataclass
class TestnetNode:
    name: str
    home: Path
    api_port: int
    peer_port: int
    raft_port: int
    serves_model: bool
    pid: int | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def peer(self) -> str:
        return f"127.0.0.1:{self.peer_port}"

    @property
    def log_path(self) -> Path:
        return self.home.parent / f"{self.name}.log"

    def running(self) -> bool:
        """Our node process is alive: the pid exists and runs `start` on this home."""
        if self.pid is None:
            return False
        if Path("/proc/self").exists():
            try:
                arguments = Path(f"/proc/{self.pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                return False
            return b"start" in arguments and str(self.home).encode() in arguments
        try:  # no procfs (macOS): ask ps; a pid we cannot check is not ours to signal
            command = subprocess.run(  # noqa: S603
                ["ps", "-o", "command=", "-p", str(self.pid)],  # noqa: S607
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return False
        return " start " in command and str(self.home) in command

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Testnet:
    __test__ = False  # a name pytest would otherwise collect

    directory: Path
    nodes: list[TestnetNode] = field(default_factory=list)
    chain: TestnetChain | None = None

    @classmethod
    def plan(
        cls, directory: Path, count: int, base_port: int, serving: int, chain: bool = False
    ) -> "Testnet":
        if not 1 <= count <= MAX_NODES:
            raise ConfigError(f"--nodes must be 1..{MAX_NODES}, got {count}")
        if not 0 <= serving <= count:
            raise ConfigError(f"--serving must be 0..{count} (the number of nodes), got {serving}")
        if not 1024 <= base_port <= 65535 - CHAIN_PORT_OFFSET - count:
            raise ConfigError(
                f"--base-port must leave room for {count} nodes and the chain: "
                f"1024..{65535 - CHAIN_PORT_OFFSET - count}"
            )
        nodes = [
            TestnetNode(
                name=f"node{k + 1}",
                home=directory / f"node{k + 1}",
                api_port=base_port + k,
                peer_port=base_port + 100 + k,
                raft_port=base_port + 200 + k,
                serves_model=k < serving,
            )
            for k in range(count)
        ]
        planned = (
            TestnetChain(directory / "chain", base_port + CHAIN_PORT_OFFSET) if chain else None
        )
        return cls(directory, nodes, planned)

    @classmethod
    def load(cls, directory: Path) -> "Testnet | None":
        path = directory / MANIFEST
        if directory.exists() and not directory.is_dir():
            raise FpaiError(f"{directory} is a file, not a testnet directory")
        try:
            data = json.loads(path.read_text())
            nodes = [_node(n) for n in data["nodes"]]
            chain = _chain(directory, data.get("chain"))
            if not nodes:
                raise ValueError("no nodes")
            for node in nodes:  # `down --purge` deletes each home: only ones the testnet made
                # the path as written, never resolved: a symlink must not make one pass
                if not _NODE_NAME.fullmatch(node.name) or node.home != directory / node.name:
                    raise ValueError(f"{node.name}: a node's home is {directory}/node<N>")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise FpaiError(
                f"{path} is not a testnet manifest ({exc}); fix it, or delete {directory} "
                "(after stopping any fpai-node it started) to begin afresh"
            ) from None
        return cls(directory, nodes, chain)

    def save(self) -> None:
        nodes = [{**asdict(n), "home": str(n.home)} for n in self.nodes]
        chain = None if self.chain is None else {"port": self.chain.port, "pid": self.chain.pid}
        tmp = self.directory / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps({"nodes": nodes, "chain": chain}, indent=2) + "\n")
        os.replace(tmp, self.directory / MANIFEST)


_NODE_NAME = re.compile(r"node[1-9][0-9]{0,3}")  # what `create` names them


def _node(value: dict[str, Any]) -> TestnetNode:
    """One manifest entry, checked: a hand-edited file gives a clear error, not a traceback."""
    node = TestnetNode(**{**value, "home": Path(value["home"])})
    ports = (node.api_port, node.peer_port, node.raft_port)
    if not all(type(p) is int and 0 < p < 65536 for p in ports):
        raise ValueError(f"{node.name}: ports must be 1..65535")
    if node.pid is not None and type(node.pid) is not int:
        raise ValueError(f"{node.name}: pid must be a number or null")
    if not isinstance(node.name, str) or type(node.serves_model) is not bool:
        raise ValueError("a node has a name and a serves_model flag")
    return node


def _chain(directory: Path, value: Any) -> TestnetChain | None:
    """The manifest's chain entry (absent in testnets made before issue 17: no chain)."""
    if value is None:
        return None
    port, pid = value["port"], value["pid"]
    if type(port) is not int or not 0 < port < 65536 or (pid is not None and type(pid) is not int):
        raise ValueError("the chain has a port (1..65535) and a pid (a number or null)")
    return TestnetChain(directory / "chain", port, pid)


def created_paths(testnet: Testnet) -> list[Path]:
    """What the testnet wrote in its directory: all that `down --purge` may delete."""
    paths = [testnet.directory / MANIFEST, testnet.directory / "ca"]
    if testnet.chain is not None:
        paths += [testnet.chain.directory, testnet.chain.log_path]
    for node in testnet.nodes:
        paths += [node.home, node.log_path]
    return paths


def prepare(testnet: Testnet) -> None:
    """Create what is missing: the directory, the CA, each node's home and certificate."""
    directory = testnet.directory
    if not (directory / MANIFEST).exists() and directory.exists() and any(directory.iterdir()):
        raise ConfigError(f"{directory} is not empty and holds no testnet; choose another --dir")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_dir = testnet.directory / "ca"
    if not (ca_dir / CA_CERT_FILE).exists():
        save_ca(ca_dir, create_ca("FPAI testnet CA", _now()))
    ca = load_ca(ca_dir)
    for node in testnet.nodes:
        home = Home(node.home)
        key = NodeKey.load(home.key_file) if home.is_initialised() else home.init("federation")
        certs = node.home / "certs"
        if not (certs / "node.crt").exists():
            cert = issue_node_certificate(ca, key.public_key, _now(), dt.timedelta(days=CERT_DAYS))
            save_certificate(certs / "node.crt", cert)
            shutil.copyfile(ca_dir / CA_CERT_FILE, certs / "ca.crt")
        if testnet.chain is not None:
            configure(node.home, testnet.chain)
    testnet.save()


def check_ports(nodes: list[TestnetNode]) -> None:
    """Before anything starts: every port of every node about to start is free."""
    for node in nodes:
        for what, port in (
            ("API", node.api_port),
            ("peer", node.peer_port),
            ("Raft", node.raft_port),
        ):
            check_port(node.name, what, port)


def check_port(name: str, what: str, port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise FpaiError(
                f"{name}: {what} port {port} is taken; choose another --base-port "
                f"or stop what uses it"
            ) from None


def launch(node: TestnetNode, join: str | None) -> None:
    """Start the node's process in its own session, its output in its log."""
    args = [
        sys.executable, "-m", "fpai_node", "start",
        "--home", str(node.home),
        "--preset", "federation",
        "--api", f"127.0.0.1:{node.api_port}",
        "--peer", node.peer,
        "--raft", f"127.0.0.1:{node.raft_port}",
        "--log-format", "json",
    ]  # fmt: skip
    if join is not None:
        args += ["--join", join]
    if not node.serves_model:
        args.append("--no-model")
    with node.log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 (our own node, with arguments we built)
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    node.pid = process.pid
    # Until the child has exec'd, its command line is still this process's: `running` would
    # call it gone (and `stop` would leave it running). A large parent (web3 loaded to deploy
    # the chain) forks slowly enough for the first check to land there.
    deadline = time.monotonic() + EXEC_TIMEOUT_S
    while not node.running() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)


@dataclass(frozen=True)
class NodeView:
    """One node as its API shows it; empty fields when it does not answer."""

    node: TestnetNode
    running: bool
    status: dict[str, Any] | None

    @property
    def healthy(self) -> bool:
        return self.status is not None

    @property
    def node_id(self) -> str:
        return str(self.status["node_id"]) if self.status else ""

    @property
    def leader(self) -> str:
        return str((self.status or {}).get("registry", {}).get("leader") or "")

    @property
    def members(self) -> int:
        return len((self.status or {}).get("registry", {}).get("members", []))

    @property
    def settled(self) -> bool:
        """Raft's configuration holds as many voters as the registry wants, and this node runs
        as its place in it says: no promotion or demotion under way."""
        registry = (self.status or {}).get("registry", {})
        configuration = registry.get("configuration", [])
        wanted = min(self.members, int(registry.get("voters_target") or 0))
        voter = registry.get("role") == "voter"
        return len(configuration) == wanted and voter == (self.node_id in configuration)

    @property
    def alive_peers(self) -> int:
        peers = (self.status or {}).get("peers", [])
        return sum(1 for p in peers if p.get("state") == "alive")

    @property
    def models(self) -> list[str]:
        return [str(m["id"]) for m in (self.status or {}).get("models", [])]


def observe(testnet: Testnet) -> list[NodeView]:
    views = []
    for node in testnet.nodes:
        running = node.running()
        views.append(NodeView(node, running, _status(node) if running else None))
    return views


@dataclass(frozen=True)
class Progress:
    healthy: int
    registered: int
    converged: int
    total: int
    elapsed_s: float

    @property
    def whole(self) -> bool:
        return self.registered == self.converged == self.total


def ready(views: list[NodeView], elapsed_s: float) -> Progress:
    """Healthy: answers its API. Registered: sees every node in the registry, under a leader,
    with Raft's configuration settled (a federation paused mid-change would resume
    leaderless). Converged: gossip shows every other node alive."""
    total = len(views)
    return Progress(
        healthy=sum(v.healthy for v in views),
        registered=sum(
            v.healthy and v.members == total and bool(v.leader) and v.settled for v in views
        ),
        converged=sum(v.healthy and v.alive_peers == total - 1 for v in views),
        total=total,
        elapsed_s=elapsed_s,
    )


def up(
    testnet: Testnet,
    on_progress: Callable[[Progress], None],
    timeout_s: float = READY_TIMEOUT_S,
    on_step: Callable[[str], None] = lambda step: None,
) -> float:
    """Start the chain (deploying the contracts the first time) and every node that is not
    running, and wait until the federation is whole; seconds taken. A node that exits or a
    federation not whole in time: what this call started is stopped and FpaiError names the
    node and shows the end of its log."""
    started = time.monotonic()
    idle = [n for n in testnet.nodes if not n.running()]
    for node in idle:  # pids of an unclean stop (a reboot, kill -9) are history
        node.pid = None
    check_ports(idle)
    chain = testnet.chain
    chain_started = chain is not None and not chain.running()
    if chain is not None and chain_started:
        chain.pid = None
        check_port("chain", "RPC", chain.port)
        on_step("starting the chain (anvil)")
        chain.start()
        testnet.save()
        try:
            chain.deploy([n.home for n in testnet.nodes], on_step)
        except BaseException:
            chain.stop()
            testnet.save()
            raise
    first = testnet.nodes[0]
    # A new federation's first node creates its registry, and the others join through it. Once
    # it has one, every node resumes from its own home: none waits for another to be up first.
    creating = first in idle and read_hint(Home(first.home).registry_dir) is None
    launched: list[TestnetNode] = []
    try:
        if creating:
            launch(first, None)
            launched.append(first)
            testnet.save()
            _wait(testnet, started, timeout_s, on_progress, lambda views: views[0].healthy)
        for node in idle[1:] if creating else idle:
            launch(node, None if node is first else first.peer)
            launched.append(node)
        testnet.save()
        _wait(testnet, started, timeout_s, on_progress, lambda views: ready(views, 0).whole)
    except BaseException:
        stop(launched)
        if chain is not None and chain_started:
            chain.stop()
        testnet.save()
        raise
    return time.monotonic() - started


def _wait(
    testnet: Testnet,
    started: float,
    timeout_s: float,
    on_progress: Callable[[Progress], None],
    done: Callable[[list[NodeView]], bool],
) -> None:
    """Poll every node's status (once a round) until `done`; fail on an exit or the timeout."""
    while True:
        for node in testnet.nodes:
            if node.pid is not None and not node.running():
                raise FpaiError(
                    f"{node.name} exited during start-up; the end of {node.log_path}:\n"
                    f"{node.log_tail()}"
                )
        views = observe(testnet)
        progress = ready(views, time.monotonic() - started)
        on_progress(progress)
        if done(views):
            return
        if progress.elapsed_s > timeout_s:
            laggard = next(
                (v.node for v in views if v.alive_peers != len(views) - 1), testnet.nodes[0]
            )
            raise FpaiError(
                f"the testnet is not whole after {timeout_s:.0f} s ({progress.registered}/"
                f"{progress.total} registered, {progress.converged}/{progress.total} see every "
                f"peer); the end of {laggard.name}'s log:\n{laggard.log_tail()}"
            )
        time.sleep(0.25)


def stop(nodes: list[TestnetNode], timeout_s: float = STOP_TIMEOUT_S) -> list[str]:
    """Stop the running nodes with SIGUSR1: a pause that keeps each node's registry membership,
    so the federation resumes whole (SIGTERM would make each leave, and the last ones cannot).
    SIGKILL any that outstay `timeout_s`. Returns the names of the nodes that had to be killed."""
    running = [n for n in reversed(nodes) if n.running()]
    for node in running:
        assert node.pid is not None
        with contextlib.suppress(ProcessLookupError):  # it may exit between check and signal
            os.kill(node.pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout_s
    while any(n.running() for n in running) and time.monotonic() < deadline:
        time.sleep(0.1)
    killed = []
    for node in running:
        if node.running():
            assert node.pid is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(node.pid, signal.SIGKILL)
            killed.append(node.name)
    for node in nodes:
        node.pid = None
    return killed


def _status(node: TestnetNode) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(node.api_url + "/fpai/v1/status", timeout=2) as response:  # noqa: S310
            data = json.loads(response.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
