"""Which peers have shown that they serve the models they announce (specs/0006 ROUTE-9).

An announcement is a claim: a member can list models it does not serve, and they would appear
in every node's `/v1/models` and draw requests that fail. A (peer, model) pair counts only once
the peer has answered for that model: a request this node forwarded to it, or a probe, a
completion of one token. Unproven pairs are probed with a backoff. Pure: times come in as
arguments."""

import json
from dataclasses import dataclass

from fpai_node.router.messages import Api

FIRST_RETRY_S = 10.0  # ROUTE-9: a peer still loading answers soon
DEFER_MIN_S = 1.0  # ROUTE-9: after a passing refusal (busy: its Retry-After, never less)
MAX_RETRY_S = 600.0  # ROUTE-9: a peer that keeps failing is asked every ten minutes
MAX_PROBES_IN_FLIGHT = 4  # each costs the peer a prefill and a token; a federation's worth waits


@dataclass(slots=True)
class _Attempts:
    next_at: float
    failures: int = 0
    deferrals: int = 0  # passing refusals since the last failure: no evidence against the claim


def is_probe_body(api: Api, model: str, body: bytes) -> bool:
    """ROUTE-9: a server serves a probe only as written here, so that none is free inference."""
    return (api, body) in probe_bodies(model)


def probe_bodies(model: str) -> tuple[tuple[Api, bytes], ...]:
    """ROUTE-9's probes, tried in turn until one is answered: a one-token completion, then, for
    a model that refuses completions, an embedding of one word."""
    completion = {"model": model, "prompt": "Hi", "max_tokens": 1, "temperature": 0}
    embedding = {"model": model, "input": "Hi"}
    return (
        ("completion", json.dumps(completion).encode()),
        ("embeddings", json.dumps(embedding).encode()),
    )


class ModelProofs:
    def __init__(self) -> None:
        self._proven: set[tuple[str, str]] = set()
        self._attempts: dict[tuple[str, str], _Attempts] = {}
        self._probing: set[tuple[str, str]] = set()

    def proven(self, node_id: str, model: str) -> bool:
        return (node_id, model) in self._proven

    def answered(self, node_id: str, model: str) -> None:
        """The peer served a request for the model: proven."""
        self._proven.add((node_id, model))
        self._attempts.pop((node_id, model), None)

    def due(self, announced: set[tuple[str, str]], now: float) -> list[tuple[str, str]]:
        """The unproven pairs to probe now, taken as in flight (at most MAX_PROBES_IN_FLIGHT),
        and the proofs of pairs no longer announced forgotten."""
        self._proven &= announced
        for pair in [p for p in self._attempts if p not in announced]:
            del self._attempts[pair]
        self._probing &= announced  # a probe of a pair no longer announced holds no slot
        free = MAX_PROBES_IN_FLIGHT - len(self._probing)
        chosen = []
        for pair in sorted(announced - self._proven - self._probing):
            attempts = self._attempts.setdefault(pair, _Attempts(now))
            if free > 0 and attempts.next_at <= now:
                chosen.append(pair)
                free -= 1
        self._probing.update(chosen)
        return chosen

    def probed(
        self, pair: tuple[str, str], answered: bool, now: float, deferred_s: float | None = None
    ) -> None:
        """`deferred_s`: the peer refused the probe for a passing reason, to be retried after
        that long: as busy (429, its Retry-After) or as from no member (403 `not_a_member`, its
        gossip not having heard of this node yet). Servers of one sequence are busy whenever two
        nodes probe them at once (every node probes a newcomer within a second), and a newcomer
        probes peers that gossip has not yet told about it, so such a peer is asked again soon:
        after `deferred_s`, twice as long after each further deferral, never later than a failed
        probe would be (FIRST_RETRY_S)."""
        self._probing.discard(pair)
        if answered:
            self.answered(*pair)
            return
        attempts = self._attempts.setdefault(pair, _Attempts(now))
        if deferred_s is not None:
            attempts.deferrals += 1
            first = max(DEFER_MIN_S, deferred_s)
            wait = min(FIRST_RETRY_S, first * 2 ** (attempts.deferrals - 1))
        else:
            attempts.failures += 1
            attempts.deferrals = 0
            wait = min(MAX_RETRY_S, FIRST_RETRY_S * 2 ** (attempts.failures - 1))
        attempts.next_at = now + wait

    def status(self) -> dict[str, list[str]]:
        """Proven models per peer, for /fpai/v1/status."""
        table: dict[str, list[str]] = {}
        for node_id, model in sorted(self._proven):
            table.setdefault(node_id, []).append(model)
        return table
