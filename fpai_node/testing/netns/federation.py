"""A private federation (preset `federation`, its own CA) with one node per host, started and
restarted in the hosts' namespaces as testnet/private-federation.md describes."""

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog

from fpai_node.identity import NodeKey
from fpai_node.testing.netns import api_client
from fpai_node.testing.netns.api_client import Answer
from fpai_node.testing.netns.hosts import Host, Testbed
from fpai_node.testing.netns.waiting import require
from fpai_node.testing.nodeproc import fpai_node_command, run_cli

log = structlog.get_logger(__name__)

API_PORT = 8100  # the documented defaults: each host has its own address, so no port clashes
PEER_PORT = 7100
MODEL_ID = "gemma-3-270m"  # the id the model nodes serve the bundled GGUF under
START_TIMEOUT_S = 90.0  # import, key, TLS, Raft log replay and a 253 MB model load on 2 cores
FORMED_TIMEOUT_S = 120.0  # joins are one at a time; five voters with a model take about a minute
STOP_TIMEOUT_S = 10.0  # a graceful stop leaves the registry; past this it is killed
STATUS_TIMEOUT_S = 2.0  # a status answer is local; a node that takes longer is paused or busy


class NetnsNode:
    """`ip netns exec NAMESPACE fpai-node start ...` for one host, killed, paused and started
    again with the same home and arguments. The node runs in its own session, so signals reach
    it (and anything it spawns) as one process group."""

    def __init__(self, host: Host, home: Path, args: tuple[str, ...], api_key: str) -> None:
        self.host = host
        self.home = home
        self.args = args
        self.api_key = api_key
        self.log_path = home.parent / f"{host.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.node_id = NodeKey.load(home / "keys" / "node.key").node_id

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def api(self) -> str:
        return f"{self.host.address}:{API_PORT}"

    @property
    def peer(self) -> str:
        return f"{self.host.address}:{PEER_PORT}"

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        command = [
            "ip", "netns", "exec", self.host.namespace, *fpai_node_command(), "start",
            "--home", str(self.home), "--preset", "federation", "--log-format", "json",
            "--api", self.api, "--peer", self.peer, *self.args,
        ]  # fmt: skip
        with self.log_path.open("ab") as output:
            self.process = subprocess.Popen(  # noqa: S603 (ip and our own console script)
                command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        log.info("node starting", node=self.name, pid=self.process.pid)
        try:
            require(self._healthy, timeout_s, f"{self.name} healthy")
        except BaseException:
            self.kill()
            raise

    def _healthy(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
        return self.request("GET", "/healthz", timeout_s=STATUS_TIMEOUT_S).ok

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.running():
            assert self.process is not None
            os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL, as a power cut would (a stopped node dies too)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(STOP_TIMEOUT_S)

    def stop(self) -> None:
        """A graceful stop (SIGTERM, as Ctrl-C), then SIGKILL if it overstays."""
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        if self.process is not None:
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()

    def paused(self) -> bool:
        """Whether the kernel shows the node stopped (state T in /proc/PID/stat)."""
        if not self.running():
            return False
        assert self.process is not None
        try:
            stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] == "T"

    def request(self, method: str, path: str, body: Any = None, timeout_s: float = 10.0) -> Answer:
        return api_client.request(self.api, method, path, body, self.api_key, timeout_s)

    def status(self) -> dict[str, Any] | None:
        """GET /fpai/v1/status, or None when the node does not answer in time."""
        answer = self.request("GET", "/fpai/v1/status", timeout_s=STATUS_TIMEOUT_S)
        return answer.body if answer.ok and isinstance(answer.body, dict) else None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _cli(*args: str) -> None:
    done = run_cli(*args, timeout_s=60)
    if done.returncode != 0:
        raise RuntimeError(f"fpai-node {' '.join(args)}: {done.stderr.strip()}")


def prepare_homes(root: Path, hosts: tuple[Host, ...], api_key: str) -> list[Path]:
    """The recipe's steps 2-4: a CA, a node key per host, a certificate each, the CA
    certificate, and an API key in node.toml (kept off the command line, as the recipe says)."""
    ca = root / "ca"
    _cli("federation", "create", "--dir", str(ca), "--name", "Fault campaign CA")
    homes = []
    for host in hosts:
        home = root / host.name
        _cli("init", "--home", str(home), "--preset", "federation")
        (home / "certs").mkdir(mode=0o700, exist_ok=True)
        _cli(
            "federation", "issue", "--ca-dir", str(ca), "--home", str(home),
            "--out", str(home / "certs" / "node.crt"),
        )  # fmt: skip
        shutil.copy(ca / "ca.crt", home / "certs" / "ca.crt")
        with (home / "node.toml").open("a") as config:
            config.write(f'\napi_keys = ["{api_key}"]\n')
        homes.append(home)
    return homes


def new_api_key() -> str:
    return secrets.token_hex(32)


def node_arguments(
    index: int, testbed: Testbed, model: Path | None, model_nodes: int
) -> tuple[str, ...]:
    """Host 0 creates the registry; the others join every host started before them. Every
    node votes (`--registry-voters N`), so a split is a split of the voters too. The first
    `model_nodes` hosts serve the bundled model, the others are gateways."""
    size = len(testbed.hosts)
    serve = ("--model", f"{model}={MODEL_ID}") if model and index < model_nodes else ("--no-model",)
    joins = [arg for h in testbed.hosts[:index] for arg in ("--join", f"{h.address}:{PEER_PORT}")]
    return ("--registry-voters", str(size), *serve, *joins)


def registry_running(node: NetnsNode) -> bool:
    status = node.status()
    return bool(status and status["registry"]["phase"] == "running")


def formed(nodes: list[NetnsNode]) -> bool:
    """Every node a voter in a configuration of all nodes, and every peer alive in gossip."""
    ids = {n.node_id for n in nodes}
    for node in nodes:
        status = node.status()
        if status is None:
            return False
        registry = status["registry"]
        if registry["role"] != "voter" or set(registry["configuration"]) != ids:
            return False
        if alive_peers(status) != ids - {node.node_id}:
            return False
    return True


def alive_peers(status: dict[str, Any]) -> set[str]:
    return {p["node_id"] for p in status["peers"] if p.get("state") == "alive"}


@contextlib.contextmanager
def running_federation(
    testbed: Testbed, root: Path, model: Path | None, model_nodes: int
) -> Iterator[list[NetnsNode]]:
    """Start every host's node, one after the other, and wait until the federation is whole;
    every node is killed on the way out, whatever happened."""
    api_key = new_api_key()
    homes = prepare_homes(root, testbed.hosts, api_key)
    nodes = [
        NetnsNode(host, home, node_arguments(host.index, testbed, model, model_nodes), api_key)
        for host, home in zip(testbed.hosts, homes, strict=True)
    ]
    try:
        for node in nodes:
            node.start()
            if node is nodes[0]:
                require(lambda: registry_running(nodes[0]), START_TIMEOUT_S, "registry created")
        require(lambda: formed(nodes), FORMED_TIMEOUT_S, "federation formed")
        log.info("federation formed", nodes=[n.name for n in nodes])
        yield nodes
    finally:
        for node in nodes:
            node.kill()
