"""Run a real `fpai-node start` process for tests: bounded waits, guaranteed clean-up."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from prometheus_client.parser import text_string_to_metric_families

from fpai_node.home import Home
from fpai_node.identity import NodeKey

# Test nodes take any free peer port unless a test says otherwise, so that they never collide
# with each other or with a node the developer runs on the default 7100.
TEST_ENV = {"FPAI_PEER": "127.0.0.1:0"}


def fpai_node_command() -> list[str]:
    """The installed console script next to this interpreter, as a user would run it."""
    script = Path(sys.executable).with_name("fpai-node")
    return [str(script)] if script.exists() else [sys.executable, "-m", "fpai_node"]


def run_cli(*args: str, timeout_s: float = 30.0, env: dict[str, str] | None = None) -> Any:
    """Run one `fpai-node` command to completion and return the CompletedProcess."""
    return subprocess.run(  # noqa: S603 (our own console script)
        [*fpai_node_command(), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, **TEST_ENV, **(env or {})},
        check=False,
    )


def wait_for(check: Callable[[], Any], timeout_s: float = 30.0, every_s: float = 0.1) -> Any:
    """Poll `check` until it returns something truthy (returned), or fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every_s)
    raise AssertionError(f"condition not met within {timeout_s} s")


async def until(
    check: Callable[[], object], timeout_s: float = 10.0, every_s: float = 0.02
) -> None:
    """`wait_for` on an event loop: poll `check`, sleeping between (so the loop runs), until it
    holds, or fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(every_s)


class OpenStream:
    """A streaming response being read from a raw connection (bytes as they came, chunked)."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.received = b""

    def read(self) -> bool:
        """Read what is there; False once the node has closed the connection."""
        chunk = self.conn.recv(4096)
        self.received += chunk
        return bool(chunk)

    def read_to_end(self) -> bytes:
        while self.read():
            pass
        return self.received


class NodeProcess:
    """`fpai-node start --home HOME --api 127.0.0.1:0 ...`; the node's real port is read from the
    api.json it writes, so parallel tests never race for a port."""

    def __init__(
        self,
        home: Path,
        *args: str,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
    ) -> None:
        """`command` runs instead of `fpai-node` (a liar: fpai_node/testing/liar.py)."""
        self.home = Home(home)
        self.args = args
        self.command = command or fpai_node_command()
        self.env = {**os.environ, **TEST_ENV, **(env or {})}
        self.log_path = home.parent / f"{home.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout_s: float = 30.0) -> Self:
        return self.launch().wait_started(timeout_s)

    def launch(self) -> Self:
        """Start the process and return at once (`wait_started` waits for its API): nodes
        launched together start in parallel."""
        self.home.api_file.unlink(missing_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 (our own console script)
                [
                    *self.command,
                    "start",
                    "--home",
                    str(self.home.root),
                    "--log-format",
                    "json",
                    *self.args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        return self

    def wait_started(self, timeout_s: float = 30.0) -> Self:
        """Until the launched node answers /healthz; fails if it exits or overstays."""
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"node exited with {self.process.returncode}:\n{self.log()}")
            url = self.home.read_api_url()
            if url and self._healthy(url):
                self.url = url
                return self
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"node not healthy after {timeout_s} s:\n{self.log()}")

    @staticmethod
    def _healthy(url: str) -> bool:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as r:  # noqa: S310
                return bool(r.status == 200)
        except OSError:
            return False

    @property
    def node_id(self) -> str:
        """The node's id, from the key in its home: no request to the node needed."""
        return NodeKey.load(self.home.key_file).node_id

    def peers(self) -> dict[str, dict[str, Any]]:
        """The other nodes this node's gossip holds, by node id (its status `peers`)."""
        return {p["node_id"]: p for p in self.get_json("/fpai/v1/status")["peers"]}

    @property
    def peer(self) -> str:
        """The peer channel's HOST:PORT, as the node wrote it at start."""
        address = self.home.read_peer_address()
        assert address, "the node has not written its peer address"
        return address

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample of the node's /metrics (e.g. `fpai_peers`, state="alive"), or None."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as r:  # noqa: S310
            text = r.read().decode()
        wanted = labels.items()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels.items() == wanted:
                    return float(sample.value)
        return None

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as r:  # noqa: S310
            return json.loads(r.read())

    @contextmanager
    def streaming(self, path: str, body: dict[str, Any], events: int = 1) -> Iterator["OpenStream"]:
        """Hold a streaming request open until the block ends, then leave without reading on,
        as a client that disconnects would. Yields once `events` SSE events have arrived."""
        data = json.dumps({**body, "stream": True}).encode()
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as conn:
            conn.sendall(
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                + data
            )
            stream = OpenStream(conn)
            while stream.received.count(b"data: ") < events:
                if not stream.read():
                    raise ConnectionError(
                        f"the node closed the stream early: {stream.received[-300:]!r}"
                    )
            yield stream

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> int:
        """Signal the node and wait for it; kill it if it overstays. Returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()
