"""protocol/vectors/routing/ (specs/0006-routing.md): ranking inputs and their order, forwarded
requests, answer events and receipts, each valid or with the reason a node refuses it."""

import dataclasses
from collections.abc import Iterator
from typing import Any

from fpai_node.identity import NodeKey
from fpai_node.router import messages
from fpai_node.router.select import LocalOffer, PeerOffer, rank
from fpai_node.testing.vectors import ALICE, BOB, NOW_MS, Case, to_json
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
    valid: list[tuple[str, messages.Event]] = [
        ("text", messages.Text("Hello")),
        ("finish", messages.Finished("stop", b"receipt frame")),
        ("vectors", messages.Vectors((bytes(8), bytes(4)))),
        ("error", messages.Failed("overloaded", "busy", 2)),
    ]
    for name, event in valid:
        data = messages.encode_event(event)
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
) -> Case:
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

    other = dataclasses.replace(_REQUEST, body=_BODY.replace(b"Hi", b"Yo"))
    yield "receipt-valid", _receipt_case("alice served bob's request", sealed())
    yield (
        "receipt-wrong-server",
        _receipt_case("signed by carol, the request went to alice", sealed(CAROL)),
    )
    yield (
        "receipt-wrong-requester",
        _receipt_case(
            "names dave as the requester",
            sealed(request=dataclasses.replace(_REQUEST, path=(DAVE.node_id,))),
        ),
    )
    yield "receipt-wrong-request", _receipt_case("for another request body", sealed(request=other))
    yield "receipt-wrong-model", _receipt_case("for another model", sealed(model="y"))
    yield (
        "receipt-expired",
        _receipt_case("checked after its 60 s lifetime", sealed(), now_ms=NOW_MS + 60_000),
    )
    most_prompt = len(_BODY) + messages.PROMPT_TEMPLATE_TOKENS
    yield (
        "receipt-prompt-at-limit",
        _receipt_case("body bytes plus the template's tokens", sealed(prompt_tokens=most_prompt)),
    )
    yield (
        "receipt-inflated-prompt",
        _receipt_case("one prompt token more", sealed(prompt_tokens=most_prompt + 1)),
    )
    yield (
        "receipt-inflated-completion",
        _receipt_case("10^12 tokens for 3 bytes of text", sealed(completion_tokens=10**12)),
    )
    yield (
        "receipt-above-max-tokens",
        _receipt_case("2 tokens for a request of max_tokens 1", sealed(completion_tokens=2)),
    )
    unlimited = messages.Received(answer_bytes=3, max_tokens=None, stop_bytes=2)
    yield (
        "receipt-completion-at-limit",
        _receipt_case(
            "text bytes, stop bytes and 8 unseen tokens",
            sealed(completion_tokens=3 + 2 + messages.UNSEEN_COMPLETION_TOKENS),
            received=unlimited,
        ),
    )
    yield (
        "receipt-completion-over-limit",
        _receipt_case(
            "one completion token more",
            sealed(completion_tokens=3 + 2 + messages.UNSEEN_COMPLETION_TOKENS + 1),
            received=unlimited,
        ),
    )


def routing_cases() -> Iterator[tuple[str, Case]]:
    yield from _rank_cases()
    yield from _request_cases()
    yield from _event_cases()
    yield from _receipt_cases()
