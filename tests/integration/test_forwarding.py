"""The requesting side of forwarding against a peer that misbehaves, over real mutual TLS: a
real PeerServer whose infer route answers what each test scripts, and a real Forwarder."""

import asyncio
import datetime as dt
import hashlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web

from fpai_node.gossip.messages import Announcement, Capabilities, Hardware, Model, Status
from fpai_node.gossip.state import MemberView
from fpai_node.identity import NodeKey
from fpai_node.identity.tls import TlsIdentity
from fpai_node.inference.base import (
    ContextLengthExceeded,
    Embeddings,
    Finish,
    InferenceError,
    InvalidRequest,
    Overloaded,
    TextChunk,
    UpstreamError,
    Usage,
)
from fpai_node.inference.service import InferenceService
from fpai_node.peer.client import PeerClient
from fpai_node.peer.server import PeerServer
from fpai_node.router.forward import (
    Forwarder,
    NotMemberYet,
    PeerRefused,
    PeerUnavailable,
    Timing,
)
from fpai_node.router.jobs import parse_job
from fpai_node.router.messages import (
    INFER_PATH,
    SERVER_MS_HEADER,
    UNSEEN_COMPLETION_TOKENS,
    Failed,
    Finished,
    InferRequest,
    Text,
    Vectors,
    encode_event,
    encode_failure,
    seal_receipt,
)
from fpai_node.router.pace import FIRST_EVENT_MIN_S, Pace
from fpai_node.router.receipts import Kept, ReceiptLog, read_receipts
from fpai_node.router.router import NoRoute, Router
from fpai_node.router.select import Candidate
from fpai_node.router.serve import PeerInference
from fpai_node.service import StreamRoute
from fpai_node.testing.scripted_backend import ScriptedBackend
from fpai_node.wire import PROTOCOL_VERSION

pytestmark = pytest.mark.timeout(30)
SERVER, STRANGER, REQUESTER = NodeKey.generate(), NodeKey.generate(), NodeKey.generate()
BODY = b'{"model": "x", "messages": [{"role": "user", "content": "Hi"}]}'
Script = Callable[[InferRequest, web.Request], Awaitable[web.StreamResponse]]


def receipt(
    key: NodeKey, request: InferRequest, model: str = "x", completion_tokens: int = 2
) -> bytes:
    return seal_receipt(
        key,
        request,
        model=model,
        prompt_tokens=7,
        completion_tokens=completion_tokens,
        seq=time.time_ns(),
        now_ms=time.time_ns() // 1_000_000,
    )


def flipped(frame: bytes) -> bytes:
    """The frame with its signature's last bit flipped (a fixed last byte would match one
    signature in 256, and the test would pass a forged receipt that often)."""
    return frame[:-1] + bytes([frame[-1] ^ 1])


async def stream(request: web.Request, *events: bytes) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    for event in events:
        await response.write(event)
    await response.write_eof()
    return response


class Peer:
    """A serving peer that follows `script` for every infer request."""

    def __init__(self, key: NodeKey = SERVER) -> None:
        self.key = key
        self.script: Script | None = None
        now = dt.datetime.now(dt.UTC)
        route = StreamRoute(INFER_PATH, self._infer, max_body_bytes=1 << 20, rate_per_s=100)
        self.server = PeerServer(TlsIdentity.open(key, now), [route])

    async def _infer(self, peer: str, body: bytes, request: web.Request) -> web.StreamResponse:
        assert self.script is not None
        return await self.script(InferRequest.decode(body), request)


async def started(key: NodeKey) -> Peer:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.setblocking(False)
    scripted = Peer(key)
    await scripted.server.start(sock)
    return scripted


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    scripted = await started(SERVER)
    yield scripted
    await scripted.server.stop()


