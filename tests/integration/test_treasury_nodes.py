"""The treasury across real node processes on anvil (specs/0009, issue 17): revenue paid into the
loop splits 60/40; node 1 proposes a vault deposit, nodes 2 and 3 vote from their own operator
keys, node 1 is killed before the vote ends, and the survivors queue and execute it; every node
then shows the treasury's vault shares. A ballot relayed twice counts once, a ballot signed by a
key no member bound is refused by the nodes and by the chain, and an operator cannot vote twice.
A node without a chain answers every treasury command with one line."""

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import HTTPProvider, Web3

from fpai_node.api.admin.registry import to_json
from fpai_node.chain.artifacts import ChainError
from fpai_node.chain.contracts import FederationContracts
from fpai_node.chain.deployment import Deployment
from fpai_node.chain.governance import Action, Ballot, Proposal, Support, relay, sign_ballot
from fpai_node.chain.keys import load_key
from fpai_node.chain.transactor import Transactor
from fpai_node.testing.anvil import running_anvil
from fpai_node.testing.chain import (
    ONE_ETH,
    advance,
    as_account,
    deploy_for_nodes,
    funded_key,
    operated_homes,
    set_balance,
)
from fpai_node.testing.nodeproc import run_cli
from fpai_node.testing.registry_cluster import RegistryNode, registry_cluster, wait_for
from fpai_node.treasury.binding import binding_parameter
from fpai_node.treasury.records import ballot_parameter, ballot_to_value

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
VOTING_PERIOD_S = 600
TIMELOCK_S = 60
USD = 10**6  # the test stablecoin has 6 decimals


def treasury(node: RegistryNode) -> dict[str, Any]:
    return node.request("GET", "/fpai/v1/treasury")  # type: ignore[no-any-return]


def treasury_section(node: RegistryNode) -> dict[str, Any]:
    return node.status()["treasury"]  # type: ignore[no-any-return]


def cli(node: RegistryNode, *args: str) -> str:
    result = run_cli("treasury", *args, "--api", node.url)
    assert result.returncode == 0, result.stderr
    return str(result.stdout)


def proposal(node: RegistryNode, proposal_id: str) -> dict[str, Any]:
    return next(p for p in treasury(node)["proposals"] if p["id"] == proposal_id)


def cast_again(w3: Web3, governor: Any, transaction: str) -> None:
    """Sends the calldata of a relay that was counted once more, from another account."""
    sent = w3.eth.get_transaction(transaction)  # type: ignore[arg-type]
    function, args = governor.decode_function_input(sent["input"])
    Transactor(w3, funded_key(w3)).send(
        getattr(governor.functions, function.fn_name)(*args.values())
    )


