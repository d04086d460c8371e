"""The registry workload: clients in the root namespace write unique values to a few keys and
read them back (linearizable reads) through every node's API, recording each operation."""

import random
import threading
import time
from functools import partial

import structlog

from fpai_node.testing.netns.api_client import Answer
from fpai_node.testing.netns.federation import NetnsNode
from fpai_node.testing.netns.history import History, Kind, Op
from fpai_node.testing.netns.waiting import until

log = structlog.get_logger(__name__)

PARAMETERS = "/fpai/v1/registry/parameters/"
REQUEST_TIMEOUT_S = 12.0  # past the node's own 10 s write timeout: its answer, when it has one
PACE_S = 0.1  # between one client's operations: at 0.05 s five nodes saturated the 2 cores
WRITE_SHARE = 0.5  # half writes, half reads, as the registry's history test does
CLIENTS_PER_NODE = 1  # every node serves a client all the time; more only queue on 2 cores
STOP_TIMEOUT_S = REQUEST_TIMEOUT_S + 5  # a client stops after its operation in flight
FINAL_READ_TIMEOUT_S = 60.0  # after heal the registry settles within seconds; bounded anyway


def operate(
    node: NetnsNode, kind: Kind, key: str, value: str | None, client: int, timeout_s: float
) -> tuple[Op, Answer]:
    """One write (PUT {"value": ...}) or linearizable read (GET) through `node`, recorded."""
    start = time.monotonic()
    if kind == "write":
        answer = node.request("PUT", PARAMETERS + key, {"value": value}, timeout_s=timeout_s)
        seen = value
    else:
        answer = node.request("GET", PARAMETERS + key, timeout_s=timeout_s)
        if answer.status == 404 and answer.error_code == "not_found":
            answer = Answer("ok", 404, answer.body, sent=True)  # the register is empty
        body = answer.body if answer.ok and isinstance(answer.body, dict) else {}
        read = body.get("value")
        seen = read if isinstance(read, str) else None
    op = Op(
        kind=kind,
        key=key,
        value=seen,
        node=node.name,
        client=client,
        start=start,
        end=time.monotonic(),
        outcome=answer.outcome,
        sent=answer.sent,
        status=answer.status,
        error=answer.error_code or answer.detail,
    )
    return op, answer


class RegistryWorkload:
    """CLIENTS_PER_NODE client threads per node, each bound to its node, until `stop()`."""

    def __init__(
        self, nodes: list[NetnsNode], keys: list[str], history: History, seed: int, tag: str
    ) -> None:
        self.nodes = nodes
        self.keys = keys
        self.history = history
        self.seed = seed
        self.tag = tag  # in every written value, so values are unique across the campaign
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for number in range(len(self.nodes) * CLIENTS_PER_NODE):
            node = self.nodes[number % len(self.nodes)]
            thread = threading.Thread(
                target=self._client, args=(number, node), name=f"client-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _client(self, number: int, node: NetnsNode) -> None:
        rng = random.Random(self.seed * 1000 + number)  # noqa: S311 (a workload, not a secret)
        sequence = 0
        while not self._stop.is_set():
            key = rng.choice(self.keys)
            if rng.random() < WRITE_SHARE:
                sequence += 1
                value = f"{self.tag}/c{number}/{sequence}"
                op, _ = operate(node, "write", key, value, number, REQUEST_TIMEOUT_S)
            else:
                op, _ = operate(node, "read", key, None, number, REQUEST_TIMEOUT_S)
            self.history.add(op)
            self._stop.wait(PACE_S)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(STOP_TIMEOUT_S)
        stuck = [t.name for t in self._threads if t.is_alive()]
        log.info("workload stopped", operations=len(self.history.ops()), keys=self.keys)
        if stuck:
            raise RuntimeError(f"workload clients did not stop: {stuck}")


def final_reads(nodes: list[NetnsNode], keys: list[str], history: History) -> dict[str, str | None]:
    """A linearizable read of every key through every running node, added to the history;
    returns each key's final value (the last answer)."""
    final: dict[str, str | None] = {}
    for key in keys:
        for node in nodes:
            if not node.running() or node.paused():
                continue
            op = until(partial(_read_ok, node, key), FINAL_READ_TIMEOUT_S)
            if op is None:
                raise TimeoutError(f"no final read of {key} through {node.name}")
            history.add(op)
            final[key] = op.value
    return final


def _read_ok(node: NetnsNode, key: str) -> Op | None:
    op, answer = operate(node, "read", key, None, -1, REQUEST_TIMEOUT_S)
    return op if answer.ok else None
