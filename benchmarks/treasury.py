"""The treasury between real nodes (issue 17): how long until a ballot is tallied and a passed
proposal executed, and the gas each step costs and who pays it, beside an operator doing the
same from a script of their own with web3.

    .venv/bin/python benchmarks/treasury.py

One anvil chain and three `fpai-node start` processes (the treasury's defaults: a round every
2 s, a grace of 10 s per turn), the contracts deployed with the three nodes' operators. For each
of ROUNDS proposals (a split change, made by node1):
- node2 votes while the vote is open: its own node signs and relays at once;
- node3 votes while the proposal is pending, and is then killed: another node relays its
  ballot once the vote opens (the grace times its turn);
- the vote ends and the timelock passes; the time from each to the proposal queued and
  executed is how long the federation takes to act on its own.
Baseline, in the same chain: an operator's script casting its own vote (castVote) and calling
queue and execute itself the moment each is due.
"""

import statistics
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from web3 import HTTPProvider, Web3

from fpai_node.chain.contracts import FederationContracts
from fpai_node.chain.deployment import Deployment
from fpai_node.chain.governance import Action, Proposal, Support
from fpai_node.chain.keys import load_key
from fpai_node.chain.transactor import Transactor
from fpai_node.testing.anvil import running_anvil
from fpai_node.testing.chain import ONE_ETH, advance, set_balance
from fpai_node.testing.nodeproc import run_cli
from fpai_node.testing.registry_cluster import RegistryNode, registry_cluster, wait_for

ROUNDS = 3
VOTING_DELAY_S, VOTING_PERIOD_S, TIMELOCK_S = 5, 600, 60


def proposal_of(node: RegistryNode, proposal_id: str) -> dict[str, Any]:
    answer = node.request("GET", "/fpai/v1/treasury")["proposals"]
    return next(p for p in answer if p["id"] == proposal_id)  # type: ignore[no-any-return]


def timed(condition: Any, timeout_s: float = 120.0) -> float:
    started = time.monotonic()
    wait_for(condition, timeout_s=timeout_s, every_s=0.05)
    return time.monotonic() - started


def treasury(*args: str, node: RegistryNode) -> str:
    result = run_cli("treasury", *args, "--api", node.url)
    assert result.returncode == 0, result.stderr
    return str(result.stdout)


def gas_by_sender(w3: Web3, first_block: int, names: dict[str, str]) -> dict[str, dict[str, int]]:
    """Gas used per sender and per function called, over the blocks since `first_block`."""
    spent: dict[str, dict[str, int]] = {}
    for number in range(first_block, w3.eth.block_number + 1):
        block = w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            receipt = w3.eth.get_transaction_receipt(tx["hash"])
            who = names.get(tx["from"], tx["from"][:10])
            what = _selector_name(bytes(tx["input"][:4]))
            row = spent.setdefault(who, {})
            row[what] = row.get(what, 0) + int(receipt["gasUsed"])
    return spent


_SELECTORS = {
    "propose(address[],uint256[],bytes[],string)": "propose",
    "castVoteBySig(uint256,uint8,address,bytes)": "castVoteBySig",
    "castVote(uint256,uint8)": "castVote",
    "queue(address[],uint256[],bytes[],bytes32)": "queue",
    "execute(address[],uint256[],bytes[],bytes32)": "execute",
}


def _selector_name(selector: bytes) -> str:
    for signature, name in _SELECTORS.items():
        if Web3.keccak(text=signature)[:4] == selector:
            return name
    return "other"


