"""Servers that cheat for rewards (fpai_node/testing/liar.py, specs/0010-rewards.md), against
real nodes with the bundled model: H serves `x` honestly, L serves `x` and cheats, G is a
gateway routing between them, Y is a requester whose operator is not H's (a sybil to the
federation), Z shares H's operator key. Each cheat is told in its own epoch; after the epoch's
deadline every node computes the same rewards, and the record says why L earned nothing.

- an inflated digest and answers dropped after signing: L is paid only what G acknowledged;
- prompt tokens inflated within RECEIPT-2's bound: a spot check by H, a fraud report, nothing;
- filler instead of the model's answer: a spot check, a fraud report, nothing;
- 10^12 tokens in a receipt: a disputed pair, nothing, on both sides' digests;
- a requester's work is capped whoever serves it; serving your own operator earns nothing.
"""

import hashlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from fpai_node.router.receipts import Kept, read_receipts
from fpai_node.testing.liar import DIGEST_FACTOR, liar_command, tell
from fpai_node.testing.nodeproc import NodeProcess, run_cli, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]
EPOCH_S, SETTLE_S = 10, 3  # the shortest epochs RWD-4 allows: each cheat gets its own
UNIT = 1_000_000  # a rate of 1,000,000 per million tokens: one unit a token
CHAT = {
    "model": "x",
    "messages": [{"role": "user", "content": "Name a color."}],
    "max_tokens": 8,
    "temperature": 0,
}


def start(root: Path, name: str, *args: str, **kwargs: Any) -> NodeProcess:
    home = root / name
    init = ("--operator-key", str(kwargs.pop("operator_key"))) if "operator_key" in kwargs else ()
    assert run_cli("init", "--home", str(home), *init).returncode == 0
    if "lies" in kwargs:
        tell(home, *kwargs.pop("lies"))
    return NodeProcess(home, "--api", "127.0.0.1:0", *args, **kwargs).start(60)


@pytest.fixture(scope="module")
def federation(
    gguf_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, NodeProcess]]:
    root = tmp_path_factory.mktemp("cheats")
    nodes: dict[str, NodeProcess] = {}
    model = ("--model", f"{gguf_model}=x")
    # One sequence each: a server busy with a request announces full load, so the gateways
    # spread requests over both (with eight, the nearer server would take every one).
    one_slot = {"FPAI_BATCH_SEQUENCES": "1"}
    try:
        nodes["h"] = start(root, "h", *model, env=one_slot)
        join = ("--join", nodes["h"].peer)
        nodes["l"] = start(root, "l", *model, *join, command=liar_command(), lies=(), env=one_slot)
        for name in ("g", "y"):
            nodes[name] = start(root, name, "--no-model", *join)
        nodes["z"] = start(
            root, "z", "--no-model", *join, operator_key=root / "h" / "keys" / "operator.key"
        )
        h = nodes["h"]
        weights = hashlib.sha256(gguf_model.read_bytes()).hexdigest()
        for key, value in {
            "rewards.epoch_s": EPOCH_S,
            "rewards.settle_s": SETTLE_S,
            "rewards.rate.x": {"weights": {"$bin": weights}, "prompt": UNIT, "completion": UNIT},
            "rewards.requester_cap": 10**9,
            "rewards.spot_ppm": 1_000_000,  # every answer checked: each cheat is caught
        }.items():
            put(h, key, value)
        operators = {n.node_id for n in nodes.values()}
        for node in nodes.values():  # every binding (TREASURY-2) and x proven on both servers
            wait_for(lambda n=node: set(bindings(n)) >= operators, timeout_s=60)
        for node in (nodes["g"], nodes["y"], nodes["z"]):
            wait_for(lambda n=node: len(router(n)["proven"]) == 2, timeout_s=60)
        yield nodes
    finally:
        for node in nodes.values():
            node.kill()


