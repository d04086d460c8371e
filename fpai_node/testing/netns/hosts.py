"""N hosts as network namespaces on one bridge, and the removal of what a crashed run left.

Every name starts with PREFIX and carries the id of the process that made it, so a later run
removes exactly the leftovers of runs that are gone and never touches a run still going.
"""

import contextlib
import ipaddress
import os
import re
import signal
from dataclasses import dataclass

import structlog

from fpai_node.testing.netns.commands import CommandError, ip

log = structlog.get_logger(__name__)

PREFIX = "fpaift"  # "fpai fault test": namespaces, bridge and veth names all start with it
HOST_INTERFACE = "eth0"  # each host's end of its veth pair, the name a real machine would have
SUBNET_BASE = ipaddress.IPv4Network("10.77.0.0/16")  # private; a free /24 of it is taken per run
FIRST_HOST = 11  # host i gets .(11 + i); .1 is the root namespace's address on the bridge
_NAMESPACE = re.compile(rf"^{PREFIX}-(\d+)-")
_BRIDGE = re.compile(rf"^{PREFIX}(\d+)$")


@dataclass(frozen=True)
class Host:
    """One machine: a namespace with one interface on the bridge."""

    index: int
    name: str  # "n0", "n1", ... in logs and reports
    namespace: str
    address: str  # IPv4 on the bridge
    interface: str = HOST_INTERFACE


@dataclass(frozen=True)
class Testbed:
    owner: int  # the process id in every name
    bridge: str
    gateway: str  # the root namespace's address on the bridge: clients talk from here
    prefix_len: int
    hosts: tuple[Host, ...]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def namespaces() -> list[str]:
    """Names from `ip netns list` (which prints `NAME (id: N)` once an id is assigned)."""
    return [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]


def remove_namespace(namespace: str) -> None:
    """Kill whatever still runs in `namespace` (stopped processes too), then delete it."""
    for pid in ip("netns", "pids", namespace, check=False).split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    ip("netns", "delete", namespace, check=False)


def remove_leftovers() -> list[str]:
    """Remove the namespaces and bridges of earlier runs whose process is gone."""
    removed = []
    for namespace in namespaces():
        match = _NAMESPACE.match(namespace)
        if match and not _alive(int(match.group(1))):
            remove_namespace(namespace)
            removed.append(namespace)
    for line in ip("-o", "link", "show", "type", "bridge").splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        match = _BRIDGE.match(name)
        if match and not _alive(int(match.group(1))):
            ip("link", "delete", name, check=False)
            removed.append(name)
    if removed:
        log.warning("removed the leftovers of a run that did not clean up", names=removed)
    return removed


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 of SUBNET_BASE that no route of the root namespace overlaps."""
    used = []
    for line in ip("-4", "route", "show", "table", "all").splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("broadcast", "local", "unicast"):
            word = line.split()[1]
        try:
            used.append(ipaddress.IPv4Network(word, strict=False))
        except ValueError:
            continue
    for candidate in SUBNET_BASE.subnets(new_prefix=24):
        if candidate.network_address.packed[2] == 0:
            continue  # skip .0.0/24: it reads like a mistake in logs
        if not any(candidate.overlaps(route) for route in used if route.prefixlen > 0):
            return candidate
    raise CommandError(f"no free /24 left in {SUBNET_BASE}")


def build(size: int) -> Testbed:
    """A bridge in the root namespace and `size` namespaces on it, loopback up in each. On a
    failure half-way, what was made is removed before the error propagates."""
    owner = os.getpid()
    subnet = free_subnet()
    addresses = list(subnet.hosts())
    bridge = f"{PREFIX}{owner}"
    gateway = str(addresses[0])
    hosts = tuple(
        Host(i, f"n{i}", f"{PREFIX}-{owner}-{i}", str(addresses[FIRST_HOST - 1 + i]))
        for i in range(size)
    )
    testbed = Testbed(owner, bridge, gateway, subnet.prefixlen, hosts)
    try:
        ip("link", "add", bridge, "type", "bridge")
        ip("addr", "add", f"{gateway}/{subnet.prefixlen}", "dev", bridge)
        ip("link", "set", bridge, "up")
        for host in hosts:
            _add_host(testbed, host)
    except BaseException:
        teardown(testbed)
        raise
    log.info("testbed built", bridge=bridge, subnet=str(subnet), hosts=size)
    return testbed


def _add_host(testbed: Testbed, host: Host) -> None:
    outside = f"{testbed.bridge}v{host.index}"
    ip("netns", "add", host.namespace)
    ip("link", "set", "lo", "up", namespace=host.namespace)
    ip(
        "link", "add", outside, "type", "veth",
        "peer", "name", host.interface, "netns", host.namespace,
    )  # fmt: skip
    ip("link", "set", outside, "master", testbed.bridge)
    ip("link", "set", outside, "up")
    ip(
        "addr", "add", f"{host.address}/{testbed.prefix_len}", "dev", host.interface,
        namespace=host.namespace,
    )  # fmt: skip
    ip("link", "set", host.interface, "up", namespace=host.namespace)


def teardown(testbed: Testbed) -> None:
    """Remove every namespace (killing what runs there) and the bridge; never raises."""
    for host in testbed.hosts:
        try:
            remove_namespace(host.namespace)
        except CommandError as exc:
            log.error("could not remove a namespace", namespace=host.namespace, error=str(exc))
    ip("link", "delete", testbed.bridge, check=False)
    log.info("testbed removed", bridge=testbed.bridge)