def main() -> None:
    with TemporaryDirectory() as tmp, running_anvil() as rpc:
        root = Path(tmp)
        w3 = Web3(HTTPProvider(rpc))
        homes = [root / f"node{i}" for i in range(3)]
        for home in homes:
            assert run_cli("init", "--home", str(home)).returncode == 0
        keys = [load_key(home / "keys" / "operator.key") for home in homes]
        for key in keys:
            set_balance(w3, key.address, 100 * ONE_ETH)
        deployment = root / "deployment.json"
        deployed = run_cli(
            "chain", "deploy", "--rpc", rpc, "--dev-account",
            *(arg for key in keys for arg in ("--operator", key.address)),
            "--voting-delay", str(VOTING_DELAY_S), "--voting-period", str(VOTING_PERIOD_S),
            "--timelock-delay", str(TIMELOCK_S), "--out", str(deployment),
        )  # fmt: skip
        assert deployed.returncode == 0, deployed.stderr
        contracts = FederationContracts(w3, Deployment.load(deployment))
        advance(w3, 1)  # votes count from the second after the deployment's (CHAIN-4)
        env = {"FPAI_CHAIN_RPC": rpc, "FPAI_CHAIN_DEPLOYMENT": str(deployment)}
        measured: dict[str, list[float]] = {}
        baseline: dict[str, list[float]] = {}
        with registry_cluster(root, size=3, env=env) as nodes:
            first, second, third = nodes
            names = {key.address: f"node{i + 1}" for i, key in enumerate(keys)}
            for node in nodes:
                wait_for(lambda n=node: n.status()["treasury"]["chain"] == "ready", timeout_s=60)
            first_block = w3.eth.block_number + 1
            for round_ in range(ROUNDS):
                if not third.running():
                    third.start()
                    wait_for(lambda: third.status()["treasury"]["chain"] == "ready")
                made = treasury("propose", "split", str(6000 + round_), node=first)
                proposal_id = made.split()[1]
                treasury("vote", proposal_id, "for", node=third)  # pending: kept, not relayed
                third.kill()
                advance(w3, VOTING_DELAY_S + 1)
                started = time.monotonic()  # the request alone: no CLI process start-up
                second.request(
                    "POST", f"/fpai/v1/treasury/proposals/{proposal_id}/votes", {"support": "for"}
                )
                measured.setdefault("ballot to tally, own node", []).append(
                    time.monotonic() - started
                )
                measured.setdefault("ballot to tally, voter's node gone", []).append(
                    time.monotonic()
                    - started
                    + timed(lambda p=proposal_id: proposal_of(first, p)["tally"]["for"] == 2)
                )
                advance(w3, VOTING_PERIOD_S)
                measured.setdefault("vote end to queued", []).append(
                    timed(lambda p=proposal_id: proposal_of(first, p)["state"] == "queued")
                )
                advance(w3, TIMELOCK_S + 1)
                measured.setdefault("timelock end to executed", []).append(
                    timed(lambda p=proposal_id: proposal_of(second, p)["state"] == "executed")
                )
            ours = gas_by_sender(w3, first_block, names)

            # the baseline: one operator's own script, each step sent the moment it is due
            first_block = w3.eth.block_number + 1
            operator = Transactor(w3, keys[0])
            for round_ in range(ROUNDS):
                action = Action.call(contracts.loop, "setSplit", 7000 + round_)
                proposal = Proposal.by(keys[0].address, (action,), f"script {round_}")
                targets, values, calldatas = proposal.arguments()
                operator.send(
                    contracts.governor.functions.propose(
                        targets, values, calldatas, proposal.description
                    )
                )
                advance(w3, VOTING_DELAY_S + 1)
                for key in keys[1:]:
                    started = time.monotonic()
                    Transactor(w3, key).send(
                        contracts.governor.functions.castVote(proposal.id, int(Support.FOR))
                    )
                    baseline.setdefault("ballot to tally, own node", []).append(
                        time.monotonic() - started
                    )
                advance(w3, VOTING_PERIOD_S)
                started = time.monotonic()
                operator.send(
                    contracts.governor.functions.queue(
                        targets, values, calldatas, proposal.description_hash
                    )
                )
                baseline.setdefault("vote end to queued", []).append(time.monotonic() - started)
                advance(w3, TIMELOCK_S + 1)
                started = time.monotonic()
                operator.send(
                    contracts.governor.functions.execute(
                        targets, values, calldatas, proposal.description_hash
                    )
                )
                baseline.setdefault("timelock end to executed", []).append(
                    time.monotonic() - started
                )
            script = gas_by_sender(w3, first_block, names)

        print(
            f"{'time (median of ' + str(ROUNDS) + ')':<38}{'nodes':>10}{'script':>10}{'ratio':>8}"
        )
        for name, values in measured.items():
            ours_s = statistics.median(values)
            if name in baseline:
                base_s = statistics.median(baseline[name])
                print(f"{name:<38}{ours_s:>9.2f}s{base_s:>9.2f}s{ours_s / base_s:>7.1f}x")
            else:
                print(f"{name:<38}{ours_s:>9.2f}s{'-':>10}{'-':>8}")
        print(f"\ngas per proposal lifecycle (mean of {ROUNDS}), by who paid it")
        for label, spent in (("nodes", ours), ("script", script)):
            total = sum(sum(row.values()) for row in spent.values()) // ROUNDS
            print(f"  {label}: {total:,} gas")
            for who, row in sorted(spent.items()):
                detail = ", ".join(f"{k} {v // ROUNDS:,}" for k, v in sorted(row.items()))
                print(f"    {who}: {detail}")


if __name__ == "__main__":
    main()
