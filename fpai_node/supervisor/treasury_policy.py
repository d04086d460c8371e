"""The treasury's drafts as supervisor actions (specs/0009 TREASURY-10): when the treasury holds
more idle stablecoin than the federation's threshold, the node's draft deposit becomes a
`propose_treasury` action. Supervised, it waits for the operator's approval; autonomous, the
operator has delegated it and the node proposes it; off, the draft only shows in the treasury's
status, for `treasury propose --from-draft`.

Every node sees the same draft at about the same time. So that one proposes and the others
find a deposit already on its way, a node asks only once the draft has stood for its turn
(its rank among the members with a bound operator) times the treasury's grace period.
"""

import asyncio
import time
from collections.abc import Callable
from typing import Any

import structlog

from fpai_node.errors import FpaiError
from fpai_node.service import ActionGate
from fpai_node.treasury.service import TreasuryService

PROPOSE_TREASURY = "propose_treasury"
# The draft needs the chain (balances, every proposal's state): read not often, and at once
# after a transaction of this node's (an operator paying in through it waits no 30 s).
DRAFT_EVERY_S = 30.0
ASK_EVERY_S = 1.0  # within the supervisor's QUIET_S: a standing draft stays one action
log = structlog.get_logger("fpai.supervisor")


class TreasuryPolicy:
    def __init__(
        self,
        node_id: str,
        treasury: TreasuryService,
        gate: ActionGate,
        grace_s: float,
        bound_members: Callable[[], list[str]],
    ) -> None:
        """`bound_members`: the registry members with a valid operator binding (TREASURY-2)."""
        self._node_id = node_id
        self._treasury = treasury
        self._gate = gate
        self._grace_s = grace_s
        self._bound_members = bound_members
        self._draft: dict[str, Any] | None = None
        self._since = 0.0  # when the current draft was first seen
        self._next_draft = 0.0
        self._sent = 0  # the treasury's count of transactions sent, when the draft was read

    async def run(self) -> None:
        while True:
            try:
                await self._round()
            except FpaiError as exc:  # the chain went away: the next round reads it again
                log.info("treasury draft unreadable", error=str(exc))
                self._draft = None
            await asyncio.sleep(ASK_EVERY_S)

    async def _round(self) -> None:
        if self._treasury.phase != "ready":
            self._draft = None
            return
        now = time.monotonic()
        if now >= self._next_draft or self._treasury.sent != self._sent:
            self._next_draft, self._sent = now + DRAFT_EVERY_S, self._treasury.sent
            draft = (await self._treasury.status())["draft"]
            if draft != self._draft:
                self._draft, self._since = draft, now
        draft = self._draft
        if draft is None or now - self._since < self._turn() * self._grace_s:
            return
        key = f"{PROPOSE_TREASURY}:{draft['kind']}:{draft['value']}"
        summary = f"propose to the operators: {draft['text']}"
        if not self._gate.allow(key, PROPOSE_TREASURY, "treasury", summary, reports=True):
            return
        try:
            fresh = (await self._treasury.status())["draft"]  # TREASURY-10: read again first
            if fresh != draft:
                self._draft, self._since = fresh, now
                self._gate.succeeded(key, "nothing to propose: the draft changed or a deposit "
                                     "is already on its way")  # fmt: skip
                return
            done = await self._treasury.propose(draft["kind"], draft["value"], draft["text"])
        except FpaiError as exc:
            self._gate.failed(key, str(exc))
            return
        self._gate.succeeded(
            key, f"proposal {done['proposal']} (transaction {done['transaction']})"
        )
        self._draft = None  # the next draft is read anew: it now sees the deposit on its way
        self._next_draft = 0.0

    def _turn(self) -> int:
        members = sorted(self._bound_members())
        return members.index(self._node_id) if self._node_id in members else len(members)