def test_three_nodes_run_the_treasury_and_survive_the_proposers_death(tmp_path: Path) -> None:
    homes = [tmp_path / f"node{i}" for i in range(3)]
    operators = operated_homes(homes)
    with running_anvil() as rpc:
        w3 = Web3(HTTPProvider(rpc))
        deployment = tmp_path / "deployment.json"
        env = deploy_for_nodes(
            rpc, operators, deployment, voting_period_s=VOTING_PERIOD_S, timelock_s=TIMELOCK_S
        )
        with registry_cluster(tmp_path, size=3, env=env) as nodes:
            first, second, third = nodes
            # TREASURY-3: every node sees every member's binding, checked (TREASURY-2)
            for node in nodes:
                wait_for(
                    lambda n=node: (
                        sorted(filter(None, treasury(n)["operators"].values())) == sorted(operators)
                    ),
                    timeout_s=30,
                )
            governor = FederationContracts(w3, Deployment.load(deployment)).governor
            # a registry voter writes its own binding over another member's: the member writes
            # its own back (TREASURY-3), and the copy never names its operator (TREASURY-2)
            own = binding_parameter(second.node_id)
            kept = second.registry()["parameters"][own]
            first.put(own, first.registry()["parameters"][binding_parameter(first.node_id)])
            wait_for(lambda: second.registry()["parameters"][own] == kept, timeout_s=20)
            assert treasury(third)["operators"][second.node_id] == operators[1]

            # revenue splits 60/40 (CHAIN-3), and the status counts it
            cli(first, "pay", "100")
            status = treasury(second)
            assert status["treasury"]["stablecoin"] == 60 * USD
            assert status["growth"]["stablecoin"] == 40 * USD
            assert sum(day["stablecoin"] for day in status["revenue"].values()) == 100 * USD

            made = cli(first, "propose", "deposit", "60", "--text", "Put idle funds to work")
            proposal_id = made.split()[1]
            vault = Deployment.load(deployment).contracts["TestVault"]
            assert proposal(third, proposal_id)["calls"] == [  # TREASURY-9: no vault chosen yet
                f"Treasury.chooseVault({vault})",
                f"Treasury.deposit({60 * USD})",
            ]
            advance(w3, 2)  # past the voting delay: the vote is open
            assert "counted" in cli(second, "vote", proposal_id, "for")
            voted = cli(third, "vote", proposal_id, "for", "--reason", "yield beats idle")
            assert "counted" in voted
            relayed = voted.split("transaction ")[1].strip().rstrip(")")
            assert proposal(second, proposal_id)["tally"] == {"for": 2, "against": 0, "abstain": 0}

            # relayed twice, a ballot counts once: the chain refuses the second cast...
            with pytest.raises(ChainError, match="GovernorInvalidSignature"):
                cast_again(w3, governor, relayed)
            # ...and a node that finds it in the registry again does not relay it (TREASURY-6)
            sent = w3.eth.get_transaction(relayed)  # type: ignore[arg-type]
            _, args = governor.decode_function_input(sent["input"])
            counted = Ballot(
                int(proposal_id, 16), Support.FOR, operators[2], 0, args["signature"],
                args["reason"],
            )  # fmt: skip
            key = ballot_parameter(third.node_id, counted.proposal_id)
            third.put(key, to_json(ballot_to_value(counted)))
            wait_for(lambda: key not in third.registry()["parameters"], timeout_s=20)  # TREASURY-7
            assert proposal(first, proposal_id)["tally"]["for"] == 2

            # a ballot signed by a key no member bound: every node refuses it (TREASURY-4)...
            stranger = Account.create()
            forged = sign_ballot(
                stranger, chain_id=w3.eth.chain_id, governor=governor.address,
                proposal=counted.proposal_id, support=Support.FOR, nonce=0,
            )  # fmt: skip
            second.put(
                ballot_parameter(second.node_id, counted.proposal_id),
                to_json(ballot_to_value(forged)),
            )
            for node in nodes:
                wait_for(
                    lambda n=node: (
                        treasury_section(n)["refused"].get("ballot_not_the_members_operator", 0)
                        >= 1
                    )
                )
            # ...and so does the chain, whoever relays it (GovernorNotOperator, CHAIN-6)
            with pytest.raises(ChainError, match="GovernorNotOperator"):
                relay(Transactor(w3, funded_key(w3)), governor, forged)
            # an operator cannot vote twice: its node says so, and the chain refuses
            again = run_cli("treasury", "vote", proposal_id, "against", "--api", second.url)
            assert again.returncode == 1 and "already voted" in again.stderr
            assert len(again.stderr.strip().splitlines()) == 1
            operator = load_key(homes[1] / "keys" / "operator.key")
            second_ballot = sign_ballot(
                operator, chain_id=w3.eth.chain_id, governor=governor.address,
                proposal=counted.proposal_id, support=Support.AGAINST,
                nonce=governor.functions.nonces(operator.address).call(),
            )  # fmt: skip
            with pytest.raises(ChainError, match="GovernorAlreadyCastVote"):
                relay(Transactor(w3, funded_key(w3)), governor, second_ballot)
            assert proposal(third, proposal_id)["tally"] == {"for": 2, "against": 0, "abstain": 0}

            # the proposer's node dies before the vote ends; the survivors finish (TREASURY-8)
            first.kill()
            advance(w3, VOTING_PERIOD_S)
            wait_for(lambda: proposal(second, proposal_id)["state"] == "queued", timeout_s=30)
            advance(w3, TIMELOCK_S + 1)
            wait_for(lambda: proposal(third, proposal_id)["state"] == "executed", timeout_s=30)
            again = cli(second, "execute", proposal_id)  # any node, any number of times
            assert again.strip() == "nothing to do: the proposal is executed"
            done = [treasury_section(n)["done"] for n in (second, third)]
            assert sum(d.get("queued", 0) for d in done) == 1
            assert sum(d.get("executed", 0) for d in done) == 1
            first.start()
            wait_for(lambda: treasury_section(first)["chain"] == "ready", timeout_s=30)
            for node in nodes:
                held = treasury(node)["treasury"]
                assert held["vault_value"] == 60 * USD and held["vault_shares"] > 0
                assert held["stablecoin"] == 0