@pytest.fixture
async def forwarder(tmp_path: Path) -> AsyncIterator[tuple[Forwarder, ReceiptLog]]:
    log = ReceiptLog(tmp_path / "receipts.log")
    client = PeerClient(TlsIdentity.open(REQUESTER, dt.datetime.now(dt.UTC)))
    forwarder = Forwarder(REQUESTER, client, log, is_dead=lambda peer: False)
    await client.start()
    yield forwarder, log
    await client.close()
    await log.close()


async def run(forwarder: Forwarder, peer: Peer) -> list[object]:
    job = parse_job("chat", BODY)
    request = InferRequest("chat", BODY, "req-1", (REQUESTER.node_id,))
    candidate = Candidate(SERVER.node_id, peer.server.address, 0)
    return [e async for e in forwarder.attempt(candidate, job, request, Timing())]


async def test_an_honest_receipt_is_kept(
    peer: Peer, forwarder: tuple[Forwarder, ReceiptLog], tmp_path: Path
) -> None:
    async def honest(request: InferRequest, http: web.Request) -> web.StreamResponse:
        return await stream(
            http,
            encode_event(Text("Hel")),
            encode_event(Text("lo")),
            encode_event(Finished("stop", receipt(SERVER, request))),
        )

    peer.script = honest
    events = await run(forwarder[0], peer)
    assert events == [TextChunk("Hel"), TextChunk("lo"), Finish("stop", Usage(7, 2))]
    assert forwarder[0].forwarded == {SERVER.node_id: 1}
    await forwarder[1].close()
    [kept] = list(read_receipts(tmp_path / "receipts.log"))
    assert isinstance(kept, Kept)
    assert (kept.direction, kept.receipt.server, kept.receipt.requester) == (
        "used",
        SERVER.node_id,
        REQUESTER.node_id,
    )
    assert kept.pair is not None  # RWD-1: acknowledged, with what arrived
    ack = kept.pair.ack
    assert (ack.verdict, ack.prompt_tokens, ack.completion_tokens) == ("ok", 7, 2)
    assert ack.output == hashlib.sha256(b"Hello").digest()
    assert (ack.requester, ack.server) == (REQUESTER.node_id, SERVER.node_id)


async def test_the_hop_latency_is_the_time_to_the_first_event_less_the_servers_part(
    peer: Peer, forwarder: tuple[Forwarder, ReceiptLog]
) -> None:
    """ROUTE-8: the time from sending to the first event minus the peer's `FPAI-Server-Ms`,
    at least 0, averaged per peer with weight 0.2 for the newest measurement."""
    server_ms = ["60000"]  # more than the whole request takes: the hop costs at least 0

    async def timed(request: InferRequest, http: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={SERVER_MS_HEADER: server_ms[0]})
        await response.prepare(http)
        for event in (Text("ok"), Finished("stop", receipt(SERVER, request))):
            await response.write(encode_event(event))
        await response.write_eof()
        return response

    peer.script = timed
    await run(forwarder[0], peer)
    assert forwarder[0].latency_ms == {SERVER.node_id: 0.0}
    server_ms[0] = "0"
    started = time.perf_counter()
    await run(forwarder[0], peer)
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert 0.0 < forwarder[0].latency_ms[SERVER.node_id] <= 0.2 * elapsed_ms


