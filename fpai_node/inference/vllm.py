"""GPU serving with vLLM: a supervised child process speaking the OpenAI API, used through
`UpstreamBackend`.

vLLM is never imported here (it pulls CUDA and takes seconds to import): it runs in its own
process, and `vllm_available()` only looks for it. `ManagedServer` supervises any
OpenAI-compatible server the same way, which is how the tests run it without a GPU.
"""

import asyncio
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from pathlib import Path

import aiohttp
import structlog

from fpai_node.inference.base import (
    BackendUnavailable,
    ChatRequest,
    CompletionRequest,
    Embeddings,
    GenerationEvent,
    ModelCard,
)
from fpai_node.inference.upstream import UpstreamBackend
from fpai_node.service import ActionGate, Unsupervised

log = structlog.get_logger("fpai.inference.vllm")
RESTART_BACKEND = "restart_backend"  # the kind of repair a crashed server's restart is
GATE_POLL_S = 1.0  # a restart waiting for approval starts within a second of it

ServerCommand = Callable[[str, int], Sequence[str]]
"""Builds the child's argv from the host and port it must listen on."""

_TAIL_LINES = 5


def free_loopback_port() -> int:
    """A port the kernel just found free on 127.0.0.1 (free now, not reserved)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def vllm_available() -> str | None:
    """None when vLLM can run here, else one line saying why not."""
    if importlib.util.find_spec("vllm") is None:
        return (
            "vLLM is not installed: run pip install 'fpai-node[vllm]' on a machine with an "
            "NVIDIA GPU"
        )
    if not Path("/dev/nvidiactl").exists() and shutil.which("nvidia-smi") is None:
        return "vLLM needs an NVIDIA GPU and none was found (no /dev/nvidiactl, no nvidia-smi)"
    return None


class ManagedServer:
    """Runs an OpenAI-compatible server as a child process and keeps it running.

    The child gets its own process group, so stopping it also stops the workers it spawned.
    `start` returns once the server answers `/health` (a 404 there is accepted: llama-cpp-python
    has no such route) and then `/v1/models`. A crash afterwards is followed by a restart after
    an exponential backoff, reset once a run has stayed healthy for `stable_after_s`.
    """

    def __init__(
        self,
        command: ServerCommand,
        *,
        name: str,
        log_path: Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        health_timeout_s: float = 600.0,  # vLLM: weights download/load and CUDA graph capture
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,  # a broken GPU or config retried once a minute, not hot
        stable_after_s: float = 120.0,  # beyond the max backoff: a crash loop never resets it
        stop_grace_s: float = 10.0,  # vLLM frees GPU memory on SIGTERM; give it time
        progress_every_s: float = 5.0,
        gate: ActionGate | None = None,
    ) -> None:
        """`gate`: asked before each restart (the supervisor's autonomy); None restarts always."""
        self.name = name
        self.log_path = log_path
        self.host = host
        self.port = port if port is not None else free_loopback_port()
        self._command = command
        # Unbuffered so the log's last lines are there when the child dies (Python servers).
        self._env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self._health_timeout_s = health_timeout_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._stable_after_s = stable_after_s
        self._stop_grace_s = stop_grace_s
        self._progress_every_s = progress_every_s
        self._proc: asyncio.subprocess.Process | None = None
        self._probe_session: aiohttp.ClientSession | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._healthy_since: float | None = None
        self._gate: ActionGate = gate or Unsupervised()
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The current child's pid while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    @property
    def healthy(self) -> bool:
        """Running and found healthy since its last (re)start."""
        return self._healthy_since is not None and self.pid is not None

    async def start(self) -> None:
        if self._supervisor is not None:
            return
        self._probe_session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        try:
            await self._launch()
            await self._wait_healthy()
        except BaseException:
            await self.stop()
            raise
        self._healthy_since = time.monotonic()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"supervise {self.name}")

    async def stop(self) -> None:
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        await self._terminate()
        self._healthy_since = None
        session, self._probe_session = self._probe_session, None
        if session is not None:
            await session.close()

    async def _launch(self) -> None:
        argv = [str(arg) for arg in self._command(self.host, self.port)]
        if _listening(self.host, self.port):
            # Else the health probe would find that other server and call ours healthy.
            raise BackendUnavailable(
                f"cannot start {self.name}: something already listens on {self.url}"
            )
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("ab") as out:
                out.write(f"--- fpai-node: starting {self.name}: {' '.join(argv)}\n".encode())
                out.flush()
                self._proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    env=self._env,
                    start_new_session=True,  # own process group: killpg reaches grandchildren
                )
        except OSError as e:
            raise BackendUnavailable(f"cannot run {self.name} ({argv[0]}): {e}") from e
        log.info("server started", server=self.name, pid=self._proc.pid, url=self.url)

    async def _wait_healthy(self) -> None:
        proc = self._proc
        assert proc is not None
        started = time.monotonic()
        next_progress = started + self._progress_every_s
        while True:
            if proc.returncode is not None:
                _kill_group(proc.pid)  # workers it left behind; its group id is still ours
                raise BackendUnavailable(
                    f"{self.name} exited with code {proc.returncode} before it was healthy; "
                    f"{self._tail()}"
                )
            if await self._probe():
                log.info(
                    "server healthy",
                    server=self.name,
                    url=self.url,
                    after_s=round(time.monotonic() - started, 1),
                )
                return
            now = time.monotonic()
            if now - started >= self._health_timeout_s:
                raise BackendUnavailable(
                    f"{self.name} not healthy at {self.url} after {self._health_timeout_s:g} s; "
                    f"{self._tail()}"
                )
            if now >= next_progress:
                next_progress = now + self._progress_every_s
                log.info(
                    "waiting for server",
                    server=self.name,
                    url=self.url,
                    waited_s=round(now - started),
                    timeout_s=self._health_timeout_s,
                    log_file=str(self.log_path),
                )
            await asyncio.sleep(0.2)

    async def _probe(self) -> bool:
        session = self._probe_session
        assert session is not None
        try:
            async with session.get(self.url + "/health") as response:
                if response.status not in (200, 404):
                    return False
            async with session.get(self.url + "/v1/models") as response:
                payload = await response.json(content_type=None)
                return response.status == 200 and isinstance(payload.get("data"), list)
        except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError):
            return False

    async def _supervise(self) -> None:
        backoff = self._backoff_initial_s
        while True:
            proc = self._proc
            assert proc is not None
            code = await proc.wait()
            _kill_group(proc.pid)  # workers the child left behind
            if (
                self._healthy_since is not None
                and time.monotonic() - self._healthy_since >= self._stable_after_s
            ):
                backoff = self._backoff_initial_s
            self._healthy_since = None
            log.warning(
                "server exited; restarting",
                server=self.name,
                code=code,
                restart_in_s=backoff,
                last_lines=self._tail(),
            )
            key = f"{RESTART_BACKEND}:{self.name}"
            while self._healthy_since is None:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._backoff_max_s)
                await self._allowed(key, code)
                self.restarts += 1
                started = time.monotonic()
                try:
                    await self._launch()
                    await self._wait_healthy()
                except BackendUnavailable as e:
                    log.error(
                        "server restart failed", server=self.name, error=str(e), retry_in_s=backoff
                    )
                    await self._terminate()
                    self._gate.failed(key, str(e))
                else:
                    self._healthy_since = time.monotonic()
                    log.info("server restarted", server=self.name, restarts=self.restarts)
                    took = self._healthy_since - started
                    self._gate.succeeded(key, f"restarted, healthy after {took:.1f} s")

    async def _allowed(self, key: str, code: int) -> None:
        """Wait until the supervisor lets this restart happen (at once unless supervised)."""
        summary = f"restart {self.name}, which exited with code {code}"
        while not self._gate.allow(key, RESTART_BACKEND, self.name, summary, reports=True):
            await asyncio.sleep(GATE_POLL_S)

    async def _terminate(self) -> None:
        """SIGTERM to the child's group, SIGKILL after the grace period; then SIGKILL whatever of
        the group is left, right away (a group id is only safe to signal while we know it is
        ours)."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self._stop_grace_s)
        except TimeoutError:
            log.warning("server ignored SIGTERM; killing it", server=self.name, pid=proc.pid)
            _kill_group(proc.pid)
            await proc.wait()
        _kill_group(proc.pid)
        log.info("server stopped", server=self.name, code=proc.returncode)

    def _tail(self) -> str:
        """The child's last log lines, on one line, for an error message."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
                text = f.read().decode(errors="replace")
        except OSError as e:
            return f"its log {self.log_path} is unreadable: {e}"
        lines = [line.strip() for line in text.splitlines() if line.strip()][-_TAIL_LINES:]
        return f"last lines of {self.log_path}: {' | '.join(lines) or '(empty)'}"


