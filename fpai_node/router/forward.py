"""The requesting side of a forwarded request: send it over the peer channel, turn the answer's
events back into generation events, check and keep the serving node's receipt
(specs/0006-routing.md FWD-4..FWD-6, RECEIPT-2, RECEIPT-3)."""

import time
from collections import Counter
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import aiohttp
import numpy as np
import structlog

from fpai_node.api.peer.channel import PeerClient
from fpai_node.identity.tls import TlsIdentity
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
    ReceiptRejected,
    SeenReceipts,
    Text,
    Vectors,
    check_receipt,
    decode_failure,
)
from fpai_node.router.receipts import ReceiptLog
from fpai_node.router.select import Candidate
from fpai_node.wire.errors import WireError

CONNECT_TIMEOUT_S = 5.0  # a peer that cannot take a connection in 5 s is not serving anyone
READ_TIMEOUT_S = 120.0  # silence between two events (queueing included) before giving up
CONNECTIONS_PER_PEER = 16  # concurrent forwarded requests to one peer: its default queue depth
MAX_ANSWER_TEXT_BYTES = 16 << 20  # FWD-4: a whole answer's text; far above any real context
FAILURE_COOLDOWN_S = 10.0  # ROUTE-3: a peer that just failed ranks after healthy ones this long
LATENCY_WEIGHT = 0.2  # EWMA weight of the newest measurement
log = structlog.get_logger("fpai.router")


class PeerUnavailable(BackendUnavailable):
    """The peer could not be reached, broke the protocol, or cut the stream."""

    code = "peer_unavailable"


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
    job: Job
    texts: int = 0
    text_bytes: int = 0
    ended: bool = False


@dataclass(slots=True)
class Timing:
    """Filled in by an attempt: what the serving node says its own part took."""

    server_ms: float | None = None


class Forwarder:
    def __init__(self, identity: TlsIdentity, receipts: ReceiptLog) -> None:
        self._client = PeerClient(identity, connections_per_peer=CONNECTIONS_PER_PEER)
        self._receipts = receipts
        self._seen_receipts = SeenReceipts()
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S
        )
        self.inflight: Counter[str] = Counter()
        self.latency_ms: dict[str, float] = {}
        self.failed_at: dict[str, float] = {}  # monotonic time of each peer's latest failure
        self.forwarded: Counter[str] = Counter()  # completed, by serving peer
        self.receipts_rejected: Counter[str] = Counter()

    async def start(self) -> None:
        await self._client.start()

    async def close(self) -> None:
        await self._client.close()

    def healthy(self, node_id: str) -> bool:
        failed = self.failed_at.get(node_id)
        return failed is None or time.monotonic() - failed > FAILURE_COOLDOWN_S

    async def attempt(
        self, candidate: Candidate, job: Job, request: InferRequest, timing: Timing
    ) -> AsyncGenerator[LocalEvent, None]:
        """The job on `candidate`, as generation events. Failures before the first event raise
        (the router tries the next candidate); after it, PeerUnavailable ends the stream. Any
        PeerUnavailable marks the peer failed (ROUTE-3)."""
        peer = candidate.node_id
        self.inflight[peer] += 1
        sent = time.perf_counter()
        try:
            async with self._client.stream(
                candidate.peer_address, INFER_PATH, request.encode(), self._timeout
            ) as response:
                if response.status != 200:
                    body = await response.content.read(MAX_EVENT_BYTES)
                    raise self._refusal(peer, response.status, body)
                timing.server_ms = _header_ms(response.headers.get(SERVER_MS_HEADER))
                answer = _Answer(peer, job)
                reader = EventReader()
                async for chunk in response.content.iter_any():
                    for event in reader.feed(chunk):
                        if answer.texts == 0 and not answer.ended:
                            self._measured(peer, sent, timing.server_ms)
                        local = self._local_event(answer, request, event)
                        if answer.ended:  # the consumer stops at the last event
                            self.forwarded[peer] += 1
                            yield local
                            return
                        yield local
                raise PeerUnavailable(f"node {peer} cut the stream before its end")
        except PeerUnavailable:
            self.failed_at[peer] = time.monotonic()
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.failed_at[peer] = time.monotonic()
            raise PeerUnavailable(f"node {peer} is unreachable: {_describe(exc)}") from None
        except WireError as exc:
            self.failed_at[peer] = time.monotonic()
            raise PeerUnavailable(f"node {peer} broke the protocol: {exc}") from None
        finally:
            self.inflight[peer] -= 1
            if not self.inflight[peer]:
                del self.inflight[peer]

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
        return PeerUnavailable(f"node {peer} refused ({code}): {reason}")

    def _local_event(self, answer: "_Answer", request: InferRequest, event: Event) -> LocalEvent:
        """FWD-4's grammar, and budgets a peer cannot talk its way past."""
        peer, job = answer.peer, answer.job
        embeddings = job.api == "embeddings"
        match event:
            case Text(text) if not embeddings:
                answer.texts += 1
                answer.text_bytes += len(text)
                if job.max_tokens is not None and answer.texts > job.max_tokens:
                    raise PeerUnavailable(f"node {peer} sent more than {job.max_tokens} tokens")
                if answer.text_bytes > MAX_ANSWER_TEXT_BYTES:
                    raise PeerUnavailable(f"node {peer} sent more than {MAX_ANSWER_TEXT_BYTES} B")
                return TextChunk(text)
            case Finished(reason, receipt) if not embeddings:
                answer.ended = True
                usage = self._checked_usage(peer, job, request, receipt)
                return Finish(reason, usage or Usage(0, 0))
            case Vectors(vectors, receipt) if embeddings:
                arrays = [np.frombuffer(v, dtype="<f4") for v in vectors]
                if len(arrays) != job.inputs or not all(np.isfinite(a).all() for a in arrays):
                    raise PeerUnavailable(f"node {peer} sent {len(arrays)} bad vectors")
                answer.ended = True
                usage = self._checked_usage(peer, job, request, receipt)
                return Embeddings([a.tolist() for a in arrays], usage.prompt_tokens if usage else 0)
            case Failed(code, message):
                raise PeerUnavailable(f"node {peer} failed ({code}): {message}")
        raise PeerUnavailable(
            f"node {peer} answered a {job.api} request with {type(event).__name__}"
        )

    def _checked_usage(
        self, peer: str, job: Job, request: InferRequest, receipt: bytes
    ) -> Usage | None:
        """RECEIPT-2: a receipt that fails a check is counted and dropped; the client still
        gets its answer, without token counts the peer could not prove."""
        try:
            checked = check_receipt(
                receipt,
                request=request,
                model=job.model,
                server=peer,
                now_ms=time.time_ns() // 1_000_000,
                seen=self._seen_receipts,
            )
        except ReceiptRejected as exc:
            self.receipts_rejected[exc.reason] += 1
            self.failed_at[peer] = time.monotonic()
            log.warning("receipt rejected", peer=peer, reason=exc.reason, detail=str(exc))
            return None
        self._receipts.add("used", receipt)
        return Usage(checked.prompt_tokens, checked.completion_tokens)

    def _measured(self, peer: str, sent: float, server_ms: float | None) -> None:
        overhead = max(0.0, (time.perf_counter() - sent) * 1000 - (server_ms or 0.0))
        previous = self.latency_ms.get(peer)
        self.latency_ms[peer] = (
            overhead if previous is None else previous + LATENCY_WEIGHT * (overhead - previous)
        )


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
