"""The supervisor's idle CPU: three idle node processes with it, against the same three on the
code before it, and what a dashboard left open adds (issue 19).

    .venv/bin/python benchmarks/supervisor.py [--seconds 20] [--rounds 3] [--baseline 9d1ced4]

Each round starts three `--no-model` nodes of one code tree on 127.0.0.1 (the first
bootstraps the registry, the others join it), waits until they form one federation and a few
seconds more, then reads each process's CPU time (/proc/<pid>/stat, user + system) over
`--seconds` of idleness. Rounds alternate between ours and `--baseline` (checked out in a
temporary git worktree, first on PYTHONPATH) so drift hits both. The difference is what the
supervisor costs an idle node: its round every second (ending quiet actions, writing the
record) and the gate the registry asks. Then, on ours, the same with a dashboard polling one
node as the page does (status, sovereignty and actions every 2 s; treasury and rewards every
10 s), which adds the observer's readings and the JSON.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def get(url: str) -> dict:  # type: ignore[type-arg]
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


class Federation:
    def __init__(self, tree: Path, root: Path) -> None:
        self.tree, self.root = tree, root
        self.processes: list[subprocess.Popen[bytes]] = []
        self.apis: list[str] = []

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(self.tree), "FPAI_LOG_LEVEL": "warning"}
        first_peer = ""
        for i in range(3):
            api, peer, raft = free_port(), free_port(), free_port()
            args = [
                sys.executable, "-m", "fpai_node", "start", "--home", str(self.root / f"n{i}"),
                "--api", f"127.0.0.1:{api}", "--peer", f"127.0.0.1:{peer}",
                "--raft", f"127.0.0.1:{raft}", "--no-model", "--log-format", "json",
            ]  # fmt: skip
            if first_peer:
                args += ["--join", first_peer]
            else:
                first_peer = f"127.0.0.1:{peer}"
            log = (self.root / f"n{i}.log").open("wb")
            self.processes.append(subprocess.Popen(args, env=env, stdout=log, stderr=log))
            self.apis.append(f"http://127.0.0.1:{api}")
            self._wait(lambda api=self.apis[-1]: get(api + "/healthz"))
        self._wait(self._whole, timeout_s=60)

    def _whole(self) -> bool:
        for api in self.apis:
            status = get(api + "/fpai/v1/status")
            alive = sum(p["state"] == "alive" for p in status["peers"])
            if alive != 2 or len(status["registry"]["members"]) != 3:
                return False
        return True

    @staticmethod
    def _wait(check, timeout_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError("the federation did not form")

    def idle_cpu(self, seconds: float) -> list[float]:
        """Each node's CPU over `seconds`, in percent of one core."""
        before = [cpu_s(p.pid) for p in self.processes]
        time.sleep(seconds)  # the measurement is the idleness itself
        after = [cpu_s(p.pid) for p in self.processes]
        return [100 * (a - b) / seconds for a, b in zip(after, before, strict=True)]

    def stop(self) -> None:
        for p in self.processes:
            p.kill()
        for p in self.processes:
            p.wait()


def dashboard(api: str, stop: threading.Event) -> None:
    """What the page asks (fpai_node/api/dashboard/dashboard.js)."""
    rounds = 0
    while not stop.is_set():
        for path in ("/fpai/v1/status", "/fpai/v1/sovereignty", "/fpai/v1/actions"):
            get(api + path)
        if rounds % 5 == 0:
            get(api + "/fpai/v1/rewards")
        rounds += 1
        stop.wait(2.0)


def measure(tree: Path, seconds: float, settle_s: float, polled: bool = False) -> list[float]:
    with tempfile.TemporaryDirectory() as root:
        federation = Federation(tree, Path(root))
        try:
            federation.start()
            time.sleep(settle_s)  # past the start's own work (joins, the first repair round)
            stop = threading.Event()
            poller = threading.Thread(target=dashboard, args=(federation.apis[0], stop))
            if polled:
                poller.start()
            try:
                return federation.idle_cpu(seconds)
            finally:
                stop.set()
                if polled:
                    poller.join()
        finally:
            federation.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--baseline", default="9d1ced4", help="the commit before the supervisor")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as worktree:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", worktree, options.baseline],
            check=True,
            capture_output=True,
        )
        try:
            ours: list[float] = []
            base: list[float] = []
            for r in range(options.rounds):
                for name, tree, into in (("ours", ROOT, ours), ("baseline", Path(worktree), base)):
                    cpu = measure(tree, options.seconds, options.settle)
                    into += cpu
                    print(f"round {r + 1} {name:<8} " + " ".join(f"{c:5.2f}%" for c in cpu))
            polled = measure(ROOT, options.seconds, options.settle, polled=True)
            print("ours with a dashboard on node 0: " + " ".join(f"{c:5.2f}%" for c in polled))
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", worktree],
                check=False,
                capture_output=True,
            )
    mean_ours, mean_base = statistics.mean(ours), statistics.mean(base)
    print()
    print("| idle node, CPU of one core (mean of 3 nodes x rounds) | % |")
    print("| --- | ---: |")
    print(f"| baseline ({options.baseline}, no supervisor) | {mean_base:.2f} |")
    print(f"| ours (supervisor) | {mean_ours:.2f} |")
    print(f"| difference: the supervisor idle | {mean_ours - mean_base:+.2f} |")
    print(f"| ratio ours/baseline | {mean_ours / mean_base:.2f} |")
    print(f"| node 0 with a dashboard open | {polled[0]:.2f} |")


if __name__ == "__main__":
    main()