async def test_a_backend_counting_unseen_tokens_signs_a_receipt_within_the_bound(
    peer: Peer, forwarder: tuple[Forwarder, ReceiptLog], tmp_path: Path
) -> None:
    """RECEIPT-2 from the serving side: a backend reporting tokens no text event showed (a
    reasoning model's) gets its count clamped before signing, so the requester keeps the
    receipt instead of rejecting an honest server as inflated."""
    backend = ScriptedBackend([TextChunk("Hi"), Finish("stop", Usage(7, 5000))], model="x")
    inference = InferenceService([backend], max_waiting=1)
    await inference.start()
    served = ReceiptLog(tmp_path / "served.log")
    serving = PeerInference(SERVER, inference, served, bool)

    async def real(request: InferRequest, http: web.Request) -> web.StreamResponse:
        return await serving.handle(REQUESTER.node_id, request.encode(), http)

    peer.script = real
    events = await run(forwarder[0], peer)
    await served.close()
    await inference.close()
    assert events == [TextChunk("Hi"), Finish("stop", Usage(7, 2 + UNSEEN_COMPLETION_TOKENS))]
    assert forwarder[0].receipts_rejected == {}
    assert forwarder[0].forwarded == {SERVER.node_id: 1}


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (lambda request: receipt(STRANGER, request), "wrong_server"),
        (lambda request: receipt(SERVER, request, model="y"), "wrong_model"),
        (
            lambda request: receipt(
                SERVER, InferRequest("chat", BODY + b" ", request.request_id, request.path)
            ),
            "wrong_request",
        ),
        (lambda request: flipped(receipt(SERVER, request)), "bad_signature"),
        (lambda request: receipt(SERVER, request, completion_tokens=10**12), "inflated_completion"),
    ],
)
async def test_a_bad_receipt_is_rejected_and_the_client_still_gets_its_answer(
    peer: Peer,
    forwarder: tuple[Forwarder, ReceiptLog],
    tmp_path: Path,
    forge: Callable[[InferRequest], bytes],
    reason: str,
) -> None:
    async def dishonest(request: InferRequest, http: web.Request) -> web.StreamResponse:
        return await stream(
            http, encode_event(Text("Hi")), encode_event(Finished("stop", forge(request)))
        )

    peer.script = dishonest
    events = await run(forwarder[0], peer)
    assert events == [TextChunk("Hi"), Finish("stop", Usage(0, 0))]  # no unproven counts
    assert forwarder[0].receipts_rejected == {reason: 1}
    assert forwarder[0].demotions == {reason: 1}  # a receipt that fails is a lie (ROUTE-3)
    assert not forwarder[0].healthy(SERVER.node_id)
    await forwarder[1].close()
    kept = list(read_receipts(tmp_path / "receipts.log"))
    if reason != "inflated_completion":
        assert kept == []  # not the server's receipt for this request: nothing to acknowledge
        return
    # the server's own receipt claiming too much: acknowledged as disputed, with no counts
    [record] = kept
    assert isinstance(record, Kept) and record.pair is not None
    ack = record.pair.ack
    assert (ack.verdict, ack.prompt_tokens, ack.completion_tokens) == (reason, 0, 0)


async def test_a_stream_cut_after_the_first_event_fails(
    peer: Peer, forwarder: tuple[Forwarder, ReceiptLog]
) -> None:
    async def cut(request: InferRequest, http: web.Request) -> web.StreamResponse:
        return await stream(http, encode_event(Text("Hi")), encode_event(Text("!"))[:3])

    peer.script = cut
    received: list[object] = []
    job = parse_job("chat", BODY)
    request = InferRequest("chat", BODY, "req-1", (REQUESTER.node_id,))
    candidate = Candidate(SERVER.node_id, peer.server.address, 0)
    with pytest.raises(PeerUnavailable, match="cut the stream"):
        async for event in forwarder[0].attempt(candidate, job, request, Timing()):
            received.append(event)
    assert received == [TextChunk("Hi")]
    assert forwarder[0].inflight == {}


async def test_a_peer_that_never_answers_is_given_up_on_at_its_deadline_and_demoted(
    peer: Peer, forwarder: tuple[Forwarder, ReceiptLog]
) -> None:
    """Issue 13 finding 3: a member that black-holed requests held each for the 120 s read
    timeout; FWD-8 gives up once the first event is long overdue for that peer's pace."""

    async def black_hole(request: InferRequest, http: web.Request) -> web.StreamResponse:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    peer.script = black_hole
    started = time.monotonic()
    with pytest.raises(PeerUnavailable, match=f"no first event within {FIRST_EVENT_MIN_S:.1f} s"):
        await run(forwarder[0], peer)
    waited = time.monotonic() - started
    assert FIRST_EVENT_MIN_S <= waited < FIRST_EVENT_MIN_S + 5  # not READ_TIMEOUT_S
    assert forwarder[0].demoted[SERVER.node_id].reason == "no_first_event"
    assert forwarder[0].demotions == {"no_first_event": 1}
    assert not forwarder[0].healthy(SERVER.node_id)
    assert forwarder[0].inflight == {}


