"""Rewards across real node processes on anvil (specs/0010-rewards.md RWD-8, RWD-9, issue 18):
nodes A and B serve the bundled model, C routes requests to them; after the epoch every node
computes the same rewards, equal to the rule applied to the requests the test made (each
answer's usage, at the federation's rate); C's operator proposes publishing them, the three
operators vote, the timelock executes, and A's and B's operators claim exactly their amounts,
once."""

import hashlib
import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from web3 import HTTPProvider, Web3

from fpai_node.chain.contracts import FederationContracts
from fpai_node.chain.deployment import Deployment
from fpai_node.router.receipts import Kept, read_receipts
from fpai_node.testing.anvil import running_anvil
from fpai_node.testing.chain import advance, deploy_for_nodes, operated_homes
from fpai_node.testing.nodeproc import run_cli
from fpai_node.testing.registry_cluster import RegistryNode, votes_with, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
VOTING_PERIOD_S = 600
TIMELOCK_S = 60
EPOCH_S, SETTLE_S = 10, 3  # the shortest epoch the parameters allow: the test waits one out
RATE = 1_000 * 1_000_000  # 1,000 units (0.001 USD) a token, per million tokens
CHAT = {
    "model": "x",
    "messages": [{"role": "user", "content": "Name a fruit."}],
    "max_tokens": 8,
    "temperature": 0,
}


def cli(node: RegistryNode, group: str, *args: str) -> str:
    result = run_cli(group, *args, "--api", node.url)
    assert result.returncode == 0, result.stderr
    return str(result.stdout)


