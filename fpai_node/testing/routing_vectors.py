"""protocol/vectors/routing/ (specs/0006-routing.md): ranking inputs and their order, forwarded
requests, answer events and receipts, each valid or with the reason a node refuses it.

Each expectation the implementation computes is also derived here without it (a ranking by a
sort key written from ROUTE-3..ROUTE-5, requests, events and receipts by hand, the reason
RECEIPT-2 names for what each bad receipt gets wrong) and checked by `expected`."""

import dataclasses
import hashlib
from collections.abc import Iterator
from typing import Any

from fpai_node.identity import NodeKey
from fpai_node.router import messages
from fpai_node.router.select import LocalOffer, PeerOffer, rank
from fpai_node.testing.vectors import ALICE, BOB, NOW_MS, Case, expected, to_json
from fpai_node.wire import codec

CAROL = NodeKey.from_seed(bytes(range(64, 96)))
DAVE = NodeKey.from_seed(bytes(range(96, 128)))
_BODY = b'{"model":"x","messages":[{"role":"user","content":"Hi"}],"max_tokens":1}'
_REQUEST = messages.InferRequest("chat", _BODY, "req-1", (BOB.node_id,))
_RECEIVED = messages.Received(answer_bytes=3, max_tokens=1, stop_bytes=0)  # "Hey", as asked


def _peer(key: NodeKey, **changes: Any) -> PeerOffer:
    base = PeerOffer(
        node_id=key.node_id,
        peer_address="127.0.0.1:7100",
        context_length=4096,
        load_permille=0,
        queue_depth=0,
        healthy=True,
    )
    return dataclasses.replace(base, **changes)


