"""Gas of the federation's contracts, each operation beside what doing it without them costs.

    .venv/bin/python benchmarks/contracts.py

One anvil chain (contracts/node_modules, started on a free port), the contract set deployed by
fpai_node.chain.deploy with three operators, driven through web3.py over JSON-RPC as a node does.
Gas is deterministic, but the first call to touch a storage slot pays for it cold (EIP-2929) and
a zero balance made non-zero costs more than a change: every operation runs three times and the
table shows the last, the steady state a federation pays.

Baselines, run in the same chain:
- revenue in ETH: the payer splits it by hand, two plain transfers to the treasury and growth;
- revenue in the stablecoin: two ERC-20 transfers by hand (payToken adds the transferFrom);
- vote by signature (relayed): the operator's own castVote, sending the transaction itself;
- execute: the same call (growth.pay) made by the timelock directly, with no governor around it;
- claim: the treasury paying the operator with one ERC-20 transfer, trusting whoever computed it.
Also printed: the deployment's total gas and the compile time of contracts/ (solc-js).
"""

import subprocess
import time

from web3 import Web3

from fpai_node.chain import governance
from fpai_node.chain.artifacts import ARTIFACTS_DIR
from fpai_node.chain.governance import Action, Proposal, Support
from fpai_node.chain.merkle import RewardTree
from fpai_node.chain.transactor import Transactor
from fpai_node.testing.anvil import running_anvil
from fpai_node.testing.chain import (
    ONE_ETH,
    Federation,
    advance,
    as_account,
    deploy_federation,
    funded_key,
)

RUNS = 3
ETH = "0x" + "00" * 20


def last(gas: list[int]) -> int:
    return gas[-1]


