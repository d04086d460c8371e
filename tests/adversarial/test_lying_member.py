"""A member that lies (fpai_node/testing/liar.py), against real nodes: H serves `x` honestly, L
serves `x` and lies, G is a gateway that routes between them (specs/0006 ROUTE-3, ROUTE-9,
RECEIPT-2, FWD-8). Issue 13 finding 3: L's phantom models appeared in every /v1/models, its
receipts for 10^12 tokens were kept and counted, and its black hole held requests for 120 s."""

import json
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fpai_node.router.pace import FIRST_EVENT_MIN_S
from fpai_node.testing.liar import PHANTOM, liar_command, tell
from fpai_node.testing.nodeproc import NodeProcess, run_cli, wait_for
from fpai_node.testing.trust import Trust

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
CHAT = {"model": "x", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}


def serving(node: NodeProcess) -> list[str]:
    """The nodes `node` would route `x` to, as its /v1/models lists them."""
    return [n for m in routed_models(node) for n in m["fpai"]["nodes"]]


def routed_models(node: NodeProcess) -> list[dict[str, Any]]:
    """/v1/models without the node's own embedding model (every node has it; never routed)."""
    return [m for m in node.get_json("/v1/models")["data"] if not m["fpai"].get("embeddings_only")]


def router(node: NodeProcess) -> dict[str, Any]:
    return dict(node.get_json("/fpai/v1/status")["router"])


def chat(
    node: NodeProcess, body: dict[str, Any], request_id: str
) -> tuple[int, dict[str, Any], Any]:
    request = urllib.request.Request(
        node.url + "/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-Request-Id": request_id},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


@pytest.fixture(scope="module")
def federation(
    trust: Trust, gguf_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, NodeProcess]]:
    """In the federation mode the liar holds a certificate from the CA: a certified member."""
    root = tmp_path_factory.mktemp("liars")
    nodes: dict[str, NodeProcess] = {}
    try:
        model = ("--model", f"{gguf_model}=x")
        nodes["h"] = NodeProcess(trust.home(root / "h"), "--api", "127.0.0.1:0", *model).start()
        join = ("--join", nodes["h"].peer)
        liar_home = trust.home(root / "l")
        liar_home.mkdir(exist_ok=True)
        tell(liar_home, "phantom-model")
        nodes["l"] = NodeProcess(
            liar_home, "--api", "127.0.0.1:0", *model, *join, command=liar_command()
        ).launch()
        gateway = trust.home(root / "g")
        nodes["g"] = NodeProcess(gateway, "--api", "127.0.0.1:0", "--no-model", *join).launch()
        for name in ("l", "g"):
            nodes[name].wait_started()
        yield nodes
    finally:
        for node in nodes.values():
            node.kill()


def test_a_phantom_model_is_never_listed_nor_routed(federation: dict[str, NodeProcess]) -> None:
    h, liar, g = federation["h"], federation["l"], federation["g"]
    h_id, liar_id = h.node_id, liar.node_id
    for node in (g, h):  # both probed what the liar announces: x answered, the phantom not
        wait_for(lambda n=node: router(n)["proven"].get(liar_id) == ["x"], timeout_s=30)
    announced = g.peers()[liar_id]
    assert PHANTOM in [m["id"] for m in announced["models"]]  # the lie is out there
    # g lists x under both servers, and nothing else, once it has probed h too: the wait above
    # covers the liar only, and a single read could come before g's probe of h.
    wait_for(
        lambda: (
            {m["id"]: m["fpai"]["nodes"] for m in routed_models(g)}
            == {"x": sorted([h_id, liar_id])}
        ),
        timeout_s=30,
    )
    status, _, body = chat(g, {**CHAT, "model": PHANTOM}, "phantom-1")
    assert status == 503, body
    assert "announced it, never answered for it" in body["error"]["message"]


def test_inflated_receipts_are_refused_and_the_liar_demoted(
    federation: dict[str, NodeProcess], trust: Trust, gguf_model: Path, tmp_path: Path
) -> None:
    h, liar, g = federation["h"], federation["l"], federation["g"]
    liar_id = liar.node_id
    assert h.stop(signal.SIGTERM) == 0  # H leaves: the liar is the one node with x
    wait_for(lambda: {m["id"] for m in routed_models(g)} == {"x"})
    wait_for(lambda: serving(g) == [liar_id])
    tell(liar.home.root, "inflate-receipts")
    status, headers, body = chat(g, CHAT, "inflate-1")
    assert status == 200, body
    assert headers["X-FPAI-Served-By"] == liar_id
    assert body["usage"]["completion_tokens"] == 0  # no count the liar could not prove
    state = router(g)
    assert state["receipts_rejected"] == {"inflated_completion": 1}
    assert state["demoted"][liar_id]["reason"] == "inflated_completion"
    used = json.loads(run_cli("usage", "--home", str(g.home.root), "--json").stdout)["totals"]
    assert all(t["peer"] != liar_id for t in used)  # the inflated receipt was not kept

    honest = NodeProcess(
        trust.home(tmp_path / "h2"),
        *("--api", "127.0.0.1:0", "--model", f"{gguf_model}=x", "--join", g.peer),
    ).start()
    federation["h2"] = honest
    honest_id = honest.node_id
    wait_for(lambda: router(g)["proven"].get(honest_id) == ["x"], timeout_s=30)
    for attempt in range(4):  # demoted, the liar comes after any honest node
        _, headers, _ = chat(g, CHAT, f"after-{attempt}")
        assert headers["X-FPAI-Served-By"] == honest_id


def test_a_black_hole_is_given_up_on_at_its_deadline(federation: dict[str, NodeProcess]) -> None:
    liar, g = federation["l"], federation["g"]
    federation["h2"].stop(signal.SIGTERM)  # the demoted liar is the only node left with x
    liar_id = liar.node_id
    wait_for(lambda: serving(g) == [liar_id])
    tell(liar.home.root, "black-hole")
    status, _, body = chat(g, CHAT, "black-hole-1")
    assert status == 503, body
    assert f"no first event within {FIRST_EVENT_MIN_S:.1f} s" in body["error"]["message"]
    assert router(g)["demotions"].get("no_first_event") == 1