def _listening(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _kill_group(pgid: int) -> None:
    _signal_group(pgid, signal.SIGKILL)


def vllm_command(model: str, model_id: str, extra_args: Sequence[str] = ()) -> ServerCommand:
    """vLLM's OpenAI server for one model, run by this interpreter (the venv that has vllm)."""

    def command(host: str, port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            model,
            "--served-model-name",
            model_id,
            "--host",
            host,
            "--port",
            str(port),
            *extra_args,
        ]

    return command


class VllmBackend:
    """One model served by a supervised vLLM process, reached through `UpstreamBackend`.

    `command_factory` replaces the vLLM command (tests run llama-cpp-python's server instead);
    it must serve `model_id`.
    """

    def __init__(
        self,
        model: str,
        *,
        log_path: Path,
        model_id: str | None = None,
        extra_args: Sequence[str] = (),
        port: int | None = None,
        capacity: int = 16,  # vLLM batches continuously; 16 keeps per-request latency steady
        health_timeout_s: float = 600.0,
        command_factory: ServerCommand | None = None,
        gate: ActionGate | None = None,
    ) -> None:
        self.model_id = model_id or model
        self._override = command_factory is not None
        self.server = ManagedServer(
            command_factory or vllm_command(model, self.model_id, extra_args),
            name=f"vllm {self.model_id}",
            log_path=log_path,
            port=port,
            health_timeout_s=health_timeout_s,
            gate=gate,
        )
        self._upstream = UpstreamBackend(
            self.server.url, capacity=capacity, model_ids=[self.model_id], kind="vllm"
        )

    async def start(self) -> None:
        if not self._override and (reason := vllm_available()) is not None:
            raise BackendUnavailable(f"cannot serve {self.model_id} with vLLM: {reason}")
        await self.server.start()
        try:
            await self._upstream.start()
        except BaseException:
            await self.server.stop()
            raise

    async def close(self) -> None:
        await self._upstream.close()
        await self.server.stop()

    def models(self) -> Sequence[ModelCard]:
        return self._upstream.models()

    def chat(self, request: ChatRequest) -> AsyncGenerator[GenerationEvent, None]:
        return self._upstream.chat(request)

    def complete(self, request: CompletionRequest) -> AsyncGenerator[GenerationEvent, None]:
        return self._upstream.complete(request)

    async def embed(self, model: str, inputs: Sequence[str]) -> Embeddings:
        return await self._upstream.embed(model, inputs)
