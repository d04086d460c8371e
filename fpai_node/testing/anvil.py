"""anvil (Foundry's development chain, from contracts/node_modules) on a free loopback port: the
real EVM node the contract tests and the chain benchmark talk to over HTTP JSON-RPC."""

import contextlib
import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterator

from fpai_node.chain.anvil import DEV_MNEMONIC, anvil_binary
from fpai_node.chain.artifacts import ChainError

LISTENING = re.compile(rb"Listening on (127\.0\.0\.1:\d+)")
# anvil listened within 0.05 s here (measured); a loaded CI machine gets 200 times that.
START_TIMEOUT_S = 10.0


@contextlib.contextmanager
def running_anvil(*, accounts: int = 10, timeout_s: float = START_TIMEOUT_S) -> Iterator[str]:
    """Starts anvil on a port it picks, yields its RPC URL, always stops it."""
    argv = [
        str(anvil_binary()),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--accounts",
        str(accounts),
        "--mnemonic",
        DEV_MNEMONIC,
    ]
    process = subprocess.Popen(  # noqa: S603 (our own binary, fixed arguments)
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    assert process.stdout is not None
    found: list[str] = []
    ready = threading.Event()

    def read() -> None:
        # Read to the end so anvil never blocks on a full pipe; remember the address once.
        assert process.stdout is not None
        for line in process.stdout:
            match = LISTENING.search(line)
            if match and not found:
                found.append(match.group(1).decode())
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, name="anvil-output", daemon=True)
    reader.start()
    try:
        if not ready.wait(timeout_s) or not found:
            raise ChainError(
                f"anvil did not listen within {timeout_s:.0f} s (exit {process.poll()})"
            )
        yield f"http://{found[0]}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        reader.join(timeout=5)
