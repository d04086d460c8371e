"""llama-cpp-python's OpenAI-compatible server on the bundled model: the real upstream that tests
of `UpstreamBackend` and of the vLLM supervisor talk to (vLLM itself needs a GPU)."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from fpai_node.inference.vllm import ServerCommand, free_loopback_port

MODEL_ID = "gemma-3-270m"
N_CTX = 512  # small: loads fast, and a prompt can overflow it cheaply


def llama_server_command(
    model_path: Path, *, model_id: str = MODEL_ID, embedding: bool = True
) -> ServerCommand:
    def command(host: str, port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model_path),
            "--model_alias",
            model_id,
            "--host",
            host,
            "--port",
            str(port),
            "--n_ctx",
            str(N_CTX),
            "--chat_format",
            "gemma",
            "--n_threads",
            "2",
            "--embedding",
            str(embedding).lower(),
        ]

    return command


@contextlib.contextmanager
def running_llama_server(
    model_path: Path, log_path: Path, *, timeout_s: float = 60.0, embedding: bool = True
) -> Iterator[str]:
    """Start the server, wait until `/v1/models` answers, yield its base URL; always kill it."""
    port = free_loopback_port()
    argv = llama_server_command(model_path, embedding=embedding)("127.0.0.1", port)
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter)
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout_s
        while not _answers(url + "/v1/models"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"llama_cpp.server not up (exit code {process.poll()}):\n"
                    + log_path.read_text(errors="replace")[-3000:]
                )
            time.sleep(0.1)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback http)
            return bool(response.status == 200)
    except OSError:
        return False