def chat(node: RegistryNode, request_id: str) -> tuple[str, dict[str, int]]:
    """(the node that served it, the usage the client was told) of one request through `node`."""
    request = urllib.request.Request(
        node.url + "/v1/chat/completions",
        data=json.dumps(CHAT).encode(),
        headers={"Content-Type": "application/json", "X-Request-Id": request_id},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.headers["X-FPAI-Served-By"], json.loads(response.read())["usage"]


def rewards(node: RegistryNode, epoch: int) -> dict[str, Any]:
    [shown] = node.request("GET", f"/fpai/v1/rewards?epoch={epoch}")["epochs"]
    return dict(shown)


def test_three_nodes_earn_publish_and_claim_the_rewards_of_an_epoch(
    tmp_path: Path, gguf_model: Path
) -> None:
    homes = [tmp_path / name for name in "abc"]
    operators = operated_homes(homes)
    weights = hashlib.sha256(gguf_model.read_bytes()).hexdigest()
    with running_anvil() as rpc:
        w3 = Web3(HTTPProvider(rpc))
        deployment = tmp_path / "deployment.json"
        env = deploy_for_nodes(
            rpc, operators, deployment, voting_period_s=VOTING_PERIOD_S, timelock_s=TIMELOCK_S
        )
        model = ("--model", f"{gguf_model}=x")
        # One sequence each: a server with a request in flight has no room for a second, so C
        # sends the second of two concurrent requests to the other server (with eight, the
        # nearer server could take both).
        one_slot = {**env, "FPAI_BATCH_SEQUENCES": "1"}
        a, b = (RegistryNode(home, *model, env=one_slot) for home in homes[:2])
        c = RegistryNode(homes[2], env=env)
        nodes = [a, b, c]
        try:
            a.start()
            wait_for(lambda: a.status()["registry"]["phase"] == "running")
            for node in (b, c):
                node.start("--join", a.peer)
            ids = {n.node_id for n in nodes}
            for node in nodes:
                wait_for(lambda n=node: votes_with(n, ids), timeout_s=30)
            for key, value in {
                "rewards.epoch_s": EPOCH_S,
                "rewards.settle_s": SETTLE_S,
                "rewards.rate.x": {
                    "weights": {"$bin": weights},
                    "prompt": RATE,
                    "completion": RATE,
                },
                "rewards.requester_cap": 10**12,
                "rewards.spot_ppm": 1_000_000,  # every answer is checked by the other server
            }.items():
                a.put(key, value)
            for node in nodes:  # bindings, and the model proven on both servers
                wait_for(
                    lambda n=node: (
                        sorted(filter(None, treasury(n)["operators"].values())) == sorted(operators)
                    ),
                    timeout_s=30,
                )
            wait_for(lambda: len(c.status()["router"]["proven"]) == 2, timeout_s=60)

            # requests through C until both servers served some in one epoch: the epoch of a
            # request is its receipt's time (RWD-4), as C's receipts file holds it
            told: dict[str, tuple[str, dict[str, int]]] = {}
            epoch = None
            for i in range(10):
                # Two at a time: C counts the one it sent first against that server's one
                # sequence and sends the other to the second server (ROUTE-4). One at a time,
                # it picks the server it measured faster (ROUTE-5), and a CI run saw twenty in
                # a row go to one server.
                pair = [f"work-{i}{n}" for n in "ab"]
                with ThreadPoolExecutor(2) as pool:
                    told.update(zip(pair, pool.map(lambda rid: chat(c, rid), pair), strict=True))
                epoch = epoch_with_both(c, told, {a.node_id, b.node_id})
                if epoch is not None:
                    break
            assert epoch is not None, "no epoch in which both servers served"
            work = {rid: t for rid, t in told.items() if epoch_of(c)[rid] == epoch}
            served = {n.node_id: [0, 0] for n in (a, b)}
            for server, usage in work.values():
                served[server][0] += usage["prompt_tokens"]
                served[server][1] += usage["completion_tokens"]
            final_at = (epoch + 1) * EPOCH_S + SETTLE_S + 1
            wait_for(lambda: time.time() > final_at, timeout_s=max(0.0, final_at - time.time()) + 5)

            # the rule applied to what the client was told, identically on every node
            expected = {
                operators[i]: (served[n.node_id][0] * RATE + served[n.node_id][1] * RATE)
                // 1_000_000
                for i, n in enumerate((a, b))
            }
            shown = [rewards(node, epoch) for node in nodes]
            assert len({(s["root"], s["total"]) for s in shown}) == 1
            assert shown[2]["total"] == sum(expected.values())
            assert shown[0]["operator_amount"] == expected[operators[0]]
            assert shown[1]["operator_amount"] == expected[operators[1]]
            assert shown[2]["operator_amount"] == 0  # C only asked

            def checks() -> dict[str, int]:
                return c.request("GET", "/fpai/v1/rewards")["spot_checks"]  # type: ignore[no-any-return]

            wait_for(lambda: checks().get("spot_pass", 0) == len(told))  # each checked, passed
            assert checks().get("spot_fail", 0) == 0

            shown_cli = cli(a, "rewards", "--epoch", str(epoch))
            assert f"earned {expected[operators[0]]}" in shown_cli
            assert f"root {shown[0]['root']}, total {shown[0]['total']}" in shown_cli
            early = run_cli("rewards", "propose", str(epoch + 5), "--api", c.url)
            assert early.returncode == 1 and "not final yet" in early.stderr

            # revenue funds the growth fund; C's operator proposes publishing the epoch
            cli(c, "treasury", "pay", "100")
            made = cli(c, "rewards", "propose", str(epoch))
            proposal_id = made.split()[1].rstrip(":")
            advance(w3, 2)
            for node in nodes:
                assert "voted for" in cli(node, "treasury", "vote", proposal_id, "for")
            advance(w3, VOTING_PERIOD_S)
            wait_for(lambda: proposal(c, proposal_id)["state"] == "queued", timeout_s=30)
            advance(w3, TIMELOCK_S + 1)
            wait_for(lambda: proposal(c, proposal_id)["state"] == "executed", timeout_s=30)

            # each serving operator claims exactly its amount, once
            coin = FederationContracts(w3, Deployment.load(deployment)).stablecoin
            for node, operator in ((a, operators[0]), (b, operators[1])):
                before = coin.functions.balanceOf(operator).call()
                assert "claimed" in cli(node, "rewards", "claim", "--epoch", str(epoch))
                after = coin.functions.balanceOf(operator).call()
                assert after - before == expected[operator]
                again = cli(node, "rewards", "claim", "--epoch", str(epoch))
                assert "already claimed" in again
                assert rewards(node, epoch)["chain"]["claimed"] is True
            assert "earned nothing" in cli(c, "rewards", "claim", "--epoch", str(epoch))
        finally:
            for node in nodes:
                node.kill()


def epoch_of(node: RegistryNode) -> dict[str, int]:
    """The epoch of each request `node` forwarded and acknowledged, by request id."""
    kept = read_receipts(node.home / "usage" / "receipts.log")
    return {
        k.receipt.request_id: k.receipt.at_ms // (EPOCH_S * 1000)
        for k in kept
        if isinstance(k, Kept) and k.direction == "used"
    }


def epoch_with_both(
    node: RegistryNode, told: dict[str, tuple[str, dict[str, int]]], servers: set[str]
) -> int | None:
    epochs = epoch_of(node)
    by_epoch: dict[int, set[str]] = {}
    for request_id, (server, _) in told.items():
        if request_id in epochs:
            by_epoch.setdefault(epochs[request_id], set()).add(server)
    return next((e for e, seen in sorted(by_epoch.items()) if seen == servers), None)


def treasury(node: RegistryNode) -> dict[str, Any]:
    return node.request("GET", "/fpai/v1/treasury")  # type: ignore[no-any-return]


def proposal(node: RegistryNode, proposal_id: str) -> dict[str, Any]:
    return next(p for p in treasury(node)["proposals"] if p["id"] == proposal_id)
