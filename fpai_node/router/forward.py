"""The requesting side of a forwarded request: send it over the peer channel, turn the answer's
events back into generation events, check and keep the serving node's receipt
(specs/0006-routing.md FWD-4..FWD-6, RECEIPT-2, RECEIPT-3), and acknowledge it
(specs/0010-rewards.md RWD-1)."""

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
import structlog

from fpai_node.identity.keys import NodeKey
from fpai_node.inference.base import (
    BackendUnavailable,
    Embeddings,
    Finish,
    InferenceError,
    ModelNotFound,
    Overloaded,
    TextChunk,
    Usage,
)
from fpai_node.peer.client import PeerClient
from fpai_node.router.ack_exchange import AckOutbox
from fpai_node.router.acks import DISPUTES, OK, Pair, acknowledge
from fpai_node.router.jobs import Job, LocalEvent
from fpai_node.router.messages import (
    INFER_PATH,
    MAX_EVENT_BYTES,
    SERVER_MS_HEADER,
    Event,
    EventReader,
    Failed,
    Finished,
    InferRequest,
    Receipt,
    ReceiptRejected,
    Received,
    SeenReceipts,
    Text,
    Vectors,
    check_receipt,
    decode_failure,
    is_probe,
    read_stored_receipt,
)
from fpai_node.router.pace import Pace, event_gap_deadline_s, first_event_deadline_s
from fpai_node.router.peer_watch import PeerWatch
from fpai_node.router.proofs import ModelProofs
from fpai_node.router.receipts import ReceiptLog
from fpai_node.router.select import Candidate, estimate_prompt_tokens
from fpai_node.wire.errors import WireError
from fpai_node.wire.messages import SequenceCounter

CONNECT_TIMEOUT_S = 5.0  # a peer that cannot take a connection in 5 s is not serving anyone
READ_TIMEOUT_S = 120.0  # FWD-8, FWD-9: the most any wait on a peer's next event may last
CONNECTIONS_PER_PEER = 16  # concurrent forwarded requests to one peer: its default queue depth
MAX_ANSWER_BYTES = 64 << 20  # FWD-4: a whole answer's text or vectors
MAX_ANSWER_EVENTS = 1 << 17  # FWD-4: text events when the request sets no max_tokens
FAILURE_COOLDOWN_S = 10.0  # ROUTE-3: a peer that just failed ranks after healthy ones this long
# ROUTE-3: a peer caught lying (a receipt RECEIPT-2 refuses, an answer outside FWD-4's grammar or
# budgets, no first event by FWD-8's deadline) ranks after healthy ones this long
DEMOTION_S = 600.0
LATENCY_WEIGHT = 0.2  # EWMA weight of the newest measurement
log = structlog.get_logger("fpai.router")


class PeerUnavailable(BackendUnavailable):
    """The peer could not be reached, broke the protocol, or cut the stream; `lie` names what
    it did when that was a lie (ROUTE-3 demotes it)."""

    code = "peer_unavailable"

    def __init__(self, message: str, lie: str | None = None) -> None:
        super().__init__(message)
        self.lie = lie


class NotMemberYet(PeerUnavailable):
    """The peer refused this node as no member (FWD-7): its gossip has not heard of this node
    yet, or no longer counts it. No evidence about the peer's models (ROUTE-9)."""


@dataclass(frozen=True, slots=True)
class Demotion:
    until: float  # monotonic
    reason: str


class PeerRefused(InferenceError):
    """The peer refused the request (FWD-6) with this status and code."""

    def __init__(self, status: int, failure: Failed) -> None:
        super().__init__(failure.message)
        self.status = status
        self.code = failure.code
        self.error_type = "invalid_request_error" if status < 500 else "server_error"


@dataclass(slots=True)
class _Answer:
    """What one forwarded answer has delivered so far."""

    peer: str
    address: str
    job: Job
    events: int = 0
    size: int = 0  # bytes of text or vectors
    vectors: list["np.ndarray[Any, np.dtype[np.float32]]"] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    output: "hashlib._Hash" = field(default_factory=hashlib.sha256)  # RWD-1
    ended: bool = False


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """A forwarded request this node acknowledged (RWD-1): what a spot check needs of it."""

    pair: Pair
    request: InferRequest
    job: Job
    text: str | None  # the answer's text; None for embeddings


PairHook = Callable[[Acknowledged], None]


@dataclass(slots=True)
class Timing:
    """Filled in by an attempt: what the serving node says its own part took."""

    server_ms: float | None = None


