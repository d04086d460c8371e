"""Enter a network namespace from one thread of this process: sockets and TUN devices that
thread creates belong to the namespace, while the rest of the process stays where it was."""

import ctypes
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

CLONE_NEWNET = 0x40000000  # <sched.h>: setns() into a network namespace
NETNS_DIR = Path("/run/netns")  # where `ip netns add` binds its namespaces
OWN_NAMESPACE = Path("/proc/self/ns/net")
RUN_IN_TIMEOUT_S = 30.0  # the callables given to run_in are short probes with their own bounds

_libc = ctypes.CDLL(None, use_errno=True)


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace that `fd` names."""
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


def enter(namespace: str) -> None:
    """Move the calling thread into `namespace` (a name from `ip netns list`)."""
    fd = os.open(NETNS_DIR / namespace, os.O_RDONLY)
    try:
        setns(fd)
    finally:
        os.close(fd)


def run_in(namespace: str, call: Callable[[], T], timeout_s: float = RUN_IN_TIMEOUT_S) -> T:
    """`call()` on a fresh thread inside `namespace`; its result, or its exception raised here.
    The thread ends afterwards, so no thread of this process stays in another namespace."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            enter(namespace)
            outcome.append(call())
        except BaseException as exc:  # handed to the caller below
            failure.append(exc)

    thread = threading.Thread(target=body, name=f"netns-{namespace}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError(f"a probe in {namespace} did not finish within {timeout_s:g} s")
    if failure:
        raise failure[0]
    return outcome[0]