def revenue(fed: Federation) -> list[tuple[str, int, str, int]]:
    w3, c = fed.w3, fed.contracts
    payer = Transactor(w3, funded_key(w3))
    payer.send(c.stablecoin.functions.mint(payer.address, 10**12))
    payer.send(c.stablecoin.functions.approve(c.loop.address, 10**12))
    ours_eth, base_eth, ours_token, base_token = [], [], [], []
    for _ in range(RUNS):
        ours_eth.append(payer.transfer(c.loop.address, ONE_ETH)["gasUsed"])
        base_eth.append(
            payer.transfer(c.treasury.address, 6 * ONE_ETH // 10)["gasUsed"]
            + payer.transfer(c.growth.address, 4 * ONE_ETH // 10)["gasUsed"]
        )
        ours_token.append(
            payer.send(c.loop.functions.payToken(c.stablecoin.address, 10**6))["gasUsed"]
        )
        transfer = c.stablecoin.functions.transfer
        base_token.append(
            payer.send(transfer(c.treasury.address, 6 * 10**5))["gasUsed"]
            + payer.send(transfer(c.growth.address, 4 * 10**5))["gasUsed"]
        )
    return [
        ("revenue split, ETH", last(ours_eth), "2 ETH transfers", last(base_eth)),
        ("revenue split, ERC-20", last(ours_token), "2 ERC-20 transfers", last(base_token)),
    ]


def voting(fed: Federation) -> list[tuple[str, int, str, int]]:
    w3, c = fed.w3, fed.contracts
    Transactor(w3, funded_key(w3)).transfer(c.growth.address, 10 * ONE_ETH)
    rows: dict[str, list[int]] = {k: [] for k in ("propose", "sig", "direct", "queue", "execute")}
    base_execute: list[int] = []
    timelock = as_account(w3, c.timelock.address)
    for run in range(RUNS):
        recipient = funded_key(w3, wei=1).address
        action = Action.call(c.growth, "pay", ETH, recipient, ONE_ETH // 10)
        proposal = Proposal.by(fed.operators[0].address, (action,), f"benchmark {run}")
        proposer = Transactor(w3, fed.operators[0])
        rows["propose"].append(governance.propose(proposer, c.governor, proposal)["gasUsed"])
        advance(w3, fed.parameters.voting_delay_s + 1)
        voter = fed.operators[1]
        ballot = governance.sign_ballot(
            voter,
            chain_id=w3.eth.chain_id,
            governor=c.governor.address,
            proposal=proposal.id,
            support=Support.FOR,
            nonce=governance.nonce(c.governor, voter.address),
        )
        rows["sig"].append(governance.relay(fed.relayer, c.governor, ballot)["gasUsed"])
        direct = Transactor(w3, fed.operators[2])
        rows["direct"].append(
            direct.send(c.governor.functions.castVote(proposal.id, int(Support.FOR)))["gasUsed"]
        )
        advance(w3, fed.parameters.voting_period_s + 1)
        rows["queue"].append(governance.queue(fed.relayer, c.governor, proposal)["gasUsed"])
        advance(w3, fed.parameters.timelock_delay_s + 1)
        rows["execute"].append(governance.execute(fed.relayer, c.governor, proposal)["gasUsed"])
        base_execute.append(
            timelock.send(c.growth.functions.pay(ETH, recipient, ONE_ETH // 10))["gasUsed"]
        )
    by_voter, direct = last(rows["direct"]), last(base_execute)
    return [
        ("propose (1 action)", last(rows["propose"]), "-", 0),
        ("vote by signature, relayed", last(rows["sig"]), "castVote by the voter", by_voter),
        ("queue", last(rows["queue"]), "-", 0),
        ("execute (growth.pay ETH)", last(rows["execute"]), "growth.pay called directly", direct),
    ]


def rewards(fed: Federation) -> list[tuple[str, int, str, int]]:
    w3, c = fed.w3, fed.contracts
    minter = Transactor(w3, funded_key(w3))
    minter.send(c.stablecoin.functions.mint(c.rewards.address, 10**12))
    minter.send(c.stablecoin.functions.mint(c.treasury.address, 10**12))
    timelock = as_account(w3, c.timelock.address)
    # 100 operators in the tree: a proof of 7 hashes, as a federation of ~100 would claim.
    operators = [funded_key(w3, wei=1).address for _ in range(100)]
    ours, base, publish = [], [], []
    for epoch in range(RUNS):
        tree = RewardTree({op: 1_000 + i for i, op in enumerate(operators)})
        publish.append(
            timelock.send(c.rewards.functions.publish(epoch, tree.root, tree.total))["gasUsed"]
        )
        operator = operators[epoch]
        ours.append(
            fed.relayer.send(
                c.rewards.functions.claim(
                    epoch, operator, tree.amounts[operator], tree.proof(operator)
                )
            )["gasUsed"]
        )
        base.append(
            timelock.send(
                c.treasury.functions.pay(c.stablecoin.address, operators[50 + epoch], 1_000)
            )["gasUsed"]
        )
    return [
        ("publish reward root", last(publish), "-", 0),
        ("claim (100-leaf tree)", last(ours), "treasury.pay to the operator", last(base)),
    ]


def main() -> None:
    started = time.perf_counter()
    check = subprocess.run(
        ["node", str(ARTIFACTS_DIR.parent / "compile.mjs"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    compile_s = time.perf_counter() - started
    with running_anvil() as url:
        w3 = Web3(Web3.HTTPProvider(url))
        block = w3.eth.block_number
        started = time.perf_counter()
        fed = deploy_federation(w3)
        deploy_s = time.perf_counter() - started
        deploy_gas = sum(
            w3.eth.get_block(n, full_transactions=False)["gasUsed"]
            for n in range(block + 1, w3.eth.block_number + 1)
        )
        rows = revenue(fed) + voting(fed) + rewards(fed)
    print(f"{'operation':<30}{'gas':>9}   {'baseline':<30}{'gas':>9}{'ratio':>8}")
    for name, gas, baseline, base_gas in rows:
        ratio = f"{gas / base_gas:.2f}" if base_gas else "-"
        base_text = f"{base_gas:>9}" if base_gas else f"{'-':>9}"
        print(f"{name:<30}{gas:>9}   {baseline:<30}{base_text}{ratio:>8}")
    print(
        f"\ndeployment: {deploy_gas} gas in {deploy_s:.2f} s (set, funded keys, wiring check)"
        f"\ncompile (solc-js, {compile_s:.1f} s): {check.stdout.strip()}"
    )


if __name__ == "__main__":
    main()