class Forwarder:
    def __init__(
        self,
        key: NodeKey,
        client: PeerClient,
        receipts: ReceiptLog,
        is_dead: Callable[[str], bool],
    ) -> None:
        """`is_dead`: whether gossip has declared a peer dead (FWD-9)."""
        self._key = key
        self._is_dead = is_dead
        self._pool = client.pool(
            connections_per_peer=CONNECTIONS_PER_PEER, timeout_s=CONNECT_TIMEOUT_S
        )
        self.acks = AckOutbox(client)
        self.on_acknowledged: PairHook | None = None  # rewards' spot checks (RWD-11)
        self._ack_seq = SequenceCounter(time.time_ns() // 1_000)
        self._receipts = receipts
        self._seen_receipts = SeenReceipts()
        # sock_connect, not connect: waiting for one of the pool's connections to a busy peer
        # is queueing, not the peer failing; reads are bounded by FWD-8 and FWD-9's deadlines
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S
        )
        self.inflight: Counter[str] = Counter()
        self.latency_ms: dict[str, float] = {}
        self.failed_at: dict[str, float] = {}  # monotonic time of each peer's latest failure
        self.forwarded: Counter[str] = Counter()  # completed, by serving peer
        self.receipts_rejected: Counter[str] = Counter()
        self.pace: dict[str, Pace] = {}
        self.demoted: dict[str, Demotion] = {}
        self.demotions: Counter[str] = Counter()  # by reason
        self.proofs = ModelProofs()  # ROUTE-9: who has served what

    def healthy(self, node_id: str) -> bool:
        now = time.monotonic()
        demotion = self.demoted.get(node_id)
        if demotion is not None and now < demotion.until:
            return False
        failed = self.failed_at.get(node_id)
        return failed is None or now - failed > FAILURE_COOLDOWN_S

    def demote(self, node_id: str, reason: str, for_s: float = DEMOTION_S) -> None:
        """ROUTE-3: caught lying; counted by reason, shown in status until it ends."""
        now = time.monotonic()
        self.demoted[node_id] = Demotion(now + for_s, reason)
        self.demotions[reason] += 1
        for peer in [p for p, d in self.demoted.items() if d.until <= now]:
            del self.demoted[peer]
        log.warning("peer demoted", peer=node_id, reason=reason, for_s=round(for_s, 1))

    async def attempt(
        self, candidate: Candidate, job: Job, request: InferRequest, timing: Timing
    ) -> AsyncGenerator[LocalEvent, None]:
        """The job on `candidate`, as generation events. Failures before the first event raise
        (the router tries the next candidate); after it, PeerUnavailable ends the stream. Any
        PeerUnavailable marks the peer failed (ROUTE-3) and is logged with the request's id.
        The wait on the peer is bounded throughout (FWD-8, FWD-9): no first event by its
        deadline, no next one within the peer's usual gap, or gossip declaring it dead, ends
        the attempt."""
        peer = candidate.node_id
        pace = self.pace.setdefault(peer, Pace())
        prompt_tokens = estimate_prompt_tokens(job.prompt_chars)
        deadline = first_event_deadline_s(
            pace, prompt_tokens, candidate.expected_queue, READ_TIMEOUT_S
        )
        gap_s = event_gap_deadline_s(pace, READ_TIMEOUT_S)
        self.inflight[peer] += 1
        sent = time.perf_counter()
        wait = asyncio.timeout(deadline)
        answer: _Answer | None = None
        watch: PeerWatch | None = None
        try:
            async with wait:
                watch = PeerWatch(wait, peer, self._is_dead)
                async with self._pool.stream(
                    candidate.peer_address, INFER_PATH, request.encode(), self._timeout
                ) as response:
                    # FWD-5: the head comes with the first event
                    if response.status != 200:
                        raise self._refusal(peer, response.status, await _read_some(response))
                    watch.waiting(gap_s)
                    timing.server_ms = _header_ms(response.headers.get(SERVER_MS_HEADER))
                    pace.first_event((time.perf_counter() - sent) * 1000, prompt_tokens)
                    answer = _Answer(peer, candidate.peer_address, job)
                    reader = EventReader()
                    last_event = time.perf_counter()
                    async for chunk in response.content.iter_any():
                        for event in reader.feed(chunk):
                            now = time.perf_counter()
                            if answer.events == 0:
                                self._measured(peer, sent, timing.server_ms)
                            else:
                                pace.event_gap((now - last_event) * 1000)
                            last_event = now
                            answer.events += 1
                            local = self._local_event(answer, request, event)
                            if answer.ended:  # the consumer stops at the last event
                                assert local is not None
                                if not is_probe(request.request_id):  # ROUTE-9: not usage
                                    self.forwarded[peer] += 1
                                self.proofs.answered(peer, job.model)
                                pace.finished((time.perf_counter() - sent) * 1000)
                                watch.paused()
                                yield local
                                return
                            if local is not None:
                                watch.paused()  # the consumer's time is not the peer's
                                yield local
                                watch.waiting(gap_s)
                                last_event = time.perf_counter()
                    raise PeerUnavailable(f"node {peer} cut the stream before its end")
        except PeerUnavailable as exc:
            self._failed(peer, exc.lie)
            _log_failure(peer, answer, str(exc))
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            failure = self._failure(peer, answer, watch, wait.expired(), deadline, gap_s, exc)
            _log_failure(peer, answer, str(failure))
            raise failure from None
        except WireError as exc:
            self._failed(peer, "broke_protocol")
            _log_failure(peer, answer, f"broke the protocol: {exc}")
            raise PeerUnavailable(f"node {peer} broke the protocol: {exc}") from None
        finally:
            if watch is not None:
                watch.close()
            self.inflight[peer] -= 1
            if not self.inflight[peer]:
                del self.inflight[peer]

    def _failure(
        self,
        peer: str,
        answer: "_Answer | None",
        watch: PeerWatch | None,
        expired: bool,
        deadline_s: float,
        gap_s: float,
        exc: BaseException,
    ) -> PeerUnavailable:
        """What a timeout or a transport error on the way to `peer` says about it (ROUTE-3)."""
        if watch is not None and watch.declared_dead:  # FWD-9: gossip's verdict came first
            self._failed(peer, None)
            return PeerUnavailable(f"node {peer} was declared dead while serving the request")
        if expired and answer is None:  # FWD-8: a head long overdue is a black hole
            self._failed(peer, "no_first_event")
            message = f"node {peer} sent no first event within {deadline_s:.1f} s"
            return PeerUnavailable(message, "no_first_event")
        self._failed(peer, None)
        if expired:  # FWD-9
            return PeerUnavailable(f"node {peer} sent no event for {gap_s:.1f} s")
        return PeerUnavailable(f"node {peer} is unreachable: {_describe(exc)}")

    def _failed(self, peer: str, lie: str | None) -> None:
        if lie is None:
            self.failed_at[peer] = time.monotonic()
        else:
            self.demote(peer, lie)

    def _refusal(self, peer: str, status: int, body: bytes) -> InferenceError:
        """FWD-6. Busy and "not here" move on without blame; a 400 with a reason is the
        request's fault (the router still tries the others, ROUTE-6); anything else is a
        broken peer."""
        try:
            failure: Failed | None = decode_failure(body)
        except WireError:
            failure = None
        reason = failure.message if failure else f"answered {status} without a reason"
        if status == 429:
            retry = failure.retry_after_s if failure else 1
            return Overloaded(f"node {peer}: {reason}", max(1, retry))
        if failure is not None and status == 404 and failure.code == "model_not_found":
            return ModelNotFound(f"node {peer}: {reason}")
        if failure is not None and status == 400:
            return PeerRefused(status, Failed(failure.code, f"node {peer}: {reason}"))
        code = failure.code if failure else str(status)
        if status == 403 and code == "not_a_member":
            return NotMemberYet(f"node {peer} refused ({code}): {reason}")
        return PeerUnavailable(f"node {peer} refused ({code}): {reason}")

    def _local_event(
        self, answer: _Answer, request: InferRequest, event: Event
    ) -> LocalEvent | None:
        """FWD-4's grammar, and budgets a peer cannot talk its way past. Vectors gather until
        the answer's `finish`."""
        peer, job = answer.peer, answer.job
        embeddings = job.api == "embeddings"
        match event:
            case Text(text) if not embeddings:
                data = text.encode("utf-8")
                answer.size += len(data)
                answer.output.update(data)
                answer.text.append(text)
                limit = job.max_tokens or MAX_ANSWER_EVENTS
                if answer.events > limit or answer.size > MAX_ANSWER_BYTES:
                    raise PeerUnavailable(
                        f"node {peer} sent more than the answer may hold "
                        f"({limit} tokens, {MAX_ANSWER_BYTES} bytes)",
                        "oversized_answer",
                    )
                return TextChunk(text)
            case Vectors(vectors) if embeddings:
                arrays = [np.frombuffer(v, dtype="<f4") for v in vectors]
                answer.size += sum(len(v) for v in vectors)
                for v in vectors:
                    answer.output.update(v)
                answer.vectors += arrays
                if len(answer.vectors) > job.inputs or answer.size > MAX_ANSWER_BYTES:
                    raise PeerUnavailable(
                        f"node {peer} sent more vectors than inputs", "oversized_answer"
                    )
                if not all(np.isfinite(a).all() for a in arrays):
                    raise PeerUnavailable(
                        f"node {peer} sent vectors that are not finite", "broke_protocol"
                    )
                return None
            case Finished(reason, receipt) if not embeddings or len(answer.vectors) == job.inputs:
                answer.ended = True
                usage = self._checked_usage(answer, request, receipt)
                if not embeddings:
                    return Finish(reason, usage or Usage(0, 0))
                floats = [a.tolist() for a in answer.vectors]
                return Embeddings(floats, usage.prompt_tokens if usage else 0)
            case Failed(code, message):
                raise PeerUnavailable(f"node {peer} failed ({code}): {message}")
        kind = type(event).__name__
        raise PeerUnavailable(
            f"node {peer} answered a {job.api} request with {kind} out of turn", "broke_protocol"
        )

    def _checked_usage(
        self, answer: _Answer, request: InferRequest, receipt: bytes
    ) -> Usage | None:
        """RECEIPT-2: a receipt that fails a check is counted and dropped; the client still
        gets its answer, without token counts the peer could not prove. A receipt that is the
        server's and only claims too much is acknowledged as disputed (RWD-1)."""
        peer, job = answer.peer, answer.job
        text_bytes = 0 if job.api == "embeddings" else answer.size
        verdict = OK
        try:
            checked = check_receipt(
                receipt,
                request=request,
                model=job.model,
                server=peer,
                now_ms=time.time_ns() // 1_000_000,
                seen=self._seen_receipts,
                received=Received(text_bytes, job.max_tokens, job.stop_bytes),
            )
        except ReceiptRejected as exc:
            self.receipts_rejected[exc.reason] += 1
            log.warning("receipt rejected", peer=peer, reason=exc.reason, detail=str(exc))
            self.demote(peer, exc.reason)
            if exc.reason not in DISPUTES or is_probe(request.request_id):
                return None
            checked, verdict = read_stored_receipt(receipt), exc.reason
        if not is_probe(request.request_id):  # ROUTE-9: a probe is nobody's usage
            self._acknowledge(answer, request, receipt, checked, verdict)
        if verdict != OK:
            return None
        return Usage(checked.prompt_tokens, checked.completion_tokens)

    def _acknowledge(
        self, answer: _Answer, request: InferRequest, frame: bytes, receipt: Receipt, verdict: str
    ) -> None:
        """RWD-1: sign, keep the pair, send the server its copy, offer it to spot checks."""
        pair = acknowledge(
            self._key,
            frame,
            receipt,
            output=answer.output.digest(),
            verdict=verdict,
            seq=self._ack_seq.next(),
            now_ms=time.time_ns() // 1_000_000,
        )
        self._receipts.add("used", frame, pair.ack_frame)
        self.acks.send(pair, answer.address)
        if self.on_acknowledged is not None:
            text = None if answer.job.api == "embeddings" else "".join(answer.text)
            self.on_acknowledged(Acknowledged(pair, request, answer.job, text))

    def _measured(self, peer: str, sent: float, server_ms: float | None) -> None:
        overhead = max(0.0, (time.perf_counter() - sent) * 1000 - (server_ms or 0.0))
        previous = self.latency_ms.get(peer)
        self.latency_ms[peer] = (
            overhead if previous is None else previous + LATENCY_WEIGHT * (overhead - previous)
        )


def _log_failure(peer: str, answer: _Answer | None, reason: str) -> None:
    """Every failed forward leaves a line, with the request's id bound by the API."""
    events = 0 if answer is None else answer.events
    log.warning("forwarded request failed", peer=peer, events=events, reason=reason)


async def _read_some(response: aiohttp.ClientResponse) -> bytes:
    """A refusal's body to its end, or its first MAX_EVENT_BYTES (FWD-6)."""
    body = b""
    while len(body) < MAX_EVENT_BYTES:
        chunk = await response.content.read(MAX_EVENT_BYTES - len(body))
        if not chunk:
            break
        body += chunk
    return body


def _header_ms(value: str | None) -> float | None:
    try:
        ms = float(value) if value is not None else None
    except ValueError:
        return None
    return ms if ms is not None and 0 <= ms < 86_400_000 else None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