async def test_a_refusal_before_the_first_event_is_typed(
    peer: Peer, forwarder: tuple[Forwarder, ReceiptLog]
) -> None:
    async def busy(request: InferRequest, http: web.Request) -> web.StreamResponse:
        return web.Response(status=429, body=encode_failure(Failed("overloaded", "full", 7)))

    peer.script = busy
    with pytest.raises(Overloaded) as raised:
        await run(forwarder[0], peer)
    assert raised.value.retry_after_s == 7
    assert SERVER.node_id in str(raised.value)
    assert forwarder[0].healthy(SERVER.node_id)  # busy is not broken


async def test_a_refusal_as_no_member_is_told_apart(
    peer: Peer, forwarder: tuple[Forwarder, ReceiptLog]
) -> None:
    """FWD-7's refusal is its own type: a newcomer's probe (ROUTE-9) defers on it, since the
    peer's gossip may not have heard of the newcomer yet."""

    async def stranger(request: InferRequest, http: web.Request) -> web.StreamResponse:
        failure = Failed("not_a_member", "this node serves federation members")
        return web.Response(status=403, body=encode_failure(failure))

    peer.script = stranger
    with pytest.raises(NotMemberYet, match="not_a_member"):
        await run(forwarder[0], peer)


async def test_an_unreachable_peer_is_marked_failed(
    forwarder: tuple[Forwarder, ReceiptLog],
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    job = parse_job("chat", BODY)
    request = InferRequest("chat", BODY, "req-1", (REQUESTER.node_id,))
    with pytest.raises(PeerUnavailable, match="unreachable"):
        async for _ in forwarder[0].attempt(
            Candidate(SERVER.node_id, address, 0), job, request, Timing()
        ):
            pass
    assert not forwarder[0].healthy(SERVER.node_id)


def member(peer: Peer, model: str, queue: int = 0) -> MemberView:
    caps = Capabilities(
        peer.server.address, "", (Model(model, 4096, "llamacpp"),), Hardware("", "", 0), 0, queue
    )
    return MemberView(
        peer.key.node_id,
        peer.server.address,
        Status.ALIVE,
        1,
        Announcement(1, PROTOCOL_VERSION, False, caps),
    )


def routed(
    forwarder: Forwarder, inference: InferenceService, members: Callable[[], list[MemberView]]
) -> Router:
    """A Router over `members`, each of whose announced models answered a probe before
    (ROUTE-9): the tests below are about what happens next."""
    for peer in members():
        assert peer.announcement is not None
        for model in peer.announcement.capabilities.models:
            forwarder.proofs.answered(peer.node_id, model.model_id)
    return Router(REQUESTER.node_id, inference, members=members, forwarder=forwarder)


async def test_the_router_skips_a_busy_peer_and_a_broken_one_for_the_next(
    forwarder: tuple[Forwarder, ReceiptLog],
) -> None:
    """Three peers offer `x`, ranked busy < broken < honest by their announced queues; the
    router takes the first that produces an event and reports who served. ROUTE-7: when none
    could, and not all were only busy, a 503 naming the model and every node tried."""
    busy, broken, honest = [await started(NodeKey.generate()) for _ in range(3)]

    async def full(request: InferRequest, http: web.Request) -> web.StreamResponse:
        return web.Response(status=429, body=encode_failure(Failed("overloaded", "full", 3)))

    async def garbage(request: InferRequest, http: web.Request) -> web.StreamResponse:
        return await stream(http, b"\x00\x00\x00\x02\xc1\xc1")

    async def serve(request: InferRequest, http: web.Request) -> web.StreamResponse:
        return await stream(
            http,
            encode_event(Text("ok")),
            encode_event(Finished("length", receipt(honest.key, request))),
        )

    busy.script, broken.script, honest.script = full, garbage, serve
    members = [member(busy, "x"), member(broken, "x", queue=1), member(honest, "x", queue=2)]
    router = routed(forwarder[0], InferenceService([], max_waiting=0), lambda: members)
    try:
        opened = await router.open(parse_job("chat", BODY), "req-9")
        rest = [e async for e in opened.events]
        assert (opened.served_by, opened.first, rest) == (
            honest.key.node_id,
            TextChunk("ok"),
            [Finish("length", Usage(7, 2))],
        )
        assert opened.overhead_ms > 0
        assert not forwarder[0].healthy(broken.key.node_id)
        assert forwarder[0].demotions == {"broke_protocol": 1}
        assert forwarder[0].healthy(busy.key.node_id)

        honest.script = full
        with pytest.raises(NoRoute) as raised:  # busy, broken and now busy: not all were busy
            await router.open(parse_job("chat", BODY), "req-10")
        message = str(raised.value)
        assert "'x'" in message and all(p.key.node_id in message for p in (busy, broken, honest))
    finally:
        for scripted in (busy, broken, honest):
            await scripted.server.stop()


async def plain_404(request: InferRequest, http: web.Request) -> web.StreamResponse:
    return web.Response(status=404, text="not found")


async def vectors_for_chat(request: InferRequest, http: web.Request) -> web.StreamResponse:
    return await stream(http, encode_event(Vectors((bytes(4),))))


async def too_many_tokens(request: InferRequest, http: web.Request) -> web.StreamResponse:
    return await stream(http, *(encode_event(Text("a")) for _ in range(4)))


async def error_event(request: InferRequest, http: web.Request) -> web.StreamResponse:
    return await stream(
        http, encode_event(Text("a")), encode_event(Failed("internal", "x\nforged"))
    )


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (plain_404, "refused \\(404\\)"),  # a node without the route: broken, not "bad request"
        (vectors_for_chat, "answered a chat request with Vectors"),
        (too_many_tokens, "more than the answer may hold \\(2 tokens"),
        (error_event, "failed \\(internal\\): x forged"),  # no control characters from a peer
    ],
)
async def test_a_broken_answer_fails_and_demotes_the_peer(
    peer: Peer,
    forwarder: tuple[Forwarder, ReceiptLog],
    script: Script,
    expected: str,
) -> None:
    peer.script = script
    body = b'{"model": "x", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}'
    request = InferRequest("chat", body, "req-1", (REQUESTER.node_id,))
    with pytest.raises(PeerUnavailable, match=expected):
        async for _ in forwarder[0].attempt(
            Candidate(SERVER.node_id, peer.server.address, 0),
            parse_job("chat", body),
            request,
            Timing(),
        ):
            pass
    assert not forwarder[0].healthy(SERVER.node_id)
    assert forwarder[0].inflight == {}


