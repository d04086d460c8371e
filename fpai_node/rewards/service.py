"""Rewards on a node (specs/0010-rewards.md): keep the pairs this node is party to, commit each
epoch's digest to the registry, check the answers other nodes ask it to check and report the
wrong ones, ask checkers about its own sampled pairs, demote penalized servers, and compute,
propose and claim an epoch's rewards for the operator.
"""

import asyncio
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from functools import partial
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from fpai_node.errors import FpaiError
from fpai_node.identity.keys import NodeKey
from fpai_node.inference.base import InferenceError, Scorer
from fpai_node.inference.openai_requests import ApiError, parse_chat, parse_completion
from fpai_node.inference.service import InferenceService
from fpai_node.peer.client import PeerClient
from fpai_node.registry.checked import CheckedRecords
from fpai_node.registry.service import RegistryService, RegistryUnavailable
from fpai_node.registry.state import RegistryState
from fpai_node.rewards.book import PairBook
from fpai_node.rewards.digests import (
    KEEP_DIGESTS,
    Digest,
    DigestRefused,
    digest_parameter,
    parse_digest_parameter,
    read_digest,
    seal_digest,
    summarize,
)
from fpai_node.rewards.params import RewardParams
from fpai_node.rewards.reward import EpochRewards, compute
from fpai_node.rewards.spot import (
    KEEP_REPORTS,
    MAX_SPOT_BODY_BYTES,
    MAX_SPOT_OUTPUT_BYTES,
    REPORT_EPOCHS,
    SPOT_PATH,
    Report,
    Verdict,
    checkers,
    is_sampled,
    judge,
    parse_report_parameter,
    penalized,
    read_report,
    report_parameter,
    seal_report,
)
from fpai_node.router.acks import Pair, read_pair
from fpai_node.router.forward import Acknowledged
from fpai_node.router.messages import Failed, InferRequest, ReceiptRejected, encode_failure
from fpai_node.router.service import RouterService
from fpai_node.service import FrameRefused, PeerRoute, RpcRoute, Service, StreamRoute, counter
from fpai_node.wire import codec
from fpai_node.wire.errors import WireError

if TYPE_CHECKING:
    from fpai_node.treasury.service import TreasuryService

PAIRS_PATH = "/fpai/peer/v1/pairs"
POLL_S = 1.0  # a digest is due once an epoch; a second late is nothing, and tests use 10-s epochs
SPOT_CONCURRENCY = 2  # checks this node runs at once: each holds the model's worker a while
SPOT_RATE_PER_S = 2.0  # per requester: at 2% sampling, 100 forwarded requests a second
MAX_ASKING = 64  # sampled pairs waiting for their checkers; more are not checked (and counted)
SPOT_BUSY_TRIES = 10  # a busy checker is asked this many times before the next one
SPOT_BUSY_WAIT_S = 1.0  # its rate admits two checks a second from one requester
SPOT_TIMEOUT_S = 120.0  # a check scores the prompt and answer once: a long prompt takes a while
DEMOTION_REASON = "fraud_report"
_SPOT_KEYS = {"ack", "output", "receipt", "request"}  # RWD-11
log = structlog.get_logger("fpai.rewards")


class RewardsError(FpaiError):
    """What an operator asked cannot be done (answered 409 by the API)."""


