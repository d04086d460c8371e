"""ManagedServer and VllmBackend with real child processes. There is no GPU here, so the server
they supervise is llama-cpp-python's OpenAI-compatible one on the bundled model."""

import asyncio
import importlib.util
import json
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from structlog.testing import capture_logs

from fpai_node.inference.base import (
    BackendUnavailable,
    ChatMessage,
    ChatRequest,
    Finish,
    ModelCard,
    Sampling,
    TextChunk,
)
from fpai_node.inference.vllm import ManagedServer, VllmBackend, vllm_available, vllm_command
from fpai_node.registry.state import RegistryState
from fpai_node.supervisor.service import Supervisor
from fpai_node.testing.llama_server import MODEL_ID, llama_server_command

pytestmark = pytest.mark.slow


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie nobody reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def wait_until(condition: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def serves_models(url: str) -> bool:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.get(url + "/v1/models") as response,
        ):
            return response.status == 200
    except aiohttp.ClientError:
        return False


def python(code: str) -> Callable[[str, int], list[str]]:
    """A child running `code` with argv[1:] = host, port."""
    return lambda host, port: [sys.executable, "-c", code, host, str(port)]


async def test_a_killed_server_is_restarted_and_stop_ends_it(
    gguf_model: Path, tmp_path: Path
) -> None:
    server = ManagedServer(
        llama_server_command(gguf_model),
        name="llama test",
        log_path=tmp_path / "logs" / "server.log",
        health_timeout_s=60,
        backoff_initial_s=0.2,
    )
    await server.start()
    try:
        assert server.healthy
        assert await serves_models(server.url)
        first = server.pid
        assert first is not None
        with capture_logs() as logs:
            os.kill(first, signal.SIGKILL)

            async def restarted() -> bool:
                return server.restarts == 1 and server.healthy and server.pid != first

            await wait_until(restarted, timeout_s=60)
        assert await serves_models(server.url)
        events = [entry["event"] for entry in logs]
        assert "server exited; restarting" in events
        assert "server restarted" in events
        exited = next(e for e in logs if e["event"] == "server exited; restarting")
        assert exited["code"] == -signal.SIGKILL
    finally:
        second = server.pid
        await server.stop()
    assert second is not None
    assert not alive(first)
    assert not alive(second)
    assert server.pid is None
    assert not server.healthy
    assert not await serves_models(server.url)
    assert server.log_path.read_text().count("--- fpai-node: starting llama test") == 2
    await server.stop()  # idempotent


async def test_a_child_that_exits_at_once_fails_start_with_its_last_log_line(
    tmp_path: Path,
) -> None:
    server = ManagedServer(
        python("print('loading weights'); print('fatal: no weights at /nope'); exit(3)"),
        name="doomed",
        log_path=tmp_path / "doomed.log",
        health_timeout_s=30,
    )
    with pytest.raises(BackendUnavailable) as caught:
        await server.start()
    message = str(caught.value)
    assert "doomed exited with code 3 before it was healthy" in message
    assert message.endswith("fatal: no weights at /nope")
    assert "\n" not in message


async def test_a_child_that_never_gets_healthy_is_killed_after_the_deadline(
    tmp_path: Path,
) -> None:
    server = ManagedServer(
        python("import os, time; print('loading, pid', os.getpid()); time.sleep(60)"),
        name="slow",
        log_path=tmp_path / "slow.log",
        health_timeout_s=1.0,
        progress_every_s=0.2,
    )
    started = time.monotonic()
    with capture_logs() as logs, pytest.raises(BackendUnavailable) as caught:
        await server.start()
    assert time.monotonic() - started < 15
    assert "slow not healthy" in str(caught.value)
    assert "loading, pid" in str(caught.value)
    assert any(entry["event"] == "waiting for server" for entry in logs)
    match = re.search(r"loading, pid (\d+)", server.log_path.read_text())
    assert match
    assert not alive(int(match.group(1)))


SERVE_MODELS = """
import http.server, json, sys

class Models(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"object": "list", "data": []}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), Models).serve_forever()
"""

GRANDPARENT = (
    """
import subprocess, sys
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
print("grandchild", grandchild.pid, flush=True)
"""
    + SERVE_MODELS
)

# Launches 2 and 3 fail at once; the others serve.
FLAKY = (
    """
import pathlib, sys
counter = pathlib.Path(sys.argv[3])
launch = int(counter.read_text() if counter.exists() else 0) + 1
counter.write_text(str(launch))
if launch in (2, 3):
    sys.exit(f"launch {launch} fails")
"""
    + SERVE_MODELS
)