async def test_when_every_peer_blames_the_request_the_client_gets_their_400(
    forwarder: tuple[Forwarder, ReceiptLog],
) -> None:
    """ROUTE-7: the request's own fault, a retry cannot help: the first `400`."""
    peers = [await started(NodeKey.generate()) for _ in range(2)]

    async def too_long(request: InferRequest, http: web.Request) -> web.StreamResponse:
        failure = Failed("context_length_exceeded", "the prompt does not fit")
        return web.Response(status=400, body=encode_failure(failure))

    for scripted in peers:
        scripted.script = too_long
    router = routed(
        forwarder[0], InferenceService([], max_waiting=0), lambda: [member(p, "x") for p in peers]
    )
    try:
        with pytest.raises(PeerRefused) as raised:
            await router.open(parse_job("chat", BODY), "req-11")
        assert (raised.value.status, raised.value.code) == (400, "context_length_exceeded")
        assert all(forwarder[0].healthy(p.key.node_id) for p in peers)
    finally:
        for scripted in peers:
            await scripted.server.stop()


async def test_embeddings_arrive_in_several_events_then_the_receipt(
    peer: Peer, forwarder: tuple[Forwarder, ReceiptLog]
) -> None:
    async def split(request: InferRequest, http: web.Request) -> web.StreamResponse:
        one, two = (np.asarray(v, dtype="<f4").tobytes() for v in ([1.0, 0.0], [0.0, 1.0]))
        return await stream(
            http,
            encode_event(Vectors((one,))),
            encode_event(Vectors((two,))),
            encode_event(Finished("stop", receipt(SERVER, request))),
        )

    peer.script = split
    body = b'{"model": "x", "input": ["a", "b"]}'
    request = InferRequest("embeddings", body, "req-2", (REQUESTER.node_id,))
    events = [
        e
        async for e in forwarder[0].attempt(
            Candidate(SERVER.node_id, peer.server.address, 0),
            parse_job("embeddings", body),
            request,
            Timing(),
        )
    ]
    assert events == [Embeddings([[1.0, 0.0], [0.0, 1.0]], 7)]


