"""The serving side of a forwarded request: `POST /fpai/peer/v1/infer` on the peer channel
(specs/0006-routing.md FWD-1..FWD-7, RECEIPT-1).

Only members of the federation (live in gossip) are served (FWD-7): the peer channel proves who
calls, membership says they may use this node's models.

A forwarded request is served from this node's own backends or refused; it is never forwarded
again (FWD-3), so a request crosses at most one hop and cannot loop.
"""

import asyncio
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable

import numpy as np
import structlog
from aiohttp import web

from fpai_node.identity.keys import NodeKey
from fpai_node.inference.base import Embeddings, Finish, InferenceError, Overloaded, TextChunk
from fpai_node.inference.openai_requests import ApiError
from fpai_node.inference.service import InferenceService
from fpai_node.router.ack_exchange import AckInbox
from fpai_node.router.jobs import Job, LocalEvent, parse_job, run_locally
from fpai_node.router.messages import (
    INFER_PATH,
    MAX_HOPS,
    MAX_REQUEST_BODY_BYTES,
    SERVER_MS_HEADER,
    VECTORS_EVENT_BYTES,
    Event,
    Failed,
    Finished,
    InferRequest,
    Received,
    Text,
    Vectors,
    completion_limit,
    encode_event,
    encode_failure,
    is_probe,
    prompt_limit,
    seal_receipt,
)
from fpai_node.router.proofs import is_probe_body
from fpai_node.router.receipts import ReceiptLog
from fpai_node.service import StreamRoute
from fpai_node.wire.errors import WireError
from fpai_node.wire.messages import SequenceCounter

REQUESTS_PER_S = 500.0  # per peer, before parsing: admission control is the real limit
EVENTS_CONTENT_TYPE = "application/vnd.fpai.events"
log = structlog.get_logger("fpai.router")