def _spec_order(
    request_id: str,
    prompt_tokens: int,
    local_id: str,
    local: LocalOffer | None,
    peers: list[PeerOffer],
) -> list[str]:
    """ROUTE-3..ROUTE-5 as the spec words them, written apart from router/select.py."""

    def fits(context: int) -> bool:  # ROUTE-2: 0 is unknown and fits
        return context == 0 or prompt_tokens < context

    keyed: list[tuple[tuple[int, int, int, int, float, bytes], str]] = []
    if local is not None:
        tier = 0 if fits(local.context_length or 0) else 2
        queue = local.waiting + (1 if local.running >= local.capacity else 0)
        keyed.append(((tier, queue, 0, 0, 0.0, b""), local_id))
    for p in peers:
        if p.node_id == local_id:
            continue
        tier = 2 if not fits(p.context_length) else (0 if p.healthy else 1)
        queue = p.queue_depth + p.inflight + (1 if p.load_permille == 1000 else 0)
        latency = 50.0 if p.latency_ms is None else p.latency_ms
        spread = hashlib.blake2b(
            request_id.encode() + b"\x00" + p.node_id.encode(), digest_size=8
        ).digest()
        keyed.append(((tier, queue, 1, p.load_permille // 250, latency, spread), p.node_id))
    return [node for _, node in sorted(keyed)]


def _rank_case(
    description: str,
    local: LocalOffer | None,
    peers: list[PeerOffer],
    prompt_tokens: int = 10,
    request_id: str = "req-1",
) -> Case:
    order = rank(
        request_id=request_id,
        prompt_tokens=prompt_tokens,
        local_id=ALICE.node_id,
        local=local,
        peers=peers,
    )
    ranked = [c.node_id for c in order]
    by_spec = _spec_order(request_id, prompt_tokens, ALICE.node_id, local, peers)
    expected(f"routing {description}", ranked, by_spec)
    return Case(
        {
            "description": description,
            "input": {
                "request_id": request_id,
                "prompt_tokens": prompt_tokens,
                "local_id": ALICE.node_id,
                "local": None if local is None else dataclasses.asdict(local),
                "peers": [dataclasses.asdict(p) for p in peers],
            },
            "expect": {"ok": [c.node_id for c in order]},
        }
    )


def _rank_cases() -> Iterator[tuple[str, Case]]:
    free = LocalOffer(running=0, capacity=1, waiting=0, context_length=4096)
    busy = LocalOffer(running=1, capacity=1, waiting=0, context_length=4096)
    yield "rank-local-first", _rank_case("a free local slot wins", free, [_peer(BOB)])
    yield (
        "rank-idle-peer-before-busy-local",
        _rank_case("local busy, peer idle: the peer first", busy, [_peer(BOB)]),
    )
    yield (
        "rank-tie-goes-local",
        _rank_case(
            "local busy and a full peer: equal expected queue, local first",
            busy,
            [_peer(BOB, load_permille=1000)],
        ),
    )
    yield (
        "rank-queue-and-inflight",
        _rank_case(
            "gateway: expected queue counts this node's requests in flight",
            None,
            [_peer(BOB, queue_depth=1), _peer(CAROL, inflight=2), _peer(DAVE)],
        ),
    )
    yield (
        "rank-unhealthy-last",
        _rank_case(
            "a peer that failed or is suspected ranks after every healthy one",
            busy,
            [_peer(BOB, healthy=False), _peer(CAROL, queue_depth=3)],
        ),
    )
    yield (
        "rank-load-bucket-then-latency",
        _rank_case(
            "loads 100 and 200 share a bucket: the lower latency wins; 300 is the next bucket",
            None,
            [
                _peer(BOB, load_permille=100, latency_ms=30.0),
                _peer(CAROL, load_permille=200, latency_ms=5.0),
                _peer(DAVE, load_permille=300, latency_ms=1.0),
            ],
        ),
    )
    yield (
        "rank-unknown-latency",
        _rank_case(
            "a peer never measured counts as 50 ms",
            None,
            [_peer(BOB, latency_ms=60.0), _peer(CAROL), _peer(DAVE, latency_ms=40.0)],
        ),
    )
    yield (
        "rank-too-small-last",
        _rank_case(
            "a 600-token prompt: contexts of 512 go last, 0 means unknown and fits",
            LocalOffer(running=0, capacity=1, waiting=0, context_length=512),
            [_peer(BOB, context_length=512), _peer(CAROL, context_length=0, queue_depth=5)],
            prompt_tokens=600,
        ),
    )
    for request_id in ("req-1", "req-2", "req-3"):
        yield (
            f"rank-spread-{request_id}",
            _rank_case(
                "equal peers: the BLAKE2b tie-break decides",
                None,
                [_peer(BOB), _peer(CAROL), _peer(DAVE)],
                request_id=request_id,
            ),
        )


def _request_json(request: messages.InferRequest) -> Any:
    return {
        "api": request.api,
        "body": {"$bin": request.body.hex()},
        "id": request.request_id,
        "path": list(request.path),
    }


def _request_cases() -> Iterator[tuple[str, Case]]:
    def case(description: str, value: codec.Value, error: str | None = None) -> Case:
        data = codec.encode(value)
        if error is None:
            expect: dict[str, Any] = {"ok": _request_json(messages.InferRequest.decode(data))}
        else:
            expect = {"error": error}
        return Case({"description": description, "expect": expect}, {"request.bin": data})

    valid = codec.decode(_REQUEST.encode())
    assert isinstance(valid, dict)
    by_hand = {"api": "chat", "body": {"$bin": _BODY.hex()}, "id": "req-1", "path": [BOB.node_id]}
    expected(
        "routing request-valid",
        _request_json(messages.InferRequest.decode(_REQUEST.encode())),
        by_hand,
    )
    yield "request-valid", case("a chat request from its entry node", valid)
    bad: list[tuple[str, str, codec.Value]] = [
        ("api", "api is chat, completion or embeddings", {**valid, "api": "images"}),
        ("path-empty", "the path names at least the caller", {**valid, "path": []}),
        (
            "path-repeats",
            "a node appears once in a path",
            {**valid, "path": [BOB.node_id, BOB.node_id]},
        ),
        ("path-not-ids", "a path holds node ids", {**valid, "path": ["127.0.0.1:7100"]}),
        ("id-characters", "ids are [A-Za-z0-9._-]", {**valid, "id": "a b"}),
        ("extra-key", "exactly the four keys", {**valid, "hops": 1}),
        ("body-text", "the body is bin", {**valid, "body": _BODY.decode()}),
    ]
    for name, description, value in bad:
        yield f"request-invalid-{name}", case(description, value, "malformed")


def _event_cases() -> Iterator[tuple[str, Case]]:
    valid: list[tuple[str, messages.Event, codec.Value]] = [  # the event, and FWD-4's map
        ("text", messages.Text("Hello"), {"t": "text", "text": "Hello"}),
        (
            "finish",
            messages.Finished("stop", b"receipt frame"),
            {"reason": "stop", "receipt": b"receipt frame", "t": "finish"},
        ),
        (
            "vectors",
            messages.Vectors((bytes(8), bytes(4))),
            {"t": "vectors", "vectors": [bytes(8), bytes(4)]},
        ),
        (
            "error",
            messages.Failed("overloaded", "busy", 2),
            {"code": "overloaded", "message": "busy", "retry": 2, "t": "error"},
        ),
    ]
    for name, event, value in valid:
        data = messages.encode_event(event)
        body = codec.encode(value)
        expected(f"routing event-{name}", data, len(body).to_bytes(4, "big") + body)
        yield (
            f"event-{name}",
            Case(
                {
                    "description": f"a {name} event, length prefix included",
                    "expect": {"ok": to_json(codec.decode(data[4:]))},
                },
                {"event.bin": data},
            ),
        )
    bad: list[tuple[str, str, codec.Value]] = [
        ("unknown", "an event type v1 does not define", {"t": "image"}),
        (
            "finish-reason",
            "reason is stop or length",
            {"reason": "eos", "receipt": b"", "t": "finish"},
        ),
        (
            "vectors-odd",
            "float32 arrays are multiples of 4 bytes",
            {"t": "vectors", "vectors": [bytes(3)]},
        ),
        ("text-extra", "exactly the keys of the type", {"t": "text", "text": "a", "x": 1}),
    ]
    for name, description, value in bad:
        data = codec.encode(value)
        yield (
            f"event-invalid-{name}",
            Case(
                {"description": description, "expect": {"error": "malformed"}},
                {"event.bin": len(data).to_bytes(4, "big") + data},
            ),
        )


def _receipt_case(
    description: str,
    receipt: bytes,
    *,
    server: NodeKey = ALICE,
    model: str = "x",
    now_ms: int = NOW_MS,
    received: messages.Received = _RECEIVED,
    by_spec: str | dict[str, Any],
) -> Case:
    """`by_spec`: the reason RECEIPT-2 names for what the receipt gets wrong, or for a good one
    the fields it must read back as."""
    try:
        checked = messages.check_receipt(
            receipt,
            request=_REQUEST,
            model=model,
            server=server.node_id,
            now_ms=now_ms,
            seen=messages.SeenReceipts(),
            received=received,
        )
        expect: dict[str, Any] = {"ok": to_json(dataclasses.asdict(checked))}
    except messages.ReceiptRejected as exc:
        expect = {"error": exc.reason}
    if isinstance(by_spec, str):
        expected(f"routing receipt {description}", expect, {"error": by_spec})
    else:
        got = dataclasses.asdict(checked) if "ok" in expect else expect
        expected(f"routing receipt {description}", got, by_spec)
    return Case(
        {
            "description": description,
            "context": {
                "now_ms": now_ms,
                "server": server.node_id,
                "model": model,
                "received": dataclasses.asdict(received),
            },
            "expect": expect,
        },
        {"receipt.bin": receipt, "request.bin": _REQUEST.encode()},
    )


def _receipt_cases() -> Iterator[tuple[str, Case]]:
    def sealed(
        signer: NodeKey = ALICE,
        request: messages.InferRequest = _REQUEST,
        model: str = "x",
        prompt_tokens: int = 9,
        completion_tokens: int = 1,
    ) -> bytes:
        return messages.seal_receipt(
            signer,
            request,
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            seq=1,
            now_ms=NOW_MS,
        )

    def fields(prompt_tokens: int = 9, completion_tokens: int = 1) -> dict[str, Any]:
        """A good receipt read back (RECEIPT-1): alice served bob's request at NOW_MS."""
        return {
            "server": ALICE.node_id,
            "requester": BOB.node_id,  # the last node of the request's path
            "request_id": "req-1",
            "request": hashlib.sha256(_REQUEST.encode()).digest(),
            "model": "x",
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "at_ms": NOW_MS,
            "weights": b"",
        }

    other = dataclasses.replace(_REQUEST, body=_BODY.replace(b"Hi", b"Yo"))
    yield (
        "receipt-valid",
        _receipt_case("alice served bob's request", sealed(), by_spec=fields()),
    )
    yield (
        "receipt-wrong-server",
        _receipt_case(
            "signed by carol, the request went to alice", sealed(CAROL), by_spec="wrong_server"
        ),
    )
    yield (
        "receipt-wrong-requester",
        _receipt_case(
            "names dave as the requester",
            sealed(request=dataclasses.replace(_REQUEST, path=(DAVE.node_id,))),
            by_spec="wrong_requester",
        ),
    )
    yield (
        "receipt-wrong-request",
        _receipt_case("for another request body", sealed(request=other), by_spec="wrong_request"),
    )
    yield (
        "receipt-wrong-model",
        _receipt_case("for another model", sealed(model="y"), by_spec="wrong_model"),
    )
    yield (
        "receipt-expired",
        _receipt_case(
            "checked after its 60 s lifetime",
            sealed(),
            now_ms=NOW_MS + 60_000,
            by_spec="expired",  # VERIFY: now >= exp
        ),
    )
    most_prompt = len(_BODY) + 256  # RECEIPT-2: body bytes plus 256
    yield (
        "receipt-prompt-at-limit",
        _receipt_case(
            "body bytes plus the template's tokens",
            sealed(prompt_tokens=most_prompt),
            by_spec=fields(prompt_tokens=most_prompt),
        ),
    )
    yield (
        "receipt-inflated-prompt",
        _receipt_case(
            "one prompt token more",
            sealed(prompt_tokens=most_prompt + 1),
            by_spec="inflated_prompt",
        ),
    )
    yield (
        "receipt-inflated-completion",
        _receipt_case(
            "10^12 tokens for 3 bytes of text",
            sealed(completion_tokens=10**12),
            by_spec="inflated_completion",
        ),
    )
    yield (
        "receipt-above-max-tokens",
        _receipt_case(
            "2 tokens for a request of max_tokens 1",
            sealed(completion_tokens=2),
            by_spec="inflated_completion",
        ),
    )
    unlimited = messages.Received(answer_bytes=3, max_tokens=None, stop_bytes=2)
    most_completion = 3 + 2 + 8  # RECEIPT-2: text bytes, stop bytes, plus 8
    yield (
        "receipt-completion-at-limit",
        _receipt_case(
            "text bytes, stop bytes and 8 unseen tokens",
            sealed(completion_tokens=most_completion),
            received=unlimited,
            by_spec=fields(completion_tokens=most_completion),
        ),
    )
    yield (
        "receipt-completion-over-limit",
        _receipt_case(
            "one completion token more",
            sealed(completion_tokens=most_completion + 1),
            received=unlimited,
            by_spec="inflated_completion",
        ),
    )


def routing_cases() -> Iterator[tuple[str, Case]]:
    yield from _rank_cases()
    yield from _request_cases()
    yield from _event_cases()
    yield from _receipt_cases()