@pytest.mark.parametrize(
    ("local_error", "served_by_peer"),
    [
        (UpstreamError("the upstream hung up"), True),  # the node's backend failed: ask a peer
        (ContextLengthExceeded("too long here"), True),  # a peer's context may be longer
        (InvalidRequest("bad stop sequence"), False),  # the request itself: final
    ],
)
async def test_a_local_failure_moves_on_to_a_peer_unless_it_blames_the_request(
    peer: Peer,
    forwarder: tuple[Forwarder, ReceiptLog],
    local_error: InferenceError,
    served_by_peer: bool,
) -> None:
    async def serve(request: InferRequest, http: web.Request) -> web.StreamResponse:
        return await stream(
            http, encode_event(Text("ok")), encode_event(Finished("stop", receipt(SERVER, request)))
        )

    peer.script = serve
    local = InferenceService(
        [ScriptedBackend(error=local_error, model="x", context_length=4096)], max_waiting=1
    )
    await local.start()
    # the peer announces a queue so that the idle local backend ranks first
    router = routed(forwarder[0], local, lambda: [member(peer, "x", queue=3)])
    if served_by_peer:
        opened = await router.open(parse_job("chat", BODY), "req-12")
        await opened.events.aclose()
        assert (opened.served_by, opened.first) == (SERVER.node_id, TextChunk("ok"))
    else:
        with pytest.raises(InvalidRequest):
            await router.open(parse_job("chat", BODY), "req-12")
    await local.close()


async def test_peers_blaming_the_request_and_a_busy_rest_give_the_400(
    forwarder: tuple[Forwarder, ReceiptLog],
) -> None:
    """ROUTE-7: some candidates blamed the request, all others were only overloaded: `400`."""
    blaming, busy = [await started(NodeKey.generate()) for _ in range(2)]

    async def bad(request: InferRequest, http: web.Request) -> web.StreamResponse:
        failure = Failed("context_length_exceeded", "the prompt does not fit")
        return web.Response(status=400, body=encode_failure(failure))

    async def full(request: InferRequest, http: web.Request) -> web.StreamResponse:
        return web.Response(status=429, body=encode_failure(Failed("overloaded", "full", 3)))

    blaming.script, busy.script = bad, full
    router = routed(
        forwarder[0],
        InferenceService([], max_waiting=0),
        lambda: [member(blaming, "x"), member(busy, "x", queue=1)],
    )
    try:
        with pytest.raises(PeerRefused) as raised:
            await router.open(parse_job("chat", BODY), "req-13")
        assert raised.value.code == "context_length_exceeded"
    finally:
        for scripted in (blaming, busy):
            await scripted.server.stop()


