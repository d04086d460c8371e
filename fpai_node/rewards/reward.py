"""The reward function: an epoch's digests, bindings, parameters and penalties in, an amount per
operator out, with the reason behind every row (specs/0010-rewards.md RWD-8). Pure.

Every node computes the same result from the same registry, so governance can publish the
root one node proposes and every other operator can check it before voting.
"""

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from fpai_node.rewards.digests import Digest, Row, RowKey
from fpai_node.rewards.params import RATE_TOKENS, RewardParams

# RWD-8: why a row earns what it earns, as `fpai-node rewards` shows it
PAID, CAPPED = "paid", "capped"
UNACKNOWLEDGED, SAME_OPERATOR, NO_RATE = "unacknowledged", "same_operator", "no_rate"
PENALIZED, NO_OPERATOR = "penalized", "no_operator"


@dataclass(frozen=True, slots=True)
class Line:
    """One served row of one server, and what it earned."""

    server: str
    requester: str
    model: str
    weights: bytes
    claimed_prompt: int  # the server's digest
    claimed_completion: int
    prompt: int  # agreed with the requester's digest
    completion: int
    value: int  # after the requester's cap
    reason: str
    disputed: int = 0  # pairs of the row whose receipt the requester disputed (RWD-1)


@dataclass(frozen=True, slots=True)
class EpochRewards:
    epoch: int
    lines: tuple[Line, ...]
    amounts: Mapping[str, int] = field(default_factory=dict)  # operator address -> units

    @property
    def total(self) -> int:
        return sum(self.amounts.values())

    def earned_by(self, node_id: str) -> int:
        return sum(line.value for line in self.lines if line.server == node_id)


def compute(
    epoch: int,
    digests: Mapping[str, Digest],
    operators: Mapping[str, str],
    params: RewardParams,
    penalized: frozenset[str] = frozenset(),
) -> EpochRewards:
    """RWD-8. `digests` by member (each already checked by RWD-6 for `epoch`), `operators`
    the members' bound addresses (TREASURY-2), `penalized` the servers with upheld fraud
    reports in `epoch` (RWD-13)."""
    draft: list[tuple[Line, int]] = []  # (line before the cap, value before the cap)
    for server in sorted(digests):
        for key, row in digests[server].served.items():
            draft.append(_line(server, key, row, digests, operators, params, penalized))
    asked: defaultdict[str, int] = defaultdict(int)
    for line, value in draft:
        asked[line.requester] += value
    lines: list[Line] = []
    amounts: defaultdict[str, int] = defaultdict(int)
    cap = params.requester_cap
    for line, value in draft:
        total = asked[line.requester]
        if total > cap and value:
            line = replace(line, value=value * cap // total, reason=CAPPED)
        lines.append(line)
        if line.value:
            amounts[operators[line.server]] += line.value
    return EpochRewards(epoch, tuple(lines), dict(sorted(amounts.items())))


def _line(
    server: str,
    key: RowKey,
    row: Row,
    digests: Mapping[str, Digest],
    operators: Mapping[str, str],
    params: RewardParams,
    penalized: frozenset[str],
) -> tuple[Line, int]:
    requester, prompt, completion = key.peer, row.prompt_tokens, row.completion_tokens
    theirs = digests.get(requester)
    acknowledged = theirs.used.get(RowKey(server, key.model, key.weights)) if theirs else None
    agreed_prompt = min(prompt, acknowledged.prompt_tokens) if acknowledged else 0
    agreed_completion = min(completion, acknowledged.completion_tokens) if acknowledged else 0
    rate = params.rates.get(key.model)
    operator = operators.get(server)
    if server in penalized:
        reason = PENALIZED
    elif operator is None:
        reason = NO_OPERATOR
    elif acknowledged is None:
        reason = UNACKNOWLEDGED
    elif operators.get(requester) == operator:
        reason = SAME_OPERATOR
    elif rate is None or rate.weights != key.weights:
        reason = NO_RATE
    else:
        reason = PAID
    value = 0
    if reason == PAID and rate is not None:
        value = (agreed_prompt * rate.prompt + agreed_completion * rate.completion) // RATE_TOKENS
    line = Line(
        server,
        requester,
        key.model,
        key.weights,
        prompt,
        completion,
        agreed_prompt,
        agreed_completion,
        value,
        reason,
        row.disputed,
    )
    return line, value