def put(node: NodeProcess, key: str, value: Any) -> None:
    request = urllib.request.Request(
        f"{node.url}/fpai/v1/registry/parameters/{key}",
        data=json.dumps({"value": value}).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        assert response.status == 200


def bindings(node: NodeProcess) -> list[str]:
    parameters = node.get_json("/fpai/v1/registry?stale=1")["parameters"]
    return [k.split(".")[1] for k in parameters if k.endswith(".operator")]


def router(node: NodeProcess) -> dict[str, Any]:
    return dict(node.get_json("/fpai/v1/status")["router"])


def rewards(node: NodeProcess, epoch: int) -> dict[str, Any]:
    [shown] = node.get_json(f"/fpai/v1/rewards?epoch={epoch}")["epochs"]
    return dict(shown)


def status(node: NodeProcess) -> dict[str, Any]:
    return dict(node.get_json("/fpai/v1/rewards"))


def chat(node: NodeProcess, request_id: str, max_tokens: int = 8) -> tuple[int, str]:
    """(status, the node that served it) of one chat request through `node`."""
    request = urllib.request.Request(
        node.url + "/v1/chat/completions",
        data=json.dumps({**CHAT, "max_tokens": max_tokens}).encode(),
        headers={"Content-Type": "application/json", "X-Request-Id": request_id},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers["X-FPAI-Served-By"]
    except urllib.error.HTTPError as error:
        return error.code, ""


def epochs(node: NodeProcess) -> dict[str, tuple[int, str]]:
    """(epoch, server) of each request `node` forwarded and acknowledged, by request id: the
    epoch of a request is its receipt's time (RWD-4), as the requester keeps it."""
    kept = read_receipts(node.home.root / "usage" / "receipts.log")
    return {
        k.receipt.request_id: (k.receipt.at_ms // (EPOCH_S * 1000), k.receipt.server)
        for k in kept
        if isinstance(k, Kept) and k.direction == "used" and k.pair is not None
    }


def chat_pair(node: NodeProcess, prefix: str, max_tokens: int = 8) -> list[tuple[int, str]]:
    """Two chats through `node` at once: it counts the one it sent first against that
    server's queue and sends the other to the second server (ROUTE-4). One at a time, it
    picks the server it measured faster (ROUTE-5), and a server could go unasked for any
    number of them (CI failures)."""
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda n: chat(node, f"{prefix}-{n}", max_tokens), "ab"))


def work_until(
    node: NodeProcess, prefix: str, servers: set[str], at_most: int = 8, max_tokens: int = 8
) -> int:
    """Chat through `node`, two at a time, until one epoch holds acknowledged work of every
    one of `servers`; that epoch."""
    for i in range(at_most):
        assert [code for code, _ in chat_pair(node, f"{prefix}-{i}", max_tokens)] == [200, 200]
        by_epoch: dict[int, set[str]] = {}
        for request_id, (epoch, server) in epochs(node).items():
            if request_id.startswith(f"{prefix}-"):
                by_epoch.setdefault(epoch, set()).add(server)
        done = [epoch for epoch, seen in by_epoch.items() if seen >= servers]
        if done:
            return done[0]
    raise AssertionError(f"no epoch in which {servers} all served {prefix} requests")


def until_final(epoch: int) -> None:
    """RWD-4: past the deadline, with a second for the last digests to replicate."""
    final_at = (epoch + 1) * EPOCH_S + SETTLE_S + 1
    wait_for(
        lambda: time.time() > final_at, timeout_s=max(0.0, final_at - time.time()) + 5, every_s=0.1
    )


def lines(node: NodeProcess, epoch: int) -> dict[tuple[str, str], dict[str, Any]]:
    return {(line["server"], line["requester"]): line for line in rewards(node, epoch)["lines"]}


def used_row(node: NodeProcess, epoch: int, server: str) -> dict[str, Any]:
    [row] = [r for r in rewards(node, epoch)["used"] if r["peer"] == server]
    return row


def same_everywhere(federation: dict[str, NodeProcess], epoch: int) -> dict[str, Any]:
    """RWD-8: every node computes the same root and total from the registry."""
    results = {(r["root"], r["total"]) for n in federation.values() if (r := rewards(n, epoch))}
    assert len(results) == 1, results
    return rewards(federation["g"], epoch)


def test_an_inflated_digest_and_dropped_answers_earn_only_what_was_acknowledged(
    federation: dict[str, NodeProcess],
) -> None:
    h, liar, g = federation["h"], federation["l"], federation["g"]
    tell(liar.home.root, "inflate-digest")
    epoch = work_until(g, "digest", {h.node_id, liar.node_id})
    tell(liar.home.root, "inflate-digest", "drop-answers")
    signed = served_count(liar, g.node_id)
    for i in range(8):  # the liar signs, then hangs up: G gets its answer from H
        assert [code for code, _ in chat_pair(g, f"dropped-{i}")] == [200, 200]
        if served_count(liar, g.node_id) > signed:
            break
    wait_for(lambda: served_count(liar, g.node_id) > signed, timeout_s=5)
    until_final(epoch)  # the liar commits its inflated digest on the way
    tell(liar.home.root)

    same_everywhere(federation, epoch)
    seen = lines(g, epoch)
    acknowledged = used_row(g, epoch, liar.node_id)  # G's own digest of the liar's work
    cheated = seen[(liar.node_id, g.node_id)]
    assert cheated["claimed_completion"] == DIGEST_FACTOR * acknowledged["completion_tokens"]
    assert (cheated["prompt"], cheated["completion"]) == (
        acknowledged["prompt_tokens"],
        acknowledged["completion_tokens"],
    )
    assert cheated["value"] == acknowledged["prompt_tokens"] + acknowledged["completion_tokens"]
    # receipts the liar signed and G never got are in no pair: nothing claims them
    pairs = sum(1 for _, server in epochs(g).values() if server == liar.node_id)
    assert pairs < served_count(liar, g.node_id)
    honest = seen[(h.node_id, g.node_id)]
    assert honest["reason"] == "paid" and honest["value"] == honest["prompt"] + honest["completion"]


def test_a_sybil_requester_is_capped_and_your_own_nodes_earn_you_nothing(
    federation: dict[str, NodeProcess],
) -> None:
    h, liar, y, z = (federation[n] for n in "hlyz")
    tell(liar.home.root, "drop-answers")  # whatever reaches the liar, H serves
    epoch = work_until(y, "sybil", {h.node_id})
    for i in range(4):
        assert chat(y, f"sybil-more-{i}")[0] == 200
    own = work_until(z, "own", {h.node_id})
    tell(liar.home.root)
    asked = [r for r in rewards(y, epoch)["used"]]
    total = sum(r["prompt_tokens"] + r["completion_tokens"] for r in asked)
    cap = total // 2  # Y asked for more than the cap: its servers share the cap
    put(h, "rewards.requester_cap", cap)
    try:
        until_final(max(epoch, own))
        by_y = [line for line in lines(y, epoch).values() if line["requester"] == y.node_id]
        assert by_y and {line["reason"] for line in by_y} == {"capped"}
        assert cap - len(by_y) < sum(line["value"] for line in by_y) <= cap
        by_z = [line for line in lines(z, own).values() if line["requester"] == z.node_id]
        assert by_z and {(line["reason"], line["value"]) for line in by_z} == {("same_operator", 0)}
    finally:
        put(h, "rewards.requester_cap", 10**9)


def served_count(liar: NodeProcess, requester: str) -> int:
    """Receipts the liar signed for `requester`, acknowledged or not (its usage file)."""
    usage = run_cli("usage", "--home", str(liar.home.root), "--json")
    totals = json.loads(usage.stdout)["totals"]
    return sum(
        t["requests"] for t in totals if t["direction"] == "served" and t["peer"] == requester
    )


@pytest.mark.parametrize(
    ("lie", "reason"), [("inflate-prompt", "inflated_prompt"), ("wrong-text", "wrong_output")]
)
def test_a_spot_check_catches_the_cheat_and_the_cheater_earns_nothing_for_the_epoch(
    federation: dict[str, NodeProcess], lie: str, reason: str
) -> None:
    h, liar, g = federation["h"], federation["l"], federation["g"]
    wait_for(lambda: liar.node_id not in router(g)["demoted"], timeout_s=3 * EPOCH_S)
    tell(liar.home.root, lie)
    # answers of 24 tokens: RWD-12 judges wrong text by at least 6 far tokens (greedy)
    epoch = work_until(g, lie, {h.node_id, liar.node_id}, max_tokens=24)
    # H checked the liar's answer (RWD-11), found it wrong and reported it (RWD-13)...
    wait_for(
        lambda: any(
            r["server"] == liar.node_id and r["reason"] == reason
            for r in status(liar)["reports"]["against_this_node"]
        ),
        timeout_s=30,
    )
    tell(liar.home.root)
    # ...and every router ranks it as lying until the end of the next epoch
    wait_for(lambda: router(g)["demoted"].get(liar.node_id, {}).get("reason") == "fraud_report")
    until_final(epoch)
    same_everywhere(federation, epoch)
    seen = lines(g, epoch)
    assert seen[(liar.node_id, g.node_id)]["reason"] == "penalized"
    assert seen[(liar.node_id, g.node_id)]["value"] == 0
    assert seen[(h.node_id, g.node_id)]["reason"] == "paid"  # H's honest answers passed
    assert status(g)["spot_checks"].get("spot_fail", 0) >= 1


def test_a_receipt_claiming_too_much_is_a_disputed_pair_worth_nothing(
    federation: dict[str, NodeProcess],
) -> None:
    liar, g = federation["l"], federation["g"]
    wait_for(lambda: liar.node_id not in router(g)["demoted"], timeout_s=3 * EPOCH_S)
    tell(liar.home.root, "inflate-receipts")
    for i in range(8):
        answers = chat_pair(g, f"inflated-{i}")
        assert [code for code, _ in answers] == [200, 200]
        if liar.node_id in {server for _, server in answers}:
            break
    tell(liar.home.root)
    assert liar.node_id in {server for _, server in answers}
    assert router(g)["demoted"][liar.node_id]["reason"] == "inflated_completion"
    wait_for(lambda: disputed(g) is not None, timeout_s=5)
    epoch = disputed(g)
    assert epoch is not None
    until_final(epoch)
    row = used_row(g, epoch, liar.node_id)
    assert row["disputed"] == 1 and (row["prompt_tokens"], row["completion_tokens"]) == (0, 0)
    [theirs] = [r for r in rewards(liar, epoch)["served"] if r["peer"] == g.node_id]
    assert theirs["disputed"] == 1  # the liar's own digest records the dispute
    line = lines(g, epoch)[(liar.node_id, g.node_id)]
    assert (line["value"], line["disputed"]) == (0, 1)


def disputed(node: NodeProcess) -> int | None:
    """The epoch of a pair `node` acknowledged as disputed, if any."""
    kept = read_receipts(node.home.root / "usage" / "receipts.log")
    for k in kept:
        if isinstance(k, Kept) and k.pair is not None and not k.pair.ack.counts:
            return k.receipt.at_ms // (EPOCH_S * 1000)
    return None
