"""Delay and loss without netem: a userspace relay between TUN devices, one per namespace.

For the slow-network fault, each host's routes to its peers go through its TUN device instead of
the bridge (same addresses, so open TCP connections carry on). The relay, in the root
namespace, holds every TUN file descriptor (each opened from inside its namespace, see
`open_tun`), reads each IPv4 packet, drops it with probability LOSS, and writes it to the
destination host's TUN device after DELAY: netem's `delay D loss L` on every link, in Python.

Run as its own process (`python -m fpai_node.testing.netns.tun_relay`) so that a hang or crash
cannot take the campaign with it; `SlowNetwork` starts it, routes through it, and stops it.
"""

import argparse
import collections
import ctypes
import fcntl
import json
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from types import TracebackType

import structlog

from fpai_node.testing.netns.commands import ip
from fpai_node.testing.netns.hosts import Host
from fpai_node.testing.netns.namespaces import OWN_NAMESPACE, enter, setns

log = structlog.get_logger(__name__)

TUN_NAME = "fpaitun"  # the device in every namespace (names are per namespace)
TUNSETIFF = 0x400454CA  # <linux/if_tun.h>: _IOW('T', 202, int)
IFF_TUN = 0x0001  # layer 3: IP packets, no Ethernet header
IFF_NO_PI = 0x1000  # no 4-byte packet-information prefix: a read is one bare IP packet
MAX_PACKET = 65_535  # an IPv4 packet's largest size; the devices' MTU keeps them at 1500
READY_TIMEOUT_S = 15.0  # the relay opens a handful of devices: far less than a second
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
STOP_TIMEOUT_S = 10.0  # the relay drains nothing on stop: it exits at its next wake-up


def open_tun(namespace: str) -> int:
    """A TUN device created inside `namespace`: TUNSETIFF makes the device in the namespace of
    the calling thread, so enter it for that call only and come back."""
    home = os.open(OWN_NAMESPACE, os.O_RDONLY)
    try:
        enter(namespace)
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        request = struct.pack("16sH22x", TUN_NAME.encode(), IFF_TUN | IFF_NO_PI)
        fcntl.ioctl(fd, TUNSETIFF, request)
        return fd
    finally:
        setns(home)
        os.close(home)


class Relay:
    """Move packets between TUN devices with a fixed delay and random loss."""

    def __init__(self, fds: dict[bytes, int], delay_s: float, loss: float, seed: int) -> None:
        self.by_address = fds  # packed IPv4 address -> the TUN fd of the host that has it
        self.delay_s = delay_s
        self.loss = loss
        self.random = random.Random(seed)  # noqa: S311 (loss pattern, not a secret)
        # A fixed delay keeps the order: the queue stays sorted by release time.
        self.queue: collections.deque[tuple[float, int, bytes]] = collections.deque()
        self.stats = {"forwarded": 0, "dropped": 0, "unroutable": 0, "max_queue": 0}

    def run(self, wakeup: int) -> None:
        """Until a byte arrives on `wakeup` (a signal's wake-up pipe)."""
        watched = [wakeup, *self.by_address.values()]
        while True:
            timeout = max(0.0, self.queue[0][0] - time.monotonic()) if self.queue else None
            readable, _, _ = select.select(watched, [], [], timeout)
            if wakeup in readable:
                return
            for fd in readable:
                self._take(fd)
            self._release()

    def _take(self, fd: int) -> None:
        while True:
            try:
                packet = os.read(fd, MAX_PACKET)
            except BlockingIOError:
                return
            target = self.by_address.get(packet[16:20]) if packet[:1] == b"\x45" else None
            if target is None:  # IPv6 router solicitations and the like, IPv4 with options
                self.stats["unroutable"] += 1
            elif self.random.random() < self.loss:
                self.stats["dropped"] += 1
            else:
                self.queue.append((time.monotonic() + self.delay_s, target, packet))
                self.stats["max_queue"] = max(self.stats["max_queue"], len(self.queue))

    def _release(self) -> None:
        now = time.monotonic()
        while self.queue and self.queue[0][0] <= now:
            _, target, packet = self.queue.popleft()
            try:
                os.write(target, packet)
                self.stats["forwarded"] += 1
            except BlockingIOError:
                self.stats["dropped"] += 1  # the device's queue is full: a router drops too


def die_with_parent() -> None:
    """SIGTERM when the campaign dies, even by SIGKILL: no relay outlives its campaign."""
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Relay IPv4 between TUN devices in namespaces.")
    parser.add_argument("hosts", nargs="+", metavar="NAMESPACE=ADDRESS")
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--loss", type=float, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    die_with_parent()
    fds = {}
    for spec in args.hosts:
        namespace, address = spec.split("=", 1)
        fds[socket.inet_aton(address)] = open_tun(namespace)
    reader, writer = os.pipe()
    os.set_blocking(writer, False)
    signal.set_wakeup_fd(writer)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)  # the wake-up pipe ends the loop
    relay = Relay(fds, args.delay_ms / 1000, args.loss, args.seed)
    print("ready", flush=True)
    relay.run(reader)
    print(json.dumps(relay.stats), flush=True)
    return 0


class SlowNetwork:
    """Every link between `hosts` through the relay while the block runs, bridge again after:
    `with SlowNetwork(hosts, 0.2, 0.1) as slow: ...`; `slow.stats` once it is over."""

    def __init__(self, hosts: tuple[Host, ...], delay_s: float, loss: float, seed: int) -> None:
        self.hosts = hosts
        self.delay_s = delay_s
        self.loss = loss
        self.seed = seed
        self.process: subprocess.Popen[str] | None = None
        self.stats: dict[str, int] = {}

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 (this interpreter, this module)
            [
                sys.executable, "-m", __name__,
                "--delay-ms", str(self.delay_s * 1000), "--loss", str(self.loss),
                "--seed", str(self.seed),
                *(f"{h.namespace}={h.address}" for h in self.hosts),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            self._await_ready()
            for host in self.hosts:
                ip("link", "set", TUN_NAME, "up", namespace=host.namespace)
                for peer in self.hosts:
                    if peer != host:
                        ip(
                            "route", "replace", f"{peer.address}/32", "dev", TUN_NAME,
                            "src", host.address, namespace=host.namespace,
                        )  # fmt: skip
        except BaseException:
            self.stop()
            raise
        log.info("links slowed", delay_ms=self.delay_s * 1000, loss=self.loss)

    def _await_ready(self) -> None:
        process = self.process
        assert process is not None and process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], READY_TIMEOUT_S)
        line = process.stdout.readline() if ready else ""
        if line.strip() != "ready":
            raise RuntimeError(f"the TUN relay did not start (exit {process.poll()}): {line!r}")

    def stop(self) -> None:
        """Routes back to the bridge first, then the relay stops (its devices go with it)."""
        for host in self.hosts:
            for peer in self.hosts:
                if peer != host:
                    ip(
                        "route", "del", f"{peer.address}/32", "dev", TUN_NAME,
                        namespace=host.namespace, check=False,
                    )  # fmt: skip
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            out, _ = process.communicate(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            out, _ = process.communicate(timeout=STOP_TIMEOUT_S)
        last = out.strip().splitlines()[-1:] if out else []
        try:
            self.stats = json.loads(last[0]) if last else {}
        except ValueError:
            self.stats = {}
        log.info("links restored", relay=self.stats)

    def __enter__(self) -> "SlowNetwork":
        self.start()
        return self

    def __exit__(
        self, exc: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