async def first_event_then_silence(request: InferRequest, http: web.Request) -> web.StreamResponse:
    """A peer cut off after its first token: the connection stays open and says nothing."""
    response = web.StreamResponse()
    await response.prepare(http)
    await response.write(encode_event(Text("Hel")))
    await asyncio.sleep(60)  # longer than any test: only the requester's watch ends this
    return response


async def test_a_peer_silent_past_its_usual_gap_ends_the_answer(
    peer: Peer, forwarder: tuple[Forwarder, ReceiptLog], monkeypatch: pytest.MonkeyPatch
) -> None:
    """FWD-9: after the first event, no event for ten times the peer's usual gap (at least
    EVENT_GAP_MIN_S, here lowered to keep the test short) ends the answer; the peer is
    failed (ROUTE-3's cooldown), not demoted: a cut-off peer has not lied."""
    monkeypatch.setattr("fpai_node.router.pace.EVENT_GAP_MIN_S", 0.3)
    forwarder[0].pace[SERVER.node_id] = Pace(event_gap_ms=10.0)
    peer.script = first_event_then_silence
    started = time.monotonic()
    with pytest.raises(PeerUnavailable, match=r"sent no event for 0\.3 s"):
        await run(forwarder[0], peer)
    assert time.monotonic() - started < 5  # not READ_TIMEOUT_S
    assert SERVER.node_id in forwarder[0].failed_at
    assert forwarder[0].demoted == {}


async def test_a_peer_declared_dead_mid_answer_ends_it_at_once(
    peer: Peer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FWD-9: gossip's verdict ends the wait, long before the gap deadline would."""
    monkeypatch.setattr("fpai_node.router.peer_watch.LIVENESS_CHECK_S", 0.05)
    dead = {SERVER.node_id: False}
    log = ReceiptLog(tmp_path / "receipts.log")
    client = PeerClient(TlsIdentity.open(REQUESTER, dt.datetime.now(dt.UTC)))
    watched = Forwarder(REQUESTER, client, log, is_dead=lambda node: dead[node])
    await client.start()
    try:
        peer.script = first_event_then_silence
        job = parse_job("chat", BODY)
        request = InferRequest("chat", BODY, "req-dead", (REQUESTER.node_id,))
        candidate = Candidate(SERVER.node_id, peer.server.address, 0)
        answer = watched.attempt(candidate, job, request, Timing())
        assert await anext(answer) == TextChunk("Hel")
        dead[SERVER.node_id] = True
        started = time.monotonic()
        with pytest.raises(PeerUnavailable, match="was declared dead"):
            await anext(answer)
        assert time.monotonic() - started < 1.0  # the gap deadline is 10 s: this was gossip
    finally:
        await client.close()
        await log.close()


async def test_a_slow_consumer_is_not_the_peers_silence(
    peer: Peer, forwarder: tuple[Forwarder, ReceiptLog], monkeypatch: pytest.MonkeyPatch
) -> None:
    """FWD-9: the gap deadline runs only while the request waits on the peer; a client that
    takes longer than it to take each token does not fail the answer."""
    monkeypatch.setattr("fpai_node.router.pace.EVENT_GAP_MIN_S", 0.2)
    forwarder[0].pace[SERVER.node_id] = Pace(event_gap_ms=10.0)

    async def quick(request: InferRequest, http: web.Request) -> web.StreamResponse:
        events = [Text("a"), Text("b"), Finished("stop", receipt(SERVER, request))]
        return await stream(http, *(encode_event(e) for e in events))

    peer.script = quick
    job = parse_job("chat", BODY)
    request = InferRequest("chat", BODY, "req-slow", (REQUESTER.node_id,))
    candidate = Candidate(SERVER.node_id, peer.server.address, 0)
    taken = []
    async for event in forwarder[0].attempt(candidate, job, request, Timing()):
        taken.append(event)
        await asyncio.sleep(0.5)  # longer than the gap deadline, at every event
    assert taken == [TextChunk("a"), TextChunk("b"), Finish("stop", Usage(7, 2))]