class RewardsService(Service):
    name = "rewards"

    def __init__(
        self,
        key: NodeKey,
        registry: RegistryService,
        router: RouterService,
        inference: InferenceService,
        client: PeerClient,
        *,
        is_member: Callable[[str], bool],
        treasury: "TreasuryService | None" = None,
    ) -> None:
        self.node_id = key.node_id
        self._key = key
        self._registry = registry
        self._router = router
        self._inference = inference
        self._is_member = is_member
        self._treasury = treasury
        self._pool = client.pool(connections_per_peer=2, timeout_s=SPOT_TIMEOUT_S)
        self._book = PairBook(RewardParams().epoch_ms)  # the pairs this node is party to
        self._params = RewardParams()
        self._params_basis: Mapping[str, codec.Value] | None = None
        self._checking = asyncio.Semaphore(SPOT_CONCURRENCY)
        self._asking: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self.counts: Counter[str] = Counter()  # digests committed, checks asked and run, ...
        self.refused: Counter[str] = Counter()  # records and checks refused, by reason
        # digests and reports, each checked once per content (RWD-6, RWD-13)
        self._checked = CheckedRecords((ReceiptRejected, DigestRefused), self.refused)

    # ---- the service -------------------------------------------------------------------------

    async def start(self) -> None:
        self._book.regroup(self.params().epoch_ms)
        for pair in self._router.take_kept_pairs():  # read once, by the router's start
            self._book.add(pair)
        self._router.forwarder.on_acknowledged = self._acknowledged
        self._router.serving.acks.on_pair = self._add
        self._task = asyncio.create_task(self._run(), name="rewards")

    async def stop(self, leave: bool) -> None:
        self._router.forwarder.on_acknowledged = None
        self._router.serving.acks.on_pair = None
        tasks = [t for t in (self._task, *self._asking) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def peer_routes(self) -> Sequence[PeerRoute]:
        return (
            StreamRoute(
                SPOT_PATH,
                self._spot,
                max_body_bytes=MAX_SPOT_BODY_BYTES,
                rate_per_s=SPOT_RATE_PER_S,
                gate=self._members_only,
            ),
            RpcRoute(PAIRS_PATH, self._pairs_of),
        )

    def status_sections(self) -> Mapping[str, object]:
        params = self.params()
        return {
            "rewards": {
                "epoch": params.epoch_of(_now_ms()),
                "pairs": len(self._book),
                "done": dict(self.counts),
                "refused": dict(self.refused),
            }
        }

    def metrics(self) -> Iterable[Any]:
        yield counter(
            "fpai_rewards_events",
            "Rewards work done: digests committed, spot checks asked, passed, failed, reports "
            "filed, by kind.",
            "kind",
            self.counts,
        )
        yield counter(
            "fpai_rewards_refused",
            "Rewards records and spot checks refused, by reason.",
            "reason",
            self.refused,
        )

    def params(self, state: RegistryState | None = None) -> RewardParams:
        """RWD-4's parameters of `state` (the registry's now), parsed again only when its
        parameters changed: every forwarded request asks (spot sampling)."""
        parameters = (state or self._registry.state).parameters
        if parameters is not self._params_basis:
            self._params = RewardParams.from_parameters(parameters)
            self._params_basis = parameters
        return self._params

    def _add(self, pair: Pair) -> None:
        self._book.add(pair)

    async def _run(self) -> None:
        while True:
            try:
                await self.upkeep()
            except asyncio.CancelledError:
                raise
            except FpaiError as exc:
                log.warning("rewards upkeep failed", error=str(exc))
            except Exception:
                log.exception("rewards upkeep failed")
            await asyncio.sleep(POLL_S)

    # ---- one round ---------------------------------------------------------------------------

    async def upkeep(self) -> None:
        """Commit the digests that are due (RWD-6), forget what is old, demote the penalized."""
        state = self._registry.state
        params = self.params(state)
        now = _now_ms()
        self._book.regroup(params.epoch_ms)
        for epoch in self._book.epochs():
            due = params.commit_from_ms(epoch) <= now <= params.deadline_ms(epoch)
            if due and digest_parameter(self.node_id, epoch) not in state.parameters:
                await self._commit(params, epoch, now)
        await self._prune(state, params, now)
        self._demote_penalized(state, params, now)
        self._checked.forget_absent(state.parameters)

    async def _commit(self, params: RewardParams, epoch: int, now: int) -> None:
        digest = self.digest(params, epoch)
        frame = seal_digest(self._key, digest, now)
        key = digest_parameter(self.node_id, epoch)
        try:
            result = await self._registry.propose("param.set", {"key": key, "value": frame}, 5.0)
        except RegistryUnavailable as exc:
            log.info("digest deferred", epoch=epoch, reason=str(exc))
            return
        if result.status == "rejected":
            self.refused[f"digest_{result.reason}"] += 1
            log.warning("digest refused by the registry", epoch=epoch, reason=result.reason)
            return
        self.counts["digests"] += 1
        log.info("epoch digest committed", epoch=epoch, pairs=digest.pairs, bytes=len(frame))

    def digest(self, params: RewardParams, epoch: int) -> Digest:
        self._book.regroup(params.epoch_ms)
        return summarize(self.node_id, epoch, self._book.of(epoch))

    async def _prune(self, state: RegistryState, params: RewardParams, now: int) -> None:
        """Own digests beyond the newest KEEP_DIGESTS, own reports beyond KEEP_REPORTS or older
        than REPORT_EPOCHS (RWD-6, RWD-13), and pairs older than any digest kept."""
        current = params.epoch_of(now)
        mine = sorted(
            (parsed[1], key)
            for key in state.parameters
            if (parsed := parse_digest_parameter(key)) and parsed[0] == self.node_id
        )
        stale = [key for _, key in mine[:-KEEP_DIGESTS]]
        reports = sorted(
            (self._report_epoch(params, key, value), key)
            for key, value in state.parameters.items()
            if (named := parse_report_parameter(key)) and named[0] == self.node_id
        )
        stale += [key for epoch, key in reports if epoch < current - REPORT_EPOCHS]
        stale += [key for _, key in reports[:-KEEP_REPORTS]]
        for key in dict.fromkeys(stale):
            try:
                await self._registry.propose("param.delete", {"key": key}, 5.0)
            except RegistryUnavailable:
                return
        self._book.forget_before(current - KEEP_DIGESTS)

    def _report_epoch(self, params: RewardParams, key: str, value: codec.Value) -> int:
        report = self._report(params, key, value)
        return params.epoch_of(report.pair.epoch_ms) if report is not None else -1

    def _demote_penalized(self, state: RegistryState, params: RewardParams, now: int) -> None:
        """RWD-13: a server penalized in this epoch or the last ranks as lying (ROUTE-3)."""
        current = params.epoch_of(now)
        by_epoch = penalized(self.reports(state, params), params.epoch_of, params.fraud_quorum)
        forwarder = self._router.forwarder
        for server in by_epoch.get(current, frozenset()) | by_epoch.get(current - 1, frozenset()):
            if server != self.node_id and forwarder.healthy(server):
                penalized_in = current if server in by_epoch.get(current, ()) else current - 1
                until_ms = params.end_ms(penalized_in + 1)  # the end of the epoch after
                forwarder.demote(server, DEMOTION_REASON, (until_ms - now) / 1000)

    # ---- records in the registry, each checked once per value --------------------------------

    def _report(self, params: RewardParams, key: str, value: codec.Value) -> Report | None:
        # the verdict depends on the sampling rate too (RWD-13 upholds sampled pairs only)
        return self._checked.check(
            key,
            [value, params.spot_ppm],
            "report",
            lambda: read_report(key, value, params.spot_ppm),
        )

    def reports(self, state: RegistryState, params: RewardParams) -> list[Report]:
        """Every upheld fraud report in the registry (RWD-13)."""
        found = []
        for key, value in state.parameters.items():
            if parse_report_parameter(key) and (report := self._report(params, key, value)):
                found.append(report)
        return found

    def digests(self, state: RegistryState, params: RewardParams, epoch: int) -> dict[str, Digest]:
        """Every member's digest of `epoch` that RWD-6 lets a reader use."""
        deadline = params.deadline_ms(epoch)
        found: dict[str, Digest] = {}
        for key, value in state.parameters.items():
            parsed = parse_digest_parameter(key)
            if parsed is None or parsed[1] != epoch:
                continue
            node = parsed[0]
            digest = self._checked.check(
                key, value, "digest", partial(read_digest, node, epoch, value, deadline)
            )
            if digest is not None:
                found[node] = digest
        return found

    def operators(self, state: RegistryState, nodes: Iterable[str]) -> dict[str, str]:
        """The members' operator addresses from their valid bindings (TREASURY-2), as the
        treasury checks them."""
        if self._treasury is None:
            return {}
        bound = {node: self._treasury.binding_of(state, node) for node in nodes}
        return {node: binding.address for node, binding in bound.items() if binding is not None}

    def compute(self, state: RegistryState, params: RewardParams, epoch: int) -> EpochRewards:
        """RWD-8 over the registry as this node sees it."""
        digests = self.digests(state, params, epoch)
        operators = self.operators(state, digests)
        by_epoch = penalized(self.reports(state, params), params.epoch_of, params.fraud_quorum)
        return compute(epoch, digests, operators, params, by_epoch.get(epoch, frozenset()))

    # ---- spot checks: asking (RWD-11) ------------------------------------------------------

    def _acknowledged(self, acked: Acknowledged) -> None:
        """The forwarder acknowledged a pair: keep it, and have it checked if it is sampled."""
        self._add(acked.pair)
        params = self.params()
        text = acked.text
        if text is None or len(text.encode("utf-8")) > MAX_SPOT_OUTPUT_BYTES:
            return
        if not is_sampled(acked.pair, acked.request.api, params.spot_ppm):
            return
        if len(self._asking) >= MAX_ASKING:
            self.refused["spot_queue_full"] += 1
            return
        task = asyncio.create_task(self._ask(acked, text, params.fraud_quorum))
        self._asking.add(task)
        task.add_done_callback(self._asking.discard)

    async def _ask(self, acked: Acknowledged, text: str, quorum: int) -> None:
        """RWD-11: the checkers in order until `quorum` answered."""
        pair = acked.pair
        serving = self._registry.state.models.get(pair.receipt.model, frozenset())
        body = codec.encode(
            {
                "ack": pair.ack_frame,
                "output": text,
                "receipt": pair.receipt_frame,
                "request": acked.request.encode(),
            }
        )
        answered = 0
        for checker in checkers(pair, serving):
            address = self._router.address_of(checker)
            if address is None:
                continue
            status, answer = await self._call_checker(address, body)
            verdict = _verdict(answer) if status == 200 else None
            if verdict is None:
                self.counts["spot_unanswered"] += 1
                log.info("checker did not check", checker=checker, status=status)
                continue
            answered += 1
            self.counts[f"spot_{verdict}"] += 1
            log.info(
                "spot check answered",
                checker=checker,
                server=pair.receipt.server,
                verdict=verdict,
                request_id=pair.receipt.request_id,
            )
            if answered >= quorum:
                return
        if not answered:
            self.counts["spot_unchecked"] += 1

    async def _call_checker(self, address: str, body: bytes) -> tuple[int, bytes]:
        """One checker's answer; a busy one (429: its rate or its checks in progress) is asked
        again a little later, so a burst of sampled answers is checked, not skipped."""
        for _ in range(SPOT_BUSY_TRIES - 1):
            status, answer = await self._pool.call(address, SPOT_PATH, body)
            if status != 429:
                return status, answer
            await asyncio.sleep(SPOT_BUSY_WAIT_S)
        return await self._pool.call(address, SPOT_PATH, body)

    # ---- spot checks: checking (RWD-11, RWD-12) ---------------------------------------------

    def _members_only(self, peer: str) -> web.Response | None:
        if self._is_member(peer):
            return None
        return _refusal(403, "not_a_member", "this node checks for federation members")

    async def _spot(self, peer: str, body: bytes, request: web.Request) -> web.StreamResponse:
        try:
            pair, forwarded, text = self._spot_request(peer, body)
        except _Refused as exc:
            self.refused[f"spot_{exc.code}"] += 1
            return _refusal(exc.status, exc.code, exc.message)
        if self._checking.locked():
            return _refusal(429, "busy", "this node is running its spot checks")
        async with self._checking:
            try:
                verdict = await self._check(pair, forwarded, text)
            except _Refused as exc:
                self.refused[f"spot_{exc.code}"] += 1
                return _refusal(exc.status, exc.code, exc.message)
        self.counts["checked"] += 1
        if not verdict.passed:
            await self._file(pair, verdict)
        answer: dict[str, codec.Value] = {
            "reason": verdict.reason,
            "verdict": "pass" if verdict.passed else "fail",
        }
        return web.Response(body=codec.encode(answer), content_type="application/msgpack")

    def _spot_request(self, peer: str, body: bytes) -> tuple[Pair, InferRequest, str]:
        """RWD-11's checks before any work."""
        try:
            fields = codec.decode(body)
            if not isinstance(fields, dict) or fields.keys() != {
                "ack",
                "output",
                "receipt",
                "request",
            }:
                raise _Refused(400, "malformed", "a check is {ack, output, receipt, request}")
            receipt, ack, text, raw = (fields[k] for k in ("receipt", "ack", "output", "request"))
            if type(receipt) is not bytes or type(ack) is not bytes or type(raw) is not bytes:
                raise _Refused(400, "malformed", "receipt, ack and request are bytes")
            if type(text) is not str or len(text.encode("utf-8")) > MAX_SPOT_OUTPUT_BYTES:
                raise _Refused(400, "malformed", "output is the answer's text, at most 1 MiB")
            pair = read_pair(receipt, ack)
            forwarded = InferRequest.decode(raw)
        except ReceiptRejected as exc:
            raise _Refused(400, exc.reason, str(exc)) from None
        except WireError as exc:
            raise _Refused(400, "malformed", str(exc)) from None
        if pair.ack.requester != peer:
            raise _Refused(400, "sender_not_peer", "the requester asks for its own pairs")
        if self.node_id in (pair.receipt.server, pair.receipt.requester):
            raise _Refused(400, "party", "a party to the pair does not check it")
        if forwarded.digest() != pair.receipt.request:
            raise _Refused(400, "wrong_request", "not the request the receipt names")
        if hashlib.sha256(text.encode("utf-8")).digest() != pair.ack.output:
            raise _Refused(400, "wrong_output_hash", "not the answer the requester acknowledged")
        if not is_sampled(pair, forwarded.api, self.params().spot_ppm):
            raise _Refused(400, "not_sampled", "the pair was not chosen for a check")
        return pair, forwarded, text

    async def _check(self, pair: Pair, forwarded: InferRequest, text: str) -> Verdict:
        """RWD-12: score the answer under this node's copy of the weights, then judge."""
        model = pair.receipt.model
        try:
            served = self._inference.get(model)
        except InferenceError:
            raise _Refused(409, "cannot_check", f"model {model} is not served here") from None
        scorer = served.backend
        if served.card.sha256 != pair.receipt.weights or not isinstance(scorer, Scorer):
            raise _Refused(409, "cannot_check", "not served here from the weights named")
        try:
            data = json.loads(forwarded.body)
            if forwarded.api == "chat":
                chat, _ = parse_chat(data)
                temperature = chat.sampling.temperature
                score = await scorer.score_chat(model, chat.messages, text)
            else:
                completion, _ = parse_completion(data)
                temperature = completion.sampling.temperature
                score = await scorer.score_completion(model, completion.prompt, text)
        except (ApiError, InferenceError, ValueError) as exc:
            raise _Refused(409, "cannot_check", f"the answer cannot be scored: {exc}") from None
        return judge(
            claimed_prompt=pair.receipt.prompt_tokens,
            claimed_completion=pair.receipt.completion_tokens,
            counted_prompt=score.prompt_tokens,
            counted_completion=score.completion_tokens,
            ranks=score.ranks,
            greedy=temperature == 0,
        )

    async def _file(self, pair: Pair, verdict: Verdict) -> None:
        """RWD-13: the fraud report, in the registry under this node's prefix."""
        key = report_parameter(self.node_id, pair)
        value = seal_report(self._key, pair, verdict, _now_ms())
        log.warning(
            "spot check failed: fraud reported",
            server=pair.receipt.server,
            reason=verdict.reason,
            detail=verdict.detail,
            request_id=pair.receipt.request_id,
        )
        try:
            await self._registry.propose("param.set", {"key": key, "value": value}, 5.0)
            self.counts["reports"] += 1
        except RegistryUnavailable as exc:
            self.refused["report_unwritten"] += 1
            log.warning("fraud report not written", reason=str(exc))

    # ---- the pairs behind a digest (RWD-7) --------------------------------------------------

    async def _pairs_of(self, peer: str, body: bytes) -> bytes:
        try:
            fields = codec.decode(body)
        except WireError as exc:
            raise FrameRefused("malformed") from exc
        epoch = fields.get("epoch") if isinstance(fields, dict) else None
        if not isinstance(fields, dict) or fields.keys() != {"epoch"} or type(epoch) is not int:
            raise FrameRefused("malformed")
        self._book.regroup(self.params().epoch_ms)
        pairs = sorted(self._book.of(epoch), key=lambda p: p.id)
        return codec.encode([[p.receipt_frame, p.ack_frame] for p in pairs])

    # ---- what the operator asks (the API, `fpai-node rewards`) -------------------------------

    async def status(self, epoch: int | None = None) -> dict[str, Any]:
        """This node's rewards: for each epoch it has pairs or a digest in (or only `epoch`),
        whether it is open, settling or final, its own rows, and once final what it earned,
        its operator's amount and, with a chain, whether it is published and claimed; the
        fraud reports that name it or that it filed."""
        state = self._registry.state
        params = self.params(state)
        now = _now_ms()
        operator = self._treasury.operator if self._treasury is not None else None
        if epoch is not None:
            epochs = [epoch]
        else:
            self._book.regroup(params.epoch_ms)
            kept = set(self._book.epochs())
            committed = {
                parsed[1]
                for key in state.parameters
                if (parsed := parse_digest_parameter(key)) and parsed[0] == self.node_id
            }
            epochs = sorted(kept | committed, reverse=True)[:KEEP_DIGESTS]
        shown = [await self._epoch_status(state, params, e, now, operator) for e in epochs]
        reports = self.reports(state, params)
        return {
            "node_id": self.node_id,
            "operator": operator,
            "current_epoch": params.epoch_of(now),
            "parameters": _shown_params(params),
            "epochs": shown,
            "reports": {
                "against_this_node": [
                    _report(r, params) for r in reports if r.server == self.node_id
                ],
                "filed_by_this_node": [
                    _report(r, params) for r in reports if r.checker == self.node_id
                ],
            },
            "spot_checks": {k: v for k, v in self.counts.items() if k.startswith("spot_")},
            "checked_for_others": self.counts["checked"],
        }

    async def _epoch_status(
        self,
        state: RegistryState,
        params: RewardParams,
        epoch: int,
        now: int,
        operator: str | None,
    ) -> dict[str, Any]:
        deadline = params.deadline_ms(epoch)
        phase = "open" if now < params.end_ms(epoch) else "settling" if now <= deadline else "final"
        own = self.digests(state, params, epoch).get(self.node_id) or self.digest(params, epoch)
        shown: dict[str, Any] = {
            "epoch": epoch,
            "state": phase,
            "ends_ms": params.end_ms(epoch),
            "deadline_ms": deadline,
            "committed": digest_parameter(self.node_id, epoch) in state.parameters,
            "served": _rows(own.served),
            "used": _rows(own.used),
        }
        if phase != "final":
            return shown
        rewards = self.compute(state, params, epoch)
        shown["earned"] = rewards.earned_by(self.node_id)
        shown["lines"] = [
            {**asdict(line), "weights": line.weights.hex()}
            for line in rewards.lines
            if self.node_id in (line.server, line.requester)
        ]
        shown["total"] = rewards.total
        shown["root"] = "0x" + _root(rewards).hex() if rewards.amounts else None
        if operator is not None:
            shown["operator_amount"] = rewards.amounts.get(operator, 0)
        if operator is not None and self._treasury is not None and self._treasury.has_chain:
            shown["chain"] = await self._on_chain(epoch, rewards, operator)
        return shown

    async def _on_chain(self, epoch: int, rewards: EpochRewards, operator: str) -> dict[str, Any]:
        assert self._treasury is not None
        try:
            published = await self._treasury.published_rewards(epoch)
        except FpaiError as exc:
            return {"error": str(exc)}
        if published is None:
            return {"published": False}
        root, total, deadline = published
        matches = bool(rewards.amounts) and root == _root(rewards) and total == rewards.total
        claimed = await self._treasury.reward_claimed(epoch)
        amount = rewards.amounts.get(operator, 0)
        return {
            "published": True,
            "root": "0x" + root.hex(),
            "total": total,
            "matches": matches,
            "claim_deadline": deadline,
            "claimed": claimed,
            "claimable": amount if matches and not claimed and amount else 0,
        }

    def final(self, epoch: int) -> EpochRewards:
        state = self._registry.state
        params = self.params(state)
        if _now_ms() <= params.deadline_ms(epoch):
            raise RewardsError(
                f"epoch {epoch} is not final yet: digests may be committed until "
                f"{params.deadline_ms(epoch)} ms"
            )
        return self.compute(state, params, epoch)

    async def propose(self, epoch: int) -> dict[str, Any]:
        """RWD-9: propose publishing `epoch` as this node computes it."""
        rewards = self.final(epoch)
        if not rewards.amounts:
            raise RewardsError(f"epoch {epoch} rewards nobody: there is nothing to publish")
        treasury = self._chain()
        answer = await treasury.propose_rewards(epoch, _root(rewards), rewards.total)
        return {
            **answer,
            "epoch": epoch,
            "root": "0x" + _root(rewards).hex(),
            "total": rewards.total,
        }

    async def claim(self, epochs: Sequence[int]) -> list[dict[str, Any]]:
        """RWD-9: claim this operator's amount of each epoch, proven by the tree this node
        computes; an epoch published with another root is not claimed (and said so)."""
        from fpai_node.chain.merkle import RewardTree

        treasury = self._chain()
        operator = treasury.operator
        assert operator is not None
        done = []
        for epoch in epochs:
            rewards = self.final(epoch)
            amount = rewards.amounts.get(operator, 0)
            result: dict[str, Any] = {"epoch": epoch, "amount": amount}
            chain = await self._on_chain(epoch, rewards, operator) if amount else {}
            if not amount:
                result["skipped"] = "this operator earned nothing in the epoch"
            elif not chain.get("published"):
                result["skipped"] = "not published on chain yet"
            elif not chain["matches"]:
                result["skipped"] = f"published with another root ({chain['root']})"
            elif chain["claimed"]:
                result["skipped"] = "already claimed"
            else:
                proof = RewardTree(rewards.amounts).proof(operator)
                result.update(await treasury.claim_reward(epoch, amount, proof))
            done.append(result)
        return done

    def claimable_epochs(self) -> list[int]:
        """The final epochs this node kept a digest of, newest first."""
        state = self._registry.state
        params = self.params(state)
        now = _now_ms()
        return sorted(
            (
                parsed[1]
                for key in state.parameters
                if (parsed := parse_digest_parameter(key))
                and parsed[0] == self.node_id
                and params.deadline_ms(parsed[1]) < now
            ),
            reverse=True,
        )

    def _chain(self) -> "TreasuryService":
        if self._treasury is None or not self._treasury.has_chain:
            raise RewardsError(
                "this node has no chain: set chain_rpc and chain_deployment (docs/treasury.md)"
            )
        return self._treasury


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _refusal(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        body=encode_failure(Failed(code, message)),
        content_type="application/msgpack",
    )


def _verdict(answer: bytes) -> str | None:
    try:
        value = codec.decode(answer)
    except WireError:
        return None
    verdict = value.get("verdict") if isinstance(value, dict) else None
    return verdict if verdict in ("pass", "fail") else None


def _root(rewards: EpochRewards) -> bytes:
    from fpai_node.chain.merkle import RewardTree

    return RewardTree(rewards.amounts).root


def _rows(rows: Mapping[Any, Any]) -> list[dict[str, Any]]:
    return [
        {"peer": k.peer, "model": k.model, "weights": k.weights.hex(), **asdict(row)}
        for k, row in rows.items()
    ]


def _report(report: Report, params: RewardParams) -> dict[str, Any]:
    return {
        "server": report.server,
        "checker": report.checker,
        "requester": report.pair.receipt.requester,
        "epoch": params.epoch_of(report.pair.epoch_ms),
        "request_id": report.pair.receipt.request_id,
        "reason": report.reason,
        "detail": report.detail,
    }


def _shown_params(params: RewardParams) -> dict[str, Any]:
    return {
        "epoch_s": params.epoch_s,
        "settle_s": params.settle_s,
        "requester_cap": params.requester_cap,
        "spot_ppm": params.spot_ppm,
        "fraud_quorum": params.fraud_quorum,
        "rates": {
            model: {"weights": r.weights.hex(), "prompt": r.prompt, "completion": r.completion}
            for model, r in params.rates.items()
        },
    }


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