def test_a_node_without_a_chain_answers_every_treasury_command_with_one_line(
    tmp_path: Path,
) -> None:
    node = RegistryNode(tmp_path / "node").start()
    operator = run_cli("id", "--home", str(tmp_path / "node"), "--operator").stdout.strip()
    try:
        for args in (
            ("status",),
            ("propose", "split", "7000"),
            ("vote", "0x01", "for"),
            ("execute", "0x01"),
            ("pay", "1"),
        ):
            result = run_cli("treasury", *args, "--api", node.url)
            lines = result.stderr.strip().splitlines()
            assert result.returncode == 1 and len(lines) == 1, result.stderr
            assert "HTTP 503: no chain configured: set chain_rpc" in lines[0]
        # the binding is kept without a chain too (TREASURY-3): rewards pay operators by it
        wait_for(lambda: "operator" in treasury_section(node))
        assert treasury_section(node) == {
            "chain": "none",
            "operator": operator,
            "done": {},
            "refused": {},
        }
        assert binding_parameter(node.node_id) in node.registry()["parameters"]
    finally:
        node.kill()


@contextlib.contextmanager
def one_operator_node(
    tmp_path: Path, *deploy_args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[Web3, Path, Any, RegistryNode]]:
    """A node whose operator is the only one admitted to contracts deployed for it on anvil:
    (web3, the deployment file, the operator's key, the node once its chain is ready)."""
    home = tmp_path / "node0"
    assert run_cli("init", "--home", str(home)).returncode == 0
    operator = load_key(home / "keys" / "operator.key")
    with running_anvil() as rpc:
        w3 = Web3(HTTPProvider(rpc))
        set_balance(w3, operator.address, 100 * ONE_ETH)
        deployment = tmp_path / "deployment.json"
        deployed = run_cli(
            "chain", "deploy", "--rpc", rpc, "--dev-account", "--operator", operator.address,
            *deploy_args, "--out", str(deployment),
        )  # fmt: skip
        assert deployed.returncode == 0, deployed.stderr
        advance(w3, 1)  # votes count from the second after the deployment's (CHAIN-4)
        chain = {"FPAI_CHAIN_RPC": rpc, "FPAI_CHAIN_DEPLOYMENT": str(deployment)}
        with registry_cluster(tmp_path, size=1, env={**chain, **(env or {})}) as (node,):
            wait_for(lambda: treasury_section(node)["chain"] == "ready")
            yield w3, deployment, operator, node


