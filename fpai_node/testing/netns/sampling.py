"""One thread per node taking a sample every period until stopped: the chat prober and the
status monitor both run this way during a fault."""

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from fpai_node.testing.netns.federation import NetnsNode

T = TypeVar("T")


class PerNodeSampler(Generic[T]):
    """`take(node)` on every node every `every_s` (a None result is not kept), until `stop`."""

    def __init__(
        self,
        nodes: list[NetnsNode],
        take: Callable[[NetnsNode], T | None],
        every_s: float,
        stop_timeout_s: float,
    ) -> None:
        self.nodes = nodes
        self._take = take
        self._every_s = every_s
        self._stop_timeout_s = stop_timeout_s  # bounds the one call in flight per thread
        self._samples: list[T] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for node in self.nodes:
            thread = threading.Thread(target=self._run, args=(node,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self, node: NetnsNode) -> None:
        while not self._stop.is_set():
            sample = self._take(node)
            if sample is not None:
                with self._lock:
                    self._samples.append(sample)
            self._stop.wait(self._every_s)

    def stop(self) -> list[T]:
        """Stop every thread (each within the stop timeout) and return what they took."""
        self._stop.set()
        for thread in self._threads:
            thread.join(self._stop_timeout_s)
        with self._lock:
            return list(self._samples)