class PeerInference:
    def __init__(
        self,
        key: NodeKey,
        inference: InferenceService,
        receipts: ReceiptLog,
        is_member: Callable[[str], bool],
    ) -> None:
        self._key = key
        self._inference = inference
        self._receipts = receipts
        self.acks = AckInbox(key.node_id, receipts)
        self._is_member = is_member
        self._seq = SequenceCounter(time.time_ns() // 1_000)
        self.served: Counter[str] = Counter()  # by requesting peer
        self.refused: Counter[str] = Counter()  # by reason code

    def route(self) -> StreamRoute:
        """PEER-8's streaming route for forwarded requests (FWD-1), members only (FWD-7)."""
        return StreamRoute(
            INFER_PATH,
            self.handle,
            max_body_bytes=MAX_REQUEST_BODY_BYTES + 4096,
            rate_per_s=REQUESTS_PER_S,
            gate=self._members_only,
        )

    def _members_only(self, peer: str) -> web.Response | None:
        """FWD-7, before the body is read: a stranger costs no more than its headers."""
        if self._is_member(peer):
            return None
        return self._refuse(403, Failed("not_a_member", "this node serves federation members"))

    async def handle(self, peer: str, body: bytes, request: web.Request) -> web.StreamResponse:
        arrived = time.perf_counter()
        try:
            forwarded = InferRequest.decode(body)
        except WireError as exc:
            return self._refuse(400, Failed("malformed", f"not a forwarded request: {exc}"))
        if forwarded.path[-1] != peer:
            return self._refuse(400, Failed("path_not_peer", "the path must end with the caller"))
        if self._key.node_id in forwarded.path:
            return self._refuse(508, Failed("loop", "this node already routed the request"))
        if len(forwarded.path) > MAX_HOPS:
            return self._refuse(508, Failed("hop_limit", f"more than {MAX_HOPS} hops"))
        with structlog.contextvars.bound_contextvars(
            request_id=forwarded.request_id, requester=peer
        ):
            return await self._serve(forwarded, request, arrived)

    async def _serve(
        self, forwarded: InferRequest, request: web.Request, arrived: float
    ) -> web.StreamResponse:
        try:
            job = parse_job(forwarded.api, forwarded.body)
            if is_probe(forwarded.request_id) and not is_probe_body(
                forwarded.api, job.model, forwarded.body
            ):
                return self._refuse(400, Failed("bad_probe", "a probe is ROUTE-9's, exactly"))
            events = run_locally(self._inference.get(job.model), job)
        except (ApiError, InferenceError) as exc:
            return self._refuse(exc.status, _failure(exc))
        try:
            first = await anext(events)
        except (ApiError, InferenceError) as exc:
            await events.aclose()
            return self._refuse(exc.status, _failure(exc))
        response = web.StreamResponse(
            headers={
                "Content-Type": EVENTS_CONTENT_TYPE,
                SERVER_MS_HEADER: f"{(time.perf_counter() - arrived) * 1000:.3f}",
            }
        )
        try:
            await response.prepare(request)
            await self._stream(response, forwarded, job, first, events)
        finally:
            await events.aclose()
        await response.write_eof()
        if is_probe(forwarded.request_id):  # ROUTE-9: proof of a model, nobody's usage
            log.debug("model probe answered", model=job.model, api=job.api)
            return response
        self.served[forwarded.path[-1]] += 1
        log.info("forwarded request served", model=job.model, api=job.api)
        return response

    async def _stream(
        self,
        response: web.StreamResponse,
        forwarded: InferRequest,
        job: Job,
        first: LocalEvent,
        events: AsyncGenerator[LocalEvent, None],
    ) -> None:
        event: LocalEvent = first
        chunks = 0
        sent_bytes = 0
        try:
            while isinstance(event, TextChunk):
                chunks += 1
                sent_bytes += len(event.text.encode("utf-8"))
                await response.write(encode_event(Text(event.text)))
                event = await anext(events)
            if isinstance(event, Finish):
                usage = event.usage
                receipt = self._receipt(
                    forwarded, job, usage.prompt_tokens, usage.completion_tokens, sent_bytes
                )
                out: Event = Finished(event.reason, receipt)
            else:
                for vectors in _batches(event):
                    await response.write(encode_event(vectors))
                out = Finished("stop", self._receipt(forwarded, job, event.prompt_tokens, 0, 0))
        except InferenceError as exc:  # after the first event: the status is already sent
            log.warning("forwarded generation failed mid-stream", error=str(exc), chunks=chunks)
            out = _failure(exc)
        except (ConnectionError, asyncio.CancelledError):
            raise  # the requester left: nobody to tell
        except Exception:  # a bug or a backend crash: the requester still gets a well-formed end
            log.exception("forwarded generation crashed mid-stream")
            out = Failed("internal", "the generation failed; see the serving node's log")
        await response.write(encode_event(out))

    def _receipt(
        self,
        forwarded: InferRequest,
        job: Job,
        prompt_tokens: int,
        completion_tokens: int,
        sent_bytes: int,
    ) -> bytes:
        """The signed receipt, its counts within RECEIPT-2's bounds for what was sent: a
        backend that counts tokens no text event shows (a reasoning model's) must not make an
        honest receipt look inflated."""
        sent = Received(sent_bytes, job.max_tokens, job.stop_bytes)
        now_ms = time.time_ns() // 1_000_000
        receipt = seal_receipt(
            self._key,
            forwarded,
            model=job.model,
            prompt_tokens=min(prompt_tokens, prompt_limit(forwarded)),
            completion_tokens=min(completion_tokens, completion_limit(sent)),
            seq=self._seq.next(),
            now_ms=now_ms,
            weights=self._weights(job.model),
        )
        if not is_probe(forwarded.request_id):  # ROUTE-9: a probe is nobody's usage
            self._receipts.add("served", receipt)
            self.acks.expect(receipt, forwarded.path[-1], now_ms)
        return receipt

    def _weights(self, model: str) -> bytes:
        """RECEIPT-1: the SHA-256 of the weights file that served `model`, if it has one."""
        return self._inference.get(model).card.sha256 or b""

    def _refuse(self, status: int, failure: Failed) -> web.Response:
        self.refused[failure.code] += 1
        log.info(
            "forwarded request refused", status=status, code=failure.code, reason=failure.message
        )
        headers = {"Retry-After": str(failure.retry_after_s)} if failure.retry_after_s else None
        return web.Response(
            status=status,
            body=encode_failure(failure),
            content_type=EVENTS_CONTENT_TYPE,
            headers=headers,
        )


def _failure(exc: ApiError | InferenceError) -> Failed:
    retry = exc.retry_after_s if isinstance(exc, Overloaded) else 0
    return Failed(exc.code, str(exc), retry)


def _batches(embeddings: Embeddings) -> list[Vectors]:
    """FWD-4: float32 arrays in events of about VECTORS_EVENT_BYTES (at least one array each)."""
    events: list[Vectors] = []
    batch: list[bytes] = []
    size = 0
    for vector in embeddings.vectors:
        data = np.asarray(vector, dtype="<f4").tobytes()
        if batch and size + len(data) > VECTORS_EVENT_BYTES:
            events.append(Vectors(tuple(batch)))
            batch, size = [], 0
        batch.append(data)
        size += len(data)
    return [*events, Vectors(tuple(batch))]
