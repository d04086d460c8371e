"""Federated inference through real node processes on loopback (issue 6): A and B serve nothing
of model `x`, C (and later D) serve it; every request for `x` at A or B crosses the mutual-TLS
peer channel, streaming or not, and comes back with the node that served it and a receipt."""

import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest

from fpai_node.identity import NodeKey
from fpai_node.router.messages import INFER_PATH, InferRequest, decode_failure
from fpai_node.testing.nodeproc import NodeProcess, run_cli, wait_for
from fpai_node.testing.peer_client import peer_post

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
CHAT = {"model": "x", "messages": [{"role": "user", "content": "Name a colour."}]}


def sees_model(node: NodeProcess, model: str, served_by: str) -> bool:
    entries = {m["id"]: m for m in node.get_json("/v1/models")["data"]}
    return served_by in entries.get(model, {}).get("fpai", {}).get("nodes", [])


def post(
    node: NodeProcess, path: str, body: dict[str, Any], timeout_s: float = 60.0
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        node.url + path, data=json.dumps(body).encode(), headers={"X-Request-Id": "t-1"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@contextmanager
def three_nodes(gguf_model: Path, root: Path) -> Iterator[dict[str, NodeProcess]]:
    """A serves `a` (another model) and is the bootstrap; B is a gateway (--no-model); C
    serves the bundled model under the id `x`."""
    nodes: dict[str, NodeProcess] = {}
    try:
        nodes["a"] = NodeProcess(
            root / "a", "--api", "127.0.0.1:0", "--model", f"{gguf_model}=a"
        ).start()
        for name, extra in (("b", ("--no-model",)), ("c", ("--model", f"{gguf_model}=x"))):
            nodes[name] = NodeProcess(
                root / name,
                "--api",
                "127.0.0.1:0",
                "--join",
                nodes["a"].peer,
                *extra,
                # One generation at a time and no queue: one long stream makes C busy.
                env={"FPAI_QUEUE_DEPTH": "0", "FPAI_BATCH_SEQUENCES": "1"},
            ).launch()
        for name in ("b", "c"):
            nodes[name].wait_started()
        c = nodes["c"].node_id
        for name in ("a", "b"):
            wait_for(lambda name=name: sees_model(nodes[name], "x", c))
        yield nodes
    finally:
        for node in nodes.values():
            node.kill()


@pytest.fixture(scope="module")
def federation(
    gguf_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, NodeProcess]]:
    """Shared by the tests that leave every node running and idle (a federation's start is
    most of this module's time)."""
    with three_nodes(gguf_model, tmp_path_factory.mktemp("routing")) as nodes:
        yield nodes


@pytest.fixture
def own_federation(gguf_model: Path, tmp_path: Path) -> Iterator[dict[str, NodeProcess]]:
    """For a test that kills or stops a node."""
    with three_nodes(gguf_model, tmp_path) as nodes:
        yield nodes


def client(node: NodeProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=node.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def test_a_peer_serves_the_model_streaming_and_not(federation: dict[str, NodeProcess]) -> None:
    a, b, c = federation["a"], federation["b"], federation["c"]
    c_id = c.node_id
    sampling = {"max_tokens": 8, "temperature": 0.0, "seed": 3}
    direct = client(c).chat.completions.create(**CHAT, **sampling)  # type: ignore[call-overload]
    for entry in (a, b):
        started = time.monotonic()
        raw = client(entry).chat.completions.with_raw_response.create(**CHAT, **sampling)
        elapsed_ms = (time.monotonic() - started) * 1000
        assert raw.headers["x-fpai-served-by"] == c_id
        # ROUTE-10: the hop over mutual TLS takes time, and it is a part of what the client waited
        assert 0 < float(raw.headers["x-fpai-route-overhead-ms"]) < elapsed_ms
        forwarded = raw.parse()
        assert forwarded.choices[0].message.content == direct.choices[0].message.content
        assert forwarded.usage == direct.usage
        assert forwarded.usage.completion_tokens > 0

        with client(entry).chat.completions.with_streaming_response.create(
            **CHAT, **sampling, stream=True, stream_options={"include_usage": True}
        ) as streamed:
            assert streamed.headers["x-fpai-served-by"] == c_id
            chunks = list(streamed.parse())
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        assert text == direct.choices[0].message.content
        assert sum(1 for ch in chunks if ch.choices and ch.choices[0].delta.content) > 1
        assert chunks[-1].usage == direct.usage

    completion = client(b).completions.create(model="x", prompt="Once", max_tokens=4, seed=1)
    assert completion.usage.completion_tokens > 0
    vectors = client(b).embeddings.create(model="x", input=["red", "blue"])
    direct_vectors = client(c).embeddings.create(model="x", input=["red", "blue"])
    assert len(vectors.data) == 2
    assert vectors.data[0].embedding == pytest.approx(direct_vectors.data[0].embedding, rel=1e-5)

    listed = run_cli("models", "--home", str(b.home.root))
    assert listed.returncode == 0, listed.stderr
    [row] = [line.split() for line in listed.stdout.splitlines() if line.startswith("x ")]
    assert row == ["x", "llamacpp", "4096", c_id]
    models = {m["id"]: m for m in b.get_json("/v1/models")["data"]}
    assert models["x"]["fpai"]["local"] is False
    assert models["x"]["fpai"]["nodes"] == [c_id]
    assert {m["id"]: m["fpai"]["local"] for m in a.get_json("/v1/models")["data"]} == {
        "a": True,
        "all-minilm-l6-v2": True,  # every node's own embedding model (memory's)
        "x": False,
    }


def test_receipts_are_kept_on_both_sides(federation: dict[str, NodeProcess]) -> None:
    """Counted as what these two requests add: the other tests share the federation."""
    b, c = federation["b"], federation["c"]
    b_id, c_id = b.node_id, c.node_id

    def totals(node: NodeProcess, direction: str, peer: str) -> dict[str, int]:
        result = run_cli("usage", "--home", str(node.home.root), "--json")
        assert result.returncode == 0, result.stderr
        keys = ("requests", "prompt_tokens", "completion_tokens")
        for row in json.loads(result.stdout)["totals"]:
            if (row["direction"], row["peer"], row["model"]) == (direction, peer, "x"):
                return {k: row[k] for k in keys}
        return dict.fromkeys(keys, 0)

    def settled() -> tuple[int, dict[str, int]] | None:
        """B's count of what C served it, once both sides hold a receipt for each request."""
        forwarded = b.get_json("/fpai/v1/status")["router"]["forwarded"].get(c_id, 0)
        used, served = totals(b, "used", c_id), totals(c, "served", b_id)
        return (forwarded, used) if used == served and used["requests"] == forwarded else None

    forwarded, used = wait_for(settled)
    usages = [
        client(b).chat.completions.create(**CHAT, max_tokens=n).usage  # type: ignore[call-overload]
        for n in (3, 5)
    ]
    router = b.get_json("/fpai/v1/status")["router"]
    assert router["forwarded"][c_id] == forwarded + 2
    assert router["receipts_rejected"] == {}
    expected = {
        "requests": used["requests"] + 2,
        "prompt_tokens": used["prompt_tokens"] + sum(u.prompt_tokens for u in usages),
        "completion_tokens": used["completion_tokens"] + sum(u.completion_tokens for u in usages),
    }
    wait_for(lambda: totals(b, "used", c_id)["requests"] == expected["requests"])
    assert totals(b, "used", c_id) == expected
    wait_for(lambda: totals(c, "served", b_id)["requests"] == expected["requests"])
    assert totals(c, "served", b_id) == expected
    table = run_cli("usage", "--home", str(b.home.root))
    assert c_id in table.stdout and "used" in table.stdout


def test_a_server_dying_mid_stream_ends_the_stream_and_the_next_request_gets_a_quick_503(
    own_federation: dict[str, NodeProcess],
) -> None:
    a, c = own_federation["a"], own_federation["c"]
    c_id = c.node_id
    with a.streaming("/v1/chat/completions", {**CHAT, "max_tokens": 400}, events=3) as stream:
        c.stop(signal.SIGKILL)
        received = stream.read_to_end()
    assert b"200 OK" in received.split(b"\r\n", 1)[0]
    events = [line[6:] for line in received.split(b"\n") if line.startswith(b"data: {")]
    error = json.loads(events[-1])["error"]
    assert c_id in error["message"]
    assert b"[DONE]" not in received

    started = time.monotonic()
    status, _, body = post(a, "/v1/chat/completions", {**CHAT, "max_tokens": 2}, timeout_s=20)
    assert status == 503, body
    error = json.loads(body)["error"]
    assert error["code"] == "model_unavailable"
    assert "'x'" in error["message"] and c_id in error["message"]
    assert time.monotonic() - started < 20  # bounded by the client timeout above, not a hang


def test_a_server_gone_silent_mid_stream_ends_the_stream_within_seconds(
    own_federation: dict[str, NodeProcess],
) -> None:
    """FWD-9 (issue 21): SIGSTOP, like a cut link, sends nothing (no FIN, no RST), so only the
    requester's watch can end the stream: the serving node's usual gap between events, or gossip
    declaring it dead, whichever comes first; not the 120 s read timeout."""
    a, c = own_federation["a"], own_federation["c"]
    assert c.process is not None
    with a.streaming("/v1/chat/completions", {**CHAT, "max_tokens": 400}, events=3) as stream:
        c.process.send_signal(signal.SIGSTOP)
        silenced = time.monotonic()
        try:
            received = stream.read_to_end()
        finally:
            c.process.send_signal(signal.SIGCONT)
        ended_after_s = time.monotonic() - silenced
    events = [line[6:] for line in received.split(b"\n") if line.startswith(b"data: {")]
    message = json.loads(events[-1])["error"]["message"]
    assert c.node_id in message
    assert "was declared dead" in message or "sent no event for" in message, message
    assert ended_after_s < 30, ended_after_s  # a few seconds here; the read timeout is 120 s
    logged = [e for e in a.log_events() if e.get("event") == "forwarded request failed"]
    assert logged and logged[-1]["peer"] == c.node_id and logged[-1]["events"] >= 1
    assert logged[-1]["request_id"]  # bound by the API: the failure is findable


def test_a_second_server_takes_over_when_the_first_dies(
    own_federation: dict[str, NodeProcess], gguf_model: Path, tmp_path: Path
) -> None:
    a, c = own_federation["a"], own_federation["c"]
    d = NodeProcess(
        tmp_path / "d", "--api", "127.0.0.1:0", "--join", a.peer, "--model", f"{gguf_model}=x"
    ).start()
    try:
        d_id = d.node_id
        wait_for(lambda: sees_model(a, "x", d_id))
        c.stop(signal.SIGKILL)
        for _ in range(3):
            status, headers, body = post(a, "/v1/chat/completions", {**CHAT, "max_tokens": 2})
            assert status == 200, body
            assert headers["X-FPAI-Served-By"] == d_id
        for node, message in ((a, "request forwarded"), (d, "forwarded request served")):
            logged = [e for e in node.log_events() if e.get("event") == message]
            assert logged and all(e["request_id"] == "t-1" for e in logged)
            assert logged[-1]["node_id"] == node.node_id
    finally:
        d.kill()


def test_a_probe_refused_as_busy_is_deferred_not_failed(
    federation: dict[str, NodeProcess], tmp_path: Path
) -> None:
    """ROUTE-9: a newcomer probes C while C's one slot is taken; the 429 defers the probe (asked
    again after its Retry-After) rather than failing it (asked again 10 s later, the model
    missing from the newcomer's /v1/models meanwhile). So does a 403 `not_a_member` from C
    before C's gossip has heard of D: no probe of C fails."""
    a, c = federation["a"], federation["c"]
    d = NodeProcess(tmp_path / "d", "--api", "127.0.0.1:0", "--join", a.peer, "--no-model")
    try:
        # long enough to outlast D's start; leaving the block cancels it
        with c.streaming("/v1/chat/completions", {**CHAT, "max_tokens": 2000}, events=2):
            d.start()
            wait_for(lambda: busy(probes_of(d, "model probe deferred", c.node_id)))
        wait_for(lambda: sees_model(d, "x", c.node_id))
        assert probes_of(d, "model probe failed", c.node_id) == []
        # the stream's generation was cancelled: C is idle again for the tests that follow
        wait_for(lambda: post(a, "/v1/chat/completions", {**CHAT, "max_tokens": 1})[0] == 200)
    finally:
        d.kill()


def probes_of(node: NodeProcess, event: str, peer: str) -> list[dict[str, Any]]:
    return [e for e in node.log_events() if e.get("event") == event and e.get("peer") == peer]


def busy(deferrals: list[dict[str, Any]]) -> bool:
    """Whether a deferral was for a busy peer (D may first be refused as no member: C's gossip
    may not have heard of D when D probes it)."""
    return any(e["why"] == "busy" for e in deferrals)


def test_a_loop_a_forged_path_and_a_stranger_are_refused(
    federation: dict[str, NodeProcess],
) -> None:
    """A key outside the federation reaches the peer channel (open trust) but gets no tokens:
    the serving node serves only nodes that joined the federation (FWD-7), and checks that
    before it reads the body. A member is held to the path rules (FWD-2, FWD-3)."""
    a, c = federation["a"], federation["c"]
    member = NodeKey.load(a.home.key_file)
    stranger = NodeKey.generate()
    body = json.dumps({**CHAT, "max_tokens": 2}).encode()

    def ask(caller: NodeKey, path: tuple[str, ...]) -> tuple[int, str]:
        request = InferRequest("chat", body, "loop-1", path)
        status, answer = peer_post(caller, c.peer, INFER_PATH, request.encode())
        return status, decode_failure(answer).code

    c_id = c.node_id
    assert ask(stranger, (stranger.node_id,)) == (403, "not_a_member")
    assert ask(member, (c_id, member.node_id)) == (508, "loop")
    assert ask(member, (stranger.node_id,)) == (400, "path_not_peer")
    status, answer = peer_post(
        member, c.peer, INFER_PATH, InferRequest("chat", body, "ok-1", (member.node_id,)).encode()
    )
    assert status == 200 and answer.startswith(b"\x00\x00")  # a length-prefixed event stream


def test_an_unknown_model_is_404(federation: dict[str, NodeProcess]) -> None:
    status, _, body = post(federation["a"], "/v1/chat/completions", {**CHAT, "model": "nope"})
    assert status == 404
    error = json.loads(body)["error"]
    assert error["code"] == "model_not_found"
    assert "models: a, x" in error["message"]


def test_a_busy_peer_answers_429_and_the_router_says_so(
    federation: dict[str, NodeProcess],
) -> None:
    """C runs one generation and queues none (FPAI_QUEUE_DEPTH=0): while a long stream holds
    its slot, A's request is refused by C with 429 and, C being the only candidate, A answers
    429 with C's reason and a Retry-After."""
    a, c = federation["a"], federation["c"]
    with c.streaming("/v1/chat/completions", {**CHAT, "max_tokens": 400}, events=2):
        status, headers, body = post(a, "/v1/chat/completions", {**CHAT, "max_tokens": 2})
    assert status == 429, body
    assert int(headers["Retry-After"]) >= 1
    assert c.node_id in json.loads(body)["error"]["message"]
    # the stream's client left: C cancels its generation and serves again (and the federation,
    # shared with other tests, is left idle)
    wait_for(lambda: post(a, "/v1/chat/completions", {**CHAT, "max_tokens": 1})[0] == 200)
