"""The committed artifacts are what the pinned compiler makes of the sources (CHAIN-1)."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fpai_node.chain.artifacts import ARTIFACTS_DIR

CONTRACTS = ARTIFACTS_DIR.parent
EIP170_CODE_LIMIT = 24_576  # bytes of deployed code a chain accepts (EIP-170)


def drifted_copy(root: Path) -> Path:
    """The contracts under `root`, with SacredLoop.sol changed and its artifact left as it was."""
    copy = root / "contracts"
    shutil.copytree(CONTRACTS, copy, ignore=shutil.ignore_patterns("node_modules"))
    (copy / "node_modules").symlink_to(CONTRACTS / "node_modules")
    source = copy / "src" / "SacredLoop.sol"
    source.write_text(
        source.read_text().replace(
            "uint16 public constant BPS = 10_000;", "uint16 public constant BPS = 10_001;"
        )
    )
    return copy


@pytest.fixture(scope="module")
def checks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """`compile.mjs --check` on the committed contracts and on a drifted copy, both at once:
    each is one solc-js process that keeps one core busy for about 9 s."""
    roots = {"committed": CONTRACTS, "drifted": drifted_copy(tmp_path_factory.mktemp("drift"))}
    running = {
        name: subprocess.Popen(
            ["node", str(root / "compile.mjs"), "--check"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, root in roots.items()
    }
    results = {}
    try:
        for name, process in running.items():
            stdout, stderr = process.communicate(timeout=120)
            results[name] = subprocess.CompletedProcess(
                process.args, process.returncode, stdout, stderr
            )
    finally:  # a compile past its time: neither process is left running
        for process in running.values():
            process.kill()
            process.wait()
    return results


@pytest.mark.slow
def test_the_committed_artifacts_match_the_sources(
    checks: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    result = checks["committed"]
    assert result.returncode == 0, result.stderr
    assert "artifacts match the sources" in result.stdout


@pytest.mark.slow
def test_a_changed_source_is_caught_as_drift(
    checks: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    result = checks["drifted"]
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
