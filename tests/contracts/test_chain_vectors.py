"""protocol/vectors/chain/ replayed against the contracts on anvil: the splits (CHAIN-3) by
SacredLoop, the proposal ids (CHAIN-5) by the governor, a reward tree (CHAIN-7) by claims."""

import json
from pathlib import Path
from typing import Any

import pytest

from fpai_node.chain.transactor import Transactor
from fpai_node.testing.chain import Federation, as_account, funded_key

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors" / "chain"


def cases(prefix: str) -> list[Any]:
    folders = sorted(VECTORS.glob(f"{prefix}-*"))
    assert folders, f"no {prefix} vectors"
    return [pytest.param(json.loads((f / "case.json").read_text()), id=f.name) for f in folders]


@pytest.mark.parametrize("case", cases("split"))
def test_the_loop_splits_as_the_vectors_say(fed: Federation, case: dict[str, Any]) -> None:
    loop = fed.contracts.loop
    as_account(fed.w3, fed.contracts.timelock.address).send(
        loop.functions.setSplit(case["treasury_bps"])
    )
    expect = case["expect"]
    assert loop.functions.splitOf(int(case["amount"])).call() == [
        int(expect["treasury"]),
        int(expect["growth"]),
    ]


@pytest.mark.parametrize("case", cases("proposal"))
def test_the_governor_hashes_proposals_as_the_vectors_say(
    fed: Federation, case: dict[str, Any]
) -> None:
    governor = fed.contracts.governor
    calldatas = [bytes.fromhex(c[2:]) for c in case["calldatas"]]
    values = [int(v) for v in case["values"]]
    description_hash = bytes.fromhex(case["expect"]["description_hash"][2:])
    hashed = governor.functions.hashProposal(case["targets"], values, calldatas, description_hash)
    assert hashed.call() == int(case["expect"]["id"])


def test_the_distributor_pays_claims_proven_by_a_vector_tree(fed: Federation) -> None:
    case = json.loads((VECTORS / "reward-tree-5" / "case.json").read_text())
    c = fed.contracts
    total = int(case["expect"]["total"])
    Transactor(fed.w3, funded_key(fed.w3)).send(
        c.stablecoin.functions.mint(c.rewards.address, total)
    )
    root = bytes.fromhex(case["expect"]["root"][2:])
    as_account(fed.w3, c.timelock.address).send(c.rewards.functions.publish(1, root, total))
    for operator, amount in case["amounts"].items():
        proof = [bytes.fromhex(p[2:]) for p in case["expect"]["proofs"][operator]]
        fed.relayer.send(c.rewards.functions.claim(1, operator, int(amount), proof))
        assert c.stablecoin.functions.balanceOf(operator).call() == int(amount)
    assert c.rewards.functions.reserved().call() == 0