def test_a_ballot_behind_one_never_counted_is_signed_again_and_idle_funds_are_drafted(
    tmp_path: Path,
) -> None:
    """TREASURY-5: an operator votes on two pending proposals (nonces 0 and 1); the first is
    canceled, so nonce 0 is never used; its node signs the second ballot again with nonce 0,
    and relays it once the vote opens. TREASURY-7: the canceled proposal's ballot leaves.
    TREASURY-10: idle funds above the threshold become a draft the operator proposes."""
    with one_operator_node(tmp_path, "--voting-delay", "600") as (w3, deployment, operator, node):
        contracts = FederationContracts(w3, Deployment.load(deployment))
        canceled = cli(node, "propose", "split", "7000").split()[1]
        kept = cli(node, "propose", "split", "6500").split()[1]
        for proposal_id in (canceled, kept):
            assert "when the vote opens" in cli(node, "vote", proposal_id, "for")
        key = ballot_parameter(node.node_id, int(kept, 16))
        assert node.registry()["parameters"][key]["nonce"] == 1
        split = Proposal.by(
            operator.address, (Action.call(contracts.loop, "setSplit", 7000),), "split 7000"
        )
        assert f"{split.id:#066x}" == canceled  # TREASURY-9's call, CHAIN-5's id
        targets, values, calldatas = split.arguments()
        cancel = contracts.governor.functions.cancel(
            targets, values, calldatas, split.description_hash
        )
        Transactor(w3, operator).send(cancel)
        wait_for(lambda: node.registry()["parameters"][key]["nonce"] == 0)
        gone = ballot_parameter(node.node_id, int(canceled, 16))
        wait_for(lambda: gone not in node.registry()["parameters"])
        advance(w3, 601)
        wait_for(lambda: proposal(node, kept)["tally"]["for"] == 1, timeout_s=30)
        assert proposal(node, canceled)["state"] == "canceled"

        # TREASURY-10: idle funds above the federation's threshold are drafted into a
        # deposit, which only the operator proposes
        node.put("treasury.idle_threshold", "50.5")
        cli(node, "pay", "100")
        assert treasury(node)["draft"] == {
            "kind": "deposit",
            "value": "60",
            "text": "Deposit the treasury's idle 60 into the vault: above the federation's "
            "idle threshold of 50.5 (treasury.idle_threshold)",
        }
        assert [p["calls"] for p in treasury(node)["proposals"] if "deposit" in p["text"]] == []
        # the supervisor shows it as an action for the operator (supervised, the default);
        # rejected there, the operator still proposes it by hand
        waiting = wait_for(
            lambda: node.request("GET", "/fpai/v1/actions")["actions"], timeout_s=15
        )  # read again after `pay`, not at the next 30 s read
        assert [(a["kind"], a["state"]) for a in waiting] == [("propose_treasury", "pending")]
        assert waiting[0]["summary"].startswith("propose to the operators: Deposit the")
        rejected = run_cli("actions", "reject", waiting[0]["id"], "--api", node.url)
        assert rejected.returncode == 0, rejected.stderr
        drafted = cli(node, "propose", "--from-draft").split()[1]
        assert proposal(node, drafted)["calls"][-1] == f"Treasury.deposit({60 * USD})"
        assert treasury(node)["draft"] is None  # a deposit is on its way

        # TREASURY-6, -7: an operator with no vote at a proposal's snapshot (removed before
        # it, admitted again after) is refused by its node, and a ballot of its that shows
        # up anyway is dropped, not retried: the governor would refuse it every time
        timelock = as_account(w3, contracts.timelock.address)
        timelock.send(contracts.votes.functions.admit(Account.create().address))
        late = cli(node, "propose", "split", "6100").split()[1]
        timelock.send(contracts.votes.functions.remove(operator.address))
        advance(w3, 601)
        timelock.send(contracts.votes.functions.admit(operator.address))
        refused = run_cli("treasury", "vote", late, "for", "--api", node.url)
        assert refused.returncode == 1 and "had no vote when" in refused.stderr
        stray = sign_ballot(
            operator, chain_id=w3.eth.chain_id, governor=contracts.governor.address,
            proposal=int(late, 16), support=Support.FOR,
            nonce=contracts.governor.functions.nonces(operator.address).call(),
        )  # fmt: skip
        key = ballot_parameter(node.node_id, stray.proposal_id)
        node.put(key, to_json(ballot_to_value(stray)))
        wait_for(lambda: key not in node.registry()["parameters"])
        assert proposal(node, late)["tally"]["for"] == 0


def test_an_autonomous_node_proposes_the_draft_itself(tmp_path: Path) -> None:
    """TREASURY-10 under `--autonomy autonomous`: the operator has delegated the draft; the
    node proposes the deposit once, and records it as a done action naming the proposal."""
    autonomous = {"FPAI_AUTONOMY": "autonomous"}
    with one_operator_node(tmp_path, env=autonomous) as (_, _, _, node):
        node.put("treasury.idle_threshold", "10")
        cli(node, "pay", "50")

        def proposed() -> dict[str, Any] | None:
            actions = node.request("GET", "/fpai/v1/actions")["actions"]
            done = [a for a in actions if a["state"] == "done"]
            return done[0] if done else None

        action = wait_for(proposed, timeout_s=15)  # read after `pay`, not 30 s later
        assert action["kind"] == "propose_treasury" and action["attempts"] == 1
        deposits = [p for p in treasury(node)["proposals"] if "deposit" in p["text"].lower()]
        assert len(deposits) == 1
        assert action["outcome"].startswith(f"proposal {deposits[0]['id']} (transaction 0x")
        assert deposits[0]["calls"][-1] == f"Treasury.deposit({30 * USD})"
        assert treasury(node)["draft"] is None