async def test_a_port_someone_else_listens_on_is_refused(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        server = ManagedServer(
            python(SERVE_MODELS),
            name="late",
            log_path=tmp_path / "late.log",
            port=other.getsockname()[1],
        )
        with pytest.raises(BackendUnavailable, match="something already listens on"):
            await server.start()
    assert server.pid is None


async def test_stop_also_ends_the_processes_the_child_started(tmp_path: Path) -> None:
    server = ManagedServer(
        python(GRANDPARENT), name="parent", log_path=tmp_path / "parent.log", stop_grace_s=5
    )
    await server.start()
    try:
        match = re.search(r"grandchild (\d+)", server.log_path.read_text())
        assert match
        grandchild = int(match.group(1))
        assert alive(grandchild)
    finally:
        await server.stop()

    async def grandchild_gone() -> bool:
        return not alive(grandchild)

    # stop() SIGKILLs the group and returns; the kernel ends a killed process when it next runs
    # it, which on a busy machine can be a few milliseconds later (the grandchild sleeps 300 s).
    await wait_until(grandchild_gone, timeout_s=5.0)


async def test_restarts_back_off_and_the_backoff_resets_after_a_healthy_run(
    tmp_path: Path,
) -> None:
    counter = tmp_path / "launches"
    server = ManagedServer(
        lambda host, port: [sys.executable, "-c", FLAKY, host, str(port), str(counter)],
        name="flaky",
        log_path=tmp_path / "flaky.log",
        backoff_initial_s=0.05,
        backoff_max_s=0.3,
        stable_after_s=0,  # every healthy run counts as stable
    )
    await server.start()
    try:
        with capture_logs() as logs:
            for launches in (4, 5):
                pid = server.pid
                assert pid is not None
                os.kill(pid, signal.SIGKILL)

                async def back(launches: int = launches) -> bool:
                    return server.restarts == launches - 1 and server.healthy

                await wait_until(back, timeout_s=30)
    finally:
        await server.stop()
    exits = [e["restart_in_s"] for e in logs if e["event"] == "server exited; restarting"]
    failures = [e for e in logs if e["event"] == "server restart failed"]
    assert exits == [0.05, 0.05]  # the second crash follows a healthy run: back to the start
    assert [e["retry_in_s"] for e in failures] == [0.1, 0.2]
    assert "launch 3 fails" in failures[1]["error"]


async def test_vllm_backend_serves_through_the_upstream_path(
    gguf_model: Path, tmp_path: Path
) -> None:
    backend = VllmBackend(
        "google/gemma-3-270m",
        model_id=MODEL_ID,
        log_path=tmp_path / "vllm.log",
        command_factory=llama_server_command(gguf_model),
        health_timeout_s=60,
    )
    await backend.start()
    try:
        assert backend.models() == [ModelCard(MODEL_ID, "vllm", context_length=None, capacity=16)]
        request = ChatRequest(MODEL_ID, (ChatMessage("user", "Hello"),), Sampling(max_tokens=4))
        events = [event async for event in backend.chat(request)]
        assert all(isinstance(event, TextChunk) for event in events[:-1])
        assert isinstance(events[-1], Finish)
        assert 0 < events[-1].usage.completion_tokens <= 4
        pid = backend.server.pid
        assert pid is not None
    finally:
        await backend.close()
    assert not alive(pid)
    await backend.close()


def test_vllm_is_reported_unavailable_here() -> None:
    reason = vllm_available()
    assert reason is not None
    if importlib.util.find_spec("vllm") is None:
        assert "pip install 'fpai-node[vllm]'" in reason
    else:
        assert "NVIDIA GPU" in reason


async def test_vllm_backend_without_vllm_says_why_and_starts_nothing(tmp_path: Path) -> None:
    backend = VllmBackend("google/gemma-3-270m", log_path=tmp_path / "vllm.log")
    with pytest.raises(BackendUnavailable, match="cannot serve google/gemma-3-270m with vLLM"):
        await backend.start()
    assert backend.server.pid is None
    assert not backend.server.log_path.exists()
    await backend.close()


def gated_server(name: str, supervisor: Supervisor, tmp_path: Path) -> ManagedServer:
    return ManagedServer(
        python(SERVE_MODELS),
        name=name,
        log_path=tmp_path / f"{name}.log",
        backoff_initial_s=0.05,
        gate=supervisor,
    )


async def test_a_supervised_restart_waits_for_approval_and_is_recorded(tmp_path: Path) -> None:
    """The supervisor's gate (autonomy supervised): a crashed server stays down, its restart a
    pending action, until an operator approves; then it restarts and the action is done. In
    autonomous mode the restart happens at once and is recorded the same way."""
    supervisor = Supervisor("supervised", tmp_path / "supervisor", RegistryState)
    server = gated_server("gated", supervisor, tmp_path)
    await server.start()
    try:
        pid = server.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)

        async def pending() -> bool:
            return [a.state for a in supervisor.actions()] == ["pending"]

        await wait_until(pending, timeout_s=10)
        [action] = supervisor.actions()
        assert (action.kind, action.subject) == ("restart_backend", "gated")
        assert action.summary == "restart gated, which exited with code -9"
        await asyncio.sleep(1.5)  # several of the gate's polls: still down, nothing launched
        assert server.pid is None and server.restarts == 0 and not server.healthy
        supervisor.decide(action.id, approve=True)

        async def restarted() -> bool:
            return server.healthy and supervisor.actions()[0].state == "done"

        await wait_until(restarted, timeout_s=20)
        done = supervisor.actions()[0]
        assert done.attempts == 1 and (done.outcome or "").startswith("restarted, healthy after")
        assert server.restarts == 1
    finally:
        await server.stop()

    autonomous = Supervisor("autonomous", tmp_path / "autonomous", RegistryState)
    server = gated_server("free", autonomous, tmp_path)
    await server.start()
    try:
        os.kill(server.pid or 0, signal.SIGKILL)

        async def recorded() -> bool:
            return server.restarts == 1 and server.healthy and bool(autonomous.actions())

        await wait_until(recorded, timeout_s=20)
        assert [(a.kind, a.state) for a in autonomous.actions()] == [("restart_backend", "done")]
    finally:
        await server.stop()


