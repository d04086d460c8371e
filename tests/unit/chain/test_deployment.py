"""The deployment file: written and read back exactly; anything malformed is one clear error."""

import json
from pathlib import Path

import pytest
from eth_utils import to_checksum_address

from fpai_node.chain.artifacts import ChainError
from fpai_node.chain.deployment import CONTRACTS, Deployment
from fpai_node.chain.parameters import GovernanceParameters
from fpai_node.chain.transactor import revert_reason


def sample() -> Deployment:
    addresses = {name: to_checksum_address(f"0x{i + 1:040x}") for i, name in enumerate(CONTRACTS)}
    return Deployment(
        chain_id=31337,
        block=12,
        deployer=to_checksum_address("0x" + "ee" * 20),
        contracts=addresses,
        parameters=GovernanceParameters(voting_period_s=600),
    )


def test_a_deployment_round_trips_through_its_file(tmp_path: Path) -> None:
    path = tmp_path / "chain" / "deployment.json"
    sample().save(path)
    assert Deployment.load(path) == sample()
    assert json.loads(path.read_text())["format"] == "fpai-chain-deployment/1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="other/1"), "format"),
        (lambda d: d["contracts"].pop("SacredLoop"), "missing \\['SacredLoop'\\]"),
        (lambda d: d["contracts"].update(Extra="0x" + "11" * 20), "unknown \\['Extra'\\]"),
        (lambda d: d["contracts"].update(Treasury="0x" + "ab" * 20), "checksummed"),
        (lambda d: d.update(chain_id=-1), "chain_id"),
        (lambda d: d.update(chain_id="1"), "chain_id"),
        (lambda d: d["parameters"].update(quorum_percent=0), "quorum must be 1 to 100"),
        (lambda d: d["parameters"].update(treasury_bps=10_001), "treasury share"),
        (lambda d: d["parameters"].update(quorum_percent="51"), "integers"),
        (lambda d: d["parameters"].update(surprise=1), "surprise"),
    ],
)
def test_a_malformed_file_is_one_clear_error(tmp_path: Path, change: object, message: str) -> None:
    body = json.loads(sample().to_json())
    change(body)  # type: ignore[operator]
    path = tmp_path / "deployment.json"
    path.write_text(json.dumps(body))
    with pytest.raises(ChainError, match=message):
        Deployment.load(path)


def test_a_missing_unreadable_or_huge_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ChainError, match="cannot read deployment file"):
        Deployment.load(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ChainError, match="not a valid deployment file"):
        Deployment.load(tmp_path / "bad.json")
    (tmp_path / "huge.json").write_text(" " * 70_000)
    with pytest.raises(ChainError, match="over 65536 bytes"):
        Deployment.load(tmp_path / "huge.json")


def test_a_revert_names_the_contract_error_and_its_arguments() -> None:
    caller = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    data = "0x118cdaa7" + "00" * 12 + caller[2:].lower()  # OwnableUnauthorizedAccount(address)
    assert revert_reason(data) == f"OwnableUnauthorizedAccount({caller})"
    assert revert_reason("0xdeadbeef") == "0xdeadbeef"  # unknown: the raw data
    assert revert_reason("0x118cdaa7" + "00") == "OwnableUnauthorizedAccount(address)"
    assert revert_reason(None) == "None"
