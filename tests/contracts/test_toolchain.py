"""The committed artifacts are what the pinned compiler makes of the sources (CHAIN-1)."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fpai_node.chain.artifacts import ARTIFACTS_DIR

CONTRACTS = ARTIFACTS_DIR.parent
EIP170_CODE_LIMIT = 24_576  # bytes of deployed code a chain accepts (EIP-170)


def check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(root / "compile.mjs"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_the_committed_artifacts_match_the_sources() -> None:
    result = check(CONTRACTS)
    assert result.returncode == 0, result.stderr
    assert "artifacts match the sources" in result.stdout


@pytest.mark.slow
def test_a_changed_source_is_caught_as_drift(tmp_path: Path) -> None:
    copy = tmp_path / "contracts"
    shutil.copytree(CONTRACTS, copy, ignore=shutil.ignore_patterns("node_modules"))
    (copy / "node_modules").symlink_to(CONTRACTS / "node_modules")
    source = copy / "src" / "SacredLoop.sol"
    source.write_text(
        source.read_text().replace(
            "uint16 public constant BPS = 10_000;", "uint16 public constant BPS = 10_001;"
        )
    )
    result = check(copy)
    assert result.returncode == 1
    assert "SacredLoop.json" in result.stderr


def test_every_contract_fits_the_code_size_limit_and_targets_prague() -> None:
    found = sorted(ARTIFACTS_DIR.glob("*.json"))
    assert {p.stem for p in found} >= {
        "FederationGovernor",
        "FederationTimelock",
        "GrowthFund",
        "OperatorVotes",
        "RewardsDistributor",
        "SacredLoop",
        "TestStablecoin",
        "TestVault",
        "Treasury",
    }
    for path in found:
        artifact = json.loads(path.read_text())
        assert artifact["compiler"].startswith("solc-0.8.37+")
        assert artifact["evmVersion"] == "prague"
        assert 0 < (len(artifact["deployedBytecode"]) - 2) // 2 <= EIP170_CODE_LIMIT, path.name
