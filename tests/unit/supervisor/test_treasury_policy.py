"""The treasury draft as a supervisor action (fpai_node/supervisor/treasury_policy.py), over a
stand-in treasury and the real action record: the turn, the fresh read, the outcome."""

from typing import Any

import pytest

from fpai_node.errors import FpaiError
from fpai_node.supervisor.actions import ActionBook
from fpai_node.supervisor.treasury_policy import DRAFT_EVERY_S, TreasuryPolicy

DRAFT = {"kind": "deposit", "value": "60", "text": "Deposit the treasury's idle 60"}


class Treasury:
    """What the policy reads and calls of the treasury service."""

    phase = "ready"
    sent = 0  # transactions the node sent

    def __init__(self) -> None:
        self.draft: dict[str, str] | None = dict(DRAFT)
        self.proposed: list[tuple[str, str, str]] = []
        self.refuse: str | None = None

    async def status(self) -> dict[str, Any]:
        return {"draft": self.draft}

    async def propose(self, kind: str, value: str, text: str) -> dict[str, str]:
        if self.refuse:
            raise FpaiError(self.refuse)
        self.proposed.append((kind, value, text))
        self.draft = None
        return {"proposal": "0xabc", "transaction": "0xdef"}


class Gate:
    def __init__(self, mode: str) -> None:
        self.book = ActionBook(mode)
        self.now = 0.0

    def allow(self, key: str, kind: str, subject: str, summary: str, reports: bool = False) -> bool:
        return self.book.ask(key, kind, subject, summary, self.now, reports)

    def failed(self, key: str, reason: str) -> None:
        self.book.failed(key, reason, self.now)

    def succeeded(self, key: str, outcome: str) -> None:
        self.book.succeeded(key, outcome, self.now)


def policy(treasury: Treasury, gate: Gate, me: str, members: list[str]) -> TreasuryPolicy:
    return TreasuryPolicy(me, treasury, gate, 10.0, lambda: members)  # type: ignore[arg-type]


async def test_the_first_bound_member_proposes_at_once_and_records_the_proposal() -> None:
    treasury, gate = Treasury(), Gate("autonomous")
    await policy(treasury, gate, "a", ["b", "a", "c"])._round()
    assert treasury.proposed == [("deposit", "60", DRAFT["text"])]
    [action] = gate.book.actions()
    assert (action.kind, action.state, action.outcome) == (
        "propose_treasury",
        "done",
        "proposal 0xabc (transaction 0xdef)",
    )


async def test_the_draft_is_read_again_at_once_after_a_transaction_of_the_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An operator who pays in through its node sees the deposit drafted within a round, not
    up to DRAFT_EVERY_S later; a change the node did not make waits for the next read."""
    clock = [1000.0]
    monkeypatch.setattr("fpai_node.supervisor.treasury_policy.time.monotonic", lambda: clock[0])
    treasury, gate = Treasury(), Gate("autonomous")
    treasury.draft = None
    mine = policy(treasury, gate, "a", ["a"])
    await mine._round()
    treasury.draft = dict(DRAFT)  # funds arrived from elsewhere
    clock[0] += DRAFT_EVERY_S - 1
    await mine._round()
    assert treasury.proposed == []
    treasury.sent += 1  # the operator paid in through this node
    clock[0] += 0.5
    await mine._round()
    assert treasury.proposed == [("deposit", "60", DRAFT["text"])]


async def test_a_later_member_waits_its_turn_and_reads_again_before_it_proposes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("fpai_node.supervisor.treasury_policy.time.monotonic", lambda: clock[0])
    treasury, gate = Treasury(), Gate("autonomous")
    third = policy(treasury, gate, "c", ["a", "b", "c"])  # turn 2: 20 s after it saw the draft
    await third._round()
    clock[0] += 19.9
    await third._round()
    assert gate.book.actions() == [] and treasury.proposed == []
    treasury.draft = None  # meanwhile another node proposed it
    clock[0] += 0.2
    await third._round()
    assert treasury.proposed == []
    [action] = gate.book.actions()
    assert action.state == "done" and (action.outcome or "").startswith("nothing to propose")


async def test_supervised_it_waits_for_approval_and_a_refusal_is_retried_later() -> None:
    treasury, gate = Treasury(), Gate("supervised")
    first = policy(treasury, gate, "a", ["a"])
    await first._round()
    [pending] = gate.book.actions()
    assert pending.state == "pending" and treasury.proposed == []
    assert pending.summary == f"propose to the operators: {DRAFT['text']}"
    gate.book.approve(pending.id, 1.0)
    treasury.refuse = "this operator is not admitted"
    await first._round()
    action = gate.book.actions()[0]
    assert action.state == "running" and action.retry_at is not None
    assert "attempt 1 failed: this operator is not admitted" in (action.outcome or "")
    await first._round()  # inside the backoff: not asked through
    assert treasury.proposed == []


async def test_off_chain_or_no_draft_asks_nothing() -> None:
    treasury, gate = Treasury(), Gate("autonomous")
    treasury.phase = "connecting"
    await policy(treasury, gate, "a", ["a"])._round()
    treasury.phase, treasury.draft = "ready", None
    await policy(treasury, gate, "a", ["a"])._round()
    assert gate.book.actions() == [] and treasury.proposed == []