# vLLM's own entry point, faked: the module `vllm_command` names, parsing its flags the way
# vLLM's parser does (an unknown flag is an error), recording what it was given and serving the
# two routes ManagedServer and UpstreamBackend ask for.
FAKE_API_SERVER = """
import argparse, http.server, json, os, sys

parser = argparse.ArgumentParser()
for flag in ("--model", "--served-model-name", "--host", "--port", "--max-model-len"):
    parser.add_argument(flag, required=True)
args = parser.parse_args()
with open(os.environ["FAKE_VLLM_RECORD"], "w") as record:
    json.dump({"module": __spec__.name, "python": sys.executable, "argv": sys.argv[1:]}, record)

class Server(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        model = {"id": args.served_model_name, "max_model_len": int(args.max_model_len)}
        body = json.dumps({"object": "list", "data": [model]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

http.server.HTTPServer((args.host, int(args.port)), Server).serve_forever()
"""


def test_vllm_command_is_the_openai_server_module_with_model_name_and_address() -> None:
    command = vllm_command("google/gemma-3-270m", "gemma", ["--max-model-len", "2048"])
    assert command("127.0.0.1", 8123) == [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        "google/gemma-3-270m",
        "--served-model-name",
        "gemma",
        "--host",
        "127.0.0.1",
        "--port",
        "8123",
        "--max-model-len",
        "2048",
    ]


async def test_vllm_backend_launches_vllm_with_that_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole default path, with vLLM and the GPU faked where the backend looks for them: a
    `vllm` package on the import path (this process's and the child's) and an `nvidia-smi` on
    PATH. The fake server receives exactly the command line `vllm_command` builds."""
    fake = tmp_path / "fake"
    server_module = fake / "vllm" / "entrypoints" / "openai" / "api_server.py"
    server_module.parent.mkdir(parents=True)
    for package in (fake / "vllm", fake / "vllm" / "entrypoints", server_module.parent):
        (package / "__init__.py").write_text("")
    server_module.write_text(FAKE_API_SERVER)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    record = tmp_path / "argv.json"
    monkeypatch.syspath_prepend(str(fake))
    monkeypatch.setenv("PYTHONPATH", str(fake))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_VLLM_RECORD", str(record))
    assert vllm_available() is None

    backend = VllmBackend(
        "google/gemma-3-270m",
        model_id="gemma",
        extra_args=["--max-model-len", "2048"],
        log_path=tmp_path / "vllm.log",
        health_timeout_s=30,
    )
    await backend.start()
    try:
        assert backend.models() == [ModelCard("gemma", "vllm", context_length=2048, capacity=16)]
        port = int(backend.server.url.rsplit(":", 1)[1])
        launched = json.loads(record.read_text())
        assert launched == {
            "module": "vllm.entrypoints.openai.api_server",
            "python": sys.executable,
            "argv": vllm_command("google/gemma-3-270m", "gemma", ["--max-model-len", "2048"])(
                "127.0.0.1", port
            )[3:],
        }
        assert launched["argv"][:4] == [
            "--model",
            "google/gemma-3-270m",
            "--served-model-name",
            "gemma",
        ]
    finally:
        await backend.close()
